"""The HDF5 market file: layout, atomic writing, and validation.

Layout (``SCHEMA_VERSION`` 1)::

    /                 attrs: schema_version, source, freq_seconds, htf_multiple,
                             htf_freq_seconds, has_volume, has_labels, first_valid,
                             split_names, split_bounds (3 x 2 base-bar [start, stop))
    /base/{timestamp, open, high, low, close, volume, regime_label, htf_visible}
    /htf/{timestamp, open, high, low, close, volume}
    /features/{regime, structure, tactical}   attrs: names, window, warmup,
                             train_rows, train_mean, train_std

``train_mean``/``train_std`` are each feature column's statistics over
``train_rows`` [start, stop): the defined rows (after the warmup) that the
train split can see, i.e. tactical rows before the train split's stop and
higher-timeframe rows closed by its last bar. No val or test bar reaches them.
Models scale their inputs with them (``networks.InputScaling``).

Every dataset is chunked, gzip-compressed with the shuffle filter, and carries
HDF5's fletcher32 per-chunk checksum, so a flipped bit is caught on read.
No creation times are written (``track_times=False``), so the same inputs
give a byte-identical file.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from envs.data.bars import BAR_FIELDS, Bars
from envs.data.errors import DataError
from envs.features import (
    FEATURE_CLIP,
    REGIME_FEATURES,
    REGIME_WINDOW,
    STRUCTURE_FEATURES,
    STRUCTURE_WINDOW,
    TACTICAL_FEATURES,
    TACTICAL_WINDOW,
    FeatureSet,
)

SCHEMA_VERSION = 1
SPLIT_NAMES = ("train", "val", "test")
DEFAULT_SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
# Rows per HDF5 chunk; readers cache whole chunks, so this is also their block size.
CHUNK_ROWS = 4096
MIN_SPLIT_BARS = 20
REQUIRED_ATTRS = ("source", "freq_seconds", "htf_multiple", "has_volume", "has_labels", "first_valid", "split_names", "split_bounds")

MATRICES = {
    # name: (feature names, window rows, timeframe group the rows index)
    "regime": (REGIME_FEATURES, REGIME_WINDOW, "htf"),
    "structure": (STRUCTURE_FEATURES, STRUCTURE_WINDOW, "htf"),
    "tactical": (TACTICAL_FEATURES, TACTICAL_WINDOW, "base"),
}


STATS_ATTRS = ("train_rows", "train_mean", "train_std")


def train_stats_rows(matrix: str, warmup: int, train_stop: int, htf_visible: np.ndarray) -> tuple[int, int]:
    """Rows [start, stop) of feature matrix ``matrix`` that the train split
    (base bars before ``train_stop``) can see, from its warmup on."""
    stop = int(train_stop) if MATRICES[matrix][2] == "base" else int(htf_visible[int(train_stop) - 1])
    return min(int(warmup), stop), stop


def column_stats(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each column (float64 sums), float32."""
    rows = np.asarray(rows, dtype=np.float64)
    if len(rows) == 0:
        return np.zeros(rows.shape[1], np.float32), np.ones(rows.shape[1], np.float32)
    return rows.mean(axis=0).astype(np.float32), rows.std(axis=0).astype(np.float32)


@dataclass(frozen=True)
class Layout:
    """Where the usable bars start and how they are split (base-bar indices)."""

    first_valid: int
    splits: dict[str, tuple[int, int]]


def plan_layout(
    n_base: int,
    htf_visible: np.ndarray,
    features: FeatureSet,
    fractions: tuple[float, float, float] = DEFAULT_SPLIT_FRACTIONS,
    path: str = "<data>",
) -> Layout:
    """First base bar at which every observation window is full of defined
    feature rows, and time-ordered train/val/test boundaries after it."""
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be three positive numbers summing to 1, got {fractions}")
    htf_needed = max(features.regime_warmup + REGIME_WINDOW, features.structure_warmup + STRUCTURE_WINDOW)
    base_needed = features.tactical_warmup + TACTICAL_WINDOW - 1
    enough_htf = np.flatnonzero(htf_visible >= htf_needed)
    needed_bars = MIN_SPLIT_BARS * 3
    if len(enough_htf) == 0 or n_base - max(int(enough_htf[0]), base_needed) < needed_bars:
        raise DataError(
            path,
            None,
            f"fewer bars than the longest window needs: {n_base} base bars give "
            f"{int(htf_visible[-1]) if n_base else 0} closed higher-timeframe bars, but the "
            f"windows need {htf_needed} higher-timeframe bars plus {needed_bars} base bars to split",
        )
    first_valid = max(int(enough_htf[0]), base_needed)
    usable = n_base - first_valid
    cuts = np.round(np.cumsum((0.0,) + tuple(fractions)) * usable).astype(int) + first_valid
    cuts[-1] = n_base
    splits = {name: (int(cuts[i]), int(cuts[i + 1])) for i, name in enumerate(SPLIT_NAMES)}
    for name, (start, stop) in splits.items():
        if stop - start < MIN_SPLIT_BARS:
            raise DataError(path, None, f"the {name} split has {stop - start} bars; it needs at least {MIN_SPLIT_BARS}")
    return Layout(first_valid=first_valid, splits=splits)


def _dataset(group: h5py.Group, name: str, data: np.ndarray) -> h5py.Dataset:
    chunk_rows = max(1, min(CHUNK_ROWS, len(data)))
    chunks = (chunk_rows,) + data.shape[1:]
    return group.create_dataset(
        name,
        data=data,
        chunks=chunks,
        compression="gzip",
        compression_opts=4,
        shuffle=True,
        fletcher32=True,
        track_times=False,
    )


def storage_problem(folder: str | os.PathLike, needed_bytes: int) -> str | None:
    """Why ``folder`` cannot take ``needed_bytes`` more, or None: the nearest
    existing folder above it is a file, is not writable (a read-only mount,
    no permission), or has too little free space."""
    import shutil

    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        # access() says EROFS for a read-only mount even to root
        return f"{probe} is not writable ({'read-only file system' if _read_only_mount(probe) else 'permission denied'})"
    free = shutil.disk_usage(probe).free
    if free < needed_bytes:
        return f"not enough free space: needs about {needed_bytes / 1e6:.1f} MB, {free / 1e6:.1f} MB free"
    return None


def require_free_space(folder: str | os.PathLike, needed_bytes: int, what: str) -> None:
    """Refuse to start a write that cannot finish (HDF5 and torch can crash
    outright on a full disk, leaving no chance to clean up): ``DataError``
    naming the folder and ``storage_problem``."""
    problem = storage_problem(folder, needed_bytes)
    if problem is not None:
        raise DataError(str(folder), None, f"cannot write {what}: {problem}")


def _read_only_mount(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def write_market_file(
    out: str | os.PathLike,
    base: Bars,
    htf: Bars,
    htf_visible: np.ndarray,
    features: FeatureSet,
    layout: Layout,
    htf_multiple: int,
) -> Path:
    """Write the whole file to a temporary name beside ``out``, then rename, so
    a crash or a bad input never leaves a half-written file behind."""
    out = Path(out)
    # uncompressed size: compression usually halves it, so this leaves a margin
    needed = sum(a.nbytes for a in (base.timestamp, base.open, base.high, base.low, base.close, base.volume, htf.timestamp, htf.close))
    needed += 5 * htf.close.nbytes + sum(np.asarray(getattr(features, m)).nbytes for m in MATRICES) + (1 << 20)
    require_free_space(out.parent, needed, str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with h5py.File(tmp_name, "w", track_order=True) as f:
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["source"] = base.source
            f.attrs["freq_seconds"] = base.freq_seconds
            f.attrs["htf_multiple"] = int(htf_multiple)
            f.attrs["htf_freq_seconds"] = htf.freq_seconds
            f.attrs["has_volume"] = bool(base.has_volume)
            f.attrs["has_labels"] = bool(base.has_labels)
            f.attrs["first_valid"] = layout.first_valid
            f.attrs["split_names"] = np.array(SPLIT_NAMES, dtype=h5py.string_dtype())
            f.attrs["split_bounds"] = np.array([layout.splits[s] for s in SPLIT_NAMES], dtype=np.int64)
            g = f.create_group("base", track_order=True)
            _dataset(g, "timestamp", base.timestamp)
            for name in BAR_FIELDS:
                _dataset(g, name, getattr(base, name))
            _dataset(g, "regime_label", base.regime_label)
            _dataset(g, "htf_visible", np.asarray(htf_visible, dtype=np.int64))
            g = f.create_group("htf", track_order=True)
            _dataset(g, "timestamp", htf.timestamp)
            for name in BAR_FIELDS:
                _dataset(g, name, getattr(htf, name))
            g = f.create_group("features", track_order=True)
            warmups = {
                "regime": features.regime_warmup,
                "structure": features.structure_warmup,
                "tactical": features.tactical_warmup,
            }
            for name, (names, window, _) in MATRICES.items():
                matrix = np.ascontiguousarray(getattr(features, name), dtype=np.float32)
                ds = _dataset(g, name, matrix)
                ds.attrs["names"] = np.array(names, dtype=h5py.string_dtype())
                ds.attrs["window"] = window
                ds.attrs["warmup"] = warmups[name]
                lo, hi = train_stats_rows(name, warmups[name], layout.splits["train"][1], htf_visible)
                mean, std = column_stats(matrix[lo:hi])
                ds.attrs["train_rows"] = np.array([lo, hi], dtype=np.int64)
                ds.attrs["train_mean"] = mean
                ds.attrs["train_std"] = std
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp_name, out)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return out


def read_attrs(path: str | os.PathLike) -> dict:
    """The file's root attributes as plain Python values (checks it is ours)."""
    path = str(path)
    if not os.path.exists(path):
        raise DataError(path, None, "no such file")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: _plain(v) for k, v in f.attrs.items()}
    except OSError as exc:
        raise DataError(path, None, f"not a readable HDF5 file ({' '.join(str(exc).split())[:160]})") from None
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:  # damaged attribute metadata
        raise DataError(path, None, f"damaged file metadata ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from None
    version = attrs.get("schema_version")
    if version != SCHEMA_VERSION:
        raise DataError(path, None, f"schema version {version!r} is not the supported version {SCHEMA_VERSION}")
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise DataError(path, None, f"not a market file of this package: attribute {missing[0]!r} is missing")
    try:
        attrs["splits"] = {str(n): (int(b[0]), int(b[1])) for n, b in zip(attrs["split_names"], attrs["split_bounds"], strict=True)}
    except (TypeError, ValueError, IndexError) as exc:
        raise DataError(path, None, f"unreadable split attributes ({exc})") from None
    if set(attrs["splits"]) != set(SPLIT_NAMES):
        raise DataError(path, None, f"splits {sorted(attrs['splits'])} are not {list(SPLIT_NAMES)}")
    return attrs


def _check_train_stats(path: str, name: str, ds: h5py.Dataset, train_stop: int, visible: np.ndarray) -> None:
    """The stored train-split statistics (when the file has them) cover
    exactly the rows the train split sees and equal their recomputation."""
    if not all(k in ds.attrs for k in STATS_ATTRS):
        return  # written before the statistics were stored; readers compute them
    expected = train_stats_rows(name, int(ds.attrs.get("warmup", 0)), train_stop, visible)
    stored = tuple(int(v) for v in np.asarray(ds.attrs["train_rows"]).ravel()[:2])
    if stored != expected:
        raise DataError(path, None, f"/features/{name} train statistics cover rows {list(stored)}, but the train split sees rows {list(expected)}")
    mean, std = column_stats(ds[expected[0] : expected[1]])
    for key, value in (("train_mean", mean), ("train_std", std)):
        got = np.asarray(ds.attrs[key], dtype=np.float32)
        if got.shape != value.shape or not np.allclose(got, value, rtol=1e-4, atol=1e-5):
            raise DataError(path, None, f"/features/{name} attribute {key} differs from the train split's rows")


def _plain(value):
    if isinstance(value, np.ndarray):
        return [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value


def validate_market_file(path: str | os.PathLike) -> dict:
    """Check everything a reader relies on; raise DataError on the first problem.

    Reads every chunk of every dataset (which verifies each chunk's fletcher32
    checksum) and returns a summary of what was checked. A file damaged where
    HDF5 keeps its own structure (object headers, attribute tables) is named
    as damaged, never reported by h5py's own exception.
    """
    path = str(path)
    try:
        return _validate(path)
    except DataError:
        raise
    except (KeyError, RuntimeError, OSError, ValueError, TypeError, IndexError) as exc:
        raise DataError(path, None, f"damaged or not a market file ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from None


def _validate(path: str) -> dict:
    attrs = read_attrs(path)
    checked_chunks = 0
    with h5py.File(path, "r") as f:
        for group in ("base", "htf", "features"):
            if group not in f:
                raise DataError(path, None, f"missing group /{group}")
        n_base = f["base/timestamp"].shape[0]
        n_htf = f["htf/timestamp"].shape[0]
        expected = {f"base/{n}": (n_base,) for n in ("timestamp", "regime_label", "htf_visible") + BAR_FIELDS}
        expected.update({f"htf/{n}": (n_htf,) for n in ("timestamp",) + BAR_FIELDS})
        for name, (names, window, timeframe) in MATRICES.items():
            rows = n_base if timeframe == "base" else n_htf
            expected[f"features/{name}"] = (rows, len(names))
            stored = [_plain(v) for v in f[f"features/{name}"].attrs.get("names", [])]
            if list(stored) != list(names):
                raise DataError(path, None, f"/features/{name} feature names {stored} differ from {list(names)}")
        for key, shape in expected.items():
            if key not in f:
                raise DataError(path, None, f"missing dataset /{key}")
            ds = f[key]
            if ds.shape != shape:
                raise DataError(path, None, f"/{key} has shape {ds.shape}, expected {shape}")
            if not ds.fletcher32:
                raise DataError(path, None, f"/{key} has no per-chunk checksums")
            for start in range(0, shape[0], ds.chunks[0]):
                try:
                    block = ds[start : start + ds.chunks[0]]
                except OSError as exc:
                    raise DataError(path, start, f"/{key}: chunk checksum or read failed ({exc})") from None
                checked_chunks += 1
                if block.dtype.kind == "f":
                    bad = ~np.isfinite(block)
                    if bad.any():
                        row = start + int(np.argwhere(bad)[0][0])
                        raise DataError(path, row, f"/{key} holds NaN or infinite values")
                    if key.startswith("features/") and np.abs(block).max(initial=0) > FEATURE_CLIP:
                        raise DataError(path, start, f"/{key} holds values outside +-{FEATURE_CLIP}")
        for group, n in (("base", n_base), ("htf", n_htf)):
            steps = np.diff(f[f"{group}/timestamp"][:])
            if (steps <= 0).any():
                raise DataError(path, int(np.argmax(steps <= 0)) + 1, f"/{group}/timestamp is not strictly increasing")
        visible = f["base/htf_visible"][:]
        if (np.diff(visible) < 0).any() or visible.min(initial=0) < 0 or visible.max(initial=0) > n_htf:
            raise DataError(path, None, "/base/htf_visible is not a non-decreasing count of higher-timeframe bars")
        train_stop = int(attrs["splits"]["train"][1])
        if 0 < train_stop <= n_base:
            for name in MATRICES:
                _check_train_stats(path, name, f[f"features/{name}"], train_stop, visible)
    first_valid = int(attrs["first_valid"])
    bounds = [attrs["splits"][s] for s in SPLIT_NAMES]
    previous_stop = first_valid
    for name, (start, stop) in zip(SPLIT_NAMES, bounds):
        if start != previous_stop or stop <= start or stop > n_base:
            raise DataError(path, None, f"split {name} [{start}, {stop}) is not a time-ordered range after {previous_stop}")
        previous_stop = stop
    return {"path": path, "base_bars": n_base, "htf_bars": n_htf, "chunks_checked": checked_chunks}
