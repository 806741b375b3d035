"""Training throughput of MAPPO (centralized critic) against independent PPO on
the same env, train batch, minibatch and epochs, in one process, with the time
of each iteration split into sampling and learning.

    python benchmarks/mappo_throughput.py --iters 8 --train-batch 4000 --minibatch 256 --epochs 5 --envs 4

Both algorithms are built directly with ``build_algorithm_config(cfg).build_algo()``
(no Tune): no remote env runners (the driver samples and learns), no remote
learner, evaluation off. Each is warmed up (``--warmup`` iterations), then
``--iters`` rounds run one iteration of each, alternating which goes first, so
the machine's noise falls on both alike.

Throughput is env steps per wall-clock second of ``Algorithm.train()``: the
env steps sampled (and trained on) per iteration, i.e. the train batch, over the
iteration's time. RLlib's ``learners/__all_modules__/num_env_steps_trained``
is not used: in 2.60 it counts the whole batch once per *minibatch*, so it is
inflated by about epochs x batch / minibatch. RLlib's ``timers/*`` are EMAs
with a 0.01 coefficient (they hardly move after the first iteration), so the
split here comes from timing wrappers installed in this process:

- ``sample``: ``EnvRunner.sample`` (env steps + module inference + env-runner connectors)
  - ``env_step``: the env's own ``reset``/``step`` (for MAPPO this includes ``env.state()``
    added to every agent's observation)
- ``learn``: ``LearnerGroup.update`` (learner connector + SGD)
  - ``learner_connector``: episodes -> train batch, including GAE
    - ``gae``: RLlib's GAE (PPO) or the MAPPO GAE connector (critic forward over the batch)
  - ``sgd``: the rest of ``learn`` (epochs x minibatches of forward/backward/step)
- ``other``: the rest of ``train()`` (weight sync, metrics, callbacks)

torch runs with one intra-op thread (``--torch-threads 1``), as in a Tune trial,
which Ray starts with OMP_NUM_THREADS=1; with two threads on two shared cores,
single SGD phases stalled for 20-30 s when a neighbour took a core.

Target (issue 3): MAPPO / PPO throughput >= 0.9 (the headline is the median of
the per-round ratios; each round ran both algorithms back to back).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import time
from collections import defaultdict

# Timings of the iteration now running (one algorithm trains at a time).
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


def _install_class_timers() -> None:
    """Time the env and the two GAE connectors at class level (this process only)."""
    from ray.rllib.connectors.learner import GeneralAdvantageEstimation

    from rllib_algospace.mappo.connectors import MAPPOGAEConnector
    from rllib_algospace.rllib_env import OrderedParallelPettingZooEnv

    OrderedParallelPettingZooEnv.step = _timed("env_step", OrderedParallelPettingZooEnv.step)
    OrderedParallelPettingZooEnv.reset = _timed("env_step", OrderedParallelPettingZooEnv.reset)
    MAPPOGAEConnector.__call__ = _timed("gae", MAPPOGAEConnector.__call__)
    GeneralAdvantageEstimation.__call__ = _timed("gae", GeneralAdvantageEstimation.__call__)


class _TimedConnector:
    """Stands in for the learner's connector pipeline and times each call."""

    def __init__(self, inner):
        self._inner = inner

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self._inner(*args, **kwargs)
        finally:
            ACC["learner_connector"] += time.perf_counter() - t0

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _install_instance_timers(algo) -> None:
    runner = algo.env_runner_group.local_env_runner
    runner.sample = _timed("sample", runner.sample)
    algo.learner_group.update = _timed("learn", algo.learner_group.update)
    learner = algo.learner_group._learner
    learner._learner_connector = _TimedConnector(learner._learner_connector)


def make_config(args, centralized: bool):
    from rllib_algospace.config import load_config

    overrides = {
        "data.preset": args.preset,
        "experiment.seed": args.seed,
        "experiment.checkpoint.score": "training_iteration",  # validation is off
        "algorithm.centralized_critic": centralized,
        "algorithm.train_batch_size": args.train_batch,
        "algorithm.minibatch_size": args.minibatch,
        "algorithm.num_epochs": args.epochs,
        "resources.num_env_runners": 0,
        "resources.num_envs_per_env_runner": args.envs,
        "resources.num_learners": 0,
        "resources.num_gpus_per_learner": 0,
        "evaluation.every_iterations": 0,
    }
    return load_config(args.config, overrides)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=8, help="timed iterations per algorithm (interleaved rounds)")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations per algorithm first")
    p.add_argument("--train-batch", type=int, default=4000)
    p.add_argument("--minibatch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--envs", type=int, default=4, help="num_envs_per_env_runner")
    p.add_argument("--preset", default="simple_markets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", default="tune_configs/mappo.yaml")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch intra-op threads in this process (1: as in a Tune trial, which Ray starts with OMP_NUM_THREADS=1)")
    args = p.parse_args()

    import ray
    import torch

    torch.set_num_threads(args.torch_threads)

    from rllib_algospace.training import build_algorithm_config

    _install_class_timers()
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, num_cpus=os.cpu_count())
    algos = {}
    try:
        for name, centralized in (("mappo", True), ("ppo", False)):
            algo = build_algorithm_config(make_config(args, centralized)).build_algo()
            _install_instance_timers(algo)
            algos[name] = algo
        names = list(algos)
        for i in range(args.warmup):
            for name in names:
                algos[name].train()
                print(f"warm-up {i + 1}/{args.warmup} {name}", flush=True)

        rows = {name: [] for name in names}
        for r in range(args.iters):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                ACC.clear()
                before = algos[name].metrics.peek(("env_runners", "num_env_steps_sampled_lifetime"), default=0)
                t0 = time.perf_counter()
                result = algos[name].train()
                wall = time.perf_counter() - t0
                steps = result["env_runners"]["num_env_steps_sampled_lifetime"] - before
                row = {"wall_s": wall, "env_steps": steps, **{k: ACC.get(k, 0.0) for k in ("sample", "env_step", "learn", "learner_connector", "gae")}}
                row["sgd"] = row["learn"] - row["learner_connector"]
                row["other"] = wall - row["sample"] - row["learn"]
                rows[name].append(row)
                print(f"round {r + 1}/{args.iters} {name:>5}: {wall:6.2f} s, {steps:.0f} env steps, {steps / wall:7.1f} steps/s "
                      f"(sample {row['sample']:.2f} [env {row['env_step']:.2f}], learn {row['learn']:.2f} "
                      f"[connector {row['learner_connector']:.2f}, gae {row['gae']:.3f}, sgd {row['sgd']:.2f}], other {row['other']:.2f})", flush=True)
    finally:
        for algo in algos.values():
            algo.stop()
        ray.shutdown()

    summary = {}
    for name, rs in rows.items():
        rates = [x["env_steps"] / x["wall_s"] for x in rs]
        total_steps = sum(x["env_steps"] for x in rs)
        total_wall = sum(x["wall_s"] for x in rs)
        # medians: a few iterations hit by the neighbours' load would dominate means
        parts = {k: statistics.median(x[k] for x in rs) for k in ("wall_s", "sample", "env_step", "learn", "learner_connector", "gae", "sgd", "other")}
        summary[name] = {
            "env_steps_per_s_mean": total_steps / total_wall,
            "env_steps_per_s_median": statistics.median(rates),
            "env_steps_per_s_best": max(rates),
            "median_iteration_s": {k: round(v, 4) for k, v in parts.items()},
            "share_of_iteration": {k: round(parts[k] / parts["wall_s"], 4) for k in ("sample", "env_step", "learn", "learner_connector", "gae", "sgd", "other")},
            "sample_env_steps_per_s_median": statistics.median(x["env_steps"] / x["sample"] for x in rs),
            "sgd_env_steps_per_s_median": statistics.median(x["env_steps"] / x["sgd"] for x in rs),
        }
    # Per round ratios: each round ran both algorithms back to back.
    round_ratios = [(m["env_steps"] / m["wall_s"]) / (q["env_steps"] / q["wall_s"]) for m, q in zip(rows["mappo"], rows["ppo"])]
    out = {
        "benchmark": "mappo_throughput",
        "args": vars(args),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__, "ray": ray.__version__, "torch_threads": torch.get_num_threads()},
        "summary": summary,
        "ratio_mappo_over_ppo": {
            "mean": summary["mappo"]["env_steps_per_s_mean"] / summary["ppo"]["env_steps_per_s_mean"],
            "median_of_rounds": statistics.median(round_ratios),
            "best_over_best": summary["mappo"]["env_steps_per_s_best"] / summary["ppo"]["env_steps_per_s_best"],
            "rounds": [round(x, 4) for x in round_ratios],
            "target": 0.9,
        },
        "rounds": rows,
    }
    print()
    for name, s in summary.items():
        sh = s["share_of_iteration"]
        print(f"{name:>5}: {s['env_steps_per_s_mean']:7.1f} env steps/s (median round {s['env_steps_per_s_median']:.1f}, best {s['env_steps_per_s_best']:.1f}); "
              f"median iteration {s['median_iteration_s']['wall_s']:.2f} s = sample {sh['sample']:.0%} (env {sh['env_step']:.0%}) + learn {sh['learn']:.0%} "
              f"(connector {sh['learner_connector']:.0%}, gae {sh['gae']:.1%}, sgd {sh['sgd']:.0%}) + other {sh['other']:.0%}")
    rt = out["ratio_mappo_over_ppo"]
    print(f"MAPPO / PPO: median of paired rounds {rt['median_of_rounds']:.3f}, total/total {rt['mean']:.3f}, best/best {rt['best_over_best']:.3f}; target >= 0.9")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
