"""The team's RLModule (Ray 2.60 new API stack, torch).

``TeamModule`` is one RLModule for the whole team, sampled on RLlib's
single-agent env runner over ``envs.market.team.TeamMarketEnv`` (one flat
observation, one ``MultiDiscrete`` action). Inside it the agents stay apart,
as MAPPO has them:

- ``actors[agent]``: each agent's policy network, fed ONLY its own slice of the
  team observation (decentralised execution: export and the live path run each
  actor alone). A frozen agent's actor has no trainable parameters; a rule
  agent's actor is ``RuleActor`` (the rule baseline as logits).
- ``critic``: learner-only (``InferenceOnlyAPI``: env runners never build or
  receive it). Centralized: one MLP over the global state (or all agents'
  observations) giving one value per agent. Independent PPO
  (``centralized_critic: false``): one MLP per agent over its own observation.
  Values are in normalised space; ``value_normalizer`` holds the running
  statistics of the value targets (buffers, checkpointed with the module).

The action distribution is a product of per-agent categoricals; the learner
(``algorithm.py``) clips each agent's PPO ratio on its own.
"""
from __future__ import annotations

import os
from typing import Any, Dict

import numpy as np
import torch
from torch import nn

from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.inference_only_api import InferenceOnlyAPI
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.models.torch.torch_distributions import TorchMultiCategorical

from envs.market.env import team_input_scaling
from rllib_algospace.mappo.valuenorm import ValueNormalizer
from rllib_algospace.networks import Actor, InputScaling, mlp

# Schema of the team module's checkpoints (``algospace.json`` "format"); a
# checkpoint of another format is refused with one line, never misread.
# 3: the actions are target states (``envs.market.trading.TRADING_ACTIONS_SCHEMA``).
# 4: actors and critics scale their inputs (``networks.InputScaling``).
CHECKPOINT_FORMAT = 4
CRITIC_INPUTS = ("state", "concat_obs")


class RuleActor(nn.Module):
    """The rule baseline's choice for one agent as logits: (almost) all
    probability on ``rule_action(agent, obs)``. No parameters."""

    LOGIT_GAP = 30.0  # the other actions get probability ~e^-30 each

    def __init__(self, agent: str, num_actions: int):
        super().__init__()
        self.agent = agent
        self.num_actions = num_actions

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        from rllib_algospace.policies import rule_action

        rows = obs.detach().cpu().numpy().astype(np.float32, copy=False).reshape(-1, obs.shape[-1])
        actions = np.fromiter((rule_action(self.agent, row) for row in rows), dtype=np.int64, count=len(rows))
        logits = np.full((len(rows), self.num_actions), -self.LOGIT_GAP, dtype=np.float32)
        logits[np.arange(len(rows)), actions] = 0.0
        return torch.from_numpy(logits.reshape(*obs.shape[:-1], self.num_actions)).to(obs.device)


class CentralCritic(nn.Module):
    """V(global input) -> one value per agent. The input is the team
    observation at ``index`` (the global state), or its first ``concat``
    columns (all agents' observations)."""

    def __init__(self, index, concat: int | None, n_agents: int, hiddens, activation: str, scaling=None):
        super().__init__()
        self.concat = concat
        self.register_buffer("index", torch.as_tensor(np.asarray(index if index is not None else [], dtype=np.int64)), persistent=False)
        in_dim = concat if concat is not None else len(self.index)
        self.scale_in = InputScaling(in_dim)
        if scaling is not None:
            shift, scale = (np.asarray(v, dtype=np.float32) for v in scaling)
            pick = np.arange(concat) if concat is not None else np.asarray(index, dtype=np.int64)
            self.scale_in.set(shift[pick], scale[pick])
        self.vf = mlp(in_dim, hiddens, n_agents, activation)

    def forward(self, obs: torch.Tensor, layout: dict) -> torch.Tensor:
        x = obs[..., : self.concat] if self.concat is not None else obs.index_select(-1, self.index)
        return self.vf(self.scale_in(x))


class AgentCritics(nn.Module):
    """Independent PPO: V_i(own observation of agent i), stacked per agent."""

    def __init__(self, agents, layout: dict, hiddens, activation: str, scaling=None):
        super().__init__()
        self.agents = list(agents)
        self.vfs = nn.ModuleDict()
        for a in self.agents:
            start, stop = layout[a]
            scale_in = InputScaling(stop - start)
            if scaling is not None:
                scale_in.set(*(np.asarray(v, dtype=np.float32)[start:stop] for v in scaling))
            self.vfs[a] = nn.Sequential(scale_in, mlp(stop - start, hiddens, 1, activation))

    def forward(self, obs: torch.Tensor, layout: dict) -> torch.Tensor:
        return torch.cat([self.vfs[a](obs[..., layout[a][0] : layout[a][1]]) for a in self.agents], dim=-1)


class TeamModule(TorchRLModule, ValueFunctionAPI, InferenceOnlyAPI):
    """See the module docstring. ``model_config`` keys:

    ``agents`` (order of the action components), ``layout`` ({agent:
    [start, stop]} of the team observation), ``state_index`` (positions of
    the global state in it), ``hiddens``, ``activation``,
    ``centralized_critic``, ``critic_input`` ("state" | "concat_obs"),
    ``critic_hiddens``, ``value_norm``, ``value_norm_beta``, ``rule_agents``
    (act by the rule), ``frozen_agents`` (keep their weights), ``warm_start``
    (a warm-start file of ``rllib_algospace.teacher``: the actors start from
    its cloned weights; a checkpoint restored later replaces them),
    ``input_statistics`` (``envs.market.env.input_statistics`` of the
    training data: each window's column means and deviations on its train
    split; every network scales its slice of the team observation by them,
    ``team_input_scaling``; absent: identity).
    """

    def setup(self):
        mc = self.model_config
        self.agents = list(mc["agents"])
        self.layout = {k: (int(v[0]), int(v[1])) for k, v in mc["layout"].items()}
        self.action_sizes = [int(n) for n in self.action_space.nvec]
        activation = mc.get("activation", "tanh")
        rule_agents = set(mc.get("rule_agents") or ())
        self.frozen_agents = sorted(set(mc.get("frozen_agents") or ()) | rule_agents)
        statistics = mc.get("input_statistics")
        scaling = team_input_scaling(statistics) if statistics else None
        self.actors = nn.ModuleDict()
        for agent, n in zip(self.agents, self.action_sizes):
            start, stop = self.layout[agent]
            if agent in rule_agents:
                self.actors[agent] = RuleActor(agent, n)  # the rule reads raw feature values
            else:
                own = tuple(np.asarray(v, dtype=np.float32)[start:stop] for v in scaling) if scaling else None
                self.actors[agent] = Actor(stop - start, n, list(mc.get("hiddens", [128, 128])), activation, scaling=own)
        warm_start = mc.get("warm_start")
        # Missing file: an env runner on another node (the learner's weights
        # reach it by sync), or a checkpoint loaded elsewhere (its own weights
        # replace these). A fresh run checks the file before Ray starts.
        if warm_start and os.path.exists(warm_start):
            from rllib_algospace.teacher import load_warm_start

            payload = load_warm_start(warm_start, hiddens=list(mc.get("hiddens", [128, 128])), activation=activation)
            for agent in self.agents:
                if agent not in rule_agents:
                    self.actors[agent].load_state_dict(payload["actors"][agent])
        for agent in self.frozen_agents:
            self.actors[agent].requires_grad_(False)
        self.centralized_critic = bool(mc.get("centralized_critic", True))
        if self.inference_only:
            return
        critic_hiddens = list(mc.get("critic_hiddens", [256, 256]))
        if self.centralized_critic:
            if mc.get("critic_input", "state") == "state":
                self.critic = CentralCritic(mc["state_index"], None, len(self.agents), critic_hiddens, activation, scaling)
            else:  # the agents' observations, which come first in the team observation
                concat = max(self.layout[a][1] for a in self.agents)
                self.critic = CentralCritic(None, concat, len(self.agents), critic_hiddens, activation, scaling)
        else:
            self.critic = AgentCritics(self.agents, self.layout, critic_hiddens, activation, scaling)
        self.value_normalizer = ValueNormalizer(
            len(self.agents), beta=float(mc.get("value_norm_beta", 0.995)), enabled=bool(mc.get("value_norm", True))
        )

    # -- acting ---------------------------------------------------------------
    def agent_obs(self, obs: torch.Tensor, agent: str) -> torch.Tensor:
        """Agent ``agent``'s own observation, cut from the team observation."""
        start, stop = self.layout[agent]
        return obs[..., start:stop]

    def agent_logits(self, obs: torch.Tensor) -> list[torch.Tensor]:
        obs = obs.float()
        return [self.actors[a](self.agent_obs(obs, a)) for a in self.agents]

    def _forward(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        return {Columns.ACTION_DIST_INPUTS: torch.cat(self.agent_logits(batch[Columns.OBS]), dim=-1)}

    def _forward_train(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        # The critic's values in the same forward pass, so that with several
        # learners every parameter goes through the DDP-wrapped forward.
        out = self._forward(batch)
        out[Columns.VF_PREDS] = self.compute_values(batch)
        return out

    def get_inference_action_dist_cls(self):
        return TorchMultiCategorical.get_partial_dist_cls(input_lens=self.action_sizes)

    get_exploration_action_dist_cls = get_inference_action_dist_cls
    get_train_action_dist_cls = get_inference_action_dist_cls

    def split_logits(self, logits: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.split(logits, self.action_sizes, dim=-1))

    def trainable_agents(self) -> list[str]:
        return [a for a in self.agents if a not in self.frozen_agents]

    # -- the critic (learner only) ------------------------------------------------
    def compute_values(self, batch, embeddings=None):
        """``(B, n_agents)`` values in normalised space."""
        return self.critic(batch[Columns.OBS].float(), self.layout)

    def get_non_inference_attributes(self) -> list[str]:
        return ["critic", "value_normalizer"]
