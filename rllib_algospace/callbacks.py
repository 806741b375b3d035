"""RLlib callbacks: trading metrics per episode, validation metrics in every
result, and checkpoints every M minutes.

Episode metrics come from the env's running totals in the last step's infos
(``envs.market.env.EPISODE_STATS``), so they are right even when RLlib cuts an
episode into chunks across iterations. They appear under
``result["env_runners"]`` for training episodes and
``result["evaluation"]["env_runners"]`` for validation episodes.
"""
from __future__ import annotations

import math
import time

from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.tune.result import SHOULD_CHECKPOINT

TRADING_METRICS = ("sharpe", "total_return", "max_drawdown", "win_rate", "profit_factor", "trades", "exposure", "consensus_rate", "regime_accuracy")
VAL_PREFIX = "val_"


def episode_trading_metrics(info: dict, initial_equity: float, bars_per_year: float) -> dict[str, float]:
    """Trading metrics of one episode from the infos of its last step."""
    steps = info["ep_steps"]
    if steps < 1:
        return {}
    mean = info["ep_return_sum"] / steps
    var = max(0.0, info["ep_return_sq_sum"] / steps - mean * mean) * steps / max(1, steps - 1)
    std = math.sqrt(var)
    trades = info["closed_trades"]
    gross_loss = info["ep_gross_loss"]
    return {
        "sharpe": mean / std * math.sqrt(bars_per_year) if std > 0 else 0.0,
        "total_return": info["equity"] / initial_equity - 1.0,
        "max_drawdown": info["ep_max_drawdown"],
        "win_rate": info["winning_trades"] / trades if trades else math.nan,
        "profit_factor": info["ep_gross_win"] / gross_loss if gross_loss > 0 else math.nan,
        "trades": float(trades),
        "exposure": info["ep_exposed_steps"] / steps,
        "consensus_rate": info["ep_agreed"] / info["ep_entries"] if info["ep_entries"] else math.nan,
        "regime_accuracy": info["ep_regime_hits"] / info["ep_regime_labelled"] if info["ep_regime_labelled"] else math.nan,
    }


class TeamMetricsCallback(RLlibCallback):
    """Logs each finished episode's trading metrics; copies the latest
    validation metrics into every result as ``val_<metric>`` (NaN until the
    first validation), so Tune can rank any checkpoint by them; requests a
    checkpoint when ``checkpoint_every_minutes`` have passed since the last."""

    checkpoint_every_minutes: float | None = None  # set by ``with_checkpoint_minutes``

    def __init__(self):
        super().__init__()
        self._last_val: dict[str, float] = {f"{VAL_PREFIX}{m}": math.nan for m in TRADING_METRICS}
        self._last_checkpoint = time.monotonic()

    @classmethod
    def with_checkpoint_minutes(cls, minutes: float | None) -> type:
        return type(cls.__name__, (cls,), {"checkpoint_every_minutes": minutes})

    def on_episode_end(self, *, episode, metrics_logger=None, env=None, env_index=0, **kwargs):
        if metrics_logger is None:
            return
        info = episode.get_infos(-1)  # the team env's full infos, on an episode's last step
        market_env = _env_at(env, env_index)
        initial = market_env.config.initial_equity if market_env is not None else 100_000.0
        bars_per_year = market_env.market.bars_per_year if market_env is not None else 252.0
        for key, value in episode_trading_metrics(info, initial, bars_per_year).items():
            if not math.isnan(value):
                metrics_logger.log_value(key, value, reduce="mean")

    def on_train_result(self, *, algorithm, metrics_logger=None, result, **kwargs):
        evaluation = result.get("evaluation", {}).get("env_runners", {})
        if evaluation:
            for metric in TRADING_METRICS:
                value = evaluation.get(metric)
                # RLlib repeats stale evaluation entries, NaN ones among them,
                # on iterations without a validation: keep the last real value.
                if value is not None and not math.isnan(float(value)):
                    self._last_val[f"{VAL_PREFIX}{metric}"] = float(value)
        result.update(self._last_val)
        minutes = self.checkpoint_every_minutes
        if minutes and time.monotonic() - self._last_checkpoint >= minutes * 60:
            result[SHOULD_CHECKPOINT] = True
            self._last_checkpoint = time.monotonic()


def _env_at(env, env_index):
    """The market env behind RLlib's vector env, or None."""
    try:
        vector = env.unwrapped
        single = vector.envs[env_index] if hasattr(vector, "envs") else vector
        return single.unwrapped.market_env
    except (AttributeError, IndexError):
        return None
