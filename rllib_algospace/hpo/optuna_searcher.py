"""The Optuna searcher Tune asks (``AlgospaceOptunaSearch``), and the one
place that reads private attributes of Ray's ``OptunaSearch`` (``_ot_study``,
``_ot_trials``, ``_completed_trials``, ``_storage``) and of Optuna (a study's
``_storage``, a trial's ``_trial_id``): Ray 2.60 offers no public way to
re-check a sampled combination, record results on the Optuna trial, tell FAIL
for NaN results, adopt trials a kill left RUNNING, or move the study's
storage. The HPO tests (``tests/test_hpo.py``: invalid samples, a killed and
resumed search, a moved study, two workers on one study) exercise each of
these on the installed versions, so a release that changes them fails there.
The class is built on first use (it imports Ray) by ``hpo.trials``, where
pickles find it."""
from __future__ import annotations

import logging
import math
from typing import Any, Mapping

from rllib_algospace.config import ConfigError, TrainConfig
from rllib_algospace.hpo.search_space import MAX_INVALID_SAMPLES, RECORDED_RESULT_KEYS, decode_params
from rllib_algospace.hpo.study import rdb_storage

logger = logging.getLogger(__name__)


def make_searcher_class(module: str):
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
        def continue_with(self, url: str, worker: dict) -> None:
            """This session's study location and worker, applied when Tune
            restores the searcher's pickled state."""
            self._on_restore = {"url": url, "worker": worker}

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

    AlgospaceOptunaSearch.__module__ = module
    AlgospaceOptunaSearch.__qualname__ = "AlgospaceOptunaSearch"
    return AlgospaceOptunaSearch


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
