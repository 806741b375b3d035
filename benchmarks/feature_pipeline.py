"""Benchmark of the feature pipeline: aggregate_bars + compute_features.

    python benchmarks/feature_pipeline.py --bars 353000 --htf-multiple 6 --seed 0

Builds ``--bars`` 5-minute base bars (the synthetic generator
``envs.data.synthetic.generate_bars`` when it is importable, else a seeded
random walk with realistic OHLC), then times (``time.perf_counter``, best of
``--repeat`` runs) the HTF aggregation, each feature matrix and the whole
``compute_features``. Peak memory is measured in a separate pass under
``tracemalloc`` (numpy reports its buffers to it), and the process peak
resident set size comes from ``resource.getrusage(RUSAGE_SELF).ru_maxrss``.
Prints a small table and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))

from envs.data.bars import Bars, aggregate_bars  # noqa: E402
from envs.features import compute_features  # noqa: E402
from envs.features.regime import regime_features  # noqa: E402
from envs.features.structure import structure_features  # noqa: E402
from envs.features.tactical import tactical_features  # noqa: E402

MB = 1024.0 * 1024.0


def random_walk_bars(n: int, seed: int, freq: int = 300) -> Bars:
    """Seeded 5-minute random walk with clustered volatility, wicks and volume."""
    rng = np.random.default_rng(seed)
    sig = 8e-4 * np.exp(0.4 * np.sin(np.arange(n) / 2000.0) + 0.3 * rng.standard_normal(n))
    close = 1.2 * np.exp(np.cumsum(sig * rng.standard_normal(n)))
    open_ = np.r_[1.2, close[:-1]]
    wick = np.abs(rng.standard_normal((2, n))) * sig * 0.6
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    ts = 1_609_718_400 + freq * np.arange(n, dtype=np.int64)  # 2021-01-04 00:00 UTC
    return Bars(timestamp=ts, open=open_, high=high, low=low, close=close,
                volume=rng.lognormal(6.0, 0.6, n), freq_seconds=freq, source=f"random_walk:seed={seed}")


def build_bars(n: int, seed: int, preset: str) -> tuple[Bars, str]:
    try:
        from envs.data.synthetic import generate_bars
    except ImportError:
        return random_walk_bars(n, seed), "random_walk"
    return generate_bars(preset, n, seed), f"synthetic:{preset}"


def _maxrss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MB if sys.platform == "darwin" else rss / 1024.0  # bytes on macOS, KiB on Linux


def best_of(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=353_000)
    ap.add_argument("--htf-multiple", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="complex_regimes")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    base, source = build_bars(args.bars, args.seed, args.preset)
    t_gen = time.perf_counter() - t0
    rss_gen_mb = _maxrss_mb()

    t_agg, htf = best_of(lambda: aggregate_bars(base, args.htf_multiple), args.repeat)
    t_reg, _ = best_of(lambda: regime_features(htf), args.repeat)
    t_str, _ = best_of(lambda: structure_features(htf), args.repeat)
    t_tac, _ = best_of(lambda: tactical_features(base), args.repeat)
    t_all, fs = best_of(lambda: compute_features(base, aggregate_bars(base, args.htf_multiple)), args.repeat)

    tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    fs2 = compute_features(base, aggregate_bars(base, args.htf_multiple))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert np.array_equal(fs.tactical, fs2.tactical)
    out_mb = (fs.regime.nbytes + fs.structure.nbytes + fs.tactical.nbytes) / MB
    rss_mb = _maxrss_mb()

    rows = [
        ("generate bars (not timed in total)", t_gen),
        (f"aggregate_bars x{args.htf_multiple}", t_agg),
        (f"regime   {fs.regime.shape}", t_reg),
        (f"structure {fs.structure.shape}", t_str),
        (f"tactical {fs.tactical.shape}", t_tac),
        ("aggregate + compute_features", t_all),
    ]
    print(f"feature pipeline: {len(base):,} base bars ({source}), {len(htf):,} HTF bars, "
          f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    print(f"{'step':<40}{'seconds':>10}")
    for name, sec in rows:
        print(f"{name:<40}{sec:>10.3f}")
    print(f"{'tracemalloc peak (MB, during compute)':<40}{(peak - before) / MB:>10.1f}")
    print(f"{'feature matrices (MB)':<40}{out_mb:>10.1f}")
    print(f"{'ru_maxrss after building bars (MB)':<40}{rss_gen_mb:>10.1f}")
    print(f"{'ru_maxrss at the end (MB, whole process)':<40}{rss_mb:>10.1f}")
    result = {
        "bench": "feature_pipeline",
        "bars": len(base),
        "htf_bars": len(htf),
        "htf_multiple": args.htf_multiple,
        "seed": args.seed,
        "source": source,
        "seconds": {
            "generate": round(t_gen, 4),
            "aggregate": round(t_agg, 4),
            "regime": round(t_reg, 4),
            "structure": round(t_str, 4),
            "tactical": round(t_tac, 4),
            "total": round(t_all, 4),
        },
        "tracemalloc_peak_mb": round((peak - before) / MB, 1),
        "output_mb": round(out_mb, 1),
        "ru_maxrss_after_bars_mb": round(rss_gen_mb, 1),
        "ru_maxrss_mb": round(rss_mb, 1),
        "warmups": [fs.regime_warmup, fs.structure_warmup, fs.tactical_warmup],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
