"""The simulated account: fills at the next bar's open, moved against the
trader by the slippage, paying commission on the traded notional; equity
marked at each close; and the risk agent's view of it (``PORTFOLIO_FEATURES``).
One definition for the env and the live decision path
(``rllib_algospace.inference.policy``), which must stay equal bar for bar."""
from __future__ import annotations

import math
from dataclasses import dataclass

from envs.features import FEATURE_CLIP

VOL_DECAY = 0.97  # EWMA of squared close-to-close log returns (about 33 bars)

PORTFOLIO_FEATURES = (
    "exposure",  # position value / equity
    "unrealised_pnl",  # x10, share of initial equity
    "realised_pnl",  # x10, share of initial equity, net of costs
    "equity",  # (equity / initial - 1) x10
    "drawdown",  # (1 - equity / peak) x10
    "volatility",  # annualised EWMA volatility of closes x5
    "time_in_trade",  # bars in the current position / 100
    "trades",  # log(1 + closed round trips) / 2
    "win_rate",  # share of closed round trips that won (0.5 before the first)
)


@dataclass
class Fill:
    units: float  # signed quantity traded
    price: float  # fill price including slippage
    commission: float
    realised: float  # PnL realised by the closed part, net of this fill's commission


@dataclass
class Account:
    """Cash, units and cost basis. ``equity = cash + units * price`` exactly,
    and ``equity - initial = realised + unrealised``."""

    initial: float
    commission_rate: float  # fraction of traded notional
    slippage_rate: float  # fraction of price, against the trader
    cash: float = 0.0
    units: float = 0.0
    avg_price: float = 0.0
    realised: float = 0.0
    costs: float = 0.0
    trade_pnl: float = 0.0  # realised PnL of the open round trip so far
    closed_trades: int = 0
    winning_trades: int = 0
    last_closed_pnl: float = 0.0  # net PnL of the most recently closed round trip

    def __post_init__(self) -> None:
        self.cash = self.initial

    def equity(self, price: float) -> float:
        return self.cash + self.units * price

    def unrealised(self, price: float) -> float:
        return self.units * (price - self.avg_price)

    def rebalance(self, target_units: float, price: float) -> Fill | None:
        """Trade to ``target_units`` at ``price`` (before slippage)."""
        delta = target_units - self.units
        if delta == 0.0:
            return None
        fill_price = price * (1.0 + self.slippage_rate) if delta > 0 else price * (1.0 - self.slippage_rate)
        commission = abs(delta) * fill_price * self.commission_rate
        self.cash -= delta * fill_price + commission
        self.costs += commission + abs(delta) * abs(fill_price - price)
        realised = -commission
        old = self.units
        if old != 0.0 and (delta > 0) != (old > 0):  # closes part or all of the position
            closed = min(abs(delta), abs(old))
            realised += closed * (fill_price - self.avg_price) * (1.0 if old > 0 else -1.0)
        new = old + delta
        if new == 0.0:
            self.avg_price = 0.0
        elif old == 0.0 or (new > 0) != (old > 0):
            self.avg_price = fill_price  # fresh position (or the reversed remainder)
        elif abs(new) > abs(old):
            self.avg_price = (self.avg_price * abs(old) + fill_price * abs(delta)) / abs(new)
        self.units = new
        self.realised += realised
        self.trade_pnl += realised
        if old != 0.0 and (new == 0.0 or (new > 0) != (old > 0)):
            self.closed_trades += 1
            self.winning_trades += self.trade_pnl > 0
            self.last_closed_pnl = self.trade_pnl
            self.trade_pnl = 0.0
        return Fill(units=delta, price=fill_price, commission=commission, realised=realised)


def portfolio_features(
    account: Account,
    price: float,
    equity: float,
    initial_equity: float,
    drawdown: float,
    vol_var: float,
    bars_per_year: float,
    time_in_trade: int,
) -> list[float]:
    """The risk agent's portfolio state (``PORTFOLIO_FEATURES``), clipped to
    the feature bound; shared by the env and the live decision path."""
    closed = account.closed_trades
    values = (
        account.units * price / equity,
        account.unrealised(price) / initial_equity * 10.0,
        account.realised / initial_equity * 10.0,
        (equity / initial_equity - 1.0) * 10.0,
        drawdown * 10.0,
        math.sqrt(vol_var * bars_per_year) * 5.0,
        time_in_trade / 100.0,
        math.log1p(closed) / 2.0,
        account.winning_trades / closed if closed else 0.5,
    )
    return [FEATURE_CLIP if v > FEATURE_CLIP else -FEATURE_CLIP if v < -FEATURE_CLIP else v for v in values]


# -- one bar of the account, split at the bar boundary ------------------------
# The env runs both halves in one step; the live path fills at a bar's open
# and marks at its close. Both call these, so they stay equal bar for bar.
def fill_target(account: Account, target: float, exposure: float, equity: float, next_open: float, threshold: float) -> Fill | None:
    """Trade to ``target`` exposure (decided at ``exposure``) at the next
    open: flatten whenever the target is flat, otherwise only when the
    exposure moves by at least ``threshold``."""
    if target == 0.0 and account.units != 0.0:
        return account.rebalance(0.0, next_open)
    if target != 0.0 and abs(target - exposure) >= threshold:
        return account.rebalance(target * equity / next_open, next_open)
    return None


def bars_in_trade(units_before: float, units_after: float, bars: int) -> int:
    """Bars in the current position after a fill: 0 when flat or when a new
    position opened (or reversed), else one more."""
    if units_after == 0.0 or units_before == 0.0 or (units_after > 0) != (units_before > 0):
        return 0
    return bars + 1


def volatility_after(vol_var: float, prev_close: float, close: float) -> float:
    """The EWMA of squared close-to-close log returns after one more close."""
    r = math.log(close / prev_close)
    return VOL_DECAY * vol_var + (1.0 - VOL_DECAY) * r * r
