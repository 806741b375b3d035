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
is importable (``rllib_algospace.hpo.trials.AlgospaceTrial``), so
``Tuner.restore`` works.

The Optuna study always lives in an RDB storage: by default a sqlite file
under the experiment folder, or ``--study-storage`` (a sqlite file on a shared
Drive folder, or a PostgreSQL URL) that several processes and machines share.
With a shared study each process samples with its own seed (``sampler_seed`` +
a hash of host, pid and run), recorded in ``search_info.json`` and on every
trial. At the end: a table of the best trials (printed, ``best_trials.csv``,
``best_trials.md``), ``best_config.yaml`` (a full training config for
``algospace train --config``) and Optuna's optimisation-history and
parameter-importance plots, all in the experiment folder.

Modules: ``search_space`` (the search section and loading), ``study`` (the
Optuna storage), ``trials`` (what a trial runs, the searcher), ``search``
(the Tune run), ``reports`` (tables, best config, plots). Ray, Optuna and
torch are imported only when a search runs (validation needs none of them).
"""
from __future__ import annotations

from rllib_algospace.hpo.reports import SearchOutcome, best_trial, report, write_best_config
from rllib_algospace.hpo.search import run_search
from rllib_algospace.hpo.search_space import (
    DEFAULT_HPO_YAML,
    SPEC_KEY,
    Distribution,
    HpoConfig,
    SchedulerSpec,
    SearchSpec,
    check_search_section,
    load_hpo_config,
)
from rllib_algospace.hpo.study import open_study, rdb_storage, storage_url, worker_seed
from rllib_algospace.hpo.search_space import decode_params
from rllib_algospace.hpo.trials import LAZY_CLASSES, lazy_class, trial_spec, trial_train_config

__all__ = [
    "DEFAULT_HPO_YAML",
    "SPEC_KEY",
    "AlgospaceOptunaSearch",
    "AlgospaceTrial",
    "Distribution",
    "HpoConfig",
    "SchedulerSpec",
    "SearchOutcome",
    "SearchSpec",
    "best_trial",
    "check_search_section",
    "decode_params",
    "load_hpo_config",
    "open_study",
    "rdb_storage",
    "report",
    "run_search",
    "storage_url",
    "trial_spec",
    "trial_train_config",
    "worker_seed",
    "write_best_config",
]


def __getattr__(name: str):
    """``AlgospaceTrial`` and ``AlgospaceOptunaSearch`` (built on first use:
    they import Ray and torch) from ``hpo.trials``."""
    if name in LAZY_CLASSES:
        return lazy_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
