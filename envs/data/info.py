"""A person-readable description of a market file."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import h5py
import numpy as np

from envs.data.store import MATRICES, SPLIT_NAMES, read_attrs


def _when(ts: int) -> str:
    return datetime.fromtimestamp(int(ts), tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def describe_market_file(path: str | os.PathLike) -> dict:
    """Source, bars, date range, splits and features; ``text`` holds a printable summary."""
    path = str(path)
    attrs = read_attrs(path)
    with h5py.File(path, "r") as f:
        ts = f["base/timestamp"]
        n_base, n_htf = ts.shape[0], f["htf/timestamp"].shape[0]
        first, last = int(ts[0]), int(ts[-1])
        split_dates = {name: (_when(ts[start]), _when(ts[stop - 1])) for name, (start, stop) in attrs["splits"].items()}
        labels = f["base/regime_label"][:]
        features = {name: [str(v.decode() if isinstance(v, bytes) else v) for v in f[f"features/{name}"].attrs["names"]] for name in MATRICES}
    info = {
        "path": path,
        "schema_version": attrs["schema_version"],
        "source": attrs["source"],
        "base_bars": n_base,
        "base_freq_seconds": attrs["freq_seconds"],
        "htf_bars": n_htf,
        "htf_freq_seconds": attrs["htf_freq_seconds"],
        "htf_multiple": attrs["htf_multiple"],
        "start": _when(first),
        "end": _when(last),
        "has_volume": bool(attrs["has_volume"]),
        "has_labels": bool(attrs["has_labels"]),
        "first_valid": attrs["first_valid"],
        "splits": {name: {"bars": list(attrs["splits"][name]), "from": split_dates[name][0], "to": split_dates[name][1]} for name in SPLIT_NAMES},
        "features": {name: {"window": MATRICES[name][1], "names": features[name]} for name in MATRICES},
        "file_mb": round(os.path.getsize(path) / 1e6, 2),
    }
    if info["has_labels"]:
        counts = np.bincount(labels[labels >= 0], minlength=4)
        info["regime_share"] = {name: round(float(c) / max(1, counts.sum()), 4) for name, c in zip(("trending", "ranging", "volatile", "transition"), counts)}
    lines = [
        f"{path}",
        f"  source       {info['source']} (schema v{info['schema_version']}, {info['file_mb']} MB)",
        f"  base bars    {n_base} x {info['base_freq_seconds']} s, {info['start']} .. {info['end']} UTC",
        f"  htf bars     {n_htf} x {info['htf_freq_seconds']} s (every {info['htf_multiple']} base bars)",
        f"  volume       {'yes' if info['has_volume'] else 'missing (time-at-price profiles)'}; regime labels {'yes' if info['has_labels'] else 'no'}",
        f"  first usable bar {info['first_valid']} (observation windows full)",
    ]
    for name in SPLIT_NAMES:
        s = info["splits"][name]
        lines.append(f"  {name:<5} split  bars [{s['bars'][0]}, {s['bars'][1]}) {s['from']} .. {s['to']}")
    for name, spec in info["features"].items():
        lines.append(f"  {name:<9} {spec['window']} x {len(spec['names'])}: {', '.join(spec['names'])}")
    if "regime_share" in info:
        lines.append("  regimes      " + ", ".join(f"{k} {v:.1%}" for k, v in info["regime_share"].items()))
    info["text"] = "\n".join(lines)
    return info
