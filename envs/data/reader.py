"""Streaming access to a market file.

``MarketData`` opens its HDF5 file lazily, in the process that first reads it
(an open h5py handle must never cross a process boundary: a pickled or forked
``MarketData`` reopens in its new process). Each dataset is served in blocks of
whole HDF5 chunks through a bounded LRU cache. A block of a windowed dataset
also carries the ``overlap`` rows before it, so any observation window lies
inside one block and comes back as a view, never a copy. On a miss the reader
fetches the missing block and the next ``read_ahead`` blocks in one read, since
episodes walk forward through time. Many processes may read one file at once
(read-only opens need no locking).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import h5py
import numpy as np

from envs.data.errors import DataError
from envs.data.store import CHUNK_ROWS, MATRICES, column_stats, read_attrs, train_stats_rows

# Rows before each block of a base column, so short look-backs stay views.
BASE_OVERLAP = 64
BASE_FIELDS = ("timestamp", "open", "high", "low", "close", "volume", "regime_label", "htf_visible")


class BlockArray:
    """Rows of one on-disk dataset, served from cached blocks of ``block_rows``."""

    def __init__(self, handle_fn, key: str, n_rows: int, overlap: int, block_rows: int, cache_blocks: int, read_ahead: int):
        self._handle_fn = handle_fn
        self.key = key
        self.n_rows = n_rows
        self.overlap = overlap
        self.block_rows = block_rows
        self.cache_blocks = max(1 + read_ahead, cache_blocks)
        self.read_ahead = read_ahead
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.reads = 0  # number of h5py reads, for tests and benchmarks

    def clear(self) -> None:
        self._cache.clear()

    def _block(self, b: int) -> np.ndarray:
        block = self._cache.get(b)
        if block is not None:
            self._cache.move_to_end(b)
            return block
        last = min(b + self.read_ahead, (self.n_rows - 1) // self.block_rows)
        lo = max(0, b * self.block_rows - self.overlap)
        hi = min(self.n_rows, (last + 1) * self.block_rows)
        try:
            data = self._handle_fn()[self.key][lo:hi]
        except (OSError, KeyError, RuntimeError, ValueError) as exc:  # a chunk's checksum, a damaged header
            path = getattr(self._handle_fn(), "filename", "<market file>")
            raise DataError(path, lo, f"/{self.key}: rows {lo}-{hi - 1} unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); run `algospace data validate`") from None
        self.reads += 1
        for blk in range(b, last + 1):
            start = max(0, blk * self.block_rows - self.overlap) - lo
            stop = min(self.n_rows, (blk + 1) * self.block_rows) - lo
            self._cache[blk] = data[start:stop]
            self._cache.move_to_end(blk)
        while len(self._cache) > self.cache_blocks:
            self._cache.popitem(last=False)
        return self._cache[b]

    def window(self, stop: int, length: int) -> np.ndarray:
        """Rows ``[stop - length, stop)``; a view when ``length <= overlap``."""
        if length > self.overlap + 1 or stop > self.n_rows or stop - length < 0:
            raise IndexError(f"{self.key}: window [{stop - length}, {stop}) outside [0, {self.n_rows}) or longer than {self.overlap + 1}")
        b = (stop - 1) // self.block_rows
        block = self._block(b)
        offset = max(0, b * self.block_rows - self.overlap)
        return block[stop - length - offset : stop - offset]

    def row(self, i: int):
        b = i // self.block_rows
        return self._block(b)[i - max(0, b * self.block_rows - self.overlap)]

    def rows(self, start: int, stop: int) -> np.ndarray:
        """A copy of rows ``[start, stop)`` assembled from cached blocks."""
        if start < 0 or stop > self.n_rows or stop < start:
            raise IndexError(f"{self.key}: rows [{start}, {stop}) outside [0, {self.n_rows})")
        parts = []
        pos = start
        while pos < stop:
            b = pos // self.block_rows
            offset = max(0, b * self.block_rows - self.overlap)
            end = min(stop, (b + 1) * self.block_rows)
            parts.append(self._block(b)[pos - offset : end - offset])
            pos = end
        return np.concatenate(parts) if len(parts) != 1 else parts[0].copy()

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """A copy of rows ``[start, stop)`` read straight from the file (no cache)."""
        stop = self.n_rows if stop is None else stop
        return self._handle_fn()[self.key][start:stop]


class MemoryArray:
    """The same interface over an in-memory array (for speed comparisons and tests)."""

    def __init__(self, key: str, data: np.ndarray):
        self.key = key
        self.data = data
        self.n_rows = len(data)
        self.reads = 0

    def clear(self) -> None:
        pass

    def window(self, stop: int, length: int) -> np.ndarray:
        if stop > self.n_rows or stop - length < 0:
            raise IndexError(f"{self.key}: window [{stop - length}, {stop}) outside [0, {self.n_rows})")
        return self.data[stop - length : stop]

    def row(self, i: int):
        return self.data[i]

    def rows(self, start: int, stop: int) -> np.ndarray:
        if start < 0 or stop > self.n_rows or stop < start:
            raise IndexError(f"{self.key}: rows [{start}, {stop}) outside [0, {self.n_rows})")
        return self.data[start:stop]

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.data[start:stop].copy()


_CHECKED: set[tuple] = set()  # (path, size, mtime_ns) of files whose prices passed, once per process


def check_prices(path: str, f: h5py.File) -> None:
    """Every base bar's prices finite and positive, and low <= open, close <= high
    (a file edited after validation, with fresh checksums, must not feed NaN
    rewards or fills at impossible prices). Once per file per process."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    if key in _CHECKED:
        return
    o, h, l, c = (np.asarray(f[f"base/{name}"][:], dtype=np.float64) for name in ("open", "high", "low", "close"))
    tol = 1e-9 * np.maximum(np.abs(h), 1.0)
    bad = ~(np.isfinite(o) & np.isfinite(h) & np.isfinite(l) & np.isfinite(c)) | (l <= 0)
    bad |= (o > h + tol) | (c > h + tol) | (o < l - tol) | (c < l - tol)
    if bad.any():
        row = int(np.argmax(bad))
        raise DataError(path, row, f"impossible bar: open {o[row]!r}, high {h[row]!r}, low {l[row]!r}, close {c[row]!r} (prices must be finite and positive, low <= open, close <= high); run `algospace data validate`")
    _CHECKED.add(key)


class MarketData:
    """A market file's bars, features and metadata, streamed on demand.

    Each dataset keeps at most ``cache_mb`` megabytes of decoded blocks (at
    least two blocks). ``in_memory=True`` loads every dataset once instead
    (same interface).
    """

    def __init__(self, path: str | os.PathLike, *, in_memory: bool = False, cache_mb: float = 8.0, read_ahead: int = 1):
        self.path = str(Path(path))
        self.attrs = read_attrs(self.path)
        self.in_memory = in_memory
        self.cache_mb = cache_mb
        self.read_ahead = read_ahead
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._arrays: dict[str, BlockArray | MemoryArray] = {}
        try:
            with h5py.File(self.path, "r") as f:
                self.n_base = f["base/timestamp"].shape[0]
                self.n_htf = f["htf/timestamp"].shape[0]
                ts = f["base/timestamp"]
                span_years = (int(ts[-1]) - int(ts[0]) + self.freq_seconds) / (365.25 * 86400)
                self._bars_per_year = self.n_base / span_years
                self.feature_names = {
                    name: tuple(v.decode() if isinstance(v, bytes) else str(v) for v in f[f"features/{name}"].attrs["names"])
                    for name in MATRICES
                }
                check_prices(self.path, f)
        except DataError:
            raise
        except (KeyError, OSError, ValueError, IndexError, ZeroDivisionError, RuntimeError, TypeError) as exc:
            raise DataError(self.path, None, f"damaged or not a market file ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None

    # -- metadata -----------------------------------------------------------
    @property
    def splits(self) -> dict[str, tuple[int, int]]:
        return self.attrs["splits"]

    @property
    def freq_seconds(self) -> int:
        return int(self.attrs["freq_seconds"])

    @property
    def source(self) -> str:
        return str(self.attrs["source"])

    @property
    def has_labels(self) -> bool:
        return bool(self.attrs["has_labels"])

    @property
    def bars_per_year(self) -> float:
        """Bars per calendar year as the data itself has them (gaps included),
        the factor that annualises per-bar statistics for any bar frequency."""
        return self._bars_per_year

    @property
    def first_valid(self) -> int:
        return int(self.attrs["first_valid"])

    # -- process-local file handle ------------------------------------------
    def _handle(self) -> h5py.File:
        pid = os.getpid()
        if self._file is None or self._pid != pid:
            # A handle inherited through fork belongs to the parent: never reuse it.
            self._file = h5py.File(self.path, "r")
            self._pid = pid
            for arr in self._arrays.values():
                arr.clear()
        return self._file

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._arrays.clear()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        state["_arrays"] = {}
        return state

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- arrays -------------------------------------------------------------
    def array(self, key: str) -> BlockArray | MemoryArray:
        """``key`` is ``base/<field>``, ``htf/<field>`` or ``features/<matrix>``."""
        arr = self._arrays.get(key)
        if arr is not None:
            return arr
        if self.in_memory:
            try:
                arr = MemoryArray(key, self._handle()[key][:])
            except (OSError, KeyError, RuntimeError, ValueError) as exc:
                raise DataError(self.path, None, f"/{key} unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); run `algospace data validate`") from None
        else:
            group, name = key.split("/", 1)
            n_rows = self.n_base if group == "base" or name == "tactical" else self.n_htf
            overlap = MATRICES[name][1] if group == "features" else BASE_OVERLAP
            ds = self._handle()[key]
            row_bytes = ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64))
            cache_blocks = max(2, int(self.cache_mb * 1e6 // ((CHUNK_ROWS + overlap) * row_bytes)))
            arr = BlockArray(self._handle, key, n_rows, overlap, CHUNK_ROWS, cache_blocks, self.read_ahead)
        self._arrays[key] = arr
        return arr

    def base(self, field: str) -> BlockArray | MemoryArray:
        return self.array(f"base/{field}")

    def features(self, matrix: str) -> BlockArray | MemoryArray:
        return self.array(f"features/{matrix}")

    def feature_stats(self, matrix: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of each column of feature matrix
        ``matrix`` over the rows the train split sees (stored when the file
        was written; computed the same way for a file written before that)."""
        try:
            ds = self._handle()[f"features/{matrix}"]
            if "train_mean" in ds.attrs and "train_std" in ds.attrs:
                mean = np.asarray(ds.attrs["train_mean"], dtype=np.float32)
                std = np.asarray(ds.attrs["train_std"], dtype=np.float32)
            else:
                visible = self._handle()["base/htf_visible"]
                lo, hi = train_stats_rows(matrix, int(ds.attrs.get("warmup", 0)), self.splits["train"][1], visible)
                mean, std = column_stats(ds[lo:hi])
        except (KeyError, OSError, ValueError, IndexError, RuntimeError, TypeError) as exc:
            raise DataError(self.path, None, f"/features/{matrix}: unreadable train-split statistics ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None
        width = len(MATRICES[matrix][0])
        if mean.shape != (width,) or std.shape != (width,) or not (np.isfinite(mean).all() and np.isfinite(std).all() and (std >= 0).all()):
            raise DataError(self.path, None, f"/features/{matrix}: train-split statistics are not {width} finite means and non-negative deviations")
        return mean, std

    def read_base(self, field: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """A whole column range at once (evaluation, baselines)."""
        return self.array(f"base/{field}").read(start, stop)
