"""Ensembles: several MAPPO teams (seeds x architectures) trained as ONE Tune
experiment, a manifest of each member's best checkpoint, a team policy that
averages the members, and an evaluation of every member beside the ensemble.

Config: a training YAML (every section of ``tune_configs/mappo.yaml``) plus::

    ensemble:
      seeds: [0, 1, 2]                  # experiment.seed of each member
      architectures:                    # network sizes; a key left out comes from `algorithm`
        - {actor_hiddens: [64, 64], critic_hiddens: [128, 128]}
        - {actor_hiddens: [128, 128], critic_hiddens: [256, 256]}
      max_concurrent: auto              # members trained at once ("auto": one per 2 free cores)

Members are seeds x architectures (member ``i`` is architecture ``i // len(seeds)``
with seed ``seeds[i % len(seeds)]``). Training is one ``Tuner`` over a grid of
member indices; the trainable :class:`EnsembleMAPPO` (a MAPPO subclass) turns
``{"member": i, ...}`` into the member's full ``MAPPOConfig``
(``TrainConfig.with_overrides`` + ``build_algorithm_config``), so
``Tuner.restore`` resumes it like any experiment. At the end ``ensemble.json``
in the experiment folder lists each member's best checkpoint by
``experiment.checkpoint.score`` (``val_sharpe``), with its seed and architecture.

Python API::

    spec = load_ensemble_config("tune_configs/ensemble.yaml", {"experiment.name": "ens"})
    outcome = train_ensemble(spec)                      # -> EnsembleOutcome (manifest path, members)
    policy = EnsembleTeamPolicy.from_manifest(outcome.manifest_path)
    report = evaluate_ensemble(outcome.manifest_path, split="val")
    print(format_ensemble_report(report))

This module imports neither Ray nor torch at import time (``EnsembleMAPPO`` is
built on first use).
"""
from __future__ import annotations

import datetime as _dt
import itertools
import json
import math
import os
import posixpath
from dataclasses import dataclass, field
from typing import Any, Mapping


from rllib_algospace.artifacts import describe_failure, write_atomically
from rllib_algospace.ensemble_policy import MANIFEST_FILE, MANIFEST_KIND
from rllib_algospace.config import (
    DEFAULTS_SOURCE,
    AutoOr,
    ConfigError,
    Hiddens,
    TrainConfig,
    apply_overrides,
    as_mapping,
    build_train_config,
    ConfigContext,
    is_int,
    read_yaml,
    short_repr,
    quick_overrides,
    register_section_check,
)

__all__ = [
    "EnsembleConfig",
    "EnsembleSpec",
    "EnsembleMember",
    "EnsembleOutcome",
    "check_ensemble_section",
    "load_ensemble_config",
    "quick_ensemble_overrides",
    "resolve_ensemble_resources",
    "train_ensemble",
    "write_manifest",
]

ARCHITECTURE_KEYS = ("actor_hiddens", "critic_hiddens")
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_ARCHITECTURES = (
    {"actor_hiddens": (64, 64), "critic_hiddens": (128, 128)},
    {"actor_hiddens": (128, 128), "critic_hiddens": (256, 256)},
)
DEFAULT_NAME = "ensemble"
PARAM_KEY = "algospace_ensemble"  # the Tune param_space entry with the ensemble's spec
MEMBER_KEY = "member"  # the grid-searched member index
CORES_PER_MEMBER = 2  # "auto" max_concurrent: one member per this many free cores


# ---------------------------------------------------------------------------
# Config: the `ensemble` section
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EnsembleConfig:
    """The ``ensemble`` section. ``architectures``: tuple of mappings with
    ``actor_hiddens`` and/or ``critic_hiddens`` (tuples of positive integers);
    a key left out takes the ``algorithm`` section's value."""

    seeds: tuple[int, ...] = DEFAULT_SEEDS
    architectures: tuple[dict, ...] = DEFAULT_ARCHITECTURES
    max_concurrent: int | str = "auto"

    def to_dict(self) -> dict:
        return {
            "seeds": list(self.seeds),
            "architectures": [{k: list(v) for k, v in a.items()} for a in self.architectures],
            "max_concurrent": self.max_concurrent,
        }


@dataclass(frozen=True)
class EnsembleMember:
    index: int
    seed: int
    architecture_index: int
    actor_hiddens: tuple[int, ...]
    critic_hiddens: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"m{self.index}"

    @property
    def architecture(self) -> dict:
        return {"actor_hiddens": list(self.actor_hiddens), "critic_hiddens": list(self.critic_hiddens)}

    def overrides(self) -> dict:
        """The ``TrainConfig`` overrides that make the member's config."""
        return {"experiment.seed": self.seed, "algorithm.actor_hiddens": list(self.actor_hiddens), "algorithm.critic_hiddens": list(self.critic_hiddens)}

    def to_dict(self) -> dict:
        return {"member": self.index, "name": self.name, "seed": self.seed, "architecture_index": self.architecture_index, "architecture": self.architecture}

    @classmethod
    def from_dict(cls, d: Mapping) -> "EnsembleMember":
        arch = d["architecture"]
        return cls(int(d["member"]), int(d["seed"]), int(d.get("architecture_index", 0)), tuple(arch["actor_hiddens"]), tuple(arch["critic_hiddens"]))


@dataclass(frozen=True)
class EnsembleSpec:
    """A validated ensemble experiment: the shared training config and the ensemble section."""

    train: TrainConfig
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)

    @property
    def source(self) -> str:
        return self.train.source

    def members(self) -> list[EnsembleMember]:
        """Seeds x architectures, architecture-major."""
        algo = self.train.algorithm
        out = []
        for (ai, arch), seed in itertools.product(enumerate(self.ensemble.architectures), self.ensemble.seeds):
            out.append(
                EnsembleMember(
                    index=len(out),
                    seed=int(seed),
                    architecture_index=ai,
                    actor_hiddens=tuple(arch.get("actor_hiddens", algo.actor_hiddens)),
                    critic_hiddens=tuple(arch.get("critic_hiddens", algo.critic_hiddens)),
                )
            )
        return out

    def member_config(self, member: EnsembleMember) -> TrainConfig:
        return self.train.with_overrides(member.overrides())

    def to_dict(self) -> dict:
        return {**self.train.to_dict(), "ensemble": self.ensemble.to_dict()}


def _fail(ctx: ConfigContext, key: str, problem: str, source_key: str | None = None):
    src = ctx.source_of(source_key or key)
    raise ConfigError(f"{src}: {key}: {problem}", source=src, key=key)


def check_ensemble_section(raw: Any, ctx: ConfigContext) -> EnsembleConfig:
    """Validate the ``ensemble`` section (``raw``: the parsed YAML value; ``ctx``
    from ``rllib_algospace.config``); raises a one-line :class:`ConfigError`."""
    raw = as_mapping(raw, "ensemble", ctx)
    known = ("seeds", "architectures", "max_concurrent")
    for name in raw:
        if name not in known:
            ctx.unknown(f"ensemble.{name}", name, known)
    kwargs: dict[str, Any] = {}
    if "seeds" in raw:
        seeds = raw["seeds"]
        if not isinstance(seeds, (list, tuple)) or not seeds or not all(is_int(s) and s >= 0 for s in seeds):
            _fail(ctx, "ensemble.seeds", f"expected a non-empty list of integers >= 0, got {short_repr(seeds)}")
        dup = next((s for i, s in enumerate(seeds) if s in seeds[:i]), None)
        if dup is not None:
            _fail(ctx, "ensemble.seeds", f"seed {dup} is listed twice")
        kwargs["seeds"] = tuple(int(s) for s in seeds)
    if "architectures" in raw:
        archs = raw["architectures"]
        if not isinstance(archs, (list, tuple)) or not archs:
            _fail(ctx, "ensemble.architectures", f"expected a non-empty list of mappings with actor_hiddens and/or critic_hiddens, got {short_repr(archs)}")
        out = []
        for i, arch in enumerate(archs):
            key = f"ensemble.architectures[{i}]"
            if not isinstance(arch, Mapping) or not arch:
                _fail(ctx, key, f"expected a mapping with actor_hiddens and/or critic_hiddens, got {short_repr(arch)}", "ensemble.architectures")
            checked = {}
            for name, value in arch.items():
                if not isinstance(name, str):
                    _fail(ctx, key, f"keys must be strings, got {short_repr(name)}", "ensemble.architectures")
                if name not in ARCHITECTURE_KEYS:
                    ctx.unknown(f"{key}.{name}", name, ARCHITECTURE_KEYS)
                checked[name] = Hiddens()(value, lambda problem, k=f"{key}.{name}": _fail(ctx, k, problem, "ensemble.architectures"))
            if checked in out:
                _fail(ctx, key, f"the same as ensemble.architectures[{out.index(checked)}]", "ensemble.architectures")
            out.append(checked)
        kwargs["architectures"] = tuple(out)
    if "max_concurrent" in raw:
        kwargs["max_concurrent"] = AutoOr(lo=1, integer=True)(raw["max_concurrent"], lambda problem: _fail(ctx, "ensemble.max_concurrent", problem))
    return EnsembleConfig(**kwargs)


register_section_check("ensemble", check_ensemble_section)  # every config loaded checks its ensemble section

def load_ensemble_config(path: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None, *, check_files: bool = False) -> EnsembleSpec:
    """Load and validate an ensemble YAML (``None``: the defaults, the same as
    ``tune_configs/ensemble.yaml``). ``overrides`` are dotted keys, the
    ``ensemble`` section's included (``{"ensemble.seeds": [0, 1]}``). Raises
    a one-line :class:`ConfigError` on any problem; no Ray."""
    if path is None:
        raw, source = {"experiment": {"name": DEFAULT_NAME}}, DEFAULTS_SOURCE
    else:
        raw, source = read_yaml(path), os.fspath(path)
    keys: list[str] = []
    if overrides:
        raw, keys = apply_overrides(raw, source, overrides)
    ctx = ConfigContext(source, keys)
    train = build_train_config(raw, ctx)  # checks the ensemble section too (registered above)
    ensemble = check_ensemble_section(raw.get("ensemble"), ctx)
    spec = EnsembleSpec(train, ensemble)
    # the member configs must be valid too (e.g. nothing clashes with the architectures)
    for member in spec.members():
        spec.member_config(member)
    if check_files:
        train.check_files()
    return spec


def quick_ensemble_overrides() -> dict:
    """``--quick``: :func:`rllib_algospace.config.quick_overrides` with two tiny
    members (one seed x two architectures) under the name ``quick_ensemble``."""
    return {
        **quick_overrides(),
        "experiment.name": "quick_ensemble",
        "ensemble.seeds": [0],
        "ensemble.architectures": [{"actor_hiddens": [32, 32], "critic_hiddens": [32, 32]}, {"actor_hiddens": [16, 16], "critic_hiddens": [32, 32]}],
    }


# ---------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------
def _free_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_ensemble_resources(spec: EnsembleSpec, cpus: int | None = None):
    """``(max_concurrent, ResolvedResources)``: ``max_concurrent: auto`` is one
    member per 2 free cores (at least 1, at most the number of members);
    ``num_env_runners: auto`` shares the cores among the concurrent members
    (0 runners, i.e. sampling in the learner, when a member has 2 cores or fewer)."""
    from rllib_algospace.tune_session import ResolvedResources, resolve_resources

    if cpus is None:
        from rllib_algospace.tune_session import planning_cpus, ray_address

        cpus = planning_cpus(spec.train)[0] if ray_address(spec.train) else _free_cpus()
    n = len(spec.members())
    notes = []
    mc = spec.ensemble.max_concurrent
    if mc == "auto":
        mc = max(1, min(n, cpus // CORES_PER_MEMBER))
        notes.append(f"ensemble.max_concurrent=auto -> {mc} ({n} members, {cpus} free CPUs: one member per {CORES_PER_MEMBER} cores)")
    else:
        mc = int(mc)
    base = resolve_resources(spec.train, cpus)
    notes += [note for note in base.notes if not note.startswith(("num_env_runners", "warning"))]
    runners = base.num_env_runners
    learners = spec.train.resources.num_learners
    if spec.train.resources.num_env_runners == "auto":
        cores_each = cpus // max(1, min(mc, n))
        runners = 0 if cores_each <= 2 else max(0, min(cores_each - 1 - learners, 8))
        notes.append(f"num_env_runners=auto -> {runners} per member ({cores_each} cores each for {min(mc, n)} concurrent members)")
    # a member sampling in its own process learns on all the cores it was given
    share = max(1, cpus // max(1, min(mc, n)))
    main_cpus = share if runners == 0 and learners == 0 else 1
    needed = min(mc, n) * (main_cpus + runners + learners)
    if needed > cpus:
        notes.append(f"note: {min(mc, n)} concurrent members ask for {needed} CPUs and {cpus} are free; Tune queues the rest")
    return mc, ResolvedResources(runners, base.num_gpus_per_learner, notes, main_cpus, share if learners == 0 else 0)


# ---------------------------------------------------------------------------
# The trainable
# ---------------------------------------------------------------------------
def _is_member_config(config: Any) -> bool:
    return isinstance(config, Mapping) and PARAM_KEY in config and MEMBER_KEY in config


def member_algorithm_config(config: Mapping):
    """``(MAPPOConfig, EnsembleMember)`` of a trial config ``{"member": i, "algospace_ensemble": {...}}``."""
    from rllib_algospace.training import build_algorithm_config
    from rllib_algospace.tune_session import ResolvedResources

    spec = config[PARAM_KEY]
    member = EnsembleMember.from_dict(spec["members"][int(config[MEMBER_KEY])])
    train = TrainConfig.from_dict(spec["train_config"], source=spec.get("source", "<ensemble>"))
    member_cfg = train.with_overrides(member.overrides())
    resources = ResolvedResources(int(spec["num_env_runners"]), float(spec["num_gpus_per_learner"]), [], int(spec.get("num_cpus_for_main_process", 1)), int(spec.get("learner_threads", 0)))
    from rllib_algospace.training import warm_start_for

    warm_start = warm_start_for(member_cfg, spec["data_path"], spec["warm_start_dir"]) if spec.get("warm_start_dir") else None
    return build_algorithm_config(member_cfg, data_path=spec["data_path"], resources=resources, warm_start=warm_start), member


def _make_trainable() -> type:
    from rllib_algospace.mappo import MAPPO
    from rllib_algospace.checkpoints import METADATA_FILE

    class EnsembleMAPPO(MAPPO):
        """MAPPO whose Tune config is ``{"member": i, "algospace_ensemble": spec}``:
        the member index maps to the member's full ``MAPPOConfig``. Its
        checkpoints' ``algospace.json`` carry ``ensemble_member`` (seed, architecture)."""

        def __init__(self, config=None, env=None, **kwargs):
            self._ensemble_member = None
            if _is_member_config(config):
                config, self._ensemble_member = member_algorithm_config(config)
            super().__init__(config, env, **kwargs)

        @classmethod
        def default_resource_request(cls, config):
            if _is_member_config(config):
                config = member_algorithm_config(config)[0].to_dict()
            return super().default_resource_request(config)

        def save_checkpoint(self, checkpoint_dir: str) -> None:
            super().save_checkpoint(checkpoint_dir)
            if self._ensemble_member is None:
                return
            path = os.path.join(checkpoint_dir, METADATA_FILE)
            with open(path) as f:
                meta = json.load(f)
            meta["ensemble_member"] = self._ensemble_member.to_dict()
            write_atomically(path, lambda fh: fh.write(json.dumps(meta, indent=2, default=str).encode()))

    EnsembleMAPPO.__module__ = __name__
    EnsembleMAPPO.__qualname__ = "EnsembleMAPPO"
    return EnsembleMAPPO


def __getattr__(name: str):
    # ``EnsembleMAPPO`` needs Ray: built on first access, then a plain module
    # attribute (so pickle finds it by reference in trial processes).
    if name == "EnsembleMAPPO":
        cls = _make_trainable()
        globals()["EnsembleMAPPO"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _member_dirname(trial) -> str:
    """Trial folders keep the training convention, ``MAPPO_<trial id>``."""
    return f"MAPPO_{trial.trial_id}"


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------
@dataclass
class EnsembleOutcome:
    experiment_path: str
    manifest_path: str | None
    members: list[dict]  # the manifest's member entries
    interrupted: bool
    errors: list[str]


def train_ensemble(spec: EnsembleSpec, *, resume: bool = False) -> EnsembleOutcome:
    """Train every member as one Tune experiment (``resume``: continue the
    interrupted one of the same name), then write ``ensemble.json``."""
    from ray import tune

    from rllib_algospace import training, tune_callbacks, tune_session
    from rllib_algospace.rllib_env import register

    cfg = spec.train
    members = spec.members()
    max_concurrent, resources = resolve_ensemble_resources(spec)
    data_path = training.start_experiment(cfg, resources.notes, resume=resume)
    if getattr(getattr(cfg, "training", None), "init_from", None) is not None and not resume:
        from rllib_algospace.per_agent import plan

        for member in members:  # a checkpoint that does not fit a member's networks stops here, before Ray starts
            plan(spec.member_config(member))
    path = tune_session.experiment_path(cfg)
    callbacks = tune_callbacks.driver_callbacks(cfg, time_budget_s=cfg.experiment.stop.time_budget, stop_iterations=cfg.experiment.stop.training_iteration)

    tune_session.start_ray(cfg)
    register()
    trainable = __getattr__("EnsembleMAPPO")
    if resume:
        tuner = tune_session.restore_tuner(cfg, trainable, callbacks, what="ensemble", note=" (its own member list; the config's ensemble section is not re-read)")
    else:
        for m in members:
            print(f"member {m.name}: seed {m.seed}, actor {list(m.actor_hiddens)}, critic {list(m.critic_hiddens)}")
        param_space = {
            MEMBER_KEY: tune.grid_search([m.index for m in members]),
            PARAM_KEY: {
                "train_config": cfg.to_dict(),
                "source": cfg.source,
                "members": [m.to_dict() for m in members],
                "data_path": data_path,
                # members clone their teacher here (one file per network shape and seed)
                "warm_start_dir": os.path.dirname(training.warm_start_file(cfg)),
                "num_env_runners": resources.num_env_runners,
                "num_gpus_per_learner": resources.num_gpus_per_learner,
                "num_cpus_for_main_process": resources.num_cpus_for_main_process,
                "learner_threads": resources.learner_threads,
            },
        }
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(trial_dirname_creator=_member_dirname, max_concurrent_trials=max_concurrent),
            run_config=tune_session.run_config(cfg, callbacks),
        )
    grid = tune_session.fit(tuner, cfg)
    return _ensemble_outcome(cfg, path, grid)


def _ensemble_outcome(cfg: TrainConfig, path: str, grid) -> EnsembleOutcome:
    ck = cfg.experiment.checkpoint
    entries, errors, interrupted = [], [], False
    for result in grid:
        entry = _member_entry(result, path, ck.score, ck.score_mode)
        entries.append(entry)
        if result.error is not None:
            errors.append(f"member {entry['name']}: {describe_failure(result.error, path, result.path)}")
        elif not (result.metrics or {}).get("done", False):
            interrupted = True
    # members that never started (an interrupted run) are listed without a checkpoint
    specs = next((_trial_params(r).get(PARAM_KEY, {}).get("members") for r in grid if _trial_params(r).get(PARAM_KEY)), None) or []
    seen = {e["member"] for e in entries}
    for member in specs:
        if member["member"] not in seen:
            entries.append({**member, "trial_dir": None, "checkpoint": None, "score": None, "checkpoint_iteration": None, "iterations": 0, "error": None})
            interrupted = True
    entries.sort(key=lambda e: e["member"])
    manifest = write_manifest(path, entries, cfg, complete=not interrupted and not errors) if entries else None
    return EnsembleOutcome(path, manifest, entries, interrupted, errors)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _trial_params(result) -> dict:
    """The trial's Tune config (``params.json`` in its folder; ``result.config``
    is the algorithm's config, not the grid point)."""
    try:
        fs = result.filesystem
        with fs.open_input_stream(f"{str(result.path).rstrip('/')}/params.json") as f:
            return json.loads(f.read().decode())
    except Exception:  # pragma: no cover - a trial folder without params.json
        return {}


def _member_entry(result, experiment: str, score: str, mode: str) -> dict:
    config = _trial_params(result)
    spec = config.get(PARAM_KEY, {})
    index = int(config.get(MEMBER_KEY, -1))
    member = spec["members"][index] if 0 <= index < len(spec.get("members", [])) else {"member": index, "name": f"m{index}"}
    scored = [(c, m) for c, m in (result.best_checkpoints or []) if _finite(m.get(score))]
    chosen, metrics = None, {}
    if scored:
        pick = max if mode == "max" else min
        chosen, metrics = pick(scored, key=lambda cm: cm[1][score])
    elif result.checkpoint is not None:  # nothing scored (e.g. no validation): the latest
        chosen = result.checkpoint
        metrics = next((m for c, m in (result.best_checkpoints or []) if c.path == chosen.path), {})
    checkpoint = None
    if chosen is not None:  # relative to the experiment folder (a URI's path has no scheme)
        root = experiment.split("://", 1)[-1] if _is_uri(experiment) else experiment
        checkpoint = posixpath.relpath(chosen.path, root) if _is_uri(experiment) else os.path.relpath(chosen.path, root)
    final = result.metrics or {}
    return {
        **member,
        "trial_dir": os.path.basename(str(result.path).rstrip("/")),
        "checkpoint": checkpoint,  # relative to the manifest's folder
        "score": metrics.get(score) if _finite(metrics.get(score)) else None,
        "checkpoint_iteration": metrics.get("training_iteration"),
        "iterations": int(final.get("training_iteration", 0)),
        "error": None if result.error is None else f"{type(result.error).__name__}: {result.error}",
    }


def _is_uri(path: str) -> bool:
    from rllib_algospace.config import is_uri

    return is_uri(path)


def write_manifest(experiment: str, members: list[dict], cfg: TrainConfig, *, complete: bool = True) -> str:
    """Write ``ensemble.json`` into the experiment folder (local or a URI); returns its path."""
    ck = cfg.experiment.checkpoint
    document = {
        "format": 1,
        "kind": MANIFEST_KIND,
        "experiment": cfg.experiment.name,
        "experiment_path": experiment,
        "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "score": ck.score,
        "score_mode": ck.score_mode,
        "complete": bool(complete),
        "members": members,
        "config": cfg.to_dict(),
    }
    from rllib_algospace.evaluation import json_safe

    data = (json.dumps(json_safe(document), indent=2) + "\n").encode()
    target = f"{experiment.rstrip('/')}/{MANIFEST_FILE}"
    if _is_uri(experiment):
        import pyarrow.fs

        fs, fs_path = pyarrow.fs.FileSystem.from_uri(target)
        with fs.open_output_stream(fs_path) as f:
            f.write(data)
        return target
    write_atomically(target, lambda fh: fh.write(data))
    return target


