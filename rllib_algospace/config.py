"""Experiment configuration: typed, validated, loaded from YAML, with overrides.

Everything is checked here, before Ray starts: types (strictly: ``true`` is not
an integer, ``5.0`` is not an integer, integers are fine for float keys),
ranges, choices, unknown keys (with a "did you mean"), cross-key rules, and the
``env`` section through :class:`envs.market.config.MarketEnvConfig`. Every
problem raises :class:`ConfigError`, a ``ValueError`` whose message is one line
naming the file, the dotted key and the problem::

    tune_configs/x.yaml: algorithm.lr: must be > 0, got -1
    tune_configs/x.yaml: unknown key algorithm.lrr (did you mean lr?)
    overrides: algorithm.num_epochs: expected an integer, got 'five'

Usage::

    cfg = load_config("tune_configs/mappo.yaml", {"experiment.stop.training_iteration": 5})
    cfg.algorithm.lr, cfg.experiment.stop.time_budget, cfg.env_config("train")
    load_config(None, quick_overrides())      # the one-minute smoke run

This module imports neither Ray nor torch.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import difflib
import math
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterable, Mapping

import yaml

from envs.market.config import MarketEnvConfig

__all__ = [
    "ConfigError",
    "TrainConfig",
    "ExperimentConfig",
    "StopConfig",
    "CheckpointConfig",
    "WandbConfig",
    "DataConfig",
    "AlgorithmConfig",
    "ResourcesConfig",
    "EvaluationConfig",
    "load_config",
    "parse_duration",
    "parse_overrides",
    "quick_overrides",
    "DATA_PRESETS",
    "ENV_EXCLUDED_KEYS",
    "TIMESTEPS_RESULT_KEY",
    "CurriculumConfig",
    "CurriculumStage",
    "PromoteWhen",
    "PerAgentConfig",
    "AGENT_NAMES",
    "FROZEN_POLICIES",
    "VALIDATION_METRICS",
]

# Kept in step with envs.data.default.PRESET_NAMES (checked by the tests); not
# imported from there because that pulls in numpy and h5py.
DATA_PRESETS = ("simple_markets", "moderate_volatility", "complex_regimes")
SPLITS = ("train", "val", "test")
CRITIC_INPUTS = ("state", "concat_obs")
ACTIVATIONS = ("tanh", "relu")
SCORE_MODES = ("max", "min")
# Kept in step with envs.market.env.AGENTS and rllib_algospace.callbacks.TRADING_METRICS
# (checked by tests/test_curriculum.py and tests/test_per_agent.py); not imported
# from there because that pulls in numpy, Ray and torch.
AGENT_NAMES = ("regime", "structure", "tactical", "risk")
FROZEN_POLICIES = ("checkpoint", "rule")
VALIDATION_METRICS = tuple(
    f"val_{m}" for m in ("sharpe", "total_return", "max_drawdown", "win_rate", "profit_factor", "trades", "exposure", "consensus_rate", "regime_accuracy")
)
# The env keys that the trainer sets itself (data.path, the split of each phase).
ENV_EXCLUDED_KEYS = {
    "data": "use data.path instead",
    "split": "the trainer sets it (train for training, evaluation.split for validation)",
    "render_mode": "rendering is not available in training",
}
# Tune result key of the env steps sampled so far (RLlib new API stack:
# f"{ENV_RUNNER_RESULTS}/{NUM_ENV_STEPS_SAMPLED_LIFETIME}").
TIMESTEPS_RESULT_KEY = "env_runners/num_env_steps_sampled_lifetime"
OVERRIDES_SOURCE = "overrides"
DEFAULTS_SOURCE = "<defaults>"


class ConfigError(ValueError):
    """A bad experiment configuration; ``str(exc)`` is one line per problem:
    ``FILE: KEY: PROBLEM`` (``errors`` lists them when there are several)."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None, errors: list["ConfigError"] | None = None):
        self.errors: list[ConfigError] = list(errors or [])
        if self.errors:  # several problems: one line each
            message = "\n".join(str(e) for e in self.errors)
        else:
            message = " ".join(str(message).split())
        super().__init__(message)
        self.source = source
        self.key = key


def short_repr(value: Any, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


# ---------------------------------------------------------------------------
# Value kinds: each checks (and converts) one value, or calls fail(problem).
# ---------------------------------------------------------------------------
Fail = Callable[[str], Any]


def _range_text(lo, hi, lo_open, hi_open) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo}"
    return f"{'<' if hi_open else '<='} {hi}"


def _check_range(v, fail: Fail, lo, hi, lo_open, hi_open) -> None:
    bad = (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and (v >= hi if hi_open else v > hi))
    if bad:
        fail(f"must be {_range_text(lo, hi, lo_open, hi_open)}, got {short_repr(v)}")


class _Kind(ABC):
    """A value kind: checks and converts one config value."""

    optional = False

    def __call__(self, v: Any, fail: Fail) -> Any:
        if v is None:
            if self.optional:
                return None
            fail(f"expected {self.expected()}, got null")
        return self.convert(v, fail)

    @abstractmethod
    def expected(self) -> str:
        """What a valid value looks like, for error messages."""

    @abstractmethod
    def convert(self, v: Any, fail: Fail) -> Any:
        """The checked value, or ``fail(problem)``."""

    def _type_error(self, v: Any, fail: Fail):
        fail(f"expected {self.expected()}{' or null' if self.optional else ''}, got {short_repr(v)}")


class Int(_Kind):
    def __init__(self, lo=None, hi=None, optional=False, hint=""):
        self.lo, self.hi, self.optional, self.hint = lo, hi, optional, hint

    def expected(self):
        return "an integer"

    def convert(self, v, fail):
        if not is_int(v):
            self._type_error(v, fail)
        bad = (self.lo is not None and v < self.lo) or (self.hi is not None and v > self.hi)
        if bad:
            fail(f"must be {_range_text(self.lo, self.hi, False, False)}, got {short_repr(v)}{self.hint}")
        return int(v)


class Float(_Kind):
    def __init__(self, lo=None, hi=None, lo_open=False, hi_open=False, optional=False):
        self.lo, self.hi, self.lo_open, self.hi_open, self.optional = lo, hi, lo_open, hi_open, optional

    def expected(self):
        return "a number"

    def convert(self, v, fail):
        if not _is_number(v):
            self._type_error(v, fail)
        _check_range(v, fail, self.lo, self.hi, self.lo_open, self.hi_open)
        return float(v)


class Bool(_Kind):
    def __init__(self, optional=False):
        self.optional = optional

    def expected(self):
        return "true or false"

    def convert(self, v, fail):
        if not isinstance(v, bool):
            self._type_error(v, fail)
        return v


class Str(_Kind):
    def __init__(self, choices: Iterable[str] | None = None, optional=False, check: Callable[[str], str | None] | None = None):
        self.choices = tuple(choices) if choices is not None else None
        self.optional, self.check = optional, check

    def expected(self):
        return "a string"

    def convert(self, v, fail):
        if not isinstance(v, str):
            if self.choices is not None:
                fail(f"must be one of {', '.join(self.choices)}{', or null' if self.optional else ''}, got {short_repr(v)}")
            self._type_error(v, fail)
        if self.choices is not None and v not in self.choices:
            near = difflib.get_close_matches(v, self.choices, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            fail(f"must be one of {', '.join(self.choices)}, got {short_repr(v)}{hint}")
        if self.choices is None and not v.strip():
            fail("must not be empty")
        if self.check is not None:
            problem = self.check(v)
            if problem:
                fail(problem)
        return v


class AutoOr(_Kind):
    """``"auto"`` or a number (``integer=True``: an integer) >= ``lo``."""

    def __init__(self, lo=0, integer=True):
        self.lo, self.integer = lo, integer

    def expected(self):
        return f"'auto' or {'an integer' if self.integer else 'a number'} >= {self.lo}"

    def convert(self, v, fail):
        if v == "auto":
            return "auto"
        ok = is_int(v) if self.integer else _is_number(v)
        if not ok or v < self.lo:
            fail(f"expected {self.expected()}, got {short_repr(v)}")
        return int(v) if self.integer else float(v)


class Hiddens(_Kind):
    def expected(self):
        return "a non-empty list of positive integers"

    def convert(self, v, fail):
        if not isinstance(v, (list, tuple)) or not v or not all(is_int(x) and x > 0 for x in v):
            fail(f"expected {self.expected()}, got {short_repr(v)}")
        return tuple(int(x) for x in v)


class Duration(_Kind):
    def __init__(self, optional=True):
        self.optional = optional

    def expected(self):
        return "a duration"

    def convert(self, v, fail):
        return _duration(v, fail)


class StrMap(_Kind):
    def __init__(self, optional=False):
        self.optional = optional

    def expected(self):
        return "a mapping of names to strings"

    def convert(self, v, fail):
        if not isinstance(v, Mapping) or not all(isinstance(k, str) and isinstance(x, str) and x.strip() for k, x in v.items()):
            self._type_error(v, fail)
        return dict(v)


# ---------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------
_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_DURATION_RE = re.compile(rf"^(?:{_NUM}d)?(?:{_NUM}h)?(?:{_NUM}(?:m|min))?(?:{_NUM}s)?$")
_DURATION_HELP = "use e.g. 23h30m, 90m, 45s, 1.5h or a number of seconds"


def _duration(value: Any, fail: Fail) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        fail(f"expected a duration ({_DURATION_HELP}), got {short_repr(value)}")
    if isinstance(value, str):
        text = "".join(value.split()).lower()
        try:
            seconds = float(text)
        except ValueError:
            m = _DURATION_RE.match(text)
            if not text or m is None or not any(m.groups()):
                if text.startswith("-"):
                    fail(f"must be > 0, got {short_repr(value)}")
                fail(f"invalid duration {short_repr(value)} ({_DURATION_HELP})")
            d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
            seconds = ((d * 24 + h) * 60 + mi) * 60 + s
    else:
        seconds = float(value)
    if not math.isfinite(seconds):
        fail(f"invalid duration {short_repr(value)} ({_DURATION_HELP})")
    if seconds <= 0:
        fail(f"must be > 0, got {short_repr(value)}")
    return float(seconds)


def parse_duration(value: Any, key: str = "experiment.stop.time_budget", source: str | None = None) -> float:
    """``"23h30m"`` -> ``84600.0`` seconds; also ``"1h"``, ``"90m"``, ``"45s"``,
    ``"1h30m15s"``, ``"1.5h"``, ``"2d"``, and plain numbers (seconds).

    Zero, negative and unreadable values raise :class:`ConfigError` naming ``key``.
    """

    def fail(problem: str):
        prefix = f"{source}: " if source else ""
        raise ConfigError(f"{prefix}{key}: {problem}", source=source, key=key)

    return _duration(value, fail)


# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_uri(path: str) -> bool:
    """``s3://bucket/x``, ``gs://...``, ``file:///...`` are URIs; ``C:\\x`` and ``~/x`` are not."""
    return bool(_URI_RE.match(path))


def _local_path(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def _storage_path(path: str) -> str:
    return path if is_uri(path) else _local_path(path)


def _check_name(name: str) -> str | None:
    if "/" in name or "\\" in name or name in (".", ".."):
        return f"must be a plain folder name (no path separators), got {short_repr(name)}"
    return None


TEACHER_NAMES = ("rule", "oracle")


def _check_warm_start(value: str) -> str | None:
    if value in TEACHER_NAMES:
        return None
    if is_uri(value):
        return f"must be rule, oracle or a local warm-start file, got {short_repr(value)}"
    if not value.endswith(".pt"):
        near = difflib.get_close_matches(value, TEACHER_NAMES, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        return f"must be rule, oracle or a warm-start file (.pt, from `algospace pretrain`), got {short_repr(value)}{hint}"
    return None


def _check_local_file_name(path: str) -> str | None:
    if is_uri(path):
        return f"must be a local file (URIs are not supported), got {short_repr(path)}"
    return None


# ---------------------------------------------------------------------------
# The sections
# ---------------------------------------------------------------------------
def _opt(default: Any, kind: _Kind, **kw) -> Any:
    if isinstance(default, (list, dict)):
        raise TypeError("use a tuple default")
    return field(default=default, metadata={"kind": kind}, **kw)


def _section(cls: type) -> Any:
    return field(default_factory=cls, metadata={"section": cls})


@dataclass(frozen=True)
class StopConfig:
    """When a trial stops: the first of these reached (null = not used; at least one is set)."""

    training_iteration: int | None = _opt(200, Int(lo=1, optional=True))
    timesteps_total: int | None = _opt(None, Int(lo=1, optional=True))  # env steps sampled
    time_budget: float | None = _opt(None, Duration(optional=True))  # seconds

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
class CheckpointConfig:
    every_iterations: int = _opt(10, Int(lo=0))  # 0: no periodic checkpoint by iterations
    every_minutes: float | None = _opt(30.0, Float(lo=0, optional=True))  # 0/null: none by time
    keep: int | None = _opt(3, Int(lo=1, optional=True))  # best K by score, plus the latest; null keeps all
    score: str = _opt("val_sharpe", Str())
    score_mode: str = _opt("max", Str(choices=SCORE_MODES))


@dataclass(frozen=True)
class WandbConfig:
    enabled: bool = _opt(False, Bool())
    project: str = _opt("rllib-algospace", Str())
    group: str | None = _opt(None, Str(optional=True))


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = _opt("mappo", Str(check=_check_name))
    storage_path: str = _opt("~/algospace_results", Str())  # local paths: ~ expanded, made absolute
    seed: int = _opt(0, Int(lo=0))
    stop: StopConfig = _section(StopConfig)
    checkpoint: CheckpointConfig = _section(CheckpointConfig)
    wandb: WandbConfig = _section(WandbConfig)
    verbose: int = _opt(1, Int(lo=0, hi=3))

    def __post_init__(self):
        if isinstance(self.storage_path, str) and self.storage_path.strip():
            object.__setattr__(self, "storage_path", _storage_path(self.storage_path))

    @property
    def storage_is_uri(self) -> bool:
        return is_uri(self.storage_path)


@dataclass(frozen=True)
class DataConfig:
    path: str | None = _opt(None, Str(optional=True, check=_check_local_file_name))  # absolute once loaded
    preset: str = _opt("simple_markets", Str(choices=DATA_PRESETS))

    def __post_init__(self):
        if isinstance(self.path, str) and self.path.strip() and not is_uri(self.path):
            object.__setattr__(self, "path", _local_path(self.path))


@dataclass(frozen=True)
class AlgorithmConfig:
    centralized_critic: bool = _opt(True, Bool())
    critic_input: str = _opt("state", Str(choices=CRITIC_INPUTS))
    lr: float = _opt(3.0e-4, Float(lo=0, lo_open=True))
    gamma: float = _opt(0.99, Float(lo=0, hi=1, lo_open=True))
    lambda_: float = _opt(0.95, Float(lo=0, hi=1, lo_open=True))
    clip_param: float = _opt(0.2, Float(lo=0, lo_open=True))
    vf_clip_param: float = _opt(0.2, Float(lo=0, lo_open=True))  # value clip, normalised units
    vf_loss_coeff: float = _opt(1.0, Float(lo=0))
    entropy_coeff: float = _opt(0.01, Float(lo=0))
    grad_clip: float | None = _opt(0.5, Float(lo=0, lo_open=True, optional=True))  # null: no clipping
    train_batch_size: int = _opt(16384, Int(lo=1))
    minibatch_size: int = _opt(16384, Int(lo=1))
    num_epochs: int = _opt(5, Int(lo=1))
    actor_hiddens: tuple[int, ...] = _opt((64, 64), Hiddens())
    critic_hiddens: tuple[int, ...] = _opt((64, 64), Hiddens())
    activation: str = _opt("relu", Str(choices=ACTIVATIONS))
    value_normalization: bool = _opt(True, Bool())
    scale_inputs: bool = _opt(False, Bool())  # centre and scale feature inputs by the training file's train-split statistics (measured: worse here, so off)
    mixed_precision: bool = _opt(False, Bool())
    critic_warmup_steps: int = _opt(163_840, Int(lo=0))  # env steps in which only the critic learns (with training.warm_start only)
    teacher_kl_coeff: float = _opt(0.5, Float(lo=0))  # weight of KL(teacher || agent) per agent (ignored without training.warm_start)
    teacher_kl_steps: int = _opt(2_000_000, Int(lo=0))  # env steps after the warm-up over which it falls to zero (0: constant)
    regime_aux_coeff: float = _opt(0.0, Float(lo=0))  # weight of the regime actor's cross-entropy to the ground-truth labels (labelled data)

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


class _StageList(_Kind):
    """A list of stage mappings; each is checked (with its own dotted key) in
    ``CurriculumConfig._cross``."""

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
class CurriculumConfig:
    """Training stages, easiest first (empty: no curriculum); see
    ``rllib_algospace.curriculum``."""

    stages: tuple[CurriculumStage, ...] = _opt((), _StageList())

    def _cross(self, prefix: str, ctx: "ConfigContext") -> None:
        stages = tuple(_stage(raw, f"{prefix}.stages[{i}]", ctx) for i, raw in enumerate(self.stages))
        seen = set()
        for i, stage in enumerate(stages):
            if stage.name in seen:
                ctx.fail(f"{prefix}.stages[{i}].name", f"stage {stage.name!r} is listed twice")
            seen.add(stage.name)
        object.__setattr__(self, "stages", stages)


class _AgentList(_Kind):
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
class PerAgentConfig:
    """Train some agents while the others stay frozen (section ``training``);
    see ``rllib_algospace.frozen``."""

    train_agents: tuple[str, ...] | None = _opt(None, _AgentList())  # null: all agents train
    init_from: str | None = _opt(None, Str(optional=True, check=_check_local_file_name))  # checkpoint (or trial/experiment folder) to start from
    frozen_policy: str = _opt("checkpoint", Str(choices=FROZEN_POLICIES))  # how frozen agents act: checkpoint weights | rule_action
    warm_start: str | None = _opt("rule", Str(optional=True, check=_check_warm_start))  # rule | oracle | a warm-start file; null: none (init_from, when set, replaces it)
    warm_start_steps: int = _opt(200_000, Int(lo=1000))  # teacher-labelled train-split steps to clone
    warm_start_epochs: int = _opt(4, Int(lo=1))  # passes of behaviour cloning over them
    warm_start_explore: float = _opt(0.1, Float(lo=0, hi=1, hi_open=True))  # share of random executed actions while labelling
    oracle_cost_multiple: float = _opt(10.0, Float(lo=0))  # the oracle pays this many times the env's costs per trade

    def __post_init__(self):
        if isinstance(self.init_from, str) and self.init_from.strip() and not is_uri(self.init_from):
            object.__setattr__(self, "init_from", _local_path(self.init_from))
        if isinstance(self.warm_start, str) and self.warm_start not in TEACHER_NAMES and self.warm_start.strip():
            object.__setattr__(self, "warm_start", _local_path(self.warm_start))
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
class ResourcesConfig:
    num_env_runners: int | str = _opt("auto", AutoOr(lo=0, integer=True))  # "auto": resolved from os.cpu_count() later
    num_envs_per_env_runner: int = _opt(64, Int(lo=1))
    num_learners: int = _opt(0, Int(lo=0))
    num_gpus_per_learner: float | str = _opt("auto", AutoOr(lo=0, integer=False))
    max_concurrent_trials: int = _opt(1, Int(lo=1))


@dataclass(frozen=True)
class EvaluationConfig:
    every_iterations: int = _opt(10, Int(lo=0))  # 0: no periodic validation
    split: str = _opt("val", Str(choices=SPLITS))
    episodes: int = _opt(2, Int(lo=1))  # ignored when full_split
    episode_length: int = _opt(2048, Int(lo=1, hint=" (use full_split: true for the whole split)"))
    full_split: bool = _opt(True, Bool())  # the whole split: two random 2,048-bar windows ranked checkpoints by noise


@dataclass(frozen=True)
class TrainConfig:
    """The whole experiment. Sections: ``experiment``, ``data``, ``env`` (a plain
    dict of :class:`MarketEnvConfig` keys the user set), ``algorithm``,
    ``resources``, ``evaluation``. ``source`` names where it came from."""

    experiment: ExperimentConfig = _section(ExperimentConfig)
    data: DataConfig = _section(DataConfig)
    env: dict = field(default_factory=dict, metadata={"env": True})
    algorithm: AlgorithmConfig = _section(AlgorithmConfig)
    resources: ResourcesConfig = _section(ResourcesConfig)
    evaluation: EvaluationConfig = _section(EvaluationConfig)
    curriculum: CurriculumConfig = _section(CurriculumConfig)
    training: PerAgentConfig = _section(PerAgentConfig)
    source: str = field(default=DEFAULTS_SOURCE, compare=False, repr=False, metadata={"internal": True})

    def __post_init__(self):
        env = dict(self.env)
        if isinstance(env.get("tasks"), Mapping):
            env["tasks"] = {k: (_local_path(v) if isinstance(v, str) and v.strip() and not is_uri(v) else v) for k, v in env["tasks"].items()}
        object.__setattr__(self, "env", env)

    # -- construction -------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping, source: str = "<dict>") -> "TrainConfig":
        """Build and validate from a nested mapping (as ``to_dict`` gives, or a parsed YAML file)."""
        return build_train_config(d, ConfigContext(source))

    def to_dict(self) -> dict:
        """Plain nested dict (lists, not tuples); ``from_dict(to_dict())`` gives an equal config."""
        return _to_plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> "TrainConfig":
        """A new config with flat dotted-key overrides applied and validated."""
        return _from_raw(self.to_dict(), self.source, overrides)

    # -- what the trainer needs ---------------------------------------------
    def env_config(self, split: str = "train", **extra: Any) -> dict:
        """Keyword arguments of the environment (``envs.algospace_market``) for ``split``.

        ``data`` is ``data.path``; with no path and no ``env.tasks`` the task is
        ``data.preset``; with ``env.tasks`` and no ``env.task``, the first task.
        """
        kw = dict(self.env)
        if isinstance(kw.get("tasks"), dict):
            kw["tasks"] = dict(kw["tasks"])
        kw["data"] = self.data.path
        kw["split"] = split
        if kw.get("tasks"):
            kw.setdefault("task", next(iter(kw["tasks"])))
        elif self.data.path is None:
            kw.setdefault("task", self.data.preset)
        kw.update(extra)
        return kw

    def eval_env_config(self) -> dict:
        """Environment keyword arguments for validation: ``evaluation.split``, and
        either episodes of ``evaluation.episode_length`` bars or (``full_split``)
        one pass over the whole split from its first bar."""
        ev = self.evaluation
        if ev.full_split:
            return self.env_config(ev.split, episode_length=0, random_start=False)
        return self.env_config(ev.split, episode_length=ev.episode_length)

    def market_env_config(self, split: str = "train") -> MarketEnvConfig:
        return MarketEnvConfig.from_kwargs(**self.env_config(split))

    def check_files(self) -> None:
        """Raise :class:`ConfigError` if ``data.path`` or a file of ``env.tasks`` does not exist."""
        wanted = []
        if self.data.path is not None and not self.env.get("tasks"):
            wanted.append(("data.path", self.data.path))
        for name, path in (self.env.get("tasks") or {}).items():
            wanted.append((f"env.tasks.{name}", path))
        for key, path in wanted:
            if not os.path.isfile(path):
                raise ConfigError(f"{self.source}: {key}: file not found: {path}", source=self.source, key=key)
        init = self.training.init_from
        if init is not None and not os.path.exists(init):
            raise ConfigError(f"{self.source}: training.init_from: no such checkpoint or folder: {init}", source=self.source, key="training.init_from")


def _to_plain(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj) if not f.metadata.get("internal")}
    if isinstance(obj, Mapping):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------
class ConfigContext:
    """Where errors come from: the file, or ``overrides`` for overridden keys."""

    def __init__(self, source: str, overridden: Iterable[str] = ()):
        self.source = source
        self.overridden = set(overridden)
        self.errors: list[ConfigError] = []  # every problem found, reported together (raise_errors)

    def attempt(self, fn, *args):
        """``fn(*args)``, recording a ``ConfigError`` instead of raising it;
        returns ``FAILED`` then, so the caller can go on to the next key."""
        try:
            return fn(*args)
        except ConfigError as exc:
            self.errors.append(exc)
            return FAILED

    def raise_errors(self) -> None:
        """One ``ConfigError`` with every problem found, one line each."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            first = self.errors[0]
            raise ConfigError("", source=first.source, key=first.key, errors=self.errors)

    def source_of(self, key: str) -> str:
        for o in self.overridden:
            if key == o or key.startswith((o + ".", o + "[")) or o.startswith(key + "."):
                return OVERRIDES_SOURCE
        return self.source

    def fail(self, key: str, problem: str):
        src = self.source_of(key)
        raise ConfigError(f"{src}: {key}: {problem}", source=src, key=key)

    def cross(self, keys: list[str], message: str):
        src = next((OVERRIDES_SOURCE for k in keys if self.source_of(k) == OVERRIDES_SOURCE), self.source)
        raise ConfigError(f"{src}: {message}", source=src, key=keys[0])

    def unknown(self, key: str, name: str, known: Iterable[str]):
        known = sorted(known)
        near = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
        hint = f"did you mean {near[0]}?" if near else f"known keys: {', '.join(known)}"
        src = self.source_of(key)
        raise ConfigError(f"{src}: unknown key {key} ({hint})", source=src, key=key)


FAILED = object()  # a key whose value was refused (its error is in the context)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def as_mapping(raw: Any, key: str, ctx: ConfigContext) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        ctx.fail(key, f"expected a mapping, got {short_repr(raw)}")
    for k in raw:
        if not isinstance(k, str):
            ctx.fail(key, f"keys must be strings, got {short_repr(k)}")
    return dict(raw)


def _canonical_aliases(cls: type, raw: dict, prefix: str, ctx: ConfigContext) -> dict:
    for alias, canon in getattr(cls, "_aliases", {}).items():
        if alias in raw:
            if canon in raw:
                ctx.cross([_join(prefix, alias), _join(prefix, canon)], f"{_join(prefix, alias)} and {_join(prefix, canon)} are the same key; give one")
            raw[canon] = raw.pop(alias)
    return raw


def _build_section(cls: type, raw: Any, prefix: str, ctx: ConfigContext) -> Any:
    """The section ``cls`` from ``raw``; a refused key is recorded in ``ctx``
    and left at its default, so every key is checked (cross-key checks run
    only on a section without errors)."""
    errors_before = len(ctx.errors)
    raw = ctx.attempt(lambda: _canonical_aliases(cls, as_mapping(raw, prefix, ctx), prefix, ctx))
    if raw is FAILED:
        return cls()
    specs = [f for f in fields(cls) if not f.metadata.get("internal")]
    names = [f.name for f in specs]
    for name in raw:
        if name not in names:
            ctx.attempt(ctx.unknown, _join(prefix, name), name, names)
    kwargs = {}
    for f in specs:
        if f.name not in raw:
            continue
        key = _join(prefix, f.name)
        if "section" in f.metadata:
            value = _build_section(f.metadata["section"], raw[f.name], key, ctx)
        else:
            value = ctx.attempt(f.metadata["kind"], raw[f.name], lambda problem, key=key: ctx.fail(key, problem))
        if value is not FAILED:
            kwargs[f.name] = value
    obj = cls(**kwargs)
    cross = getattr(obj, "_cross", None)
    if cross is not None and len(ctx.errors) == errors_before:
        ctx.attempt(cross, prefix, ctx)
    return obj


_ENV_KINDS = {"int": Int, "float": Float, "bool": Bool, "str": Str}


def _env_kind(annotation: Any) -> _Kind | None:
    parts = [p.strip() for p in str(annotation).split("|")]
    optional = "None" in parts
    base = [p for p in parts if p != "None"]
    if len(base) != 1:
        return None
    if base[0] in _ENV_KINDS:
        return _ENV_KINDS[base[0]](optional=optional)
    if base[0].startswith("dict"):
        return StrMap(optional=optional)
    return None


_ENV_ERROR_RE = re.compile(r"^environment config (\w+)=.*?: (.*)$", re.S)


def _build_env(raw: Any, ctx: ConfigContext) -> dict:
    raw = as_mapping(raw, "env", ctx)
    env_fields = {f.name: f for f in fields(MarketEnvConfig)}
    allowed = [n for n in env_fields if n not in ENV_EXCLUDED_KEYS]
    out = {}
    for name, value in raw.items():
        key = f"env.{name}"
        if name in ENV_EXCLUDED_KEYS:
            ctx.fail(key, f"not allowed here: {ENV_EXCLUDED_KEYS[name]}")
        if name not in env_fields:
            ctx.unknown(key, name, allowed)
        kind = _env_kind(env_fields[name].type)
        out[name] = kind(value, lambda problem, key=key: ctx.fail(key, problem)) if kind is not None else value
        if name == "tasks" and out[name] is not None:
            if not out[name]:
                ctx.fail(key, "must be a non-empty mapping of task names to market files")
            for task, path in out[name].items():
                problem = _check_local_file_name(path)
                if problem:
                    ctx.fail(f"{key}.{task}", problem)
    return out


def _check_env(cfg: TrainConfig, raw_env: Mapping, ctx: ConfigContext) -> None:
    env, data = cfg.env, cfg.data
    if env.get("tasks"):
        if data.path is not None:
            ctx.cross(["data.path", "env.tasks"], "data.path and env.tasks both name market files; give one (env.tasks is the curriculum)")
    elif data.path is None and "task" in env and env["task"] != data.preset:
        ctx.cross(
            ["env.task", "data.preset"],
            f"env.task ({env['task']!r}) differs from data.preset ({data.preset!r}); with the default data the task is the preset: set data.preset only",
        )
    try:
        MarketEnvConfig.from_kwargs(**cfg.env_config("train"))
    except (ValueError, TypeError) as exc:
        text = " ".join(str(exc).split())
        m = _ENV_ERROR_RE.match(text)
        if m is None:
            ctx.fail("env", text)
        name, problem = m.group(1), m.group(2)
        got = raw_env[name] if name in raw_env else cfg.env_config("train").get(name)
        if name == "task" and "task" not in raw_env and data.path is None and not env.get("tasks"):
            ctx.fail("data.preset", f"{problem}, got {short_repr(got)}")
        ctx.fail(f"env.{name}", f"{problem}, got {short_repr(got)}")


# Top-level sections that belong to another command (``ensemble``: ``algospace
# ensemble``). Not part of TrainConfig, but checked wherever the file is loaded:
# name -> "module:function(raw, ctx)" (imported only when the section is there).
EXTRA_SECTIONS = {"ensemble": "rllib_algospace.ensemble:check_ensemble_section", "search": "rllib_algospace.hpo:check_search_section"}


def _extra_section_check(where: str) -> Callable[[Any, "ConfigContext"], Any]:
    import importlib

    module, _, function = where.partition(":")
    return getattr(importlib.import_module(module), function)


def _check_curriculum(cfg: TrainConfig, ctx: ConfigContext) -> None:
    """Stage names are tasks of the env: keys of env.tasks, or with the default
    data the presets; early promotion needs validation."""
    stages = cfg.curriculum.stages
    if not stages:
        return
    tasks = cfg.env.get("tasks")
    if not tasks and cfg.data.path is not None:
        ctx.cross(["curriculum.stages", "data.path"], "curriculum.stages needs several markets: use env.tasks (stage name -> market file) or the default data, not data.path")
    known = tuple(tasks) if tasks else DATA_PRESETS
    for i, stage in enumerate(stages):
        if stage.name not in known:
            near = difflib.get_close_matches(stage.name, known, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            where = "a key of env.tasks" if tasks else "a preset of the default data"
            ctx.fail(f"curriculum.stages[{i}].name", f"must be {where} ({', '.join(known)}), got {short_repr(stage.name)}{hint}")
        if stage.promote_when is not None and cfg.evaluation.every_iterations == 0:
            ctx.cross(
                [f"curriculum.stages[{i}].promote_when", "evaluation.every_iterations"],
                f"curriculum.stages[{i}].promote_when uses {stage.promote_when.metric}, a validation metric, but evaluation.every_iterations is 0 (validation off)",
            )
    if "task" in cfg.env and cfg.env["task"] != stages[0].name:
        ctx.cross(["env.task", "curriculum.stages"], f"env.task ({cfg.env['task']!r}) differs from the first curriculum stage ({stages[0].name!r}); leave env.task out")


def build_train_config(raw: Any, ctx: ConfigContext) -> TrainConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{ctx.source}: expected a mapping of sections (experiment, data, env, algorithm, resources, evaluation) at the top level, got {type(raw).__name__}",
            source=ctx.source,
        )
    raw = as_mapping(raw, "<top level>", ctx)
    specs = [f for f in fields(TrainConfig) if not f.metadata.get("internal")]
    names = [f.name for f in specs]
    for name in raw:
        if name not in names and name not in EXTRA_SECTIONS:
            ctx.attempt(ctx.unknown, name, name, [*names, *EXTRA_SECTIONS])
    for name, where in EXTRA_SECTIONS.items():
        if name in raw:
            ctx.attempt(_extra_section_check(where), raw[name], ctx)
    kwargs = {}
    for f in specs:
        if f.name not in raw:
            continue
        if f.metadata.get("env"):
            value = ctx.attempt(_build_env, raw[f.name], ctx)
        else:
            value = _build_section(f.metadata["section"], raw[f.name], f.name, ctx)
        if value is not FAILED:
            kwargs[f.name] = value
    cfg = TrainConfig(**kwargs, source=ctx.source)
    ctx.raise_errors()  # every key's problem, before the checks across sections
    _check_env(cfg, as_mapping(raw.get("env"), "env", ctx), ctx)
    _check_curriculum(cfg, ctx)
    score, every = cfg.experiment.checkpoint.score, cfg.evaluation.every_iterations
    if score.startswith("val_") and every == 0:
        ctx.cross(
            ["experiment.checkpoint.score", "evaluation.every_iterations"],
            f"experiment.checkpoint.score ({score!r}) is a validation metric but evaluation.every_iterations is 0 (validation off)",
        )
    return cfg


# ---------------------------------------------------------------------------
# YAML and overrides
# ---------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """Safe YAML loader that reads ``3e-4`` as a number (YAML 1.1 needs ``3.0e-4``)
    and rejects duplicate keys."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _yaml_error(source: str, exc: yaml.YAMLError) -> ConfigError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return ConfigError(f"{source}: {where}invalid YAML: {problem}", source=source)


def read_yaml(path: str | os.PathLike) -> Any:
    source = os.fspath(path)
    try:
        with open(os.path.expanduser(source), encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found", source=source) from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a folder, not a YAML file", source=source) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text", source=source) from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}", source=source) from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise _yaml_error(source, exc) from None
    where = _cycle(data)
    if where is not None:
        raise ConfigError(f"{source}: {where or '<top level>'}: a YAML alias refers to itself (a recursive structure)", source=source, key=where)
    return {} if data is None else data


def _cycle(node: Any, path: str = "", open_nodes: set | None = None, done: set | None = None) -> str | None:
    """The dotted key of a value that contains itself (a recursive YAML
    alias), or None. Keeps the containers open on the current path, and
    visits a shared (aliased) container once: a chain of aliases stays linear."""
    if not isinstance(node, (dict, list)):
        return None
    open_nodes = set() if open_nodes is None else open_nodes
    done = set() if done is None else done
    if id(node) in open_nodes:
        return path
    if id(node) in done:
        return None
    open_nodes.add(id(node))
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        found = _cycle(value, f"{path}.{key}" if path and isinstance(node, dict) else (f"{path}[{key}]" if path else str(key)), open_nodes, done)
        if found is not None:
            return found
    open_nodes.discard(id(node))
    done.add(id(node))
    return None


def copy_tree(raw: Any) -> Any:
    if isinstance(raw, Mapping):
        return {k: copy_tree(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [copy_tree(v) for v in raw]
    return raw


def _section_class(path: list[str]) -> type | None:
    cls: Any = TrainConfig
    for name in path:
        spec = {f.name: f for f in fields(cls)}.get(name) if cls is not None else None
        cls = spec.metadata.get("section") if spec is not None else None
    return cls


def apply_overrides(raw: Any, source: str, overrides: Mapping[str, Any]) -> tuple[dict, list[str]]:
    if not isinstance(raw, Mapping):
        build_train_config(raw, ConfigContext(source))  # raises the top-level error
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{OVERRIDES_SOURCE}: expected a mapping of dotted keys to values, got {short_repr(overrides)}", source=OVERRIDES_SOURCE)
    tree = copy_tree(raw)
    keys = []
    for dotted, value in overrides.items():
        parts = dotted.split(".") if isinstance(dotted, str) else []
        if not parts or not all(p.strip() for p in parts):
            raise ConfigError(f"{OVERRIDES_SOURCE}: bad key {short_repr(dotted)} (expected a dotted key like algorithm.lr)", source=OVERRIDES_SOURCE)
        # aliases: the override replaces the key under either name
        cls = _section_class(parts[:-1])
        aliases = getattr(cls, "_aliases", {}) if cls is not None else {}
        canon = aliases.get(parts[-1], parts[-1])
        node = tree
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(
                    f"{OVERRIDES_SOURCE}: {dotted}: {where} is not a mapping in {source} (it is {short_repr(child)})", source=OVERRIDES_SOURCE, key=dotted
                )
            node = child
        for alias, target in aliases.items():
            if target == canon:
                node.pop(alias, None)
        node.pop(parts[-1], None)
        node[canon] = copy_tree(value)
        keys.append(".".join(parts[:-1] + [canon]))
    return tree, keys


def _from_raw(raw: Any, source: str, overrides: Mapping[str, Any] | None) -> TrainConfig:
    if overrides:
        raw, keys = apply_overrides(raw, source, overrides)
        return build_train_config(raw, ConfigContext(source, keys))
    return build_train_config(raw, ConfigContext(source))


def load_config(path: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None, *, check_files: bool = False) -> TrainConfig:
    """Load and validate a config.

    ``path``: a YAML file, or ``None`` for the packaged defaults (the same as
    ``tune_configs/mappo.yaml``). ``overrides``: flat dotted keys applied after
    the file, e.g. ``{"experiment.stop.training_iteration": 5}``. With
    ``check_files``, a missing ``data.path`` (or ``env.tasks`` file) is an error too.
    Raises :class:`ConfigError` (one line) on any problem.
    """
    if path is None:
        raw, source = {}, DEFAULTS_SOURCE
    else:
        raw, source = read_yaml(path), os.fspath(path)
    cfg = _from_raw(raw, source, overrides)
    if check_files:
        cfg.check_files()
    return cfg


def parse_overrides(items: Iterable[str]) -> dict:
    """``["algorithm.lr=1e-3", "algorithm.actor_hiddens=[64, 64]", "data.path=null"]`` ->
    a dict of dotted keys; values are read as YAML (so ``5`` is an integer)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{OVERRIDES_SOURCE}: {short_repr(item)}: expected KEY=VALUE, e.g. algorithm.lr=1e-3", source=OVERRIDES_SOURCE)
        try:
            value = yaml.load(text, Loader=_Loader) if text.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{OVERRIDES_SOURCE}: {key}: invalid value {short_repr(text)}: {problem}", source=OVERRIDES_SOURCE, key=key) from None
        if _cycle(value) is not None:
            raise ConfigError(f"{OVERRIDES_SOURCE}: {key}: a YAML alias refers to itself (a recursive structure)", source=OVERRIDES_SOURCE, key=key)
        out[key] = value
    return out


def quick_overrides() -> dict:
    """Overrides for a one-minute smoke run (``tune_configs/quick.yaml`` is the
    defaults with these applied)."""
    return {
        "experiment.name": "quick",
        "experiment.stop.training_iteration": 2,
        "experiment.stop.timesteps_total": None,
        "experiment.stop.time_budget": "10m",
        "experiment.checkpoint.every_iterations": 1,
        "experiment.checkpoint.every_minutes": None,
        "experiment.checkpoint.keep": 1,
        "env.episode_length": 256,
        "algorithm.train_batch_size": 512,
        "algorithm.minibatch_size": 128,
        "algorithm.num_epochs": 2,
        "algorithm.actor_hiddens": [32, 32],
        "algorithm.critic_hiddens": [32, 32],
        "algorithm.critic_warmup_steps": 512,
        "algorithm.teacher_kl_steps": 1024,
        "training.warm_start_steps": 4000,
        "training.warm_start_epochs": 1,
        "resources.num_env_runners": 0,
        "resources.num_envs_per_env_runner": 2,
        "evaluation.every_iterations": 1,
        "evaluation.episodes": 1,
        "evaluation.episode_length": 256,
        "evaluation.full_split": False,
    }
