"""Trading metrics of hand-built equity curves against hand-computed numbers (no Ray)."""
import math

import numpy as np
import pytest

from rllib_algospace.evaluation.metrics import EpisodeRecord, max_drawdown, trading_metrics

# returns +10%, -10%, +10%, +20%
EQUITY = [100.0, 110.0, 99.0, 108.9, 130.68]
BARS_PER_YEAR = 4.0  # the four returns are exactly one year: annual return = total return


def test_hand_built_curve():
    m = trading_metrics(np.array(EQUITY), BARS_PER_YEAR)
    # mean 0.075; deviations .025, -.175, .025, .125 -> sum of squares .0475; sample var .0475 / 3
    std = math.sqrt(0.0475 / 3)
    assert m["total_return"] == pytest.approx(0.3068)
    assert m["sharpe"] == pytest.approx(0.075 / std * 2.0)  # sqrt(4 bars per year) = 2
    assert m["sharpe"] == pytest.approx(1.192079, rel=1e-6)
    # downside deviation sqrt(mean(min(r, 0)^2)) = sqrt(0.01 / 4) = 0.05
    assert m["sortino"] == pytest.approx(0.075 / 0.05 * 2.0)
    # peak 110 -> trough 99
    assert m["max_drawdown"] == pytest.approx(0.1)
    assert m["annual_return"] == pytest.approx(0.3068)
    assert m["calmar"] == pytest.approx(3.068)
    assert m["bars"] == 4


def test_annualisation_scales_with_bar_frequency():
    daily = trading_metrics(np.array(EQUITY), 252.0)
    assert daily["sharpe"] == pytest.approx(0.075 / math.sqrt(0.0475 / 3) * math.sqrt(252.0))
    years = 4 / 252.0
    assert daily["annual_return"] == pytest.approx(1.3068 ** (1 / years) - 1)
    assert daily["calmar"] == pytest.approx(daily["annual_return"] / 0.1)


def test_max_drawdown_takes_the_deepest_fall():
    assert max_drawdown(np.array([100, 120, 90, 130, 91, 140])) == pytest.approx(0.3)  # 130 -> 91
    assert max_drawdown(np.array([100, 101, 102])) == 0.0
    assert max_drawdown(np.array([])) == 0.0


def test_flat_curve_and_trades():
    m = trading_metrics(np.full(10, 100.0), BARS_PER_YEAR, trade_pnls=[10.0, -5.0, 20.0, -10.0], exposure=[0, 0.5, -1, 0, 0, 0, 0, 0, 0])
    assert m["total_return"] == 0.0 and m["sharpe"] == 0.0 and m["sortino"] == 0.0 and m["calmar"] == 0.0
    assert m["max_drawdown"] == 0.0
    assert m["win_rate"] == 0.5 and m["profit_factor"] == pytest.approx(30.0 / 15.0) and m["trades"] == 4
    assert m["exposure"] == pytest.approx(2 / 9)
    no_trades = trading_metrics(np.full(3, 100.0), BARS_PER_YEAR)
    assert math.isnan(no_trades["win_rate"]) and math.isnan(no_trades["profit_factor"])
    assert trading_metrics(np.full(3, 1.0), 1.0, trade_pnls=[1.0])["profit_factor"] == math.inf


def _info(equity, *, agreed=False, entry=False, closed=None, costs=0.0):
    return {
        "equity": equity,
        "exposure": 0.0,
        "trade_closed": closed is not None,
        "trade_pnl": closed or 0.0,
        "agreed": agreed,
        "entry_proposed": entry,
        "costs": costs,
    }


def test_episode_record_consensus_and_regime_accuracy():
    rec = EpisodeRecord(initial_equity=100.0, bars_per_year=BARS_PER_YEAR)
    rec.add(_info(110.0, agreed=True, entry=True), regime_action=0, regime_label=0)
    rec.add(_info(99.0, entry=True, closed=-11.0), regime_action=1, regime_label=0)
    rec.add(_info(108.9), regime_action=2, regime_label=-1)  # unlabelled: not counted
    rec.add(_info(130.68, agreed=True, entry=True, costs=1.5), regime_action=3, regime_label=3)
    m = rec.metrics()
    assert m["total_return"] == pytest.approx(0.3068) and m["max_drawdown"] == pytest.approx(0.1)
    assert m["consensus_rate"] == pytest.approx(2 / 3)  # 2 of 3 entry proposals agreed
    assert m["regime_accuracy"] == pytest.approx(2 / 3)  # 2 hits of 3 labelled steps
    assert m["trades"] == 1 and m["win_rate"] == 0.0 and m["costs"] == 1.5
    empty = EpisodeRecord(initial_equity=100.0, bars_per_year=BARS_PER_YEAR)
    empty.add(_info(100.0), regime_action=0, regime_label=-1)
    assert math.isnan(empty.metrics()["consensus_rate"]) and math.isnan(empty.metrics()["regime_accuracy"])
