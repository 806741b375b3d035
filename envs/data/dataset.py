"""Build market files: bars -> higher timeframe -> features -> HDF5."""
from __future__ import annotations

import os
from pathlib import Path

from envs.data.bars import Bars, aggregate_bars, check_bars, htf_visible_count
from envs.data.errors import DataError
from envs.data.store import DEFAULT_SPLIT_FRACTIONS, plan_layout, write_market_file
from envs.features import compute_features

DEFAULT_HTF_MULTIPLE = 6


# The stages of building a market file, in order (``progress`` gets each name as it starts).
BUILD_STAGES = ("checking bars", "regime features", "structure features", "tactical features", "writing")


def build_market_file(
    base: Bars,
    out: str | os.PathLike,
    *,
    htf_multiple: int = DEFAULT_HTF_MULTIPLE,
    htf: Bars | None = None,
    split_fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
    source_path: str | None = None,
    progress=None,
) -> Path:
    """Compute every feature of ``base`` (and of ``htf``, or of base bars
    aggregated ``htf_multiple`` at a time) and write the market file atomically.

    ``source_path`` names the input in error messages. ``progress``: called
    with each of ``BUILD_STAGES`` as it starts (a progress bar's hook).
    """
    step = progress or (lambda stage: None)
    where = source_path or base.source
    step(BUILD_STAGES[0])
    check_bars(base, where)
    if htf is None:
        htf = aggregate_bars(base, htf_multiple)
    else:
        check_bars(htf, where)
        if htf.freq_seconds <= base.freq_seconds:
            raise DataError(where, None, f"higher-timeframe bars ({htf.freq_seconds} s) must be longer than base bars ({base.freq_seconds} s)")
        htf_multiple = max(1, round(htf.freq_seconds / base.freq_seconds))
        check_htf_covers(base, htf, where)
    visible = htf_visible_count(base, htf)
    features = compute_features(base, htf, progress=step)
    layout = plan_layout(len(base), visible, features, split_fractions, path=where)
    step(BUILD_STAGES[-1])
    return write_market_file(out, base, htf, visible, features, layout, htf_multiple)


def check_htf_covers(base: Bars, htf: Bars, where: str) -> None:
    """Higher-timeframe bars from another period than the base bars would all
    be visible from the first base bar on (or none ever): refuse a pair whose
    time ranges overlap on less than half of the base bars' span."""
    import datetime as dt

    def day(t) -> str:
        return dt.datetime.fromtimestamp(int(t), dt.timezone.utc).strftime("%Y-%m-%d")

    base_start, base_end = int(base.timestamp[0]), int(base.timestamp[-1]) + base.freq_seconds
    htf_start, htf_end = int(htf.timestamp[0]), int(htf.timestamp[-1]) + htf.freq_seconds
    overlap = min(base_end, htf_end) - max(base_start, htf_start)
    if overlap < 0.5 * (base_end - base_start):
        raise DataError(
            where, None,
            f"the higher-timeframe bars ({day(htf_start)} to {day(htf_end)}) do not cover the base bars ({day(base_start)} to {day(base_end)}): "
            "give --csv-htf bars of the same period",
        )


def synth_market_file(out: str | os.PathLike, *, preset: str, n_bars: int, seed: int, htf_multiple: int = DEFAULT_HTF_MULTIPLE, progress=None) -> Path:
    """A synthetic market file; ``progress`` gets "generating bars", then ``BUILD_STAGES``."""
    from envs.data.synthetic import generate_bars

    if progress is not None:
        progress("generating bars")
    return build_market_file(generate_bars(preset=preset, n_bars=n_bars, seed=seed), out, htf_multiple=htf_multiple, progress=progress)


def prepare_csv_market_file(
    csv: str | os.PathLike,
    out: str | os.PathLike,
    *,
    csv_htf: str | os.PathLike | None = None,
    timeframe: str | int | None = None,
    htf_multiple: int = DEFAULT_HTF_MULTIPLE,
    progress=None,
) -> Path:
    """A market file from a CSV export; ``progress`` gets "reading CSV", then ``BUILD_STAGES``."""
    from envs.data.csv_import import read_bars_csv

    if progress is not None:
        progress("reading CSV")
    base = read_bars_csv(csv, timeframe=timeframe)
    htf = read_bars_csv(csv_htf) if csv_htf is not None else None
    return build_market_file(base, out, htf_multiple=htf_multiple, htf=htf, source_path=str(csv), progress=progress)
