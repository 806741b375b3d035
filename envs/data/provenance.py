"""Where a run's market data came from, so a checkpoint finds it again.

A checkpoint records each market file it trained on as a *data record*: the
path, its sha256 and, for a synthetic file, what made it (preset, seed, bars,
higher-timeframe multiple, schema version). In a later session (a new Colab
VM, another machine) the recorded path may be gone, or hold other bytes:

* a synthetic file is generated again into the data cache; the same inputs
  give the same bytes (no creation times are written), which the sha256
  confirms;
* a user's own file (``algospace data prepare``) cannot be remade: the error
  names the file and asks for ``--data``.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from envs.data.errors import DataError

SYNTHETIC_SOURCE = re.compile(  # the source attribute of a generated file
    r"^synthetic:(?P<preset>[A-Za-z0-9_]+):seed=(?P<seed>-?\d+)$")
_HASHES: dict[tuple, str] = {}  # (path, size, mtime_ns) -> sha256: a run records the same file at every checkpoint


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (read in 1 MB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _recorded_sha256(path: str | os.PathLike) -> str:
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    found = _HASHES.get(key)
    if found is None:
        found = _HASHES[key] = file_sha256(path)
    return found


def data_record(path: str | os.PathLike) -> dict:
    """The record of one market file (see the module docstring)."""
    import h5py

    path = str(Path(path).expanduser().resolve())
    record = {"path": path, "sha256": _recorded_sha256(path)}
    with h5py.File(path, "r") as f:
        source = str(f.attrs.get("source", ""))
        match = SYNTHETIC_SOURCE.match(source)
        if match:
            record["synthetic"] = {
                "preset": match["preset"],
                "seed": int(match["seed"]),
                "bars": int(f["base"]["close"].shape[0]),
                "htf_multiple": int(f.attrs["htf_multiple"]),
                "schema_version": int(f.attrs["schema_version"]),
            }
    return record


def locate(record: dict) -> str:
    """The path of the recorded file: the recorded path while it holds the
    same bytes, else (synthetic data) the file generated again. Raises
    ``DataError`` naming the file and ``--data`` when neither works."""
    path = record["path"]
    if os.path.isfile(path) and _recorded_sha256(path) == record["sha256"]:
        return path
    synthetic = record.get("synthetic")
    if synthetic is None:
        what = "has changed since training (sha256 differs)" if os.path.exists(path) else "is missing"
        raise DataError(path, None, f"the market file this team was trained on {what}; pass the same data with --data FILE")
    from envs.data.dataset import DEFAULT_HTF_MULTIPLE, synth_market_file
    from envs.data.default import cache_dir, default_dataset_path
    from envs.data.store import SCHEMA_VERSION

    if synthetic["schema_version"] != SCHEMA_VERSION:
        raise DataError(path, None, f"is gone, and its synthetic data was made for schema v{synthetic['schema_version']} (this version writes v{SCHEMA_VERSION}); pass --data FILE")
    preset, seed, bars, htf = synthetic["preset"], synthetic["seed"], synthetic["bars"], synthetic["htf_multiple"]
    if htf == DEFAULT_HTF_MULTIPLE:
        again = default_dataset_path(preset, bars, seed)
    else:
        again = cache_dir() / f"{preset}-seed{seed}-{bars}bars-htf{htf}-v{SCHEMA_VERSION}.h5"
        if not again.exists():
            again.parent.mkdir(parents=True, exist_ok=True)
            synth_market_file(again, preset=preset, n_bars=bars, seed=seed, htf_multiple=htf)
    if file_sha256(again) != record["sha256"]:
        raise DataError(path, None, f"is gone, and the synthetic {preset} data generated again ({again}) differs from it; pass --data FILE")
    return str(again)
