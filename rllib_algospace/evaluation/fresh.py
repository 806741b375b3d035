"""Evaluation on synthetic markets that training never saw, and the figures
a six-week test window cannot give: Sharpe from daily returns beside the
per-bar one, block-bootstrap 95% intervals of both, and the user's targets.

A fresh market is a new file of the same preset and length as the training
data, generated with another seed (cached like the default data), and run from
its first bar to its last: its train, val and test splits one after the other,
each from flat (every bar is unseen). A seed that made any of the training
files is refused.

Daily returns: the equity at the last bar of each UTC day, chained over the
runs; annualised with 252 days a year (the quant convention). Per-bar Sharpe is
annualised with the data's bars per year. Intervals: stationary block
bootstrap (``rllib_algospace.evaluation.stats.sharpe_ci``), seeded.
"""
from __future__ import annotations

import math

import numpy as np

from envs.data.provenance import SYNTHETIC_SOURCE
from rllib_algospace.evaluation.runner import EvaluationRun, run_policy

DAYS_PER_YEAR = 252.0
SPLITS = ("train", "val", "test")
DEFAULT_FRESH_SEED = 1000
# Consensus means something only for policies whose agents decide apart.
CONSENSUS_POLICIES = ("team", "rule")
# The user's success metrics; Sharpe is the daily one.
TARGETS = {"sharpe_daily": (">", 1.2), "max_drawdown": ("<", 0.15), "win_rate": (">", 0.52), "consensus_rate": (">", 0.80)}


class FreshMarketError(ValueError):
    """Fresh markets cannot be made for this checkpoint or seed (one-line message)."""


def synthetic_origin(path) -> tuple[str, int, int]:
    """``(preset, seed, bars)`` of a synthetic market file."""
    import h5py

    with h5py.File(path, "r") as f:
        source = str(f.attrs.get("source", ""))
        bars = int(f["base"]["close"].shape[0])
    match = SYNTHETIC_SOURCE.match(source)
    if not match:
        raise FreshMarketError(f"{path}: --fresh-markets needs synthetic training data, and this file's source is {source!r}")
    return match["preset"], int(match["seed"]), bars


def training_files(env_config: dict) -> list[str]:
    """Every market file a run trained on: its data and its curriculum tasks' files."""
    files = [env_config["data"]] if env_config.get("data") else []
    files += [p for p in (env_config.get("tasks") or {}).values() if p not in files]
    if not files:
        raise FreshMarketError("the checkpoint records no training data file")
    return files


def fresh_seeds(n: int, first: int, used: dict[int, str]) -> list[int]:
    """``n`` consecutive seeds from ``first``; refuses one that made training data."""
    if n < 1:
        raise FreshMarketError(f"--fresh-markets {n}: must be at least 1")
    seeds = list(range(first, first + n))
    for seed in seeds:
        if seed in used:
            raise FreshMarketError(f"--fresh-seed {first}: seed {seed} made the training data ({used[seed]}); pick seeds training never saw")
    return seeds


def daily_returns(step_return: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """Simple returns from one UTC day's close to the next, from per-bar returns."""
    if len(step_return) == 0:
        return np.zeros(0)
    equity = np.cumprod(1.0 + np.asarray(step_return, dtype=np.float64))
    day = np.asarray(timestamp, dtype=np.int64) // 86_400
    last_of_day = np.flatnonzero(np.r_[day[1:] != day[:-1], True])
    closes = np.r_[1.0, equity[last_of_day]]
    return closes[1:] / closes[:-1] - 1.0


def series_metrics(step_return, timestamp, trade_pnls, agreed, entry_proposed, *, bars_per_year: float, n_boot: int = 1000, seed: int = 0, with_consensus: bool = True) -> dict:
    """Return, drawdown, trades and both Sharpe ratios (with 95% intervals) of
    one chained return series."""
    from rllib_algospace.evaluation.metrics import max_drawdown, sortino_ratio
    from rllib_algospace.evaluation.stats import sharpe_ci

    r = np.asarray(step_return, dtype=np.float64)
    daily = daily_returns(r, timestamp)
    bar_ci = sharpe_ci(r, periods_per_year=bars_per_year, n_boot=n_boot, seed=seed)
    day_ci = sharpe_ci(daily, periods_per_year=DAYS_PER_YEAR, n_boot=n_boot, seed=seed)
    pnls = np.asarray(trade_pnls, dtype=np.float64)
    entries = int(np.sum(entry_proposed))
    equity = np.r_[1.0, np.cumprod(1.0 + r)]
    return {
        "total_return": float(equity[-1] - 1.0),
        "sharpe_daily": day_ci.estimate,
        "sharpe_daily_ci95": [day_ci.low, day_ci.high],
        "sortino_daily": sortino_ratio(daily, DAYS_PER_YEAR),
        "sharpe_per_bar": bar_ci.estimate,
        "sharpe_per_bar_ci95": [bar_ci.low, bar_ci.high],
        "max_drawdown": max_drawdown(equity),
        "win_rate": float(np.mean(pnls > 0)) if len(pnls) else math.nan,
        "trades": int(len(pnls)),
        "consensus_rate": (float(np.sum(agreed)) / entries if entries else math.nan) if with_consensus else math.nan,
        "bars": int(len(r)),
        "days": int(len(daily)),
    }


def run_series_metrics(run: EvaluationRun, *, n_boot: int = 1000, seed: int = 0, with_consensus: bool = True) -> dict:
    return series_metrics(run.step_return, run.timestamp, run.trade_pnls, run.agreed, run.entry_proposed, bars_per_year=run.meta["bars_per_year"], n_boot=n_boot, seed=seed, with_consensus=with_consensus)


def policy_series_metrics(runs: dict[str, EvaluationRun], *, n_boot: int = 1000, seed: int = 0) -> dict:
    """``run_series_metrics`` of each named run (consensus left blank for baselines)."""
    return {name: run_series_metrics(run, n_boot=n_boot, seed=seed, with_consensus=name in CONSENSUS_POLICIES) for name, run in runs.items()}


def targets_met(metrics: dict) -> dict[str, bool]:
    """Each target -> met (a NaN value is not met)."""
    out = {}
    for key, (op, bound) in TARGETS.items():
        value = metrics.get(key, math.nan)
        out[key] = bool(value is not None and not math.isnan(value) and (value > bound if op == ">" else value < bound))
    return out


def _whole_file(policy, path: str, env_overrides: dict, seed: int) -> list[EvaluationRun]:
    return [run_policy(policy, data=path, split=split, full_split=True, env_overrides=env_overrides, seed=seed) for split in SPLITS]


def _pooled(runs: list[EvaluationRun], *, n_boot: int, seed: int, with_consensus: bool) -> dict:
    cat = lambda name: np.concatenate([getattr(r, name) for r in runs])  # noqa: E731
    return series_metrics(
        cat("step_return"), cat("timestamp"), cat("trade_pnls"), cat("agreed"), cat("entry_proposed"),
        bars_per_year=runs[0].meta["bars_per_year"], n_boot=n_boot, seed=seed, with_consensus=with_consensus,
    )


def evaluate_fresh_markets(policy, *, env_config: dict, n: int, first_seed: int = DEFAULT_FRESH_SEED, env_overrides: dict | None = None, n_boot: int = 1000, seed: int = 0, baselines: bool = True, progress=print) -> dict:
    """The team ``policy`` and (``baselines``) the baselines on ``n`` fresh
    markets of the training data's preset (see the module docstring).
    ``env_config`` is the checkpoint's (its data and tasks name the training
    files). Returns per-market and pooled metrics per policy, and
    ``targets_met`` of the team's pooled figures."""
    from envs.data.default import default_dataset_path
    from rllib_algospace.policies import RuleTeamPolicy, buy_and_hold_policy, flat_policy

    files = training_files(env_config)
    origins = {path: synthetic_origin(path) for path in files}
    used = {s: path for path, (_, s, _) in origins.items()}
    preset, _, bars = origins[files[0]]
    seeds = fresh_seeds(n, first_seed, used)
    policies = {"team": policy, "buy_and_hold": buy_and_hold_policy, "flat": flat_policy, "rule": RuleTeamPolicy()}
    if not baselines:
        policies = {"team": policy}
    overrides = dict(env_overrides or {})
    markets, all_runs = [], {name: [] for name in policies}
    for i, market_seed in enumerate(seeds):
        path = str(default_dataset_path(preset, bars, market_seed))
        progress(f"fresh market {i + 1}/{n}: {preset}, seed {market_seed}, {bars:,} bars")
        entry = {"seed": market_seed, "data": path, "results": {}}
        for name, p in policies.items():
            runs = _whole_file(p, path, overrides, seed)
            all_runs[name] += runs
            entry["results"][name] = _pooled(runs, n_boot=n_boot, seed=seed, with_consensus=name in CONSENSUS_POLICIES)
        markets.append(entry)
    pooled = {name: _pooled(runs, n_boot=n_boot, seed=seed, with_consensus=name in CONSENSUS_POLICIES) for name, runs in all_runs.items()}
    for name in policies:  # the worst market's drawdown, not the pooled series'
        pooled[name]["max_drawdown"] = max(m["results"][name]["max_drawdown"] for m in markets)
    return {
        "preset": preset,
        "bars": bars,
        "seeds": seeds,
        "training_seeds": sorted(used),
        "markets": markets,
        "pooled": pooled,
        "targets": {k: f"{op} {bound:g}" for k, (op, bound) in TARGETS.items()},
        "targets_met": targets_met(pooled["team"]),
        "policies": list(policies),
    }


def format_fresh_summary(title: str, results: dict[str, dict], met: dict[str, bool] | None = None) -> str:
    """A table of daily and per-bar Sharpe with intervals, drawdown, win rate,
    consensus and trades per policy, then the targets."""
    lines = [title, f"{'policy':<14}{'Sharpe daily [95% CI]':>28}{'Sortino daily':>14}{'Sharpe/bar [95% CI]':>28}{'max DD':>9}{'win':>8}{'consensus':>11}{'trades':>8}"]

    def ci(est, band):
        return f"{est:+.2f} [{band[0]:+.2f}, {band[1]:+.2f}]"

    def pct(v):
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"

    for name, m in results.items():
        sortino = m.get("sortino_daily")
        lines.append(f"{name:<14}{ci(m['sharpe_daily'], m['sharpe_daily_ci95']):>28}{'n/a' if sortino is None else f'{sortino:+.2f}':>14}{ci(m['sharpe_per_bar'], m['sharpe_per_bar_ci95']):>28}"
                     f"{pct(m['max_drawdown']):>9}{pct(m['win_rate']):>8}{pct(m['consensus_rate']):>11}{m['trades']:>8}")
    if met is not None:
        lines.append("targets (team): " + ", ".join(f"{k} {TARGETS[k][0]} {TARGETS[k][1]:g}: {'met' if ok else 'NOT met'}" for k, ok in met.items()))
    return "\n".join(lines)
