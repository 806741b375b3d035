"""Tests of the feature pipeline (envs.features): shapes, no look-ahead,
hand-made FVG / NW-RQK / MLMI / hour cases, scale invariance, missing volume."""
from __future__ import annotations

import numpy as np
import pytest

from envs.data.bars import Bars, aggregate_bars, htf_visible_count
from envs.features import (
    FEATURE_CLIP,
    REGIME_FEATURES,
    REGIME_WINDOW,
    STRUCTURE_FEATURES,
    STRUCTURE_WINDOW,
    TACTICAL_FEATURES,
    TACTICAL_WINDOW,
    FeatureSet,
    compute_features,
)
from envs.features import rolling
from envs.features.structure import (
    MLMI_HORIZON,
    MLMI_RSI_FAST,
    MLMI_RSI_SLOW,
    hour_features,
    mlmi,
    nwrqk_estimate,
    rqk_weights,
)
from envs.features.tactical import FVG_MAX_AGE, TACTICAL_WARMUP, fvg_features, tactical_features

HTF_MULTIPLE = 6
START = 1_704_067_200  # 2024-01-01 00:00 UTC (a multiple of 30 minutes)
FREQ = 300


def random_walk_ohlcv(n: int, seed: int, price: float = 1.2, vol: float = 1e-3) -> dict[str, np.ndarray]:
    """Seeded random-walk OHLCV with volatility clusters and drifting spells."""
    rng = np.random.default_rng(seed)
    sig = vol * np.exp(0.5 * np.sin(np.arange(n) / 500.0) + 0.3 * rng.standard_normal(n))
    drift = 0.05 * vol * np.sign(np.sin(np.arange(n) / 300.0 + rng.uniform(0, 6)))
    r = drift + sig * rng.standard_normal(n)
    close = price * np.exp(np.cumsum(r))
    open_ = np.r_[price, close[:-1]] * np.exp(0.1 * sig * rng.standard_normal(n))
    wick = np.abs(rng.standard_normal((2, n))) * sig * 0.7
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    volume = rng.lognormal(6.0, 0.5, n)
    return dict(open=open_, high=high, low=low, close=close, volume=volume)


def make_bars(n: int = 4000, seed: int = 0, price: float = 1.2, gaps: bool = True, **kw) -> Bars:
    ts = START + FREQ * np.arange(n + (200 if gaps else 0), dtype=np.int64)
    if gaps:  # drop two chunks (a "weekend" and a partial bucket) to exercise gaps
        keep = np.ones(len(ts), dtype=bool)
        keep[1500:1650] = False
        keep[2803:2853] = False
        ts = ts[keep][:n]
    cols = random_walk_ohlcv(n, seed, price)
    cols.update(kw)
    return Bars(timestamp=ts, freq_seconds=FREQ, **cols)


def features_of(base: Bars) -> tuple[FeatureSet, Bars]:
    htf = aggregate_bars(base, HTF_MULTIPLE)
    return compute_features(base, htf), htf


@pytest.fixture(scope="module")
def sample():
    base = make_bars()
    fs, htf = features_of(base)
    return base, htf, fs


# ------------------------------------------------------------------ contract
def test_names_and_constants():
    assert len(REGIME_FEATURES) == 12 and len(set(REGIME_FEATURES)) == 12
    assert STRUCTURE_FEATURES == (
        "mlmi_value", "mlmi_signal", "nwrqk_value", "nwrqk_slope",
        "lvn_distance", "lvn_strength", "hour_sin", "hour_cos",
    )
    assert TACTICAL_FEATURES == (
        "fvg_bullish_active", "fvg_bearish_active", "fvg_nearest_level", "fvg_age",
        "fvg_mitigation", "momentum_5", "volume_ratio",
    )
    assert (REGIME_WINDOW, STRUCTURE_WINDOW, TACTICAL_WINDOW) == (96, 48, 60)
    assert FEATURE_CLIP == 5.0
    import envs.features.regime as regime_mod

    for name in REGIME_FEATURES:  # every regime feature is documented
        assert name in regime_mod.__doc__


def test_shapes_dtypes_finite_clipped(sample):
    base, htf, fs = sample
    assert fs.regime.shape == (len(htf), 12)
    assert fs.structure.shape == (len(htf), 8)
    assert fs.tactical.shape == (len(base), 7)
    for m, w in ((fs.regime, fs.regime_warmup), (fs.structure, fs.structure_warmup),
                 (fs.tactical, fs.tactical_warmup)):
        assert m.dtype == np.float32 and m.flags.c_contiguous
        assert np.isfinite(m).all()
        assert np.abs(m).max() <= FEATURE_CLIP
        assert 0 < w < len(m)
        assert not m[:w].any()              # zeros before warmup
        assert (m[w:].std(axis=0) > 0).all()  # every column varies after it
    assert fs.regime_warmup <= REGIME_WINDOW
    assert fs.structure_warmup <= 2 * STRUCTURE_WINDOW
    assert fs.tactical_warmup <= TACTICAL_WINDOW


def test_values_are_sensibly_scaled(sample):
    _, _, fs = sample
    for m, w in ((fs.regime, fs.regime_warmup), (fs.structure, fs.structure_warmup),
                 (fs.tactical, fs.tactical_warmup)):
        x = m[w:]
        assert (np.abs(x) >= FEATURE_CLIP).mean() < 0.01  # clipping is rare
        assert (x.std(axis=0) < 2.5).all()


def test_short_series_gives_zeros():
    base = make_bars(30, gaps=False)
    fs, htf = features_of(base)
    assert fs.regime.shape == (len(htf), 12) and not fs.regime.any()
    assert fs.structure.shape == (len(htf), 8) and not fs.structure.any()
    assert fs.tactical.shape == (30, 7) and not fs.tactical.any()


# ------------------------------------------------------------ no look-ahead
@pytest.mark.parametrize("t", [100, 700, 1499, 2000, 2501, 2802, 3003, 3599])
def test_no_look_ahead(sample, t):
    """Changing every base bar after t leaves all rows visible at t unchanged."""
    base, htf, fs = sample
    other = random_walk_ohlcv(len(base), seed=1000 + t, price=float(base.close[t]) * 1.05, vol=3e-3)
    cols = {}
    for name in ("open", "high", "low", "close", "volume"):
        x = getattr(base, name).copy()
        x[t + 1:] = other[name][t + 1:]
        cols[name] = x
    changed = Bars(timestamp=base.timestamp, freq_seconds=base.freq_seconds, **cols)
    fs2, htf2 = features_of(changed)
    visible = int(htf_visible_count(base, htf)[t])
    assert visible == int(htf_visible_count(changed, htf2)[t])

    assert np.array_equal(fs.tactical[: t + 1], fs2.tactical[: t + 1])
    assert np.array_equal(fs.regime[:visible], fs2.regime[:visible])
    assert np.array_equal(fs.structure[:visible], fs2.structure[:visible])
    # ... and the change did reach later rows (the test has teeth).
    assert not np.array_equal(fs.tactical[t + 1:], fs2.tactical[t + 1:])
    if visible < len(htf) - 1:
        assert not np.array_equal(fs.regime[visible:], fs2.regime[visible:])


def test_no_look_ahead_truncation(sample):
    """Features of a prefix equal the prefix of the features."""
    base, htf, fs = sample
    for t in (1234, 3333):
        fs2, htf2 = features_of(base.slice(0, t + 1))
        visible = len(htf2) if htf2.close_time[-1] <= base.close_time[t] else len(htf2) - 1
        assert visible == int(htf_visible_count(base, htf)[t])
        assert np.array_equal(fs.tactical[: t + 1], fs2.tactical)
        assert np.array_equal(fs.regime[:visible], fs2.regime[:visible])
        assert np.array_equal(fs.structure[:visible], fs2.structure[:visible])


# ----------------------------------------------------------------- FVG
def flat_bars(n: int, price: float = 1.0, half_range: float = 0.001) -> dict[str, np.ndarray]:
    c = np.full(n, price)
    return dict(open=c.copy(), high=c + half_range, low=c - half_range, close=c.copy(),
                volume=np.ones(n))


def test_fvg_bullish_gap_appears_ages_and_mitigates():
    n = 120
    b = flat_bars(n)
    g = 60  # bullish gap completed at bar 60: low[60]=1.02 > high[58]=1.001
    b["open"][59], b["high"][59], b["low"][59], b["close"][59] = 1.0, 1.031, 0.999, 1.03
    b["open"][60], b["high"][60], b["low"][60], b["close"][60] = 1.03, 1.04, 1.02, 1.035
    for t in range(61, n):  # stay around 1.025-1.035, overlapping ranges (no new gaps)
        b["open"][t], b["high"][t], b["low"][t], b["close"][t] = 1.03, 1.035, 1.025, 1.03
    b["low"][62] = 1.01      # partial fill
    b["low"][70] = 1.0005    # trades through the far edge 1.001: mitigated at 70
    bars = Bars(timestamp=START + FREQ * np.arange(n), freq_seconds=FREQ, **b)
    m, w = tactical_features(bars)
    assert w == TACTICAL_WARMUP < g
    col = {name: j for j, name in enumerate(TACTICAL_FEATURES)}
    bull, bear = m[:, col["fvg_bullish_active"]], m[:, col["fvg_bearish_active"]]
    assert not bull[w:g].any() and not bear.any()
    assert (bull[g:70] == 1).all() and not bull[70:].any()
    age = m[:, col["fvg_age"]]
    assert age[g] == 0 and age[65] == pytest.approx(5 / FVG_MAX_AGE)
    mit = m[:, col["fvg_mitigation"]]
    span = 1.02 - 1.001
    assert mit[g] == 0 and mit[61] == 0  # low 1.025 stays above the top 1.02
    assert mit[62] == pytest.approx((1.02 - 1.01) / span, rel=1e-5)
    assert mit[69] == pytest.approx((1.02 - 1.01) / span, rel=1e-5)  # running minimum
    assert not mit[70:].any()
    atr = rolling.atr(bars.high, bars.low, bars.close, 14)
    lvl = m[:, col["fvg_nearest_level"]]
    assert lvl[g] == pytest.approx(np.clip((1.0105 - 1.035) / atr[g], -5, 5), rel=1e-5)
    assert lvl[g] < 0 and not lvl[70:].any()


def test_fvg_expires_at_max_age_and_bearish_gap():
    n = 200
    b = flat_bars(n)
    g = 60  # bearish gap: high[60]=0.98 < low[58]=0.999; never mitigated
    b["open"][59], b["high"][59], b["low"][59], b["close"][59] = 1.0, 1.001, 0.97, 0.975
    b["open"][60], b["high"][60], b["low"][60], b["close"][60] = 0.975, 0.98, 0.965, 0.97
    for t in range(61, n):
        b["open"][t], b["high"][t], b["low"][t], b["close"][t] = 0.97, 0.975, 0.965, 0.97
    high, low, close = b["high"], b["low"], b["close"]
    out = fvg_features(high, low, close, np.full(n, 0.01))
    assert not out[:g, 1].any() and not out[:, 0].any()
    assert (out[g:g + FVG_MAX_AGE, 1] == 1).all()
    assert not out[g + FVG_MAX_AGE:, 1].any()
    assert out[g + FVG_MAX_AGE - 1, 3] == pytest.approx((FVG_MAX_AGE - 1) / FVG_MAX_AGE)
    # filled fraction: max high after the gap is 0.975 in a zone [0.98, 0.999] -> 0
    assert not out[:, 4].any()
    # midpoint (0.98+0.999)/2 above close 0.97, ATR 0.01
    assert out[g + 1, 2] == pytest.approx((0.9895 - 0.97) / 0.01)


def test_fvg_vectorised_matches_loop():
    """The block-vectorised FVG state equals a straightforward per-bar loop."""
    d = random_walk_ohlcv(3000, seed=7)
    high, low, close = d["high"], d["low"], d["close"]
    a = rolling.atr(high, low, close, 14)
    fast = fvg_features(high, low, close, a, block=257)
    gaps = []  # [t_g, kind, bot, top, mitigated]
    ref = np.zeros_like(fast)
    for t in range(len(high)):
        for gp in gaps:  # mitigation by bar t
            if not gp[4] and t > gp[0]:
                if (gp[1] == 1 and low[t] <= gp[2]) or (gp[1] == -1 and high[t] >= gp[3]):
                    gp[4] = True
        if t >= 2 and low[t] > high[t - 2]:
            gaps.append([t, 1, high[t - 2], low[t], False])
        if t >= 2 and high[t] < low[t - 2]:
            gaps.append([t, -1, high[t], low[t - 2], False])
        act = [gp for gp in gaps if not gp[4] and t - gp[0] < FVG_MAX_AGE]
        if not act:
            continue
        ref[t, 0] = any(gp[1] == 1 for gp in act)
        ref[t, 1] = any(gp[1] == -1 for gp in act)
        mids = [(gp[2] + gp[3]) / 2 for gp in act]
        j = int(np.argmin([abs(mm - close[t]) for mm in mids]))
        ref[t, 2] = (mids[j] - close[t]) / a[t]
        last = max(act, key=lambda gp: gp[0])
        ref[t, 3] = (t - last[0]) / FVG_MAX_AGE
        if t > last[0]:
            seg = slice(last[0] + 1, t + 1)
            if last[1] == 1:
                f = (last[3] - low[seg].min()) / (last[3] - last[2])
            else:
                f = (high[seg].max() - last[2]) / (last[3] - last[2])
            ref[t, 4] = np.clip(f, 0, 1)
    assert ref[:, 0].sum() > 100 and ref[:, 1].sum() > 100
    np.testing.assert_allclose(fast, ref, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------- NW-RQK
def test_nwrqk_equals_direct_weighted_average():
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 80)))
    h, alpha, L = 3.0, 2.0, 10
    yhat = nwrqk_estimate(close, bandwidth=h, alpha=alpha, lookback=L)
    assert np.isnan(yhat[: L - 1]).all()
    for t in range(L - 1, len(close)):
        w = np.array([(1 + j * j / (2 * alpha * h * h)) ** (-alpha) for j in range(L)])
        direct = sum(w[j] * close[t - j] for j in range(L)) / w.sum()
        assert yhat[t] == pytest.approx(direct, rel=1e-12)
    assert rqk_weights(h, alpha, L)[0] == 1.0
    assert np.all(np.diff(rqk_weights(h, alpha, L)) < 0)


# ----------------------------------------------------------------- MLMI
def test_mlmi_bounded_and_matches_brute_force(sample):
    _, htf, fs = sample
    w = fs.structure_warmup
    v = fs.structure[w:, 0]
    assert v.min() >= -1 and v.max() <= 1 and v.std() > 0.05
    assert np.abs(fs.structure[w:, 1]).max() <= 1

    d = random_walk_ohlcv(700, seed=11)
    close, ha = d["close"], (d["open"] + d["high"] + d["low"] + d["close"]) / 4
    k, M, H, P = 7, 60, MLMI_HORIZON, 20
    val, warm = mlmi(close, ha, k=k, memory=M, min_points=P, block=97)
    assert warm == MLMI_RSI_SLOW + H + P - 1
    assert np.isnan(val[:warm]).all() and np.isfinite(val[warm:]).all()
    f = rolling.wilder_rsi(ha, MLMI_RSI_FAST)
    g = rolling.wilder_rsi(ha, MLMI_RSI_SLOW)
    for i in range(warm, len(close)):
        cand = np.arange(max(MLMI_RSI_SLOW, i - H - M + 1), i - H + 1)
        dist = (f[i] - f[cand]) ** 2 + (g[i] - g[cand]) ** 2
        nn = cand[np.argsort(dist, kind="stable")[:k]]
        assert nn.max() + H <= i  # only labels known at i
        lab = np.sign(close[nn + H] - close[nn])
        assert val[i] == pytest.approx(lab.mean(), abs=1e-12)


# ----------------------------------------------------------------- hour
def test_hour_features_known_time():
    # HTF bar 10:00-10:30 UTC on 2024-01-01 closes at 10:30 -> hour 10.5
    base = make_bars(1200, gaps=False)
    htf = aggregate_bars(base, HTF_MULTIPLE)
    s, c = hour_features(htf)
    i = int(np.flatnonzero(htf.timestamp == START + 10 * 3600)[0])
    assert s[i] == pytest.approx(np.sin(2 * np.pi * 10.5 / 24))
    assert c[i] == pytest.approx(np.cos(2 * np.pi * 10.5 / 24))
    fs = compute_features(base, htf)
    j = int(np.flatnonzero(htf.timestamp == START + 86400 + 23 * 3600 + 1800)[0])  # closes 00:00
    assert j >= fs.structure_warmup
    assert fs.structure[j, 6] == pytest.approx(0.0, abs=1e-6)
    assert fs.structure[j, 7] == pytest.approx(1.0)


# ------------------------------------------------- scale and volume robustness
def test_scale_invariance(sample):
    base, _, fs = sample
    scaled = Bars(timestamp=base.timestamp, freq_seconds=base.freq_seconds,
                  open=base.open * 1000, high=base.high * 1000, low=base.low * 1000,
                  close=base.close * 1000, volume=base.volume * 1000)
    fs2, _ = features_of(scaled)
    for a, b in ((fs.regime, fs2.regime), (fs.structure, fs2.structure),
                 (fs.tactical, fs2.tactical)):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_bar_frequency_invariance():
    """Hourly bars with hourly-sized moves give features on the same scale."""
    n = 3000
    d = random_walk_ohlcv(n, seed=5, price=40_000.0, vol=1e-2)
    hourly = Bars(timestamp=START + 3600 * np.arange(n), freq_seconds=3600, **d)
    fs = compute_features(hourly, aggregate_bars(hourly, HTF_MULTIPLE))
    for m, w in ((fs.regime, fs.regime_warmup), (fs.structure, fs.structure_warmup),
                 (fs.tactical, fs.tactical_warmup)):
        assert np.isfinite(m).all()
        assert (np.abs(m[w:]) >= FEATURE_CLIP).mean() < 0.01


def test_missing_volume():
    base = make_bars(3000)
    nov = Bars(timestamp=base.timestamp, freq_seconds=base.freq_seconds, open=base.open,
               high=base.high, low=base.low, close=base.close, volume=np.ones(len(base)),
               has_volume=False)
    fs, _ = features_of(nov)
    assert np.isfinite(fs.regime).all() and np.isfinite(fs.structure).all()
    assert not fs.tactical[:, TACTICAL_FEATURES.index("volume_ratio")].any()
    assert not fs.regime[:, REGIME_FEATURES.index("volume_z_48")].any()
    w = fs.structure_warmup
    strength = fs.structure[w:, STRUCTURE_FEATURES.index("lvn_strength")]
    assert strength.max() > 0  # time-at-price profile still has low-volume nodes
    # price features do not depend on volume at all
    fs_v, _ = features_of(base)
    keep = [j for j, nme in enumerate(REGIME_FEATURES) if nme != "volume_z_48"]
    assert np.array_equal(fs.regime[:, keep], fs_v.regime[:, keep])
    assert np.array_equal(fs.tactical[:, :6], fs_v.tactical[:, :6])


def test_zero_volume_and_flat_prices_stay_finite():
    n = 600
    b = flat_bars(n)
    b["volume"] = np.zeros(n)
    bars = Bars(timestamp=START + FREQ * np.arange(n), freq_seconds=FREQ, **b)
    fs, _ = features_of(bars)
    for m in (fs.regime, fs.structure, fs.tactical):
        assert np.isfinite(m).all() and np.abs(m).max() <= FEATURE_CLIP
