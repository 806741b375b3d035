"""Resident memory over 100 MAPPO training iterations: the driver process
(which, with no remote env runners, also hosts the env runner and the learner)
and, in a second configuration with one remote env runner, that EnvRunner
actor's process as well as the driver (learner).

    python benchmarks/mappo_memory.py --iters 100 --warmup 10 --train-batch 1000

Small config: train batch ``--train-batch``, minibatch 128, 2 epochs, 64x64
actor and critic networks, 2 envs per runner, validation every 10 iterations
(1 episode of 1,024 ``val`` bars). Algorithms are built directly (no Tune), one
Ray session per configuration, one after the other. RSS is read with psutil
after every ``train()``; the remote env runner's PID comes from the actor
itself (``foreach_env_runner(os.getpid)``) and is checked to be a descendant of
this driver (so only this session's processes are measured).

Reported per process: RSS after warm-up (iteration ``--warmup``), at the last
iteration, the least-squares slope over iterations warm-up..last (MB per 100
iterations) and the growth after warm-up; "flat" means growth < 5%.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import time

import numpy as np
import psutil

MB = 2**20


def make_config(args, runners: int):
    from rllib_algospace.config import load_config

    return load_config(args.config, {
        "data.preset": args.preset,
        "experiment.seed": 0,
        "algorithm.centralized_critic": args.algo == "mappo",
        "algorithm.train_batch_size": args.train_batch,
        "algorithm.minibatch_size": 128,
        "algorithm.num_epochs": 2,
        "algorithm.actor_hiddens": [64, 64],
        "algorithm.critic_hiddens": [64, 64],
        "resources.num_env_runners": runners,
        "resources.num_envs_per_env_runner": 2,
        "resources.num_learners": 0,
        "resources.num_gpus_per_learner": 0,
        "evaluation.every_iterations": 10,
        "evaluation.episodes": 1,
        "evaluation.episode_length": 1024,
        "evaluation.full_split": False,
    })


def is_descendant(pid: int, root: int) -> bool:
    try:
        p = psutil.Process(pid)
        while p is not None:
            if p.pid == root:
                return True
            p = p.parent()
    except psutil.NoSuchProcess:
        pass
    return False


def trend(series: list[float], warmup: int) -> dict:
    """Series index i = RSS (MB) after iteration i + 1."""
    it = np.arange(1, len(series) + 1)
    sel = it >= warmup
    x, y = it[sel], np.asarray(series)[sel]
    slope = float(np.polyfit(x, y, 1)[0]) if len(x) > 1 else 0.0
    at_warm, last = float(series[warmup - 1]), float(series[-1])
    growth = (last - at_warm) / at_warm
    return {
        "rss_mb_at_warmup": round(at_warm, 1),
        "rss_mb_at_last": round(last, 1),
        "rss_mb_max": round(float(max(series)), 1),
        "slope_mb_per_100_iters": round(slope * 100, 2),
        "growth_after_warmup": round(growth, 4),
        "fitted_growth_after_warmup": round(slope * (len(series) - warmup) / at_warm, 4),
        "flat": abs(growth) < 0.05,
    }


def run_config(args, runners: int) -> dict:
    import ray

    from rllib_algospace.training import build_algorithm_config

    me = psutil.Process()
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, num_cpus=os.cpu_count())
    algo = None
    try:
        algo = build_algorithm_config(make_config(args, runners)).build_algo()
        runner_pid = None
        if runners:
            pids = algo.env_runner_group.foreach_env_runner(lambda w: os.getpid(), local_env_runner=False)
            runner_pid = int(pids[0])
            if not is_descendant(runner_pid, me.pid):
                raise RuntimeError(f"env runner PID {runner_pid} is not a process of this session")
        procs = {"driver": me}
        if runner_pid:
            procs["env_runner"] = psutil.Process(runner_pid)
        series = {k: [] for k in procs}
        times = []
        for i in range(1, args.iters + 1):
            t0 = time.perf_counter()
            result = algo.train()
            times.append(time.perf_counter() - t0)
            for k, p in procs.items():
                series[k].append(p.memory_info().rss / MB)
            if i in (1, args.warmup) or i % 10 == 0:
                ev = " +val" if "evaluation" in result else ""
                print(f"[{runners} remote runner(s)] iter {i:>3}{ev}: " + ", ".join(f"{k} {v[-1]:.1f} MB" for k, v in series.items()) + f" ({times[-1]:.2f} s)", flush=True)
    finally:
        if algo is not None:
            algo.stop()
        ray.shutdown()
    gc.collect()
    return {
        "num_env_runners": runners,
        "env_runner_pid": runner_pid,
        "mean_iteration_s": round(float(np.mean(times)), 3),
        "processes": {k: trend(v, args.warmup) for k, v in series.items()},
        "rss_mb": {k: [round(x, 1) for x in v] for k, v in series.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--train-batch", type=int, default=1000)
    p.add_argument("--algo", choices=["mappo", "ppo"], default="mappo")
    p.add_argument("--preset", default="simple_markets")
    p.add_argument("--config", default="tune_configs/mappo.yaml")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch threads in the driver (1: as in a Tune trial; with 2 on 2 busy cores, SGD stalls for tens of seconds)")
    args = p.parse_args()

    import ray
    import torch

    torch.set_num_threads(args.torch_threads)

    configs = [run_config(args, 0), run_config(args, 1)]
    out = {
        "benchmark": "mappo_memory",
        "args": vars(args),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__, "ray": ray.__version__},
        "configs": configs,
    }
    print()
    for c in configs:
        for name, t in c["processes"].items():
            label = f"{name} ({c['num_env_runners']} remote env runners)"
            print(f"{label:<32} RSS at it {args.warmup}: {t['rss_mb_at_warmup']:7.1f} MB, at it {args.iters}: {t['rss_mb_at_last']:7.1f} MB, "
                  f"slope {t['slope_mb_per_100_iters']:+6.2f} MB/100 it, growth {t['growth_after_warmup']:+.1%} -> {'flat' if t['flat'] else 'GROWING'}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)
    print(json.dumps({**out, "configs": [{k: v for k, v in c.items() if k != "rss_mb"} for c in configs]}))


if __name__ == "__main__":
    main()
