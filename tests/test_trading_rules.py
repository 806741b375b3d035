"""Joint-action rules (target states: consensus, risk caps) and exact accounting."""
import numpy as np
import pytest

from envs.market.portfolio import Account
from envs.market.trading import RISK_ACTIONS, STRUCTURE_ACTIONS, TACTICAL_ACTIONS, target_exposure

# structure: 0 strong short, 1 short, 2 neutral, 3 long, 4 strong long
# tactical:  0 hold, 1 long, 2 short, 3 flat
# risk:      0 full, 1 half (cap), 2 none (flat), 3 no new risk
CASES = [
    # (exposure, structure, tactical, risk) -> (target, agreed)
    ((0.0, 4, 1, 0), (1.0, True)),  # consensus long, full strength
    ((0.0, 3, 1, 0), (0.5, True)),  # consensus long, half strength
    ((0.0, 0, 2, 0), (-1.0, True)),  # consensus short
    ((0.0, 1, 2, 0), (-0.5, True)),
    ((0.0, 2, 1, 0), (0.0, False)),  # structure neutral: no entry
    ((0.0, 0, 1, 0), (0.0, False)),  # disagreement: no entry
    ((0.0, 4, 2, 0), (0.0, False)),
    ((0.5, 0, 1, 0), (0.5, False)),  # no consensus keeps the position
    ((0.5, 0, 2, 0), (-1.0, True)),  # consensus against the position reverses it
    ((0.5, 2, 0, 0), (0.5, False)),  # hold
    ((0.5, 2, 3, 0), (0.0, False)),  # tactical flat
    ((0.0, 2, 3, 0), (0.0, False)),  # flat again: still flat
    ((0.0, 4, 1, 1), (0.5, True)),  # risk half caps the entry
    ((0.8, 2, 0, 1), (0.5, False)),  # risk half caps the held position ...
    ((0.5, 2, 0, 1), (0.5, False)),  # ... once: repeating it keeps half
    ((-0.8, 2, 0, 1), (-0.5, False)),  # caps shorts alike
    ((0.8, 4, 1, 2), (0.0, True)),  # risk none flattens, even on consensus
    ((0.0, 4, 1, 3), (0.0, True)),  # no new risk refuses a new entry
    ((0.5, 4, 1, 3), (0.5, True)),  # no new risk refuses growing the position
    ((0.5, 0, 2, 3), (0.5, True)),  # no new risk refuses a reversal
    ((0.5, 2, 3, 3), (0.0, False)),  # no new risk still lets an exit through
    ((1.0, 3, 1, 3), (0.5, True)),  # consensus to a smaller size is not new risk
]


@pytest.mark.parametrize("inputs,expected", CASES)
def test_joint_action_rules(inputs, expected):
    exposure, structure, tactical, risk = inputs
    assert target_exposure(exposure, structure, tactical, risk) == expected


def test_max_leverage_scales_entries_and_caps():
    assert target_exposure(0.0, 4, 1, 0, max_leverage=2.0) == (2.0, True)
    assert target_exposure(2.0, 2, 0, 1, max_leverage=2.0) == (1.0, False)


@pytest.mark.parametrize("structure", range(len(STRUCTURE_ACTIONS)))
@pytest.mark.parametrize("tactical", range(len(TACTICAL_ACTIONS)))
@pytest.mark.parametrize("risk", range(len(RISK_ACTIONS)))
def test_repeating_an_action_never_trades(structure, tactical, risk):
    """Every action is a state: from any starting exposure, the target of a
    joint action applied to its own result is that result again."""
    for exposure in (-1.0, -0.5, -0.2, 0.0, 0.3, 0.5, 1.0):
        first, _ = target_exposure(exposure, structure, tactical, risk)
        again, _ = target_exposure(first, structure, tactical, risk)
        assert again == first, (exposure, structure, tactical, risk)


def test_round_trip_accounting_with_costs():
    acct = Account(initial=10_000.0, commission_rate=0.001, slippage_rate=0.0005)
    fill = acct.rebalance(10.0, 100.0)
    assert fill.price == pytest.approx(100.05)
    assert fill.commission == pytest.approx(10 * 100.05 * 0.001)
    assert acct.equity(100.0) == pytest.approx(10_000 - 10 * 0.05 - fill.commission)
    fill2 = acct.rebalance(0.0, 110.0)
    assert fill2.price == pytest.approx(110 * (1 - 0.0005))
    expected = 10 * (fill2.price - fill.price) - fill.commission - fill2.commission
    assert acct.realised == pytest.approx(expected)
    assert acct.equity(123.0) == pytest.approx(10_000 + expected)
    assert acct.closed_trades == 1 and acct.winning_trades == 1
    assert acct.last_closed_pnl == pytest.approx(expected)


def test_equity_identity_over_random_trading():
    """equity = cash + units * price, and equity - initial = realised + unrealised."""
    rng = np.random.default_rng(3)
    acct = Account(initial=50_000.0, commission_rate=2e-4, slippage_rate=1e-4)
    price = 100.0
    for _ in range(2_000):
        price *= float(np.exp(rng.normal(0, 0.01)))
        acct.rebalance(float(rng.choice([-300, -150, 0, 0, 150, 300, 75])), price)
        equity = acct.equity(price)
        assert equity == pytest.approx(acct.cash + acct.units * price, rel=1e-12)
        assert equity - 50_000.0 == pytest.approx(acct.realised + acct.unrealised(price), abs=1e-6)
    assert acct.closed_trades > 100
    assert 0 <= acct.winning_trades <= acct.closed_trades


def test_reversal_counts_one_closed_trade():
    acct = Account(initial=1_000.0, commission_rate=0.0, slippage_rate=0.0)
    acct.rebalance(5.0, 10.0)
    acct.rebalance(-5.0, 9.0)
    assert acct.closed_trades == 1 and acct.winning_trades == 0
    assert acct.units == -5.0 and acct.avg_price == 9.0
    assert acct.realised == pytest.approx(-5.0)
