"""The evaluation runner, the fixed policies and the report files (numpy only, no Ray)."""
import json
import math
import subprocess
import sys

import h5py
import numpy as np
import pytest

from envs.market.env import AGENTS, N_ACTIONS
from envs.market.trading import LONG, REGIME_ACTIONS, STRUCTURE_ACTIONS
from rllib_algospace.evaluation import EvaluationRun, evaluate_with_baselines, run_policy, write_report
from rllib_algospace.policies import (
    RandomTeamPolicy,
    RuleTeamPolicy,
    buy_and_hold_policy,
    compose_policy,
    flat_policy,
    rule_action,
    rule_policy,
)

COMMISSION = 1.0e-4  # MarketEnvConfig defaults: 1 bp commission, 0.5 bp slippage
SLIPPAGE = 0.5e-4


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    from envs.data.dataset import synth_market_file

    return str(synth_market_file(tmp_path_factory.mktemp("eval") / "m.h5", preset="simple_markets", n_bars=12_000, seed=1))


@pytest.fixture(scope="module")
def file_arrays(market):
    """Columns and splits read straight from the HDF5 file, independently of the env."""
    with h5py.File(market, "r") as f:
        bounds = {str(n.decode() if isinstance(n, bytes) else n): tuple(int(v) for v in b) for n, b in zip(f.attrs["split_names"], f.attrs["split_bounds"])}
        return {
            "splits": bounds,
            "open": f["base/open"][:],
            "close": f["base/close"][:],
            "timestamp": f["base/timestamp"][:],
            "label": f["base/regime_label"][:],
        }


@pytest.fixture(scope="module")
def full_runs(market):
    return {name: run_policy(p, data=market, split="test", full_split=True) for name, p in (("flat", flat_policy), ("bh", buy_and_hold_policy), ("rule", rule_policy))}


def test_flat_policy_never_trades(full_runs):
    run = full_runs["flat"]
    m = run.metrics
    assert m["trades"] == 0 and m["total_return"] == 0.0 and m["exposure"] == 0.0 and m["costs"] == 0.0
    assert np.all(run.equity == run.meta["initial_equity"]) and np.all(run.position == 0.0)
    assert math.isnan(m["consensus_rate"])  # nothing was ever proposed


def test_buy_and_hold_matches_the_split_return_minus_costs(full_runs, file_arrays):
    run = full_runs["bh"]
    start, stop = file_arrays["splits"]["test"]
    # Filled once at the open of the split's second bar (units = equity / open,
    # paying slippage and commission on that notional), then marked at the last close.
    entry_open = file_arrays["open"][start + 1]
    last_close = file_arrays["close"][stop - 1]
    expected = last_close / entry_open - (1 + SLIPPAGE) * (1 + COMMISSION)
    assert run.metrics["total_return"] == pytest.approx(expected, abs=1e-9)
    # ... which is the close-to-close return of the split less about 1.5 bp of costs
    close_to_close = last_close / file_arrays["close"][start] - 1
    assert run.metrics["total_return"] == pytest.approx(close_to_close - SLIPPAGE - COMMISSION, abs=2e-3)
    assert run.metrics["costs"] == pytest.approx(run.meta["initial_equity"] * (SLIPPAGE + COMMISSION * (1 + SLIPPAGE)))
    assert run.metrics["exposure"] == 1.0 and run.metrics["trades"] == 0  # never closed
    assert np.all(run.actions["tactical"] == LONG)
    assert run.metrics["consensus_rate"] == 1.0


def test_rule_baseline_trades(full_runs):
    m = full_runs["rule"].metrics
    assert m["trades"] > 0
    assert 0.0 <= m["consensus_rate"] <= 1.0
    assert 0.0 <= m["regime_accuracy"] <= 1.0
    assert m["costs"] > 0 and 0.0 < m["exposure"] < 1.0
    acts = full_runs["rule"].actions
    assert len(np.unique(acts["structure"])) > 1 and len(np.unique(acts["regime"])) > 1


def test_full_split_covers_exactly_the_split(full_runs, file_arrays):
    start, stop = file_arrays["splits"]["test"]
    for run in full_runs.values():
        assert list(run.start_bars) == [start] and not run.terminated_early
        np.testing.assert_array_equal(run.bar, np.arange(start + 1, stop))  # plus the reset bar `start`
        np.testing.assert_array_equal(run.timestamp, file_arrays["timestamp"][start + 1 : stop])
        np.testing.assert_allclose(run.close, file_arrays["close"][start + 1 : stop])
        np.testing.assert_array_equal(run.regime_label, file_arrays["label"][start : stop - 1])
        assert np.all(run.episode == 0) and np.all(run.step == np.arange(stop - 1 - start))
        assert run.metrics["bars"] == stop - 1 - start and run.metrics["episodes"] == 1


def test_equity_floor_termination_is_recorded(market, file_arrays):
    run = run_policy(buy_and_hold_policy, data=market, full_split=True, env_overrides={"equity_floor": 0.999})
    start, stop = file_arrays["splits"]["test"]
    assert run.terminated_early and run.metrics["terminated_early"]
    assert len(run.bar) < stop - 1 - start and run.equity[-1] < 0.999 * run.meta["initial_equity"]


def test_episodes_mode_is_deterministic_per_seed(market, file_arrays):
    kwargs = dict(data=market, split="test", episodes=3, episode_length=200)
    a = run_policy(rule_policy, seed=7, **kwargs)
    b = run_policy(rule_policy, seed=7, **kwargs)
    c = run_policy(rule_policy, seed=8, **kwargs)
    for name in ("episode", "bar", "equity", "exposure", "regime_label"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for agent in AGENTS:
        np.testing.assert_array_equal(a.actions[agent], b.actions[agent])
    assert a.metrics == pytest.approx(b.metrics, nan_ok=True)
    assert not np.array_equal(a.start_bars, c.start_bars)
    start, stop = file_arrays["splits"]["test"]
    assert a.n_episodes == 3 and np.all(np.bincount(a.episode) == 200)
    assert np.all((a.start_bars >= start) & (a.start_bars + 200 < stop))
    for ep, first in enumerate(a.start_bars):
        np.testing.assert_array_equal(a.bar[a.episode == ep], np.arange(first + 1, first + 201))


def test_several_episodes_chain_returns(market):
    run = run_policy(buy_and_hold_policy, data=market, episodes=3, episode_length=150, seed=1)
    # every episode starts again from the initial equity
    for ep in range(3):
        eq = run.equity[run.episode == ep]
        r = run.step_return[run.episode == ep]
        assert eq[-1] == pytest.approx(run.meta["initial_equity"] * np.prod(1 + r))
    assert run.metrics["total_return"] == pytest.approx(np.prod(1 + run.step_return) - 1)
    means = [m["total_return"] for m in run.episode_metrics]
    assert run.per_episode_mean["total_return"] == pytest.approx(np.mean(means))
    assert run.metrics["costs"] == pytest.approx(sum(m["costs"] for m in run.episode_metrics))
    assert list(run.episode_bounds) == [0, 150, 300]


def test_per_regime_keys_match_labels_present(full_runs, file_arrays):
    start, stop = file_arrays["splits"]["test"]
    labels = np.unique(file_arrays["label"][start : stop - 1])
    run = full_runs["rule"]
    assert set(run.per_regime) == {REGIME_ACTIONS[k] for k in labels if k >= 0}
    assert sum(v["steps"] for v in run.per_regime.values()) == len(run.step_return)
    total = 1.0
    for v in run.per_regime.values():
        total *= 1 + v["return"]
        assert 0 <= v["regime_accuracy"] <= 1 and 0 <= v["exposure"] <= 1
    assert total - 1 == pytest.approx(run.metrics["total_return"])  # the regimes' returns compound to the total
    assert sum(v["return_share"] for v in run.per_regime.values()) == pytest.approx(1.0)
    flat = full_runs["flat"].per_regime
    assert all(v["return"] == 0.0 and v["sharpe"] == 0.0 and math.isnan(v["return_share"]) for v in flat.values())


def test_baselines_report_json_and_png(market, tmp_path):
    results = evaluate_with_baselines(RandomTeamPolicy(3), data=market, split="val", episodes=2, episode_length=300, seed=5)
    assert set(results) == {"team", "buy_and_hold", "flat", "rule"}
    starts = {name: tuple(run.start_bars) for name, run in results.runs.items()}
    assert len(set(starts.values())) == 1  # the same bars for everybody
    assert results["flat"]["trades"] == 0 and "per_regime" in results["team"]
    json_path, png_path = write_report(results, results.runs["team"], tmp_path / "report")

    def no_constants(name):
        raise AssertionError(f"{name} in the JSON")

    doc = json.loads(json_path.read_text(), parse_constant=no_constants)
    assert set(doc["results"]) == {"team", "buy_and_hold", "flat", "rule"}
    assert doc["results"]["flat"]["consensus_rate"] is None  # NaN -> null
    assert doc["results"]["team"]["sharpe"] == pytest.approx(results["team"]["sharpe"])
    assert doc["meta"]["split"] == "val" and len(doc["episodes"]) == 2
    data = png_path.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["evaluation.json", "evaluation.png"]


def test_report_for_a_full_split_run(full_runs, tmp_path):
    run = full_runs["rule"]
    results = {"rule": run.summary()}
    json_path, png_path = write_report(results, run, tmp_path, baseline_runs={"buy_and_hold": full_runs["bh"]})
    assert json.loads(json_path.read_text())["results"]["rule"]["trades"] == run.metrics["trades"]
    assert png_path.stat().st_size > 1000
    assert isinstance(run, EvaluationRun) and json.dumps(run.to_dict(steps=True), default=float)


def test_runner_refuses_bad_arguments(market):
    with pytest.raises(ValueError, match="split"):
        run_policy(flat_policy, data=market, env_overrides={"split": "train"})
    with pytest.raises(ValueError, match="episode_length"):
        run_policy(flat_policy, data=market, episode_length=0)
    with pytest.raises(KeyError, match="risk"):
        run_policy(lambda obs: {"regime": 0, "structure": 2, "tactical": 0}, data=market, episodes=1, episode_length=5)


def test_rules_per_agent(market):
    from envs import algospace_market

    env = algospace_market.parallel_env(data=market, split="test", episode_length=50)
    try:
        obs, _ = env.reset(seed=0)
        first = buy_and_hold_policy(obs)
        assert first["structure"] == STRUCTURE_ACTIONS.index("strong_long") and first["tactical"] == LONG
        for _ in range(20):
            team = rule_policy(obs)
            for agent in AGENTS:
                assert team[agent] == rule_action(agent, obs[agent]) and 0 <= team[agent] < N_ACTIONS[agent]
            obs, *_ = env.step(team)
        assert buy_and_hold_policy(obs)["tactical"] == LONG
        mixed = compose_policy({"tactical": lambda o: LONG})(obs)
        assert mixed["tactical"] == LONG and mixed["regime"] == rule_action("regime", obs["regime"])
    finally:
        env.close()
    # the risk rule: no exposure beyond the drawdown limit, else full
    risk_obs = np.zeros(9 + 4 + 5 + 4, dtype=np.float32)
    risk_obs[4] = 1.2  # drawdown feature = 10 x 12%
    assert rule_action("risk", risk_obs) == 2 and RuleTeamPolicy(drawdown_limit=0.15).risk_rule(risk_obs) == 0
    with pytest.raises(KeyError):
        rule_action("nobody", risk_obs)


def test_no_ray_or_torch_imported():
    code = (
        "import sys, rllib_algospace.policies, rllib_algospace.evaluation, rllib_algospace.demo; "
        "bad = [m for m in ('ray', 'torch') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_comparison_table_blanks_agent_metrics_of_fixed_baselines():
    from rllib_algospace.evaluation.checkpoint import format_comparison

    row = {"total_return": 0.01, "sharpe": 1.0, "sortino": 1.5, "calmar": 2.0, "max_drawdown": 0.02, "win_rate": 0.5, "profit_factor": 1.2, "trades": 3, "exposure": 0.5, "consensus_rate": 1.0, "regime_accuracy": 0.6}
    text = format_comparison({"team": row, "buy_and_hold": row, "flat": row, "rule": row})
    lines = {line.split("  ")[0].strip(): line for line in text.splitlines()}
    assert "sharpe (per bar)" in lines and "sortino (per bar)" in lines
    consensus = lines["consensus_rate"].split()
    assert consensus[1:] == ["100.00%", "100.00%"]  # team and rule only; the fixed baselines are blank
    assert lines["regime_accuracy"].split()[1:] == ["60.00%", "60.00%"]


def test_tear_sheet_team_against_buy_and_hold(market_file, tmp_path):
    from rllib_algospace.evaluation import run_policy
    from rllib_algospace.evaluation.tearsheet import daily_series, drawdown_periods, monthly_returns, summary, write_tear_sheet

    team = run_policy(rule_policy, data=market_file, split="train", full_split=True)
    bh = run_policy(buy_and_hold_policy, data=market_file, split="train", full_split=True)
    days, r = daily_series(team.step_return, team.timestamp)
    assert len(days) == len(r) > 5 and np.all(np.diff(days.astype(np.int64)) > 0)
    s = summary(r, team.trade_pnls)
    assert s["total_return"] == pytest.approx(float(np.prod(1 + team.step_return) - 1), rel=1e-9)
    months = monthly_returns(days, r)
    assert np.prod([1 + v for m in months.values() for v in m.values()]) - 1 == pytest.approx(s["total_return"], rel=1e-9)
    worst = drawdown_periods(days, r)
    assert worst and worst[0]["depth"] == pytest.approx(s["max_drawdown"], rel=1e-9)
    assert all(a["depth"] >= b["depth"] for a, b in zip(worst, worst[1:]))
    path = write_tear_sheet(team, bh, tmp_path, title="rule on train")
    page = path.read_text()
    for section in ("Summary", "Equity", "Monthly returns", "Rolling Sharpe", "Drawdown periods", "Distribution of daily returns", "buy and hold", "Sharpe (daily returns)"):
        assert section in page, section
    assert page.count("data:image/png;base64,") == 3 and not list(tmp_path.glob("*.tmp"))


def test_evaluation_progress_bar(market_file, monkeypatch):
    from rllib_algospace.evaluation import runner

    seen = {}

    class Bar:
        def __init__(self, total, desc, unit="it"):
            seen.update(total=total, desc=desc, unit=unit, n=0)

        def update(self, n):
            seen["n"] += n

        def close(self):
            seen["closed"] = True

    monkeypatch.setattr(runner, "progress_bar", Bar)
    monkeypatch.setitem(runner._PROGRESS, "enabled", False)  # (a CLI test in this process may have turned bars on)
    run = runner.run_policy(rule_policy, data=market_file, split="val", full_split=True, progress="team")
    assert seen["total"] == len(run.step_return) and seen["closed"] and seen["desc"] == "team (val)" and seen["unit"] == "bars"
    assert seen["total"] - 256 < seen["n"] <= seen["total"]
    seen.clear()
    runner.run_policy(rule_policy, data=market_file, split="val", episodes=2, episode_length=100)
    assert seen == {}  # off unless asked (the CLI turns it on with show_progress)
