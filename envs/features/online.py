# long module: one streaming feature engine (every feature of the three timeframes, bar by bar), kept whole so it reads beside envs/features
"""Incremental features: the batch pipeline's matrices one bar at a time.

``OnlineFeatures`` takes base bars one by one (as a live feed delivers them)
and produces, for each bar, the row of the tactical matrix and, whenever a
higher-timeframe (HTF) bucket closes, the rows of the regime and structure
matrices; it also keeps the observation windows (the newest
``REGIME_WINDOW`` / ``STRUCTURE_WINDOW`` HTF rows and ``TACTICAL_WINDOW`` base
rows). Same definitions, same numbers: every row equals the one
``compute_features(base, aggregate_bars(base, htf_multiple))`` computes for
the same bars (bit for bit where the arithmetic allows it; see below), and
rows before each block's warmup are 0 as in the batch pipeline.

How the state is kept (numpy and plain floats only; no Ray, no pandas):

* **HTF buckets.** Bars are aggregated into clock-aligned buckets of
  ``freq_seconds * htf_multiple`` seconds as ``aggregate_bars`` does. A bucket
  becomes *visible* (its HTF bar is computed and appended) when it has closed
  by the close of the newest bar, the rule of ``htf_visible_count``: either the
  bar that fills its last slot arrives (``timestamp + freq >= bucket end``), or
  a bar of a later bucket arrives (the last slot was missing: a gap). A bucket
  is never seen half-built.
* **Rolling sums** are running prefix sums plus a ring of the last ``w + 1``
  prefix values (``window sum = c[i] - c[i-w]``), exactly the batch helpers'
  arithmetic (``np.cumsum`` is a left-to-right running sum), so the values are
  identical, not merely close. The prefix sums of volume are shifted by the
  first volume seen, as ``rolling_mean_std`` does.
* **EWM / RSI / ATR** are the recursion of pandas ``ewm(alpha, adjust=False)``
  (reproduced operation for operation), one float of state each.
* **Rolling max/min, OLS lines, NW-RQK** use fixed-size windows of the newest
  bars (bounded arrays) with the batch code's order of operations.
* **MLMI** keeps the last ``MLMI_MEMORY`` labelled points (fast RSI, slow RSI,
  label) in a fixed-size window plus the ``MLMI_HORIZON`` newest points whose
  label is not known yet; a point's label ``sign(close[s+H] - close[s])`` is
  filled in when bar ``s+H`` closes; the vote runs the batch code's
  distance/``argpartition`` on that window.
* **LVN** runs the batch volume-profile code on the newest ``LVN_WINDOW`` HTF
  bars (one row).
* **FVG** keeps the list of gaps younger than ``FVG_MAX_AGE`` that are not yet
  mitigated, each with the running min low / max high since it formed.

Every buffer has a fixed size (``buffer_sizes()``), so the cost of a bar does
not depend on how much history came before it.

Precision note: the prefix sums run over the whole feed, as ``np.cumsum`` does
over a whole market file, so their rounding grows (very slowly) with the
length of the feed; for the magnitudes involved (squared log returns, volumes)
this stays many orders of magnitude below the float32 resolution of the
stored features.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from envs.features import (
    FEATURE_CLIP,
    REGIME_FEATURES,
    REGIME_WARMUP,
    REGIME_WINDOW,
    STRUCTURE_FEATURES,
    STRUCTURE_WARMUP,
    STRUCTURE_WINDOW,
    TACTICAL_FEATURES,
    TACTICAL_WARMUP,
    TACTICAL_WINDOW,
)
from envs.features.regime import REGIME_VOL_WINDOW
from envs.features.rolling import TINY
from envs.features.structure import (
    LVN_BINS,
    LVN_WINDOW,
    MLMI_HORIZON,
    MLMI_K,
    MLMI_MEMORY,
    MLMI_RSI_FAST,
    MLMI_RSI_SLOW,
    MLMI_SIGNAL_SPAN,
    MLMI_WARMUP,
    NWRQK_LOOKBACK,
    STRUCTURE_VOL_WINDOW,
    nwrqk_scales,
    rqk_weights,
)
from envs.features.tactical import (
    FVG_ATR_PERIOD,
    FVG_MAX_AGE,
    MOMENTUM_HORIZON,
    TACTICAL_VOL_WINDOW,
    VOLUME_WINDOW,
)

NAN = float("nan")

# HTF rows and base rows that must be visible before every observation window
# holds defined feature rows (the market file's ``first_valid`` rule).
HTF_ROWS_NEEDED = max(REGIME_WARMUP + REGIME_WINDOW, STRUCTURE_WARMUP + STRUCTURE_WINDOW)
BASE_ROWS_NEEDED = TACTICAL_WARMUP + TACTICAL_WINDOW  # bars, i.e. base index >= this - 1


# ----------------------------------------------------------------- helpers
class _Ewm:
    """pandas ``Series.ewm(alpha=alpha, adjust=False).mean()`` as a recursion,
    operation for operation (pandas converts alpha to a centre of mass and
    back, and skips the update when the new value equals the mean)."""

    __slots__ = ("a", "f", "den", "value")

    def __init__(self, alpha: float):
        com = (1.0 - alpha) / alpha
        self.a = 1.0 / (1.0 + com)
        self.f = 1.0 - self.a
        self.den = self.f + self.a
        self.value = None

    def update(self, x: float) -> float:
        w = self.value
        if w is None:
            w = x
        elif w != w:  # NaN so far: start again (never happens with finite inputs)
            w = x
        elif w != x:
            w = (self.f * w + self.a * x) / self.den
        self.value = w
        return w


class _Rsi:
    """Wilder's RSI in [0, 1] (``envs.features.rolling.wilder_rsi``)."""

    __slots__ = ("prev", "gain", "loss")

    def __init__(self, period: int):
        self.prev = None
        self.gain = _Ewm(1.0 / period)
        self.loss = _Ewm(1.0 / period)

    def update(self, x: float) -> float:
        d = 0.0 if self.prev is None else x - self.prev
        self.prev = x
        g = self.gain.update(d if d > 0.0 else 0.0)
        loss = self.loss.update(-d if -d > 0.0 else 0.0)
        tot = g + loss
        return g / tot if tot > 0 else 0.5


class _Prefix:
    """Running prefix sum with a ring of the last ``max_window + 1`` prefix
    values: ``window_sum(w)`` is ``rolling_sum``'s value at the newest element."""

    __slots__ = ("c", "n", "cap", "ring")

    def __init__(self, max_window: int):
        self.c = 0.0
        self.n = 0
        self.cap = max_window + 1
        self.ring = [0.0] * self.cap

    def push(self, x: float) -> None:
        self.c = c = self.c + x if self.n else x  # np.cumsum starts with x[0] itself
        self.ring[self.n % self.cap] = c
        self.n += 1

    def window_sum(self, w: int) -> float:
        i = self.n - 1
        if i < w - 1:
            return NAN
        if i == w - 1:
            return self.c
        return self.c - self.ring[(i - w) % self.cap]


class _MeanStd:
    """``rolling_mean_std(x, window)`` at the newest element (population std),
    on prefix sums of ``x - x[0]`` like the batch helper."""

    __slots__ = ("w", "x0", "s1", "s2")

    def __init__(self, window: int):
        self.w = window
        self.x0 = None
        self.s1 = _Prefix(window)
        self.s2 = _Prefix(window)

    def push(self, x: float) -> None:
        if self.x0 is None:
            self.x0 = x
        y = x - self.x0
        self.s1.push(y)
        self.s2.push(y * y)

    def mean_std(self) -> tuple[float, float]:
        w = self.w
        m1 = self.s1.window_sum(w) / w
        m2 = self.s2.window_sum(w) / w
        d = m2 - m1 * m1
        var = (d if d > 0.0 else 0.0 if d == d else NAN) * (w / max(w, 1))
        return m1 + self.x0, math.sqrt(var) if var == var else NAN


class _Window:
    """The newest ``size`` values (or rows) in a fixed array, oldest first;
    positions not yet filled hold ``fill``. Pushing shifts by one (a bounded
    memmove), so ``data`` is always one contiguous array."""

    __slots__ = ("data", "size", "count")

    def __init__(self, size: int, width: int | None = None, fill=0.0, dtype=np.float64):
        shape = (size,) if width is None else (size, width)
        self.data = np.full(shape, fill, dtype=dtype)
        self.size = size
        self.count = 0

    def push(self, value) -> None:
        d = self.data
        d[:-1] = d[1:]
        d[-1] = value
        self.count += 1

    @property
    def full(self) -> bool:
        return self.count >= self.size


def _finalize_row(values: list[float], index: int, warmup: int) -> np.ndarray:
    """``rolling.finalize`` for one row: 0 before the warmup, non-finite -> 0,
    clipped to +-FEATURE_CLIP, float32 (rounded from float64 as ``astype`` does)."""
    if index < warmup:
        return np.zeros(len(values), dtype=np.float32)
    clip = FEATURE_CLIP
    row = [0.0 if not math.isfinite(v) else clip if v > clip else -clip if v < -clip else v for v in values]
    return np.array(row, dtype=np.float32)


def _sigma(ms: _MeanStd) -> float:
    """``return_volatility``: the std floored at TINY (NaN before the window -> 0 -> TINY)."""
    _, std = ms.mean_std()
    if std != std:
        std = 0.0
    return std if std > TINY else TINY


def _ols(y: list, ks: list, s_kk: float) -> tuple[float, float]:
    """``rolling_ols`` for the window ``y`` (oldest first), same operation order."""
    window = len(y)
    cur = y[-1]
    s_kd = s_d = s_dd = 0.0
    for k, yk in zip(ks, y):
        d = yk - cur
        s_kd += k * d
        s_d += d
        s_dd += d * d
    syy = s_dd - s_d * s_d / window
    slope = s_kd / s_kk
    r2 = s_kd * s_kd / (s_kk * syy) if syy > 0 else 0.0
    return slope, min(max(r2, 0.0), 1.0)


# ------------------------------------------------------------ tactical
class _TacticalState:
    """Tactical row of each base bar (``envs.features.tactical``)."""

    def __init__(self, has_volume: bool):
        self.has_volume = has_volume
        self.n = 0
        self.lc = deque(maxlen=MOMENTUM_HORIZON + 1)
        self.ret = _MeanStd(TACTICAL_VOL_WINDOW)
        self.vol = _Prefix(VOLUME_WINDOW)
        self.atr = _Ewm(1.0 / FVG_ATR_PERIOD)
        self.prev_close = None
        self.hl = deque(maxlen=3)  # (high, low) of the newest 3 bars
        # Active gaps, newest first: [t_g, bullish, bottom, top, run_min_low, run_max_high]
        self.gaps: list[list] = []
        self.ks_sqrt = math.sqrt(MOMENTUM_HORIZON)

    def update(self, high: float, low: float, close: float, volume: float) -> np.ndarray:
        t = self.n
        self.n += 1
        lc = math.log(close)
        r = lc - self.lc[-1] if self.lc else 0.0
        self.lc.append(lc)
        self.ret.push(r)
        self.vol.push(volume)
        prev = close if self.prev_close is None else self.prev_close
        self.prev_close = close
        tr = (high if high > prev else prev) - (low if low < prev else prev)
        atr = self.atr.update(tr)
        fvg = self._fvg(t, high, low, close, atr)
        if t < TACTICAL_WARMUP:
            return np.zeros(len(TACTICAL_FEATURES), dtype=np.float32)
        sigma = _sigma(self.ret)
        net = lc - self.lc[0] if t >= MOMENTUM_HORIZON else 0.0
        momentum = net / (sigma * self.ks_sqrt)
        ratio = 0.0
        if self.has_volume:
            mv = self.vol.window_sum(VOLUME_WINDOW) / VOLUME_WINDOW
            if volume > 0 and mv > 0:
                ratio = math.log(volume / mv)
        return _finalize_row(fvg + [momentum, ratio], t, TACTICAL_WARMUP)

    def _fvg(self, t: int, high: float, low: float, close: float, atr: float) -> list[float]:
        A = FVG_MAX_AGE
        kept = []
        for g in self.gaps:  # age grows by one; fold in this bar's low/high
            if t - g[0] >= A:
                continue
            if low < g[4]:
                g[4] = low
            if high > g[5]:
                g[5] = high
            if (g[4] > g[2]) if g[1] else (g[5] < g[3]):
                kept.append(g)
        self.gaps = kept
        self.hl.append((high, low))
        if len(self.hl) == 3:
            h2, l2 = self.hl[0]
            if low > h2:
                self.gaps.insert(0, [t, True, h2, low, math.inf, -math.inf])
            elif high < l2:
                self.gaps.insert(0, [t, False, high, l2, math.inf, -math.inf])
        gaps = self.gaps
        if not gaps:
            return [0.0, 0.0, 0.0, 0.0, 0.0]
        bull = any(g[1] for g in gaps)
        bear = any(not g[1] for g in gaps)
        best = None
        best_dist = math.inf
        for g in gaps:  # newest first, so ties go to the youngest like argmin over ages
            mid = (g[2] + g[3]) * 0.5
            dist = abs(mid - close)
            if dist < best_dist:
                best, best_dist = mid, dist
        level = (best - close) / atr if atr > 0 else 0.0
        g = gaps[0]
        age = t - g[0]
        if age == 0:
            fill = 0.0
        else:
            span = g[3] - g[2]
            span = span if span > 0 else 1.0
            fill = (g[3] - g[4]) / span if g[1] else (g[5] - g[2]) / span
            fill = 0.0 if fill < 0.0 else 1.0 if fill > 1.0 else fill
        return [float(bull), float(bear), level, age / A, fill]


# --------------------------------------------------------------- HTF
@dataclass
class _Bucket:
    index: int  # bucket number (timestamp // period)
    open: float
    high: float
    low: float
    close: float
    volumes: list


class _HtfState:
    """Regime and structure rows of each closed HTF bar."""

    def __init__(self, freq_seconds: int, has_volume: bool):
        self.freq = freq_seconds
        self.has_volume = has_volume
        self.n = 0
        W = max(REGIME_VOL_WINDOW, 48, NWRQK_LOOKBACK, LVN_WINDOW, 16)
        self.lc = _Window(W + 1, fill=np.nan)
        self.high = _Window(LVN_WINDOW, fill=np.nan)
        self.low = _Window(LVN_WINDOW, fill=np.nan)
        self.close = _Window(max(LVN_WINDOW, NWRQK_LOOKBACK), fill=np.nan)
        self.volume = _Window(LVN_WINDOW, fill=np.nan)
        self.ret = _MeanStd(REGIME_VOL_WINDOW)
        self.ret_s = self.ret if STRUCTURE_VOL_WINDOW == REGIME_VOL_WINDOW else _MeanStd(STRUCTURE_VOL_WINDOW)
        self.rr = _Prefix(48)  # squared returns (rolling_rms)
        self.abs_r = _Prefix(16)
        self.vol = _MeanStd(48)
        ks = {w: np.arange(w, dtype=np.float64) - (w - 1) / 2.0 for w in (16, 48)}
        self.s_kk = {w: float(np.sum(ks[w] * ks[w])) for w in (16, 48)}
        self.ks = {w: ks[w].tolist() for w in ks}
        # structure
        self.rsi_fast = _Rsi(MLMI_RSI_FAST)
        self.rsi_slow = _Rsi(MLMI_RSI_SLOW)
        self.pending = deque(maxlen=MLMI_HORIZON + 1)  # (f, g, valid, close) awaiting a label
        self.mem_f = _Window(MLMI_MEMORY, fill=0.0)
        self.mem_g = _Window(MLMI_MEMORY, fill=0.0)
        self.mem_y = _Window(MLMI_MEMORY, fill=0.0)
        self.mem_ok = _Window(MLMI_MEMORY, fill=False, dtype=bool)
        self.signal = _Ewm(2.0 / (MLMI_SIGNAL_SPAN + 1))
        w = rqk_weights()
        self.rqk = [float(u) for u in (w / w.sum())]
        self.kappa_v, self.kappa_s = nwrqk_scales()
        self.prev_lyhat = NAN

    def update(self, timestamp: int, period: int, o: float, h: float, l: float, c: float, v: float) -> tuple[np.ndarray, np.ndarray]:
        i = self.n
        self.n += 1
        lc = math.log(c)
        r = lc - float(self.lc.data[-1]) if i else 0.0
        self.lc.push(lc)
        self.high.push(h)
        self.low.push(l)
        self.close.push(c)
        self.volume.push(v)
        self.ret.push(r)
        if self.ret_s is not self.ret:
            self.ret_s.push(r)
        self.rr.push(r * r)
        self.abs_r.push(abs(r))
        self.vol.push(v)
        regime = self._regime(i, lc, v)
        structure = self._structure(i, timestamp, period, o, h, l, c, lc)
        return regime, structure

    # -- regime ------------------------------------------------------------
    def _regime(self, i: int, lc: float, v: float) -> np.ndarray:
        if i < REGIME_WARMUP:
            return np.zeros(len(REGIME_FEATURES), dtype=np.float32)
        lcw = self.lc.data.tolist()
        sigma = _sigma(self.ret)
        out = []
        for hz in (1, 4, 16, 48):
            net = lc - lcw[-1 - hz] if i >= hz else 0.0
            out.append(net / (sigma * math.sqrt(hz)))
        rv = {}
        for w in (4, 16, 48):
            s = self.rr.window_sum(w) / w
            rv[w] = math.sqrt(s if s > 0.0 else 0.0) if s == s else NAN
        out.append(math.log((rv[4] + TINY) / (rv[48] + TINY)))
        out.append(math.log((rv[16] + TINY) / (rv[48] + TINY)))
        hh = float(np.max(self.high.data[-16:]))
        ll = float(np.min(self.low.data[-16:]))
        rng16 = math.log(hh / ll)
        out.append(math.log(((rng16 if rng16 > 0.0 else 0.0) + TINY) / (sigma * 4.0 + TINY)))
        slope16, _ = _ols(lcw[-16:], self.ks[16], self.s_kk[16])
        slope48, r2_48 = _ols(lcw[-48:], self.ks[48], self.s_kk[48])
        out.append(slope16 * math.sqrt(16) / sigma)
        out.append(slope48 * math.sqrt(48) / sigma)
        out.append(r2_48)
        path = self.abs_r.window_sum(16)
        net16 = abs(lc - lcw[-17]) if i >= 16 else 0.0
        out.append(net16 / path if path > TINY else 0.0)
        z = 0.0
        if self.has_volume:
            mean_v, std_v = self.vol.mean_std()
            if std_v > 1e-9 * max(abs(mean_v), TINY):
                z = (v - mean_v) / std_v
        out.append(z)
        return _finalize_row(out, i, REGIME_WARMUP)

    # -- structure ----------------------------------------------------------
    def _structure(self, i: int, timestamp: int, period: int, o: float, h: float, l: float, c: float, lc: float) -> np.ndarray:
        ha = (o + h + l + c) / 4.0
        f = self.rsi_fast.update(ha)
        g = self.rsi_slow.update(ha)
        self.pending.append((f, g, i >= MLMI_RSI_SLOW, c))
        if i >= MLMI_HORIZON:  # point s = i - H gets its label now
            fs, gs, ok, cs = self.pending[0]
            d = c - cs
            self.mem_f.push(fs)
            self.mem_g.push(gs)
            self.mem_y.push(1.0 if d > 0 else -1.0 if d < 0 else 0.0)
            self.mem_ok.push(ok)
        value = signal = NAN
        if i >= MLMI_WARMUP:
            value = self._mlmi(f, g)
            signal = self.signal.update(value)
        # NW-RQK
        yhat = NAN
        if i >= NWRQK_LOOKBACK - 1:
            cw = self.close.data[::-1].tolist()  # newest first: lag j at cw[j]
            acc = 0.0
            for u, x in zip(self.rqk, cw):
                acc += u * x
            yhat = acc
        lyhat = math.log(yhat) if yhat == yhat else NAN
        slope_raw = lyhat - self.prev_lyhat
        self.prev_lyhat = lyhat
        if i < STRUCTURE_WARMUP:
            return np.zeros(len(STRUCTURE_FEATURES), dtype=np.float32)
        sigma = _sigma(self.ret_s)
        nw_value = (lc - lyhat) / (sigma * self.kappa_v)
        nw_slope = slope_raw / (sigma * self.kappa_s)
        dist, strength = _lvn_row(self.high.data, self.low.data, self.volume.data, float(self.close.data[-1]))
        hours = ((timestamp + period) % 86400) / 3600.0
        ang = 2.0 * np.pi * hours / 24.0
        out = [value, signal, nw_value, nw_slope, dist, strength, float(np.sin(ang)), float(np.cos(ang))]
        return _finalize_row(out, i, STRUCTURE_WARMUP)

    def _mlmi(self, f: float, g: float) -> float:
        kk = min(MLMI_K, MLMI_MEMORY)
        d = (f - self.mem_f.data) ** 2 + (g - self.mem_g.data) ** 2
        ok = self.mem_ok.data
        d[~ok] = np.inf
        nn = np.argpartition(d, kk - 1)[:kk]
        lab = self.mem_y.data[nn]
        use = ok[nn]
        cnt = use.sum()
        return float((lab * use).sum() / max(cnt, 1)) if cnt > 0 else 0.0


_LVN_FRAC = np.arange(LVN_BINS + 1, dtype=np.float64) / LVN_BINS
_LVN_CENTRES = ((np.arange(1, LVN_BINS - 1) + 0.5) / LVN_BINS)[None, :]


def _lvn_row(high: np.ndarray, low: np.ndarray, volume: np.ndarray, close: float) -> tuple[float, float]:
    """``structure.lvn_features`` for the newest row: the same operations on
    one ``(1, W, B+1)`` block (its window is the ``LVN_WINDOW`` newest bars),
    without building sliding windows over a series."""
    bins = LVN_BINS
    h = high[None, :]
    l = low[None, :]
    v = volume[None, :]
    lo = l.min(axis=1)
    hi = h.max(axis=1)
    rng = hi - lo
    edges = lo[:, None] + rng[:, None] * _LVN_FRAC[None, :]
    width = np.maximum(h - l, 1e-12 * rng[:, None])[:, :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf = np.clip((edges[:, None, :] - l[:, :, None]) / width, 0.0, 1.0)
    cdf[:, :, 0] = 0.0
    cdf[:, :, -1] = 1.0
    prof = (np.diff(cdf, axis=2) * v[:, :, None]).sum(axis=1)
    mean = prof.sum(axis=1) / bins
    mid = prof[:, 1:-1]
    left = prof[:, :-2]
    right = prof[:, 2:]
    tol = (1e-9 * mean)[:, None]
    is_lvn = (mid <= left + tol) & (mid <= right + tol) & ((mid < left - tol) | (mid < right - tol)) & (mid < mean[:, None] - tol)
    is_lvn &= (rng > 0)[:, None] & (mean > 0)[:, None]
    centres = lo[:, None] + rng[:, None] * _LVN_CENTRES
    gap = np.where(is_lvn, np.abs(centres - close), np.inf)
    j = int(np.argmin(gap[0]))
    if not math.isfinite(float(gap[0, j])):
        return 0.0, 0.0
    r, m = float(rng[0]), float(mean[0])
    sel_c, sel_p = float(centres[0, j]), float(mid[0, j])
    return (sel_c - close) / (r if r > 0 else 1.0), 1.0 - sel_p / (m if m > 0 else 1.0)


# --------------------------------------------------------------- engine
@dataclass(frozen=True)
class BarUpdate:
    """What one base bar produced: its tactical row and the HTF rows of the
    buckets that closed with it (0, 1, or 2 when a gap delayed a bucket)."""

    index: int  # base bar index (0-based, since the engine started)
    tactical: np.ndarray
    htf_closed: int
    htf_visible: int  # HTF bars visible after this bar (htf_visible_count)


class OnlineFeatures:
    """The feature pipeline, one base bar at a time (see the module docstring).

    ``freq_seconds`` is the base bar length, ``htf_multiple`` the base bars per
    HTF bar, ``has_volume`` whether the source has volume (without it every
    bar's volume is taken as 1.0, as the data importers do).
    """

    def __init__(self, freq_seconds: int, htf_multiple: int, *, has_volume: bool = True):
        if int(freq_seconds) <= 0:
            raise ValueError(f"freq_seconds must be positive, got {freq_seconds}")
        if int(htf_multiple) < 1:
            raise ValueError(f"htf_multiple must be >= 1, got {htf_multiple}")
        self.freq_seconds = int(freq_seconds)
        self.htf_multiple = int(htf_multiple)
        self.period = self.freq_seconds * self.htf_multiple
        self.has_volume = bool(has_volume)
        self.n_base = 0
        self.n_htf = 0
        self.last_timestamp: int | None = None
        self._bucket: _Bucket | None = None
        self._tactical = _TacticalState(self.has_volume)
        self._htf = _HtfState(self.freq_seconds, self.has_volume)
        self.regime = _Window(REGIME_WINDOW, len(REGIME_FEATURES), dtype=np.float32)
        self.structure = _Window(STRUCTURE_WINDOW, len(STRUCTURE_FEATURES), dtype=np.float32)
        self.tactical = _Window(TACTICAL_WINDOW, len(TACTICAL_FEATURES), dtype=np.float32)

    # -- feeding ------------------------------------------------------------
    def update(self, timestamp: int, open: float, high: float, low: float, close: float, volume: float = 1.0) -> BarUpdate:
        """Add the base bar that opened at ``timestamp`` (epoch seconds) and has
        closed. Raises ValueError on a bar out of time order or with bad prices
        (nothing is changed then)."""
        ts = int(timestamp)
        o, h, l, c = float(open), float(high), float(low), float(close)
        v = float(volume) if self.has_volume else 1.0
        self._check(ts, o, h, l, c, v)
        self.last_timestamp = ts
        closed = 0
        b = ts // self.period
        bucket = self._bucket
        if bucket is not None and bucket.index != b:  # a later bucket: the open one closed (gap)
            self._close_bucket()
            closed += 1
            bucket = None
        if bucket is None:
            self._bucket = _Bucket(b, o, h, l, c, [v])
        else:
            bucket.high = h if h > bucket.high else bucket.high
            bucket.low = l if l < bucket.low else bucket.low
            bucket.close = c
            bucket.volumes.append(v)
        if ts + self.freq_seconds >= (b + 1) * self.period:  # its last slot: the bucket closes now
            self._close_bucket()
            closed += 1
        row = self._tactical.update(h, l, c, v)
        self.tactical.push(row)
        index = self.n_base
        self.n_base += 1
        return BarUpdate(index=index, tactical=row, htf_closed=closed, htf_visible=self.n_htf)

    def _check(self, ts: int, o: float, h: float, l: float, c: float, v: float) -> None:
        if self.last_timestamp is not None and ts <= self.last_timestamp:
            raise ValueError(f"bar at {ts} is not after the previous bar ({self.last_timestamp})")
        for name, x in (("open", o), ("high", h), ("low", l), ("close", c)):
            if not (math.isfinite(x) and x > 0):
                raise ValueError(f"bar at {ts}: {name} must be a positive finite number, got {x}")
        if h < l:
            raise ValueError(f"bar at {ts}: high {h} is below low {l}")
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"bar at {ts}: volume must be a finite number >= 0, got {v}")

    def _close_bucket(self) -> None:
        bk = self._bucket
        self._bucket = None
        volume = float(np.add.reduceat(np.asarray(bk.volumes, dtype=np.float64), [0])[0])
        regime, structure = self._htf.update(bk.index * self.period, self.period, bk.open, bk.high, bk.low, bk.close, volume)
        self.regime.push(regime)
        self.structure.push(structure)
        self.n_htf += 1

    # -- state ----------------------------------------------------------------
    @property
    def windows_full(self) -> bool:
        """True once every observation window holds defined feature rows (the
        market file's ``first_valid`` rule: enough closed HTF bars for both
        HTF windows after their warmups, and the tactical window after its)."""
        return self.n_htf >= HTF_ROWS_NEEDED and self.n_base >= BASE_ROWS_NEEDED

    def buffer_sizes(self) -> dict[str, int]:
        """Elements held by every internal buffer (constant once warmed up)."""
        t, h = self._tactical, self._htf
        sizes = {
            "regime_window": self.regime.data.size,
            "structure_window": self.structure.data.size,
            "tactical_window": self.tactical.data.size,
            "bucket_volumes": 0 if self._bucket is None else len(self._bucket.volumes),
            "tactical_lc": len(t.lc),
            "tactical_prefix": len(t.ret.s1.ring) + len(t.ret.s2.ring) + len(t.vol.ring),
            "fvg_gaps": len(t.gaps),
            "htf_windows": sum(w.data.size for w in (h.lc, h.high, h.low, h.close, h.volume)),
            "htf_prefix": sum(len(p.ring) for p in (h.ret.s1, h.ret.s2, h.rr, h.abs_r, h.vol.s1, h.vol.s2)),
            "mlmi_memory": sum(w.data.size for w in (h.mem_f, h.mem_g, h.mem_y, h.mem_ok)) + len(h.pending),
        }
        return sizes


def online_feature_matrices(bars, htf_multiple: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feed ``bars`` (an ``envs.data.bars.Bars``) through ``OnlineFeatures`` and
    stack the rows: ``(regime, structure, tactical, htf_visible)`` with the
    shapes of ``compute_features`` and ``htf_visible_count`` (for tests and
    checks against the batch pipeline)."""
    eng = OnlineFeatures(bars.freq_seconds, htf_multiple, has_volume=bars.has_volume)
    n = len(bars)
    tactical = np.zeros((n, len(TACTICAL_FEATURES)), dtype=np.float32)
    visible = np.zeros(n, dtype=np.int64)
    regime_rows: list[np.ndarray] = []
    structure_rows: list[np.ndarray] = []
    ts, o, h, l, c, v = bars.timestamp, bars.open, bars.high, bars.low, bars.close, bars.volume
    for t in range(n):
        up = eng.update(int(ts[t]), o[t], h[t], l[t], c[t], v[t])
        tactical[t] = up.tactical
        visible[t] = up.htf_visible
        for k in range(up.htf_closed, 0, -1):
            regime_rows.append(eng.regime.data[-k].copy())
            structure_rows.append(eng.structure.data[-k].copy())
    if eng._bucket is not None:  # the batch pipeline also builds the last, unfinished bucket
        eng._close_bucket()
        regime_rows.append(eng.regime.data[-1].copy())
        structure_rows.append(eng.structure.data[-1].copy())
    regime = np.asarray(regime_rows, dtype=np.float32).reshape(-1, len(REGIME_FEATURES))
    structure = np.asarray(structure_rows, dtype=np.float32).reshape(-1, len(STRUCTURE_FEATURES))
    return regime, structure, tactical, visible
