"""No look-ahead, end to end: change every bar after t, rebuild the market file,
and every stored feature row and every observation up to bar t stays identical."""
import dataclasses

import h5py
import numpy as np
import pytest

from envs import algospace_market
from envs.data.dataset import build_market_file
from envs.data.synthetic import generate_bars


def _perturb_after(bars, t, seed):
    rng = np.random.default_rng(seed)
    n = len(bars)
    tail = n - (t + 1)
    scale = np.exp(np.cumsum(rng.normal(0, 0.01, tail)))
    close = bars.close.copy()
    close[t + 1 :] = close[t] * scale
    open_ = bars.open.copy()
    open_[t + 1 :] = np.r_[close[t], close[t + 1 : -1]] * np.exp(rng.normal(0, 0.002, tail))
    high = bars.high.copy()
    low = bars.low.copy()
    high[t + 1 :] = np.maximum(open_[t + 1 :], close[t + 1 :]) * (1 + rng.uniform(0, 0.01, tail))
    low[t + 1 :] = np.minimum(open_[t + 1 :], close[t + 1 :]) * (1 - rng.uniform(0, 0.01, tail))
    volume = bars.volume.copy()
    volume[t + 1 :] = rng.uniform(1, 5000, tail)
    labels = bars.regime_label.copy()
    labels[t + 1 :] = rng.integers(0, 4, tail)
    return dataclasses.replace(bars, open=open_, high=high, low=low, close=close, volume=volume, regime_label=labels)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    bars = generate_bars("complex_regimes", n_bars=6_000, seed=7)
    path = tmp_path_factory.mktemp("la") / "orig.h5"
    return bars, str(build_market_file(bars, path))


@pytest.mark.parametrize("offset", [0, 3, 5, 250])  # t at, inside and at the end of a 30-minute bucket
def test_features_and_observations_ignore_the_future(original, tmp_path, offset):
    bars, orig_path = original
    with h5py.File(orig_path, "r") as f:
        first_valid = int(f.attrs["first_valid"])
        # pick t so that its bucket position varies with offset
        t = first_valid + 200 + offset
        visible = int(f["base/htf_visible"][t])
        orig = {k: f[f"features/{k}"][:] for k in ("regime", "structure", "tactical")}
    changed = _perturb_after(bars, t, seed=offset)
    changed_path = str(build_market_file(changed, tmp_path / "changed.h5"))
    with h5py.File(changed_path, "r") as f:
        assert int(f.attrs["first_valid"]) == first_valid
        new = {k: f[f"features/{k}"][:] for k in ("regime", "structure", "tactical")}
        assert not np.array_equal(new["tactical"][t + 1 :], orig["tactical"][t + 1 :])
    np.testing.assert_array_equal(new["tactical"][: t + 1], orig["tactical"][: t + 1])
    np.testing.assert_array_equal(new["regime"][:visible], orig["regime"][:visible])
    np.testing.assert_array_equal(new["structure"][:visible], orig["structure"][:visible])

    # observations and state along the same actions from the start of train up to bar t
    envs = [algospace_market.parallel_env(data=p, random_start=False, episode_length=0) for p in (orig_path, changed_path)]
    obs = [e.reset(seed=0)[0] for e in envs]
    rng = np.random.default_rng(offset)
    while True:
        for agent in obs[0]:
            np.testing.assert_array_equal(obs[0][agent], obs[1][agent])
        np.testing.assert_array_equal(envs[0].state(), envs[1].state())
        if envs[0].bar_index >= t:
            break
        actions = {a: int(rng.integers(envs[0].action_space(a).n)) for a in envs[0].agents}
        obs = [e.step(actions)[0] for e in envs]
    assert envs[0].bar_index == t


def test_input_statistics_see_only_the_train_split(original, tmp_path):
    """The stored feature statistics (what models scale their inputs by) are
    the train split's alone: changing every bar after the train split leaves
    them bit-identical, and they equal a recomputation over rows the train
    split can see."""
    from envs.data.reader import MarketData
    from envs.data.store import MATRICES, column_stats, train_stats_rows
    from envs.market.env import input_statistics, team_input_scaling

    bars, orig_path = original
    with h5py.File(orig_path, "r") as f:
        train_stop = int(f.attrs["split_bounds"][0][1])
        visible = f["base/htf_visible"][:]
        stored = {}
        for name in MATRICES:
            ds = f[f"features/{name}"]
            lo, hi = (int(v) for v in ds.attrs["train_rows"])
            assert (lo, hi) == train_stats_rows(name, int(ds.attrs["warmup"]), train_stop, visible)
            # no row past what the last train bar sees
            assert hi == (train_stop if MATRICES[name][2] == "base" else int(visible[train_stop - 1]))
            mean, std = column_stats(ds[lo:hi])
            np.testing.assert_array_equal(ds.attrs["train_mean"], mean)
            np.testing.assert_array_equal(ds.attrs["train_std"], std)
            stored[name] = (ds.attrs["train_mean"].copy(), ds.attrs["train_std"].copy())
    changed = _perturb_after(bars, train_stop - 1, seed=11)
    changed_path = str(build_market_file(changed, tmp_path / "changed_after_train.h5"))
    with h5py.File(changed_path, "r") as f:
        assert int(f.attrs["split_bounds"][0][1]) == train_stop
        assert not np.array_equal(f["features/tactical"][train_stop:], h5py.File(orig_path, "r")["features/tactical"][train_stop:])
        for name in MATRICES:
            np.testing.assert_array_equal(f[f"features/{name}"].attrs["train_mean"], stored[name][0])
            np.testing.assert_array_equal(f[f"features/{name}"].attrs["train_std"], stored[name][1])
    a, b = MarketData(orig_path), MarketData(changed_path)
    for x, y in zip(team_input_scaling(input_statistics(a)), team_input_scaling(input_statistics(b))):
        np.testing.assert_array_equal(x, y)
    a.close()
    b.close()
