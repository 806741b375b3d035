"""MAPPOConfig, MAPPO and MAPPOTorchLearner on Ray 2.60's new API stack.

centralized_critic=True : actors = `ActorModule` (policy only), one learner-only
    `SharedCriticModule` (id "shared_critic"), GAE replaced by MAPPOGAEConnector.
centralized_critic=False: actors = `ActorCriticModule` -> plain independent PPO
    (RLlib's GeneralAdvantageEstimation + PPO vf loss), same actor MLP.
"""
import copy

import gymnasium as gym
import numpy as np
import torch

from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.algorithms.ppo.ppo import (
    LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY,
    PPO,
    PPOConfig,
)
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.learner import GeneralAdvantageEstimation
from ray.rllib.core import ALL_MODULES
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import VF_LOSS_KEY
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.torch_utils import explained_variance

from rllib_algospace.mappo.oom import OomSplitting
from rllib_algospace.mappo.valuenorm import clipped_value_loss
from rllib_algospace.mappo.connectors import BootstrapTruncatedEpisodes, MAPPOGAEConnector
from rllib_algospace.mappo.modules import (
    CRITIC_ID,
    OLD_VALUES_NORM,
    ActorCriticModule,
    ActorModule,
    SharedCriticModule,
)


class MAPPOConfig(PPOConfig):
    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or MAPPO)
        self.centralized_critic = True
        # "state_obs":  Dict obs {"obs": .., "state": ..} (actors use only "obs");
        #               it survives episode slicing across several learners.
        # "concat_obs": the agents' observations concatenated in `agent_order`.
        self.critic_input = "state_obs"
        self.state_dim = None  # required for critic_input="state_obs"
        self.agent_order = None  # required: fixed column order of the critic
        self.critic_hiddens = [128, 128]
        self.critic_activation = "tanh"
        self.value_norm = True
        self.value_norm_beta = 0.995
        self.critic_value_clip = 0.2  # PPO-style clip around old preds (norm. space); None=off
        self.critic_loss_coeff = 1.0
        self.mappo_debug_checks = False
        self.mappo_amp = None  # None | "bf16" | "fp16"  (autocast switch)
        # Work around Ray 2.60 marking all-agents-truncated episodes as terminated
        # (applies to BOTH modes, so the IPPO baseline gets the same treatment).
        self.bootstrap_truncated = True
        # Keep training the critic even if `policies_to_train` omits it.
        self.always_train_critic = True

    def mappo(
        self,
        *,
        centralized_critic=NotProvided,
        critic_input=NotProvided,
        state_dim=NotProvided,
        agent_order=NotProvided,
        critic_hiddens=NotProvided,
        critic_activation=NotProvided,
        value_norm=NotProvided,
        value_norm_beta=NotProvided,
        critic_value_clip=NotProvided,
        critic_loss_coeff=NotProvided,
        mappo_debug_checks=NotProvided,
        mappo_amp=NotProvided,
        bootstrap_truncated=NotProvided,
        always_train_critic=NotProvided,
    ) -> "MAPPOConfig":
        for k, v in dict(locals()).items():
            if k != "self" and v is not NotProvided:
                setattr(self, k, v)
        # Actors have no value head in MAPPO mode -> PPO loss w/o vf term.
        self.use_critic = not self.centralized_critic
        return self

    def get_default_learner_class(self):
        return MAPPOTorchLearner

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(
            module_class=ActorModule if self.centralized_critic else ActorCriticModule
        )

    def _critic_spec(self, agent_specs) -> RLModuleSpec:
        if self.critic_input == "state_obs":
            dim = int(self.state_dim)
        else:
            sp = lambda a: agent_specs[a].observation_space
            dim = int(sum(
                np.prod((sp(a)["obs"] if isinstance(sp(a), gym.spaces.Dict) else sp(a)).shape)
                for a in self.agent_order
            ))
        return RLModuleSpec(
            module_class=SharedCriticModule,
            observation_space=gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32),
            action_space=gym.spaces.Discrete(1),  # unused
            learner_only=True,  # never built on EnvRunners
            model_config={
                "agent_order": list(self.agent_order),
                "hiddens": list(self.critic_hiddens),
                "activation": self.critic_activation,
                "value_norm": self.value_norm,
                "value_norm_beta": self.value_norm_beta,
            },
        )

    def get_multi_rl_module_spec(self, *, env=None, spaces=None, inference_only=False, **kw):
        spec = super().get_multi_rl_module_spec(
            env=env, spaces=spaces, inference_only=inference_only, **kw
        )
        # Inject the learner-only critic (EnvRunners call this w/ inference_only=True).
        if self.centralized_critic and not inference_only and CRITIC_ID not in spec.rl_module_specs:
            spec.add_modules({CRITIC_ID: self._critic_spec(spec.rl_module_specs)})
        return spec

    def validate(self) -> None:
        super().validate()
        if self.centralized_critic:
            if not self.agent_order:
                self._value_error("MAPPO: set `agent_order` (fixed list of agent ids).")
            if self.critic_input not in ("state_obs", "concat_obs"):
                self._value_error(f"MAPPO: critic_input must be 'state_obs' or 'concat_obs', got {self.critic_input!r}")
            if self.critic_input == "state_obs" and not self.state_dim:
                self._value_error("MAPPO: critic_input='state_obs' needs `state_dim`.")
            if self.use_critic:
                self._value_error("MAPPO: use_critic must be False (set via .mappo()).")


METADATA_FILE = "algospace.json"
# Key of the algorithm state (algorithm_state.pkl) holding `MAPPO.extra_state`.
EXTRA_STATE_KEY = "algospace_extra_state"


class MAPPO(PPO):
    @classmethod
    def get_default_config(cls) -> MAPPOConfig:
        return MAPPOConfig()

    # ------------------------------------------- features' checkpointed state
    @property
    def extra_state(self) -> dict:
        """Plain, picklable state of this run's features (one key each, e.g.
        ``"curriculum"``): saved with every checkpoint (Tune's and
        ``save_to_path``) and restored with it. After a restore, each callback
        object with an ``on_extra_state_restored(algorithm=...)`` method is told."""
        return self.__dict__.setdefault("_algospace_extra_state", {})

    def get_state(self, components=None, *, not_components=None, **kwargs):
        state = super().get_state(components, not_components=not_components, **kwargs)
        if self._check_component(EXTRA_STATE_KEY, components, not_components):
            state[EXTRA_STATE_KEY] = copy.deepcopy(self.extra_state)
        return state

    def set_state(self, state) -> None:
        super().set_state(state)
        if EXTRA_STATE_KEY in state:
            self.extra_state.clear()
            self.extra_state.update(copy.deepcopy(state[EXTRA_STATE_KEY]))
            callbacks = self.callbacks if isinstance(self.callbacks, (list, tuple)) else [self.callbacks]
            for callback in callbacks:
                hook = getattr(callback, "on_extra_state_restored", None)
                if hook is not None:
                    hook(algorithm=self)

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        """RLlib's checkpoint, plus ``algospace.json``: what evaluation and
        export need (env config, agents, module paths) as plain JSON, so they
        never unpickle the algorithm."""
        super().save_checkpoint(checkpoint_dir)
        write_checkpoint_metadata(self, checkpoint_dir)


def write_checkpoint_metadata(algo, checkpoint_dir: str) -> None:
    import json
    import os

    config = algo.config
    env_config = {k: v for k, v in dict(config.env_config).items()}
    meta = {
        "format": 1,
        "algorithm": "MAPPO" if config.centralized_critic else "IPPO",
        "centralized_critic": bool(config.centralized_critic),
        "critic_input": config.critic_input,
        "agents": list(config.agent_order or []),
        "modules_dir": "learner_group/learner/rl_module",
        "env_config": env_config,
        "evaluation_env_config": dict((config.evaluation_config or {}).get("env_config", {}) or {}),
        "training_iteration": int(algo.iteration),
        "model_config": dict(config.model_config or {}),
    }
    curriculum = getattr(algo, "extra_state", {}).get("curriculum")
    if curriculum:
        # The team was last trained on the current stage's market: evaluate there.
        meta["curriculum"] = {k: curriculum[k] for k in ("stage", "task") if k in curriculum}
        tasks = env_config.get("tasks") or {}
        if curriculum.get("task") in tasks:
            env_config["task"] = curriculum["task"]
            env_config["data"] = tasks[curriculum["task"]]
    tmp = os.path.join(checkpoint_dir, METADATA_FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=2, default=str)
    os.replace(tmp, os.path.join(checkpoint_dir, METADATA_FILE))


class MAPPOTorchLearner(OomSplitting, PPOTorchLearner):
    # ---------------------------------------------------------------- build
    def build(self) -> None:
        super().build()  # PPOLearner.build appends GeneralAdvantageEstimation
        pipe = self._learner_connector
        if pipe is None:  # (aggregator actors -> no learner pipeline here)
            return
        idx = [i for i, c in enumerate(pipe.connectors) if type(c) is GeneralAdvantageEstimation]
        assert len(idx) == 1, f"expected one GAE piece in {pipe}"
        if self.config.centralized_critic:
            pipe.connectors[idx[0]] = MAPPOGAEConnector(
                gamma=self.config.gamma,
                lambda_=self.config.lambda_,
                agent_order=self.config.agent_order,
                critic_input=self.config.critic_input,
                debug_checks=self.config.mappo_debug_checks,
            )
        if self.config.bootstrap_truncated:
            # NB: ConnectorPipelineV2.insert_before() silently inserts before the LAST
            # piece if the name is not found (connector_pipeline_v2.py:189-196).
            pipe.connectors.insert(idx[0], BootstrapTruncatedEpisodes())

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        # Modules without parameters (rllib_algospace.frozen.RuleActorModule, the
        # fixed rule policies of frozen agents) have nothing to optimise (and
        # torch.optim.Adam([]) raises).
        if not _has_trainable_params(self._module[module_id]):
            return
        super().configure_optimizers_for_module(module_id=module_id, config=config)

    def _make_modules_ddp_if_necessary(self) -> None:
        # As TorchLearner's, but modules without trainable parameters stay
        # unwrapped (DDP refuses them).
        from ray.rllib.core.rl_module.multi_rl_module import MultiRLModule
        from ray.rllib.core.rl_module.torch.torch_rl_module import TorchDDPRLModule, TorchRLModule

        if self.config.num_learners <= 1 or not isinstance(self._module, MultiRLModule):
            return super()._make_modules_ddp_if_necessary()
        for key in list(self._module.keys()):
            sub_module = self._module[key]
            if isinstance(sub_module, TorchRLModule) and _has_trainable_params(sub_module):
                self._module.add_module(key, TorchDDPRLModule(sub_module, **self.config.torch_ddp_kwargs), override=True)

    @classmethod
    def rl_module_required_apis(cls) -> list:
        # PPOLearner requires ValueFunctionAPI; modules failing this check get NO
        # optimizer (learner.py:485) -> actors would silently never train.
        return []

    def should_module_be_updated(self, module_id, multi_agent_batch=None):
        # Never let `policies_to_train` drop the critic's batch (learner.py:1209).
        if (
            module_id == CRITIC_ID
            and self.config.centralized_critic
            and self.config.always_train_critic
        ):
            return True
        return super().should_module_be_updated(module_id, multi_agent_batch)

    # --------------------------------------------------------------- losses
    def compute_losses(self, *, fwd_out, batch):
        if not self.config.centralized_critic:
            return super().compute_losses(fwd_out=fwd_out, batch=batch)
        losses = {}
        for mid in fwd_out:
            if mid == CRITIC_ID:
                losses[mid] = self._critic_loss(batch[mid], fwd_out[mid])
            else:
                losses[mid] = self.compute_loss_for_module(
                    module_id=mid,
                    config=self.config.get_config_for_module(mid),
                    batch=batch[mid],
                    fwd_out=fwd_out[mid],
                )
        return losses

    def _critic_loss(self, batch, fwd_out):
        v = fwd_out[Columns.VF_PREDS].float()  # (B, n)  normalized space
        tgt = batch[Postprocessing.VALUE_TARGETS]
        mask = batch[Columns.LOSS_MASK].bool()
        loss = clipped_value_loss(v, batch[OLD_VALUES_NORM], tgt, mask, self.config.critic_value_clip)
        self.metrics.log_dict(
            {
                VF_LOSS_KEY: loss,
                LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY: explained_variance(
                    tgt[mask].reshape(-1), v[mask].reshape(-1)
                ),
            },
            key=CRITIC_ID,
            window=1,
        )
        return self.config.critic_loss_coeff * loss

    # ------------------------------------------------ mixed precision switch
    def _amp(self):
        amp = self.config.mappo_amp
        if not amp:
            return None
        dev = self._device.type if isinstance(self._device, torch.device) else "cpu"
        return dev, (torch.bfloat16 if amp == "bf16" else torch.float16)

    def _update(self, batch):
        # Deterministic module order for forward/backward. The batch's module order
        # comes from episode iteration (MultiAgentEpisode.agent_ids is a *set*), so it
        # differs between Learner processes; with num_learners > 1 the per-module DDP
        # gradient all-reduces then run in different orders on different ranks ->
        # gloo "collective mismatch" abort (NCCL: hang). Sorting fixes it.
        batch = {k: batch[k] for k in sorted(batch)}
        amp = self._amp()
        if amp is None:
            return super()._update(batch)
        with torch.autocast(device_type=amp[0], dtype=amp[1]):
            return super()._update(batch)  # forward_train + losses under autocast

    def after_gradient_based_update(self, *, timesteps):
        super().after_gradient_based_update(timesteps=timesteps)
        # GPU memory and the OOM minibatch split, in the results of a GPU run.
        device = self._device if isinstance(self._device, torch.device) else None
        if device is not None and device.type == "cuda":
            self.metrics.log_value((ALL_MODULES, "gpu_memory_peak_mb"), torch.cuda.max_memory_allocated(device) / 2**20, window=1)
            self.metrics.log_value((ALL_MODULES, "gpu_memory_reserved_mb"), torch.cuda.memory_reserved(device) / 2**20, window=1)
        self.metrics.log_value((ALL_MODULES, "minibatch_split_parts"), self._oom_parts, window=1)

    def compute_gradients(self, loss_per_module, **kwargs):
        amp = self._amp()
        if amp is None:
            return super().compute_gradients(loss_per_module, **kwargs)
        with torch.autocast(device_type=amp[0], enabled=False):  # backward in fp32
            return super().compute_gradients(
                {k: v.float() for k, v in loss_per_module.items()}, **kwargs
            )

    def postprocess_gradients(self, gradients_dict):
        # RLlib clips (grad_clip) BEFORE scaler.step() unscales -> it would clip the
        # *scaled* grads. Unscale in place first (scaler.step then skips unscaling).
        if self._grad_scalers is not None:
            for mid, names in self._module_optimizers.items():
                for name in names:
                    self._grad_scalers[mid].unscale_(self.get_optimizer(mid, name))
        return super().postprocess_gradients(gradients_dict)


def _has_trainable_params(module) -> bool:
    return any(p.requires_grad for p in module.parameters())
