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

Modules: ``values`` (error type, value kinds, the error-collecting context),
``sections`` (each YAML section as a dataclass), ``yaml_files`` (safe YAML
reading), ``train_config`` (``TrainConfig``, building, overrides, loading).
This package imports neither Ray nor torch.
"""
from __future__ import annotations

from rllib_algospace.config.sections import (
    AlgorithmSection,
    CheckpointSection,
    CurriculumSection,
    CurriculumStage,
    DataSection,
    EvaluationSection,
    ExperimentSection,
    PerAgentSection,
    PromoteWhen,
    ResourcesSection,
    StopSection,
    WandbSection,
)
from rllib_algospace.config.train_config import (
    EXTRA_SECTIONS,
    TrainConfig,
    apply_overrides,
    build_train_config,
    load_config,
    parse_overrides,
    quick_overrides,
    register_section_check,
)
from rllib_algospace.config.values import (
    AGENT_NAMES,
    DATA_PRESETS,
    DEFAULTS_SOURCE,
    ENV_EXCLUDED_KEYS,
    FROZEN_POLICIES,
    SCORE_MODES,
    TIMESTEPS_RESULT_KEY,
    VALIDATION_METRICS,
    AutoOr,
    Bool,
    ConfigContext,
    ConfigError,
    Hiddens,
    Int,
    Str,
    as_mapping,
    is_int,
    is_uri,
    parse_duration,
    short_repr,
)
from rllib_algospace.config.yaml_files import copy_tree, find_cycle, read_yaml

__all__ = [
    "AGENT_NAMES",
    "DATA_PRESETS",
    "DEFAULTS_SOURCE",
    "ENV_EXCLUDED_KEYS",
    "EXTRA_SECTIONS",
    "FROZEN_POLICIES",
    "SCORE_MODES",
    "TIMESTEPS_RESULT_KEY",
    "VALIDATION_METRICS",
    "AlgorithmSection",
    "AutoOr",
    "Bool",
    "CheckpointSection",
    "ConfigContext",
    "ConfigError",
    "CurriculumSection",
    "CurriculumStage",
    "DataSection",
    "EvaluationSection",
    "ExperimentSection",
    "Hiddens",
    "Int",
    "PerAgentSection",
    "PromoteWhen",
    "ResourcesSection",
    "Str",
    "StopSection",
    "TrainConfig",
    "WandbSection",
    "apply_overrides",
    "as_mapping",
    "build_train_config",
    "copy_tree",
    "find_cycle",
    "is_int",
    "is_uri",
    "load_config",
    "parse_duration",
    "parse_overrides",
    "quick_overrides",
    "read_yaml",
    "register_section_check",
    "short_repr",
]
