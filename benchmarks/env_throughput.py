"""Env team-steps per second with random actions: streaming from HDF5, from
in-memory arrays, and the raw limit of slicing the same observation windows in
a plain numpy loop, all in one run (rounds interleaved, best round kept, since
this machine is noisy).

    python benchmarks/env_throughput.py [--data FILE] [--steps 30000] [--rounds 3]

Targets (issue 2): HDF5 >= 0.95 x in-memory; env >= 10% of the raw limit.
"hdf5" uses the reader's default block cache (8 MB per dataset); "hdf5_small_cache"
keeps two blocks per dataset, so most episode resets decode chunks again.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np

from envs import algospace_market
from envs.data.dataset import synth_market_file
from envs.data.reader import MarketData
from envs.features import REGIME_WINDOW, STRUCTURE_WINDOW, TACTICAL_WINDOW


def env_steps_per_second(path: str, in_memory: bool, steps: int, seed: int, cache_mb: float | None = None) -> float:
    env = algospace_market.parallel_env(data=path, in_memory=in_memory, episode_length=2048)
    if cache_mb is not None:  # a smaller block cache than the default
        env.market.cache_mb = cache_mb
    rng = np.random.default_rng(seed)
    actions = [
        {a: int(x) for a, x in zip(env.possible_agents, row)}
        for row in np.stack([rng.integers(0, env.action_space(a).n, steps) for a in env.possible_agents], axis=1)
    ]
    env.reset(seed=seed)
    start = time.perf_counter()
    for i in range(steps):
        if not env.agents:
            env.reset()
        env.step(actions[i])
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def raw_slicing_steps_per_second(path: str, steps: int, seed: int) -> float:
    """The floor any env pays: copy the three feature windows of each bar into
    fresh float32 observation arrays, walking forward through the train split."""
    data = MarketData(path, in_memory=True)
    regime = data.features("regime").data
    structure = data.features("structure").data
    tactical = data.features("tactical").data
    visible = data.base("htf_visible").data
    lo, hi = data.splits["train"]
    rng = np.random.default_rng(seed)
    t = int(rng.integers(lo, hi - 2048))
    start = time.perf_counter()
    for i in range(steps):
        if i % 2048 == 0:
            t = int(rng.integers(lo, hi - 2048))
        k = visible[t]
        regime[k - REGIME_WINDOW : k].reshape(-1).copy()
        structure[k - STRUCTURE_WINDOW : k].reshape(-1).copy()
        tactical[t + 1 - TACTICAL_WINDOW : t + 1].reshape(-1).copy()
        t += 1
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="market file (default: a fresh 60,000-bar simple_markets file)")
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.data or str(synth_market_file(os.path.join(tmp, "bench.h5"), preset="simple_markets", n_bars=60_000, seed=0))
        results: dict[str, list[float]] = {"hdf5": [], "hdf5_small_cache": [], "in_memory": [], "raw_slicing": []}
        for r in range(args.rounds):
            results["hdf5"].append(env_steps_per_second(path, False, args.steps, args.seed + r))
            results["hdf5_small_cache"].append(env_steps_per_second(path, False, args.steps, args.seed + r, cache_mb=0.0))
            results["in_memory"].append(env_steps_per_second(path, True, args.steps, args.seed + r))
            results["raw_slicing"].append(raw_slicing_steps_per_second(path, args.steps, args.seed + r))
    best = {k: max(v) for k, v in results.items()}
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "team_steps_per_s": {k: round(v) for k, v in best.items()},
        "hdf5_over_in_memory": round(best["hdf5"] / best["in_memory"], 3),
        "hdf5_small_cache_over_in_memory": round(best["hdf5_small_cache"] / best["in_memory"], 3),
        "hdf5_env_over_raw": round(best["hdf5"] / best["raw_slicing"], 3),
        "in_memory_env_over_raw": round(best["in_memory"] / best["raw_slicing"], 3),
    }
    print(f"{'source':<12} {'team steps/s (best of ' + str(args.rounds) + ')':>30}   all rounds")
    for key, values in results.items():
        print(f"{key:<12} {best[key]:>30,.0f}   {', '.join(f'{v:,.0f}' for v in values)}")
    print(f"HDF5 / in-memory: {summary['hdf5_over_in_memory']:.3f} (target >= 0.95)")
    print(f"HDF5 with a 2-block cache / in-memory: {summary['hdf5_small_cache_over_in_memory']:.3f}")
    print(f"HDF5 env / raw slicing: {summary['hdf5_env_over_raw']:.3f} (target >= 0.10)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
