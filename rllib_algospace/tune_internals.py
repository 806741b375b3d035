"""The one place that reads Tune's private attributes, for the things Tune
2.60 has no public API for: a restored Tuner's run config (its driver
callbacks were pickled with the experiment; this session's replace them),
its search algorithm (the restored Optuna searcher is told where this
session's study lives), and the log record of a restore Tune gave up on. ``tests/test_tune_internals.py`` checks both on the
installed Ray, so a release that moves them fails there, not in a resume."""
from __future__ import annotations

import logging

__all__ = ["replace_driver_callbacks", "report_failed_restore", "restored_search_alg"]


def _tune_config_holder(tuner):
    return tuner._local_tuner  # Tuner keeps its configs on the local tuner; no public getter


def replace_driver_callbacks(tuner, callbacks: list) -> None:
    """A restored experiment brings its pickled driver callbacks; this
    session's (fresh time budget, progress) replace those of the same class."""
    run_cfg = _tune_config_holder(tuner).get_run_config()
    replaced = {type(c).__name__ for c in callbacks}
    run_cfg.callbacks = [cb for cb in (run_cfg.callbacks or []) if type(cb).__name__ not in replaced] + list(callbacks)


def restored_search_alg(tuner):
    """The search algorithm a restored Tuner will run (unwrapped from a
    concurrency limiter), or None."""
    alg = _tune_config_holder(tuner)._tune_config.search_alg
    return getattr(alg, "searcher", alg)


# Tune logs a restore it could not do (a state file it cannot read) at ERROR
# under this logger, then silently starts the experiment again from nothing.
RESTORE_LOGGER = "ray.tune.execution.tune_controller"
RESTORE_FAILED = "Failed to restore the run state"


class _RestoreFailure(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if not str(record.msg).startswith(RESTORE_FAILED):
            return
        exc = record.exc_info[1] if record.exc_info else None
        why = f"{type(exc).__name__}: {exc}" if exc is not None else "see --verbose"
        print(f"resume: Tune could not read its record of the experiment ({why}); it starts the experiment again: "
              "trials continue from the newest complete checkpoint of their own folder only", flush=True)


def report_failed_restore() -> None:
    """Say in one line when Tune drops a restore (hidden otherwise: the
    commands keep Tune's error logs quiet unless ``--verbose``)."""
    log = logging.getLogger(RESTORE_LOGGER)
    if not any(isinstance(h, _RestoreFailure) for h in log.handlers):
        log.addHandler(_RestoreFailure(level=logging.ERROR))
    if log.getEffectiveLevel() > logging.ERROR:  # quieted: let the record through to our line only
        log.setLevel(logging.ERROR)
        log.propagate = False
