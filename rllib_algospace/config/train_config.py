"""``TrainConfig``, the whole experiment: built from YAML and overrides,
with every problem of a file reported at once (see the package docstring)."""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterable, Mapping

import yaml

from envs.market.config import MarketEnvConfig
from rllib_algospace.config.values import Bool, ConfigContext, ConfigError, DATA_PRESETS, DEFAULTS_SOURCE, ENV_EXCLUDED_KEYS, FAILED, Float, Int, Kind, OVERRIDES_SOURCE, Str, StrMap, as_mapping, check_local_file_name, is_uri, join_key, normalize_local_path, short_repr
from rllib_algospace.config.sections import AlgorithmSection, CurriculumSection, DataSection, EvaluationSection, ExperimentSection, PerAgentSection, ResourcesSection, section_field, to_plain
from rllib_algospace.config.yaml_files import YamlLoader, copy_tree, find_cycle, read_yaml


@dataclass(frozen=True)
class TrainConfig:
    """The whole experiment. Sections: ``experiment``, ``data``, ``env`` (a plain
    dict of :class:`MarketEnvConfig` keys the user set), ``algorithm``,
    ``resources``, ``evaluation``. ``source`` names where it came from."""

    experiment: ExperimentSection = section_field(ExperimentSection)
    data: DataSection = section_field(DataSection)
    env: dict = field(default_factory=dict, metadata={"env": True})
    algorithm: AlgorithmSection = section_field(AlgorithmSection)
    resources: ResourcesSection = section_field(ResourcesSection)
    evaluation: EvaluationSection = section_field(EvaluationSection)
    curriculum: CurriculumSection = section_field(CurriculumSection)
    training: PerAgentSection = section_field(PerAgentSection)
    source: str = field(default=DEFAULTS_SOURCE, compare=False, repr=False, metadata={"internal": True})

    def __post_init__(self):
        env = dict(self.env)
        if isinstance(env.get("tasks"), Mapping):
            env["tasks"] = {k: (normalize_local_path(v) if isinstance(v, str) and v.strip() and not is_uri(v) else v) for k, v in env["tasks"].items()}
        object.__setattr__(self, "env", env)

    # -- construction -------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping, source: str = "<dict>") -> "TrainConfig":
        """Build and validate from a nested mapping (as ``to_dict`` gives, or a parsed YAML file)."""
        return build_train_config(d, ConfigContext(source))

    def to_dict(self) -> dict:
        """Plain nested dict (lists, not tuples); ``from_dict(to_dict())`` gives an equal config."""
        return to_plain(self)

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


def _canonical_aliases(cls: type, raw: dict, prefix: str, ctx: ConfigContext) -> dict:
    for alias, canon in getattr(cls, "_aliases", {}).items():
        if alias in raw:
            if canon in raw:
                ctx.cross([join_key(prefix, alias), join_key(prefix, canon)], f"{join_key(prefix, alias)} and {join_key(prefix, canon)} are the same key; give one")
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
            ctx.attempt(ctx.unknown, join_key(prefix, name), name, names)
    kwargs = {}
    for f in specs:
        if f.name not in raw:
            continue
        key = join_key(prefix, f.name)
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


def _env_kind(annotation: Any) -> Kind | None:
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
                problem = check_local_file_name(path)
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
# ensemble``, ``search``: ``algospace tune``). Not part of TrainConfig; the
# module that owns one registers its check (``register_section_check``) when
# imported, and every file loaded after that has the section checked.
EXTRA_SECTIONS = ("ensemble", "search")
SECTION_CHECKS: dict[str, Callable[[Any, ConfigContext], Any]] = {}


def register_section_check(name: str, check: Callable[[Any, ConfigContext], Any]) -> None:
    """``check(raw, ctx)`` validates the top-level section ``name`` of every config loaded from now on."""
    if name not in EXTRA_SECTIONS:
        raise ValueError(f"unknown extra section {name!r}: one of {', '.join(EXTRA_SECTIONS)}")
    SECTION_CHECKS[name] = check


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
    for name in EXTRA_SECTIONS:
        if name in raw and name in SECTION_CHECKS:
            ctx.attempt(SECTION_CHECKS[name], raw[name], ctx)
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
            value = yaml.load(text, Loader=YamlLoader) if text.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(f"{OVERRIDES_SOURCE}: {key}: invalid value {short_repr(text)}: {problem}", source=OVERRIDES_SOURCE, key=key) from None
        if find_cycle(value) is not None:
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
