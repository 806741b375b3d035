"""Evaluation on fresh synthetic markets: the training data's origin, seeds
training used refused, daily returns, intervals, targets, and the CLI
(``algospace evaluate CKPT --fresh-markets N``)."""
import json
import math
import shutil

import numpy as np
import pytest

from rllib_algospace.evaluation.fresh import (
    FreshMarketError,
    daily_returns,
    evaluate_fresh_markets,
    fresh_seeds,
    series_metrics,
    synthetic_origin,
    targets_met,
)


def test_synthetic_origin_and_a_file_that_is_not_synthetic(market_file, tmp_path):
    import h5py

    assert synthetic_origin(market_file) == ("simple_markets", 1, 12_000)
    other = tmp_path / "from_csv.h5"
    shutil.copy(market_file, other)
    with h5py.File(other, "a") as f:
        f.attrs["source"] = "csv:EURUSD_5m.csv"
    with pytest.raises(FreshMarketError, match=r"from_csv.h5: --fresh-markets needs synthetic training data.*'csv:EURUSD_5m.csv'") as info:
        synthetic_origin(other)
    assert "\n" not in str(info.value)


def test_seeds_training_used_are_refused():
    assert fresh_seeds(3, 10, {1: "train.h5"}) == [10, 11, 12]
    with pytest.raises(FreshMarketError, match=r"--fresh-seed 0: seed 1 made the training data \(train.h5\)"):
        fresh_seeds(3, 0, {1: "train.h5"})
    with pytest.raises(FreshMarketError, match="at least 1"):
        fresh_seeds(0, 10, {})


def test_daily_returns_from_bars():
    bar = 300
    day = 86_400
    timestamps = np.r_[np.arange(4) * bar, day + np.arange(3) * bar, 3 * day + np.arange(2) * bar]
    step = np.array([0.01, 0.0, -0.005, 0.002, 0.01, 0.01, -0.02, 0.0, 0.03])
    equity = np.cumprod(1 + step)
    expected = [equity[3] - 1.0, equity[6] / equity[3] - 1.0, equity[8] / equity[6] - 1.0]
    np.testing.assert_allclose(daily_returns(step, timestamps), expected)
    assert len(daily_returns(np.zeros(0), np.zeros(0))) == 0


def test_series_metrics_and_targets():
    rng = np.random.default_rng(0)
    n = 288 * 60  # 60 days of 5-minute bars
    step = rng.normal(2e-5, 1e-3, n)
    timestamps = np.arange(n) * 300
    m = series_metrics(step, timestamps, [1.0, -0.5, 2.0], [True, False, True, True], [True, True, True, True], bars_per_year=288 * 252)
    assert m["days"] == 60 and m["bars"] == n and m["trades"] == 3
    assert m["win_rate"] == pytest.approx(2 / 3) and m["consensus_rate"] == pytest.approx(3 / 4)
    low, high = m["sharpe_daily_ci95"]
    assert low < m["sharpe_daily"] < high and m["sharpe_per_bar_ci95"][0] < m["sharpe_per_bar"] < m["sharpe_per_bar_ci95"][1]
    assert targets_met({"sharpe_daily": 1.3, "max_drawdown": 0.1, "win_rate": 0.6, "consensus_rate": 0.9}) == dict.fromkeys(("sharpe_daily", "max_drawdown", "win_rate", "consensus_rate"), True)
    missed = targets_met({"sharpe_daily": 1.2, "max_drawdown": 0.15, "win_rate": math.nan, "consensus_rate": 0.81})
    assert missed == {"sharpe_daily": False, "max_drawdown": False, "win_rate": False, "consensus_rate": True}


def test_fresh_markets_run_start_to_end_beside_the_baselines(market_file):
    from rllib_algospace.policies import RuleTeamPolicy

    messages = []
    result = evaluate_fresh_markets(RuleTeamPolicy(), env_config={"data": market_file}, n=2, first_seed=1000, n_boot=200, progress=messages.append)
    assert result["seeds"] == [1000, 1001] and result["training_seeds"] == [1] and result["preset"] == "simple_markets"
    assert len(messages) == 2 and "seed 1000" in messages[0]
    paths = [m["data"] for m in result["markets"]]
    assert len(set(paths)) == 2 and market_file not in paths
    assert [synthetic_origin(p) for p in paths] == [("simple_markets", 1000, 12_000), ("simple_markets", 1001, 12_000)]
    for market in result["markets"]:
        # the rule as the team gives the rule baseline's figures: the same bars, start to end
        assert market["results"]["team"] == market["results"]["rule"]
        assert market["results"]["team"]["bars"] > 0.9 * 12_000 - 1_000
        assert market["results"]["flat"]["total_return"] == 0.0 and market["results"]["flat"]["trades"] == 0
        assert math.isnan(market["results"]["buy_and_hold"]["consensus_rate"])  # means nothing for a baseline
    pooled = result["pooled"]["team"]
    assert pooled["bars"] == sum(m["results"]["team"]["bars"] for m in result["markets"])
    assert pooled["max_drawdown"] == max(m["results"]["team"]["max_drawdown"] for m in result["markets"])
    assert set(result["targets_met"]) == {"sharpe_daily", "max_drawdown", "win_rate", "consensus_rate"}
    # the same seeds give the same markets and figures
    again = evaluate_fresh_markets(RuleTeamPolicy(), env_config={"data": market_file}, n=1, first_seed=1001, n_boot=200, progress=lambda _: None)
    assert again["markets"][0]["results"] == result["markets"][1]["results"]


@pytest.mark.slow
def test_evaluate_cli_with_fresh_markets(tiny_checkpoint, tmp_path, capsys):
    from rllib_algospace.cli import main

    out = tmp_path / "eval"
    assert main(["evaluate", tiny_checkpoint, "--fresh-markets", "1", "--fresh-seed", "500", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Sharpe daily [95% CI]" in printed and "fresh simple_markets markets (seeds 500; training used 1)" in printed
    assert "targets (team): sharpe_daily > 1.2:" in printed
    report = json.loads((out / "evaluation.json").read_text())
    assert set(report["targets_met"]) == {"test", "fresh_markets"}
    assert report["fresh_markets"]["seeds"] == [500] and set(report["intervals"]) == {"team", "buy_and_hold", "flat", "rule"}
    # a seed the training data used: one line, exit code 2
    assert main(["evaluate", tiny_checkpoint, "--fresh-markets", "2", "--fresh-seed", "0", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "seed 1 made the training data" in err



def test_sortino_from_daily_returns_beside_sharpe():
    import numpy as np

    from rllib_algospace.evaluation.fresh import daily_returns, series_metrics
    from rllib_algospace.evaluation.metrics import sortino_ratio

    rng = np.random.default_rng(0)
    r = rng.normal(2e-5, 1e-3, 288 * 60)
    ts = 1_700_000_000 + 300 * np.arange(len(r))
    m = series_metrics(r, ts, [], np.zeros(len(r), bool), np.zeros(len(r), bool), bars_per_year=288 * 252, n_boot=50)
    assert m["sortino_daily"] == sortino_ratio(daily_returns(r, ts), 252.0) and m["sortino_daily"] != 0.0
    assert sortino_ratio([0.01, 0.02], 252) == 0.0  # no losses
