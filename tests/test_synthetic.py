"""Tests of the synthetic regime-switching market (envs/data/synthetic.py)."""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from envs.data.bars import REGIME_NAMES, Bars, check_bars
from envs.data.synthetic import (
    DEFAULT_PRESET,
    PRESETS,
    SyntheticPreset,
    bars_per_year,
    generate_bars,
)

TRENDING, RANGING, VOLATILE, TRANSITION = (REGIME_NAMES.index(n) for n in REGIME_NAMES)
ALL = sorted(PRESETS)
DAY = 86_400


@pytest.fixture(scope="module")
def big() -> dict[str, Bars]:
    return {name: generate_bars(name, n_bars=100_000, seed=0) for name in ALL}


def _spells(labels: np.ndarray):
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    ends = np.r_[starts[1:], len(labels)]
    return starts, ends, labels[starts]


def _log_returns(b: Bars) -> np.ndarray:
    """Close-to-close log returns; element i is the return of bar i + 1."""
    return np.diff(np.log(b.close))


# --------------------------------------------------------------------------- API


def test_presets_and_default():
    assert set(PRESETS) == {"simple_markets", "moderate_volatility", "complex_regimes"}
    assert DEFAULT_PRESET == "simple_markets"
    for p in PRESETS.values():
        assert isinstance(p, SyntheticPreset)
        occ = p.occupancy()
        assert occ.shape == (4,) and np.isclose(occ.sum(), 1.0) and (occ > 0).all()


def test_preset_validation_rejects_bad_parameters():
    p = PRESETS["simple_markets"]
    bad_rows = ((0.5, 0.5, 0.0, 0.0),) + p.jump_matrix[1:]  # self-jump on the diagonal
    with pytest.raises(ValueError):
        dataclasses.replace(p, jump_matrix=bad_rows)
    with pytest.raises(ValueError):
        dataclasses.replace(p, tail_df=(2.0, 5.0, 5.0, 5.0))
    with pytest.raises(ValueError):
        dataclasses.replace(p, vol=(0.001, -0.001, 0.001, 0.001))


def test_unknown_preset_lists_valid_names():
    with pytest.raises(ValueError) as info:
        generate_bars("no_such_market", n_bars=10)
    for name in ALL:
        assert name in str(info.value)


@pytest.mark.parametrize("n", [0, -5])
def test_bad_n_bars(n):
    with pytest.raises(ValueError):
        generate_bars(n_bars=n)


def test_bad_freq():
    with pytest.raises(ValueError):
        generate_bars(n_bars=10, freq_seconds=0)


@pytest.mark.parametrize("preset", ALL)
def test_shapes_dtypes_source(preset):
    b = generate_bars(preset, n_bars=3_000, seed=7)
    assert len(b) == 3_000 and b.freq_seconds == 300
    assert b.timestamp.dtype == np.int64
    for name in ("open", "high", "low", "close", "volume"):
        arr = getattr(b, name)
        assert arr.dtype == np.float64 and arr.shape == (3_000,)
        assert np.isfinite(arr).all()
    assert b.regime_label.dtype == np.int8
    assert set(np.unique(b.regime_label)) <= set(range(4))
    assert b.has_labels and b.has_volume
    assert b.source == f"synthetic:{preset}:seed=7"


def test_single_bar():
    b = generate_bars(n_bars=1)
    assert len(b) == 1
    check_bars(b)
    assert b.open[0] == PRESETS[DEFAULT_PRESET].initial_price


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("preset", ALL)
def test_same_seed_is_bit_identical(preset):
    a = generate_bars(preset, n_bars=20_000, seed=3)
    b = generate_bars(preset, n_bars=20_000, seed=3)
    for name in ("timestamp", "open", "high", "low", "close", "volume", "regime_label"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name


@pytest.mark.parametrize("preset", ALL)
def test_different_seeds_differ(preset):
    a = generate_bars(preset, n_bars=5_000, seed=1)
    b = generate_bars(preset, n_bars=5_000, seed=2)
    assert np.array_equal(a.timestamp, b.timestamp)  # same clock
    assert not np.array_equal(a.close, b.close)
    assert not np.array_equal(a.volume, b.volume)


# --------------------------------------------------------------------------- OHLC and clock


@pytest.mark.parametrize("preset", ALL)
def test_ohlc_consistent_and_positive(big, preset):
    b = big[preset]
    check_bars(b)
    assert (b.low > 0).all() and (b.volume > 0).all()
    assert (b.low <= b.open).all() and (b.open <= b.high).all()
    assert (b.low <= b.close).all() and (b.close <= b.high).all()
    assert (b.high > b.low).all()  # several sub-steps: bars have a real range


@pytest.mark.parametrize("preset", ALL)
def test_open_is_previous_close_except_after_gaps(big, preset):
    b = big[preset]
    same_session = np.diff(b.timestamp) == b.freq_seconds
    assert np.array_equal(b.open[1:][same_session], b.close[:-1][same_session])
    # weekend gaps are small
    jump = np.abs(np.log(b.open[1:][~same_session] / b.close[:-1][~same_session]))
    assert jump.max() < 0.05


def test_clock_weekdays_only(big):
    b = big["complex_regimes"]
    ts = b.timestamp
    assert ts[0] == np.datetime64("2021-01-04T00:00:00", "s").astype(np.int64)
    weekday = (ts // DAY + 3) % 7  # Monday = 0
    assert (weekday < 5).all()
    assert set(np.unique(weekday)) == set(range(5))
    steps = np.diff(ts)
    assert (steps > 0).all()
    # within a day the spacing is exactly one bar; the only gaps span a weekend
    same_day = (ts[1:] // DAY) == (ts[:-1] // DAY)
    assert (steps[same_day] == 300).all()
    assert set(np.unique(steps)) == {300, 300 + 2 * DAY}
    # every weekday is complete: 288 five-minute bars (last day may be partial)
    counts = np.bincount(ts // DAY - ts[0] // DAY)
    full = counts[:-1][counts[:-1] > 0]
    assert (full == 288).all()


def test_start_on_weekend_moves_to_monday():
    b = generate_bars(n_bars=10, start="2021-01-02")  # a Saturday
    assert b.timestamp[0] == np.datetime64("2021-01-04T00:00:00", "s").astype(np.int64)


@pytest.mark.parametrize("freq", [60, 3600, 86_400])
def test_other_frequencies(freq):
    b = generate_bars("moderate_volatility", n_bars=20_000, seed=4, freq_seconds=freq)
    check_bars(b)
    assert b.freq_seconds == freq
    steps = np.unique(np.diff(b.timestamp))
    assert steps[0] == freq and (steps % freq == 0).all()
    weekday = (b.timestamp // DAY + 3) % 7
    assert (weekday < 5).all()
    ref = generate_bars("moderate_volatility", n_bars=20_000, seed=4)
    vol = _log_returns(b).std() * np.sqrt(bars_per_year(freq))
    vol_ref = _log_returns(ref).std() * np.sqrt(bars_per_year(300))
    assert 0.6 < vol / vol_ref < 1.6  # annualised volatility is comparable


# --------------------------------------------------------------------------- regimes


def test_complex_has_all_four_regimes(big):
    lab = big["complex_regimes"].regime_label
    frac = np.bincount(lab, minlength=4) / len(lab)
    assert (frac > 0.04).all(), frac
    assert frac[TRANSITION] < 0.2 and frac[TRANSITION] < frac[[TRENDING, RANGING, VOLATILE]].min()


def test_simple_is_mostly_trending_and_ranging(big):
    lab = big["simple_markets"].regime_label
    frac = np.bincount(lab, minlength=4) / len(lab)
    assert frac[TRENDING] + frac[RANGING] > 0.75, frac
    assert frac[VOLATILE] < 0.15


def test_moderate_has_more_volatility_than_simple(big):
    def frac_volatile(name):
        lab = big[name].regime_label
        return np.mean(lab == VOLATILE)

    assert frac_volatile("moderate_volatility") > 2 * frac_volatile("simple_markets")
    vol = {n: _log_returns(big[n]).std() for n in ALL}
    assert vol["simple_markets"] < vol["moderate_volatility"]
    assert vol["simple_markets"] < vol["complex_regimes"]


@pytest.mark.parametrize("preset", ALL)
def test_regime_durations_realistic(big, preset):
    starts, ends, regs = _spells(big[preset].regime_label)
    lengths = (ends - starts)[1:-1]  # first and last spells are cut by the sample
    regs = regs[1:-1]
    main = np.isin(regs, [TRENDING, RANGING, VOLATILE])
    assert np.median(lengths[main]) >= 100  # hundreds of 5-minute bars
    assert np.median(lengths[regs == TRANSITION]) < np.median(lengths[main]) / 2
    if preset == "simple_markets":
        assert np.median(lengths[regs == TRENDING]) > 800
        assert lengths[regs == TRENDING].max() > 2000
    if preset == "complex_regimes":
        # shorter spells than the simple market
        s2, e2, r2 = _spells(big["simple_markets"].regime_label)
        assert np.median(lengths[main]) < np.median((e2 - s2)[1:-1][r2[1:-1] != TRANSITION])


def test_transitions_sit_between_other_regimes(big):
    _, _, regs = _spells(big["simple_markets"].regime_label)
    assert not (regs[1:] == regs[:-1]).any()  # spells always change regime
    t = np.flatnonzero(regs == TRANSITION)
    t = t[(t > 0) & (t < len(regs) - 1)]
    assert len(t) > 10
    assert not (regs[t - 1] == TRANSITION).any() and not (regs[t + 1] == TRANSITION).any()


@pytest.mark.parametrize("preset", ALL)
def test_volatile_regime_has_highest_vol(big, preset):
    b = big[preset]
    r = _log_returns(b)
    lab = b.regime_label[1:]
    vol = np.array([r[lab == k].std() for k in range(4)])
    assert vol[VOLATILE] > 1.5 * vol[RANGING]
    assert vol[VOLATILE] > vol[TRENDING] > vol[RANGING]


@pytest.mark.parametrize("preset", ["simple_markets", "moderate_volatility"])
def test_trends_move_further_than_ranges(big, preset):
    b = big[preset]
    starts, ends, regs = _spells(b.regime_label)
    logc = np.log(b.close)
    net = np.abs(logc[ends - 1] - np.log(b.open[starts]))
    per_bar = net / (ends - starts)
    assert net[regs == TRENDING].mean() > 3 * net[regs == RANGING].mean()
    assert per_bar[regs == TRENDING].mean() > 2 * per_bar[regs == RANGING].mean()


def test_ranging_mean_reverts_and_trending_persists(big):
    b = big["simple_markets"]
    logc = np.log(b.close)
    starts, ends, regs = _spells(b.regime_label)
    h = 100

    def variance_ratio(regime):
        one, many = [], []
        for s, e in zip(starts[regs == regime], ends[regs == regime]):
            x = logc[s:e]
            one.append(np.diff(x))
            many.append(x[h:] - x[:-h])
        one = np.concatenate(one)
        many = np.concatenate(many)
        return np.mean(many ** 2) / (h * np.mean(one ** 2))

    # OU with kappa = 0.01: theory (1 - exp(-kappa h)) / (kappa h) = 0.63 at h = 100
    assert variance_ratio(RANGING) < 0.8  # OU: long-horizon moves are damped
    assert variance_ratio(TRENDING) > 1.0  # drift: long-horizon moves are amplified


def test_volatile_regime_has_fat_tails(big):
    b = big["moderate_volatility"]
    r = _log_returns(b)
    lab = b.regime_label[1:]
    x = r[lab == VOLATILE]
    z = (x - x.mean()) / x.std()
    assert np.mean(z ** 4) > 4.0  # Gaussian is 3


def test_complex_has_volatility_clustering(big):
    r = np.abs(_log_returns(big["complex_regimes"]))
    assert np.corrcoef(r[1:], r[:-1])[0, 1] > 0.15


# --------------------------------------------------------------------------- volume


@pytest.mark.parametrize("preset", ALL)
def test_volume_u_shape(big, preset):
    b = big[preset]
    hour = (b.timestamp % DAY) // 3600
    by_hour = np.array([b.volume[hour == h].mean() for h in range(24)])
    midday = by_hour[10:14].mean()
    assert by_hour[0] > 1.3 * midday
    assert by_hour[23] > 1.3 * midday


@pytest.mark.parametrize("preset", ALL)
def test_volume_follows_regime_and_returns(big, preset):
    b = big[preset]
    lab = b.regime_label
    if (lab == VOLATILE).sum() > 1000:
        assert b.volume[lab == VOLATILE].mean() > 1.3 * b.volume[lab == RANGING].mean()
    bar_move = np.abs(np.log(b.close / b.open))
    assert np.corrcoef(b.volume, bar_move)[0, 1] > 0.2
    assert np.array_equal(b.volume, np.round(b.volume)) and b.volume.min() >= 1


def test_intraday_volatility_seasonality(big):
    b = big["simple_markets"]
    hour = (b.timestamp % DAY) // 3600
    rng_ = np.log(b.high / b.low)
    edge = rng_[(hour == 0) | (hour == 23)].mean()
    noon = rng_[(hour >= 10) & (hour < 14)].mean()
    assert edge > noon * 1.1


# --------------------------------------------------------------------------- signal and speed


def test_simple_market_rewards_regime_aware_trend_following(big):
    """A trend follower (sign of the 400-bar move) that trades only in trending
    regimes earns an annualised Sharpe > 1 after 1 bp per unit of turnover."""
    for seed in (0, 1):
        b = big["simple_markets"] if seed == 0 else generate_bars("simple_markets", 100_000, seed)
        logc = np.log(b.close)
        r = np.diff(logc)
        mom = np.zeros_like(logc)
        mom[400:] = logc[400:] - logc[:-400]
        pos = np.where(b.regime_label == TRENDING, np.sign(mom), 0.0)
        pnl = pos[:-1] * r - 1e-4 * np.abs(np.diff(pos))
        sharpe = pnl.mean() / pnl.std() * np.sqrt(bars_per_year(300))
        assert sharpe > 1.0, (seed, sharpe)


def test_speed_353k_bars():
    generate_bars("complex_regimes", n_bars=1_000, seed=0)  # warm up
    t0 = time.perf_counter()
    b = generate_bars("complex_regimes", n_bars=353_000, seed=0)
    elapsed = time.perf_counter() - t0
    assert len(b) == 353_000
    assert elapsed < 10.0, elapsed
