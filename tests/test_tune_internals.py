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


def test_a_restore_tune_gives_up_on_is_said_in_one_line_even_when_quiet(capsys):
    import logging

    from rllib_algospace.tune_internals import RESTORE_LOGGER, report_failed_restore

    logging.getLogger("ray.tune.execution").setLevel(logging.CRITICAL)  # as the commands quiet Tune
    log = logging.getLogger(RESTORE_LOGGER)
    level, propagate = log.level, log.propagate
    try:
        report_failed_restore()
        report_failed_restore()  # one handler however often it is called
        try:
            raise EOFError("Ran out of input")
        except EOFError:
            log.exception("Failed to restore the run state.")  # what Tune logs before starting again
        log.error("Trial task failed")  # other errors stay hidden as before
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("resume: Tune could not read its record of the experiment (EOFError: Ran out of input)")
    finally:
        log.setLevel(level)
        log.propagate = propagate


def test_a_run_in_which_tune_ran_no_trial_ends_with_one_line(tmp_path):
    """What Tune returns when it dropped a restore and had nothing to run: an
    empty result grid; the outcome says so instead of an IndexError."""
    from rllib_algospace.config import load_config, quick_overrides
    from rllib_algospace.training import _outcome

    cfg = load_config(None, {**quick_overrides(), "experiment.storage_path": str(tmp_path), "experiment.name": "x"})
    outcome = _outcome(cfg, str(tmp_path / "x"), [])
    assert outcome.iterations == 0 and outcome.best_checkpoint is None
    assert "Tune ran no trial" in outcome.error and "--overwrite" in outcome.error
