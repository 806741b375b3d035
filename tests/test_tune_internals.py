"""The private Tune attributes ``tune_internals`` reads still hold what it
expects on the installed Ray (no Ray session needed)."""
import pytest

tune = pytest.importorskip("ray.tune")

from rllib_algospace.tune_internals import replace_driver_callbacks, restored_search_alg  # noqa: E402


class Progress(tune.Callback):
    pass


class Budget(tune.Callback):
    pass


def _trainable(config):
    return {"x": 1}


def test_driver_callbacks_of_the_same_class_are_replaced_and_the_others_kept(tmp_path):
    old_progress, kept = Progress(), Budget()
    tuner = tune.Tuner(_trainable, run_config=tune.RunConfig(storage_path=str(tmp_path), callbacks=[old_progress, kept]))
    new_progress = Progress()
    replace_driver_callbacks(tuner, [new_progress])
    callbacks = tuner._local_tuner.get_run_config().callbacks
    assert callbacks == [kept, new_progress]


def test_the_search_algorithm_is_found_inside_its_concurrency_limiter(tmp_path):
    from ray.tune.search import ConcurrencyLimiter, Searcher

    class Nothing(Searcher):
        def suggest(self, trial_id):
            return None

        def on_trial_complete(self, trial_id, result=None, error=False):
            pass

    inner = Nothing(metric="x", mode="max")
    for search_alg in (inner, ConcurrencyLimiter(inner, max_concurrent=1)):
        tuner = tune.Tuner(_trainable, tune_config=tune.TuneConfig(search_alg=search_alg), run_config=tune.RunConfig(storage_path=str(tmp_path)))
        assert restored_search_alg(tuner) is inner
