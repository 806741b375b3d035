"""Significance of Sharpe ratios: block bootstrap confidence intervals and the
deflated Sharpe ratio (numpy and the standard library only; no Ray, no scipy).

Conventions
-----------
* A *return series* is the per-step simple returns of an equity curve
  (``EvaluationRun.step_return``). Its Sharpe ratio is computed exactly as
  :func:`rllib_algospace.evaluation.metrics.trading_metrics` does: ``mean / std(ddof=1)``
  per step, times ``sqrt(periods_per_year)`` (``periods_per_year=1`` gives
  the per-step Sharpe), and 0 when the standard deviation is 0.
* Returns are serially dependent (positions are held for many bars, volatility
  clusters), so resampling single returns (the iid bootstrap) understates the
  uncertainty. The default here is the **stationary bootstrap** of Politis &
  Romano (1994): blocks start at uniformly random positions, have geometric
  lengths with mean ``L``, and wrap around the end of the series (so every
  observation is equally likely to be drawn). ``method="circular"`` is the
  circular block bootstrap (Politis & Romano 1992: fixed blocks of ``L``,
  wrapped); ``method="iid"`` the plain bootstrap (for comparison).
* Block length rule (:func:`default_block_length`): ``L = max(1, round(n ** (1/3)))``,
  the rate-optimal order ``n^(1/3)`` for variance-type statistics (Hall,
  Horowitz & Jing 1995; Politis & White 2004) with the constant set to 1.
  Pass ``block_length`` to override.
* Intervals are percentile intervals of the bootstrap distribution, seeded
  (``seed``): the same inputs give the same interval.
* Paired differences resample the *same* indices for both series (they are
  aligned step by step, e.g. a candidate and buy-and-hold on the same bars),
  so the common market component cancels.

Deflated Sharpe ratio (Bailey & López de Prado 2014, "The Deflated Sharpe
Ratio: Correcting for Selection Bias, Backtest Overfitting and Non-Normality",
Journal of Portfolio Management 40(5)); all Sharpe ratios per step (not
annualised), ``T`` returns, sample skewness ``g3`` and (non-excess) kurtosis
``g4`` of the returns:

* Probabilistic Sharpe ratio (Bailey & López de Prado 2012)::

      PSR(SR*) = Phi( (SR - SR*) * sqrt(T - 1) / sqrt(1 - g3*SR + (g4 - 1)/4 * SR^2) )

* Expected maximum Sharpe of ``N`` independent trials whose Sharpe ratios have
  variance ``V`` (true Sharpe 0; gamma = Euler-Mascheroni constant)::

      SR0 = sqrt(V) * ( (1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)) )

  with ``SR0 = 0`` for ``N = 1`` (nothing was selected).
* ``DSR = PSR(SR0)``: the probability that the true Sharpe ratio exceeds
  what the best of ``N`` skill-less trials would show by luck. For ``N = 1``
  it is ``PSR(0)``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()
METHODS = ("stationary", "circular", "iid")
_CHUNK_ROWS = 128  # bootstrap rows built and evaluated at once


# -- Sharpe ratios ----------------------------------------------------------------
def sharpe_ratio(returns, periods_per_year: float = 1.0) -> float:
    """``mean / std(ddof=1) * sqrt(periods_per_year)``; 0 when std is 0 or fewer than 2 returns."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return 0.0
    std = float(r.std(ddof=1))
    return float(r.mean() / std * math.sqrt(periods_per_year)) if std > 0 else 0.0


def _sharpe_rows(samples: np.ndarray, periods_per_year: float) -> np.ndarray:
    """Sharpe of each row of a ``(B, n)`` matrix (0 where a row's std is 0)."""
    mean = samples.mean(axis=1)
    std = samples.std(axis=1, ddof=1)
    tiny = std <= 1e-15 * np.maximum(1.0, np.abs(mean))
    out = np.zeros(len(samples))
    np.divide(mean, std, out=out, where=~tiny)
    return out * math.sqrt(periods_per_year)


def sharpe_moments(returns) -> dict:
    """Per-step Sharpe, number of returns, skewness and (non-excess) kurtosis
    of ``returns`` (population moments, as Bailey & López de Prado use them)."""
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    sr = sharpe_ratio(r)
    if n < 2:
        return {"sharpe": sr, "n": n, "skew": 0.0, "kurtosis": 3.0}
    d = r - r.mean()
    m2 = float(np.mean(d * d))
    if m2 <= 0:
        return {"sharpe": sr, "n": n, "skew": 0.0, "kurtosis": 3.0}
    return {"sharpe": sr, "n": n, "skew": float(np.mean(d**3) / m2**1.5), "kurtosis": float(np.mean(d**4) / m2**2)}


# -- the block bootstrap --------------------------------------------------------------
def default_block_length(n: int) -> int:
    """``max(1, round(n ** (1/3)))`` (see the module docstring)."""
    return max(1, int(round(n ** (1.0 / 3.0)))) if n > 0 else 1


def bootstrap_indices(n: int, n_boot: int = 1000, *, method: str = "stationary", block_length: float | None = None, seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """A ``(n_boot, n)`` matrix of resampling indices into a series of length ``n``.

    ``stationary``: each step starts a new block with probability ``1 / L``
    (else it continues the block, wrapping from ``n - 1`` to 0); every block
    starts at a uniformly random position. ``circular``: blocks of exactly
    ``L`` from uniformly random starts, wrapped, cut to ``n``. ``iid``:
    uniformly random indices.
    """
    if method not in METHODS:
        raise ValueError(f"unknown bootstrap method {method!r}; use one of {', '.join(METHODS)}")
    if n < 1:
        raise ValueError("cannot bootstrap an empty series")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    length = float(default_block_length(n) if block_length is None else block_length)
    if length < 1:
        raise ValueError(f"block_length must be >= 1, got {block_length}")
    dtype = np.int32 if n < 2**31 else np.int64
    out = np.empty((n_boot, n), dtype=dtype)
    t = np.arange(n)
    for lo in range(0, n_boot, _CHUNK_ROWS):  # bounded temporaries for long series
        rows = min(_CHUNK_ROWS, n_boot - lo)
        if method == "iid" or n == 1:
            out[lo : lo + rows] = rng.integers(0, n, size=(rows, n))
        elif method == "circular":
            size = int(round(length))
            blocks = -(-n // size)
            starts = rng.integers(0, n, size=(rows, blocks))
            out[lo : lo + rows] = (np.repeat(starts, size, axis=1)[:, :n] + np.tile(np.arange(size), blocks)[:n]) % n
        else:
            new_block = rng.random((rows, n)) < 1.0 / length
            new_block[:, 0] = True
            starts = rng.integers(0, n, size=(rows, n))
            # position (within the row) of the step that started the current block
            block_start = np.maximum.accumulate(np.where(new_block, t, 0), axis=1)
            first = np.take_along_axis(starts, block_start, axis=1)
            out[lo : lo + rows] = (first + (t - block_start)) % n
    return out


def _sharpe_draws(series: np.ndarray, idx: np.ndarray, periods_per_year: float) -> np.ndarray:
    """Sharpe of ``series[idx[b]]`` for each bootstrap row ``b``, a chunk of rows at a time."""
    return np.concatenate([_sharpe_rows(series[idx[lo : lo + _CHUNK_ROWS]], periods_per_year) for lo in range(0, len(idx), _CHUNK_ROWS)])


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    level: float
    std_error: float  # standard deviation of the bootstrap distribution
    p_value: float  # two-sided bootstrap p-value of "the statistic is 0" (2 x the smaller tail share)
    n: int
    n_boot: int
    method: str
    block_length: float

    def to_dict(self) -> dict:
        return asdict(self)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def _interval(estimate: float, dist: np.ndarray, level: float, n: int, n_boot: int, method: str, length: float) -> Interval:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(dist, [alpha, 1.0 - alpha])
    below = float(np.mean(dist <= 0.0))
    above = float(np.mean(dist >= 0.0))
    p = min(1.0, 2.0 * min(below, above))
    return Interval(float(estimate), float(low), float(high), float(level), float(dist.std(ddof=1)) if len(dist) > 1 else 0.0, p, int(n), int(n_boot), method, float(length))


def sharpe_ci(
    returns,
    *,
    periods_per_year: float = 1.0,
    level: float = 0.95,
    n_boot: int = 1000,
    method: str = "stationary",
    block_length: float | None = None,
    seed: int | None = 0,
    indices: np.ndarray | None = None,
) -> Interval:
    """Bootstrap percentile interval of the Sharpe ratio of ``returns``
    (annualised by ``periods_per_year``). ``indices`` (from
    :func:`bootstrap_indices`) reuses a resampling plan."""
    r = np.asarray(returns, dtype=np.float64)
    n = len(r)
    length = float(default_block_length(n) if block_length is None else block_length) if method != "iid" else 1.0
    idx = bootstrap_indices(n, n_boot, method=method, block_length=length, seed=seed) if indices is None else indices
    dist = _sharpe_draws(r, idx, periods_per_year)
    return _interval(sharpe_ratio(r, periods_per_year), dist, level, n, len(idx), method, length)


def sharpe_difference_ci(
    returns_a,
    returns_b,
    *,
    periods_per_year: float = 1.0,
    level: float = 0.95,
    n_boot: int = 1000,
    method: str = "stationary",
    block_length: float | None = None,
    seed: int | None = 0,
    indices: np.ndarray | None = None,
) -> Interval:
    """Paired bootstrap interval of ``Sharpe(a) - Sharpe(b)`` for two aligned
    series (same length, step ``i`` of one is step ``i`` of the other): each
    bootstrap sample takes the same indices (the same blocks) from both."""
    a = np.asarray(returns_a, dtype=np.float64)
    b = np.asarray(returns_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired series must have the same length, got {len(a)} and {len(b)}")
    n = len(a)
    length = float(default_block_length(n) if block_length is None else block_length) if method != "iid" else 1.0
    idx = bootstrap_indices(n, n_boot, method=method, block_length=length, seed=seed) if indices is None else indices
    dist = _sharpe_draws(a, idx, periods_per_year) - _sharpe_draws(b, idx, periods_per_year)
    estimate = sharpe_ratio(a, periods_per_year) - sharpe_ratio(b, periods_per_year)
    return _interval(estimate, dist, level, n, len(idx), method, length)


# -- probabilistic and deflated Sharpe ratios ---------------------------------------------
def probabilistic_sharpe_ratio(sharpe: float, n_obs: int, *, skew: float = 0.0, kurtosis: float = 3.0, benchmark: float = 0.0) -> float:
    """PSR: probability that the true per-step Sharpe exceeds ``benchmark``
    given the observed per-step ``sharpe`` over ``n_obs`` returns with the
    given skewness and (non-excess) kurtosis (Bailey & López de Prado 2012)."""
    if n_obs < 2:
        return float("nan")
    var = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if not var > 0:
        return float("nan")
    z = (sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(var)
    return float(_NORMAL.cdf(z))


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum of ``n_trials`` independent per-step Sharpe ratios
    with true value 0 and variance ``sharpe_variance`` (the ``SR0`` of the
    deflated Sharpe ratio); 0 for one trial."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if n_trials == 1 or sharpe_variance <= 0:
        return 0.0
    z1 = _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    z2 = _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2))


def null_sharpe_variance(n_obs: int, sharpe: float = 0.0) -> float:
    """Variance of a per-step Sharpe estimate over ``n_obs`` normal returns,
    ``(1 + SR^2 / 2) / (n_obs - 1)`` (Lo 2002): the stand-in for the variance
    across trials when fewer than two trials' Sharpe ratios are known."""
    return (1.0 + 0.5 * sharpe * sharpe) / max(1, n_obs - 1)


def deflated_sharpe_ratio(
    sharpe: float,
    n_obs: int,
    n_trials: int,
    *,
    trials_sharpe_variance: float | None = None,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> dict:
    """DSR = PSR(SR0) with SR0 = :func:`expected_max_sharpe` (all per step).

    ``trials_sharpe_variance``: the variance of the per-step Sharpe ratios
    of the trials searched; ``None`` uses :func:`null_sharpe_variance`.
    Returns ``dsr``, ``psr`` (= PSR(0)), ``sr0`` and the inputs.
    """
    variance = null_sharpe_variance(n_obs) if trials_sharpe_variance is None or not math.isfinite(trials_sharpe_variance) else float(trials_sharpe_variance)
    sr0 = expected_max_sharpe(n_trials, variance)
    return {
        "dsr": probabilistic_sharpe_ratio(sharpe, n_obs, skew=skew, kurtosis=kurtosis, benchmark=sr0),
        "psr": probabilistic_sharpe_ratio(sharpe, n_obs, skew=skew, kurtosis=kurtosis, benchmark=0.0),
        "sr0": sr0,
        "sharpe": float(sharpe),
        "n_obs": int(n_obs),
        "n_trials": int(n_trials),
        "trials_sharpe_variance": variance,
        "skew": float(skew),
        "kurtosis": float(kurtosis),
    }


def deflated_sharpe_of_returns(returns, n_trials: int, trials_sharpe_variance: float | None = None) -> dict:
    """:func:`deflated_sharpe_ratio` with the Sharpe, length, skewness and
    kurtosis measured on ``returns``."""
    m = sharpe_moments(returns)
    return deflated_sharpe_ratio(m["sharpe"], m["n"], n_trials, trials_sharpe_variance=trials_sharpe_variance, skew=m["skew"], kurtosis=m["kurtosis"])
