"""What a trial runs: a sampled flat dict plus the base config turned into a
full ``MAPPOConfig`` (``AlgospaceTrial``), and the Optuna searcher Tune asks
(``AlgospaceOptunaSearch``). Both classes are built on first use (they import
Ray and torch) and found here by name by pickles."""
from __future__ import annotations

import json
import logging
import math
import os
from typing import Any, Iterable, Mapping

from rllib_algospace.config import (
    ConfigError,
    TrainConfig,
)
from rllib_algospace.hpo.search_space import HpoConfig, MAX_INVALID_SAMPLES, RECORDED_RESULT_KEYS, SPEC_KEY
from rllib_algospace.hpo.study import rdb_storage

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# What a trial runs
# ---------------------------------------------------------------------------
def decode_params(params: Mapping[str, Any], encoded_keys: Iterable[str]) -> dict:
    """Optuna's values -> config values (JSON-encoded list choices back to lists)."""
    encoded = set(encoded_keys)
    return {k: (json.loads(v) if k in encoded and isinstance(v, str) else v) for k, v in params.items()}


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
                storage = rdb_storage(url)
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
