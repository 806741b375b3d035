"""Synthetic regime-switching market with ground-truth regime labels.

The process
-----------
1. **Regime chain.** A semi-Markov chain over the four regimes of
   ``REGIME_NAMES`` (trending, ranging, volatile, transition). The next regime is
   drawn from an embedded jump matrix (zero diagonal: a spell always changes
   regime); a spell's length in bars is Gamma distributed with a per-regime mean
   and shape, floored at a per-regime minimum. Real regimes last hundreds to a
   few thousand 5-minute bars; transition spells are short and the jump matrix
   puts them mostly *between* the other regimes.
2. **Per-spell dynamics** of the log price, simulated on ``substeps`` sub-steps
   per bar:

   * trending: persistent drift, its sign drawn per spell (magnitude
     ``trend_drift`` times a random factor), moderate volatility;
   * ranging: Ornstein-Uhlenbeck mean reversion of the log price around the level
     at which the spell started, low volatility, no drift;
   * volatile: high volatility with Student-t innovations (fat tails), a small
     random drift;
   * transition: the drift moves linearly from the previous spell's drift to the
     next spell's drift (a trend decays, or flips into the next trend), moderate
     volatility.

   On top: optional volatility-of-volatility (a persistent log-normal multiplier
   on all volatilities), optional Poisson jumps, a mild intraday volatility
   seasonality and a small random gap after each weekend.
3. **Bars.** Each bar is built from its sub-step path: open = previous close
   (plus the weekend gap on the first bar after a weekend), close = last
   sub-step, high / low = extremes of the open and all sub-steps, so OHLC is
   always consistent and every price is positive.
4. **Volume** = base volume x U-shaped intraday seasonality (heavy at the start
   and end of the UTC day, light at midday) x a per-regime multiplier (heavy in
   volatile regimes) x (1 + beta |bar return| / reference vol) x log-normal
   noise, rounded to whole units (at least 1).
5. **Clock.** Bars every ``freq_seconds`` from ``start`` (UTC midnight unless a
   time is given), 24 hours a day on weekdays; Saturday and Sunday are skipped,
   so weekend gaps exist in the timestamps. Timestamps are bar *open* times,
   int64 epoch seconds.

All volatilities, drifts and mean-reversion speeds are given per 5-minute bar
(``REFERENCE_FREQ_SECONDS``); for another ``freq_seconds`` drifts, jump
intensities and mean-reversion speeds scale linearly with the bar length and
volatilities with its square root, so annualised figures stay similar. Regime
durations and the vol-of-vol persistence are in *bars* and do not scale.

Everything is vectorised with numpy (Python loops run over regime spells and
over long chunks of the series, never over bars). One ``np.random.default_rng``
drives everything: the same preset, ``n_bars`` and ``seed`` give bit-identical
arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.data.bars import REGIME_NAMES, Bars

TRENDING, RANGING, VOLATILE, TRANSITION = range(4)
assert REGIME_NAMES == ("trending", "ranging", "volatile", "transition")

REFERENCE_FREQ_SECONDS = 300
SECONDS_PER_DAY = 86_400
WEEKDAYS_PER_YEAR = 261  # 52.2 weeks x 5 days: the 24h weekday clock of this market

Quad = tuple[float, float, float, float]


@dataclass(frozen=True)
class SyntheticPreset:
    """All parameters of the synthetic market. Tuples of four are indexed by
    regime code (trending, ranging, volatile, transition). "Per bar" means per
    5-minute bar; see the module docstring for how other bar lengths scale.

    Attributes:
        description: one line for people.
        jump_matrix: 4x4 rows of probabilities of the *next* regime when a spell
            of the row's regime ends; the diagonal must be 0, rows sum to 1.
        mean_duration: mean spell length in bars per regime.
        duration_shape: Gamma shape of the spell length per regime (1 is
            exponential/geometric; larger is more regular).
        min_duration: shortest spell in bars per regime.
        vol: per-bar standard deviation of log returns per regime (before the
            vol-of-vol and intraday multipliers, which both average about 1).
        tail_df: Student-t degrees of freedom of the innovations per regime
            (``inf`` = Gaussian); innovations are scaled to unit variance, so
            ``vol`` stays the standard deviation. Must be > 2.
        trend_drift: per-bar log drift of a trending spell; its sign is a coin
            flip per spell and its magnitude is multiplied by
            U(1 - trend_drift_spread, 1 + trend_drift_spread).
        trend_drift_spread: relative spread of the trend magnitude, in [0, 1).
        volatile_drift: per-bar drift scale of volatile spells: drift ~ N(0, this).
        range_reversion: per-bar mean-reversion speed (kappa) of the log price
            towards the ranging spell's entry level; half-life is ln 2 / kappa bars.
        vol_of_vol: standard deviation of the log volatility multiplier (0 = off).
        vol_of_vol_halflife: half-life in bars of that log multiplier (AR(1)).
        jump_rate: probability of a price jump per bar (0 = off).
        jump_size: standard deviation of the log jump.
        weekend_gap: standard deviation of the log gap between Friday's last
            close and Monday's first open (0 = open equals previous close).
        intraday_vol_amplitude: amplitude A of the volatility seasonality
            ``1 + A (3 (2f - 1)^2 - 1)`` over the fraction f of the UTC day
            (mean 1; 1 + 2A at the day's edges, 1 - A at noon).
        volume_base: mean volume of a 5-minute bar in a ranging regime at
            average time of day.
        volume_intraday_amplitude: amplitude of the same U-shape for volume.
        volume_regime_mult: volume multiplier per regime.
        volume_return_beta: extra volume per unit of |bar return| / ``vol[ranging]``.
        volume_noise: standard deviation of the log-normal volume noise.
        substeps: sub-steps per bar used to build OHLC (6-10 is plenty).
        initial_price: price at the first open.
    """

    description: str
    jump_matrix: tuple[Quad, Quad, Quad, Quad]
    mean_duration: Quad
    duration_shape: Quad
    min_duration: Quad
    vol: Quad
    tail_df: Quad
    trend_drift: float
    trend_drift_spread: float
    volatile_drift: float
    range_reversion: float
    vol_of_vol: float
    vol_of_vol_halflife: float
    jump_rate: float
    jump_size: float
    weekend_gap: float
    intraday_vol_amplitude: float
    volume_base: float
    volume_intraday_amplitude: float
    volume_regime_mult: Quad
    volume_return_beta: float
    volume_noise: float
    substeps: int = 8
    initial_price: float = 100.0

    def __post_init__(self) -> None:
        jm = np.asarray(self.jump_matrix, dtype=float)
        if jm.shape != (4, 4) or (jm < 0).any() or not np.allclose(jm.sum(1), 1.0):
            raise ValueError("jump_matrix must be 4x4 with non-negative rows summing to 1")
        if np.any(np.diag(jm) != 0):
            raise ValueError("jump_matrix must have a zero diagonal")
        for name in ("mean_duration", "duration_shape", "min_duration", "vol",
                     "tail_df", "volume_regime_mult"):
            vals = np.asarray(getattr(self, name), dtype=float)
            if vals.shape != (4,) or not (vals > 0).all():
                raise ValueError(f"{name} must be four positive numbers")
        if not (np.asarray(self.tail_df) > 2).all():
            raise ValueError("tail_df must be > 2 (finite variance)")
        if not 0 <= self.trend_drift_spread < 1:
            raise ValueError("trend_drift_spread must be in [0, 1)")
        if not (0 <= self.jump_rate <= 1 and self.substeps >= 1 and self.initial_price > 0):
            raise ValueError("jump_rate must be in [0, 1], substeps >= 1, initial_price > 0")
        if not (0 <= self.intraday_vol_amplitude < 1 and 0 <= self.volume_intraday_amplitude < 1):
            raise ValueError("intraday amplitudes must be in [0, 1)")

    def occupancy(self) -> np.ndarray:
        """Long-run fraction of bars per regime (jump-chain stationary
        distribution weighted by mean spell length; ignores ``min_duration``)."""
        jm = np.asarray(self.jump_matrix, dtype=float)
        w, v = np.linalg.eig(jm.T)
        pi = np.real(v[:, np.argmin(np.abs(w - 1))])
        occ = pi / pi.sum() * np.asarray(self.mean_duration)
        return occ / occ.sum()


_INF = float("inf")

PRESETS: dict[str, SyntheticPreset] = {
    "simple_markets": SyntheticPreset(
        description="long persistent regimes, clear trends, mostly trending/ranging",
        jump_matrix=(
            (0.00, 0.35, 0.05, 0.60),   # trending -> mostly via a transition
            (0.45, 0.00, 0.05, 0.50),   # ranging
            (0.25, 0.25, 0.00, 0.50),   # volatile
            (0.60, 0.32, 0.08, 0.00),   # transition -> a real regime
        ),
        mean_duration=(1800.0, 1400.0, 400.0, 120.0),
        duration_shape=(3.0, 3.0, 2.0, 3.0),
        min_duration=(300.0, 250.0, 100.0, 24.0),
        vol=(0.00050, 0.00030, 0.00110, 0.00055),
        tail_df=(_INF, _INF, 4.0, _INF),
        trend_drift=0.000022,
        trend_drift_spread=0.4,
        volatile_drift=0.000005,
        range_reversion=0.01,
        vol_of_vol=0.0,
        vol_of_vol_halflife=200.0,
        jump_rate=0.0,
        jump_size=0.0,
        weekend_gap=0.001,
        intraday_vol_amplitude=0.15,
        volume_base=1000.0,
        volume_intraday_amplitude=0.5,
        volume_regime_mult=(1.2, 1.0, 2.0, 1.3),
        volume_return_beta=0.5,
        volume_noise=0.3,
    ),
    "moderate_volatility": SyntheticPreset(
        description="more and longer volatile spells, weaker trends, some vol clustering",
        jump_matrix=(
            (0.00, 0.30, 0.20, 0.50),
            (0.35, 0.00, 0.25, 0.40),
            (0.25, 0.25, 0.00, 0.50),
            (0.45, 0.30, 0.25, 0.00),
        ),
        mean_duration=(1000.0, 900.0, 700.0, 100.0),
        duration_shape=(2.5, 2.5, 2.0, 2.5),
        min_duration=(150.0, 150.0, 100.0, 20.0),
        vol=(0.00060, 0.00040, 0.00150, 0.00070),
        tail_df=(8.0, _INF, 3.5, 6.0),
        trend_drift=0.000018,
        trend_drift_spread=0.5,
        volatile_drift=0.00001,
        range_reversion=0.008,
        vol_of_vol=0.2,
        vol_of_vol_halflife=150.0,
        jump_rate=0.0002,
        jump_size=0.003,
        weekend_gap=0.002,
        intraday_vol_amplitude=0.2,
        volume_base=1000.0,
        volume_intraday_amplitude=0.5,
        volume_regime_mult=(1.2, 1.0, 2.2, 1.4),
        volume_return_beta=0.5,
        volume_noise=0.35,
    ),
    "complex_regimes": SyntheticPreset(
        description="short spells of all four regimes, weak drift, vol-of-vol, jumps",
        jump_matrix=(
            (0.00, 0.30, 0.30, 0.40),
            (0.30, 0.00, 0.30, 0.40),
            (0.30, 0.30, 0.00, 0.40),
            (0.35, 0.35, 0.30, 0.00),
        ),
        mean_duration=(350.0, 300.0, 300.0, 80.0),
        duration_shape=(1.5, 1.5, 1.5, 2.0),
        min_duration=(60.0, 60.0, 50.0, 12.0),
        vol=(0.00060, 0.00040, 0.00160, 0.00080),
        tail_df=(5.0, 6.0, 3.0, 4.0),
        trend_drift=0.00001,
        trend_drift_spread=0.6,
        volatile_drift=0.00002,
        range_reversion=0.006,
        vol_of_vol=0.45,
        vol_of_vol_halflife=100.0,
        jump_rate=0.0008,
        jump_size=0.004,
        weekend_gap=0.003,
        intraday_vol_amplitude=0.25,
        volume_base=1000.0,
        volume_intraday_amplitude=0.5,
        volume_regime_mult=(1.2, 1.0, 2.5, 1.5),
        volume_return_beta=0.8,
        volume_noise=0.4,
    ),
}

DEFAULT_PRESET = "simple_markets"


# --------------------------------------------------------------------------- helpers


def _ar1(u: np.ndarray, phi: float) -> np.ndarray:
    """y[k] = phi * y[k-1] + u[k] with y[-1] = 0, vectorised.

    Within a chunk y[k] = phi^k * (phi y_prev + cumsum(u[j] phi^-j)); chunks are
    short enough that phi^-j stays far from overflow, and the error of the
    scaled cumsum at k is ~eps * |u| / (1 - phi), so this is numerically stable.
    """
    n = len(u)
    y = np.empty(n, dtype=np.float64)
    if n == 0:
        return y
    if phi <= 0.0:
        y[:] = u
        return y
    rate = -np.log(phi)
    block = n if rate == 0 else max(1, min(n, int(50.0 / rate)))
    powers = phi ** np.arange(block, dtype=np.float64)
    inv_powers = 1.0 / powers
    prev = 0.0
    for s in range(0, n, block):
        e = min(n, s + block)
        m = e - s
        acc = np.cumsum(u[s:e] * inv_powers[:m])
        acc += phi * prev
        y[s:e] = powers[:m] * acc
        prev = y[e - 1]
    return y


def _weekday_timestamps(n: int, freq: int, start: str) -> np.ndarray:
    """The first ``n`` bar open times from ``start`` on, skipping Sat/Sun UTC."""
    try:
        t0 = int(np.datetime64(start, "s").astype(np.int64))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"start must be an ISO date or datetime, got {start!r}") from exc
    out: list[np.ndarray] = []
    have = 0
    k0 = 0
    while have < n:
        count = int((n - have) * 7 / 5) + 3 * SECONDS_PER_DAY // freq + 16
        ts = t0 + (k0 + np.arange(count, dtype=np.int64)) * freq
        k0 += count
        weekday = (ts // SECONDS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        ts = ts[weekday < 5]
        out.append(ts[: n - have])
        have += len(out[-1])
    return np.concatenate(out)


def _u_shape(frac_of_day: np.ndarray, amplitude: float) -> np.ndarray:
    """1 + A (3 (2f - 1)^2 - 1): mean 1 over the day, high at its edges."""
    return 1.0 + amplitude * (3.0 * (2.0 * frac_of_day - 1.0) ** 2 - 1.0)


def _draw_spells(p: SyntheticPreset, n: int, rng: np.random.Generator):
    """Regime, start bar and length of each spell covering ``n`` bars."""
    jm = np.asarray(p.jump_matrix, dtype=float)
    cum = np.cumsum(jm, axis=1)
    mean = np.asarray(p.mean_duration, dtype=float)
    shape = np.asarray(p.duration_shape, dtype=float)
    mind = np.asarray(p.min_duration, dtype=float)
    regime = int(rng.choice(4, p=p.occupancy()))
    regimes: list[int] = []
    lengths: list[int] = []
    total = 0
    first = True
    while total < n:
        d = rng.gamma(shape[regime], mean[regime] / shape[regime])
        length = int(max(mind[regime], round(d)))
        if first:  # start somewhere inside the first spell
            length = max(1, int(round(length * rng.uniform(0.2, 1.0))))
            first = False
        regimes.append(regime)
        lengths.append(length)
        total += length
        regime = int(np.searchsorted(cum[regime], rng.uniform() * cum[regime, -1], side="right"))
        regime = min(regime, 3)
    reg = np.asarray(regimes, dtype=np.int8)
    lens = np.asarray(lengths, dtype=np.int64)
    lens[-1] -= total - n
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    return reg, starts, lens


# --------------------------------------------------------------------------- main


def generate_bars(
    preset: str = DEFAULT_PRESET,
    n_bars: int = 60_000,
    seed: int = 0,
    freq_seconds: int = 300,
    start: str = "2021-01-04",
) -> Bars:
    """Generate ``n_bars`` synthetic OHLCV bars with ground-truth regime labels.

    ``preset`` is a key of ``PRESETS``. Deterministic in (preset, n_bars, seed,
    freq_seconds, start). ``source`` is ``"synthetic:{preset}:seed={seed}"``.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; valid: {', '.join(sorted(PRESETS))}")
    n = int(n_bars)
    if n < 1:
        raise ValueError(f"n_bars must be >= 1, got {n_bars}")
    freq = int(freq_seconds)
    if freq <= 0 or freq != freq_seconds:
        raise ValueError(f"freq_seconds must be a positive integer, got {freq_seconds}")
    p = PRESETS[preset]
    rng = np.random.default_rng(seed)
    S = int(p.substeps)
    dt = freq / REFERENCE_FREQ_SECONDS  # bar length in 5-minute units
    sqdt = np.sqrt(dt)

    timestamp = _weekday_timestamps(n, freq, start)

    # ---- regime spells and their drifts
    spell_reg, spell_start, spell_len = _draw_spells(p, n, rng)
    n_spells = len(spell_reg)
    sign = np.where(rng.uniform(size=n_spells) < 0.5, -1.0, 1.0)
    mag = p.trend_drift * rng.uniform(1 - p.trend_drift_spread, 1 + p.trend_drift_spread, n_spells)
    vdrift = p.volatile_drift * rng.standard_normal(n_spells)
    drift = np.zeros(n_spells)
    drift[spell_reg == TRENDING] = (sign * mag)[spell_reg == TRENDING]
    drift[spell_reg == VOLATILE] = vdrift[spell_reg == VOLATILE]
    drift_from = drift.copy()
    drift_to = drift.copy()
    trans = np.flatnonzero(spell_reg == TRANSITION)
    # a transition ramps from the previous spell's drift to the next one's
    drift_from[trans] = np.where(trans > 0, drift[np.maximum(trans - 1, 0)], 0.0)
    drift_to[trans] = np.where(trans + 1 < n_spells, drift[np.minimum(trans + 1, n_spells - 1)], 0.0)

    spell_id = np.repeat(np.arange(n_spells), spell_len)
    regime = spell_reg[spell_id]
    pos = np.arange(n) - spell_start[spell_id]
    ramp = (pos + 0.5) / spell_len[spell_id]
    mu_bar = (drift_from[spell_id] + (drift_to - drift_from)[spell_id] * ramp) * dt

    # ---- volatility per bar: regime level x vol-of-vol x intraday season
    sigma_bar = np.asarray(p.vol)[regime] * sqdt
    if p.vol_of_vol > 0:
        rho = 0.5 ** (1.0 / p.vol_of_vol_halflife)
        h = _ar1(np.sqrt(1 - rho * rho) * rng.standard_normal(n), rho)
        h += rho ** np.arange(1, n + 1) * rng.standard_normal()  # stationary start
        sigma_bar = sigma_bar * np.exp(p.vol_of_vol * h - 0.5 * p.vol_of_vol ** 2)
    frac = ((timestamp + freq / 2.0) % SECONDS_PER_DAY) / SECONDS_PER_DAY
    intraday = freq < SECONDS_PER_DAY
    if intraday:
        sigma_bar = sigma_bar * _u_shape(frac, p.intraday_vol_amplitude)

    # ---- sub-step innovations (unit variance; Student-t where the regime asks)
    z = rng.standard_normal((n, S))
    for r in range(4):
        df = float(p.tail_df[r])
        if np.isfinite(df):
            rows = regime == r
            k = int(rows.sum())
            if k:
                chi = rng.chisquare(df, (k, S))
                z[rows] *= np.sqrt((df - 2.0) / chi)
    u = z * (sigma_bar / np.sqrt(S))[:, None]
    inc = u + (mu_bar / S)[:, None]

    # ---- ranging: OU deviation from the spell's entry level, reset per spell
    is_rng = regime == RANGING
    if is_rng.any():
        kappa_sub = p.range_reversion * dt / S
        phi = float(np.exp(-kappa_sub))
        flat_u = np.where(is_rng[:, None], u, 0.0).ravel()
        y = _ar1(flat_u, phi)
        sub_spell_start = np.repeat(spell_start[spell_id] * S, S)  # first sub-step of spell
        k_idx = np.arange(n * S)
        before = np.where(sub_spell_start > 0, y[np.maximum(sub_spell_start - 1, 0)], 0.0)
        with np.errstate(under="ignore"):
            d = y - phi ** (k_idx - sub_spell_start + 1.0) * before
        d_prev = np.empty_like(d)
        d_prev[0] = 0.0
        d_prev[1:] = d[:-1]
        d_prev[k_idx == sub_spell_start] = 0.0
        ou_inc = (d - d_prev).reshape(n, S)
        inc[is_rng] = ou_inc[is_rng]

    # ---- jumps at a random sub-step
    if p.jump_rate > 0 and p.jump_size > 0:
        hit = rng.uniform(size=n) < min(1.0, p.jump_rate * dt)
        where = rng.integers(0, S, n)
        size = p.jump_size * rng.standard_normal(n)
        rows = np.flatnonzero(hit)
        inc[rows, where[rows]] += size[rows]

    # ---- weekend (and any other clock) gaps between close and next open
    gap = np.zeros(n)
    if p.weekend_gap > 0 and n > 1:
        after_gap = np.flatnonzero(np.diff(timestamp) > freq) + 1
        gap[after_gap] = p.weekend_gap * rng.standard_normal(len(after_gap))
    offset = np.cumsum(gap)

    # ---- build OHLC from the sub-step path (prices, so consistency is exact)
    path = np.cumsum(inc.ravel()).reshape(n, S)
    log = np.empty((n, S + 1))
    log[:, 1:] = path + offset[:, None]
    log[0, 0] = offset[0]
    log[1:, 0] = path[:-1, -1] + offset[1:]
    prices = p.initial_price * np.exp(log)
    open_ = prices[:, 0]
    close = prices[:, -1]
    high = prices.max(axis=1)
    low = prices.min(axis=1)

    # ---- volume
    bar_ret = np.abs(log[:, -1] - log[:, 0])
    ref = p.vol[RANGING] * sqdt
    season = _u_shape(frac, p.volume_intraday_amplitude) if intraday else np.ones(n)
    noise = np.exp(p.volume_noise * rng.standard_normal(n) - 0.5 * p.volume_noise ** 2)
    volume = (p.volume_base * dt * season * np.asarray(p.volume_regime_mult)[regime]
              * (1.0 + p.volume_return_beta * bar_ret / ref) * noise)
    volume = np.maximum(1.0, np.round(volume))

    return Bars(
        timestamp=timestamp,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        freq_seconds=freq,
        regime_label=regime.astype(np.int8),
        has_volume=True,
        source=f"synthetic:{preset}:seed={seed}",
    )


def bars_per_year(freq_seconds: int) -> float:
    """Bars in a year of this market's 24h weekday clock (for annualising)."""
    return WEEKDAYS_PER_YEAR * SECONDS_PER_DAY / float(freq_seconds)


__all__ = ["PRESETS", "DEFAULT_PRESET", "SyntheticPreset", "generate_bars", "bars_per_year"]
