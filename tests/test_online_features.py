"""Incremental features (envs.features.online) against the batch pipeline: every
feature of every row, bar by bar, over synthetic series, CSV-like series with
gaps and missing volume, and a market file's stored matrices; bounded state;
the HTF bucket closing rule; no Ray."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from envs.data.bars import Bars, aggregate_bars, htf_visible_count
from envs.data.synthetic import generate_bars
from envs.features import REGIME_FEATURES, STRUCTURE_FEATURES, TACTICAL_FEATURES, compute_features
from envs.features.online import BASE_ROWS_NEEDED, HTF_ROWS_NEEDED, OnlineFeatures, online_feature_matrices
from envs.features.structure import LVN_WINDOW, MLMI_MEMORY
from envs.features.tactical import FVG_MAX_AGE

START = 1_704_067_200  # 2024-01-01 00:00 UTC
FREQ = 300
TOL = 1e-5  # absolute, after float32 (the implementation is in fact exact)


def _walk(n: int, seed: int, price: float = 1.2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sig = 1e-3 * np.exp(0.5 * np.sin(np.arange(n) / 400.0) + 0.3 * rng.standard_normal(n))
    r = 5e-5 * np.sign(np.sin(np.arange(n) / 300.0)) + sig * rng.standard_normal(n)
    close = price * np.exp(np.cumsum(r))
    open_ = np.r_[price, close[:-1]] * np.exp(0.1 * sig * rng.standard_normal(n))
    wick = np.abs(rng.standard_normal((2, n))) * sig * 0.7
    return dict(
        open=open_,
        high=np.maximum(open_, close) * np.exp(wick[0]),
        low=np.minimum(open_, close) * np.exp(-wick[1]),
        close=close,
        volume=rng.lognormal(6.0, 0.5, n),
    )


def csv_like_bars(n: int, seed: int, *, has_volume: bool) -> Bars:
    """Bars as a CSV import gives them: weekend-like gaps, a gap that removes
    the last slot of a bucket (so it closes only with a later bar), a run of
    flat bars, empty volume cells (0) or no volume at all (1.0 each)."""
    ts = START + FREQ * np.arange(n + 400, dtype=np.int64)
    keep = np.ones(len(ts), dtype=bool)
    keep[1000:1288] = False  # a day off
    keep[2009] = False  # the last slot of bucket 2004..2009 (with htf_multiple 6)
    keep[2803:2853] = False  # from mid-bucket to mid-bucket
    ts = ts[keep][:n]
    cols = _walk(n, seed)
    cols["open"][1500:1510] = cols["high"][1500:1510] = cols["low"][1500:1510] = cols["close"][1500:1510] = cols["close"][1499]
    if has_volume:
        cols["volume"][::37] = 0.0
    else:
        cols["volume"] = np.ones(n)
    return Bars(timestamp=ts, freq_seconds=FREQ, has_volume=has_volume, source="csv:test", **cols)


def assert_matches_batch(base: Bars, htf_multiple: int) -> dict[str, float]:
    htf = aggregate_bars(base, htf_multiple)
    batch = compute_features(base, htf)
    regime, structure, tactical, visible = online_feature_matrices(base, htf_multiple)
    np.testing.assert_array_equal(visible, htf_visible_count(base, htf))
    diffs = {}
    for name, online, ref, names in (
        ("regime", regime, batch.regime, REGIME_FEATURES),
        ("structure", structure, batch.structure, STRUCTURE_FEATURES),
        ("tactical", tactical, batch.tactical, TACTICAL_FEATURES),
    ):
        assert online.shape == ref.shape and online.dtype == np.float32
        err = np.abs(online.astype(np.float64) - ref)
        for j, feature in enumerate(names):
            assert err[:, j].max() <= TOL, f"{name}.{feature}: max abs diff {err[:, j].max():.3g} at row {int(err[:, j].argmax())}"
        assert np.any(ref != 0), f"{name} is all zero: the series is too short to test anything"
        diffs[name] = float(err.max())
    return diffs


@pytest.mark.parametrize("preset,seed", [("simple_markets", 3), ("complex_regimes", 4)])
def test_incremental_equals_batch_on_synthetic_series(preset, seed):
    base = generate_bars(preset=preset, n_bars=4000, seed=seed)
    diffs = assert_matches_batch(base, 6)
    assert max(diffs.values()) == 0.0  # bit for bit, not just within the tolerance


@pytest.mark.parametrize("has_volume,htf_multiple", [(True, 6), (False, 6), (True, 12)])
def test_incremental_equals_batch_on_csv_like_series_with_gaps(has_volume, htf_multiple):
    base = csv_like_bars(3500, seed=7, has_volume=has_volume)
    assert_matches_batch(base, htf_multiple)


def test_incremental_equals_stored_matrices_of_a_market_file(market_file):
    """Feed the bars of a market file one by one; every row equals the stored one."""
    import h5py

    with h5py.File(market_file, "r") as f:
        cols = {k: f[f"base/{k}"][:] for k in ("timestamp", "open", "high", "low", "close", "volume")}
        stored = {k: f[f"features/{k}"][:] for k in ("regime", "structure", "tactical")}
        visible = f["base/htf_visible"][:]
        first_valid = int(f.attrs["first_valid"])
        eng = OnlineFeatures(int(f.attrs["freq_seconds"]), int(f.attrs["htf_multiple"]), has_volume=bool(f.attrs["has_volume"]))
    regime, structure = [], []
    worst = {"regime": 0.0, "structure": 0.0, "tactical": 0.0}
    for t in range(len(cols["timestamp"])):
        up = eng.update(*(cols[k][t] for k in ("timestamp", "open", "high", "low", "close", "volume")))
        assert up.htf_visible == visible[t]
        worst["tactical"] = max(worst["tactical"], float(np.abs(up.tactical - stored["tactical"][t]).max()))
        for k in range(up.htf_closed, 0, -1):
            regime.append(eng.regime.data[-k].copy())
            structure.append(eng.structure.data[-k].copy())
        assert eng.windows_full == (t >= first_valid)
    n = len(regime)
    worst["regime"] = float(np.abs(np.asarray(regime) - stored["regime"][:n]).max())
    worst["structure"] = float(np.abs(np.asarray(structure) - stored["structure"][:n]).max())
    assert n >= len(stored["regime"]) - 1  # only a final, unfinished bucket may be missing
    assert max(worst.values()) <= TOL, worst


def test_state_is_bounded():
    """Internal buffers stop growing once warmed up: the cost of a bar does not
    depend on how much history came before it."""
    base = generate_bars(preset="complex_regimes", n_bars=3000, seed=5)
    eng = OnlineFeatures(base.freq_seconds, 6, has_volume=True)
    sizes = []
    for t in range(len(base)):
        eng.update(int(base.timestamp[t]), base.open[t], base.high[t], base.low[t], base.close[t], base.volume[t])
        if t in (1500, 2999):
            sizes.append(eng.buffer_sizes())
    varying = {"fvg_gaps", "bucket_volumes"}
    for key in sizes[0]:
        if key not in varying:
            assert sizes[0][key] == sizes[1][key], key
    assert sizes[1]["fvg_gaps"] <= FVG_MAX_AGE and sizes[1]["bucket_volumes"] <= 6
    assert sizes[1]["mlmi_memory"] <= 4 * MLMI_MEMORY + 5 and sizes[1]["htf_windows"] <= 5 * (LVN_WINDOW + 1)
    assert sum(sizes[1].values()) < 20_000


def test_bucket_becomes_visible_only_once_closed():
    eng = OnlineFeatures(FREQ, 6, has_volume=True)
    period = FREQ * 6
    t0 = START  # a bucket boundary
    bar = dict(open=1.0, high=1.01, low=0.99, close=1.0, volume=10.0)
    for k in range(5):  # slots 0..4: the bucket is still open
        up = eng.update(t0 + k * FREQ, **bar)
        assert up.htf_closed == 0 and eng.n_htf == 0
    up = eng.update(t0 + 5 * FREQ, **bar)  # the last slot closes it
    assert up.htf_closed == 1 and eng.n_htf == 1
    eng.update(t0 + period, **bar)  # next bucket, slots 0..3, then a gap over its last slots
    eng.update(t0 + period + 3 * FREQ, **bar)
    assert eng.n_htf == 1  # half built: not visible
    up = eng.update(t0 + 3 * period + 5 * FREQ, **bar)  # a bar of a later bucket (its own last slot)
    assert up.htf_closed == 2 and eng.n_htf == 3  # the gap bucket closes first, then this one


def test_bad_bars_are_rejected_without_changing_state():
    eng = OnlineFeatures(FREQ, 6)
    eng.update(START, 1.0, 1.1, 0.9, 1.0, 5.0)
    before = (eng.n_base, eng.last_timestamp)
    with pytest.raises(ValueError, match="not after the previous bar"):
        eng.update(START, 1.0, 1.1, 0.9, 1.0, 5.0)
    with pytest.raises(ValueError, match="high .* is below low"):
        eng.update(START + FREQ, 1.0, 0.8, 0.9, 1.0, 5.0)
    with pytest.raises(ValueError, match="close must be a positive"):
        eng.update(START + FREQ, 1.0, 1.1, 0.9, float("nan"), 5.0)
    assert (eng.n_base, eng.last_timestamp) == before


def test_windows_full_rule_matches_the_market_layout():
    assert HTF_ROWS_NEEDED == 144 and BASE_ROWS_NEEDED == 108


def test_online_features_import_no_ray():
    code = "import sys, envs.features.online; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
