"""End-to-end training throughput of the team path, against the path before
it, in one run on this machine.

    python benchmarks/mappo_throughput.py --passes 2 --iters 4 --old-ref 133fc68

Measures, one after the other in this run:

1. ``env``: the market env's own team steps/s with random actions (the
   PettingZoo ParallelEnv, and the grouped team env the trainer samples).
2. ``mappo`` and ``ippo`` on the current path with the defaults of
   ``tune_configs/mappo.yaml`` (``--config``, ``--set KEY=VALUE`` overrides),
   built as ``algospace train`` builds them (``build_algorithm_config`` with
   the resources ``auto`` gives this machine: on 2 cores, two env runners of
   64 envs that sample while the learner waits, then a learner using both
   cores), no evaluation; each algorithm is built, warmed up (``--warmup``
   iterations), timed for ``--iters`` iterations and stopped on its own, in
   ``--passes`` passes that alternate which goes first.
3. ``old``: the path before the team path, from ``git archive`` of
   ``--old-ref`` (the commit before the change), with its own benchmark
   script and its defaults (train batch 4,000, minibatch 256, 5 epochs, 4
   envs, one torch thread as its Tune trials had; ``--old-threads``), in a
   subprocess after each pass of (2). Skipped with ``--old-ref none``.

End to end is env steps per wall-clock second of ``Algorithm.train()``
(sampling plus learning, after warm-up); the split comes from timing
wrappers: ``sample`` (PPO's ``synchronous_parallel_sample``: env, module
inference, connectors, episode bookkeeping on the env runners, and the
episodes' trip to the learner) and ``learn`` (``LearnerGroup.update``:
learner connector with GAE, then the epochs of SGD).

Targets (issue 8): MAPPO end to end >= 5,000 env steps/s and >= 10x the old
path; MAPPO >= 0.9x independent PPO. Prints one JSON line at the end
(``--out`` also writes it to a file).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACC: dict[str, float] = defaultdict(float)


def _timed(key: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            ACC[key] += time.perf_counter() - t0

    return wrapper


def env_throughput(data: str, steps: int) -> dict:
    """Random-action team steps/s of the PettingZoo env and of the team env."""
    import numpy as np

    from envs import algospace_market
    from envs.market.env import AGENTS, N_ACTIONS
    from envs.market.team import TeamMarketEnv

    rng = np.random.default_rng(0)
    out = {}
    par = algospace_market.parallel_env(data=data)
    par.reset(seed=0)
    actions = [{a: int(rng.integers(N_ACTIONS[a])) for a in AGENTS} for _ in range(1024)]
    t0 = time.perf_counter()
    for i in range(steps):
        _, _, term, trunc, _ = par.step(actions[i % 1024])
        if term["risk"] or trunc["risk"]:
            par.reset()
    out["parallel_env_steps_per_s"] = steps / (time.perf_counter() - t0)
    team = TeamMarketEnv(data=data)
    team.reset(seed=0)
    joint = [np.array([a[x] for x in AGENTS]) for a in actions]
    t0 = time.perf_counter()
    for i in range(steps):
        _, _, term, trunc, _ = team.step(joint[i % 1024])
        if term or trunc:
            team.reset()
    out["team_env_steps_per_s"] = steps / (time.perf_counter() - t0)
    return out


def make_config(args, centralized: bool):
    from rllib_algospace.config import load_config, parse_overrides

    overrides = {
        **parse_overrides(args.set),
        "data.preset": args.preset,
        "experiment.seed": args.seed,
        "experiment.checkpoint.score": "training_iteration",  # validation is off
        "algorithm.centralized_critic": centralized,
        "evaluation.every_iterations": 0,
        "resources.num_gpus_per_learner": 0,
    }
    return load_config(args.config, overrides)


def new_path(args, after_pass=None) -> dict:
    """MAPPO and independent PPO on the team path. Each is built, warmed up,
    timed for ``--iters`` iterations and stopped on its own (a user trains one
    at a time; two algorithms alive at once would leave four env runner
    processes on the two cores), in ``--passes`` alternating passes so that
    the machine's noise falls on both alike."""
    import ray
    import torch

    from rllib_algospace.training import build_algorithm_config, dataset_path
    from rllib_algospace.tune_session import resolve_resources

    cfgs = {"mappo": make_config(args, True), "ippo": make_config(args, False)}
    resources = resolve_resources(cfgs["mappo"])
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, num_cpus=os.cpu_count())
    rows = {name: [] for name in cfgs}
    torch_threads = None
    # Sampling is timed where PPO.training_step calls it (local or remote env runners).
    import ray.rllib.algorithms.ppo.ppo as ppo_module

    ppo_module.synchronous_parallel_sample = _timed("sample", ppo_module.synchronous_parallel_sample)
    try:
        for p in range(args.passes):
            for name in list(cfgs) if p % 2 == 0 else list(cfgs)[::-1]:
                cfg = cfgs[name]
                algo = build_algorithm_config(cfg, data_path=dataset_path(cfg), resources=resources).build_algo()
                try:
                    algo.learner_group.update = _timed("learn", algo.learner_group.update)
                    for _ in range(args.warmup):
                        algo.train()
                    torch_threads = torch.get_num_threads()
                    for r in range(args.iters):
                        ACC.clear()
                        before = algo.metrics.peek(("env_runners", "num_env_steps_sampled_lifetime"), default=0)
                        t0 = time.perf_counter()
                        result = algo.train()
                        wall = time.perf_counter() - t0
                        steps = result["env_runners"]["num_env_steps_sampled_lifetime"] - before
                        row = {"pass": p, "wall_s": wall, "env_steps": steps, "sample_s": ACC["sample"], "learn_s": ACC["learn"]}
                        rows[name].append(row)
                        print(f"pass {p + 1}/{args.passes} {name:>5} {r + 1}/{args.iters}: {steps / wall:8.0f} env steps/s end to end "
                              f"(sample {steps / row['sample_s']:.0f}/s, learn {steps / row['learn_s']:.0f}/s, {wall:.2f} s)", flush=True)
                finally:
                    algo.stop()
            if after_pass is not None:
                after_pass(p)
    finally:
        ray.shutdown()
    summary = {}
    for name, rs in rows.items():
        steps = sum(x["env_steps"] for x in rs)
        summary[name] = {
            "env_steps_per_s": steps / sum(x["wall_s"] for x in rs),
            "env_steps_per_s_median_round": statistics.median(x["env_steps"] / x["wall_s"] for x in rs),
            "sample_env_steps_per_s": steps / sum(x["sample_s"] for x in rs),
            "learn_env_steps_per_s": steps / sum(x["learn_s"] for x in rs),
            "iteration_s_median": statistics.median(x["wall_s"] for x in rs),
        }
    ratios = [(m["env_steps"] / m["wall_s"]) / (q["env_steps"] / q["wall_s"]) for m, q in zip(rows["mappo"], rows["ippo"])]
    algo_cfg = cfgs["mappo"].algorithm
    return {
        "config": {
            "file": args.config,
            "train_batch_size": algo_cfg.train_batch_size,
            "minibatch_size": algo_cfg.minibatch_size,
            "num_epochs": algo_cfg.num_epochs,
            "actor_hiddens": list(algo_cfg.actor_hiddens),
            "critic_hiddens": list(algo_cfg.critic_hiddens),
            "activation": algo_cfg.activation,
            "num_envs_per_env_runner": cfgs["mappo"].resources.num_envs_per_env_runner,
            "num_env_runners": resources.num_env_runners,
            "num_cpus_for_main_process": resources.num_cpus_for_main_process,
            "cpus_per_env_runner": resources.cpus_per_env_runner,
            "learner_torch_threads": torch_threads,
        },
        "summary": summary,
        "mappo_over_ippo_median_of_paired_iterations": statistics.median(ratios),
        "rounds": rows,
    }


def old_path(args) -> dict | None:
    """The old path's own benchmark, from ``git archive`` of ``--old-ref``."""
    if args.old_ref in (None, "", "none"):
        return None
    with tempfile.TemporaryDirectory(prefix="algospace-old-") as tmp:
        archive = subprocess.run(["git", "-C", ROOT, "archive", args.old_ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        cmd = [sys.executable, "benchmarks/mappo_throughput.py", "--iters", str(args.old_iters), "--warmup", "1", "--preset", args.preset,
               "--torch-threads", str(args.old_threads)]
        env = {**os.environ, "PYTHONPATH": tmp}
        print(f"old path ({args.old_ref}): {' '.join(cmd[1:])}", flush=True)
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"the old path's benchmark failed:\n{proc.stderr[-3000:]}")
        for line in proc.stdout.splitlines():
            if line.startswith("round "):
                print("  old " + line, flush=True)
        result = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    mappo = result["summary"]["mappo"]
    it = mappo["median_iteration_s"]
    batch = result["args"]["train_batch"]
    return {
        "ref": args.old_ref,
        "args": result["args"],
        "mappo_env_steps_per_s": mappo["env_steps_per_s_mean"],
        "ippo_env_steps_per_s": result["summary"]["ppo"]["env_steps_per_s_mean"],
        "mappo_sample_env_steps_per_s": batch / it["sample"],
        "mappo_learn_env_steps_per_s": batch / it["learn"],
    }


def _merge_old(runs: list) -> dict | None:
    runs = [r for r in runs if r is not None]
    if not runs:
        return None
    merged = {k: runs[0][k] for k in ("ref", "args")}
    for key in ("mappo_env_steps_per_s", "ippo_env_steps_per_s", "mappo_sample_env_steps_per_s", "mappo_learn_env_steps_per_s"):
        merged[key] = statistics.mean(r[key] for r in runs)  # equal iterations per run
    merged["runs"] = runs
    return merged


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=4, help="timed iterations per algorithm and pass")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations after each build")
    p.add_argument("--passes", type=int, default=2, help="passes over the two algorithms, alternating their order")
    p.add_argument("--config", default="tune_configs/mappo.yaml")
    p.add_argument("--preset", default="simple_markets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--env-steps", type=int, default=20_000, help="random-action steps for the env's own throughput")
    p.add_argument("--old-ref", default="133fc68", help="git commit of the path before (none: skip)")
    p.add_argument("--old-iters", type=int, default=2, help="timed iterations of the old path after each pass")
    p.add_argument("--old-threads", type=int, default=1, help="torch threads of the old path (1: as its Tune trials ran)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for the team path, e.g. algorithm.actor_hiddens=[128,128] (repeatable)")
    p.add_argument("--out", default=None, help="also write the JSON result here")
    args = p.parse_args()
    os.chdir(ROOT)
    sys.path.insert(0, ROOT)

    from rllib_algospace.training import dataset_path

    data = dataset_path(make_config(args, True))
    envs = env_throughput(data, args.env_steps)
    print(f"env, random actions: {envs['parallel_env_steps_per_s']:.0f} team steps/s (PettingZoo), {envs['team_env_steps_per_s']:.0f} (team env)", flush=True)
    # The old path runs once after each pass of the new one, so that both
    # see the same stretches of the machine's load.
    old_runs = []
    new = new_path(args, after_pass=lambda p: old_runs.append(old_path(args)))
    old = _merge_old(old_runs)

    import ray
    import torch

    mappo = new["summary"]["mappo"]["env_steps_per_s"]
    out = {
        "benchmark": "mappo_throughput",
        "args": vars(args),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "cpu": _cpu_name(), "python": platform.python_version(), "torch": torch.__version__, "ray": ray.__version__},
        "env": envs,
        "new": new,
        "old": old,
        "targets": {
            "mappo_env_steps_per_s": {"value": mappo, "target": 5000, "met": mappo >= 5000},
            "mappo_over_old": None if old is None else {"value": mappo / old["mappo_env_steps_per_s"], "target": 10, "met": mappo / old["mappo_env_steps_per_s"] >= 10},
            "mappo_over_ippo": {"value": new["mappo_over_ippo_median_of_paired_iterations"], "target": 0.9, "met": new["mappo_over_ippo_median_of_paired_iterations"] >= 0.9},
        },
    }
    print()
    for name, s in new["summary"].items():
        print(f"{name:>5} (team path): {s['env_steps_per_s']:7.0f} env steps/s end to end (sampling {s['sample_env_steps_per_s']:.0f}/s, learning {s['learn_env_steps_per_s']:.0f}/s)")
    if old is not None:
        print(f"  old path ({old['ref']}): MAPPO {old['mappo_env_steps_per_s']:.0f} env steps/s (sampling {old['mappo_sample_env_steps_per_s']:.0f}/s, "
              f"learning {old['mappo_learn_env_steps_per_s']:.0f}/s), PPO {old['ippo_env_steps_per_s']:.0f}")
    for key, t in out["targets"].items():
        if t is not None:
            print(f"target {key}: {t['value']:.2f} (>= {t['target']}) {'met' if t['met'] else 'NOT met'}")
    line = json.dumps(out)
    print(line)
    if args.out:
        with open(args.out, "w") as f:
            f.write(line + "\n")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            match = re.search(r"model name\s*:\s*(.*)", f.read())
        return match.group(1) if match else platform.processor()
    except OSError:
        return platform.processor()


if __name__ == "__main__":
    main()
