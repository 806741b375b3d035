"""OHLCV bar arrays and the higher-timeframe aggregation.

Timestamps are int64 epoch seconds (UTC) of each bar's *open*; a bar covers
``[timestamp, timestamp + freq_seconds)`` and is known only once that interval
has ended.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from envs.data.errors import DataError

PRICE_FIELDS = ("open", "high", "low", "close")
BAR_FIELDS = PRICE_FIELDS + ("volume",)

# Ground-truth regime codes; the regime agent's actions use the same order.
REGIME_NAMES = ("trending", "ranging", "volatile", "transition")
UNKNOWN_REGIME = -1


@dataclass(frozen=True)
class Bars:
    """A time-ordered series of OHLCV bars.

    ``regime_label`` holds ground-truth regime codes (see ``REGIME_NAMES``) when
    the source knows them (synthetic data), else ``UNKNOWN_REGIME`` everywhere.
    ``has_volume`` is False when the source had no volume (it is then 1.0 per
    bar, which turns volume profiles into time-at-price profiles).
    """

    timestamp: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    freq_seconds: int
    regime_label: np.ndarray = field(default=None)  # type: ignore[assignment]
    has_volume: bool = True
    source: str = "unknown"

    def __post_init__(self) -> None:
        n = len(self.timestamp)
        object.__setattr__(self, "timestamp", np.ascontiguousarray(self.timestamp, dtype=np.int64))
        for name in BAR_FIELDS:
            arr = np.ascontiguousarray(getattr(self, name), dtype=np.float64)
            if arr.shape != (n,):
                raise ValueError(f"Bars.{name} has shape {arr.shape}, expected ({n},)")
            object.__setattr__(self, name, arr)
        labels = self.regime_label
        if labels is None:
            labels = np.full(n, UNKNOWN_REGIME, dtype=np.int8)
        labels = np.ascontiguousarray(labels, dtype=np.int8)
        if labels.shape != (n,):
            raise ValueError(f"Bars.regime_label has shape {labels.shape}, expected ({n},)")
        object.__setattr__(self, "regime_label", labels)
        if int(self.freq_seconds) <= 0:
            raise ValueError(f"Bars.freq_seconds must be positive, got {self.freq_seconds}")
        object.__setattr__(self, "freq_seconds", int(self.freq_seconds))

    def __len__(self) -> int:
        return len(self.timestamp)

    @property
    def has_labels(self) -> bool:
        return bool(np.any(self.regime_label != UNKNOWN_REGIME))

    @property
    def close_time(self) -> np.ndarray:
        """Epoch seconds at which each bar has closed and becomes known."""
        return self.timestamp + self.freq_seconds

    def slice(self, start: int, stop: int) -> "Bars":
        return Bars(
            timestamp=self.timestamp[start:stop],
            open=self.open[start:stop],
            high=self.high[start:stop],
            low=self.low[start:stop],
            close=self.close[start:stop],
            volume=self.volume[start:stop],
            freq_seconds=self.freq_seconds,
            regime_label=self.regime_label[start:stop],
            has_volume=self.has_volume,
            source=self.source,
        )


def aggregate_bars(base: Bars, multiple: int) -> Bars:
    """Aggregate base bars into clock-aligned bars ``multiple`` times longer.

    Buckets are aligned to the epoch (so 30-minute bars start at :00 and :30).
    A bucket with missing base bars (weekend and holiday gaps) is built from the
    bars it has. The regime label of an aggregated bar is the label of its last
    base bar.
    """
    if multiple < 1:
        raise ValueError(f"htf_multiple must be >= 1, got {multiple}")
    if len(base) == 0:
        raise ValueError("cannot aggregate an empty bar series")
    period = base.freq_seconds * multiple
    bucket = base.timestamp // period
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(base)] - 1
    return Bars(
        timestamp=bucket[starts] * period,
        open=base.open[starts],
        high=np.maximum.reduceat(base.high, starts),
        low=np.minimum.reduceat(base.low, starts),
        close=base.close[ends],
        volume=np.add.reduceat(base.volume, starts),
        freq_seconds=period,
        regime_label=base.regime_label[ends],
        has_volume=base.has_volume,
        source=base.source,
    )


def htf_visible_count(base: Bars, htf: Bars) -> np.ndarray:
    """For each base bar t, how many higher-timeframe bars have closed by the
    close of bar t (so HTF bars ``[0, count)`` may be seen at t, never more).

    An HTF bar closes at ``htf.timestamp + htf.freq_seconds``; the last slot of a
    bucket closes it exactly, and when that slot is missing (a gap) the bucket
    becomes visible with the first later bar.
    """
    return np.searchsorted(htf.close_time, base.close_time, side="right").astype(np.int64)


def check_bars(bars: Bars, path: str = "<bars>") -> None:
    """Raise DataError naming the first bad row (0-based position in ``bars``)."""
    if len(bars) == 0:
        raise DataError(path, None, "no bars")
    for name in BAR_FIELDS:
        arr = getattr(bars, name)
        bad = ~np.isfinite(arr)
        if bad.any():
            raise DataError(path, int(np.argmax(bad)), f"{name} is NaN or infinite")
    for name in PRICE_FIELDS:
        bad = getattr(bars, name) <= 0
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(path, row, f"{name} must be positive, got {getattr(bars, name)[row]}")
    bad = bars.high < bars.low
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(path, row, f"high {bars.high[row]} is below low {bars.low[row]}")
    tol = 1e-9 * np.maximum(np.abs(bars.high), 1.0)  # float noise of a vendor's rounding, nothing more
    for name in ("open", "close"):
        price = getattr(bars, name)
        bad = (price > bars.high + tol) | (price < bars.low - tol)
        if bad.any():
            row = int(np.argmax(bad))
            where = "above the high" if price[row] > bars.high[row] else "below the low"
            raise DataError(path, row, f"impossible bar: {name} {price[row]:g} is {where} (high {bars.high[row]:g}, low {bars.low[row]:g})")
    if (bars.volume < 0).any():
        row = int(np.argmax(bars.volume < 0))
        raise DataError(path, row, f"volume must not be negative, got {bars.volume[row]}")
    steps = np.diff(bars.timestamp)
    if (steps == 0).any():
        row = int(np.argmax(steps == 0)) + 1
        raise DataError(path, row, "duplicate timestamp")
    if (steps < 0).any():
        row = int(np.argmax(steps < 0)) + 1
        raise DataError(path, row, "timestamps are not increasing")
