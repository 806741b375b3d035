"""Structure features on higher-timeframe bars: MLMI, NW-RQK, LVN and hour.

One row per HTF bar ``i``, computed from HTF bars ``<= i`` only; columns in
``STRUCTURE_FEATURES`` order:

=============  ===============================================================
name           definition (details in each function's docstring)
=============  ===============================================================
mlmi_value     k-NN vote in (fast RSI, slow RSI) space of Heiken-Ashi closes:
               mean sign of the next-``MLMI_HORIZON``-bar move of the
               ``MLMI_K`` most similar past bars, in [-1, 1]
mlmi_signal    EMA (span ``MLMI_SIGNAL_SPAN``) of mlmi_value, in [-1, 1]
nwrqk_value    ``ln(close / yhat) / (sigma * kappa_v)``, yhat the causal
               Nadaraya-Watson estimate with a rational-quadratic kernel
nwrqk_slope    ``ln(yhat[i] / yhat[i-1]) / (sigma * kappa_s)``
lvn_distance   ``(price of nearest low-volume node - close) / window range``
               of the rolling volume profile, in [-1, 1] (0 if none)
lvn_strength   ``1 - volume(LVN bin) / mean bin volume``, in (0, 1] (0 if none)
hour_sin       ``sin(2 pi h / 24)``, h = UTC hour of the bar's close time
hour_cos       ``cos(2 pi h / 24)``
=============  ===============================================================

``sigma`` is the 48-bar std of 1-bar log returns (as in the regime features);
``kappa_v`` and ``kappa_s`` are constants of the kernel (see
:func:`nwrqk_scales`) that give both NW-RQK columns unit variance on a
driftless random walk.
Warmup (``STRUCTURE_WARMUP`` = 87): MLMI needs the slow RSI settled (20
bars), a label horizon of 4 bars and ``MLMI_MIN_POINTS`` = 64 labelled points;
the others need at most 48 bars.
"""
from __future__ import annotations

import numpy as np

from envs.data.bars import Bars
from envs.features.rolling import (
    finalize,
    ewm_mean,
    lag_weighted_sum,
    return_volatility,
    sliding_windows,
    wilder_rsi,
)

STRUCTURE_FEATURES: tuple[str, ...] = (
    "mlmi_value",
    "mlmi_signal",
    "nwrqk_value",
    "nwrqk_slope",
    "lvn_distance",
    "lvn_strength",
    "hour_sin",
    "hour_cos",
)

MLMI_RSI_FAST = 5
MLMI_RSI_SLOW = 20
MLMI_HORIZON = 4          # label of point s: sign(close[s+H] - close[s])
MLMI_K = 16               # neighbours in the vote
MLMI_MEMORY = 256         # the last M labelled points are searched
MLMI_MIN_POINTS = 64      # labelled points needed before the feature is defined
MLMI_SIGNAL_SPAN = 5
MLMI_BLOCK = 2048         # rows per (block x MLMI_MEMORY) distance matrix

NWRQK_BANDWIDTH = 8.0     # h
NWRQK_ALPHA = 8.0         # alpha (relative weighting of short vs long scales)
NWRQK_LOOKBACK = 48       # L bars in the kernel window

LVN_WINDOW = 48           # W HTF bars in the volume profile
LVN_BINS = 24             # B price bins between the window's low and high
LVN_BLOCK = 512

STRUCTURE_VOL_WINDOW = 48

MLMI_WARMUP = MLMI_RSI_SLOW + MLMI_HORIZON + MLMI_MIN_POINTS - 1
STRUCTURE_WARMUP = max(MLMI_WARMUP, STRUCTURE_VOL_WINDOW, NWRQK_LOOKBACK - 1, LVN_WINDOW - 1)


# --------------------------------------------------------------------- MLMI
def heiken_ashi_close(bars: Bars) -> np.ndarray:
    """Heiken-Ashi close ``(open + high + low + close) / 4``."""
    return (bars.open + bars.high + bars.low + bars.close) / 4.0


def mlmi(
    close: np.ndarray,
    ha_close: np.ndarray,
    *,
    fast: int = MLMI_RSI_FAST,
    slow: int = MLMI_RSI_SLOW,
    horizon: int = MLMI_HORIZON,
    k: int = MLMI_K,
    memory: int = MLMI_MEMORY,
    min_points: int = MLMI_MIN_POINTS,
    block: int = MLMI_BLOCK,
) -> tuple[np.ndarray, int]:
    """Machine-learning momentum index: a causal k-nearest-neighbour vote.

    Features of bar ``s``: ``f[s] = RSI_fast(ha_close)[s]``,
    ``g[s] = RSI_slow(ha_close)[s]`` (Wilder RSI scaled to [0, 1]), usable from
    ``s0 = slow``. Label ``y[s] = sign(close[s+H] - close[s])`` becomes known at
    bar ``s + H``. At bar ``i`` the candidates are the labelled points
    ``s`` in ``[max(s0, i-H-M+1), i-H]``; distance
    ``D(i, s) = (f[i]-f[s])^2 + (g[i]-g[s])^2``; the value is the mean label
    of the ``k`` nearest candidates (``k`` smallest D, chosen by
    ``argpartition`` on ``(block x M)`` distance matrices), so it lies in
    [-1, 1]. Defined from ``i = s0 + H + min_points - 1`` (returned as the
    warmup); earlier rows are NaN.
    """
    close = np.asarray(close, dtype=np.float64)
    n = len(close)
    out = np.full(n, np.nan)
    warmup = slow + horizon + min_points - 1
    if n <= warmup:
        return out, warmup
    f = wilder_rsi(ha_close, fast)
    g = wilder_rsi(ha_close, slow)
    y = np.zeros(n)
    y[: n - horizon] = np.sign(close[horizon:] - close[: n - horizon])
    valid = np.zeros(n, dtype=bool)
    valid[slow:] = True
    # Row j of these views is the M points ending at j (oldest first).
    wf = sliding_windows(f, memory, fill=0.0)
    wg = sliding_windows(g, memory, fill=0.0)
    wy = sliding_windows(y, memory, fill=0.0)
    wv = sliding_windows(valid, memory, fill=False)
    kk = min(k, memory)
    for b0 in range(warmup, n, block):
        b1 = min(b0 + block, n)
        rows = np.arange(b0, b1)
        last = rows - horizon  # newest labelled point for each row
        d = (f[rows, None] - wf[last]) ** 2 + (g[rows, None] - wg[last]) ** 2
        ok = wv[last]
        d[~ok] = np.inf
        nn = np.argpartition(d, kk - 1, axis=1)[:, :kk]
        lab = np.take_along_axis(wy[last], nn, axis=1)
        use = np.take_along_axis(ok, nn, axis=1)
        cnt = use.sum(axis=1)
        out[b0:b1] = np.where(cnt > 0, (lab * use).sum(axis=1) / np.maximum(cnt, 1), 0.0)
    return out, warmup


# ------------------------------------------------------------------- NW-RQK
def rqk_weights(
    bandwidth: float = NWRQK_BANDWIDTH, alpha: float = NWRQK_ALPHA, lookback: int = NWRQK_LOOKBACK
) -> np.ndarray:
    """Rational-quadratic kernel weights ``w_j = (1 + j^2 / (2 alpha h^2))^(-alpha)``
    for lags ``j = 0 .. lookback-1`` (unnormalised; ``w_0 = 1``)."""
    j = np.arange(lookback, dtype=np.float64)
    return (1.0 + j * j / (2.0 * alpha * bandwidth * bandwidth)) ** (-alpha)


def nwrqk_scales(
    bandwidth: float = NWRQK_BANDWIDTH, alpha: float = NWRQK_ALPHA, lookback: int = NWRQK_LOOKBACK
) -> tuple[float, float]:
    """Random-walk scales ``(kappa_v, kappa_s)`` of the NW-RQK columns.

    With normalised weights ``u_j = w_j / sum w`` and 1-bar log returns ``r``
    (i.i.d., std sigma): ``ln(close/yhat) ~ sum_m r[i-m] * U_m`` with the tail
    sums ``U_m = sum_{j>m} u_j``, so its std is ``sigma * kappa_v``,
    ``kappa_v = sqrt(sum_m U_m^2)``; ``ln(yhat[i]/yhat[i-1]) ~ sum_j u_j r[i-j]``
    has std ``sigma * kappa_s``, ``kappa_s = sqrt(sum_j u_j^2)``."""
    w = rqk_weights(bandwidth, alpha, lookback)
    u = w / w.sum()
    tails = np.cumsum(u[::-1])[::-1][1:]  # U_m = sum_{j>m} u_j, m = 0..L-2
    return float(np.sqrt(np.sum(tails * tails))), float(np.sqrt(np.sum(u * u)))


def nwrqk_estimate(
    close: np.ndarray,
    bandwidth: float = NWRQK_BANDWIDTH,
    alpha: float = NWRQK_ALPHA,
    lookback: int = NWRQK_LOOKBACK,
) -> np.ndarray:
    """Causal Nadaraya-Watson endpoint estimate with a rational-quadratic kernel:
    ``yhat[i] = sum_j w_j close[i-j] / sum_j w_j`` over lags ``j = 0..L-1``
    (a one-sided convolution; see :func:`rqk_weights`). NaN for ``i < L-1``."""
    w = rqk_weights(bandwidth, alpha, lookback)
    return lag_weighted_sum(close, w / w.sum())


# ---------------------------------------------------------------------- LVN
def lvn_features(
    bars: Bars, window: int = LVN_WINDOW, bins: int = LVN_BINS, block: int = LVN_BLOCK
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest low-volume node of a rolling volume profile.

    At bar ``i`` the profile covers bars ``i-W+1 .. i``; ``B`` equal bins span
    ``[lo, hi]`` = the window's lowest low .. highest high. Each bar's volume
    is spread uniformly over its own low..high range (a bar with no range puts
    it in the bin holding its price): bin ``b`` gets
    ``v * (F(e_{b+1}) - F(e_b))`` with ``F(e) = clip((e - low)/(high - low), 0, 1)``.
    LVNs are interior bins ``b`` with ``p[b] <= p[b-1]``, ``p[b] <= p[b+1]``
    (strictly below at least one neighbour) and ``p[b] < mean(p)`` (all
    comparisons with a tolerance of ``1e-9 * mean(p)``, so bins equal up to
    rounding count as equal). With
    ``c_b`` the nearest LVN's bin centre:
    ``lvn_distance = (c_b - close) / (hi - lo)`` (positive when the node is
    above price) and ``lvn_strength = 1 - p[b] / mean(p)``; both 0 when the
    window has no LVN, no range or no volume. NaN for ``i < W-1``.
    Processed in blocks of rows (``block x W x (B+1)`` arrays).
    """
    n = len(bars)
    dist = np.full(n, np.nan)
    strength = np.full(n, np.nan)
    if n < window:
        return dist, strength
    wh = sliding_windows(bars.high, window)
    wl = sliding_windows(bars.low, window)
    wvol = sliding_windows(bars.volume, window)
    frac = np.arange(bins + 1, dtype=np.float64) / bins
    for b0 in range(window - 1, n, block):
        b1 = min(b0 + block, n)
        h = wh[b0:b1]
        l = wl[b0:b1]
        v = wvol[b0:b1]
        lo = l.min(axis=1)
        hi = h.max(axis=1)
        rng = hi - lo
        edges = lo[:, None] + rng[:, None] * frac[None, :]            # (N, B+1)
        width = np.maximum(h - l, 1e-12 * rng[:, None])[:, :, None]  # (N, W, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cdf = np.clip((edges[:, None, :] - l[:, :, None]) / width, 0.0, 1.0)
        cdf[:, :, 0] = 0.0
        cdf[:, :, -1] = 1.0
        prof = (np.diff(cdf, axis=2) * v[:, :, None]).sum(axis=1)    # (N, B)
        mean = prof.sum(axis=1) / bins
        mid = prof[:, 1:-1]
        left = prof[:, :-2]
        right = prof[:, 2:]
        # Comparisons carry a relative tolerance so that equal bins (plateaus
        # are common when one bar's volume spans several bins) compare equal
        # whatever the rounding, e.g. after rescaling prices.
        tol = (1e-9 * mean)[:, None]
        is_lvn = (
            (mid <= left + tol)
            & (mid <= right + tol)
            & ((mid < left - tol) | (mid < right - tol))
            & (mid < mean[:, None] - tol)
        )
        is_lvn &= (rng > 0)[:, None] & (mean > 0)[:, None]
        centres = lo[:, None] + rng[:, None] * ((np.arange(1, bins - 1) + 0.5) / bins)[None, :]
        c = bars.close[b0:b1]
        gap = np.where(is_lvn, np.abs(centres - c[:, None]), np.inf)
        j = np.argmin(gap, axis=1)
        has = np.isfinite(gap[np.arange(b1 - b0), j])
        sel_c = centres[np.arange(b1 - b0), j]
        sel_p = mid[np.arange(b1 - b0), j]
        with np.errstate(invalid="ignore", divide="ignore"):
            dist[b0:b1] = np.where(has, (sel_c - c) / np.where(rng > 0, rng, 1.0), 0.0)
            strength[b0:b1] = np.where(has, 1.0 - sel_p / np.where(mean > 0, mean, 1.0), 0.0)
    return dist, strength


# --------------------------------------------------------------------- hour
def hour_features(bars: Bars) -> tuple[np.ndarray, np.ndarray]:
    """``(sin, cos)`` of ``2 pi h / 24`` with ``h`` the (fractional) UTC
    hour-of-day of each bar's close time ``timestamp + freq_seconds``."""
    hours = ((bars.timestamp + bars.freq_seconds) % 86400) / 3600.0
    ang = 2.0 * np.pi * hours / 24.0
    return np.sin(ang), np.cos(ang)


# ----------------------------------------------------------------- assemble
def structure_features(htf: Bars) -> tuple[np.ndarray, int]:
    """The ``(len(htf), 8)`` float32 structure matrix (columns in
    ``STRUCTURE_FEATURES`` order) and its warmup row; rows before it are 0.

    ``mlmi_signal`` = EMA of ``mlmi_value`` with ``alpha = 2/(span+1)``
    started at the MLMI warmup; ``nwrqk_value = ln(close/yhat)/(sigma*kappa_v)``,
    ``nwrqk_slope = ln(yhat[i]/yhat[i-1])/(sigma*kappa_s)`` (see
    :func:`nwrqk_scales`)."""
    n = len(htf)
    out = np.zeros((n, len(STRUCTURE_FEATURES)), dtype=np.float64)
    col = {name: j for j, name in enumerate(STRUCTURE_FEATURES)}
    sin_h, cos_h = hour_features(htf)
    out[:, col["hour_sin"]] = sin_h
    out[:, col["hour_cos"]] = cos_h
    if n <= STRUCTURE_WARMUP:
        return finalize(out, STRUCTURE_WARMUP), STRUCTURE_WARMUP

    value, mw = mlmi(htf.close, heiken_ashi_close(htf))
    signal = np.full(n, np.nan)
    signal[mw:] = ewm_mean(value[mw:], 2.0 / (MLMI_SIGNAL_SPAN + 1))
    out[:, col["mlmi_value"]] = value
    out[:, col["mlmi_signal"]] = signal

    sigma = return_volatility(htf.close, STRUCTURE_VOL_WINDOW)
    yhat = nwrqk_estimate(htf.close)
    kappa_v, kappa_s = nwrqk_scales()
    with np.errstate(invalid="ignore", divide="ignore"):
        lyhat = np.log(yhat)
        out[:, col["nwrqk_value"]] = (np.log(htf.close) - lyhat) / (sigma * kappa_v)
        slope = np.full(n, np.nan)
        slope[1:] = lyhat[1:] - lyhat[:-1]
        out[:, col["nwrqk_slope"]] = slope / (sigma * kappa_s)

    dist, strength = lvn_features(htf)
    out[:, col["lvn_distance"]] = dist
    out[:, col["lvn_strength"]] = strength
    return finalize(out, STRUCTURE_WARMUP), STRUCTURE_WARMUP
