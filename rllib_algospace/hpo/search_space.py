"""The ``search`` section of an HPO config: distributions, scheduler and
study settings, parsed and checked against the base training config (every
value a distribution can take is applied to it), and loading a whole HPO YAML."""
from __future__ import annotations

import difflib
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

from rllib_algospace.config import (
    DEFAULTS_SOURCE,
    SCORE_MODES,
    AutoOr,
    Bool,
    ConfigContext,
    ConfigError,
    Int,
    Str,
    TrainConfig,
    as_mapping,
    copy_tree,
    quick_overrides,
    read_yaml,
    register_section_check,
    short_repr,
)

logger = logging.getLogger(__name__)


DEFAULT_HPO_YAML = Path(__file__).resolve().parents[2] / "tune_configs" / "hpo.yaml"
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
            return {"type": "choice", "values": [plain_value(v) for v in self.values]}
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
    """``config.ConfigContext`` (errors name the file, or ``overrides``), listing
    known search keys in their documented order rather than sorted."""

    sort_known = False

    def mapping(self, raw: Any, key: str) -> dict:
        return as_mapping(raw, key, self)


def _is_primitive(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def plain_value(v: Any) -> Any:
    return [plain_value(x) for x in v] if isinstance(v, (list, tuple)) else v


def _encode(v: Any) -> str:
    return json.dumps(plain_value(v))


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
            if plain_value(v) in seen:
                ctx.fail(f"{where}.values", f"duplicate value {short_repr(v)}")
            seen.append(plain_value(v))
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
    (registered with ``config.register_section_check``): its structure and distributions. Whether each
    key and value suits the training config is checked by :func:`load_hpo_config`."""
    _parse_search(raw, None, _SearchCtx(ctx.source, getattr(ctx, "overridden", ())))


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


register_section_check("search", check_search_section)  # every config loaded checks its search section

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


def decode_params(params: Mapping[str, Any], encoded_keys: Iterable[str]) -> dict:
    """Optuna's values -> config values (JSON-encoded list choices back to lists)."""
    encoded = set(encoded_keys)
    return {k: (json.loads(v) if k in encoded and isinstance(v, str) else v) for k, v in params.items()}
