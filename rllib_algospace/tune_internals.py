"""The one place that reads Tune's private attributes, for the two things Tune
2.60 has no public API for: a restored Tuner's run config (its driver
callbacks were pickled with the experiment; this session's replace them) and
its search algorithm (the restored Optuna searcher is told where this
session's study lives). ``tests/test_tune_internals.py`` checks both on the
installed Ray, so a release that moves them fails there, not in a resume."""
from __future__ import annotations

__all__ = ["replace_driver_callbacks", "restored_search_alg"]


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
