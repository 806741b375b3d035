"""``algospace select``: pick the best trained variant of an experiment folder
on the validation split, with significance, then report it once on test.

Candidates
----------
Every trial under the folder (``algospace train``, ``algospace tune``,
ensemble members: any folder whose checkpoints carry ``algospace.json``)
contributes its best checkpoint by the recorded ``val_sharpe`` (Tune's
``result.json`` / ``progress.csv`` row of the checkpoint's training
iteration; the latest checkpoint when no score was recorded). Each ensemble
manifest (``ensemble.json``) under the folder is one more candidate. More
kinds plug in through :data:`CANDIDATE_LOADERS` (kind -> loader returning the
team policy and its environment config) and :data:`MANIFEST_FILES` (file
name -> kind): anything with a manifest whose loader gives a team policy.

Selection
---------
Every candidate runs greedily over the whole ``split`` (default ``val``) with
its own environment settings, beside buy-and-hold on the same bars. They are
ranked by the Sharpe ratio of that run (annualised, as everywhere in the
project). For each candidate:

* a stationary block bootstrap confidence interval of its Sharpe ratio
  (:mod:`rllib_algospace.evaluation.stats`: Politis & Romano 1994, mean block length
  ``n^(1/3)``, percentile interval, seeded);
* paired bootstrap intervals (the same resampled blocks for both series) of
  its Sharpe minus buy-and-hold's, and of the winner's minus the runner-up's
  (for the others: their Sharpe minus the winner's);
* the probabilistic Sharpe ratio PSR(0) and the deflated Sharpe ratio (Bailey
  & López de Prado 2014) with ``N`` = the number of trials searched (the
  larger of the number of candidates and the number of trial folders, or
  ``n_trials``) and the variance of the candidates' per-step Sharpe ratios.

All candidates share one resampling plan (same ``seed``), so every interval
is computed on the same bootstrap samples.

Test
----
Only the winner touches the test split, once: it is evaluated against
buy-and-hold, flat and the rule baseline (``test/evaluation.json`` and
``.png``), with its bootstrap Sharpe interval, its paired difference from
buy-and-hold, its regime adaptability and the stress tests
(:mod:`rllib_algospace.evaluation.stress`).

Output (``out``, default ``<experiment>/selection_<split>``; every file
written atomically): ``selection.md``, ``selection.html`` (the same tables
and the images), ``selection.json`` (the same numbers; NaN as null) and the
plots ``val_equity.png``, ``val_drawdown.png``, ``val_regimes.png``,
``stress.png``.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rllib_algospace.evaluation import stats
from rllib_algospace.artifacts import RESULT_FILES
from rllib_algospace.ensemble_policy import MANIFEST_FILE as ENSEMBLE_MANIFEST, find_manifest
from rllib_algospace.reports import atomic_figure, atomic_json, atomic_write, fmt, new_figure, to_html, to_markdown
from rllib_algospace.evaluation.stress import regime_adaptability, regime_blocks, stress_blocks, stress_figure, stress_test
from rllib_algospace.checkpoints import METADATA_FILE, CheckpointError, best_checkpoints, checkpoint_env_overrides, finite_number, run_score

DATA_MISSING = "_data_missing"  # a candidate's training data that is gone (see checkpoints.checkpoint_data)

REFERENCES = [
    "Politis, D. N. & Romano, J. P. (1994). The stationary bootstrap. JASA 89(428), 1303-1313.",
    "Politis, D. N. & Romano, J. P. (1992). A circular block-resampling procedure for stationary data.",
    "Bailey, D. H. & López de Prado, M. (2012). The Sharpe ratio efficient frontier. Journal of Risk 15(2) (probabilistic Sharpe ratio).",
    "Bailey, D. H. & López de Prado, M. (2014). The deflated Sharpe ratio: correcting for selection bias, backtest overfitting and non-normality. JPM 40(5).",
    "Lo, A. W. (2002). The statistics of Sharpe ratios. FAJ 58(4) (variance of the Sharpe estimator).",
]


@dataclass
class Candidate:
    """One trained variant: a checkpoint (a trial's best) or a manifest."""

    name: str
    kind: str  # "checkpoint" | "ensemble" | any key of CANDIDATE_LOADERS
    path: str
    trial: str | None = None
    iteration: int | None = None
    score: float | None = None  # the recorded validation score of the chosen checkpoint
    note: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# -- candidate discovery ------------------------------------------------------------------------
# file name -> (kind, check(path) -> manifest path or None)
MANIFEST_FILES = {ENSEMBLE_MANIFEST: ("ensemble", find_manifest)}


def discover_candidates(experiment: str | os.PathLike, *, score: str | None = None, mode: str | None = None) -> tuple[list[Candidate], int]:
    """The candidates under ``experiment`` and the number of trial folders
    searched there (folders with a Tune result file or a checkpoint). Each
    trial offers its best checkpoint (``checkpoints.best_checkpoints``: by
    default the run's configured score)."""
    root = Path(experiment).expanduser()
    if not root.exists():
        raise CheckpointError(f"{root}: no such experiment folder")
    trials = {r.trial for r in best_checkpoints(root, score=score, mode=mode)} if root.is_dir() else set()
    if root.is_dir():
        for name in RESULT_FILES:
            trials.update(p.parent for p in root.rglob(name))
    candidates = []
    for r in best_checkpoints(root, score=score, mode=mode):
        trial = r.trial
        rel = trial.relative_to(root) if trial != root and root in trial.parents else Path(trial.name)
        candidates.append(Candidate(name=str(rel) if str(rel) != "." else trial.name, kind="checkpoint", path=str(r.path), trial=str(trial), iteration=r.iteration, score=r.score, note=r.note))
    if root.is_dir():
        for filename, (kind, check) in MANIFEST_FILES.items():
            for path in sorted(root.rglob(filename)):
                manifest = check(path)
                if manifest is None:
                    continue
                rel = manifest.parent.relative_to(root) if root in manifest.parents else Path(manifest.parent.name)
                label = f"{kind}:{rel}" if str(rel) != "." else f"{kind}:{root.name}"
                candidates.append(Candidate(name=label, kind=kind, path=str(manifest), note=f"{kind} manifest"))
    return candidates, len(trials)


# -- loading ------------------------------------------------------------------------------------------
def _load_checkpoint(c: Candidate):
    from rllib_algospace.checkpoints import ModuleTeamPolicy, checkpoint_metadata

    meta = checkpoint_metadata(c.path)
    env_config = dict(meta.get("env_config", {}))
    if meta.get("data_missing"):
        env_config[DATA_MISSING] = meta["data_missing"]
    return ModuleTeamPolicy.from_checkpoint(c.path), env_config


def _load_ensemble(c: Candidate):
    from rllib_algospace.checkpoints import checkpoint_metadata

    try:
        from rllib_algospace.ensemble_policy import EnsembleTeamPolicy
    except ImportError:
        raise CheckpointError("ensemble support (rllib_algospace.ensemble) is not available") from None
    policy = EnsembleTeamPolicy.from_manifest(c.path)
    env_config = getattr(policy, "env_config", None)
    if env_config is None:
        checkpoints = [p for p in getattr(policy, "checkpoints", []) if p]
        if not checkpoints:
            raise CheckpointError(f"{c.path}: the ensemble's members have no checkpoints to read the env settings from")
        env_config = checkpoint_metadata(checkpoints[0]).get("env_config", {})
    return policy, env_config


# kind -> loader(candidate) -> (team policy, env_config of the checkpoint(s))
CANDIDATE_LOADERS = {"checkpoint": _load_checkpoint, "ensemble": _load_ensemble}


# -- selection -----------------------------------------------------------------------------------------
def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(a), len(b))
    return a[:n], b[:n]


def _interval_dict(iv: stats.Interval) -> dict:
    d = iv.to_dict()
    d["significant"] = bool(not iv.contains(0.0))
    return d


def select_best(
    experiment: str | os.PathLike,
    *,
    split: str = "val",
    test_split: str = "test",
    out: str | os.PathLike | None = None,
    data: str | None = None,
    score: str | None = None,
    n_boot: int = 1000,
    level: float = 0.95,
    block_length: float | None = None,
    seed: int = 0,
    n_trials: int | None = None,
    stress: bool = True,
    stress_drawdown_limit: float | None = None,
) -> dict:
    """Rank the candidates of ``experiment`` on ``split``, choose the best and
    report it once on ``test_split`` (see the module docstring). Returns the
    document written to ``selection.json`` plus ``files`` (the report paths)."""
    from rllib_algospace.evaluation import evaluate_with_baselines, run_policy, write_report
    from rllib_algospace.policies import buy_and_hold_policy

    if split == test_split:
        raise ValueError(f"the selection split and the test split must differ (both {split!r})")
    root = Path(experiment).expanduser()
    if score is None:
        score = run_score(root)[0]
    candidates, trial_count = discover_candidates(root, score=score)
    if not candidates:
        raise CheckpointError(f"{root}: no trained variant in it (no {METADATA_FILE} checkpoints, no ensemble manifest)")
    out_dir = Path(out) if out else (root if root.is_dir() else root.parent) / f"selection_{split}"
    out_dir.mkdir(parents=True, exist_ok=True)

    # -- evaluate every candidate on the selection split
    evaluated, skipped = [], []
    bh_runs: dict[str, object] = {}
    for c in candidates:
        loader = CANDIDATE_LOADERS.get(c.kind)
        if loader is None:
            skipped.append({"name": c.name, "path": c.path, "reason": f"no loader for kind {c.kind!r}"})
            continue
        try:
            policy, env_config = loader(c)
        except (CheckpointError, OSError, ValueError, KeyError) as exc:
            skipped.append({"name": c.name, "path": c.path, "reason": " ".join(str(exc).split())})
            continue
        missing = env_config.pop(DATA_MISSING, None)
        if missing and not data:
            skipped.append({"name": c.name, "path": c.path, "reason": missing})
            continue
        c_data = data or env_config.get("data")
        overrides = checkpoint_env_overrides(env_config)
        run = run_policy(policy, data=c_data, split=split, full_split=True, env_overrides=overrides, seed=seed)
        key = json.dumps([run.meta["data"], overrides], sort_keys=True, default=str)
        if key not in bh_runs:
            bh_runs[key] = run_policy(buy_and_hold_policy, data=c_data, split=split, full_split=True, env_overrides=overrides, seed=seed)
        evaluated.append({"candidate": c, "policy": policy, "data": c_data, "overrides": overrides, "run": run, "bh": bh_runs[key]})
    if not evaluated:
        raise CheckpointError(f"{root}: no candidate could be loaded ({'; '.join(s['name'] + ': ' + s['reason'] for s in skipped)})")

    # -- statistics on one shared resampling plan
    n_max = max(len(e["run"].step_return) for e in evaluated)
    length = float(stats.default_block_length(n_max) if block_length is None else block_length)
    plans: dict[int, np.ndarray] = {}

    def plan(n: int) -> np.ndarray:
        if n not in plans:
            plans[n] = stats.bootstrap_indices(n, n_boot, block_length=length, seed=seed)
        return plans[n]

    per_step = np.array([stats.sharpe_ratio(e["run"].step_return) for e in evaluated])
    n_searched = max(len(evaluated), trial_count, int(n_trials or 0))
    trials_var = float(np.var(per_step, ddof=1)) if len(per_step) >= 2 else None
    for e in evaluated:
        run, bh = e["run"], e["bh"]
        bpy = run.meta["bars_per_year"]
        r = run.step_return
        e["sharpe"] = float(run.metrics["sharpe"])
        e["sharpe_ci"] = stats.sharpe_ci(r, periods_per_year=bpy, level=level, indices=plan(len(r)), method="stationary", block_length=length)
        a, b = _paired(r, bh.step_return)
        e["vs_buy_and_hold"] = stats.sharpe_difference_ci(a, b, periods_per_year=bpy, level=level, indices=plan(len(a)), block_length=length)
        e["dsr"] = stats.deflated_sharpe_of_returns(r, n_searched, trials_var)
        e["regimes"] = regime_adaptability(run)
    evaluated.sort(key=lambda e: (-e["sharpe"], -(e["dsr"]["dsr"] if finite_number(e["dsr"]["dsr"]) else -1.0), e["candidate"].name))
    best = evaluated[0]
    for i, e in enumerate(evaluated):
        other = best if i else (evaluated[1] if len(evaluated) > 1 else None)
        if other is None:
            e["vs_other"], e["vs_other_name"] = None, None
            continue
        a, b = _paired(e["run"].step_return, other["run"].step_return)
        same_bars = e["run"].meta["data"] == other["run"].meta["data"] and np.array_equal(e["run"].timestamp[: len(a)], other["run"].timestamp[: len(b)])
        e["vs_other_name"] = other["candidate"].name
        e["vs_other"] = stats.sharpe_difference_ci(a, b, periods_per_year=e["run"].meta["bars_per_year"], level=level, indices=plan(len(a)), block_length=length) if same_bars else None

    # -- the winner, once on the test split
    policy = best["policy"]
    comparison = evaluate_with_baselines(policy, data=best["data"], split=test_split, full_split=True, seed=seed, env_overrides=best["overrides"])
    test_dir = out_dir / test_split
    test_json, test_png = write_report(comparison, comparison.runs["team"], test_dir)
    team_test = comparison.runs["team"]
    bpy_t = team_test.meta["bars_per_year"]
    rt = team_test.step_return
    test_plan = stats.bootstrap_indices(len(rt), n_boot, block_length=length, seed=seed)
    a, b = _paired(rt, comparison.runs["buy_and_hold"].step_return)
    test = {
        "results": dict(comparison),
        "sharpe_ci": _interval_dict(stats.sharpe_ci(rt, periods_per_year=bpy_t, level=level, indices=test_plan, block_length=length)),
        "vs_buy_and_hold": _interval_dict(stats.sharpe_difference_ci(a, b, periods_per_year=bpy_t, level=level, indices=test_plan if len(a) == len(rt) else None, block_length=length, n_boot=n_boot, seed=seed)),
        "psr": stats.deflated_sharpe_of_returns(rt, 1)["psr"],
        "regime_adaptability": regime_adaptability(team_test),
        "evaluation_json": str(test_json),
        "evaluation_png": str(test_png),
    }
    stress_result = None
    if stress:
        kw = {} if stress_drawdown_limit is None else {"drawdown_limit": stress_drawdown_limit}
        stress_result = stress_test(policy, data=best["data"], split=test_split, env_overrides=best["overrides"], seed=seed, reference=team_test, **kw)
        test["stress"] = dict(stress_result)

    # -- the document
    rows = []
    for rank, e in enumerate(evaluated, 1):
        c: Candidate = e["candidate"]
        rows.append(
            {
                "rank": rank,
                **c.to_dict(),
                "data": e["run"].meta["data"],
                "metrics": e["run"].summary(),
                "sharpe_ci": _interval_dict(e["sharpe_ci"]),
                "vs_buy_and_hold": _interval_dict(e["vs_buy_and_hold"]),
                "vs_other": None if e["vs_other"] is None else {"name": e["vs_other_name"], "role": "runner_up" if rank == 1 else "best", **_interval_dict(e["vs_other"])},
                "psr": e["dsr"]["psr"],
                "dsr": e["dsr"],
                "regime_adaptability": e["regimes"],
            }
        )
    bh0 = best["bh"]
    document = {
        "experiment": str(root),
        "split": split,
        "test_split": test_split,
        "score": score,
        "method": {
            "rank_by": f"Sharpe ratio of one greedy pass over the {split} split",
            "bootstrap": "stationary (Politis & Romano 1994), percentile intervals, paired for differences",
            "block_length": length,
            "block_length_rule": "max(1, round(n ** (1/3)))" if block_length is None else "given",
            "n_boot": n_boot,
            "level": level,
            "seed": seed,
            "n_trials": n_searched,
            "n_trials_rule": "max(candidates evaluated, trial folders found, n_trials given)",
            "trial_folders": trial_count,
            "trials_sharpe_variance": trials_var,
            "trials_sharpe_variance_rule": "variance of the candidates' per-step Sharpe ratios" if trials_var is not None else "(1 + SR^2/2)/(T-1) (a single candidate)",
            "references": REFERENCES,
        },
        "buy_and_hold": {"metrics": bh0.summary(), "sharpe_ci": _interval_dict(stats.sharpe_ci(bh0.step_return, periods_per_year=bh0.meta["bars_per_year"], level=level, indices=plan(len(bh0.step_return)), block_length=length))},
        "candidates": rows,
        "skipped": skipped,
        "chosen": {"name": best["candidate"].name, "kind": best["candidate"].kind, "path": best["candidate"].path},
        "test": test,
    }

    # -- plots and files
    files = {}
    files["val_equity"] = str(atomic_figure(out_dir / "val_equity.png", _equity_figure(evaluated, split)))
    files["val_drawdown"] = str(atomic_figure(out_dir / "val_drawdown.png", _drawdown_figure(evaluated, split)))
    files["val_regimes"] = str(atomic_figure(out_dir / "val_regimes.png", _regime_figure(evaluated, split)))
    if stress_result is not None:
        files["stress"] = str(atomic_figure(out_dir / "stress.png", stress_figure(stress_result)))
    files["test_evaluation_png"] = str(test_png)
    files["test_evaluation_json"] = str(test_json)
    document["files"] = {k: os.path.relpath(v, out_dir) for k, v in files.items()}
    blocks = report_blocks(document)
    files["markdown"] = str(atomic_write(out_dir / "selection.md", to_markdown(blocks)))
    files["html"] = str(atomic_write(out_dir / "selection.html", to_html(blocks, f"model selection: {root.name}")))
    files["json"] = str(out_dir / "selection.json")
    atomic_json(out_dir / "selection.json", document)
    return {**document, "files": files, "out": str(out_dir)}


# -- figures ---------------------------------------------------------------------------------------------
def _label(e) -> str:
    return e["candidate"].name


def _equity_figure(evaluated: list[dict], split: str):
    fig, ax = new_figure(size=(11, 5))
    for e in evaluated:
        run = e["run"]
        ax.plot(np.arange(1, len(run.step_return) + 1), run.chained_equity / run.meta["initial_equity"], lw=1.1, label=f"{_label(e)} (Sharpe {fmt(e['sharpe'])})")
    bh = evaluated[0]["bh"]
    ax.plot(np.arange(1, len(bh.step_return) + 1), bh.chained_equity / bh.meta["initial_equity"], color="tab:gray", lw=1.0, ls="--", label="buy & hold")
    ax.axhline(1.0, color="black", lw=0.6, alpha=0.5)
    ax.set_title(f"candidates on the {split} split (one greedy pass)", fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel("equity / initial")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def _drawdown_figure(evaluated: list[dict], split: str):
    fig, ax = new_figure(size=(11, 4))
    for e in evaluated:
        curve = e["run"].chained_equity
        peak = np.maximum.accumulate(np.r_[e["run"].meta["initial_equity"], curve])[1:]
        ax.plot(np.arange(1, len(curve) + 1), -(1.0 - curve / peak) * 100.0, lw=1.0, label=_label(e))
    ax.set_title(f"drawdown on the {split} split", fontsize=10)
    ax.set_xlabel("step")
    ax.set_ylabel("drawdown %")
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def _regime_figure(evaluated: list[dict], split: str):
    from envs.data.bars import REGIME_NAMES

    order = {name: i for i, name in enumerate(REGIME_NAMES)}
    regimes = sorted({name for e in evaluated for name in e["regimes"]["regimes"]}, key=lambda r: (order.get(r, len(order)), r))
    fig, (ax_s, ax_r) = new_figure(1, 2, size=(12, 4.5))
    width = 0.8 / max(1, len(evaluated))
    x = np.arange(len(regimes))
    for i, e in enumerate(evaluated):
        per = e["regimes"]["regimes"]
        sharpe = [per.get(r, {}).get("sharpe", np.nan) for r in regimes]
        ret = [100.0 * per.get(r, {}).get("return", np.nan) for r in regimes]
        ax_s.bar(x + i * width - 0.4 + width / 2, np.nan_to_num(sharpe), width, label=_label(e))
        ax_r.bar(x + i * width - 0.4 + width / 2, np.nan_to_num(ret), width, label=_label(e))
    source = evaluated[0]["regimes"]["source"].replace("_", " ")
    for ax, title in ((ax_s, "Sharpe per regime"), (ax_r, "return per regime (%)")):
        ax.set_xticks(x, regimes)
        ax.axhline(0.0, color="black", lw=0.6)
        ax.set_title(f"{title} on the {split} split ({source})", fontsize=9)
        ax.grid(alpha=0.25, axis="y")
    ax_s.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


# -- the report ------------------------------------------------------------------------------------------
def _ci(iv: dict | None, kind: str = "num") -> str:
    if not iv:
        return "n/a"
    star = " *" if iv.get("significant") else ""
    return f"{fmt(iv['estimate'], kind)} [{fmt(iv['low'], kind)}, {fmt(iv['high'], kind)}]{star}"


def report_blocks(doc: dict) -> list[tuple]:
    m = doc["method"]
    level = f"{m['level']:.0%}"
    rows = []
    for c in doc["candidates"]:
        met = c["metrics"]
        vs = c["vs_other"]
        rows.append(
            [
                c["rank"],
                f"**{c['name']}**" if c["rank"] == 1 else c["name"],
                c["kind"],
                _ci(c["sharpe_ci"]),
                _ci(c["vs_buy_and_hold"]),
                (f"{_ci(vs)} vs {vs['name']}" if vs else "n/a"),
                fmt(c["psr"]),
                fmt(c["dsr"]["dsr"]),
                fmt(met["total_return"], "pct"),
                fmt(met["max_drawdown"], "pct"),
                fmt(met["trades"], "int"),
                fmt(c["score"]),
                "" if c["iteration"] is None else c["iteration"],
            ]
        )
    bh = doc["buy_and_hold"]
    chosen = doc["chosen"]
    test = doc["test"]
    res = test["results"]
    test_rows = []
    for key, kind in (("total_return", "pct"), ("sharpe", "num"), ("sortino", "num"), ("max_drawdown", "pct"), ("win_rate", "pct"), ("trades", "int"), ("exposure", "pct"), ("regime_accuracy", "pct")):
        test_rows.append([key] + [fmt(res[name].get(key), kind) for name in res])
    blocks = [
        ("h", 1, f"Model selection: {Path(doc['experiment']).name}"),
        ("p", f"Experiment `{doc['experiment']}`: {len(doc['candidates'])} candidate(s) ranked by Sharpe on the **{doc['split']}** split; "
              f"the winner, **{chosen['name']}**, was evaluated once on the **{doc['test_split']}** split."),
        ("h", 2, f"Ranking ({doc['split']} split)"),
        ("table", ["rank", "candidate", "kind", f"Sharpe [{level} CI]", "Δ Sharpe vs B&H", "Δ Sharpe vs runner-up / best", "PSR", "DSR", "return", "max DD", "trades", f"recorded {doc['score']}", "iteration"], rows),
        ("p", f"Buy & hold on the same bars: Sharpe {_ci(bh['sharpe_ci'])}, return {fmt(bh['metrics']['total_return'], 'pct')}, max drawdown {fmt(bh['metrics']['max_drawdown'], 'pct')}."),
        ("ul", [
            f"Intervals: stationary block bootstrap (Politis & Romano 1994), mean block length {m['block_length']:g} ({m['block_length_rule']}), {m['n_boot']} resamples, seed {m['seed']}, percentile {level} intervals; * = the interval excludes 0. Differences are paired (the same resampled blocks for both series).",
            f"PSR = P(true Sharpe > 0) (Bailey & López de Prado 2012). DSR = P(true Sharpe > SR0), SR0 = the expected maximum Sharpe of N = {m['n_trials']} skill-less trials ({m['n_trials_rule']}), with the variance of the trials' per-step Sharpe ratios {fmt(m['trials_sharpe_variance']) if m['trials_sharpe_variance'] is not None else 'n/a'} ({m['trials_sharpe_variance_rule']}); skewness and kurtosis corrected (Bailey & López de Prado 2014).",
            "Δ vs runner-up / best: for the winner its Sharpe minus the runner-up's; for the others their Sharpe minus the winner's.",
        ]),
        ("img", doc["files"]["val_equity"], "equity on the selection split"),
        ("img", doc["files"]["val_drawdown"], "drawdown on the selection split"),
        ("img", doc["files"]["val_regimes"], "per-regime performance"),
    ]
    if doc["skipped"]:
        blocks.append(("p", "Skipped: " + "; ".join(f"{s['name']} ({s['reason']})" for s in doc["skipped"])))
    blocks += [
        ("h", 2, f"The chosen model on the {doc['test_split']} split (once)"),
        ("p", f"`{chosen['path']}`: Sharpe {_ci(test['sharpe_ci'])}, Δ Sharpe vs buy & hold {_ci(test['vs_buy_and_hold'])}, PSR {fmt(test['psr'])}."),
        ("table", ["metric"] + list(res), test_rows),
        ("img", doc["files"]["test_evaluation_png"], "test evaluation"),
    ]
    blocks += regime_blocks(test["regime_adaptability"], level=3, title=f"Regime adaptability ({doc['test_split']} split)")
    if "stress" in test:
        blocks += stress_blocks(test["stress"], image=doc["files"].get("stress"), level=3)
    blocks += [("h", 2, "References"), ("ul", doc["method"]["references"])]
    return blocks


def format_selection(doc: dict) -> str:
    """The ranking and the test result as plain text (for the CLI)."""
    lines = [f"{'rank':<5}{'candidate':<44}{'Sharpe':>9}{'CI low':>9}{'CI high':>9}{'vs B&H':>9}{'DSR':>7}"]
    for c in doc["candidates"]:
        ci = c["sharpe_ci"]
        name = c["name"] if len(c["name"]) <= 42 else "..." + c["name"][-39:]
        lines.append(f"{c['rank']:<5}{name:<44}{fmt(ci['estimate']):>9}{fmt(ci['low']):>9}{fmt(ci['high']):>9}{fmt(c['vs_buy_and_hold']['estimate']):>9}{fmt(c['dsr']['dsr']):>7}")
    test = doc["test"]
    ci = test["sharpe_ci"]
    lines.append(f"chosen: {doc['chosen']['name']} ({doc['chosen']['path']})")
    lines.append(f"{doc['test_split']} split: Sharpe {fmt(ci['estimate'])} [{fmt(ci['low'])}, {fmt(ci['high'])}], return {fmt(test['results']['team']['total_return'], 'pct')}, buy & hold {fmt(test['results']['buy_and_hold']['total_return'], 'pct')}")
    if "stress" in test:
        lines.append(f"stress_test_score {fmt(test['stress']['score'])} (worst scenario: {test['stress']['worst_scenario']})")
    return "\n".join(lines)
