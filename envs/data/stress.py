"""Stressed copies of a market file (no policy, no Ray): one split's bars
changed by a scenario, every feature recomputed.

The bars of the whole file are read (so the features of the stressed bars
have their full history), only bars inside the split are changed, and a new
market file is built with ``envs.data.dataset.build_market_file`` (same
higher-timeframe multiple). Its split boundaries and ``first_valid`` are
checked against the original; if ``plan_layout`` would move them the file is
written again with the original layout, so the bounds are always identical.
Since the features are causal, every bar, higher-timeframe bar and feature
row before the split is bit-for-bit the original.

Price changes work on log prices relative to the previous close: for bar ``t``
of the split with ``x_f = log(f_t) - log(close_{t-1})`` (``f`` = open, high,
low, close) a scenario maps ``x_f -> x'_f``, and the new prices are chained
from the new previous close, ``f'_t = close'_{t-1} * exp(x'_f)``. High and low
are then the max and min of the four new prices, so every bar stays
consistent (``low <= open, close <= high``) and positive. Timestamps, volume
and regime labels are kept. Bars before the first changed one are copied
unchanged; a level shift (crash, gap) carries on to the end of the split.

``flash_crash``      at ``at`` (share of the split, default 0.5) the close falls
                     by ``drop`` (8%) spread over ``bars`` (3) bars (the lows
                     follow), then recovers ``rebound`` (100%) of the fall over
                     ``rebound_bars`` (6) bars.
``volatility_x3``    from ``at`` (0.25) to the end of the split every relative
                     log price is scaled by ``factor`` (3) around the trend
                     ``mu`` (the mean close-to-close log return of those bars):
                     ``x' = mu + 3 (x - mu)``; the drift stays, the
                     volatility triples.
``trend_reversal``   from ``at`` (0.5, the midpoint) on ``x' = -x``: every
                     close-to-close return flips its sign (the path is
                     mirrored; highs and lows swap roles).
``overnight_gap``    bar ``at`` (0.5) opens ``gap`` (-5%) away from the
                     previous close (the whole bar moves with it); the level
                     stays shifted afterwards.

``rllib_algospace.evaluation.stress`` runs a team through them (and adds a
cost scenario, ``double_costs``).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np

from envs.data.bars import PRICE_FIELDS, Bars, aggregate_bars
from envs.data.store import read_attrs

BAR_SCENARIOS = ("flash_crash", "volatility_x3", "trend_reversal", "overnight_gap")
BAR_PARAMS: dict[str, dict] = {
    "flash_crash": {"at": 0.5, "drop": 0.08, "bars": 3, "rebound": 1.0, "rebound_bars": 6},
    "volatility_x3": {"at": 0.25, "factor": 3.0},
    "trend_reversal": {"at": 0.5},
    "overnight_gap": {"at": 0.5, "gap": -0.05},
}

__all__ = ["BAR_PARAMS", "BAR_SCENARIOS", "bar_scenario_params", "read_bars", "scenario_params_in", "stress_bars", "stressed_market_file"]


def scenario_params_in(table: dict[str, dict], scenario: str, overrides: dict, kind: str = "scenarios") -> dict:
    """``table[scenario]`` (its default parameters) with ``overrides``;
    an unknown scenario or parameter name refused."""
    if scenario not in table:
        raise ValueError(f"unknown stress scenario {scenario!r}; {kind} are {', '.join(table)}")
    unknown = sorted(set(overrides) - set(table[scenario]))
    if unknown:
        raise ValueError(f"stress scenario {scenario!r} has no parameter {unknown[0]!r}; parameters: {', '.join(table[scenario])}")
    return {**table[scenario], **overrides}


def bar_scenario_params(scenario: str, **overrides) -> dict:
    """A price scenario's default parameters with ``overrides``."""
    return scenario_params_in(BAR_PARAMS, scenario, overrides, "price scenarios")


def read_bars(path: str | os.PathLike) -> tuple[Bars, Bars, dict]:
    """The base bars, higher-timeframe bars and root attributes of a market file."""
    attrs = read_attrs(path)
    with h5py.File(str(path), "r") as f:
        def bars(group: str, freq: int, labels) -> Bars:
            return Bars(
                timestamp=f[f"{group}/timestamp"][:],
                open=f[f"{group}/open"][:],
                high=f[f"{group}/high"][:],
                low=f[f"{group}/low"][:],
                close=f[f"{group}/close"][:],
                volume=f[f"{group}/volume"][:],
                freq_seconds=freq,
                regime_label=labels,
                has_volume=bool(attrs["has_volume"]),
                source=str(attrs["source"]),
            )

        base = bars("base", int(attrs["freq_seconds"]), f["base/regime_label"][:])
        htf = bars("htf", int(attrs["htf_freq_seconds"]), None)
    return base, htf, attrs


def _position(at: float, n: int, room: int = 1) -> int:
    """Bar offset ``at`` (a share of ``n``) inside the split, leaving ``room`` bars."""
    return int(min(max(0, math.floor(at * n)), max(0, n - room)))


def _transform(scenario: str, rel: dict[str, np.ndarray], p: dict) -> dict[str, np.ndarray]:
    """New relative log prices (see the module docstring) of a split's bars."""
    n = len(rel["close"])
    new = {f: rel[f].copy() for f in PRICE_FIELDS}
    if scenario == "flash_crash":
        crash, up = int(p["bars"]), int(p["rebound_bars"])
        if crash < 1 or up < 0 or not 0 < p["drop"] < 1 or p["rebound"] < 0:
            raise ValueError(f"flash_crash needs 0 < drop < 1, bars >= 1, rebound >= 0, rebound_bars >= 0; got {p}")
        i0 = _position(p["at"], n, crash + up)
        fall = math.log1p(-p["drop"])
        d = np.zeros(n)
        d[i0 : i0 + crash] = fall / crash
        if up:
            d[i0 + crash : i0 + crash + up] = -fall * p["rebound"] / up
        new["close"] += d
        new["high"] += np.maximum(d, 0.0)
        new["low"] += np.minimum(d, 0.0)
    elif scenario == "volatility_x3":
        if p["factor"] <= 0:
            raise ValueError(f"volatility_x3 needs factor > 0, got {p['factor']}")
        i0 = _position(p["at"], n)
        mu = float(np.mean(rel["close"][i0:]))
        for f in PRICE_FIELDS:
            new[f][i0:] = mu + p["factor"] * (rel[f][i0:] - mu)
    elif scenario == "trend_reversal":
        i0 = _position(p["at"], n)
        for f in PRICE_FIELDS:
            new[f][i0:] = -rel[f][i0:]
    elif scenario == "overnight_gap":
        if not -1 < p["gap"]:
            raise ValueError(f"overnight_gap needs gap > -1, got {p['gap']}")
        i0 = _position(p["at"], n)
        for f in PRICE_FIELDS:
            new[f][i0] += math.log1p(p["gap"])
    else:
        raise ValueError(f"{scenario!r} is not a price scenario; price scenarios are {', '.join(BAR_SCENARIOS)}")
    return new


def stress_bars(base: Bars, scenario: str, start: int, stop: int, **params) -> Bars:
    """``base`` with ``scenario`` applied to the bars ``[start, stop)`` (the
    bars outside are the same arrays' values, untouched)."""
    p = bar_scenario_params(scenario, **params)
    if not 1 <= start < stop <= len(base):
        raise ValueError(f"stress range [{start}, {stop}) must lie inside [1, {len(base)}]")
    logs = {f: np.log(getattr(base, f)) for f in PRICE_FIELDS}
    prev_close = logs["close"][start - 1 : stop - 1]
    rel = {f: logs[f][start:stop] - prev_close for f in PRICE_FIELDS}
    new = _transform(scenario, rel, p)
    changed = np.zeros(stop - start, dtype=bool)
    for f in PRICE_FIELDS:
        changed |= new[f] != rel[f]
    prices = {f: getattr(base, f).copy() for f in PRICE_FIELDS}
    if changed.any():
        first = int(np.argmax(changed))
        a = start + first
        new_close = logs["close"][a - 1] + np.cumsum(new["close"][first:])
        new_prev = np.r_[logs["close"][a - 1], new_close[:-1]]
        values = {f: np.exp(new_prev + new[f][first:]) for f in PRICE_FIELDS}
        values["close"] = np.exp(new_close)
        stacked = np.vstack([values[f] for f in PRICE_FIELDS])
        prices["open"][a:stop] = values["open"]
        prices["close"][a:stop] = values["close"]
        prices["high"][a:stop] = stacked.max(axis=0)
        prices["low"][a:stop] = stacked.min(axis=0)
    return Bars(
        timestamp=base.timestamp,
        volume=base.volume,
        freq_seconds=base.freq_seconds,
        regime_label=base.regime_label,
        has_volume=base.has_volume,
        source=f"{base.source} [stress: {scenario}]",
        **prices,
    )


def _adjust_htf(htf: Bars, base: Bars, stressed: Bars) -> Bars:
    """Imported higher-timeframe bars moved with the stressed base bars they
    contain (only the HTF bars holding a changed base bar change)."""
    member = np.searchsorted(htf.timestamp, base.timestamp, side="right") - 1
    ratio = {f: getattr(stressed, f) / getattr(base, f) for f in PRICE_FIELDS}
    changed = np.zeros(len(base), dtype=bool)
    for f in PRICE_FIELDS:
        changed |= ratio[f] != 1.0
    prices = {f: getattr(htf, f).copy() for f in PRICE_FIELDS}
    for j in np.unique(member[changed & (member >= 0)]):
        rows = np.flatnonzero(member == j)
        o = htf.open[j] * ratio["open"][rows[0]]
        c = htf.close[j] * ratio["close"][rows[-1]]
        prices["open"][j] = o
        prices["close"][j] = c
        prices["high"][j] = max(htf.high[j] * float(ratio["high"][rows].max()), o, c)
        prices["low"][j] = min(htf.low[j] * float(ratio["low"][rows].min()), o, c)
    return Bars(timestamp=htf.timestamp, volume=htf.volume, freq_seconds=htf.freq_seconds, has_volume=htf.has_volume, source=stressed.source, **prices)


def _is_aggregate(htf: Bars, base: Bars, multiple: int) -> bool:
    agg = aggregate_bars(base, multiple)
    if len(agg) != len(htf) or not np.array_equal(agg.timestamp, htf.timestamp):
        return False
    return all(np.array_equal(getattr(agg, f), getattr(htf, f)) for f in PRICE_FIELDS + ("volume",))


def stressed_market_file(data: str | os.PathLike, scenario: str, out: str | os.PathLike, *, split: str = "test", **params) -> Path:
    """Write a copy of market file ``data`` with ``scenario`` applied to the
    bars of ``split`` to ``out`` (``data`` is only read); the split bounds and
    ``first_valid`` of ``out`` are those of ``data``."""
    from envs.data.dataset import build_market_file

    base, htf, attrs = read_bars(data)
    if split not in attrs["splits"]:
        raise ValueError(f"{data}: no split {split!r}; splits are {', '.join(attrs['splits'])}")
    start, stop = attrs["splits"][split]
    stressed = stress_bars(base, scenario, start, stop, **params)
    multiple = int(attrs["htf_multiple"])
    if _is_aggregate(htf, base, multiple):
        out = build_market_file(stressed, out, htf_multiple=multiple)
        new_htf = None
    else:
        new_htf = _adjust_htf(htf, base, stressed)
        out = build_market_file(stressed, out, htf_multiple=multiple, htf=new_htf)
    new_attrs = read_attrs(out)
    if new_attrs["splits"] != attrs["splits"] or int(new_attrs["first_valid"]) != int(attrs["first_valid"]):
        _rewrite_with_layout(stressed, new_htf, multiple, attrs, out)
        new_attrs = read_attrs(out)
        if new_attrs["splits"] != attrs["splits"]:  # pragma: no cover - the layout is written as given
            raise RuntimeError(f"{out}: split bounds {new_attrs['splits']} differ from {attrs['splits']}")
    return Path(out)


def _rewrite_with_layout(base: Bars, htf: Bars | None, multiple: int, attrs: dict, out) -> None:
    """The file again with the original layout (when the recomputed features'
    warmups would move ``first_valid`` or the split bounds)."""
    from envs.data.bars import htf_visible_count
    from envs.data.store import Layout, write_market_file
    from envs.features import compute_features

    htf = aggregate_bars(base, multiple) if htf is None else htf
    visible = htf_visible_count(base, htf)
    layout = Layout(first_valid=int(attrs["first_valid"]), splits={k: tuple(v) for k, v in attrs["splits"].items()})
    write_market_file(out, base, htf, visible, compute_features(base, htf), layout, multiple)
