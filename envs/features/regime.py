"""Regime features: return, volatility and trend statistics on higher-timeframe bars.

One row per HTF bar ``i``, computed from HTF bars ``<= i`` only. Notation:
``lc = ln(close)``, ``r[i] = lc[i] - lc[i-1]`` (1-bar log return),
``sigma[i]`` = population std of ``r[i-47 .. i]`` (48 returns, floored at 1e-12),
``rv_h[i] = sqrt(mean(r[i-h+1 .. i]**2))`` (realised volatility over h bars),
``TINY = 1e-12``. Every value is finally clipped to ``+-FEATURE_CLIP``.

==================  ==========================================================
name                definition
==================  ==========================================================
ret_1_z             ``r[i] / sigma[i]``
ret_4_z             ``(lc[i] - lc[i-4]) / (sigma[i] * sqrt(4))``
ret_16_z            ``(lc[i] - lc[i-16]) / (sigma[i] * sqrt(16))``
ret_48_z            ``(lc[i] - lc[i-48]) / (sigma[i] * sqrt(48))``
vol_ratio_4_48      ``ln((rv_4 + TINY) / (rv_48 + TINY))``: short-term vol
                    expansion (>0) or contraction (<0)
vol_ratio_16_48     ``ln((rv_16 + TINY) / (rv_48 + TINY))``
range_ratio_16      ``ln((ln(HH_16 / LL_16) + TINY) / (sigma * sqrt(16) + TINY))``
                    with HH/LL the highest high / lowest low of the last 16
                    bars: rescaled range, high when price travels (trend or
                    volatile), low when it stays in a box (ranging)
trend_slope_16      OLS slope of ``lc`` on bar index over the last 16 bars,
                    ``* sqrt(16) / sigma`` (O(1) for a driftless random walk)
trend_slope_48      the same over the last 48 bars, ``* sqrt(48) / sigma``
trend_r2_48         R^2 of that 48-bar line, in [0, 1]
efficiency_16       Kaufman efficiency ratio
                    ``|lc[i] - lc[i-16]| / sum(|r[i-15 .. i]|)`` in [0, 1]
                    (0 when the path length is 0)
volume_z_48         ``(v[i] - mean(v[i-47..i])) / std(v[i-47..i])`` of HTF
                    volume (0 where the std is 0 or the source has no volume)
==================  ==========================================================

All of them are scale-free (log returns, ratios, z-scores) and frequency-free
(normalised by the series' own volatility). Warmup: 48 (sigma needs 48 real
returns, i.e. 49 closes; every other window is at most 48 returns).
"""
from __future__ import annotations

import numpy as np

from envs.data.bars import Bars
from envs.features.rolling import (
    TINY,
    finalize,
    log_returns,
    rolling_max,
    rolling_mean_std,
    rolling_min,
    rolling_ols,
    rolling_rms,
    rolling_sum,
    return_volatility,
    safe_log_ratio,
)

REGIME_FEATURES: tuple[str, ...] = (
    "ret_1_z",
    "ret_4_z",
    "ret_16_z",
    "ret_48_z",
    "vol_ratio_4_48",
    "vol_ratio_16_48",
    "range_ratio_16",
    "trend_slope_16",
    "trend_slope_48",
    "trend_r2_48",
    "efficiency_16",
    "volume_z_48",
)

REGIME_VOL_WINDOW = 48
REGIME_WARMUP = REGIME_VOL_WINDOW  # first HTF row with every regime feature defined


def regime_features(htf: Bars) -> tuple[np.ndarray, int]:
    """The ``(len(htf), 12)`` float32 regime matrix (columns in
    ``REGIME_FEATURES`` order, formulas in the module docstring) and its
    warmup row. Rows before the warmup are 0."""
    n = len(htf)
    out = np.zeros((n, len(REGIME_FEATURES)), dtype=np.float64)
    if n <= REGIME_WARMUP:
        return finalize(out, n), REGIME_WARMUP
    close = htf.close
    lc = np.log(close)
    r = log_returns(close)
    sigma = return_volatility(close, REGIME_VOL_WINDOW)
    col = {name: j for j, name in enumerate(REGIME_FEATURES)}

    with np.errstate(invalid="ignore", divide="ignore"):
        for h in (1, 4, 16, 48):
            net = np.zeros(n)
            net[h:] = lc[h:] - lc[:-h]
            out[:, col[f"ret_{h}_z"]] = net / (sigma * np.sqrt(h))

        rv48 = rolling_rms(r, 48)
        out[:, col["vol_ratio_4_48"]] = safe_log_ratio(rolling_rms(r, 4), rv48)
        out[:, col["vol_ratio_16_48"]] = safe_log_ratio(rolling_rms(r, 16), rv48)

        rng16 = np.log(rolling_max(htf.high, 16) / rolling_min(htf.low, 16))
        out[:, col["range_ratio_16"]] = safe_log_ratio(np.maximum(rng16, 0.0), sigma * 4.0)

        slope16, _ = rolling_ols(lc, 16)
        slope48, r2_48 = rolling_ols(lc, 48)
        out[:, col["trend_slope_16"]] = slope16 * np.sqrt(16) / sigma
        out[:, col["trend_slope_48"]] = slope48 * np.sqrt(48) / sigma
        out[:, col["trend_r2_48"]] = r2_48

        path = rolling_sum(np.abs(r), 16)
        net16 = np.zeros(n)
        net16[16:] = np.abs(lc[16:] - lc[:-16])
        out[:, col["efficiency_16"]] = np.where(path > TINY, net16 / np.where(path > TINY, path, 1.0), 0.0)

        if htf.has_volume:
            mean_v, std_v = rolling_mean_std(htf.volume, 48)
            ok = std_v > 1e-9 * np.maximum(np.abs(mean_v), TINY)
            out[:, col["volume_z_48"]] = np.where(ok, (htf.volume - mean_v) / np.where(ok, std_v, 1.0), 0.0)

    return finalize(out, REGIME_WARMUP), REGIME_WARMUP
