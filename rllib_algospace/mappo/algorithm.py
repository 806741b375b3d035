"""MAPPOConfig, MAPPO and MAPPOTorchLearner on Ray 2.60's new API stack.

The team is sampled as one single-agent env (``envs.market.team``) by RLlib's
single-agent env runner and acts through one ``TeamModule``
(``modules.py``): per-agent actors on their own observations and a
learner-only critic. The learner keeps MAPPO's semantics: each agent's PPO
ratio is clipped on its own (the product of the agents' ratios is never
clipped as one), advantages come per agent from the critic
(``TeamGAEConnector``), and the value loss is clipped and in normalised space.
``centralized_critic=False`` is independent PPO: per-agent critics on the
agents' own observations, on the same path.
"""
import copy
import logging
from pathlib import Path

import torch
import tree

from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.algorithms.ppo.ppo import (
    LEARNER_RESULTS_KL_KEY,
    LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY,
    PPO,
    PPOConfig,
)
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.learner import GeneralAdvantageEstimation
from ray.rllib.core import ALL_MODULES
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME
from ray.rllib.utils.torch_utils import explained_variance

from envs.market.trading import TRADING_ACTIONS_SCHEMA
from rllib_algospace.artifacts import checkpoint_problem, newest_complete_checkpoint, write_checkpoint_metadata
from rllib_algospace.mappo.connectors import OLD_VALUES_NORM, TeamGAEConnector
from rllib_algospace.mappo.modules import CHECKPOINT_FORMAT, CRITIC_INPUTS, TeamModule
from rllib_algospace.mappo.oom import OomSplitting
from rllib_algospace.mappo.valuenorm import clipped_value_loss


class MAPPOConfig(PPOConfig):
    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or MAPPO)
        self.centralized_critic = True
        self.critic_input = "state"  # "state": env.state(); "concat_obs": all agents' observations
        self.agent_order = None  # required: the agents, in the order of the env's action components
        self.obs_layout = None  # required: {agent: (start, stop)} of the team observation
        self.state_index = None  # required for critic_input="state": positions of the global state in it
        self.critic_hiddens = [256, 256]
        self.value_norm = True
        self.value_norm_beta = 0.995
        self.critic_value_clip = 0.2  # PPO-style clip around old preds (norm. space); None=off
        self.critic_loss_coeff = 1.0
        self.rule_agents = []  # agents acting by the rule baseline (no weights)
        self.frozen_agents = []  # agents whose weights do not train
        self.mappo_amp = None  # None | "bf16" | "fp16"  (autocast switch)
        self.learner_threads = None  # torch threads of a CPU learner (None: as Ray set OMP_NUM_THREADS)
        # The MAPPO paper's loss has no KL term (use_kl_loss=True adds RLlib's
        # adaptive KL penalty on the joint policy, the sum of the agents' KLs).
        self.use_kl_loss = False
        # Fine-tuning from a warm start (model_config["warm_start"]): the critic
        # learns alone for the first critic_warmup_steps env steps (the actors
        # stay the clone), then PPO adds teacher_kl_coeff * KL(teacher || agent)
        # per agent, the coefficient falling linearly to zero by
        # teacher_kl_steps env steps after the warm-up (0: constant).
        self.critic_warmup_steps = 0
        self.teacher_kl_coeff = 0.0
        self.teacher_kl_steps = 0
        # Auxiliary regime loss: regime_aux_coeff * cross-entropy between the
        # regime actor's logits and the ground-truth label, read from the team
        # observation at regime_label_index (rows with a label only).
        self.regime_aux_coeff = 0.0
        self.regime_label_index = None
        # The experiment folder (local storage) whose trial folders hold the
        # checkpoints: a trial (re)started by Tune continues from its newest
        # *complete* checkpoint there, whatever Tune's own record says.
        self.experiment_folder = None

    def mappo(
        self,
        *,
        centralized_critic=NotProvided,
        critic_input=NotProvided,
        agent_order=NotProvided,
        obs_layout=NotProvided,
        state_index=NotProvided,
        critic_hiddens=NotProvided,
        value_norm=NotProvided,
        value_norm_beta=NotProvided,
        critic_value_clip=NotProvided,
        critic_loss_coeff=NotProvided,
        rule_agents=NotProvided,
        frozen_agents=NotProvided,
        mappo_amp=NotProvided,
        learner_threads=NotProvided,
        critic_warmup_steps=NotProvided,
        teacher_kl_coeff=NotProvided,
        teacher_kl_steps=NotProvided,
        regime_aux_coeff=NotProvided,
        regime_label_index=NotProvided,
        experiment_folder=NotProvided,
    ) -> "MAPPOConfig":
        for k, v in dict(locals()).items():
            if k != "self" and v is not NotProvided:
                setattr(self, k, v)
        if self.state_index is not None:  # plain ints: the config is compared and serialised as data
            self.state_index = [int(i) for i in self.state_index]
        if self.obs_layout is not None:
            self.obs_layout = {str(k): [int(v[0]), int(v[1])] for k, v in self.obs_layout.items()}
        return self

    def get_default_learner_class(self):
        return MAPPOTorchLearner

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=TeamModule)

    @property
    def _model_config_auto_includes(self):
        # What TeamModule needs besides rl_module(model_config=...): hiddens, activation.
        return {
            **super()._model_config_auto_includes,
            "agents": list(self.agent_order or []),
            "layout": {k: list(v) for k, v in (self.obs_layout or {}).items()},
            "state_index": list(self.state_index or []),
            "centralized_critic": self.centralized_critic,
            "critic_input": self.critic_input,
            "critic_hiddens": list(self.critic_hiddens),
            "value_norm": self.value_norm,
            "value_norm_beta": self.value_norm_beta,
            "rule_agents": list(self.rule_agents),
            "frozen_agents": list(self.frozen_agents),
        }

    def validate(self) -> None:
        super().validate()
        if not self.agent_order or not self.obs_layout:
            self._value_error("MAPPO: set `agent_order` and `obs_layout` (see envs.market.team).")
        if self.centralized_critic and self.critic_input == "state" and self.state_index is None:
            self._value_error("MAPPO: critic_input='state' needs `state_index` (see envs.market.team).")
        if self.critic_input not in CRITIC_INPUTS:
            self._value_error(f"MAPPO: critic_input must be one of {CRITIC_INPUTS}, got {self.critic_input!r}")
        unknown = sorted((set(self.rule_agents) | set(self.frozen_agents)) - set(self.agent_order))
        if unknown:
            self._value_error(f"MAPPO: unknown agents {unknown} in rule_agents/frozen_agents")
        if self.regime_aux_coeff and self.regime_label_index is None:
            self._value_error("MAPPO: regime_aux_coeff > 0 needs `regime_label_index` (see envs.market.team).")
        if self.teacher_kl_coeff and not (self.model_config or {}).get("warm_start"):
            self._value_error("MAPPO: teacher_kl_coeff > 0 needs a teacher: set model_config['warm_start'] (a warm-start file)")

    def teacher_kl_coeff_at(self, lifetime_steps: float) -> float:
        """The teacher term's coefficient after ``lifetime_steps`` env steps."""
        if not self.teacher_kl_coeff:
            return 0.0
        after = lifetime_steps - self.critic_warmup_steps
        if not self.teacher_kl_steps:
            return float(self.teacher_kl_coeff)
        return float(self.teacher_kl_coeff) * min(1.0, max(0.0, 1.0 - after / self.teacher_kl_steps))


TEACHER_KL_KEY = "teacher_kl"
REGIME_AUX_KEY = "regime_aux_loss"
TEACHER_KL_COEFF_KEY = "teacher_kl_coeff"
CRITIC_WARMUP_KEY = "critic_warmup"
# The team module inside an algorithm checkpoint (RLlib's layout).
TEAM_MODULE_DIR = "learner_group/learner/rl_module/default_policy"
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
        never unpickle the algorithm, and the size of every file, so that a
        half-copied checkpoint is known as one (``artifacts``)."""
        super().save_checkpoint(checkpoint_dir)
        write_checkpoint_metadata(checkpoint_dir, algorithm_record(self), curriculum=getattr(self, "extra_state", {}).get("curriculum"))

    # ----------------------------------- resume from the newest complete checkpoint
    def setup(self, config) -> None:
        super().setup(config)
        # A trial Tune (re)starts without a checkpoint on record (killed after
        # a checkpoint folder was written but before Tune noted it) still
        # continues from what is on disk.
        folder = self._trial_folder()
        newest = newest_complete_checkpoint(folder) if folder is not None else None
        if newest is not None:
            self._continue_from(*newest, why="found on disk when the trial started")

    def restore(self, checkpoint_path):
        """Tune's restore, from the newest complete checkpoint of this trial
        when the one Tune recorded is missing, incomplete or older."""
        requested = _local_checkpoint_path(checkpoint_path)
        own = self._trial_folder()
        if requested is not None and (own is None or requested.parent == own):
            newest = newest_complete_checkpoint(requested.parent)
            problem = checkpoint_problem(requested) if requested.exists() else "it no longer exists"
            if newest is not None and (problem is not None or newest[1] != requested):
                why = f"Tune recorded {requested.name}: {problem or 'an older one'}"
                if getattr(self, "_continued_from", None) == newest[1]:
                    logger.warning("resume: continuing from %s (%s)", newest[1], why)
                    return None
                return self._continue_from(*newest, why=why)
        return super().restore(checkpoint_path)

    def _continue_from(self, iteration: int, checkpoint: Path, *, why: str) -> None:
        logger.warning("resume: continuing from %s (iteration %d; %s)", checkpoint, iteration, why)
        super().restore(str(checkpoint))
        self._iteration = int(iteration)  # Trainable's counter; a plain path carries no recorded result
        self._continued_from = checkpoint

    def _trial_folder(self) -> Path | None:
        """This trial's folder under ``experiment_folder``, or None. Tune
        runs the trial in a working folder of the same name as its folder in
        the storage (``logdir``); ``trial_id`` is no help: an Algorithm's
        config drops the trial info Tune passes, so it reads "default"."""
        root = getattr(self.config, "experiment_folder", None)
        if not root or not self.logdir:
            return None
        folder = Path(root) / Path(self.logdir).name
        return folder if folder.is_dir() else None


logger = logging.getLogger(__name__)


def _local_checkpoint_path(checkpoint) -> Path | None:
    """The local folder of what Tune hands ``restore`` (a path, a
    ``Checkpoint`` or a training result holding one), or None (remote storage)."""
    path = getattr(getattr(checkpoint, "checkpoint", checkpoint), "path", checkpoint)
    filesystem = getattr(getattr(checkpoint, "checkpoint", checkpoint), "filesystem", None)
    if filesystem is not None and getattr(filesystem, "type_name", "local") != "local":
        return None
    return Path(path) if isinstance(path, (str, Path)) else None


def algorithm_record(algo) -> dict:
    """What this algorithm is, for the checkpoint's ``algospace.json``
    (``artifacts.write_checkpoint_metadata`` adds the app's part)."""
    config = algo.config
    return {
        "format": CHECKPOINT_FORMAT,
        "actions_schema": TRADING_ACTIONS_SCHEMA,
        "algorithm": "MAPPO" if config.centralized_critic else "IPPO",
        "centralized_critic": bool(config.centralized_critic),
        "critic_input": config.critic_input,
        "agents": list(config.agent_order or []),
        "module": TeamModule.__name__,
        "module_dir": TEAM_MODULE_DIR,
        "env_config": dict(config.env_config),
        "evaluation_env_config": dict((config.evaluation_config or {}).get("env_config", {}) or {}),
        "training_iteration": int(algo.iteration),
        "model_config": dict(config.model_config or {}),
    }


class EpochMinibatches:
    """Minibatches of a train batch: every epoch a fresh permutation cut into
    ``round(rows / minibatch_size)`` parts, so each row is used exactly once
    per epoch. RLlib's ``MiniBatchCyclicIterator`` copies the whole batch to
    shuffle it and again to wrap around its end; with the team's wide
    observations those copies cost a third of the learner's time. One
    minibatch per epoch is the batch itself (no copy; row order does not
    change its gradient)."""

    def __init__(self, batch: MultiAgentBatch, *, num_epochs: int, minibatch_size: int | None):
        self.batch = batch
        self.num_epochs = max(1, int(num_epochs))
        self.minibatch_size = minibatch_size

    def __iter__(self):
        rows = max(len(b) for b in self.batch.policy_batches.values())
        # round, not ceil: the bootstrap rows RLlib adds to every episode chunk
        # must not add a small extra minibatch
        parts = max(1, round(rows / (self.minibatch_size or rows)))
        for _ in range(self.num_epochs):
            if parts == 1:
                yield self.batch
                continue
            order = torch.randperm(rows)
            for i in range(parts):
                index = order[i * rows // parts : (i + 1) * rows // parts]
                policy_batches = {
                    mid: SampleBatch(tree.map_structure(lambda v, index=index: v[index.to(v.device)] if torch.is_tensor(v) else v[index.numpy()], dict(b)))
                    for mid, b in self.batch.policy_batches.items()
                }
                yield MultiAgentBatch(policy_batches, env_steps=len(index))


class MAPPOTorchLearner(OomSplitting, PPOTorchLearner):
    def build(self) -> None:
        # Ray starts a trial's process with OMP_NUM_THREADS set to the CPUs
        # it asked for (one when env runners hold the other cores): a CPU
        # learner that shares the cores with the (then idle) env runners is
        # told how many threads to use.
        super().build()  # PPOLearner.build appends GeneralAdvantageEstimation
        if self.config.learner_threads and (not isinstance(self._device, torch.device) or self._device.type == "cpu"):
            torch.set_num_threads(int(self.config.learner_threads))
        self._lifetime_steps = 0.0
        self._teacher = None
        if self.config.teacher_kl_coeff:
            from rllib_algospace.teacher import build_actors, load_warm_start

            actors = build_actors(load_warm_start(self.config.model_config["warm_start"]))
            self._teacher = torch.nn.ModuleDict(actors).to(self._device if isinstance(self._device, torch.device) else "cpu")
            self._teacher.requires_grad_(False)
        pipe = self._learner_connector
        if pipe is None:  # (aggregator actors -> no learner pipeline here)
            return
        idx = [i for i, c in enumerate(pipe.connectors) if type(c) is GeneralAdvantageEstimation]
        assert len(idx) == 1, f"expected one GAE piece in {pipe}"
        pipe.connectors[idx[0]] = TeamGAEConnector(gamma=self.config.gamma, lambda_=self.config.lambda_)

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        # One Adam per trainable actor and one for the critic, as when each
        # agent was its own module: RLlib clips the gradient norm per
        # optimizer, so the critic's large gradients never shrink the actors'
        # steps. Frozen actors get none (not even Adam's state may move them).
        module = self._module[module_id].unwrapped()
        parts = {f"actor_{agent}": module.actors[agent] for agent in module.trainable_agents()}
        parts["critic"] = module.critic
        for name, part in parts.items():
            params = [p for p in part.parameters() if p.requires_grad]
            if params:
                self.register_optimizer(module_id=module_id, optimizer_name=name, optimizer=torch.optim.Adam(params), params=params, lr_or_lr_schedule=config.lr)

    def _create_iterator_if_necessary(self, *, training_data, num_total_minibatches=0, num_epochs=1, minibatch_size=None, shuffle_batch_per_epoch=False, **kwargs):
        if training_data.data_iterators or num_total_minibatches:
            return super()._create_iterator_if_necessary(
                training_data=training_data,
                num_total_minibatches=num_total_minibatches,
                num_epochs=num_epochs,
                minibatch_size=minibatch_size,
                shuffle_batch_per_epoch=shuffle_batch_per_epoch,
                **kwargs,
            )
        batch = self._make_batch_if_necessary(training_data=training_data)  # runs the learner connector
        if not batch.policy_batches:
            return {}
        return EpochMinibatches(batch, num_epochs=num_epochs, minibatch_size=minibatch_size)

    def before_gradient_based_update(self, *, timesteps):
        super().before_gradient_based_update(timesteps=timesteps)
        self._lifetime_steps = float(timesteps.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0) or 0)

    # --------------------------------------------------------------- losses
    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        """PPO for every trainable agent, each with its own clipped ratio and
        advantage, plus the critic's clipped value loss; during the critic
        warm-up only the value loss, and after it the teacher term."""
        module = self.module[module_id].unwrapped()
        warming_up = bool(config.critic_warmup_steps) and self._lifetime_steps <= config.critic_warmup_steps
        teacher_coeff = 0.0 if warming_up or self._teacher is None else config.teacher_kl_coeff_at(self._lifetime_steps)
        mask = batch[Columns.LOSS_MASK].bool() if Columns.LOSS_MASK in batch else None

        def masked_mean(x):
            return x[mask].mean() if mask is not None else x.mean()

        new_logits = module.split_logits(fwd_out[Columns.ACTION_DIST_INPUTS].float())
        old_logits = module.split_logits(batch[Columns.ACTION_DIST_INPUTS].float())
        actions = batch[Columns.ACTIONS].long()
        advantages = batch[Postprocessing.ADVANTAGES]
        entropy_coeff = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        total = torch.zeros((), device=advantages.device)
        joint_kl = torch.zeros((), device=advantages.device)  # the sum of the agents' KLs
        obs = batch[Columns.OBS].float()
        for i, agent in enumerate(module.agents):
            if agent in module.frozen_agents or warming_up:
                continue
            new = torch.distributions.Categorical(logits=new_logits[i])
            old = torch.distributions.Categorical(logits=old_logits[i])
            ratio = torch.exp(new.log_prob(actions[:, i]) - old.log_prob(actions[:, i]))
            adv = advantages[:, i]
            surrogate = torch.min(adv * ratio, adv * torch.clamp(ratio, 1 - config.clip_param, 1 + config.clip_param))
            policy_loss = -masked_mean(surrogate)
            entropy = masked_mean(new.entropy())
            kl = masked_mean(torch.distributions.kl_divergence(old, new))
            joint_kl = joint_kl + kl
            total = total + policy_loss - entropy_coeff * entropy
            stats = {POLICY_LOSS_KEY: policy_loss, ENTROPY_KEY: entropy, LEARNER_RESULTS_KL_KEY: kl}
            if teacher_coeff > 0.0:
                with torch.no_grad():
                    teacher = torch.distributions.Categorical(logits=self._teacher[agent](module.agent_obs(obs, agent)).float())
                teacher_kl = masked_mean(torch.distributions.kl_divergence(teacher, new))
                total = total + teacher_coeff * teacher_kl
                stats[TEACHER_KL_KEY] = teacher_kl
            if agent == "regime" and config.regime_aux_coeff:
                labels = obs[:, config.regime_label_index].long()
                has = labels >= 0
                if mask is not None:
                    has = has & mask
                if bool(has.any()):
                    aux = torch.nn.functional.cross_entropy(new_logits[i][has], labels[has])
                    total = total + config.regime_aux_coeff * aux
                    stats[REGIME_AUX_KEY] = aux
            self.metrics.log_dict(stats, key=(module_id, agent), window=1)
        if warming_up:
            # Keep every trainable actor in the graph with a zero gradient: DDP
            # (several learners) requires each parameter to take part in a step.
            total = total + 0.0 * fwd_out[Columns.ACTION_DIST_INPUTS].sum()
        if config.use_kl_loss:
            # RLlib adapts this coefficient to the joint policy's KL, logged below.
            total = total + self.curr_kl_coeffs_per_module[module_id] * joint_kl

        values = fwd_out[Columns.VF_PREDS].float()
        targets = batch[Postprocessing.VALUE_TARGETS]
        valid = mask if mask is not None else torch.ones_like(targets[:, 0], dtype=torch.bool)
        value_loss = clipped_value_loss(values, batch[OLD_VALUES_NORM], targets, valid, self.config.critic_value_clip)
        total = total + self.config.critic_loss_coeff * value_loss
        self.metrics.log_dict(
            {
                TEACHER_KL_COEFF_KEY: teacher_coeff,
                CRITIC_WARMUP_KEY: float(warming_up),
                VF_LOSS_KEY: value_loss,
                LEARNER_RESULTS_KL_KEY: joint_kl,
                LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY: explained_variance(targets[valid].reshape(-1), values.detach()[valid].reshape(-1)),
            },
            key=module_id,
            window=1,
        )
        return total

    # ------------------------------------------------ mixed precision switch
    def _amp(self):
        amp = self.config.mappo_amp
        if not amp:
            return None
        dev = self._device.type if isinstance(self._device, torch.device) else "cpu"
        return dev, (torch.bfloat16 if amp == "bf16" else torch.float16)

    def _update(self, batch):
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
