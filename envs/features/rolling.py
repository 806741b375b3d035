"""Shared vectorised, causal helpers for the feature pipeline.

Every helper is *causal*: element ``i`` of an output depends on input elements
``<= i`` only, and it is computed by the same arithmetic whatever follows ``i``
(prefix sums, left-to-right recursions, fixed-order loops over lags; no centred
windows, no statistics over the whole series, no BLAS reductions whose order
could depend on the array length). So appending or changing later bars never
changes an earlier output, bit for bit.

Windowed helpers return NaN (or garbage that callers discard) for rows whose
window is not yet full; :func:`finalize` zeroes every row before a feature
block's warmup, replaces anything non-finite by 0, clips to ``FEATURE_CLIP``
and casts to float32.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

FEATURE_CLIP = 5.0
"""Every stored feature value lies in ``[-FEATURE_CLIP, FEATURE_CLIP]``."""

TINY = 1e-12
"""Floor for volatilities and ranges measured in log-price units (scale-free:
log returns do not depend on the price level; 1e-12 is far below any real
1-bar volatility at any bar frequency)."""


def lag(x: np.ndarray, k: int, fill: float = np.nan) -> np.ndarray:
    """``out[i] = x[i-k]`` (``fill`` for ``i < k``)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    k = min(int(k), len(x))
    out[:k] = fill
    if k < len(x):
        out[k:] = x[: len(x) - k] if k > 0 else x
    return out


def log_returns(close: np.ndarray, horizon: int = 1) -> np.ndarray:
    """``r[i] = ln(close[i] / close[i-horizon])``; 0.0 for ``i < horizon`` (so
    prefix sums stay finite; callers' warmups exclude those rows)."""
    lc = np.log(np.asarray(close, dtype=np.float64))
    out = np.zeros_like(lc)
    if horizon < len(lc):
        out[horizon:] = lc[horizon:] - lc[:-horizon]
    return out


def rolling_sum(x: np.ndarray, window: int) -> np.ndarray:
    """Sum of ``x[i-window+1 .. i]`` by a prefix sum: ``c[i] - c[i-window]``.

    ``x`` must be finite. Rows ``i < window-1`` are NaN."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    out = np.full(n, np.nan)
    if n >= window:
        c = np.cumsum(x)
        out[window - 1] = c[window - 1]
        out[window:] = c[window:] - c[:-window]
    return out


def rolling_mean_std(x: np.ndarray, window: int, ddof: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and standard deviation over ``x[i-window+1 .. i]``.

    Prefix sums of ``y = x - x[0]`` and ``y**2`` (the shift by the first
    element, which every prefix contains, keeps the sums small without
    looking ahead): ``mean = S1/w + x[0]``,
    ``var = (S2/w - (S1/w)**2) * w/(w-ddof)`` floored at 0. NaN before the
    window is full."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return x.copy(), x.copy()
    y = x - x[0]
    s1 = rolling_sum(y, window) / window
    s2 = rolling_sum(y * y, window) / window
    var = np.maximum(s2 - s1 * s1, 0.0) * (window / max(window - ddof, 1))
    return s1 + x[0], np.sqrt(var)


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Rolling mean over ``x[i-window+1 .. i]`` (prefix sums); NaN before full."""
    return rolling_sum(x, window) / window


def rolling_rms(x: np.ndarray, window: int) -> np.ndarray:
    """Root mean square ``sqrt(mean(x[i-window+1..i]**2))`` (realised volatility
    when ``x`` holds log returns); NaN before full."""
    x = np.asarray(x, dtype=np.float64)
    return np.sqrt(np.maximum(rolling_sum(x * x, window) / window, 0.0))


def return_volatility(close: np.ndarray, window: int) -> np.ndarray:
    """Causal volatility ``sigma[i]`` = population standard deviation of the
    1-bar log returns ``r[i-window+1 .. i]``, floored at ``TINY``.

    Needs ``window`` returns, so it is defined for ``i >= window`` (earlier rows
    hold values computed with the placeholder ``r[0] = 0``; callers' warmups
    discard them)."""
    _, std = rolling_mean_std(log_returns(close), window)
    return np.maximum(np.nan_to_num(std, nan=0.0), TINY)


def ewm_mean(x: np.ndarray, alpha: float) -> np.ndarray:
    """Exponentially weighted mean, ``m[i] = alpha*x[i] + (1-alpha)*m[i-1]``,
    ``m[0] = x[0]`` (pandas ``ewm(alpha=..., adjust=False)``, a left-to-right
    recursion)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return x.copy()
    return pd.Series(x).ewm(alpha=alpha, adjust=False).mean().to_numpy(dtype=np.float64)


def wilder_rsi(x: np.ndarray, period: int) -> np.ndarray:
    """Wilder's RSI of a series, scaled to ``[0, 1]``.

    ``d[i] = x[i] - x[i-1]`` (``d[0] = 0``); ``G = EWM(max(d,0))``,
    ``L = EWM(max(-d,0))`` with Wilder's ``alpha = 1/period``;
    ``RSI = G / (G + L)``, 0.5 where ``G + L == 0``. Scale-free (ratio of
    price moves). Settled after about ``period`` bars."""
    x = np.asarray(x, dtype=np.float64)
    d = np.zeros_like(x)
    if len(x) > 1:
        d[1:] = np.diff(x)
    g = ewm_mean(np.maximum(d, 0.0), 1.0 / period)
    loss = ewm_mean(np.maximum(-d, 0.0), 1.0 / period)
    tot = g + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(tot > 0, g / np.where(tot > 0, tot, 1.0), 0.5)
    return rsi


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """``TR[i] = max(high[i], close[i-1]) - min(low[i], close[i-1])``;
    ``TR[0] = high[0] - low[0]``."""
    prev = lag(close, 1)
    prev[:1] = close[:1]
    return np.maximum(high, prev) - np.minimum(low, prev)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Wilder's average true range: ``EWM(TR, alpha=1/period)`` (price units)."""
    return ewm_mean(true_range(high, low, close), 1.0 / period)


def sliding_windows(x: np.ndarray, window: int, fill=np.nan) -> np.ndarray:
    """Read-only ``(n, window)`` view whose row ``i`` is ``x[i-window+1 .. i]``
    (oldest first, current last); positions before the series start hold
    ``fill``. Slice rows of it to work in blocks."""
    x = np.asarray(x)
    pad = np.full(window - 1, fill, dtype=x.dtype)
    return sliding_window_view(np.concatenate([pad, x]), window)


def rolling_max(x: np.ndarray, window: int) -> np.ndarray:
    """Max of ``x[i-window+1 .. i]`` (NaN before the window is full)."""
    return np.max(sliding_windows(np.asarray(x, dtype=np.float64), window), axis=1)


def rolling_min(x: np.ndarray, window: int) -> np.ndarray:
    """Min of ``x[i-window+1 .. i]`` (NaN before the window is full)."""
    return np.min(sliding_windows(np.asarray(x, dtype=np.float64), window), axis=1)


def lag_weighted_sum(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Causal convolution ``out[i] = sum_j weights[j] * x[i-j]``, ``j = 0..L-1``
    (``weights[0]`` applies to the current bar). A fixed-order loop over lags,
    so each output is computed identically whatever the series length. NaN for
    ``i < L-1``."""
    x = np.asarray(x, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    n, L = len(x), len(weights)
    out = np.full(n, np.nan)
    if n >= L:
        acc = np.zeros(n - L + 1)
        for j, w in enumerate(weights):
            acc += w * x[L - 1 - j : n - j]
        out[L - 1 :] = acc
    return out


def rolling_ols(y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling least-squares line of ``y`` against bar index over
    ``y[i-window+1 .. i]``: returns ``(slope per bar, R^2)``.

    With positions ``k`` centred on the window (``sum k = 0``) and
    ``d = y[i-window+1+k] - y[i]`` (shifted for precision; slope and R^2 do not
    change): ``slope = sum(k d) / sum(k^2)``,
    ``R^2 = (sum k d)^2 / (sum(k^2) * (sum d^2 - (sum d)^2 / window))``
    (0 where the window is flat). NaN before the window is full."""
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    slope = np.full(n, np.nan)
    r2 = np.full(n, np.nan)
    if n < window:
        return slope, r2
    m = n - window + 1
    cur = y[window - 1 :]
    s_kd = np.zeros(m)
    s_d = np.zeros(m)
    s_dd = np.zeros(m)
    ks = np.arange(window, dtype=np.float64) - (window - 1) / 2.0
    for k in range(window):  # position k in the window, oldest first
        d = y[k : k + m] - cur
        s_kd += ks[k] * d
        s_d += d
        s_dd += d * d
    s_kk = float(np.sum(ks * ks))
    syy = s_dd - s_d * s_d / window
    slope[window - 1 :] = s_kd / s_kk
    with np.errstate(invalid="ignore", divide="ignore"):
        r2v = np.where(syy > 0, s_kd * s_kd / (s_kk * np.where(syy > 0, syy, 1.0)), 0.0)
    r2[window - 1 :] = np.clip(r2v, 0.0, 1.0)
    return slope, r2


def safe_log_ratio(num: np.ndarray, den: np.ndarray, floor: float = TINY) -> np.ndarray:
    """``ln((num + floor) / (den + floor))`` for non-negative inputs: finite
    when either is 0, and 0 when both are."""
    return np.log((np.asarray(num) + floor) / (np.asarray(den) + floor))


def finalize(matrix: np.ndarray, warmup: int) -> np.ndarray:
    """Zero rows before ``warmup``, replace non-finite values by 0, clip to
    ``[-FEATURE_CLIP, FEATURE_CLIP]`` and cast to contiguous float32."""
    m = np.asarray(matrix, dtype=np.float64)
    out = np.where(np.isfinite(m), m, 0.0)
    out[: max(int(warmup), 0)] = 0.0
    np.clip(out, -FEATURE_CLIP, FEATURE_CLIP, out=out)
    return np.ascontiguousarray(out, dtype=np.float32)
