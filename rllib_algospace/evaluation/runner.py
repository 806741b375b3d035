"""Greedy evaluation of a team policy on the market, against fixed baselines.

Everything here is numpy (plus matplotlib for the figure): a policy is a plain
callable ``observations -> actions`` (see ``rllib_algospace.policies``).

Conventions
-----------
* One step is one base bar. The per-step arrays of an :class:`EvaluationRun`
  describe the state *after* each step: ``bar`` is the bar at whose close
  equity was marked (the decision was made at ``bar - 1`` and filled at
  ``bar``'s open), ``timestamp`` that bar's open time, ``close`` its close.
* ``regime_label`` of a step is the ground-truth label of the bar the team
  acted on (``bar - 1``), the label the environment's regime shaping uses;
  ``-1`` where the data has no labels.
* ``consensus_rate``: the share of steps with a side proposed (tactical
  ``long`` / ``short``) on which structure called the same
  direction (the joint-action consensus rule). NaN when nothing was proposed.
* ``regime_accuracy``: share of labelled steps on which regime's call equals
  the label; NaN without labels.
* Several episodes: the headline ``metrics`` are computed on the per-step
  returns of all episodes chained one after the other (one equity curve
  starting at the initial equity; trades, costs and counts summed over
  episodes); ``per_episode_mean`` is the mean of each episode's own metrics.
* ``per_regime``: for each ground-truth label present, the team's results on
  the steps labelled that regime (see :func:`per_regime_metrics`).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from envs.market.env import AGENTS
from envs.market.trading import REGIME_ACTIONS
from rllib_algospace.artifacts import write_atomically
from rllib_algospace.evaluation.metrics import EpisodeRecord
from rllib_algospace.policies import RuleTeamPolicy, buy_and_hold_policy, flat_policy
from rllib_algospace.evaluation.stats import sharpe_ratio

RUNNER_KEYS = ("data", "split", "episode_length", "random_start", "render_mode")
SUMMARY_KEYS = ("total_return", "sharpe", "sortino", "calmar", "max_drawdown", "win_rate", "profit_factor", "trades", "exposure", "consensus_rate", "regime_accuracy")
BASELINES = ("buy_and_hold", "flat", "rule")


@dataclass
class EvaluationRun:
    """The record of one greedy evaluation: per-step arrays (all episodes
    concatenated, ``episode`` giving each step's episode id), closed trades,
    per-episode facts, and the metrics."""

    episode: np.ndarray  # int, episode id of each step
    step: np.ndarray  # int, step number within its episode (0-based)
    bar: np.ndarray  # int, bar index after the step
    timestamp: np.ndarray  # int64 epoch seconds (bar open time)
    close: np.ndarray
    equity: np.ndarray  # equity after the step; every episode starts at initial_equity
    step_return: np.ndarray  # equity[i] / equity before the step - 1
    exposure: np.ndarray  # position value / equity after the step
    position: np.ndarray  # units held after the step
    drawdown: np.ndarray  # from the episode's equity peak
    actions: dict[str, np.ndarray]  # agent -> action taken at each step
    regime_label: np.ndarray  # label of the bar acted on (-1: none)
    agreed: np.ndarray  # bool, structure/tactical consensus on an entry
    entry_proposed: np.ndarray  # bool, tactical proposed an entry
    trade_pnls: np.ndarray  # net PnL of each closed round trip
    trade_episode: np.ndarray  # episode id of each closed trade
    start_bars: np.ndarray  # first bar (the one of the reset observation) of each episode
    terminated: np.ndarray  # bool per episode: stopped by the equity floor
    episode_metrics: list[dict]
    metrics: dict
    per_episode_mean: dict
    per_regime: dict
    meta: dict = field(default_factory=dict)

    @property
    def n_episodes(self) -> int:
        return len(self.start_bars)

    @property
    def terminated_early(self) -> bool:
        return bool(np.any(self.terminated))

    @property
    def chained_equity(self) -> np.ndarray:
        """Equity after each step with episodes chained (see the module docstring)."""
        return self.meta["initial_equity"] * np.cumprod(1.0 + self.step_return)

    @property
    def episode_bounds(self) -> np.ndarray:
        """Index of the first step of each episode in the step arrays."""
        return np.flatnonzero(np.r_[True, np.diff(self.episode) != 0]) if len(self.episode) else np.zeros(0, dtype=int)

    def summary(self) -> dict:
        """The headline metrics plus ``per_regime`` and ``per_episode_mean``."""
        out = dict(self.metrics)
        out["per_regime"] = {k: dict(v) for k, v in self.per_regime.items()}
        out["per_episode_mean"] = dict(self.per_episode_mean)
        return out

    def to_dict(self, steps: bool = False) -> dict:
        """Plain-Python summary (NaN kept as float NaN; :func:`write_report`
        turns it into null). ``steps=True`` adds the per-step arrays as lists."""
        out = {
            "meta": dict(self.meta),
            "metrics": dict(self.metrics),
            "per_episode_mean": dict(self.per_episode_mean),
            "per_regime": {k: dict(v) for k, v in self.per_regime.items()},
            "episodes": [
                {
                    "episode": i,
                    "start_bar": int(self.start_bars[i]),
                    "terminated": bool(self.terminated[i]),
                    "metrics": dict(self.episode_metrics[i]),
                }
                for i in range(self.n_episodes)
            ],
        }
        if steps:
            out["steps"] = {
                name: getattr(self, name).tolist()
                for name in ("episode", "step", "bar", "timestamp", "close", "equity", "step_return", "exposure", "position", "drawdown", "regime_label", "agreed", "entry_proposed")
            }
            out["steps"]["actions"] = {a: v.tolist() for a, v in self.actions.items()}
            out["trade_pnls"] = self.trade_pnls.tolist()
        return out


# -- running ---------------------------------------------------------------------
def run_policy(
    policy,
    *,
    data: str | os.PathLike | None = None,
    split: str = "test",
    episodes: int | None = None,
    full_split: bool = False,
    episode_length: int = 1024,
    seed: int = 0,
    env_overrides: dict | None = None,
    render_every: int = 0,
    progress: bool | str | None = None,
) -> EvaluationRun:
    """Run the team ``policy`` greedily on ``envs.algospace_market``.

    ``full_split=True``: one episode from the split's first bar to its last
    (``random_start=False``, ``episode_length=0``); if the equity floor ends
    it early, ``run.terminated`` says so. Otherwise ``episodes`` episodes of
    ``episode_length`` bars from random starts drawn by the environment's
    generator seeded once with ``seed`` (so the starts depend on ``seed``
    only, never on the policy); ``episodes=None`` runs as many as fit in the
    split's length (at least one). ``env_overrides`` are further environment
    settings (costs, leverage, ...); the keys the runner sets itself
    (``RUNNER_KEYS``) are refused. ``render_every=N`` prints the
    environment's text rendering every N steps. ``progress`` (a label, or
    True; None: as ``show_progress`` set it) shows a progress bar with ETA.
    """
    if progress is None:
        progress = _PROGRESS["enabled"]
    from envs import algospace_market

    overrides = dict(env_overrides or {})
    clash = sorted(set(overrides) & set(RUNNER_KEYS))
    if clash:
        raise ValueError(f"env_overrides may not set {clash[0]!r}; pass it to run_policy instead")
    if full_split:
        length, random_start = 0, False
    else:
        if not isinstance(episode_length, int) or episode_length <= 0:
            raise ValueError(f"episode_length must be a positive integer, got {episode_length!r} (use full_split=True for the whole split)")
        length, random_start = episode_length, True
    env = algospace_market.parallel_env(
        data=None if data is None else str(data),
        split=split,
        episode_length=length,
        random_start=random_start,
        render_mode="ansi" if render_every else None,
        **overrides,
    )
    bar = None
    try:
        split_start, split_stop = env.market.splits[split]
        if full_split:
            n_episodes = 1
        elif episodes is None:
            n_episodes = max(1, (split_stop - split_start) // episode_length)
        else:
            n_episodes = int(episodes)
            if n_episodes < 1:
                raise ValueError(f"episodes must be >= 1, got {episodes!r}")
        initial = env.config.initial_equity
        bars_per_year = env.market.bars_per_year
        cols: dict[str, list] = {k: [] for k in ("episode", "step", "bar", "timestamp", "close", "equity", "step_return", "exposure", "position", "drawdown", "regime_label", "agreed", "entry_proposed")}
        acts: dict[str, list] = {a: [] for a in AGENTS}
        trade_pnls: list[float] = []
        trade_episode: list[int] = []
        start_bars, terminated, records = [], [], []
        total_steps = (split_stop - split_start - 1) if full_split else n_episodes * min(episode_length, split_stop - split_start - 1)
        bar = progress_bar(total_steps, f"{progress} ({split})" if isinstance(progress, str) else f"evaluating on {split}", unit="bars") if progress else None
        for ep in range(n_episodes):
            observations, infos = env.reset(seed=seed if ep == 0 else None)
            reset = getattr(policy, "reset", None)
            if callable(reset):
                reset()
            start_bars.append(env.bar_index)
            record = EpisodeRecord(initial_equity=initial, bars_per_year=bars_per_year)
            previous = infos[AGENTS[0]]
            done_by_floor = False
            step = 0
            while env.agents:
                raw = policy(observations)
                try:
                    actions = {a: int(raw[a]) for a in env.agents}
                except KeyError as exc:
                    raise KeyError(f"the policy returned no action for agent {exc.args[0]!r}") from None
                observations, _, terms, _, infos = env.step(actions)
                if bar is not None and step % 256 == 255:
                    bar.update(256)
                info = infos[AGENTS[0]]
                label = int(previous["regime_label"])
                record.add(info, regime_action=actions["regime"], regime_label=label)
                cols["episode"].append(ep)
                cols["step"].append(step)
                cols["bar"].append(info["bar"])
                cols["timestamp"].append(info["timestamp"])
                cols["close"].append(info["price"])
                cols["equity"].append(info["equity"])
                cols["step_return"].append(info["equity"] / previous["equity"] - 1.0)
                cols["exposure"].append(info["exposure"])
                cols["position"].append(info["position"])
                cols["drawdown"].append(info["drawdown"])
                cols["regime_label"].append(label)
                cols["agreed"].append(bool(info["agreed"]))
                cols["entry_proposed"].append(bool(info["entry_proposed"]))
                for a in AGENTS:
                    acts[a].append(actions[a])
                if info["trade_closed"]:
                    trade_pnls.append(float(info["trade_pnl"]))
                    trade_episode.append(ep)
                done_by_floor = done_by_floor or any(terms.values())
                previous = info
                step += 1
                if render_every and step % render_every == 0:
                    print(env.render())
            terminated.append(done_by_floor)
            records.append(record)
        meta = {
            "source": env.market.source,
            "data": str(env.market.path),
            "split": split,
            "split_bounds": [int(split_start), int(split_stop)],
            "full_split": bool(full_split),
            "episodes": n_episodes,
            "episode_length": int(length),
            "seed": seed,
            "bars_per_year": float(bars_per_year),
            "initial_equity": float(initial),
            "has_labels": bool(env.market.has_labels),
            "env_overrides": overrides,
        }
    finally:
        if bar is not None:
            bar.close()
        env.close()

    dtypes = {"episode": np.int64, "step": np.int64, "bar": np.int64, "timestamp": np.int64, "regime_label": np.int64, "agreed": bool, "entry_proposed": bool}
    arrays = {k: np.asarray(v, dtype=dtypes.get(k, np.float64)) for k, v in cols.items()}
    episode_metrics = [r.metrics() for r in records]
    chained = _chain(records, arrays["step_return"], initial, bars_per_year)
    metrics = chained.metrics()
    metrics["episodes"] = n_episodes
    metrics["terminated_early"] = bool(any(terminated))
    run = EvaluationRun(
        **arrays,
        actions={a: np.asarray(v, dtype=np.int64) for a, v in acts.items()},
        trade_pnls=np.asarray(trade_pnls, dtype=np.float64),
        trade_episode=np.asarray(trade_episode, dtype=np.int64),
        start_bars=np.asarray(start_bars, dtype=np.int64),
        terminated=np.asarray(terminated, dtype=bool),
        episode_metrics=episode_metrics,
        metrics=metrics,
        per_episode_mean=_mean_metrics(episode_metrics),
        per_regime={},
        meta=meta,
    )
    run.per_regime = per_regime_metrics(run)
    return run


def _chain(records: list[EpisodeRecord], step_return: np.ndarray, initial: float, bars_per_year: float) -> EpisodeRecord:
    """One record whose equity curve chains every episode's step returns."""
    if len(records) == 1:
        return records[0]
    chained = EpisodeRecord(initial_equity=initial, bars_per_year=bars_per_year)
    chained.equity = list(initial * np.cumprod(1.0 + step_return))
    for r in records:
        chained.exposure.extend(r.exposure)
        chained.trade_pnls.extend(r.trade_pnls)
        chained.agreed += r.agreed
        chained.entries += r.entries
        chained.regime_hits += r.regime_hits
        chained.regime_labelled += r.regime_labelled
        chained.costs += r.costs
    return chained


def _mean_metrics(episode_metrics: list[dict]) -> dict:
    """Mean of each numeric metric over episodes, ignoring NaN (NaN when every
    episode has NaN; inf when any episode has an infinite profit factor)."""
    out = {}
    for key in episode_metrics[0] if episode_metrics else ():
        values = np.asarray([float(m[key]) for m in episode_metrics], dtype=np.float64)
        finite_or_inf = values[~np.isnan(values)]
        out[key] = float(np.mean(finite_or_inf)) if len(finite_or_inf) else float("nan")
    return out


def regime_name(code: int) -> str:
    """A regime code's name (``REGIME_ACTIONS``), or the code itself."""
    return REGIME_ACTIONS[code] if 0 <= code < len(REGIME_ACTIONS) else str(code)


def per_regime_metrics(run: EvaluationRun, *, detected: bool = False) -> dict[str, dict]:
    """For each regime present, the team's results on the steps of that
    regime (keys: ``regime_name``). The regimes are the ground-truth labels
    of ``run.regime_label``, or with ``detected`` the regime agent's own
    calls (for data without labels):

    * ``steps`` and ``step_share`` (share of all steps),
    * ``return``: the compounded return of those steps, ``prod(1 + r) - 1``,
    * ``mean_return``: their mean step return,
    * ``return_share``: their share of the run's total log return,
      ``sum(log(1 + r) on the regime) / sum(log(1 + r))`` (NaN when the total is 0),
    * ``sharpe``: annualised mean / std of those step returns (0 when the
      std is 0, NaN with fewer than two steps),
    * ``hit_rate``: share of the steps holding a position that gained,
    * ``exposure``: share of those steps holding a position,
    * ``regime_accuracy`` (ground truth only): share of them on which regime called the label.
    """
    labels = np.asarray(run.actions["regime"]) if detected else np.asarray(run.regime_label)
    r = np.asarray(run.step_return, dtype=np.float64)
    exposed = np.abs(np.asarray(run.exposure)) > 1e-12
    logs = np.log1p(r)
    total = float(logs.sum())
    out = {}
    for code in sorted(int(c) for c in np.unique(labels) if c >= 0):
        mask = labels == code
        rk = r[mask]
        n = int(mask.sum())
        held = mask & exposed
        entry = {
            "steps": n,
            "step_share": n / len(r) if len(r) else float("nan"),
            "return": float(np.expm1(logs[mask].sum())),
            "mean_return": float(rk.mean()) if n else float("nan"),
            "return_share": float(logs[mask].sum() / total) if total != 0.0 else float("nan"),
            "sharpe": sharpe_ratio(rk, run.meta["bars_per_year"]) if n >= 2 else float("nan"),
            "hit_rate": float(np.mean(r[held] > 0)) if held.any() else float("nan"),
            "exposure": float(np.mean(exposed[mask])) if n else float("nan"),
        }
        if not detected:
            entry["regime_accuracy"] = float(np.mean(np.asarray(run.actions["regime"])[mask] == code))
        out[regime_name(code)] = entry
    return out


class Comparison(dict):
    """``{name: metric dict}`` from :func:`evaluate_with_baselines`; the
    :class:`EvaluationRun` behind each entry is in ``.runs``."""

    runs: dict[str, EvaluationRun]


_PROGRESS = {"enabled": False}


def show_progress(enabled: bool = True) -> None:
    """Progress bars (tqdm: a text bar in a terminal, a widget in a notebook)
    on every run of :func:`run_policy` that does not say otherwise; the CLI
    turns them on."""
    _PROGRESS["enabled"] = bool(enabled)


def progress_bar(total: int, desc: str, unit: str = "it"):
    """A tqdm bar (``tqdm.auto``) that hides itself when stderr is no terminal."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, mininterval=0.5, leave=False, disable=None)


def evaluate_with_baselines(policy, **kwargs) -> Comparison:
    """Run ``policy`` and the baselines buy-and-hold, flat and the rule team
    with the same arguments as :func:`run_policy` (so on exactly the same
    bars and episode starts). Returns ``{"team", "buy_and_hold", "flat",
    "rule"}`` -> ``EvaluationRun.summary()`` (headline metrics plus
    ``per_regime`` and ``per_episode_mean``); the runs are in ``.runs``."""
    policies = {"team": policy, "buy_and_hold": buy_and_hold_policy, "flat": flat_policy, "rule": RuleTeamPolicy()}
    runs = {name: run_policy(p, **{"progress": name if _PROGRESS["enabled"] else False, **kwargs}) for name, p in policies.items()}
    team = runs["team"]
    for name, run in runs.items():
        if not np.array_equal(run.start_bars, team.start_bars):  # pragma: no cover - the env draws starts from the seed only
            raise RuntimeError(f"baseline {name!r} ran on other episode starts than the team")
    out = Comparison({name: run.summary() for name, run in runs.items()})
    out.runs = runs
    return out


# -- report ------------------------------------------------------------------------
def json_safe(value):
    """``value`` with NaN/inf as ``None`` and numpy scalars/arrays as Python values."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def write_report(results: dict, run: EvaluationRun, out_dir: str | os.PathLike, *, baseline_runs: dict[str, EvaluationRun] | None = None, extra: dict | None = None) -> tuple[Path, Path]:
    """Write ``evaluation.json`` and ``evaluation.png`` into ``out_dir``
    (both atomically: a temporary file, then ``os.replace``).

    ``results`` is the metric dicts by name (normally from
    :func:`evaluate_with_baselines`), ``run`` the team's run. The JSON holds
    ``meta``, ``results`` and the team's ``episodes``, with NaN/inf as null.
    The figure has three stacked panels: equity of the team vs buy-and-hold
    and the rule baseline (the baseline curves come from ``baseline_runs`` or
    ``results.runs``; left out when neither is there), the team's drawdown,
    and its exposure; dotted lines mark episode boundaries when there are
    several. With several episodes the curves chain the episodes' returns.
    ``extra`` adds top-level keys to the JSON (intervals, fresh markets, targets).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "evaluation.json"
    png_path = out / "evaluation.png"
    team = run.to_dict()
    document = json_safe({"meta": team["meta"], "results": dict(results), **(extra or {}), "episodes": team["episodes"]})
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    write_atomically(json_path, lambda fh: fh.write(text.encode()))
    runs = baseline_runs if baseline_runs is not None else getattr(results, "runs", None) or {}
    figure = _figure(run, runs)
    write_atomically(png_path, lambda fh: figure.savefig(fh, format="png", dpi=110))
    return json_path, png_path


def _figure(run: EvaluationRun, baselines: dict[str, EvaluationRun]):
    # A bare Figure on the Agg canvas: no pyplot, no global backend switch.
    import matplotlib.dates  # noqa: F401  (registers the datetime64 axis converter)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    several = run.n_episodes > 1
    n = len(run.step_return)
    if several or n == 0:
        x = np.arange(1, n + 1)
        xlabel = "step (episodes chained)" if several else "step"
    else:
        x = run.timestamp.astype("datetime64[s]")
        xlabel = "time (UTC)"
    initial = run.meta["initial_equity"]
    fig = Figure(figsize=(11, 8.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3, 1.3]})
    ax_eq, ax_dd, ax_pos = axes
    ax_eq.plot(x, run.chained_equity / initial, label="team", color="tab:blue", lw=1.2, zorder=3)
    styles = {"buy_and_hold": ("buy & hold", "tab:gray"), "rule": ("rule baseline", "tab:orange")}
    for name, (label, color) in styles.items():
        other = baselines.get(name)
        if other is not None and len(other.step_return) == n:
            ax_eq.plot(x, other.chained_equity / initial, label=label, color=color, lw=1.0, alpha=0.85)
    ax_eq.axhline(1.0, color="black", lw=0.6, alpha=0.5)
    ax_eq.set_ylabel("equity / initial")
    m = run.metrics
    ax_eq.set_title(
        f"{run.meta['source']} - {run.meta['split']} split, {run.n_episodes} episode(s), {n} steps: "
        f"return {m['total_return']:+.2%}, Sharpe {m['sharpe']:.2f}, max DD {m['max_drawdown']:.2%}",
        fontsize=10,
    )
    ax_eq.legend(loc="best", fontsize=9)
    curve = run.chained_equity
    drawdown = 1.0 - curve / np.maximum.accumulate(np.r_[initial, curve])[1:] if n else np.zeros(0)
    ax_dd.fill_between(x, -drawdown * 100.0, 0.0, color="tab:red", alpha=0.4, lw=0)
    ax_dd.set_ylabel("drawdown %")
    ax_pos.step(x, run.exposure, where="post", color="tab:green", lw=0.9)
    ax_pos.axhline(0.0, color="black", lw=0.6, alpha=0.5)
    ax_pos.set_ylabel("exposure")
    ax_pos.set_xlabel(xlabel)
    if several:
        for b in run.episode_bounds[1:]:
            for ax in axes:
                ax.axvline(x[b] - 0.5, color="black", ls=":", lw=0.7, alpha=0.6)
    for ax in axes:
        ax.grid(alpha=0.25)
    fig.tight_layout()
    return fig


# Metrics that mean something only for a team whose agents decide apart:
# a baseline's fixed calls make them blank (its "consensus" is by construction).
AGENT_METRICS = ("consensus_rate", "regime_accuracy")
FIXED_BASELINES = ("buy_and_hold", "flat")
METRIC_LABELS = {"sharpe": "sharpe (per bar)", "sortino": "sortino (per bar)", "calmar": "calmar (per bar)"}


def format_comparison(results: dict) -> str:
    """A table: one row per metric, one column per policy. Ratios here are
    annualised from per-bar returns (the daily ones follow in
    ``format_intervals``); agent metrics are blank for the fixed baselines."""
    names = list(results)
    width = max(16, *(len(METRIC_LABELS.get(k, k)) + 1 for k in SUMMARY_KEYS))
    lines = [f"{'metric':<{width}}" + "".join(f"{n:>14}" for n in names)]
    percent = {"total_return", "max_drawdown", "win_rate", "exposure", "consensus_rate", "regime_accuracy"}
    for key in SUMMARY_KEYS:
        cells = []
        for n in names:
            value = results[n].get(key, math.nan)
            if key in AGENT_METRICS and n in FIXED_BASELINES:
                cells.append("")
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("n/a")
            elif key in percent:
                cells.append(f"{value:.2%}")
            elif key == "trades":
                cells.append(f"{int(value)}")
            else:
                cells.append(f"{value:.3f}")
        lines.append(f"{METRIC_LABELS.get(key, key):<{width}}" + "".join(f"{c:>14}" for c in cells))
    return "\n".join(lines)
