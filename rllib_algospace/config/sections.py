"""The YAML sections of an experiment as frozen dataclasses: each key's
default, kind and the checks across its keys (``TrainConfig`` assembles them)."""
from __future__ import annotations

import difflib

from dataclasses import dataclass, field, fields
from typing import Any, Mapping
from rllib_algospace.config.values import ACTIVATIONS, AGENT_NAMES, AutoOr, Bool, CRITIC_INPUTS, ConfigContext, DATA_PRESETS, Duration, FROZEN_POLICIES, Float, Hiddens, Int, Kind, SCORE_MODES, SPLITS, Str, TEACHER_NAMES, TIMESTEPS_RESULT_KEY, VALIDATION_METRICS, as_mapping, check_experiment_name, check_local_file_name, check_warm_start, is_uri, normalize_local_path, normalize_storage_path, short_repr


# ---------------------------------------------------------------------------
# The sections
# ---------------------------------------------------------------------------
def option(default: Any, kind: Kind, **kw) -> Any:
    if isinstance(default, (list, dict)):
        raise TypeError("use a tuple default")
    return field(default=default, metadata={"kind": kind}, **kw)


def section_field(cls: type) -> Any:
    return field(default_factory=cls, metadata={"section": cls})


@dataclass(frozen=True)
class StopSection:
    """When a trial stops: the first of these reached (null = not used; at least one is set)."""

    training_iteration: int | None = option(200, Int(lo=1, optional=True))
    timesteps_total: int | None = option(None, Int(lo=1, optional=True))  # env steps sampled
    time_budget: float | None = option(None, Duration(optional=True))  # seconds

    def _cross(self, prefix: str, ctx: "ConfigContext") -> None:
        if self.training_iteration is None and self.timesteps_total is None and self.time_budget is None:
            ctx.fail(prefix, "set at least one of training_iteration, timesteps_total, time_budget")

    def tune_stop(self) -> dict:
        """The ``stop`` mapping for Tune (the time budget goes to ``TuneConfig.time_budget_s``)."""
        stop: dict[str, int] = {}
        if self.training_iteration is not None:
            stop["training_iteration"] = self.training_iteration
        if self.timesteps_total is not None:
            stop[TIMESTEPS_RESULT_KEY] = self.timesteps_total
        return stop


@dataclass(frozen=True)
class CheckpointSection:
    every_iterations: int = option(10, Int(lo=0))  # 0: no periodic checkpoint by iterations
    every_minutes: float | None = option(30.0, Float(lo=0, optional=True))  # 0/null: none by time
    keep: int | None = option(3, Int(lo=1, optional=True))  # best K by score, plus the latest; null keeps all
    score: str = option("val_sharpe", Str())
    score_mode: str = option("max", Str(choices=SCORE_MODES))


@dataclass(frozen=True)
class WandbSection:
    enabled: bool = option(False, Bool())
    project: str = option("rllib-algospace", Str())
    group: str | None = option(None, Str(optional=True))


@dataclass(frozen=True)
class ExperimentSection:
    name: str = option("mappo", Str(check=check_experiment_name))
    storage_path: str = option("~/algospace_results", Str())  # local paths: ~ expanded, made absolute
    seed: int = option(0, Int(lo=0))
    stop: StopSection = section_field(StopSection)
    checkpoint: CheckpointSection = section_field(CheckpointSection)
    wandb: WandbSection = section_field(WandbSection)
    verbose: int = option(1, Int(lo=0, hi=3))

    def __post_init__(self):
        if isinstance(self.storage_path, str) and self.storage_path.strip():
            object.__setattr__(self, "storage_path", normalize_storage_path(self.storage_path))

    @property
    def storage_is_uri(self) -> bool:
        return is_uri(self.storage_path)


@dataclass(frozen=True)
class DataSection:
    path: str | None = option(None, Str(optional=True, check=check_local_file_name))  # absolute once loaded
    preset: str = option("simple_markets", Str(choices=DATA_PRESETS))

    def __post_init__(self):
        if isinstance(self.path, str) and self.path.strip() and not is_uri(self.path):
            object.__setattr__(self, "path", normalize_local_path(self.path))


@dataclass(frozen=True)
class AlgorithmSection:
    centralized_critic: bool = option(True, Bool())
    critic_input: str = option("state", Str(choices=CRITIC_INPUTS))
    lr: float = option(3.0e-4, Float(lo=0, lo_open=True))
    gamma: float = option(0.99, Float(lo=0, hi=1, lo_open=True))
    lambda_: float = option(0.95, Float(lo=0, hi=1, lo_open=True))
    clip_param: float = option(0.2, Float(lo=0, lo_open=True))
    vf_clip_param: float = option(0.2, Float(lo=0, lo_open=True))  # value clip, normalised units
    vf_loss_coeff: float = option(1.0, Float(lo=0))
    entropy_coeff: float = option(0.01, Float(lo=0))
    grad_clip: float | None = option(0.5, Float(lo=0, lo_open=True, optional=True))  # null: no clipping
    train_batch_size: int = option(16384, Int(lo=1))
    minibatch_size: int = option(16384, Int(lo=1))
    num_epochs: int = option(5, Int(lo=1))
    actor_hiddens: tuple[int, ...] = option((64, 64), Hiddens())
    critic_hiddens: tuple[int, ...] = option((64, 64), Hiddens())
    activation: str = option("relu", Str(choices=ACTIVATIONS))
    value_normalization: bool = option(True, Bool())
    scale_inputs: bool = option(False, Bool())  # centre and scale feature inputs by the training file's train-split statistics (measured: worse here, so off)
    mixed_precision: bool = option(False, Bool())
    critic_warmup_steps: int = option(163_840, Int(lo=0))  # env steps in which only the critic learns (with training.warm_start only)
    teacher_kl_coeff: float = option(0.5, Float(lo=0))  # weight of KL(teacher || agent) per agent (ignored without training.warm_start)
    teacher_kl_steps: int = option(2_000_000, Int(lo=0))  # env steps after the warm-up over which it falls to zero (0: constant)
    cost_free_steps: int = option(0, Int(lo=0))  # first env steps of training without trading costs (training envs only)
    cost_warmup_steps: int = option(0, Int(lo=0))  # then env steps over which the costs ramp in from 0 (training envs only; both 0: full costs from the start)
    regime_aux_coeff: float = option(0.0, Float(lo=0))  # weight of the regime actor's cross-entropy to the ground-truth labels (labelled data)

    _aliases = {"lambda": "lambda_"}

    def __post_init__(self):
        for name in ("actor_hiddens", "critic_hiddens"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    def _cross(self, prefix: str, ctx: "ConfigContext") -> None:
        if self.minibatch_size > self.train_batch_size:
            ctx.cross(
                [f"{prefix}.minibatch_size", f"{prefix}.train_batch_size"],
                f"{prefix}.minibatch_size ({self.minibatch_size}) must not exceed {prefix}.train_batch_size ({self.train_batch_size})",
            )


@dataclass(frozen=True)
class PromoteWhen:
    """Leave a curriculum stage early once ``metric`` (a validation metric, run
    on the stage's own data) is above (or below) a threshold."""

    metric: str
    above: float | None = None
    below: float | None = None


@dataclass(frozen=True)
class CurriculumStage:
    name: str  # a key of env.tasks, or with the default data a preset name
    episodes: int  # training episodes in this stage before moving on
    promote_when: PromoteWhen | None = None


class _StageList(Kind):
    """A list of stage mappings; each is checked (with its own dotted key) in
    ``CurriculumSection._cross``."""

    def expected(self):
        return "a list of stages ({name, episodes, promote_when})"

    def convert(self, v, fail):
        if v is None:
            return ()
        if not isinstance(v, (list, tuple)):
            self._type_error(v, fail)
        return tuple(v)


_STAGE_KEYS = ("name", "episodes", "promote_when")
_PROMOTE_KEYS = ("metric", "above", "below")


def _stage(raw: Any, key: str, ctx: "ConfigContext") -> CurriculumStage:
    if isinstance(raw, CurriculumStage):
        return raw
    raw = as_mapping(raw, key, ctx)
    for name in raw:
        if name not in _STAGE_KEYS:
            ctx.unknown(f"{key}.{name}", name, _STAGE_KEYS)
    for name in ("name", "episodes"):
        if name not in raw:
            ctx.fail(key, f"missing {name} (a stage is {{name, episodes, promote_when}})")
    name = Str()(raw["name"], lambda p: ctx.fail(f"{key}.name", p))
    episodes = Int(lo=1)(raw["episodes"], lambda p: ctx.fail(f"{key}.episodes", p))
    promote = raw.get("promote_when")
    if promote is not None:
        pkey = f"{key}.promote_when"
        promote = as_mapping(promote, pkey, ctx)
        for k in promote:
            if k not in _PROMOTE_KEYS:
                ctx.unknown(f"{pkey}.{k}", k, _PROMOTE_KEYS)
        if "metric" not in promote:
            ctx.fail(pkey, "missing metric (e.g. {metric: val_sharpe, above: 1.0})")
        metric = Str(choices=VALIDATION_METRICS)(promote["metric"], lambda p: ctx.fail(f"{pkey}.metric", p))
        above = Float(optional=True)(promote.get("above"), lambda p: ctx.fail(f"{pkey}.above", p))
        below = Float(optional=True)(promote.get("below"), lambda p: ctx.fail(f"{pkey}.below", p))
        if (above is None) == (below is None):
            ctx.fail(pkey, "give exactly one of above or below")
        promote = PromoteWhen(metric, above, below)
    return CurriculumStage(name, episodes, promote)


@dataclass(frozen=True)
class CurriculumSection:
    """Training stages, easiest first (empty: no curriculum); see
    ``rllib_algospace.curriculum``."""

    stages: tuple[CurriculumStage, ...] = option((), _StageList())

    def _cross(self, prefix: str, ctx: "ConfigContext") -> None:
        stages = tuple(_stage(raw, f"{prefix}.stages[{i}]", ctx) for i, raw in enumerate(self.stages))
        seen = set()
        for i, stage in enumerate(stages):
            if stage.name in seen:
                ctx.fail(f"{prefix}.stages[{i}].name", f"stage {stage.name!r} is listed twice")
            seen.add(stage.name)
        object.__setattr__(self, "stages", stages)


class _AgentList(Kind):
    """``[structure, tactical]`` or ``"structure,tactical"``; null: all agents."""

    optional = True

    def expected(self):
        return f"a list of agent names ({', '.join(AGENT_NAMES)})"

    def convert(self, v, fail):
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",")]
        if not isinstance(v, (list, tuple)) or not v or not all(isinstance(x, str) for x in v):
            self._type_error(v, fail)
        for name in v:
            if name not in AGENT_NAMES:
                near = difflib.get_close_matches(name, AGENT_NAMES, n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                fail(f"unknown agent {short_repr(name)}{hint}; agents are {', '.join(AGENT_NAMES)}")
        if len(set(v)) != len(v):
            fail(f"an agent is listed twice: {short_repr(list(v))}")
        return tuple(a for a in AGENT_NAMES if a in v)  # the team's order


@dataclass(frozen=True)
class PerAgentSection:
    """Train some agents while the others stay frozen (section ``training``);
    see ``rllib_algospace.per_agent``."""

    train_agents: tuple[str, ...] | None = option(None, _AgentList())  # null: all agents train
    init_from: str | None = option(None, Str(optional=True, check=check_local_file_name))  # checkpoint (or trial/experiment folder) to start from
    frozen_policy: str = option("checkpoint", Str(choices=FROZEN_POLICIES))  # how frozen agents act: checkpoint weights | rule_action
    warm_start: str | None = option("rule", Str(optional=True, check=check_warm_start))  # rule | oracle | a warm-start file; null: none (init_from, when set, replaces it)
    warm_start_steps: int = option(200_000, Int(lo=1000))  # teacher-labelled train-split steps to clone
    warm_start_epochs: int = option(4, Int(lo=1))  # passes of behaviour cloning over them
    warm_start_explore: float = option(0.1, Float(lo=0, hi=1, hi_open=True))  # share of random executed actions while labelling
    oracle_cost_multiple: float = option(10.0, Float(lo=0))  # the oracle pays this many times the env's costs per trade

    def __post_init__(self):
        if isinstance(self.init_from, str) and self.init_from.strip() and not is_uri(self.init_from):
            object.__setattr__(self, "init_from", normalize_local_path(self.init_from))
        if isinstance(self.warm_start, str) and self.warm_start not in TEACHER_NAMES and self.warm_start.strip():
            object.__setattr__(self, "warm_start", normalize_local_path(self.warm_start))
        if isinstance(self.train_agents, list):
            object.__setattr__(self, "train_agents", tuple(self.train_agents))

    @property
    def frozen_agents(self) -> tuple[str, ...]:
        if self.train_agents is None:
            return ()
        return tuple(a for a in AGENT_NAMES if a not in self.train_agents)

    def _cross(self, prefix: str, ctx: "ConfigContext") -> None:
        if self.frozen_agents and self.frozen_policy == "checkpoint" and self.init_from is None:
            ctx.cross(
                [f"{prefix}.frozen_policy", f"{prefix}.init_from", f"{prefix}.train_agents"],
                f"{prefix}.frozen_policy is checkpoint but {prefix}.init_from is not set: the frozen agents "
                f"({', '.join(self.frozen_agents)}) would keep random weights; set {prefix}.init_from or {prefix}.frozen_policy: rule",
            )


@dataclass(frozen=True)
class ResourcesSection:
    num_env_runners: int | str = option("auto", AutoOr(lo=0, integer=True))  # "auto": resolved from os.cpu_count() later
    num_envs_per_env_runner: int = option(64, Int(lo=1))
    num_learners: int = option(0, Int(lo=0))
    num_gpus_per_learner: float | str = option("auto", AutoOr(lo=0, integer=False))
    max_concurrent_trials: int = option(1, Int(lo=1))
    address: str | None = option(None, Str(optional=True))  # Ray cluster to join: "auto", "HOST:6379" or "ray://HOST:10001"; null: RAY_ADDRESS if set, else a Ray of this machine


@dataclass(frozen=True)
class EvaluationSection:
    every_iterations: int = option(10, Int(lo=0))  # 0: no periodic validation
    split: str = option("val", Str(choices=SPLITS))
    episodes: int = option(2, Int(lo=1))  # ignored when full_split
    episode_length: int = option(2048, Int(lo=1, hint=" (use full_split: true for the whole split)"))
    full_split: bool = option(True, Bool())  # the whole split: two random 2,048-bar windows ranked checkpoints by noise


def to_plain(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: to_plain(getattr(obj, f.name)) for f in fields(obj) if not f.metadata.get("internal")}
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
