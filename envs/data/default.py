"""The embedded default data: synthetic market files generated on first use and cached.

The cache folder is ``$ALGOSPACE_DATA_DIR`` or ``~/.cache/rllib-algospace``.
Several processes (env runners) asking at once generate the file once: the
first takes a lock, the others wait for it and then find the file.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from envs.data.store import SCHEMA_VERSION
from envs.data.synthetic import DEFAULT_PRESET, PRESETS

PRESET_NAMES = tuple(PRESETS)  # also the default curriculum stages, easiest first
DEFAULT_BARS = 60_000  # about 41 weeks of 24-hour weekday 5-minute bars
DEFAULT_SEED = 0


def cache_dir() -> Path:
    root = os.environ.get("ALGOSPACE_DATA_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "rllib-algospace")
    return Path(root)


def default_dataset_path(preset: str = DEFAULT_PRESET, n_bars: int = DEFAULT_BARS, seed: int = DEFAULT_SEED) -> Path:
    """Path of the cached synthetic market file for ``preset``, generating it if missing."""
    if preset not in PRESET_NAMES:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESET_NAMES)}")
    folder = cache_dir()
    path = folder / f"{preset}-seed{seed}-{n_bars}bars-v{SCHEMA_VERSION}.h5"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            from envs.data.dataset import synth_market_file

            synth_market_file(path, preset=preset, n_bars=n_bars, seed=seed)
    return path
