"""Stress tests and regime adaptability of a team policy (numpy, h5py,
matplotlib; no Ray).

Stress scenarios
----------------
Each scenario is evaluated on one split (normally ``test``) of a market file
*without touching the file*: a stressed copy is written to a temporary file
(``envs.data.stress.stressed_market_file``: only the split's bars change,
every feature is recomputed, the split bounds stay) and the team runs there.

``flash_crash``, ``volatility_x3``, ``trend_reversal``, ``overnight_gap``:
                     price scenarios, defined (with their parameters) in
                     ``envs.data.stress``.
``double_costs``     no data change: ``commission_bps`` and ``slippage_bps``
                     (the evaluated environment settings or the environment's
                     defaults) times ``factor`` (2).

Every scenario (and the unstressed reference) runs the policy greedily over
the whole split (``full_split``), and buy-and-hold beside it to show what the
scenario did to the market.

``stress_test_score``: the share of scenarios the team *survives*: its maximum
drawdown over the split stays at or below ``drawdown_limit`` (default 20%)
and the equity floor never ends the run. In [0, 1]; 1 = every scenario
survived. The report also gives per scenario the change of total return,
Sharpe and max drawdown against the unstressed run, their means
(``mean_return_change``, ``mean_sharpe_change``) and the worst scenario.

Regime adaptability
-------------------
:func:`regime_adaptability` groups the steps of an evaluation run by regime:
the ground-truth label of the bar acted on where the data has labels
(synthetic data), else the regime agent's own call at that step (``source``
says which). Per regime: steps, compounded return, annualised Sharpe, hit
rate (share of steps with a position whose return was positive), exposure,
and the regime agent's accuracy (with labels). ``dispersion`` summarises how
evenly the team does across regimes (regimes with at least ``min_steps``
steps): standard deviation and range of the per-regime Sharpe and return,
the best and worst regime, and the share of regimes with a positive return.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from envs.data.stress import BAR_PARAMS, BAR_SCENARIOS, scenario_params_in, stressed_market_file
from rllib_algospace.reports import atomic_figure, atomic_json, atomic_write, fmt, new_figure, to_html, to_markdown
from rllib_algospace.evaluation.runner import per_regime_metrics

COST_SCENARIOS = ("double_costs",)
SCENARIOS = BAR_SCENARIOS + COST_SCENARIOS
COST_PARAMS: dict[str, dict] = {"double_costs": {"factor": 2.0}}
DEFAULT_PARAMS: dict[str, dict] = {**BAR_PARAMS, **COST_PARAMS}
DESCRIPTIONS = {
    "flash_crash": "close falls {drop:.0%} over {bars} bars at {at:.0%} of the split, then recovers {rebound:.0%} of it over {rebound_bars} bars",
    "volatility_x3": "log returns scaled x{factor:g} around the trend from {at:.0%} of the split on",
    "trend_reversal": "sign of every return flipped from {at:.0%} of the split on",
    "overnight_gap": "a {gap:+.0%} open gap at {at:.0%} of the split",
    "double_costs": "commission and slippage x{factor:g} (no data change)",
}
DEFAULT_DRAWDOWN_LIMIT = 0.20
SCORE_DEFINITION = (
    "share of stress scenarios in which the team's max drawdown stays at or below the drawdown limit "
    "and the equity floor never ends the run (1 = all survived)"
)


# -- scenarios ---------------------------------------------------------------------------
def scenario_params(scenario: str, **overrides) -> dict:
    return scenario_params_in(DEFAULT_PARAMS, scenario, overrides)


def describe_scenario(scenario: str, **overrides) -> str:
    return DESCRIPTIONS[scenario].format(**scenario_params(scenario, **overrides))


def cost_overrides(env_overrides: dict | None = None, factor: float = 2.0) -> dict:
    """``env_overrides`` with ``commission_bps`` and ``slippage_bps`` (their
    values there, else the environment defaults) times ``factor``."""
    from envs.market.config import MarketEnvConfig

    defaults = MarketEnvConfig()
    out = dict(env_overrides or {})
    for key in ("commission_bps", "slippage_bps"):
        out[key] = float(out.get(key, getattr(defaults, key))) * factor
    return out


def resolve_data_path(data, env_overrides: dict | None = None) -> str:
    """The market file the environment would read (``None``: the default
    synthetic data of the configured task)."""
    if data is not None:
        return str(data)
    from envs.data.default import default_dataset_path
    from envs.market.config import MarketEnvConfig

    task = (env_overrides or {}).get("task", MarketEnvConfig().task)
    return str(default_dataset_path(task))


# -- regime adaptability ---------------------------------------------------------------------
def regime_adaptability(run, *, min_steps: int = 20) -> dict:
    """Per-regime performance of an :class:`~rllib_algospace.evaluation.EvaluationRun`
    (see the module docstring): ``per_regime_metrics`` by the ground-truth
    labels, or by the regime agent's calls where the data has none, and how
    much the results vary between regimes."""
    detected = not np.any(np.asarray(run.regime_label) >= 0)
    source = "detected" if detected else "ground_truth"
    regimes = per_regime_metrics(run, detected=detected)
    counted = {name: v for name, v in regimes.items() if v["steps"] >= min_steps}
    sharpes = np.array([v["sharpe"] for v in counted.values()], dtype=np.float64)
    returns = np.array([v["return"] for v in counted.values()], dtype=np.float64)
    dispersion = {
        "regimes_counted": len(counted),
        "min_steps": int(min_steps),
        "sharpe_std": float(sharpes.std(ddof=1)) if len(sharpes) > 1 else float("nan"),
        "sharpe_range": float(sharpes.max() - sharpes.min()) if len(sharpes) else float("nan"),
        "return_std": float(returns.std(ddof=1)) if len(returns) > 1 else float("nan"),
        "return_range": float(returns.max() - returns.min()) if len(returns) else float("nan"),
        "worst_regime": min(counted, key=lambda k: counted[k]["sharpe"]) if counted else None,
        "best_regime": max(counted, key=lambda k: counted[k]["sharpe"]) if counted else None,
        "min_sharpe": float(sharpes.min()) if len(sharpes) else float("nan"),
        "positive_share": float(np.mean(returns > 0)) if len(returns) else float("nan"),
    }
    return {"source": source, "regimes": regimes, "dispersion": dispersion}


# -- the stress test ------------------------------------------------------------------------------
class StressResult(dict):
    """The stress report as a plain dict; the runs behind it are in ``.runs``
    (``{"reference" | scenario: {"team": run, "buy_and_hold": run}}``)."""

    runs: dict


def _summary(metrics: dict) -> dict:
    keys = ("total_return", "sharpe", "sortino", "max_drawdown", "trades", "exposure", "costs", "terminated_early", "bars")
    return {k: metrics.get(k, float("nan")) for k in keys}


def stress_test_score(scenarios: dict, drawdown_limit: float = DEFAULT_DRAWDOWN_LIMIT) -> float:
    """The share of ``scenarios`` (name -> ``{"team": metrics}``) the team
    survives (see the module docstring); NaN for no scenarios."""
    if not scenarios:
        return float("nan")
    return float(np.mean([survived(s["team"], drawdown_limit) for s in scenarios.values()]))


def survived(metrics: dict, drawdown_limit: float = DEFAULT_DRAWDOWN_LIMIT) -> bool:
    return bool(metrics["max_drawdown"] <= drawdown_limit and not metrics.get("terminated_early", False))


def stress_test(
    policy,
    *,
    data: str | os.PathLike | None = None,
    split: str = "test",
    env_overrides: dict | None = None,
    scenarios=SCENARIOS,
    params: dict[str, dict] | None = None,
    drawdown_limit: float = DEFAULT_DRAWDOWN_LIMIT,
    seed: int = 0,
    workdir: str | os.PathLike | None = None,
    reference=None,
) -> StressResult:
    """Run ``policy`` (and buy-and-hold) over ``split`` of ``data``
    unstressed and under each scenario. ``params``: per-scenario parameter
    overrides. ``workdir``: keep the stressed market files there (default: a
    temporary folder, removed afterwards). ``reference``: an already computed
    unstressed full-split run of the policy with the same settings (else it
    is run here). Returns a :class:`StressResult`."""
    from rllib_algospace.evaluation import run_policy
    from rllib_algospace.policies import buy_and_hold_policy

    params = dict(params or {})
    unknown = sorted((set(scenarios) | set(params)) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown stress scenario {unknown[0]!r}; scenarios are {', '.join(SCENARIOS)}")
    data_path = resolve_data_path(data, env_overrides)
    overrides = dict(env_overrides or {})

    def runs_on(path, env):
        team = run_policy(policy, data=path, split=split, full_split=True, env_overrides=env, seed=seed)
        bh = run_policy(buy_and_hold_policy, data=path, split=split, full_split=True, env_overrides=env, seed=seed)
        return {"team": team, "buy_and_hold": bh}

    all_runs = {}
    if reference is not None and reference.meta.get("full_split") and reference.meta.get("split") == split:
        bh = run_policy(buy_and_hold_policy, data=data_path, split=split, full_split=True, env_overrides=overrides, seed=seed)
        all_runs["reference"] = {"team": reference, "buy_and_hold": bh}
    else:
        all_runs["reference"] = runs_on(data_path, overrides)
    ref = all_runs["reference"]["team"].metrics

    tmp = None
    folder = Path(workdir) if workdir is not None else None
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="algospace-stress-")
        folder = Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    out_scenarios = {}
    try:
        for name in scenarios:
            p = scenario_params(name, **params.get(name, {}))
            if name in COST_SCENARIOS:
                path, env = data_path, cost_overrides(overrides, p["factor"])
            else:
                path = stressed_market_file(data_path, name, folder / f"stress-{name}.h5", split=split, **p)
                env = overrides
            runs = runs_on(str(path), env)
            all_runs[name] = runs
            team = runs["team"].metrics
            out_scenarios[name] = {
                "description": DESCRIPTIONS[name].format(**p),
                "params": p,
                "team": _summary(team),
                "buy_and_hold": _summary(runs["buy_and_hold"].metrics),
                "change": {k: team[k] - ref[k] for k in ("total_return", "sharpe", "max_drawdown")},
                "survived": survived(team, drawdown_limit),
            }
    finally:
        if tmp is not None:
            tmp.cleanup()
    worst = min(out_scenarios, key=lambda k: out_scenarios[k]["team"]["total_return"]) if out_scenarios else None
    result = StressResult(
        {
            "data": data_path,
            "split": split,
            "drawdown_limit": float(drawdown_limit),
            "score": stress_test_score(out_scenarios, drawdown_limit),
            "score_definition": SCORE_DEFINITION,
            "mean_return_change": float(np.mean([s["change"]["total_return"] for s in out_scenarios.values()])) if out_scenarios else float("nan"),
            "mean_sharpe_change": float(np.mean([s["change"]["sharpe"] for s in out_scenarios.values()])) if out_scenarios else float("nan"),
            "worst_scenario": worst,
            "reference": {"team": _summary(ref), "buy_and_hold": _summary(all_runs["reference"]["buy_and_hold"].metrics)},
            "scenarios": out_scenarios,
        }
    )
    result.runs = all_runs
    return result




def stress_figure(result: StressResult):
    """Equity of the team (top) and of buy-and-hold (bottom) over the split, unstressed and per scenario."""
    fig, (top, bottom) = new_figure(2, 1, size=(11, 7.5), sharex=True)
    for name, runs in result.runs.items():
        style = {"color": "black", "lw": 1.6, "zorder": 3} if name == "reference" else {"lw": 1.0, "alpha": 0.85}
        label = "unstressed" if name == "reference" else name
        for ax, key in ((top, "team"), (bottom, "buy_and_hold")):
            run = runs[key]
            ax.plot(np.arange(1, len(run.step_return) + 1), run.chained_equity / run.meta["initial_equity"], label=label, **style)
    top.set_title(f"stress tests on the {result['split']} split: team (stress_test_score {fmt(result['score'])}, drawdown limit {result['drawdown_limit']:.0%})", fontsize=9)
    bottom.set_title("buy & hold under the same scenarios", fontsize=9)
    for ax in (top, bottom):
        ax.axhline(1.0, color="black", lw=0.6, alpha=0.5)
        ax.set_ylabel("equity / initial")
        ax.grid(alpha=0.25)
    top.legend(fontsize=8, loc="best")
    bottom.set_xlabel("step")
    fig.tight_layout()
    return fig


def stress_blocks(result: dict, image: str | None = None, level: int = 2) -> list[tuple]:
    """Report blocks of a stress result (a table per scenario row)."""
    ref = result["reference"]["team"]
    rows = [["unstressed", fmt(ref["total_return"], "pct"), fmt(ref["sharpe"]), fmt(ref["max_drawdown"], "pct"), fmt(ref["trades"], "int"), fmt(ref["costs"]), "", "", fmt(result["reference"]["buy_and_hold"]["total_return"], "pct"), fmt(result["reference"]["buy_and_hold"]["max_drawdown"], "pct"), fmt(survived(ref, result["drawdown_limit"]))]]
    for name, s in result["scenarios"].items():
        t = s["team"]
        rows.append([name, fmt(t["total_return"], "pct"), fmt(t["sharpe"]), fmt(t["max_drawdown"], "pct"), fmt(t["trades"], "int"), fmt(t["costs"]), fmt(s["change"]["total_return"], "pct"), fmt(s["change"]["sharpe"]), fmt(s["buy_and_hold"]["total_return"], "pct"), fmt(s["buy_and_hold"]["max_drawdown"], "pct"), fmt(s["survived"])])
    blocks = [
        ("h", level, f"Stress tests ({result['split']} split)"),
        ("p", f"**stress_test_score = {fmt(result['score'])}**: {result['score_definition']}; drawdown limit {result['drawdown_limit']:.0%}. "
              f"Mean change against the unstressed run: return {fmt(result['mean_return_change'], 'pct')}, Sharpe {fmt(result['mean_sharpe_change'])}; worst scenario: {result['worst_scenario']}."),
        ("table", ["scenario", "return", "Sharpe", "max DD", "trades", "costs", "Δ return", "Δ Sharpe", "B&H return", "B&H max DD", "survived"], rows),
        ("ul", [f"`{name}`: {s['description']}" for name, s in result["scenarios"].items()]),
    ]
    if image:
        blocks.append(("img", image, "stress tests"))
    return blocks


def regime_blocks(adapt: dict, level: int = 2, title: str = "Regime adaptability") -> list[tuple]:
    source = "ground-truth regime labels" if adapt["source"] == "ground_truth" else "the regime agent's own calls (the data has no labels)"
    rows = []
    for name, v in adapt["regimes"].items():
        rows.append([name, fmt(v["steps"], "int"), fmt(v["step_share"], "pct"), fmt(v["return"], "pct"), fmt(v["sharpe"]), fmt(v["hit_rate"], "pct"), fmt(v["exposure"], "pct"), fmt(v.get("regime_accuracy"), "pct")])
    d = adapt["dispersion"]
    return [
        ("h", level, title),
        ("p", f"Steps grouped by {source}."),
        ("table", ["regime", "steps", "share", "return", "Sharpe", "hit rate", "exposure", "regime accuracy"], rows),
        ("p", f"Dispersion over the {d['regimes_counted']} regimes with at least {d['min_steps']} steps: Sharpe std {fmt(d['sharpe_std'])}, "
              f"range {fmt(d['sharpe_range'])}; return std {fmt(d['return_std'], 'pct')}; best {d['best_regime']}, worst {d['worst_regime']}; "
              f"positive in {fmt(d['positive_share'], 'pct')} of them."),
    ]


def add_stress_section(policy, team_run, out_dir, *, data, split: str, env_overrides: dict | None, seed: int = 0, json_path=None) -> dict:
    """For ``algospace evaluate --stress``: run the stress tests and the regime
    adaptability of ``team_run``, add both to ``json_path`` (the evaluation
    JSON, rewritten atomically) and write ``stress.md``, ``stress.html`` and
    ``stress.png`` into ``out_dir``. Returns the sections and file paths."""
    out = Path(out_dir)
    result = stress_test(policy, data=data, split=split, env_overrides=env_overrides, seed=seed, reference=team_run)
    adapt = regime_adaptability(team_run if team_run is not None else result.runs["reference"]["team"])
    png = atomic_figure(out / "stress.png", stress_figure(result))
    blocks = stress_blocks(result, image="stress.png") + regime_blocks(adapt)
    md = atomic_write(out / "stress.md", to_markdown(blocks))
    html = atomic_write(out / "stress.html", to_html(blocks, "stress tests"))
    if json_path is not None:
        document = json.loads(Path(json_path).read_text())
        document["stress"] = dict(result)
        document["regime_adaptability"] = adapt
        atomic_json(json_path, document)
    return {"stress": dict(result), "regime_adaptability": adapt, "stress_md": str(md), "stress_html": str(html), "stress_png": str(png)}


def add_ensemble_stress_section(manifest, report: dict, *, seed: int = 0) -> dict:
    """:func:`add_stress_section` for an ensemble evaluated by
    ``rllib_algospace.ensemble_policy.evaluate_ensemble`` (``report`` is its return
    value; the regime adaptability comes from the ensemble's unstressed
    full-split run)."""
    from rllib_algospace.ensemble_policy import EnsembleTeamPolicy
    from rllib_algospace.checkpoints import checkpoint_env_overrides, checkpoint_metadata

    policy = EnsembleTeamPolicy.from_manifest(str(manifest))
    env_config = getattr(policy, "env_config", None)
    if env_config is None:
        checkpoints = [p for p in getattr(policy, "checkpoints", []) if p]
        env_config = checkpoint_metadata(checkpoints[0]).get("env_config", {}) if checkpoints else {}
    json_path = Path(report["json"])
    data = report.get("data") or env_config.get("data")
    return add_stress_section(policy, None, json_path.parent, data=data, split=report["split"], env_overrides=checkpoint_env_overrides(env_config), seed=seed, json_path=json_path)


def format_stress(result: dict) -> str:
    """A plain-text table of a stress result (for the CLI)."""
    lines = [f"{'scenario':<16}{'return':>10}{'Sharpe':>9}{'max DD':>9}{'B&H ret':>10}  survived"]
    ref = result["reference"]
    lines.append(f"{'unstressed':<16}{fmt(ref['team']['total_return'], 'pct'):>10}{fmt(ref['team']['sharpe']):>9}{fmt(ref['team']['max_drawdown'], 'pct'):>9}{fmt(ref['buy_and_hold']['total_return'], 'pct'):>10}  {fmt(survived(ref['team'], result['drawdown_limit']))}")
    for name, s in result["scenarios"].items():
        t = s["team"]
        lines.append(f"{name:<16}{fmt(t['total_return'], 'pct'):>10}{fmt(t['sharpe']):>9}{fmt(t['max_drawdown'], 'pct'):>9}{fmt(s['buy_and_hold']['total_return'], 'pct'):>10}  {fmt(s['survived'])}")
    lines.append(f"stress_test_score {fmt(result['score'])} ({result['score_definition']})")
    return "\n".join(lines)
