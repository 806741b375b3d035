"""Learning benchmark: MAPPO (centralized critic) against independent PPO,
seeds 0, 1, 2, on the ``simple_markets`` and ``complex_regimes`` presets, each
run a fixed budget of training iterations, then the best checkpoint (by
validation Sharpe) evaluated greedily on the whole test split against the
buy-and-hold, flat and rule baselines.

    python benchmarks/mappo_learning.py --budget-minutes 38 --train-batch 2000 --eval-every 4

Hyperparameters: ``tune_configs/mappo.yaml`` with ``--train-batch`` (default
2000, half the file's, for more updates in the budget), ``--minibatch``
(256) and ``--epochs`` (5); MAPPO and PPO differ only in
``algorithm.centralized_critic``. No remote env runners (2 cores: the trial
samples and learns in one process), 4 envs per runner; validation every
``--eval-every`` iterations on ``--val-episodes`` 2 episodes of 2,048 ``val``
bars (RLlib runs one per vector sub-env, so 4 with 4 envs); a checkpoint at
every validation.

Without ``--iterations`` the per-run budget is calibrated first: one MAPPO
algorithm built directly (same session) is timed over ``--calibrate-iters``
iterations, one validation, a checkpoint and a test evaluation, and the
iterations are chosen so all runs fit in ``--budget-minutes`` of wall time.
Each run's CPU time is the trial process's own (``getrusage``, via a callback
added here).

All runs share one Ray session (Tune trials one after the other). Raw results
go to ``--out`` (JSON, rewritten after every run); ``--report FILE`` prints the
tables of such a file again without running anything.
User target on simple_markets: test Sharpe > 1.2, max drawdown < 15%, win rate > 52%.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

METRICS = ("sharpe", "max_drawdown", "win_rate", "total_return", "trades", "consensus_rate", "exposure", "profit_factor")
POLICIES = ("team", "buy_and_hold", "flat", "rule")
TARGET = {"sharpe": 1.2, "max_drawdown": 0.15, "win_rate": 0.52}


def overrides(args, preset: str, algo: str, seed: int, iterations: int, name: str) -> dict:
    return {
        "experiment.name": name,
        "experiment.storage_path": args.storage,
        "experiment.seed": seed,
        "experiment.stop.training_iteration": iterations,
        "experiment.stop.timesteps_total": None,
        "experiment.stop.time_budget": None,
        "experiment.checkpoint.every_iterations": args.eval_every,
        "experiment.checkpoint.every_minutes": None,
        "experiment.checkpoint.keep": 2,
        "experiment.verbose": 1,
        "data.preset": preset,
        "algorithm.centralized_critic": algo == "mappo",
        "algorithm.train_batch_size": args.train_batch,
        "algorithm.minibatch_size": args.minibatch,
        "algorithm.num_epochs": args.epochs,
        "resources.num_env_runners": 0,
        "resources.num_envs_per_env_runner": args.envs,
        "resources.num_learners": 0,
        "resources.num_gpus_per_learner": 0,
        "evaluation.every_iterations": args.eval_every,
        "evaluation.split": "val",
        "evaluation.episodes": args.val_episodes,
        "evaluation.episode_length": 2048,
        "evaluation.full_split": False,
    }


def _install_cpu_clock() -> None:
    """Wrap ``training.build_algorithm_config`` so every trial reports its own
    process CPU time (``proc_cpu_s``, since the algorithm was built) and max RSS."""
    from rllib_algospace import training

    original = training.build_algorithm_config

    def build(cfg, **kwargs):
        config = original(cfg, **kwargs)
        from ray.rllib.callbacks.callbacks import RLlibCallback

        class CpuClock(RLlibCallback):
            def on_algorithm_init(self, *, algorithm, **kw):
                import resource

                ru = resource.getrusage(resource.RUSAGE_SELF)
                self._cpu0 = ru.ru_utime + ru.ru_stime

            def on_train_result(self, *, algorithm, metrics_logger=None, result, **kw):
                import resource

                ru = resource.getrusage(resource.RUSAGE_SELF)
                result["proc_cpu_s"] = ru.ru_utime + ru.ru_stime - getattr(self, "_cpu0", 0.0)
                result["proc_maxrss_mb"] = ru.ru_maxrss / 1024

        base = config.callbacks_class
        config.callbacks((list(base) if isinstance(base, (list, tuple)) else [base]) + [CpuClock])
        return config

    training.build_algorithm_config = build


def calibrate(args) -> dict:
    """Time iterations, a validation, a checkpoint and a test evaluation of one
    MAPPO algorithm (the same settings as the runs) in this Ray session."""
    import tempfile

    from rllib_algospace.config import load_config
    from rllib_algospace.evaluate import evaluate_checkpoint
    from rllib_algospace.training import build_algorithm_config

    cfg = load_config(args.config, overrides(args, "simple_markets", "mappo", 0, 1, "calibration"))
    algo = build_algorithm_config(cfg).build_algo()
    try:
        # fewer iterations than --eval-every: no validation inside train()
        times = []
        for _ in range(args.calibrate_iters):
            t0 = time.perf_counter()
            algo.train()
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        algo.evaluate()
        val_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            t0 = time.perf_counter()
            algo.save(tmp)
            ckpt_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            evaluate_checkpoint(tmp, split="test", out=os.path.join(tmp, "eval"))
            test_s = time.perf_counter() - t0
    finally:
        algo.stop()
    return {"iteration_s": times, "validation_s": val_s, "checkpoint_s": ckpt_s, "test_eval_s": test_s}


def choose_iterations(args, cal: dict, runs: int) -> tuple[int, dict]:
    it_s = max(statistics.mean(cal["iteration_s"][1:] or cal["iteration_s"]), min(cal["iteration_s"])) * args.safety
    per_eval = cal["validation_s"] * args.safety + cal["checkpoint_s"]
    fixed = args.trial_overhead_s + cal["test_eval_s"]
    budget_per_run = args.budget_minutes * 60 / runs
    # iterations n (a multiple of eval_every): fixed + n * it_s + n / eval_every * per_eval <= budget
    n = (budget_per_run - fixed) / (it_s + per_eval / args.eval_every)
    n = max(args.eval_every, int(n // args.eval_every) * args.eval_every)
    est = fixed + n * it_s + n / args.eval_every * per_eval
    return n, {"iteration_s_assumed": it_s, "per_validation_s_assumed": per_eval, "fixed_s_assumed": fixed, "budget_per_run_s": budget_per_run, "estimated_run_s": est}


def progress_history(experiment_path: str) -> list[dict]:
    rows = []
    for path in glob.glob(os.path.join(experiment_path, "*", "progress.csv")):
        import csv

        with open(path) as fh:
            for r in csv.DictReader(fh):
                rows.append(r)
    return rows


def _f(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def one_run(args, preset: str, algo: str, seed: int, iterations: int) -> dict:
    from rllib_algospace.config import load_config
    from rllib_algospace.evaluate import evaluate_checkpoint
    from rllib_algospace.training import train

    name = f"{preset}-{algo}-s{seed}"
    cfg = load_config(args.config, overrides(args, preset, algo, seed, iterations, name))
    t0 = time.perf_counter()
    outcome = train(cfg)
    train_wall = time.perf_counter() - t0
    m = outcome.metrics
    history = progress_history(outcome.experiment_path)
    evals = []
    for r in history:
        it = int(float(r.get("training_iteration", 0) or 0))
        if it and it % args.eval_every == 0:
            evals.append({"iteration": it, "val_sharpe": _f(r.get("val_sharpe")), "val_total_return": _f(r.get("val_total_return")),
                          "train_sharpe": _f(r.get("env_runners/sharpe")), "train_return_mean": _f(r.get("env_runners/episode_return_mean"))})
    run = {
        "preset": preset, "algorithm": algo, "seed": seed, "iterations": outcome.iterations,
        "env_steps": int(m.get("num_env_steps_sampled_lifetime", outcome.iterations * args.train_batch)),
        "train_wall_s": round(train_wall, 1), "trial_time_total_s": _f(m.get("time_total_s")),
        "trial_cpu_s": _f(m.get("proc_cpu_s")), "trial_maxrss_mb": _f(m.get("proc_maxrss_mb")),
        "error": outcome.error, "best_checkpoint": outcome.best_checkpoint, "validation": evals,
    }
    if outcome.best_checkpoint:
        try:
            from rllib_algospace.team_policy import checkpoint_metadata, find_checkpoint

            run["best_checkpoint_iteration"] = checkpoint_metadata(find_checkpoint(outcome.best_checkpoint)).get("training_iteration")
        except Exception:
            pass
        t0 = time.perf_counter()
        ev = evaluate_checkpoint(outcome.best_checkpoint, split="test")
        run["test_eval_s"] = round(time.perf_counter() - t0, 1)
        run["test"] = {p: {k: _f(ev["results"][p].get(k)) for k in METRICS} for p in POLICIES if p in ev["results"]}
        run["test_bars"] = ev["results"]["team"].get("bars")
    return run


def meets_target(t: dict) -> bool:
    return (t.get("sharpe") or -1e9) > TARGET["sharpe"] and (t.get("max_drawdown") if t.get("max_drawdown") is not None else 1e9) < TARGET["max_drawdown"] and (t.get("win_rate") or 0) > TARGET["win_rate"]


def summarize(runs: list[dict]) -> dict:
    out = {}
    for preset in dict.fromkeys(r["preset"] for r in runs):
        out[preset] = {}
        for algo in dict.fromkeys(r["algorithm"] for r in runs):
            rs = [r for r in runs if r["preset"] == preset and r["algorithm"] == algo and "test" in r]
            if not rs:
                continue
            agg = {}
            for k in METRICS:
                vals = [r["test"]["team"][k] for r in rs if r["test"]["team"].get(k) is not None]
                agg[k] = {"mean": statistics.mean(vals) if vals else None, "std": statistics.stdev(vals) if len(vals) > 1 else 0.0 if vals else None, "n": len(vals)}
            agg["runs_meeting_target"] = sum(meets_target(r["test"]["team"]) for r in rs)
            agg["mean_meets_target"] = meets_target({k: agg[k]["mean"] for k in ("sharpe", "max_drawdown", "win_rate")})
            out[preset][algo] = agg
        base = next((r["test"] for r in runs if r["preset"] == preset and "test" in r), None)
        if base:
            out[preset]["baselines"] = {p: base[p] for p in POLICIES[1:] if p in base}
    return out


def _pct(x):
    return "n/a" if x is None else f"{x:.1%}"


def _num(x, fmt="{:+.2f}"):
    return "n/a" if x is None else fmt.format(x)


def print_tables(runs: list[dict], summary: dict) -> None:
    print("\n| preset | algorithm | seed | best ckpt iter | test Sharpe | max DD | win rate | return | trades | consensus |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        t = r.get("test", {}).get("team")
        if not t:
            print(f"| {r['preset']} | {r['algorithm']} | {r['seed']} | - | failed: {r.get('error')} |")
            continue
        print(f"| {r['preset']} | {r['algorithm']} | {r['seed']} | {r.get('best_checkpoint_iteration', '?')} | {_num(t['sharpe'])} | {_pct(t['max_drawdown'])} | "
              f"{_pct(t['win_rate'])} | {_pct(t['total_return'])} | {_num(t['trades'], '{:.0f}')} | {_pct(t['consensus_rate'])} |")
    print("\n| preset | policy | test Sharpe | max DD | win rate | return | trades | runs meeting target |")
    print("|---|---|---|---|---|---|---|---|")
    for preset, d in summary.items():
        for algo, a in d.items():
            if algo == "baselines":
                continue
            n = a["sharpe"]["n"]
            # win rate is undefined for a run without trades: its mean is over the runs that traded
            ms = lambda k, f: (f"{f(a[k]['mean'])} ± {f(a[k]['std']).lstrip('+')}" + (f" (n={a[k]['n']})" if a[k]["n"] != n else "")) if a[k]["mean"] is not None else "n/a (no trades)"
            print(f"| {preset} | {algo} (mean ± std, n={a['sharpe']['n']}) | {ms('sharpe', _num)} | {ms('max_drawdown', _pct)} | {ms('win_rate', _pct)} | "
                  f"{ms('total_return', _pct)} | {ms('trades', lambda x: _num(x, '{:.0f}'))} | {a['runs_meeting_target']}/{a['sharpe']['n']} |")
        for p, t in d.get("baselines", {}).items():
            print(f"| {preset} | {p} | {_num(t['sharpe'])} | {_pct(t['max_drawdown'])} | {_pct(t['win_rate'])} | {_pct(t['total_return'])} | {_num(t['trades'], '{:.0f}')} | - |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["simple_markets", "complex_regimes"])
    p.add_argument("--algos", nargs="+", default=["mappo", "ppo"], choices=["mappo", "ppo"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=None, help="per run (default: calibrated to --budget-minutes)")
    p.add_argument("--budget-minutes", type=float, default=40.0, help="wall time for all runs together")
    p.add_argument("--train-batch", type=int, default=2000)
    p.add_argument("--minibatch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--envs", type=int, default=4)
    p.add_argument("--eval-every", type=int, default=4)
    p.add_argument("--val-episodes", type=int, default=2)
    p.add_argument("--calibrate-iters", type=int, default=3)
    p.add_argument("--safety", type=float, default=1.15, help="factor on measured times when calibrating")
    p.add_argument("--trial-overhead-s", type=float, default=15.0, help="Tune start/stop per run, assumed")
    p.add_argument("--config", default="tune_configs/mappo.yaml")
    p.add_argument("--storage", default=f"/tmp/mappo_learning/{time.strftime('%Y%m%d-%H%M%S')}")
    p.add_argument("--out", default="benchmarks/results/mappo_learning.json")
    p.add_argument("--report", default=None, metavar="JSON", help="only print the tables of a results file written before")
    args = p.parse_args()
    if args.report:
        with open(args.report) as fh:
            saved = json.load(fh)
        print_tables(saved["runs"], saved["summary"])
        print(json.dumps({k: saved.get(k) for k in ("per_run_budget", "simple_markets_target", "elapsed_s")}))
        return
    args.calibrate_iters = min(args.calibrate_iters, args.eval_every - 1) if args.eval_every > 1 else args.calibrate_iters

    import ray
    import torch

    torch.set_num_threads(1)  # calibrate as a Tune trial runs (Ray starts it with OMP_NUM_THREADS=1)
    started = time.perf_counter()
    _install_cpu_clock()
    runs_plan = [(preset, algo, seed) for seed in args.seeds for preset in args.presets for algo in args.algos]
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, num_cpus=os.cpu_count())
    runs: list[dict] = []
    out = {"benchmark": "mappo_learning", "args": vars(args),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__, "ray": ray.__version__}}
    try:
        cal = None
        iterations = args.iterations
        if iterations is None:
            cal = calibrate(args)
            iterations, plan = choose_iterations(args, cal, len(runs_plan))
            out["calibration"] = {**cal, **plan}
            print(f"calibration: {json.dumps(out['calibration'])}", flush=True)
        out["per_run_budget"] = {"iterations": iterations, "env_steps": iterations * args.train_batch, "validations": iterations // args.eval_every}
        print(f"per-run budget: {iterations} iterations = {iterations * args.train_batch:,} env steps; {len(runs_plan)} runs", flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        for preset, algo, seed in runs_plan:
            t0 = time.perf_counter()
            run = one_run(args, preset, algo, seed, iterations)
            run["run_wall_s"] = round(time.perf_counter() - t0, 1)
            runs.append(run)
            t = run.get("test", {}).get("team", {})
            print(f"== {preset} {algo} seed {seed}: {run['iterations']} it, {run['env_steps']:,} steps, {run['run_wall_s']:.0f} s wall, "
                  f"{(run['trial_cpu_s'] or 0) / 60:.1f} CPU-min; best ckpt it {run.get('best_checkpoint_iteration')}; test Sharpe {_num(t.get('sharpe'))}, "
                  f"max DD {_pct(t.get('max_drawdown'))}, win {_pct(t.get('win_rate'))}, return {_pct(t.get('total_return'))}, trades {t.get('trades')}", flush=True)
            out["runs"] = runs
            out["summary"] = summarize(runs)
            out["elapsed_s"] = round(time.perf_counter() - started, 1)
            with open(args.out, "w") as fh:
                json.dump(out, fh, indent=1)
    finally:
        ray.shutdown()

    cpu = [r["trial_cpu_s"] for r in runs if r.get("trial_cpu_s")]
    out["per_run_budget"]["trial_cpu_minutes_mean"] = statistics.mean(cpu) / 60 if cpu else None
    out["per_run_budget"]["run_wall_minutes_mean"] = statistics.mean(r["run_wall_s"] for r in runs) / 60
    sm = out["summary"].get("simple_markets", {})
    out["simple_markets_target"] = {
        "target": TARGET,
        **{algo: {"mean_meets": sm[algo]["mean_meets_target"], "runs_meeting": sm[algo]["runs_meeting_target"]} for algo in args.algos if algo in sm},
    }
    with open(args.out, "w") as fh:
        json.dump(out, fh, indent=1)
    print_tables(runs, out["summary"])
    b = out["per_run_budget"]
    print(f"\nper run: {b['iterations']} iterations, {b['env_steps']:,} env steps, {b['trial_cpu_minutes_mean'] or float('nan'):.1f} CPU-minutes (trial process), "
          f"{b['run_wall_minutes_mean']:.1f} wall-minutes with test evaluation; whole benchmark {out['elapsed_s'] / 60:.1f} min")
    print(f"simple_markets target (Sharpe > 1.2, max DD < 15%, win rate > 52%): {json.dumps(out['simple_markets_target'])}")
    print(json.dumps({k: out[k] for k in ("benchmark", "per_run_budget", "summary", "simple_markets_target", "elapsed_s")}))


if __name__ == "__main__":
    main()
