"""RLModules of the team (Ray 2.60 new API stack, torch).

- `ActorModule`: policy only (no value head, NOT a ValueFunctionAPI).
- `ActorCriticModule`: same actor + own value head (independent-PPO baseline).
- `SharedCriticModule`: learner-only centralized critic; input = global state
  (B, state_dim) -> one (normalized) value per agent (B, n_agents). Holds the
  running mean/std of value targets as torch buffers (=> part of state_dict, so
  it is checkpointed with the module).
"""
from typing import Any, Dict

import gymnasium as gym
import numpy as np
from torch import nn

from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule

from rllib_algospace.mappo.valuenorm import ValueNormalizer

CRITIC_ID = "shared_critic"
CRITIC_STATE = "global_state"  # batch column of the critic batch
OLD_VALUES_NORM = "old_values_norm"  # critic batch: old preds, normalized


ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _mlp(in_dim, hiddens, out_dim, act=nn.Tanh, out_gain=1.0):
    layers, d = [], in_dim
    for h in hiddens:
        lin = nn.Linear(d, h)
        nn.init.orthogonal_(lin.weight, np.sqrt(2))
        nn.init.zeros_(lin.bias)
        layers += [lin, act()]
        d = h
    out = nn.Linear(d, out_dim)
    nn.init.orthogonal_(out.weight, out_gain)
    nn.init.zeros_(out.bias)
    layers.append(out)
    return nn.Sequential(*layers)


class ActorModule(TorchRLModule):
    """Policy-only module: obs (Box) -> Categorical logits."""

    def setup(self):
        mc = self.model_config or {}
        hid = list(mc.get("hiddens", [64, 64]))
        self._act = ACTIVATIONS[mc.get("activation", "tanh")]
        self.pi = _mlp(self._obs_dim(), hid, self.action_space.n, act=self._act, out_gain=0.01)

    def _obs_dim(self):
        sp = self.observation_space
        if isinstance(sp, gym.spaces.Dict):  # {"obs": Box, "state": Box} -> actor uses "obs"
            sp = sp["obs"]
        return int(np.prod(sp.shape))

    @staticmethod
    def _actor_obs(batch):
        obs = batch[Columns.OBS]
        if isinstance(obs, dict):
            obs = obs["obs"]
        return obs.float()

    def _forward(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: self.pi(self._actor_obs(batch))}


class ActorCriticModule(ActorModule, ValueFunctionAPI):
    """Actor + per-agent value head (independent PPO baseline)."""

    def setup(self):
        super().setup()
        if not self.inference_only:
            hid = list((self.model_config or {}).get("hiddens", [64, 64]))
            self.vf = _mlp(self._obs_dim(), hid, 1, act=self._act)

    def compute_values(self, batch, embeddings=None):
        return self.vf(self._actor_obs(batch)).squeeze(-1)


class SharedCriticModule(TorchRLModule):
    """Centralized critic V(global_state) -> (B, n_agents), in normalized space.

    model_config:
      agent_order: list of agent/module ids (column order of the output)
      hiddens: MLP sizes
      value_norm: bool (running mean/std of value targets, PopArt-lite)
    observation_space: Box(state_dim,)  (not an env space; just for sizing)
    """

    def setup(self):
        mc = self.model_config or {}
        self.agent_order = list(mc["agent_order"])
        self.value_norm = bool(mc.get("value_norm", True))
        hid = list(mc.get("hiddens", [128, 128]))
        self.state_dim = int(np.prod(self.observation_space.shape))
        self.vf = _mlp(self.state_dim, hid, len(self.agent_order), act=ACTIVATIONS[mc.get("activation", "tanh")])
        self.normalizer = ValueNormalizer(len(self.agent_order), beta=float(mc.get("value_norm_beta", 0.995)), enabled=self.value_norm)

    # -- value API (normalized space) --------------------------------------
    def compute_values(self, batch, embeddings=None):
        return self.vf(batch[CRITIC_STATE].float())

    def _forward(self, batch, **kwargs):
        # Env runners never build this module (learner_only=True); forward_train
        # is called by Learner._update for the critic's minibatch.
        return {Columns.VF_PREDS: self.compute_values(batch)}

    # -- value normalisation (see valuenorm.py) ---------------------------
    def denormalize(self, v):
        return self.normalizer.denormalize(v)

    def normalize(self, v):
        return self.normalizer.normalize(v)

    def update_stats(self, batch_sum, batch_sumsq, batch_count):
        self.normalizer.update(batch_sum, batch_sumsq, batch_count)

    def norm_stats(self):
        mean, std = self.normalizer.mean_std()
        return mean.cpu().numpy(), std.cpu().numpy()
