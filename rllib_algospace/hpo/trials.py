"""What a trial runs: a sampled flat dict plus the base config turned into a
full ``MAPPOConfig`` (``AlgospaceTrial``), and the Optuna searcher Tune asks
(``AlgospaceOptunaSearch``, written in ``optuna_searcher``). Both classes are
built on first use (they import Ray and torch) and found here by name by
pickles."""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from rllib_algospace.config import TrainConfig
from rllib_algospace.hpo.search_space import HpoConfig, SPEC_KEY, decode_params

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# What a trial runs
# ---------------------------------------------------------------------------
def trial_spec(hpo: HpoConfig, data_path: str, experiment: str, concurrent: int = 1) -> dict:
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
    from rllib_algospace.hpo.optuna_searcher import make_searcher_class

    return make_searcher_class(__name__)  # pickles find it here, by name


LAZY_CLASSES = {"AlgospaceTrial": _make_trial_class, "AlgospaceOptunaSearch": _make_searcher_class}


def lazy_class(name: str):
    cls = globals().get(name)
    if cls is None:
        cls = globals()[name] = LAZY_CLASSES[name]()
    return cls


def __getattr__(name: str):
    """``AlgospaceTrial`` and ``AlgospaceOptunaSearch`` are built on first use
    (they import Ray and torch); pickles find them here by name."""
    if name in LAZY_CLASSES:
        return lazy_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
