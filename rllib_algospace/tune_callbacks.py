"""Driver-side Tune callbacks of a run in this process (train, tune,
ensemble): one progress line per iteration with its ETA and the session's
time budget (a checkpoint, then a clean stop, before it runs out), complete
copies of Tune's state files after every checkpoint, a bar of trials done,
and W&B when configured."""
from __future__ import annotations

import logging
import math
import os
import signal
import time

from rllib_algospace.config import TrainConfig

logger = logging.getLogger(__name__)

# Seconds kept in hand when a time budget ends the session, on top of two
# iterations' time: writing the checkpoint and shutting down must fit in it
# (a tenth of the budget for budgets under ten minutes).
BUDGET_SAFETY_S = 60.0


_SESSION = {"time_budget_s": None, "started": None, "stop_iterations": None}


def _tune_callback_base():
    from ray.tune import Callback

    return Callback


def driver_callbacks(cfg: TrainConfig, *, time_budget_s: float | None, stop_iterations: int | None) -> list:
    """The driver-side Tune callbacks of a run in this process (train, tune,
    ensemble): the progress line with its ETA and the session's time budget,
    and W&B when configured."""
    _SESSION["time_budget_s"] = time_budget_s
    _SESSION["stop_iterations"] = stop_iterations
    callbacks = [_make_progress_callback(), _make_state_copy_callback()]
    wandb_cb = _wandb_callback(cfg)
    if wandb_cb is not None:
        callbacks.append(wandb_cb)
    return callbacks


def _make_state_copy_callback():
    """A Tune callback that, after every checkpoint, keeps a complete copy of
    Tune's own state files (``artifacts.keep_tuner_state``): a kill while
    Tune rewrites one then costs at most the snapshot since that copy."""
    from rllib_algospace.artifacts import keep_tuner_state

    class KeepTuneState(_tune_callback_base()):
        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
            folder = os.path.dirname(str(getattr(trial, "path", "") or "").rstrip("/"))
            if folder and os.path.isdir(folder):
                keep_tuner_state(folder, repair=False)  # Tune may be mid-write: copy, never repair

    return KeepTuneState()


def trials_progress_callback(total: int):
    """A Tune callback with a progress bar of the trials done out of ``total``
    (``algospace tune``); ETA from the trials' pace."""
    from rllib_algospace.evaluation.runner import progress_bar

    class TrialsDone(_tune_callback_base()):
        def setup(self, **info):
            self._bar = progress_bar(total, "trials done", unit="trial")

        def __getstate__(self):  # Tune saves its callbacks with the experiment: not the bar (a terminal handle)
            return {k: v for k, v in self.__dict__.items() if k != "_bar"}

        def _done(self) -> None:
            if getattr(self, "_bar", None) is None:
                self.setup()
            self._bar.update(1)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._done()

        def on_trial_error(self, iteration, trials, trial, **info):
            self._done()

        def on_experiment_end(self, trials, **info):
            if getattr(self, "_bar", None) is not None:
                self._bar.close()

    return TrialsDone()


def _make_progress_callback():
    from ray.tune.result import SHOULD_CHECKPOINT

    class ProgressAndBudget(_tune_callback_base()):
        """Prints one progress line per iteration; when this session's time
        budget would run out before another iteration, asks for a checkpoint
        and then interrupts the experiment the way Ctrl+C does, so the trial
        stays unfinished and ``--resume`` continues it."""

        def setup(self, **info):
            _SESSION["started"] = time.monotonic()
            self._stopping = False
            self._last = {}
            self._first = {}  # trial -> (iteration, steps) at its first result of this session

        def on_trial_result(self, iteration, trials, trial, result, **info):
            started = _SESSION["started"] or time.monotonic()
            elapsed = time.monotonic() - started
            budget = _SESSION["time_budget_s"]
            env_runners = result.get("env_runners", {})
            # The envs' episodes end together every few iterations: show the
            # latest finished episodes' figures, and "n/a" before the first.
            shown = self.__dict__.setdefault("_last", {}).setdefault(trial.trial_id, {})
            for key, value in (("return", env_runners.get("episode_return_mean")), ("sharpe", env_runners.get("sharpe")), ("val", result.get("val_sharpe"))):
                if value is not None and not math.isnan(float(value)):
                    shown[key] = float(value)
            it = int(result.get("training_iteration", 0))
            steps = int(result.get("num_env_steps_sampled_lifetime", env_runners.get("num_env_steps_sampled_lifetime", 0)))
            # rate and ETA from this trial's own first result (a queued trial's wait is not an iteration)
            first_it, first_steps, first_t = self.__dict__.setdefault("_first", {}).setdefault(
                trial.trial_id, (it - 1, steps - steps // max(it, 1), time.monotonic() - float(result.get("time_this_iter_s", 0.0) or 0.0))
            )
            per_it = (time.monotonic() - first_t) / max(1, it - first_it)
            total = _SESSION.get("stop_iterations")
            rate = (steps - first_steps) / max(1e-9, time.monotonic() - first_t)
            line = (
                f"[{trial.trial_id}] iter {it:>4}{f'/{total}' if total else ''} | "
                f"steps {steps:>9,} ({rate:,.0f}/s) | "
                f"team return {_signed(shown.get('return'), 3)} | "
                f"train Sharpe {_signed(shown.get('sharpe'), 2)} | val Sharpe {_signed(shown.get('val'), 2)} | "
                f"{_hms(elapsed)} elapsed"
            )
            if total and it < total:
                line += f", ETA {_hms(per_it * (total - it))}"
            if budget:
                line += f", {_hms(max(0.0, budget - elapsed))} left in budget"
                iteration_s = float(result.get("time_this_iter_s", 0.0))
                margin = min(BUDGET_SAFETY_S, 0.1 * budget)
                if not self._stopping and elapsed + 2 * iteration_s + margin >= budget:
                    self._stopping = True
                    result[SHOULD_CHECKPOINT] = True
                    line += " -> time budget reached: checkpointing and stopping"
            print(line, flush=True)

        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
            if self._stopping:
                print(f"checkpoint saved at {checkpoint.path}; stopping for the time budget (resume with --resume)", flush=True)
                os.kill(os.getpid(), signal.SIGUSR1)  # Tune's graceful interrupt

    return ProgressAndBudget()


def _signed(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _wandb_callback(cfg: TrainConfig):
    """W&B through Tune's logger callback; offline without a key or network,
    and never a reason for the run to fail."""
    if not cfg.experiment.wandb.enabled:
        return None
    try:
        from ray.air.integrations.wandb import WandbLoggerCallback
    except Exception as exc:  # pragma: no cover - wandb missing
        logger.warning("Weights & Biases is not available (%s); continuing without it", exc)
        return None
    offline = not os.environ.get("WANDB_API_KEY") and os.environ.get("WANDB_MODE") != "online"
    kwargs = {}
    if offline:
        # Also passed to wandb.init: the logging actor may run in a Ray worker
        # started before this process set the environment variable.
        os.environ["WANDB_MODE"] = "offline"
        kwargs["mode"] = "offline"
        print("wandb: no WANDB_API_KEY; logging offline (sync later with `wandb sync`)")
    try:
        return WandbLoggerCallback(project=cfg.experiment.wandb.project, group=cfg.experiment.wandb.group or cfg.experiment.name, **kwargs)
    except Exception as exc:
        logger.warning("could not set up Weights & Biases (%s); continuing without it", exc)
        return None


# -- the experiment -------------------------------------------------------------
