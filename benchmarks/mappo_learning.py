"""Learning benchmark: does the team learn, out of sample?

    python benchmarks/mappo_learning.py --out-dir benchmarks/results/mappo_learning --iterations 100
    python benchmarks/mappo_learning.py --out-dir benchmarks/results/mappo_learning --report

A run takes hours: run it from a snapshot of the code, so that editing the
working tree meanwhile cannot change what later runs execute::

    git archive HEAD | tar -x -C /tmp/snap && cd /tmp/snap && ALGOSPACE_COMMIT=$(git -C ~/repo rev-parse --short HEAD) \
        PYTHONPATH=/tmp/snap python benchmarks/mappo_learning.py --out-dir ~/repo/benchmarks/results/mappo_learning

Variants, on ``--presets`` (``simple_markets`` and ``complex_regimes``: their
default synthetic files, train split) and ``--seeds`` (0 1 2):

* ``rule``: the rule baseline, with buy-and-hold and flat (no training; once
  per preset);
* ``clone``: the cloned actors before fine-tuning (``algospace pretrain``,
  rule teacher, the recipe's settings, the run's seed);
* ``mappo`` / ``ippo``: MAPPO / independent PPO from scratch (no warm start,
  no teacher term, no critic warm-up);
* ``warm_mappo`` / ``warm_ippo``: the recipe: that seed's clone, then
  fine-tuning (critic warm-up, decaying KL to the clone);
* ``default``: ``algospace train`` with no arguments (the default recipe with
  its own iterations; ``--default-seeds``);
* ``canary``: MAPPO from scratch with the test-only look-ahead feature
  (``env.leak_future_bars``), ``--canary-iterations``.

Every trained run but ``default`` gets the same budget: ``--iterations``
training iterations of 16,384 env steps (100: 1.6 million steps, about 5
minutes on this 2-core machine when it is quiet; a count of steps, not of
seconds, so a busy machine changes the wall time, not the result), the
settings of ``tune_configs/mappo.yaml`` otherwise. The checkpoint evaluated is the run's best by its validation score
(val split; test bars are never seen before this evaluation). Each team is
then run greedily once on the whole test split and on ``--fresh`` fresh
markets (new seeds of the same preset, start to end, never a training seed):
Sharpe from daily returns and per bar with block-bootstrap 95% intervals, max
drawdown, win rate, consensus, trades and turnover (trades per 1,000 bars),
beside the baselines on the same bars (the ``rule`` run holds them).

Each run writes its raw result to ``--out-dir/<preset>-<variant>-s<seed>.json``
when it finishes; a restart skips runs whose file exists, so the benchmark can
span several sittings. ``--report`` prints the tables of what is there.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("rule", "clone", "warm_mappo", "mappo", "canary", "warm_ippo", "ippo", "default")  # run in this order
TRAINED = ("warm_mappo", "mappo", "warm_ippo", "ippo", "canary")
HEADLINE = ("sharpe_daily", "sharpe_daily_ci95", "sharpe_per_bar", "sharpe_per_bar_ci95", "max_drawdown", "win_rate", "consensus_rate", "trades", "total_return", "bars")
SCRATCH = {"training.warm_start": None, "algorithm.teacher_kl_coeff": 0.0, "algorithm.critic_warmup_steps": 0}


def run_name(preset: str, variant: str, seed: int) -> str:
    return f"{preset}-{variant}-s{seed}"


def _atomic_json(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=float))
    os.replace(tmp, path)


def _headline(metrics: dict) -> dict:
    out = {k: metrics.get(k) for k in HEADLINE}
    bars = metrics.get("bars") or 0
    out["turnover_per_1000"] = 1000.0 * metrics.get("trades", 0) / bars if bars else None
    return out


def evaluate_team(policy, data: str, fresh: int, *, baselines: bool = False, env_overrides: dict | None = None) -> dict:
    """Test split (whole) and fresh markets of the team (and baselines), in
    the env the team was trained in (``env_overrides``: its checkpoint's
    costs, rewards, the canary's look-ahead ...)."""
    from rllib_algospace.evaluation import run_policy
    from rllib_algospace.evaluation.fresh import CONSENSUS_POLICIES, evaluate_fresh_markets, run_series_metrics
    from rllib_algospace.policies import RuleTeamPolicy, buy_and_hold_policy, flat_policy

    policies = {"team": policy}
    if baselines:
        policies = {"rule": RuleTeamPolicy(), "buy_and_hold": buy_and_hold_policy, "flat": flat_policy}
    test = {}
    for name, p in policies.items():
        run = run_policy(p, data=data, split="test", full_split=True, env_overrides=env_overrides)
        test[name] = _headline(run_series_metrics(run, with_consensus=name in CONSENSUS_POLICIES or name == "team"))
    out = {"test": test, "fresh": {}}
    if fresh:
        if baselines:
            # the team slot holds the rule; buy-and-hold and flat come with it
            found = evaluate_fresh_markets(policies["rule"], env_config={"data": data}, n=fresh, progress=lambda m: None)
            pooled = found["pooled"]
            out["fresh"] = {"rule": _headline(pooled["team"]), "buy_and_hold": _headline(pooled["buy_and_hold"]), "flat": _headline(pooled["flat"])}
            out["fresh_per_market_sharpe_daily"] = {"rule": [m["results"]["team"]["sharpe_daily"] for m in found["markets"]], "buy_and_hold": [m["results"]["buy_and_hold"]["sharpe_daily"] for m in found["markets"]]}
        else:
            found = evaluate_fresh_markets(policy, env_config={"data": data}, n=fresh, baselines=False, env_overrides=env_overrides, progress=lambda m: None)
            out["fresh"] = {"team": _headline(found["pooled"]["team"])}
            out["fresh_per_market_sharpe_daily"] = {"team": [m["results"]["team"]["sharpe_daily"] for m in found["markets"]]}
            out["targets_met"] = found["targets_met"]
        out["fresh_seeds"] = found["seeds"]
    return out


def overrides_for(args, preset: str, variant: str, seed: int, storage: str) -> dict:
    o = {
        "experiment.name": run_name(preset, variant, seed),
        "experiment.storage_path": storage,
        "experiment.seed": seed,
        "experiment.verbose": 1,
        "data.preset": preset,
    }
    if variant != "default":
        o.update({
            "experiment.stop.training_iteration": args.canary_iterations if variant == "canary" else args.iterations,
            "experiment.stop.timesteps_total": None,
            "experiment.stop.time_budget": None,
            "experiment.checkpoint.every_minutes": None,
        })
    if variant in ("mappo", "ippo", "canary"):
        o.update(SCRATCH)
    if variant in ("ippo", "warm_ippo"):
        o["algorithm.centralized_critic"] = False
    if variant == "canary":
        o["env.leak_future_bars"] = args.canary_leak_bars
    if variant != "default" and args.set:
        from rllib_algospace.config import parse_overrides

        o.update(parse_overrides(args.set))  # an experiment's change, on every trained run
    return o


def clone_file(args, preset: str, seed: int) -> Path:
    return Path(args.storage) / f"clone-{preset}-s{seed}.pt"


def make_clone(args, preset: str, seed: int) -> tuple[Path, dict]:
    from rllib_algospace.config import load_config
    from rllib_algospace.teacher import load_warm_start
    from rllib_algospace.training import dataset_path, prepare_warm_start

    path = clone_file(args, preset, seed)
    if not path.is_file():
        cfg = load_config(None, {"data.preset": preset, "experiment.seed": seed, "training.warm_start": "rule"})
        prepare_warm_start(cfg, dataset_path(cfg), out=str(path))
    return path, load_warm_start(path)["meta"]


def one_run(args, preset: str, variant: str, seed: int) -> dict:
    from rllib_algospace.config import load_config
    from rllib_algospace.checkpoints import ModuleTeamPolicy, checkpoint_env_overrides, checkpoint_metadata, find_checkpoint, trial_scores
    from rllib_algospace.training import dataset_path, train

    cfg = load_config(None, {"data.preset": preset, "experiment.seed": seed})
    data = dataset_path(cfg)
    doc = {"preset": preset, "variant": variant, "seed": seed, "data": data}
    t0 = time.perf_counter()
    if variant == "rule":
        doc.update(evaluate_team(None, data, args.fresh, baselines=True))
        doc["seed"] = None
    elif variant == "clone":
        path, meta = make_clone(args, preset, seed)
        doc["pretrain"] = {k: meta.get(k) for k in ("teacher", "steps", "epochs", "val_agreement", "seconds")}
        doc.update(evaluate_team(ModuleTeamPolicy.from_warm_start(path), data, args.fresh))
    else:
        o = overrides_for(args, preset, variant, seed, args.storage)
        if variant.startswith("warm_"):
            o["training.warm_start"] = str(make_clone(args, preset, seed)[0])
        cfg = load_config(None, o)
        from rllib_algospace.tune_session import clear_experiment, experiment_exists

        if experiment_exists(cfg):
            clear_experiment(cfg)  # an unfinished attempt: start the run again
        t_train = time.perf_counter()
        outcome = train(cfg)
        doc["train"] = {
            "overrides": {k: v for k, v in o.items() if not k.startswith("experiment.name")},
            "wall_s": round(time.perf_counter() - t_train, 1),
            "iterations": outcome.iterations,
            "env_steps": int(outcome.metrics.get("num_env_steps_sampled_lifetime", 0) or 0),
            "error": outcome.error,
            "best_checkpoint": outcome.best_checkpoint,
        }
        if outcome.best_checkpoint is None:
            raise RuntimeError(f"{variant}: no checkpoint ({outcome.error})")
        meta = checkpoint_metadata(find_checkpoint(outcome.best_checkpoint))
        doc["train"]["best_iteration"] = meta.get("training_iteration")
        # the validation curve (val split, every evaluation): what a recipe choice may look at
        doc["train"]["val_sharpe"] = trial_scores(Path(outcome.best_checkpoint).parent)
        env_overrides = checkpoint_env_overrides(meta.get("env_config") or {})
        doc["evaluation_env_overrides"] = env_overrides
        doc.update(evaluate_team(ModuleTeamPolicy.from_checkpoint(outcome.best_checkpoint), data, args.fresh, env_overrides=env_overrides))
    doc["wall_s"] = round(time.perf_counter() - t0, 1)
    return doc


# -- report ---------------------------------------------------------------------------------
def _f(x, fmt="{:+.2f}"):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _pct(x):
    return _f(x, "{:.1%}")


def _ci(m):
    lo, hi = m.get("sharpe_daily_ci95") or (None, None)
    return f"{_f(m.get('sharpe_daily'))} [{_f(lo)}, {_f(hi)}]"


def load_runs(out_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out_dir.glob("*.json")) if not p.name.startswith("_")]


def report(out_dir: Path) -> str:
    runs = load_runs(out_dir)
    lines = []
    for where in ("fresh", "test"):
        lines.append(f"\n{where}: " + ("pooled over the fresh markets" if where == "fresh" else "the whole test split of the training file"))
        lines.append("| preset | variant | seed | Sharpe daily [95% CI] | Sharpe/bar | max DD | win rate | consensus | trades | turnover /1000 bars |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for r in runs:
            for name, m in r.get(where, {}).items():
                label = r["variant"] if name == "team" else name
                lines.append(f"| {r['preset']} | {label} | {'-' if r['seed'] is None else r['seed']} | {_ci(m)} | {_f(m.get('sharpe_per_bar'))} | {_pct(m.get('max_drawdown'))} | "
                             f"{_pct(m.get('win_rate'))} | {_pct(m.get('consensus_rate'))} | {m.get('trades')} | {_f(m.get('turnover_per_1000'), '{:.2f}')} |")
    lines.append("\nmean over seeds (fresh-market Sharpe daily; per-seed values)")
    lines.append("| preset | variant | runs | mean Sharpe daily | per seed | seeds meeting all targets |")
    lines.append("|---|---|---|---|---|---|")
    groups: dict = {}
    for r in runs:
        if r["variant"] == "rule" or "team" not in r.get("fresh", {}):
            continue
        groups.setdefault((r["preset"], r["variant"]), []).append(r)
    for (preset, variant), rs in sorted(groups.items()):
        vals = [r["fresh"]["team"]["sharpe_daily"] for r in rs]
        met = sum(all(r.get("targets_met", {}).values()) and r["fresh"]["team"]["sharpe_daily_ci95"][0] > 0 for r in rs)
        lines.append(f"| {preset} | {variant} | {len(rs)} | {_f(statistics.fmean(vals))} | {', '.join(_f(v) for v in vals)} | {met}/{len(rs)} |")
    for r in runs:
        if r.get("train"):
            t = r["train"]
            val = t.get("val_sharpe") or {}
            curve = f"; val Sharpe best {_f(max(val.values()))}, mean of the last half {_f(statistics.fmean(list(val.values())[len(val) // 2:]))}" if val else ""
            lines.append(f"- {r['preset']} {r['variant']} s{r['seed']}: {t['iterations']} iterations, {t['env_steps']:,} env steps in {t['wall_s']:.0f} s; best checkpoint iteration {t.get('best_iteration')}{curve}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", default="benchmarks/results/mappo_learning")
    p.add_argument("--presets", nargs="+", default=["simple_markets", "complex_regimes"])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--default-seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--iterations", type=int, default=100, help="training iterations per run (16,384 env steps each)")
    p.add_argument("--canary-iterations", type=int, default=40)
    p.add_argument("--canary-leak-bars", type=int, default=6)
    p.add_argument("--fresh", type=int, default=5, help="fresh markets per evaluation")
    p.add_argument("--storage", default="/tmp/algospace_learning", help="experiments and clones (not part of the results)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides of every trained run but `default` (an experiment: give it its own --out-dir and --storage)")
    p.add_argument("--report", action="store_true", help="print the tables of the results in --out-dir and stop")
    args = p.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.report:
        print(report(out_dir))
        return 0
    import torch

    import ray

    # (run from an exported snapshot, so later edits of the working tree cannot reach the runs' workers)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip() or os.environ.get("ALGOSPACE_COMMIT", "")
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__, "ray": ray.__version__, "commit": commit}
    _atomic_json(out_dir / "_settings.json", {"command": " ".join([sys.executable.split("/")[-1], *sys.argv]), "args": vars(args), "machine": machine})
    plan = []
    for variant in [v for v in VARIANTS if v in args.variants]:
        for preset in args.presets:
            if variant == "rule":
                plan.append((preset, variant, 0))
            elif variant == "default":
                plan += [(preset, variant, s) for s in args.default_seeds] if preset == "simple_markets" else []
            elif variant == "canary":
                plan += [(preset, variant, args.seeds[0])] if preset == "simple_markets" else []
            else:
                plan += [(preset, variant, s) for s in args.seeds]
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        for i, (preset, variant, seed) in enumerate(plan):
            target = out_dir / f"{run_name(preset, variant, seed)}.json"
            if target.exists():
                print(f"[{i + 1}/{len(plan)}] {target.name}: done before, skipped", flush=True)
                continue
            print(f"[{i + 1}/{len(plan)}] {preset} {variant} seed {seed} ...", flush=True)
            doc = one_run(args, preset, variant, seed)
            doc["machine"] = machine
            _atomic_json(target, doc)
            m = doc.get("fresh", {}).get("team") or doc.get("fresh", {}).get("rule") or {}
            print(f"[{i + 1}/{len(plan)}] {preset} {variant} seed {seed}: fresh Sharpe daily {_ci(m)}, max DD {_pct(m.get('max_drawdown'))}, "
                  f"win {_pct(m.get('win_rate'))}, trades {m.get('trades')} ({doc['wall_s']:.0f} s)", flush=True)
    finally:
        ray.shutdown()
    print(report(out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
