"""Bootstrap intervals of Sharpe ratios and the deflated Sharpe ratio (numpy only, no Ray)."""
import math

import numpy as np
import pytest

from rllib_algospace.evaluation import stats


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _ar1(rng, n: int, phi: float, size: int | None = None) -> np.ndarray:
    """Stationary AR(1) with unit innovations (``size`` series at once)."""
    shape = (n,) if size is None else (size, n)
    e = rng.normal(size=shape)
    x = np.empty(shape)
    x[..., 0] = e[..., 0] / math.sqrt(1.0 - phi * phi)
    for t in range(1, n):
        x[..., t] = phi * x[..., t - 1] + e[..., t]
    return x


# -- resampling plans ----------------------------------------------------------------------
@pytest.mark.parametrize("method", stats.METHODS)
def test_indices_are_valid_and_seeded(method):
    a = stats.bootstrap_indices(50, 20, method=method, block_length=5, seed=3)
    b = stats.bootstrap_indices(50, 20, method=method, block_length=5, seed=3)
    assert a.shape == (20, 50) and a.min() >= 0 and a.max() < 50
    assert np.array_equal(a, b)
    assert not np.array_equal(a, stats.bootstrap_indices(50, 20, method=method, block_length=5, seed=4))


def test_block_structure():
    idx = stats.bootstrap_indices(200, 50, method="circular", block_length=8, seed=0)
    steps = (np.diff(idx, axis=1) % 200) == 1
    # inside each fixed block of 8 the indices run on (wrapping at the end)
    for k in range(0, 192, 8):
        assert steps[:, k : k + 7].all()
    st = stats.bootstrap_indices(2000, 200, method="stationary", block_length=10, seed=0)
    continues = (np.diff(st, axis=1) % 2000) == 1
    # a new block starts with probability 1/L (a new random start can continue by chance: ~1/n)
    assert abs((1.0 - continues.mean()) - 0.1) < 0.01
    assert stats.default_block_length(1670) == 12 and stats.default_block_length(1) == 1


def test_sharpe_matches_the_project_metric():
    from rllib_algospace.evaluation.metrics import trading_metrics

    rng = np.random.default_rng(0)
    r = rng.normal(1e-4, 1e-3, 500)
    equity = 100.0 * np.r_[1.0, np.cumprod(1.0 + r)]
    assert stats.sharpe_ratio(r, 252) == pytest.approx(trading_metrics(equity, 252)["sharpe"], rel=1e-9)
    assert stats.sharpe_ratio(np.zeros(10)) == 0.0


# -- intervals -------------------------------------------------------------------------------
def test_block_bootstrap_is_wider_than_iid_on_an_ar1_series():
    rng = np.random.default_rng(1)
    r = 0.05 + _ar1(rng, 2000, 0.6)
    iid = stats.sharpe_ci(r, method="iid", n_boot=500, seed=0)
    for method in ("stationary", "circular"):
        block = stats.sharpe_ci(r, method=method, n_boot=500, seed=0)
        # AR(1) with phi=0.6: the long-run variance is (1+phi)/(1-phi) = 4 times the iid one
        assert (block.high - block.low) > 1.5 * (iid.high - iid.low)
        assert block.estimate == iid.estimate == pytest.approx(stats.sharpe_ratio(r))
    # on iid data both agree roughly
    w = rng.normal(0.05, 1.0, 2000)
    a, b = stats.sharpe_ci(w, method="iid", n_boot=500), stats.sharpe_ci(w, n_boot=500)
    assert 0.7 < (b.high - b.low) / (a.high - a.low) < 1.4


def test_intervals_cover_the_true_sharpe_at_about_the_nominal_rate():
    """Small Monte Carlo: 150 AR(1) series with a known Sharpe ratio (mean /
    stationary std), 90% stationary-bootstrap intervals."""
    rng = np.random.default_rng(7)
    phi, n, reps, true = 0.3, 500, 150, 0.1
    sd = 1.0 / math.sqrt(1.0 - phi * phi)
    series = true * sd + _ar1(rng, n, phi, size=reps)
    cover = [stats.sharpe_ci(series[i], level=0.9, n_boot=300, seed=i).contains(true) for i in range(reps)]
    rate = float(np.mean(cover))
    # nominal 0.90; Monte Carlo s.e. ~0.025 and percentile intervals run slightly narrow in small samples
    assert 0.80 <= rate <= 0.97, rate
    # the iid bootstrap under-covers on the same dependent series
    iid = float(np.mean([stats.sharpe_ci(series[i], level=0.9, n_boot=300, seed=i, method="iid").contains(true) for i in range(reps)]))
    assert iid < rate


def test_paired_difference():
    rng = np.random.default_rng(2)
    market = 0.01 * _ar1(rng, 1500, 0.2)
    a = market + rng.normal(0.002, 0.002, 1500)
    b = market + rng.normal(0.0, 0.002, 1500)
    paired = stats.sharpe_difference_ci(a, b, n_boot=400, seed=0)
    assert paired.estimate == pytest.approx(stats.sharpe_ratio(a) - stats.sharpe_ratio(b))
    assert paired.low <= paired.estimate <= paired.high
    # the common market component cancels: far narrower than resampling the two independently
    ia = stats.sharpe_ci(a, n_boot=400, seed=1)
    ib = stats.sharpe_ci(b, n_boot=400, seed=2)
    assert (paired.high - paired.low) < 0.5 * math.hypot(ia.high - ia.low, ib.high - ib.low)
    # a real edge (0.2 per-step s.d. units) is detected; a series against itself is exactly 0
    assert paired.low > 0 and paired.p_value < 0.05
    same = stats.sharpe_difference_ci(a, a, n_boot=100)
    assert same.low == same.high == same.estimate == 0.0
    with pytest.raises(ValueError):
        stats.sharpe_difference_ci(a, b[:-1])
    # the same plan gives the same samples: difference of the two plain intervals' draws
    plan = stats.bootstrap_indices(1500, 200, seed=5)
    d = stats.sharpe_difference_ci(a, b, indices=plan)
    sa, sb = stats.sharpe_ci(a, indices=plan), stats.sharpe_ci(b, indices=plan)
    assert d.n_boot == sa.n_boot == sb.n_boot == 200


# -- probabilistic and deflated Sharpe ratios -------------------------------------------------------
def test_psr_hand_computed():
    # SR 0.1 over 101 normal returns: z = 0.1 * 10 / sqrt(1 + 0.5 * 0.01)
    assert stats.probabilistic_sharpe_ratio(0.1, 101) == pytest.approx(_phi(1.0 / math.sqrt(1.005)), abs=1e-12)
    assert stats.probabilistic_sharpe_ratio(0.1, 101) == pytest.approx(0.84073, abs=1e-4)
    # negative skew and fat tails widen the estimator: lower PSR
    assert stats.probabilistic_sharpe_ratio(0.1, 101, skew=-1.0, kurtosis=6.0) < stats.probabilistic_sharpe_ratio(0.1, 101)
    assert stats.probabilistic_sharpe_ratio(0.0, 500) == pytest.approx(0.5)


def test_expected_max_sharpe_hand_computed():
    # N = 10, V = 1: (1 - g) * z(0.9) + g * z(1 - 1/(10 e))
    g = 0.5772156649015329
    expected = (1 - g) * 1.28155 + g * 1.78924  # z(0.9), z(0.963212) from a normal table
    assert stats.expected_max_sharpe(10, 1.0) == pytest.approx(expected, abs=1e-4)
    assert stats.expected_max_sharpe(10, 1.0) == pytest.approx(1.5745, abs=1e-3)
    assert stats.expected_max_sharpe(10, 4.0) == pytest.approx(2 * stats.expected_max_sharpe(10, 1.0))
    assert stats.expected_max_sharpe(1, 1.0) == 0.0


def test_deflated_sharpe_paper_example():
    """Bailey & López de Prado (2014), the numerical example: annualised SR 2.5
    of the best of N = 100 trials, 1250 daily returns (250 a year), variance of
    the trials' annualised Sharpe 0.5, skewness -3, kurtosis 10 -> SR0 = 0.1132
    per day and DSR = 0.9004."""
    out = stats.deflated_sharpe_ratio(2.5 / math.sqrt(250), 1250, 100, trials_sharpe_variance=0.5 / 250, skew=-3.0, kurtosis=10.0)
    assert out["sr0"] == pytest.approx(0.1132, abs=1e-4)
    assert out["dsr"] == pytest.approx(0.9004, abs=1e-3)


def test_deflated_sharpe_falls_with_more_trials_and_is_psr_for_one():
    sr, n = 0.08, 1000
    for skew, kurt in ((0.0, 3.0), (-0.5, 5.0)):
        psr = stats.probabilistic_sharpe_ratio(sr, n, skew=skew, kurtosis=kurt)
        one = stats.deflated_sharpe_ratio(sr, n, 1, trials_sharpe_variance=0.001, skew=skew, kurtosis=kurt)
        # N = 1: nothing was selected, SR0 = 0 and DSR is the PSR formula
        z = sr * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr * sr)
        assert one["dsr"] == one["psr"] == pytest.approx(psr) == pytest.approx(_phi(z))
        values = [stats.deflated_sharpe_ratio(sr, n, k, trials_sharpe_variance=0.001, skew=skew, kurtosis=kurt)["dsr"] for k in (1, 2, 5, 10, 100, 1000)]
        assert all(a > b for a, b in zip(values, values[1:]))
    # more dispersed trials -> a higher bar
    lo = stats.deflated_sharpe_ratio(sr, n, 20, trials_sharpe_variance=0.0005)["dsr"]
    hi = stats.deflated_sharpe_ratio(sr, n, 20, trials_sharpe_variance=0.002)["dsr"]
    assert hi < lo
    # no variance known: the null variance of the estimator, ~1/(T-1)
    null = stats.deflated_sharpe_ratio(sr, n, 20)
    assert null["trials_sharpe_variance"] == pytest.approx(1.0 / (n - 1))


def test_moments_of_returns():
    rng = np.random.default_rng(3)
    r = rng.normal(0.001, 0.01, 20000)
    m = stats.sharpe_moments(r)
    assert m["n"] == 20000 and abs(m["skew"]) < 0.1 and abs(m["kurtosis"] - 3.0) < 0.15
    skewed = rng.exponential(1.0, 20000) - 1.0  # skew 2, kurtosis 9
    m = stats.sharpe_moments(skewed)
    assert m["skew"] == pytest.approx(2.0, abs=0.3) and m["kurtosis"] == pytest.approx(9.0, abs=2.0)
    m = stats.sharpe_moments(r)
    d = stats.deflated_sharpe_of_returns(r, 1)
    assert d["dsr"] == pytest.approx(stats.probabilistic_sharpe_ratio(stats.sharpe_ratio(r), len(r), skew=m["skew"], kurtosis=m["kurtosis"]))
