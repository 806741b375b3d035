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
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

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
)

__all__ = [
    "MANIFEST_FILE",
    "EnsembleConfig",
    "EnsembleSpec",
    "EnsembleMember",
    "EnsembleOutcome",
    "EnsembleTeamPolicy",
    "check_ensemble_section",
    "load_ensemble_config",
    "quick_ensemble_overrides",
    "resolve_ensemble_resources",
    "train_ensemble",
    "write_manifest",
    "read_manifest",
    "find_manifest",
    "evaluate_ensemble",
    "diversity",
    "format_ensemble_report",
    "format_diversity",
]

MANIFEST_FILE = "ensemble.json"
MANIFEST_KIND = "algospace-ensemble"
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
    train = build_train_config(raw, ctx)  # checks the ensemble section too (config.EXTRA_SECTIONS)
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
    from rllib_algospace.training import ResolvedResources, resolve_resources

    cpus = cpus or _free_cpus()
    n = len(spec.members())
    notes = []
    mc = spec.ensemble.max_concurrent
    if mc == "auto":
        mc = max(1, min(n, cpus // CORES_PER_MEMBER))
        notes.append(f"ensemble.max_concurrent=auto -> {mc} ({n} members, {cpus} free CPUs: one member per {CORES_PER_MEMBER} cores)")
    else:
        mc = int(mc)
    base = resolve_resources(spec.train)
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
    from rllib_algospace.training import ResolvedResources, build_algorithm_config

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
    from rllib_algospace.team_policy import METADATA_FILE

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
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(meta, f, indent=2, default=str)
            os.replace(tmp, path)

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
    import ray
    from ray import tune

    from rllib_algospace import training
    from rllib_algospace.rllib_env import register

    cfg = spec.train
    members = spec.members()
    max_concurrent, resources = resolve_ensemble_resources(spec)
    for note in resources.notes:
        print(note)
    data_path = training.dataset_path(cfg)
    print(f"data: {data_path}")
    if not resume:
        training.write_run_record(cfg, data_path, None)  # its score ranks the members' checkpoints everywhere
    if getattr(getattr(cfg, "training", None), "init_from", None) is not None and not resume:
        from rllib_algospace.frozen import plan

        for member in members:  # a checkpoint that does not fit a member's networks stops here, before Ray starts
            plan(spec.member_config(member))
    path = training.experiment_path(cfg)
    callbacks = training.driver_callbacks(cfg, time_budget_s=cfg.experiment.stop.time_budget, stop_iterations=cfg.experiment.stop.training_iteration)

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=cfg.experiment.verbose >= 2, configure_logging=False)
    register()
    trainable = __getattr__("EnsembleMAPPO")
    if resume:
        if not tune.Tuner.can_restore(path):
            raise FileNotFoundError(f"{path}: no ensemble to resume there (run without --resume first)")
        print(f"resuming {path} (its own member list; the config's ensemble section is not re-read)")
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
        training.replace_driver_callbacks(tuner, callbacks)
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
            run_config=training.run_config(cfg, callbacks),
        )
    grid = tuner.fit()
    return _ensemble_outcome(cfg, path, grid)


def _ensemble_outcome(cfg: TrainConfig, path: str, grid) -> EnsembleOutcome:
    ck = cfg.experiment.checkpoint
    entries, errors, interrupted = [], [], False
    for result in grid:
        entry = _member_entry(result, path, ck.score, ck.score_mode)
        entries.append(entry)
        if result.error is not None:
            errors.append(f"member {entry['name']}: {type(result.error).__name__}: {result.error}")
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
    tmp = target + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, target)
    return target


# ---------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------
def find_manifest(path: str | os.PathLike) -> Path | None:
    """The ensemble manifest at ``path`` (the file, or a folder holding
    ``ensemble.json``), or ``None`` when ``path`` is no ensemble."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / MANIFEST_FILE
        return p if p.is_file() else None
    if p.is_file() and p.suffix == ".json":
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            return p if p.name == MANIFEST_FILE else None  # read_manifest says what is wrong
        return p if isinstance(doc, dict) and doc.get("kind") == MANIFEST_KIND else None
    return None


def read_manifest(path: str | os.PathLike) -> tuple[Path, dict]:
    """``(manifest path, document)``; raises ``CheckpointError`` (one line)."""
    from rllib_algospace.team_policy import CheckpointError

    manifest = find_manifest(path)
    if manifest is None:
        raise CheckpointError(f"{path}: no ensemble manifest ({MANIFEST_FILE}) there")
    try:
        doc = json.loads(manifest.read_text())
    except ValueError as exc:
        raise CheckpointError(f"{manifest}: not a valid ensemble manifest ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != MANIFEST_KIND or not isinstance(doc.get("members"), list):
        raise CheckpointError(f"{manifest}: not an ensemble manifest (expected kind {MANIFEST_KIND!r} and a members list)")
    return manifest, doc


def _manifest_members(manifest: Path, doc: dict) -> list[tuple[dict, Path]]:
    from rllib_algospace.team_policy import CheckpointError

    out = []
    for entry in doc["members"]:
        ckpt = entry.get("checkpoint")
        if not ckpt:
            print(f"warning: ensemble member {entry.get('name', '?')} has no checkpoint ({entry.get('error') or 'not trained'}); left out")
            continue
        p = Path(ckpt)
        out.append((entry, p if p.is_absolute() else manifest.parent / p))
    if not out:
        raise CheckpointError(f"{manifest}: no member has a checkpoint")
    return out


# ---------------------------------------------------------------------------
# The ensemble team policy
# ---------------------------------------------------------------------------
class EnsembleTeamPolicy:
    """Averages the members' action probabilities per agent and acts greedily
    on the average: ``policy(observations) -> actions``.

    ``members``: team policies with ``probabilities(observations) -> {agent:
    probability vector}`` (normally :class:`ModuleTeamPolicy`). ``info``: one
    dict per member (``name``, ``seed``, ``architecture``, ``checkpoint``).
    Ties go to the lowest action index.
    """

    def __init__(self, members: list, *, info: list[dict] | None = None):
        members = list(members)
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if info is not None and len(info) != len(members):
            raise ValueError(f"{len(info)} member infos for {len(members)} members")
        self.members = members
        self.info = [dict(d) for d in info] if info is not None else [{"name": f"m{i}"} for i in range(len(members))]
        for i, d in enumerate(self.info):
            d.setdefault("name", f"m{i}")

    @property
    def names(self) -> list[str]:
        return [d["name"] for d in self.info]

    # -- construction ---------------------------------------------------------
    @classmethod
    def from_checkpoints(cls, checkpoints: Iterable[str | os.PathLike], *, info: list[dict] | None = None) -> "EnsembleTeamPolicy":
        """Members from checkpoints (or trial/experiment folders: their best
        checkpoint); seed and architecture from each ``algospace.json`` when it has them."""
        from rllib_algospace.team_policy import ModuleTeamPolicy, checkpoint_metadata, find_checkpoint

        paths = [find_checkpoint(c) for c in checkpoints]
        if info is None:
            info = []
            for i, p in enumerate(paths):
                d = dict(checkpoint_metadata(p).get("ensemble_member") or {})
                d["name"] = f"m{i}"
                info.append(d)
        info = [{**d, "checkpoint": str(p)} for d, p in zip(info, paths)]
        return cls([ModuleTeamPolicy.from_checkpoint(p) for p in paths], info=info)

    @classmethod
    def from_manifest(cls, path: str | os.PathLike) -> "EnsembleTeamPolicy":
        """The members of an ensemble manifest (``ensemble.json``, or the
        experiment folder holding it); members without a checkpoint are left out."""
        manifest, doc = read_manifest(path)
        entries = _manifest_members(manifest, doc)
        info = [{**{k: e.get(k) for k in ("name", "member", "seed", "architecture", "score")}, "score_name": doc.get("score")} for e, _ in entries]
        policy = cls.from_checkpoints([p for _, p in entries], info=info)
        policy.manifest = str(manifest)
        return policy

    @property
    def checkpoints(self) -> list[str]:
        return [d.get("checkpoint") for d in self.info]

    # -- acting -----------------------------------------------------------------
    def member_probabilities(self, observations: dict) -> list[dict[str, np.ndarray]]:
        return [m.probabilities(observations) for m in self.members]

    @staticmethod
    def _mean(per_member: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        out = {}
        for agent in per_member[0]:
            rows = [np.asarray(p[agent], dtype=np.float64) for p in per_member]
            if len({r.shape for r in rows}) != 1:
                raise ValueError(f"ensemble members have different action counts for agent {agent!r}: {[r.shape[-1] for r in rows]}")
            out[agent] = np.mean(rows, axis=0)
        return out

    def probabilities(self, observations: dict) -> dict[str, np.ndarray]:
        """``{agent: mean of the members' action probabilities}``."""
        return self._mean(self.member_probabilities(observations))

    def act(self, observations: dict) -> tuple[dict[str, int], dict[str, np.ndarray]]:
        """``(actions, member_actions)``: the ensemble's greedy actions and, per
        agent, each member's own greedy action (an int array, one per member)."""
        per_member = self.member_probabilities(observations)
        mean = self._mean(per_member)
        actions = {agent: int(np.argmax(p)) for agent, p in mean.items()}
        member_actions = {agent: np.asarray([int(np.argmax(p[agent])) for p in per_member], dtype=np.int64) for agent in mean}
        return actions, member_actions

    def __call__(self, observations: dict) -> dict[str, int]:
        return self.act(observations)[0]


class _RecordingEnsemble:
    """The ensemble as a team policy that remembers, at every step of its own
    trajectory, what each member would have done."""

    def __init__(self, ensemble: EnsembleTeamPolicy):
        self.ensemble = ensemble
        self.ensemble_actions: dict[str, list[int]] = {}
        self.member_actions: dict[str, list[np.ndarray]] = {}

    def __call__(self, observations: dict) -> dict[str, int]:
        actions, members = self.ensemble.act(observations)
        for agent, a in actions.items():
            self.ensemble_actions.setdefault(agent, []).append(a)
            self.member_actions.setdefault(agent, []).append(members[agent])
        return actions


# ---------------------------------------------------------------------------
# Diversity and evaluation
# ---------------------------------------------------------------------------
def diversity(member_actions: Mapping[str, np.ndarray], ensemble_actions: Mapping[str, np.ndarray] | None = None, names: list[str] | None = None) -> dict:
    """How often the members disagree, from their greedy actions on the same
    steps: ``member_actions[agent]`` is a ``(steps, members)`` int array.

    Per agent: ``disagreement_rate``, the share of steps on which not all
    members pick the same action; ``pairwise_disagreement``, the mean over
    member pairs of the share of steps on which the two differ; with
    ``ensemble_actions``, ``agreement_with_ensemble`` per member. ``mean``:
    both rates averaged over agents; ``team_disagreement_rate``: share of
    steps on which the members' joint actions (all agents) are not all the
    same. Rates are in [0, 1] (NaN without steps; 0 with a single member).
    """
    agents = list(member_actions)
    arrays = {a: np.asarray(member_actions[a], dtype=np.int64).reshape(len(member_actions[a]), -1) for a in agents}
    steps = int(arrays[agents[0]].shape[0]) if agents else 0
    n = int(arrays[agents[0]].shape[1]) if agents and steps else (len(names) if names else 0)
    names = names or [f"m{i}" for i in range(n)]
    pairs = list(itertools.combinations(range(n), 2))
    per_agent = {}
    joint_differs = np.zeros(steps, dtype=bool)
    for agent, a in arrays.items():
        if steps == 0:
            per_agent[agent] = {"disagreement_rate": math.nan, "pairwise_disagreement": math.nan}
            continue
        differs = np.any(a != a[:, :1], axis=1)
        joint_differs |= differs
        pair_rates = {f"{names[i]}/{names[j]}": float(np.mean(a[:, i] != a[:, j])) for i, j in pairs}
        entry = {
            "disagreement_rate": float(np.mean(differs)),
            "pairwise_disagreement": float(np.mean(list(pair_rates.values()))) if pairs else 0.0,
            "pairs": pair_rates,
        }
        if ensemble_actions is not None:
            e = np.asarray(ensemble_actions[agent], dtype=np.int64)
            entry["agreement_with_ensemble"] = {names[i]: float(np.mean(a[:, i] == e)) for i in range(n)}
        per_agent[agent] = entry
    mean = {
        key: float(np.mean([v[key] for v in per_agent.values()])) if steps else math.nan
        for key in ("disagreement_rate", "pairwise_disagreement")
    }
    mean["team_disagreement_rate"] = float(np.mean(joint_differs)) if steps else math.nan
    return {"steps": steps, "members": n, "per_agent": per_agent, "mean": mean}


def evaluate_ensemble(
    source,
    *,
    data: str | None = None,
    split: str = "test",
    episodes: int | None = None,
    full_split: bool = False,
    episode_length: int = 1024,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    include_members: bool = True,
) -> dict:
    """Evaluate the ensemble of ``source`` (a manifest, an experiment folder
    holding one, or an :class:`EnsembleTeamPolicy`), every member
    (``include_members``) and the baselines greedily on the same bars of
    ``split`` (of the data the first member was trained on, or ``data``);
    the members' disagreement is measured on the ensemble's own trajectory.

    Writes ``evaluation.json``/``evaluation.png`` (the ensemble's report, all
    results in it) and ``ensemble_evaluation.json`` (members, results,
    diversity) into ``out`` (default: ``ensemble_evaluation_<split>`` beside
    the manifest). Returns ``checkpoint`` (the manifest), ``data``, ``split``,
    ``results`` (``ensemble``, ``m0``.., the baselines), ``members``,
    ``diversity`` and the report paths.
    """
    from rllib_algospace.evaluation import BASELINES, Comparison, evaluate_with_baselines, json_safe, run_policy, write_report
    from rllib_algospace.team_policy import checkpoint_data, checkpoint_env_overrides, checkpoint_metadata

    if isinstance(source, EnsembleTeamPolicy):
        policy, manifest = source, getattr(source, "manifest", None)
    else:
        policy = EnsembleTeamPolicy.from_manifest(source)
        manifest = policy.manifest
    if not policy.checkpoints or not policy.checkpoints[0]:
        raise ValueError("the ensemble's members have no checkpoints to read the data and env settings from")
    meta = checkpoint_metadata(policy.checkpoints[0])
    env_config = meta.get("env_config", {})
    data = checkpoint_data(meta, data)
    overrides = checkpoint_env_overrides(env_config)
    if not full_split and episodes is None:
        full_split = True
    kwargs = dict(data=data, split=split, episodes=episodes, full_split=full_split, episode_length=episode_length, seed=seed, env_overrides=overrides)

    recorder = _RecordingEnsemble(policy)
    comparison = evaluate_with_baselines(recorder, **kwargs)
    runs = {"ensemble": comparison.runs["team"]}
    results = {"ensemble": comparison["team"]}
    if include_members:
        for name, member in zip(policy.names, policy.members):
            run = run_policy(member, **kwargs)
            if not np.array_equal(run.start_bars, runs["ensemble"].start_bars):  # pragma: no cover - starts come from the seed only
                raise RuntimeError(f"member {name} ran on other episode starts than the ensemble")
            runs[name], results[name] = run, run.summary()
    for name in BASELINES:
        runs[name], results[name] = comparison.runs[name], comparison[name]
    div = diversity(
        {a: np.asarray(v) for a, v in recorder.member_actions.items()},
        {a: np.asarray(v) for a, v in recorder.ensemble_actions.items()},
        names=policy.names,
    )
    base = Path(manifest).parent if manifest else Path(policy.checkpoints[0]).parent
    out_dir = Path(out) if out else base / f"ensemble_evaluation_{split}"
    report_results = Comparison(results)
    report_results.runs = runs
    json_path, png_path = write_report(report_results, runs["ensemble"], out_dir)
    members = [dict(d) for d in policy.info]
    document = {"manifest": manifest, "data": data, "split": split, "members": members, "results": results, "diversity": div, "meta": runs["ensemble"].meta}
    ensemble_json = out_dir / "ensemble_evaluation.json"
    tmp = ensemble_json.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(json_safe(document), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, ensemble_json)
    return {
        "checkpoint": str(manifest or policy.checkpoints[0]),
        "manifest": manifest,
        "data": data,
        "split": split,
        "results": results,
        "members": members,
        "diversity": div,
        "json": str(json_path),
        "png": str(png_path),
        "ensemble_json": str(ensemble_json),
    }


# ---------------------------------------------------------------------------
# Text output
# ---------------------------------------------------------------------------
def _pct(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"


def format_members(members: list[dict]) -> str:
    lines = []
    for d in members:
        arch = d.get("architecture") or {}
        desc = [f"seed {d['seed']}" if d.get("seed") is not None else None]
        if arch:
            desc.append(f"actor {list(arch.get('actor_hiddens', []))}, critic {list(arch.get('critic_hiddens', []))}")
        if d.get("score") is not None:
            desc.append(f"{d.get('score_name') or 'score'} {d['score']:+.3f}")
        text = ", ".join(x for x in desc if x)
        lines.append(f"  {d['name']}: {text}{' - ' if text else ''}{d.get('checkpoint', '')}")
    return "\n".join(lines)


def format_diversity(div: dict) -> str:
    """The diversity table: per agent, the share of steps on which not all
    members agree and the mean pairwise disagreement."""
    lines = [f"member disagreement on the ensemble's trajectory ({div['steps']} steps, {div['members']} members):", f"{'agent':<16}{'not all agree':>14}{'pairwise':>14}"]
    for agent, v in div["per_agent"].items():
        lines.append(f"{agent:<16}{_pct(v['disagreement_rate']):>14}{_pct(v['pairwise_disagreement']):>14}")
    m = div["mean"]
    lines.append(f"{'mean':<16}{_pct(m['disagreement_rate']):>14}{_pct(m['pairwise_disagreement']):>14}")
    lines.append(f"{'team (joint)':<16}{_pct(m['team_disagreement_rate']):>14}")
    return "\n".join(lines)


def format_ensemble_report(report: dict) -> str:
    """Members legend, the results table (ensemble, members, baselines) and the diversity table."""
    from rllib_algospace.evaluation.runner import format_comparison

    return "\n".join(["members:", format_members(report["members"]), format_comparison(report["results"]), format_diversity(report["diversity"])])
