"""``algospace tune``: hyperparameter search with Optuna (TPE) inside Ray Tune.

The HPO YAML is a training config (every section of ``tune_configs/mappo.yaml``,
inline, or ``base: other.yaml`` plus sections that replace its keys) and a
``search:`` section::

    search:
      trials: 30                    # trials run by this process
      max_concurrent: auto          # or an integer; auto: what the CPUs/GPUs hold
      metric: val_sharpe            # objective (a key of every result)
      mode: max
      multi_objective: false        # true: also second_metric (a Pareto front)
      second_metric: val_max_drawdown
      second_mode: min
      scheduler: {type: asha, grace_period: 10, max_t: null, reduction_factor: 3}
      sampler_seed: 0
      study_name: algospace-hpo
      study_storage: null           # RDB URL or sqlite file shared by several machines
      top_k: 10
      space:
        algorithm.lr: {type: loguniform, low: 1.0e-5, high: 1.0e-3}
        algorithm.actor_hiddens: {type: choice, values: [[64, 64], [128, 128]]}
        env.w_shared: {type: uniform, low: 0.5, high: 1.0}

Everything is validated before Ray starts, with the one-line
:class:`~rllib_algospace.config.ConfigError` of ``config.py``; every value of a
distribution (both bounds, a real number between them, every choice) is applied
to the base config with ``TrainConfig.with_overrides``, so a key or a value the
trainer would reject is reported here.

How a trial is built: Optuna samples a flat dict of the dotted keys; Tune
passes it, with the base config, to :class:`AlgospaceTrial` (a ``MAPPO``
subclass) whose constructor turns it into a full ``MAPPOConfig``
(``TrainConfig.with_overrides`` -> ``build_algorithm_config``). The trainable
is importable (``rllib_algospace.hpo.AlgospaceTrial``), so ``Tuner.restore``
works.

The Optuna study always lives in an RDB storage: by default a sqlite file
under the experiment folder, or ``--study-storage`` (a sqlite file on a shared
Drive folder, or a PostgreSQL URL) that several processes and machines share.
With a shared study each process samples with its own seed (``sampler_seed`` +
a hash of host, pid and run), recorded in ``search_info.json`` and on every
trial. At the end: a table of the best trials (printed, ``best_trials.csv``,
``best_trials.md``), ``best_config.yaml`` (a full training config for
``algospace train --config``) and Optuna's optimisation-history and
parameter-importance plots, all in the experiment folder.

Ray, Optuna and torch are imported only when a search runs (validation needs
none of them).
"""
from __future__ import annotations

import csv
import difflib
import io
import json
import logging
import math
import os
import re
import socket
import time
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping


from rllib_algospace.artifacts import describe_failure
from rllib_algospace.config import (
    DEFAULTS_SOURCE,
    SCORE_MODES,
    AutoOr,
    Bool,
    ConfigError,
    Int,
    Str,
    TrainConfig,
    as_mapping,
    copy_tree,
    ConfigContext,
    read_yaml,
    short_repr,
    quick_overrides,
)

logger = logging.getLogger(__name__)

__all__ = [
    "Distribution",
    "SchedulerSpec",
    "SearchSpec",
    "HpoConfig",
    "SearchOutcome",
    "load_hpo_config",
    "run_search",
    "trial_train_config",
    "decode_params",
    "open_study",
    "AlgospaceTrial",
    "AlgospaceOptunaSearch",
    "DEFAULT_HPO_YAML",
]

DEFAULT_HPO_YAML = Path(__file__).resolve().parents[1] / "tune_configs" / "hpo.yaml"
DIST_TYPES = ("uniform", "loguniform", "int", "choice")
SCHEDULERS = ("asha", "median", "none")
SEARCH_SECTION = "search"
BASE_KEY = "base"
# Keys a search may vary: the algorithm, the environment, the seed, the preset.
SEARCHABLE_PREFIXES = ("algorithm.", "env.")
SEARCHABLE_KEYS = ("experiment.seed", "data.preset")
# The Tune config key holding what a trial needs besides the sampled values.
SPEC_KEY = "_algospace_hpo"
STUDY_FILE = "optuna_study.db"
INFO_FILE = "search_info.json"
TABLE_CSV = "best_trials.csv"
TABLE_MD = "best_trials.md"
BEST_CONFIG = "best_config.yaml"
HISTORY_PNG = "optimization_history.png"
IMPORTANCE_PNG = "param_importances.png"
# Sampled combinations the config rejects (e.g. minibatch > train batch) are
# told to Optuna as failed and sampled again, this many times per trial.
MAX_INVALID_SAMPLES = 20
# Values recorded on every Optuna trial (and shown in the table when present).
RECORDED_RESULT_KEYS = ("training_iteration", "val_sharpe", "val_max_drawdown", "val_total_return")

# The built-in search (the same as tune_configs/hpo.yaml; `load_hpo_config(None)`).
DEFAULT_BASE_OVERRIDES: dict[str, Any] = {
    "experiment.name": "hpo",
    "experiment.stop.training_iteration": 50,
    "experiment.checkpoint.every_iterations": 10,
    "experiment.checkpoint.keep": 1,
    "resources.num_env_runners": 0,
}
DEFAULT_SEARCH: dict[str, Any] = {
    "trials": 30,
    "max_concurrent": "auto",
    "metric": "val_sharpe",
    "mode": "max",
    "multi_objective": False,
    "second_metric": "val_max_drawdown",
    "second_mode": "min",
    "scheduler": {"type": "asha", "grace_period": 10, "max_t": None, "reduction_factor": 3},
    "sampler_seed": 0,
    "study_name": "algospace-hpo",
    "study_storage": None,
    "top_k": 10,
    "space": {
        "algorithm.lr": {"type": "loguniform", "low": 1.0e-5, "high": 1.0e-3},
        "algorithm.entropy_coeff": {"type": "loguniform", "low": 1.0e-4, "high": 5.0e-2},
        "algorithm.clip_param": {"type": "uniform", "low": 0.1, "high": 0.3},
        "algorithm.gamma": {"type": "uniform", "low": 0.95, "high": 0.999},
        "algorithm.lambda_": {"type": "uniform", "low": 0.9, "high": 1.0},
        "algorithm.minibatch_size": {"type": "choice", "values": [4096, 8192, 16384]},
        "algorithm.num_epochs": {"type": "int", "low": 3, "high": 10},
        "algorithm.actor_hiddens": {"type": "choice", "values": [[64, 64], [128, 128], [256, 256]]},
        "algorithm.critic_hiddens": {"type": "choice", "values": [[128, 128], [256, 256]]},
        "env.w_shared": {"type": "uniform", "low": 0.5, "high": 1.0},
    },
}
# --quick: tiny values for the keys of the space that make trials slow.
QUICK_SPACE = {
    "algorithm.actor_hiddens": {"type": "choice", "values": [[16, 16], [32, 32]]},
    "algorithm.critic_hiddens": {"type": "choice", "values": [[16, 16], [32, 32]]},
    "algorithm.minibatch_size": {"type": "choice", "values": [64, 128]},
    "algorithm.num_epochs": {"type": "int", "low": 1, "high": 2},
    "algorithm.train_batch_size": {"type": "choice", "values": [256, 512]},
    "env.episode_length": {"type": "choice", "values": [128, 256]},
}
QUICK_ITERATIONS = 2
QUICK_TRIALS = 2


# ---------------------------------------------------------------------------
# The search section
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Distribution:
    """One searched key: ``uniform``/``loguniform`` (low, high[, step]),
    ``int`` (low..high inclusive[, step][, log]) or ``choice`` (values)."""

    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    values: tuple = ()

    @property
    def encoded(self) -> bool:
        """Choices Optuna cannot store as they are (lists) travel as JSON strings."""
        return self.type == "choice" and any(not _is_primitive(v) for v in self.values)

    def optuna(self):
        import optuna

        if self.type == "uniform":
            return optuna.distributions.FloatDistribution(self.low, self.high, step=self.step)
        if self.type == "loguniform":
            return optuna.distributions.FloatDistribution(self.low, self.high, log=True)
        if self.type == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return optuna.distributions.CategoricalDistribution([_encode(v) for v in self.values] if self.encoded else list(self.values))

    def to_dict(self) -> dict:
        if self.type == "choice":
            return {"type": "choice", "values": [_plain(v) for v in self.values]}
        out: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high}
        if self.step is not None:
            out["step"] = self.step
        if self.log:
            out["log"] = True
        return out


@dataclass(frozen=True)
class SchedulerSpec:
    type: str = "asha"
    grace_period: int | None = None  # null: evaluation.every_iterations (judge after the first validation)
    max_t: int | None = None  # null: experiment.stop.training_iteration
    reduction_factor: float = 3.0


@dataclass(frozen=True)
class SearchSpec:
    trials: int = 30
    max_concurrent: int | str = "auto"
    metric: str = "val_sharpe"
    mode: str = "max"
    multi_objective: bool = False
    second_metric: str = "val_max_drawdown"
    second_mode: str = "min"
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    sampler_seed: int = 0
    study_name: str = "algospace-hpo"
    study_storage: str | None = None
    top_k: int = 10
    space: tuple[Distribution, ...] = ()

    @property
    def metrics(self) -> list[str]:
        return [self.metric, self.second_metric] if self.multi_objective else [self.metric]

    @property
    def modes(self) -> list[str]:
        return [self.mode, self.second_mode] if self.multi_objective else [self.mode]

    @property
    def directions(self) -> list[str]:
        return ["maximize" if m == "max" else "minimize" for m in self.modes]

    @property
    def encoded_keys(self) -> list[str]:
        return [d.key for d in self.space if d.encoded]


@dataclass(frozen=True)
class HpoConfig:
    base: TrainConfig
    search: SearchSpec
    source: str = DEFAULTS_SOURCE
    quick: bool = False

    @property
    def max_t(self) -> int | None:
        return self.search.scheduler.max_t or self.base.experiment.stop.training_iteration


_SEARCH_KINDS = {
    "trials": Int(lo=1),
    "max_concurrent": AutoOr(lo=1, integer=True),
    "metric": Str(),
    "mode": Str(choices=SCORE_MODES),
    "multi_objective": Bool(),
    "second_metric": Str(),
    "second_mode": Str(choices=SCORE_MODES),
    "sampler_seed": Int(lo=0),
    "study_name": Str(),
    "study_storage": Str(optional=True),
    "top_k": Int(lo=1),
}
_SEARCH_KEYS = list(_SEARCH_KINDS) + ["scheduler", "space"]
_SCHEDULER_KEYS = ("type", "grace_period", "max_t", "reduction_factor")
_DIST_KEYS = {
    "uniform": ("type", "low", "high", "step"),
    "loguniform": ("type", "low", "high"),
    "int": ("type", "low", "high", "step", "log"),
    "choice": ("type", "values"),
}


class _SearchCtx(ConfigContext):
    """``config._Ctx`` (errors name the file, or ``overrides``), listing known
    search keys in their documented order rather than sorted."""

    def unknown(self, key: str, name: Any, known: Iterable[str]):
        known = list(known)
        near = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
        hint = f"did you mean {near[0]}?" if near else f"known keys: {', '.join(known)}"
        src = self.source_of(key)
        raise ConfigError(f"{src}: unknown key {key} ({hint})", source=src, key=key)

    def mapping(self, raw: Any, key: str) -> dict:
        return as_mapping(raw, key, self)


def _is_primitive(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def _encode(v: Any) -> str:
    return json.dumps(_plain(v))


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _override_problem(exc: ConfigError, key: str) -> str:
    """The problem part of a ``with_overrides`` error (without its source and key)."""
    text = str(exc)
    for prefix in (f"{exc.source}: {key}: ", f"{exc.source}: "):
        if exc.source and text.startswith(prefix):
            return text[len(prefix):]
    return text


def _check_target(base: TrainConfig, key: str, value: Any) -> str | None:
    """None if ``base`` accepts ``key: value``, else the problem."""
    try:
        base.with_overrides({key: value})
    except ConfigError as exc:
        return _override_problem(exc, key)
    return None


def _parse_distribution(key: str, raw: Any, base: TrainConfig | None, ctx: _SearchCtx) -> Distribution:
    where = f"search.space.{key}"
    if not (any(key.startswith(p) for p in SEARCHABLE_PREFIXES) or key in SEARCHABLE_KEYS):
        ctx.fail(where, f"cannot be searched (only {', '.join(p + '*' for p in SEARCHABLE_PREFIXES)}, {', '.join(SEARCHABLE_KEYS)})")
    spec = ctx.mapping(raw, where)
    if "type" not in spec:
        ctx.fail(where, f"missing type (one of {', '.join(DIST_TYPES)})")
    kind = spec["type"]
    if kind not in DIST_TYPES:
        near = difflib.get_close_matches(kind, DIST_TYPES, n=1) if isinstance(kind, str) else []
        ctx.fail(f"{where}.type", f"unknown distribution type {short_repr(kind)} (one of {', '.join(DIST_TYPES)}){f'; did you mean {near[0]}?' if near else ''}")
    for name in spec:
        if name not in _DIST_KEYS[kind]:
            ctx.unknown(f"{where}.{name}", name, _DIST_KEYS[kind])
    # A TrainConfig key at all? (checked with a value of the right type, below)
    if kind == "choice":
        if "values" not in spec:
            ctx.fail(where, "missing values (a non-empty list)")
        values = spec["values"]
        if not isinstance(values, list):
            ctx.fail(f"{where}.values", f"expected a non-empty list, got {short_repr(values)}")
        if not values:
            ctx.fail(f"{where}.values", "must not be empty")
        seen = []
        for i, v in enumerate(values):
            if _plain(v) in seen:
                ctx.fail(f"{where}.values", f"duplicate value {short_repr(v)}")
            seen.append(_plain(v))
            if isinstance(v, Mapping):
                ctx.fail(f"{where}.values[{i}]", f"mappings cannot be searched, got {short_repr(v)}")
        dist = Distribution(key, "choice", values=tuple(tuple(v) if isinstance(v, list) else v for v in values))
        samples = [(f".values[{i}]", v) for i, v in enumerate(values)]
    else:
        for bound in ("low", "high"):
            if bound not in spec:
                ctx.fail(where, f"missing {bound}")
            v = spec[bound]
            if kind == "int" and not is_int(v):
                ctx.fail(f"{where}.{bound}", f"expected an integer, got {short_repr(v)}")
            if not _is_num(v):
                ctx.fail(f"{where}.{bound}", f"expected a number, got {short_repr(v)}")
        low, high = spec["low"], spec["high"]
        if low >= high:
            ctx.fail(where, f"low ({low}) must be < high ({high})")
        log = False
        if kind == "loguniform" and low <= 0:
            ctx.fail(f"{where}.low", f"must be > 0 for loguniform, got {short_repr(low)}")
        step = spec.get("step")
        if step is not None:
            if kind == "int" and not is_int(step):
                ctx.fail(f"{where}.step", f"expected an integer, got {short_repr(step)}")
            if not _is_num(step) or step <= 0:
                ctx.fail(f"{where}.step", f"must be a number > 0, got {short_repr(step)}")
            if step > high - low:
                ctx.fail(f"{where}.step", f"must not exceed high - low ({high - low}), got {short_repr(step)}")
            if kind == "int" and (high - low) % step:
                ctx.fail(f"{where}.step", f"high - low ({high - low}) must be a multiple of step ({step})")
        if kind == "int":
            log = spec.get("log", False)
            if not isinstance(log, bool):
                ctx.fail(f"{where}.log", f"expected true or false, got {short_repr(log)}")
            if log and (low < 1 or (step not in (None, 1))):
                ctx.fail(f"{where}.log", "log needs low >= 1 and step 1")
        dist = Distribution(key, kind, low=low, high=high, step=step, log=log)
        samples = [(".low", low), (".high", high)]
        if kind != "int":
            samples.append((".type", float(low + (high - low) / 3.0)))
    for suffix, value in samples if base is not None else ():
        problem = _check_target(base, key, value)
        if problem is None:
            continue
        if problem.startswith("unknown key"):
            hint = re.search(r"\((.*)\)$", problem)
            ctx.fail(where, f"not a training config key{f' ({hint.group(1)})' if hint else ''}")
        if suffix == ".type":
            ctx.fail(where, f"{problem} (type {kind} samples real numbers; use type: int or choice for this key)")
        ctx.fail(where + suffix, problem)
    return dist


def _parse_scheduler(raw: Any, base: TrainConfig | None, ctx: _SearchCtx) -> SchedulerSpec:
    raw = ctx.mapping(raw, "search.scheduler")
    for name in raw:
        if name not in _SCHEDULER_KEYS:
            ctx.unknown(f"search.scheduler.{name}", name, _SCHEDULER_KEYS)
    kw: dict[str, Any] = {}
    kinds = {
        "type": Str(choices=SCHEDULERS),
        "grace_period": Int(lo=1, optional=True),
        "max_t": Int(lo=1, optional=True),
        "reduction_factor": None,
    }
    for name, value in raw.items():
        key = f"search.scheduler.{name}"
        if name == "reduction_factor":
            if not _is_num(value) or value <= 1:
                ctx.fail(key, f"must be a number > 1, got {short_repr(value)}")
            kw[name] = float(value)
        else:
            kw[name] = kinds[name](value, lambda problem, key=key: ctx.fail(key, problem))
    spec = SchedulerSpec(**kw)
    if base is None:
        return spec
    if spec.grace_period is None:
        spec = SchedulerSpec(**{**kw, "grace_period": max(1, base.evaluation.every_iterations)})
    if spec.type == "none":
        return spec
    max_t = spec.max_t or base.experiment.stop.training_iteration
    if max_t is None:
        ctx.fail("search.scheduler.max_t", "set it (experiment.stop.training_iteration is null)")
    if spec.grace_period > max_t:
        ctx.fail("search.scheduler.grace_period", f"must not exceed max_t ({max_t}), got {spec.grace_period}")
    return spec


def _parse_search(raw: Any, base: TrainConfig | None, ctx: _SearchCtx) -> SearchSpec:
    raw = ctx.mapping(raw, SEARCH_SECTION)
    for name in raw:
        if name not in _SEARCH_KEYS:
            ctx.unknown(f"search.{name}", name, _SEARCH_KEYS)
    kw: dict[str, Any] = {}
    for name, kind in _SEARCH_KINDS.items():
        if name in raw:
            key = f"search.{name}"
            kw[name] = kind(raw[name], lambda problem, key=key: ctx.fail(key, problem))
    if "scheduler" in raw:
        kw["scheduler"] = _parse_scheduler(raw["scheduler"], base, ctx)
    space_raw = ctx.mapping(raw.get("space"), "search.space")
    if not space_raw:
        ctx.fail("search.space", "must name at least one key to search, e.g. algorithm.lr: {type: loguniform, low: 1.0e-5, high: 1.0e-3}")
    kw["space"] = tuple(_parse_distribution(k, v, base, ctx) for k, v in space_raw.items())
    spec = SearchSpec(**kw)
    if "scheduler" not in raw:
        spec = SearchSpec(**{**kw, "scheduler": _parse_scheduler({}, base, ctx)})
    if base is None:
        return spec
    every = base.evaluation.every_iterations
    for key, metric in (("search.metric", spec.metric), ("search.second_metric", spec.second_metric if spec.multi_objective else None)):
        if metric and metric.startswith("val_") and every == 0:
            ctx.fail(key, f"{metric!r} is a validation metric but evaluation.every_iterations is 0 (validation off)")
    if spec.multi_objective and spec.second_metric == spec.metric:
        ctx.fail("search.second_metric", f"must differ from search.metric ({spec.metric!r})")
    sched = spec.scheduler
    if sched.type != "none" and spec.metric.startswith("val_") and every > sched.grace_period:
        ctx.fail(
            "search.scheduler.grace_period",
            f"({sched.grace_period}) is less than evaluation.every_iterations ({every}): trials would be judged before their first validation",
        )
    stop_iters = base.experiment.stop.training_iteration
    if spec.metric.startswith("val_") and stop_iters is not None and stop_iters < every:
        ctx.fail("experiment.stop.training_iteration", f"({stop_iters}) is less than evaluation.every_iterations ({every}): no trial would be validated")
    return spec


def check_search_section(raw: Any, ctx: Any) -> None:
    """The ``search`` section where a training config is loaded
    (``config.EXTRA_SECTIONS``): its structure and distributions. Whether each
    key and value suits the training config is checked by :func:`load_hpo_config`."""
    _parse_search(raw, None, _SearchCtx(ctx.source, getattr(ctx, "overridden", ())))


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------
def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else copy_tree(v)
        return out
    return copy_tree(over)


def _train_sections() -> list[str]:
    return [f.name for f in fields(TrainConfig) if not f.metadata.get("internal")]


def _default_raw() -> dict:
    base = TrainConfig().with_overrides(DEFAULT_BASE_OVERRIDES).to_dict()
    return {**base, SEARCH_SECTION: copy_tree(DEFAULT_SEARCH)}


def load_hpo_config(
    path: str | os.PathLike | None = None,
    *,
    trials: int | None = None,
    storage: str | None = None,
    name: str | None = None,
    data: str | None = None,
    study_storage: str | None = None,
    quick: bool = False,
    overrides: Mapping[str, Any] | None = None,
    check_files: bool = False,
) -> HpoConfig:
    """Load and validate an HPO YAML (``None``: the built-in search, the same as
    ``tune_configs/hpo.yaml``). ``trials``/``storage``/``name``/``data``/
    ``study_storage`` are the CLI flags; ``overrides`` are dotted training keys;
    ``quick`` makes it a one-to-two-minute smoke search. Raises
    :class:`ConfigError` (one line) on any problem, before Ray starts."""
    if path is None:
        raw, source = _default_raw(), DEFAULTS_SOURCE
    else:
        raw, source = read_yaml(path), os.fspath(path)
    ctx = _SearchCtx(source)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping of sections (the training sections and search) at the top level, got {type(raw).__name__}", source=source)
    raw = ctx.mapping(raw, "<top level>")
    known = [*_train_sections(), SEARCH_SECTION, BASE_KEY]
    for k in raw:
        if k not in known:
            ctx.unknown(k, k, known)
    train_raw = {k: v for k, v in raw.items() if k not in (SEARCH_SECTION, BASE_KEY)}
    if BASE_KEY in raw:
        base_path = raw[BASE_KEY]
        if not isinstance(base_path, str) or not base_path.strip():
            ctx.fail(BASE_KEY, f"expected the path of a training YAML, got {short_repr(base_path)}")
        base_path = os.path.expanduser(base_path)
        if not os.path.isabs(base_path) and path is not None:
            base_path = os.path.join(os.path.dirname(os.path.abspath(os.fspath(path))), base_path)
        base_raw = read_yaml(base_path)
        TrainConfig.from_dict(base_raw, source=base_path)  # errors name the base file
        train_raw = _merge(base_raw, train_raw)
    base = TrainConfig.from_dict(train_raw, source=source)

    flag_overrides: dict[str, Any] = {}
    if quick:
        flag_overrides.update({k: v for k, v in quick_overrides().items() if k != "experiment.name"})
        flag_overrides["experiment.name"] = f"{base.experiment.name}-quick"
        flag_overrides["experiment.stop.training_iteration"] = QUICK_ITERATIONS
    flag_overrides.update(dict(overrides or {}))
    for key, value in (("experiment.storage_path", storage), ("experiment.name", name), ("data.path", data)):
        if value is not None:
            flag_overrides[key] = value
    if flag_overrides:
        base = base.with_overrides(flag_overrides)
    if check_files:
        base.check_files()

    search_raw = ctx.mapping(raw.get(SEARCH_SECTION), SEARCH_SECTION)
    if SEARCH_SECTION not in raw:
        ctx.fail(SEARCH_SECTION, "missing section (trials, metric, mode, scheduler, space, ...)")
    search_raw = copy_tree(search_raw)
    overridden = []
    if quick:
        search_raw["trials"] = QUICK_TRIALS
        search_raw["max_concurrent"] = 1
        sched = dict(search_raw.get("scheduler") or {})
        if sched.get("type", "asha") != "none":
            sched.update({"grace_period": 1, "max_t": QUICK_ITERATIONS})
            if sched.get("type", "asha") == "asha":
                sched["reduction_factor"] = 2
        search_raw["scheduler"] = sched
        if isinstance(search_raw.get("study_name"), str):
            search_raw["study_name"] = f"{search_raw['study_name']}-quick"
        if isinstance(search_raw.get("space"), Mapping):
            search_raw["space"] = {k: copy_tree(QUICK_SPACE.get(k, v)) for k, v in search_raw["space"].items()}
    if trials is not None:
        search_raw["trials"] = trials
        overridden.append("search.trials")
    if study_storage is not None:
        search_raw["study_storage"] = study_storage
        overridden.append("search.study_storage")
    search = _parse_search(search_raw, base, _SearchCtx(source, overridden))
    return HpoConfig(base=base, search=search, source=source, quick=quick)


# ---------------------------------------------------------------------------
# What a trial runs
# ---------------------------------------------------------------------------
def decode_params(params: Mapping[str, Any], encoded_keys: Iterable[str]) -> dict:
    """Optuna's values -> config values (JSON-encoded list choices back to lists)."""
    encoded = set(encoded_keys)
    return {k: (json.loads(v) if k in encoded and isinstance(v, str) else v) for k, v in params.items()}


def _trial_spec(hpo: HpoConfig, data_path: str, experiment: str, concurrent: int = 1) -> dict:
    from rllib_algospace.training import warm_start_file

    base = hpo.base.to_dict()
    # each trial's resources (its learner's threads) are its share of the machine
    base["resources"]["max_concurrent_trials"] = max(1, int(concurrent))
    return {
        "base": base,
        "source": hpo.source,
        "data_path": data_path,
        "keys": [d.key for d in hpo.search.space],
        "encoded": hpo.search.encoded_keys,
        "experiment": experiment,
        # trials clone their teacher here (one file per network shape and seed)
        "warm_start_dir": os.path.dirname(warm_start_file(hpo.base)),
    }


def trial_train_config(config: Mapping[str, Any]) -> TrainConfig:
    """The ``TrainConfig`` of one trial from its Tune config (the base config and
    the sampled dotted keys)."""
    spec = config[SPEC_KEY]
    params = {k: config[k] for k in spec["keys"] if k in config}
    base = TrainConfig.from_dict(spec["base"], source=spec["source"])
    return base.with_overrides(decode_params(params, spec["encoded"]))


def _trial_algorithm_config(config: Mapping[str, Any]):
    from rllib_algospace.training import build_algorithm_config, warm_start_for

    spec = config[SPEC_KEY]
    cfg = trial_train_config(config)
    warm_start = warm_start_for(cfg, spec["data_path"], spec["warm_start_dir"]) if spec.get("warm_start_dir") else None
    return build_algorithm_config(cfg, data_path=spec["data_path"], warm_start=warm_start)


def _make_trial_class():
    from rllib_algospace.mappo import MAPPO

    class AlgospaceTrial(MAPPO):
        """MAPPO whose Tune config is ``{dotted key: sampled value, ..., SPEC_KEY: base}``:
        turned into a full ``MAPPOConfig`` before the algorithm is built."""

        def __init__(self, config=None, env=None, **kwargs):
            if isinstance(config, Mapping) and SPEC_KEY in config:
                config = _trial_algorithm_config(config)
            super().__init__(config=config, env=env, **kwargs)

        @classmethod
        def default_resource_request(cls, config):
            if isinstance(config, Mapping) and SPEC_KEY in config:
                config = _trial_algorithm_config(config).to_dict()
            return super().default_resource_request(config)

    AlgospaceTrial.__module__ = __name__
    AlgospaceTrial.__qualname__ = "AlgospaceTrial"
    return AlgospaceTrial


def _make_searcher_class():
    import optuna
    from optuna.trial import TrialState
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

    class AlgospaceOptunaSearch(OptunaSearch):
        """OptunaSearch that (1) checks each sampled combination against the
        config and asks again for rejected ones, (2) records the worker, its
        sampler seed and the trial's results on every Optuna trial, (3) tells
        Optuna FAIL (not a stuck RUNNING) for errored trials and NaN results,
        and on resume (4) adopts the trials Optuna handed out after Tune's last
        snapshot of the searcher (left RUNNING by a kill): the next Tune
        trials run them; and (5) can be pointed at a moved study storage."""

        def __init__(self, *, space, metric, mode, sampler, study_name, storage, trial_spec: dict, worker: dict, shared: bool = False):
            self._algospace = {"spec": trial_spec, "worker": dict(worker), "shared": shared}
            self._on_restore = None
            self._orphans = []
            super().__init__(space=space, metric=metric, mode=mode, sampler=sampler, study_name=study_name, storage=storage)

        # -- sampling --------------------------------------------------------
        def _accept(self, trial_id, ot_trial, params) -> bool:
            spec = self._algospace["spec"]
            base = TrainConfig.from_dict(spec["base"], source=spec["source"])
            try:
                base.with_overrides(decode_params(params, spec["encoded"]))
            except ConfigError as exc:
                ot_trial.set_user_attr("invalid", str(exc))
                self._ot_study.tell(ot_trial, state=TrialState.FAIL)
                del self._ot_trials[trial_id]
                logger.warning("sampled an invalid combination (%s); sampling again", exc)
                return False
            for k, v in self._algospace["worker"].items():
                ot_trial.set_user_attr(k, v)
            ot_trial.set_user_attr("tune_trial_id", trial_id)
            return True

        def suggest(self, trial_id):
            while getattr(self, "_orphans", None):
                number_id = self._orphans.pop(0)
                frozen = self._ot_study._storage.get_trial(number_id)
                if frozen.state != TrialState.RUNNING:
                    continue
                ot_trial = optuna.Trial(self._ot_study, number_id)
                self._ot_trials[trial_id] = ot_trial
                params = dict(frozen.params)
                if self._accept(trial_id, ot_trial, params):
                    print(f"resume: Tune trial {trial_id} runs Optuna trial {frozen.number}, handed out before the interruption", flush=True)
                    return params
            for _ in range(MAX_INVALID_SAMPLES):
                params = super().suggest(trial_id)
                if self._accept(trial_id, self._ot_trials[trial_id], params):
                    return params
            logger.error("%d sampled combinations in a row were invalid; stopping the search", MAX_INVALID_SAMPLES)
            return Searcher.FINISHED

        # -- results ---------------------------------------------------------
        def on_trial_result(self, trial_id, result):
            value = result.get(self.metric) if isinstance(self.metric, str) else None
            if isinstance(self.metric, list) or value is None or not _finite(value) or trial_id not in self._ot_trials:
                return
            super().on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id, result=None, error=False):
            metrics = self.metric if isinstance(self.metric, list) else [self.metric]
            values = [result.get(m) for m in metrics] if result else None
            ok = not error and values is not None and all(v is not None and _finite(v) for v in values)
            if trial_id in self._completed_trials:
                # An errored trial, resumed and finished after all: record it anew.
                old = self._ot_trials.get(trial_id)
                if ok and old is not None:
                    frozen = self._ot_study._storage.get_trial(old._trial_id)
                    if frozen.state == TrialState.FAIL:
                        self._ot_study.add_trial(
                            optuna.trial.create_trial(
                                params=frozen.params,
                                distributions=frozen.distributions,
                                values=[float(v) for v in values],
                                user_attrs={**frozen.user_attrs, **_recorded(result)},
                            )
                        )
                return
            ot_trial = self._ot_trials.get(trial_id)
            if ot_trial is None:
                logger.warning("trial %s is unknown to the Optuna searcher; not recorded in the study", trial_id)
                return
            try:
                if result:
                    for k, v in _recorded(result).items():
                        ot_trial.set_user_attr(k, v)
                if ok:
                    self._ot_study.tell(ot_trial, [float(v) for v in values] if len(values) > 1 else float(values[0]))
                else:
                    ot_trial.set_user_attr("failure", "error" if error else f"no finite {', '.join(metrics)} in the last result")
                    self._ot_study.tell(ot_trial, state=TrialState.FAIL)
            except Exception as exc:  # never end the search over bookkeeping
                logger.warning("could not record trial %s in the study: %s", trial_id, exc)
            self._completed_trials.add(trial_id)

        # -- resume ----------------------------------------------------------
        def restore(self, checkpoint_path):
            on_restore = getattr(self, "_on_restore", None) or {}
            super().restore(checkpoint_path)
            self._on_restore = None
            url = on_restore.get("url")
            if url and url != getattr(self._storage, "url", None):
                storage = _rdb_storage(url)
                study = optuna.load_study(study_name=self._study_name, storage=storage, sampler=self._ot_study.sampler)
                self._ot_trials = {tid: optuna.Trial(study, t._trial_id) for tid, t in self._ot_trials.items()}
                self._storage, self._ot_study = storage, study
            if on_restore.get("worker"):
                self._algospace["worker"]["worker"] = on_restore["worker"]
            # Trials of this experiment that Optuna handed out but Tune's snapshot does not know.
            known = {t._trial_id for t in self._ot_trials.values()}
            experiment = self._algospace["worker"].get("experiment")
            self._orphans = [
                t._trial_id
                for t in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t._trial_id not in known
                and (t.user_attrs.get("experiment") == experiment or ("experiment" not in t.user_attrs and not self._algospace.get("shared")))
            ]

    AlgospaceOptunaSearch.__module__ = __name__
    AlgospaceOptunaSearch.__qualname__ = "AlgospaceOptunaSearch"
    return AlgospaceOptunaSearch


_LAZY_CLASSES = {"AlgospaceTrial": _make_trial_class, "AlgospaceOptunaSearch": _make_searcher_class}


def _lazy(name: str):
    cls = globals().get(name)
    if cls is None:
        cls = globals()[name] = _LAZY_CLASSES[name]()
    return cls


def __getattr__(name: str):
    """``AlgospaceTrial`` and ``AlgospaceOptunaSearch`` are built on first use
    (they import Ray and torch); pickles find them here by name."""
    if name in _LAZY_CLASSES:
        return _lazy(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _recorded(result: Mapping) -> dict:
    out = {}
    for k in RECORDED_RESULT_KEYS:
        v = result.get(k)
        if v is not None and _finite(v):
            out[k] = float(v) if k != "training_iteration" else int(v)
    return out


# ---------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------
JOURNAL_SCHEME = "journal://"
JOURNAL_SUFFIXES = (".journal", ".log")


def _storage_url(value: str) -> str:
    """A storage URL as given; a plain file path -> a journal URL (a file
    ending in .journal or .log) or a sqlite URL (anything else), absolute."""
    if "://" in value:
        return value
    path = os.path.abspath(os.path.expanduser(value))
    if path.endswith(JOURNAL_SUFFIXES):
        return f"{JOURNAL_SCHEME}{path}"
    return f"sqlite:///{path}"


def _journal_storage(url: str):
    """Optuna's ``JournalStorage`` on a file: appends under a lock file,
    made for network file systems such as a mounted Google Drive, where
    SQLite's locking fails."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = url[len(JOURNAL_SCHEME) :]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))


def _mask(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _rdb_storage(url: str, attempts: int = 8):
    """The study storage of ``url``: a journal file (``journal:///path``),
    else ``optuna.storages.RDBStorage``; sqlite writers wait for each other
    (60 s lock timeout) and creating the tables is retried when several
    processes open a new file at once."""
    import optuna
    import sqlalchemy.exc

    if url.startswith(JOURNAL_SCHEME):
        return _journal_storage(url)

    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
        db = url.split("///", 1)[1] if "///" in url else ""
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as exc:
            if attempt == attempts - 1:
                raise ConfigError(f"study storage {_mask(url)}: {' '.join(str(exc).split())[:300]}") from None
            time.sleep(0.2 + 0.3 * attempt + (os.getpid() % 7) * 0.05)
        except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError, ImportError, ValueError) as exc:
            raise ConfigError(f"study storage {_mask(url)}: cannot open: {' '.join(str(exc).split())[:300]}") from None
    raise AssertionError("unreachable")


def open_study(url: str, study_name: str, directions: list[str] | None = None, metrics: list[str] | None = None, sampler=None):
    """Create or load (``load_if_exists``) the study ``study_name`` in the RDB
    storage ``url``; with ``directions``/``metrics``, check that an existing
    study optimises the same objectives. Returns ``(storage, study)``."""
    import optuna
    import sqlalchemy.exc

    storage = _rdb_storage(url)
    for attempt in range(8):
        try:
            if directions is None:
                study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
            else:
                study = optuna.create_study(storage=storage, study_name=study_name, directions=directions, load_if_exists=True, sampler=sampler)
            break
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError, optuna.exceptions.DuplicatedStudyError):
            if attempt == 7:
                raise
            time.sleep(0.2 + 0.3 * attempt)
        except KeyError:
            raise ConfigError(f"study storage {_mask(url)}: no study named {study_name!r}") from None
    if directions is not None:
        have = [d.name.lower() for d in study.directions]
        if have != directions:
            raise ConfigError(f"study {study_name!r} in {_mask(url)} has directions {have}, this search {directions}; use another search.study_name")
    if metrics is not None:
        recorded = study.user_attrs.get("metrics")
        if recorded is None:
            study.set_user_attr("metrics", list(metrics))
        elif list(recorded) != list(metrics):
            raise ConfigError(f"study {study_name!r} in {_mask(url)} optimises {recorded}, this search {list(metrics)}; use another search.study_name")
    return storage, study


def _fail_stale_trials(url: str, study_name: str, experiment: str) -> None:
    """After a finished search, Optuna trials of this experiment still RUNNING
    (handed out just before a kill and not run after all) are marked FAIL."""
    from optuna.trial import TrialState

    try:
        _, study = open_study(url, study_name)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get("experiment") == experiment:
                study._storage.set_trial_user_attr(t._trial_id, "failure", "handed out before an interruption and not run")
                study.tell(t.number, state=TrialState.FAIL)
    except Exception as exc:  # bookkeeping only
        logger.warning("could not clean up stale trials: %s", exc)


def worker_seed(base_seed: int, shared: bool, run: int = 0) -> tuple[int, str]:
    """This process's sampler seed and worker name. A private study samples
    with the base seed (reproducible); a shared one adds a hash of host, pid
    and run number so parallel workers do not repeat each other."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    if not shared:
        return int(base_seed), worker
    return (int(base_seed) + zlib.crc32(f"{worker}:{run}".encode())) % (2**31 - 1), worker


_RUNS = {"n": 0}


# ---------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------
@dataclass
class SearchOutcome:
    experiment_path: str
    output_dir: str
    study_name: str
    study_storage: str  # password masked
    sampler_seed: int
    worker: str
    trials_complete: int  # in the study (all workers)
    trials_failed: int
    trials_this_run: int
    errors: list[str]
    best: dict | None  # {"number", "values", "params"}
    best_config: str | None
    table_csv: str | None
    table_md: str | None
    plots: list[str]
    notes: list[str]
    interrupted: bool = False


def _output_dir(hpo: HpoConfig) -> str:
    """The experiment folder, or (for URI storage) a local folder for the study
    file, tables and plots."""
    from rllib_algospace.training import experiment_path

    if hpo.base.experiment.storage_is_uri:
        return os.path.abspath(f"{hpo.base.experiment.name}-hpo")
    return experiment_path(hpo.base)


def _max_concurrent(hpo: HpoConfig, cpus: float, gpus: float, runners: int, gpus_per_learner: float, cpus_per_runner: float = 1.0) -> tuple[int, str]:
    """Trials at once. A trial takes a core for its own process, its env
    runners' share and its remote learners; its learner's torch threads then
    follow the cores its share leaves (``resources.max_concurrent_trials``)."""
    res = hpo.base.resources
    cpu_per = 1 + runners * cpus_per_runner + res.num_learners
    gpu_per = gpus_per_learner * max(1, res.num_learners)
    want = hpo.search.max_concurrent
    if want != "auto":
        return min(int(want), hpo.search.trials), f"max_concurrent: {want}"
    fit = int(cpus // cpu_per)
    if gpu_per > 0:
        fit = min(fit, int(gpus // gpu_per + 1e-9))
    n = max(1, min(fit, hpo.search.trials))
    return n, f"max_concurrent=auto -> {n} ({cpus:g} CPUs, {gpus:g} GPUs; a trial takes {cpu_per:g} CPU(s){f' and {gpu_per:g} GPU' if gpu_per else ''})"


def _scheduler(hpo: HpoConfig):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    s, search = hpo.search.scheduler, hpo.search
    if s.type == "asha":
        return ASHAScheduler(
            time_attr="training_iteration", metric=search.metric, mode=search.mode, max_t=hpo.max_t, grace_period=s.grace_period, reduction_factor=s.reduction_factor
        )
    if s.type == "median":
        return MedianStoppingRule(time_attr="training_iteration", metric=search.metric, mode=search.mode, grace_period=s.grace_period, min_samples_required=2)
    return FIFOScheduler()


def _read_info(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=str)
    os.replace(tmp, path)


def run_search(config: HpoConfig | str | os.PathLike | None = None, *, resume: bool = False, **load_kwargs) -> SearchOutcome:
    """Run (or, with ``resume``, continue) the search. ``config``: an
    :class:`HpoConfig`, or the path of an HPO YAML (``None``: the built-in
    search) loaded with ``load_hpo_config(config, **load_kwargs)``."""
    hpo = config if isinstance(config, HpoConfig) else load_hpo_config(config, check_files=True, **load_kwargs)
    import optuna
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from rllib_algospace import training
    from rllib_algospace.rllib_env import register

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import warnings

    # a resumed trial reports its first iterations again: Optuna keeps the first values
    warnings.filterwarnings("ignore", message="The reported value is ignored because this `step", category=UserWarning)
    search, base = hpo.search, hpo.base
    path = training.experiment_path(base)
    out_dir = _output_dir(hpo)
    os.makedirs(out_dir, exist_ok=True)
    info_path = os.path.join(out_dir, INFO_FILE)
    previous = _read_info(info_path) if resume else {}

    if resume and not hpo.base.experiment.storage_is_uri:
        from rllib_algospace.artifacts import keep_tuner_state

        note = keep_tuner_state(path)
        if note:
            print(note)
    if resume and not tune.Tuner.can_restore(path):
        raise FileNotFoundError(f"{path}: no search to resume there (run without --resume first)")
    if search.study_storage:
        url, shared = _storage_url(search.study_storage), True
    elif previous.get("study_storage_url"):
        url, shared = previous["study_storage_url"], bool(previous.get("shared"))
    elif previous.get("shared"):
        raise ConfigError(f"{path}: give --study-storage again to resume (its URL holds a password, which is not saved)")
    else:
        url, shared = _storage_url(os.path.join(out_dir, STUDY_FILE)), False
    _RUNS["n"] += 1
    seed, worker = worker_seed(search.sampler_seed, shared, _RUNS["n"])
    if resume and "sampler_seed" in previous:
        seed = int(previous["sampler_seed"])  # the restored sampler carries on
    info = {
        "worker": worker,
        "sampler_seed": seed,
        "base_sampler_seed": search.sampler_seed,
        "shared": shared,
        "study_name": search.study_name,
        "study_storage": _mask(url),
        "study_storage_url": url if _mask(url) == url else None,  # never a password in the file
        "experiment": path,
        "metrics": search.metrics,
        "modes": search.modes,
        "space": {d.key: d.to_dict() for d in search.space},
        "source": hpo.source,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "resumed": resume,
    }
    busy = ConfigError(
        f"{out_dir}: a search already uses this experiment folder; continue it with --resume, "
        "give this one its own name (--name), or delete the folder to start again"
    )
    if not resume and os.path.exists(info_path):
        raise busy
    storage, _study = open_study(url, search.study_name, search.directions, search.metrics)
    if not resume:
        try:
            with open(info_path, "x") as f:
                json.dump(info, f, indent=2)
        except FileExistsError:
            raise busy from None
    else:
        _write_json(info_path, {**previous, **{k: v for k, v in info.items() if k != "sampler_seed"}, "sampler_seed": seed})
    print(f"study: {search.study_name} in {_mask(url)} ({'shared' if shared else 'private'}); {len(_study.trials)} trial(s) there so far")
    print(f"sampler: TPE, seed {seed}" + (f" (sampler_seed {search.sampler_seed} + hash of worker {worker})" if shared else "") + f"; objective: {', '.join(f'{m} ({d})' for m, d in zip(search.metrics, search.modes))}")

    resources = training.resolve_resources(base)
    for note in resources.notes:
        print(note)
    data_path = training.dataset_path(base)
    print(f"data: {data_path}")
    training.require_storage(base)
    if not resume:
        training.write_run_record(base, data_path, None)  # its score ranks the trials' checkpoints everywhere

    # per-trial budgets are Tune stops here, and the scheduler stops trials early: no fixed total
    callbacks = training.driver_callbacks(base, time_budget_s=None, stop_iterations=None)
    callbacks.append(training.trials_progress_callback(hpo.search.trials))
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=base.experiment.verbose >= 2, configure_logging=False)
    register()
    trial_cls, searcher_cls = _lazy("AlgospaceTrial"), _lazy("AlgospaceOptunaSearch")

    if resume:
        print(f"resuming {path}")
        tuner = tune.Tuner.restore(path, trainable=trial_cls, resume_unfinished=True, resume_errored=True)
        training.replace_driver_callbacks(tuner, callbacks)
        restored = tuner._local_tuner._tune_config.search_alg
        inner = getattr(restored, "searcher", restored)
        inner._on_restore = {"url": url, "worker": worker}
    else:
        cluster = ray.cluster_resources()
        max_concurrent, note = _max_concurrent(hpo, cluster.get("CPU", os.cpu_count() or 1), cluster.get("GPU", 0), resources.num_env_runners, resources.num_gpus_per_learner, resources.cpus_per_env_runner)
        print(note)
        print(f"{search.trials} trial(s); scheduler: {search.scheduler.type}" + ("" if search.scheduler.type == "none" else f" (grace {search.scheduler.grace_period}, max_t {hpo.max_t} iterations)"))
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=False)
        searcher = searcher_cls(
            space={d.key: d.optuna() for d in search.space},
            metric=search.metrics if search.multi_objective else search.metric,
            mode=search.modes if search.multi_objective else search.mode,
            sampler=sampler,
            study_name=search.study_name,
            storage=storage,
            trial_spec=_trial_spec(hpo, data_path, path, max_concurrent),
            worker={"worker": worker, "sampler_seed": seed, "experiment": path},
            shared=shared,
        )
        run_cfg = training.run_config(base, callbacks)
        stop = dict(run_cfg.stop or {})
        if base.experiment.stop.time_budget:
            stop["time_total_s"] = base.experiment.stop.time_budget  # per trial
        run_cfg.stop = stop
        tuner = tune.Tuner(
            trial_cls,
            param_space={SPEC_KEY: _trial_spec(hpo, data_path, path, max_concurrent)},
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=max_concurrent),
                scheduler=_scheduler(hpo),
                num_samples=search.trials,
                trial_dirname_creator=training.trial_dirname,
            ),
            run_config=run_cfg,
        )
    grid = training.fit(tuner, base)
    errors = [f"{r.path}: {describe_failure(r.error, r.path, r.path)}" for r in grid if r.error is not None]
    try:
        interrupted = grid.num_terminated + grid.num_errors < search.trials
    except Exception:
        interrupted = False
    if not interrupted:
        _fail_stale_trials(url, search.study_name, path)
    outcome = report(hpo, url, out_dir, path, seed=seed, worker=worker, trials_this_run=len(grid), errors=errors)
    outcome.interrupted = interrupted
    _write_json(
        info_path,
        {
            **_read_info(info_path),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "trials_complete": outcome.trials_complete,
            "best": outcome.best,
            "best_config": outcome.best_config,
        },
    )
    return outcome


# ---------------------------------------------------------------------------
# Tables, best config, plots
# ---------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return json.dumps(_plain(v))
    return "" if v is None else str(v)


def _ranked(study, search: SearchSpec) -> tuple[list, set]:
    """Completed trials, best first (by the first objective), and the numbers on
    the Pareto front (multi-objective)."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values and len(t.values) == len(search.metrics)]
    sign = -1.0 if search.modes[0] == "max" else 1.0
    done.sort(key=lambda t: (sign * t.values[0], t.number))
    front = {t.number for t in study.best_trials} if search.multi_objective and done else set()
    return done, front


def best_trial(study, search: SearchSpec):
    done, front = _ranked(study, search)
    if not done:
        return None
    if search.multi_objective:
        return next(t for t in done if t.number in front)
    return done[0]


def _table(done: list, front: set, search: SearchSpec) -> tuple[list[str], list[list[str]]]:
    keys = [d.key for d in search.space]
    extra = [k for k in RECORDED_RESULT_KEYS if k not in search.metrics]
    header = ["rank", "trial", *search.metrics, *(["pareto"] if search.multi_objective else []), *keys, *extra, "worker", "sampler_seed"]
    rows = []
    encoded = set(search.encoded_keys)
    for rank, t in enumerate(done, 1):
        params = decode_params({k: t.params.get(k) for k in keys if k in t.params}, encoded)
        row = [str(rank), str(t.number), *(_fmt(v) for v in t.values)]
        if search.multi_objective:
            row.append("yes" if t.number in front else "")
        row += [_fmt(params.get(k)) for k in keys]
        row += [_fmt(t.user_attrs.get(k)) for k in extra]
        row += [_fmt(t.user_attrs.get("worker")), _fmt(t.user_attrs.get("sampler_seed"))]
        rows.append(row)
    return header, rows


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    out.write("| " + " | ".join(header) + " |\n")
    out.write("|" + "---|" * len(header) + "\n")
    for r in rows:
        out.write("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |\n")
    return out.getvalue()


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def write_best_config(hpo: HpoConfig, trial, path: str) -> str:
    """``best_config.yaml``: the base config with the trial's values, a full
    training config for ``algospace train --config``."""
    params = decode_params({d.key: trial.params[d.key] for d in hpo.search.space if d.key in trial.params}, hpo.search.encoded_keys)
    cfg = hpo.base.with_overrides(params).with_overrides({"experiment.name": f"{hpo.base.experiment.name}-best"})
    values = ", ".join(f"{m} {v:.4g}" for m, v in zip(hpo.search.metrics, trial.values))
    header = (
        f"# Best configuration of the search {hpo.search.study_name!r} (trial {trial.number}: {values}).\n"
        f"# Written by `algospace tune` from {hpo.source}; train it with:\n"
        f"#   algospace train --config {path}\n"
        + "".join(f"#   {k}: {_fmt(v)}\n" for k, v in params.items())
    )
    tmp = f"{path}.tmp"
    Path(tmp).write_text(header + cfg.to_yaml())
    os.replace(tmp, path)
    return path


def _plots(study, search: SearchSpec, out_dir: str, n_complete: int) -> tuple[list[str], list[str]]:
    import warnings

    import matplotlib
    import sys

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    written, notes = [], []
    target = (lambda t: t.values[0]) if search.multi_objective else None
    kw = {"target": target, "target_name": search.metric} if target else {"target_name": search.metric}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if n_complete == 0:
            return [], ["plots: no completed trial yet"]
        try:
            ax = ovm.plot_optimization_history(study, **kw)
            path = os.path.join(out_dir, HISTORY_PNG)
            ax.figure.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(ax.figure)
            written.append(path)
        except Exception as exc:
            notes.append(f"optimisation history plot failed: {type(exc).__name__}: {exc}")
        if n_complete < 2:
            notes.append(f"parameter importance needs at least 2 completed trials (have {n_complete}); plot skipped")
        else:
            err = None
            for evaluator in (None, optuna.importance.PedAnovaImportanceEvaluator()):
                try:
                    ax = ovm.plot_param_importances(study, evaluator=evaluator, **kw)
                    path = os.path.join(out_dir, IMPORTANCE_PNG)
                    ax.figure.savefig(path, dpi=110, bbox_inches="tight")
                    plt.close(ax.figure)
                    written.append(path)
                    err = None
                    break
                except Exception as exc:  # e.g. sklearn missing, or a degenerate study
                    err = exc
                    plt.close("all")
            if err is not None:
                notes.append(f"parameter importance not available for this study ({type(err).__name__}: {' '.join(str(err).split())[:200]}); plot skipped")
    return written, notes


def report(hpo: HpoConfig, url: str, out_dir: str, experiment: str, *, seed: int, worker: str, trials_this_run: int = 0, errors: list[str] | None = None) -> SearchOutcome:
    """Tables, best config and plots from the study in ``url`` (every worker's trials)."""
    from optuna.trial import TrialState

    search = hpo.search
    _, study = open_study(url, search.study_name)
    done, front = _ranked(study, search)
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    header, rows = _table(done, front, search)
    table_csv = os.path.join(out_dir, TABLE_CSV)
    with open(table_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    table_md = os.path.join(out_dir, TABLE_MD)
    Path(table_md).write_text(f"# Best trials of {search.study_name}\n\n" + _markdown(header, rows[: search.top_k]))
    print(f"\n{len(done)} completed trial(s) in the study ({failed} failed); best {min(len(rows), search.top_k)}:")
    print(_text_table(header, rows[: search.top_k]) if rows else "(none)")
    best, best_config = None, None
    bt = best_trial(study, search)
    if bt is not None:
        best_config = write_best_config(hpo, bt, os.path.join(out_dir, BEST_CONFIG))
        params = decode_params({k: v for k, v in bt.params.items()}, search.encoded_keys)
        best = {"number": bt.number, "values": dict(zip(search.metrics, bt.values)), "params": params, "worker": bt.user_attrs.get("worker")}
        print(f"best trial {bt.number}: " + ", ".join(f"{m} {v:.4g}" for m, v in zip(search.metrics, bt.values)))
        print(f"best config: {best_config} (train it with: algospace train --config {best_config})")
    plots, notes = _plots(study, search, out_dir, len(done))
    for note in notes:
        print(note)
    print(f"tables: {table_csv}, {table_md}" + (f"; plots: {', '.join(plots)}" if plots else ""))
    return SearchOutcome(
        experiment_path=experiment,
        output_dir=out_dir,
        study_name=search.study_name,
        study_storage=_mask(url),
        sampler_seed=seed,
        worker=worker,
        trials_complete=len(done),
        trials_failed=failed,
        trials_this_run=trials_this_run,
        errors=list(errors or []),
        best=best,
        best_config=best_config,
        table_csv=table_csv,
        table_md=table_md,
        plots=plots,
        notes=notes,
    )
