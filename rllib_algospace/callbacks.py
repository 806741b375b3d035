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


def team_envs(env_runner) -> list:
    """The team envs (``envs.market.team.TeamMarketEnv``) of one env runner."""
    env = getattr(env_runner, "env", None)
    if env is None:  # e.g. the local env runner when sampling is remote
        return []
    vector = env.unwrapped
    subs = getattr(vector, "envs", None)
    if subs is None:
        return [vector]
    return [sub.unwrapped for sub in subs]


def cost_scale_at(lifetime_steps: float, warmup_steps: int, free_steps: int = 0) -> float:
    """Share of the trading costs charged after ``lifetime_steps`` env steps:
    none for the first ``free_steps``, then rising linearly to all of them
    over ``warmup_steps`` (1 with neither)."""
    after = float(lifetime_steps) - float(free_steps)
    if after < 0:
        return 0.0
    if not warmup_steps:
        return 1.0
    return min(1.0, after / float(warmup_steps))


def _set_cost_scale(env_runner, scale: float) -> int:
    envs = team_envs(env_runner)
    for env in envs:
        env.set_cost_scale(scale)
    return len(envs)


class CostWarmupCallback(RLlibCallback):
    """No trading costs for the first ``free_steps`` env steps of training
    (``algorithm.cost_free_steps``), then costs ramping in over
    ``warmup_steps`` (``algorithm.cost_warmup_steps``): an untrained team that pays full costs
    learns "a position costs money" before anything else and stops trading
    (BENCHMARKS.md, the canary). Only the training env runners' envs are
    scaled; validation and every evaluation charge the full costs. The scale
    follows the lifetime step counter, so a resumed run picks up where it
    was; each result logs ``cost_scale``."""

    warmup_steps: int = 0  # set by ``with_warmup``
    free_steps: int = 0

    @classmethod
    def with_warmup(cls, steps: int, free_steps: int = 0) -> type:
        return type(cls.__name__, (cls,), {"warmup_steps": int(steps), "free_steps": int(free_steps)})

    def _apply(self, algorithm, lifetime_steps: float) -> float:
        from functools import partial

        scale = cost_scale_at(lifetime_steps, self.warmup_steps, self.free_steps)
        group = getattr(algorithm, "env_runner_group", None)
        if group is not None:
            group.foreach_env_runner(partial(_set_cost_scale, scale=scale), local_env_runner=True)
        return scale

    def on_algorithm_init(self, *, algorithm, **kwargs):
        self._apply(algorithm, 0)

    def on_checkpoint_loaded(self, *, algorithm, **kwargs):
        self._apply(algorithm, _lifetime_steps(algorithm))

    def on_train_result(self, *, algorithm, metrics_logger=None, result, **kwargs):
        steps = (result.get("env_runners") or {}).get("num_env_steps_sampled_lifetime")
        result["cost_scale"] = self._apply(algorithm, steps if steps is not None else _lifetime_steps(algorithm))


def _lifetime_steps(algorithm) -> float:
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME

    try:
        return float(algorithm.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0) or 0)
    except Exception:  # a metrics logger without the key yet
        return 0.0
