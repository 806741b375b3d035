"""Tactical features on base bars: fair value gaps, momentum and volume ratio.

One row per base bar ``t``, computed from base bars ``<= t`` only; columns in
``TACTICAL_FEATURES`` order:

==================  ==========================================================
name                definition (details in the function docstrings)
==================  ==========================================================
fvg_bullish_active  1 if any bullish fair value gap is active at t, else 0
fvg_bearish_active  1 if any bearish fair value gap is active at t, else 0
fvg_nearest_level   ``(mid - close[t]) / ATR14[t]`` for the active gap (either
                    kind) whose midpoint is nearest to close; 0 if none
fvg_age             ``age / FVG_MAX_AGE`` of the most recently formed active
                    gap (age 0 on the bar that completes it); 0 if none
fvg_mitigation      filled fraction (0..1) of that most recent active gap;
                    0 if none
momentum_5          ``ln(close[t]/close[t-5]) / (sigma48[t] * sqrt(5))``
volume_ratio        ``ln(volume[t] / mean(volume[t-19..t]))``; 0 when the
                    source has no volume or either is 0
==================  ==========================================================

``sigma48`` is the 48-bar std of 1-bar log returns, ``ATR14`` Wilder's average
true range. Warmup: ``TACTICAL_WARMUP`` = 48 (sigma48 needs 48 returns).
"""
from __future__ import annotations

import numpy as np

from envs.data.bars import Bars
from envs.features.rolling import (
    atr,
    finalize,
    log_returns,
    return_volatility,
    rolling_mean,
    sliding_windows,
)

TACTICAL_FEATURES: tuple[str, ...] = (
    "fvg_bullish_active",
    "fvg_bearish_active",
    "fvg_nearest_level",
    "fvg_age",
    "fvg_mitigation",
    "momentum_5",
    "volume_ratio",
)

FVG_MAX_AGE = 50          # a gap of age >= this many bars is dropped
FVG_ATR_PERIOD = 14
FVG_BLOCK = 4096          # rows per (block x FVG_MAX_AGE) window
MOMENTUM_HORIZON = 5
TACTICAL_VOL_WINDOW = 48
VOLUME_WINDOW = 20

TACTICAL_WARMUP = max(TACTICAL_VOL_WINDOW, VOLUME_WINDOW - 1, FVG_ATR_PERIOD)


def fair_value_gaps(
    high: np.ndarray, low: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Three-bar fair value gaps completed at each bar ``t >= 2``.

    Bullish at ``t`` if ``low[t] > high[t-2]``: zone ``[high[t-2], low[t]]``.
    Bearish at ``t`` if ``high[t] < low[t-2]``: zone ``[high[t], low[t-2]]``.
    (Both cannot happen at one bar.) Returns ``(bullish, bearish, bottom,
    top)``; bottom/top are NaN where there is no gap."""
    n = len(high)
    bull = np.zeros(n, dtype=bool)
    bear = np.zeros(n, dtype=bool)
    bot = np.full(n, np.nan)
    top = np.full(n, np.nan)
    if n >= 3:
        bull[2:] = low[2:] > high[:-2]
        bear[2:] = high[2:] < low[:-2]
        bot[2:] = np.where(bull[2:], high[:-2], np.where(bear[2:], high[2:], np.nan))
        top[2:] = np.where(bull[2:], low[2:], np.where(bear[2:], low[:-2], np.nan))
    return bull, bear, bot, top


def fvg_features(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    atr_values: np.ndarray,
    max_age: int = FVG_MAX_AGE,
    block: int = FVG_BLOCK,
) -> np.ndarray:
    """The five FVG columns, ``(n, 5)`` float64.

    Gap ``g`` completed at bar ``t_g`` with zone ``[bot, top]`` has age
    ``a = t - t_g`` at bar ``t``. It is *mitigated* at the first later bar that
    trades through its far edge: bullish when ``low <= bot``, bearish when
    ``high >= top``. It is *active* at ``t`` iff ``0 <= a < max_age`` and no bar
    in ``t_g+1 .. t`` mitigated it, i.e. ``min(low[t_g+1..t]) > bot``
    (bullish) / ``max(high[t_g+1..t]) < top`` (bearish); age 0 is always
    active. This uses bars ``<= t`` only.

    Filled fraction at ``t``: bullish ``(top - min(low[t_g+1..t])) / (top - bot)``,
    bearish ``(max(high[t_g+1..t]) - bot) / (top - bot)``, clipped to [0, 1]
    (0 at age 0).

    Columns: any active bullish (0/1); any active bearish (0/1);
    ``(mid - close[t]) / ATR[t]`` for the active gap whose midpoint
    ``(bot+top)/2`` is nearest to close (0 if none, or ATR is 0);
    ``a / max_age`` and filled fraction of the most recently completed active
    gap (0 if none).

    Vectorised over ``(block x max_age)`` windows: column ``a`` of row ``t``
    looks at the gap completed at ``t - a``; running minima of lows / maxima
    of highs along ``a`` give ``min(low[t-a+1..t])`` for every age at once.
    """
    n = len(high)
    out = np.zeros((n, 5))
    if n == 0:
        return out
    bull, bear, bot, top = fair_value_gaps(high, low)
    A = int(max_age)
    # Row t of a reversed window holds x[t], x[t-1], ..., x[t-A+1].
    w_bull = sliding_windows(bull, A, fill=False)[:, ::-1]
    w_bear = sliding_windows(bear, A, fill=False)[:, ::-1]
    w_bot = sliding_windows(bot, A)[:, ::-1]
    w_top = sliding_windows(top, A)[:, ::-1]
    w_low = sliding_windows(low, A, fill=np.inf)[:, ::-1]
    w_high = sliding_windows(high, A, fill=-np.inf)[:, ::-1]
    for b0 in range(0, n, block):
        b1 = min(b0 + block, n)
        m = b1 - b0
        # run_min[:, a] = min(low[t-a+1 .. t]) for a >= 1 (+inf at a = 0)
        run_min = np.empty((m, A))
        run_max = np.empty((m, A))
        run_min[:, 0] = np.inf
        run_max[:, 0] = -np.inf
        if A > 1:
            run_min[:, 1:] = np.minimum.accumulate(w_low[b0:b1, : A - 1], axis=1)
            run_max[:, 1:] = np.maximum.accumulate(w_high[b0:b1, : A - 1], axis=1)
        gb = w_bot[b0:b1]
        gt = w_top[b0:b1]
        with np.errstate(invalid="ignore"):
            act_bull = w_bull[b0:b1] & (run_min > gb)
            act_bear = w_bear[b0:b1] & (run_max < gt)
        act = act_bull | act_bear
        any_act = act.any(axis=1)
        span = np.where(act, gt - gb, 1.0)
        span = np.where(span > 0, span, 1.0)
        with np.errstate(invalid="ignore"):
            fill_bull = (gt - run_min) / span
            fill_bear = (run_max - gb) / span
        fill = np.where(act_bull, fill_bull, np.where(act_bear, fill_bear, 0.0))
        fill[:, 0] = 0.0
        np.clip(fill, 0.0, 1.0, out=fill)
        rows = np.arange(m)
        recent = np.argmax(act, axis=1)  # smallest age that is active
        c = close[b0:b1]
        mid = np.where(act, (gb + gt) * 0.5, np.nan)
        dist = np.where(act, np.abs(mid - c[:, None]), np.inf)
        near = np.argmin(dist, axis=1)
        a_atr = atr_values[b0:b1]
        with np.errstate(invalid="ignore", divide="ignore"):
            level = (mid[rows, near] - c) / np.where(a_atr > 0, a_atr, np.nan)
        out[b0:b1, 0] = act_bull.any(axis=1)
        out[b0:b1, 1] = act_bear.any(axis=1)
        out[b0:b1, 2] = np.where(any_act & (a_atr > 0), level, 0.0)
        out[b0:b1, 3] = np.where(any_act, recent / A, 0.0)
        out[b0:b1, 4] = np.where(any_act, fill[rows, recent], 0.0)
    return out


def tactical_features(base: Bars) -> tuple[np.ndarray, int]:
    """The ``(len(base), 7)`` float32 tactical matrix (columns in
    ``TACTICAL_FEATURES`` order) and its warmup row; rows before it are 0.

    ``momentum_5 = ln(close[t]/close[t-5]) / (sigma48[t] * sqrt(5))``;
    ``volume_ratio = ln(volume[t] / mean(volume[t-19..t]))`` (0 when the
    source has no volume, or the volume or the mean is 0)."""
    n = len(base)
    out = np.zeros((n, len(TACTICAL_FEATURES)))
    if n <= TACTICAL_WARMUP:
        return finalize(out, TACTICAL_WARMUP), TACTICAL_WARMUP
    a = atr(base.high, base.low, base.close, FVG_ATR_PERIOD)
    out[:, 0:5] = fvg_features(base.high, base.low, base.close, a)
    sigma = return_volatility(base.close, TACTICAL_VOL_WINDOW)
    out[:, 5] = log_returns(base.close, MOMENTUM_HORIZON) / (sigma * np.sqrt(MOMENTUM_HORIZON))
    if base.has_volume:
        v = base.volume
        mv = rolling_mean(v, VOLUME_WINDOW)
        ok = (v > 0) & (mv > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, 6] = np.where(ok, np.log(np.where(ok, v, 1.0) / np.where(ok, mv, 1.0)), 0.0)
    return finalize(out, TACTICAL_WARMUP), TACTICAL_WARMUP
