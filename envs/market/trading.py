"""Joint action rules and exact equity accounting.

Every action names a *state* the team should be in, never an operation, so
repeating an action never trades (``TRADING_ACTIONS_SCHEMA`` names this set
of rules; checkpoints and bundles record it and are refused under another).

Joint action to target exposure (signed fraction of equity held in the asset):

* Structure calls a direction and strength: strong short, short, neutral,
  long, strong long (strength 1.0 for strong, 0.5 otherwise).
* Tactical names the position: ``long`` / ``short`` hold the side structure
  calls at its strength times ``max_leverage``, but only with consensus (the
  same direction); ``flat`` holds nothing; ``hold`` (or a side structure does
  not share) keeps the position as it is.
* Risk caps the exposure: ``full`` (no cap), ``half`` (at most half of
  ``max_leverage``), ``none`` (flat), ``no_new_risk`` (refuse anything that
  opens, grows or reverses exposure; reductions still go through).

Fills happen at the next bar's open, moved against the trader by the slippage,
and pay commission on the traded notional; equity is marked at each close.
"""
from __future__ import annotations

from dataclasses import dataclass

TRADING_ACTIONS_SCHEMA = "target-state-v1"
# The four roles of the team, in the order every joint action, observation
# layout and module lists them (the one definition; the trainer imports it).
AGENTS = ("regime", "structure", "tactical", "risk")
REGIME_ACTIONS = ("trending", "ranging", "volatile", "transition")
STRUCTURE_ACTIONS = ("strong_short", "short", "neutral", "long", "strong_long")
TACTICAL_ACTIONS = ("hold", "long", "short", "flat")
RISK_ACTIONS = ("full", "half", "none", "no_new_risk")

# structure action -> (direction, strength)
STRUCTURE_VIEW = ((-1, 1.0), (-1, 0.5), (0, 0.0), (1, 0.5), (1, 1.0))
HOLD, LONG, SHORT, FLAT = range(4)
FULL, HALF, NONE, NO_NEW_RISK = range(4)
RISK_CAP = {FULL: 1.0, HALF: 0.5, NONE: 0.0, NO_NEW_RISK: 1.0}  # share of max_leverage


def tactical_direction(tactical: int) -> int:
    """+1 for long, -1 for short, 0 for actions with no side."""
    return 1 if tactical == LONG else -1 if tactical == SHORT else 0


def target_exposure(exposure: float, structure: int, tactical: int, risk: int, max_leverage: float = 1.0) -> tuple[float, bool]:
    """Target exposure for a joint action, and whether structure and tactical
    agreed on a side (consensus)."""
    direction, strength = STRUCTURE_VIEW[structure]
    wanted = tactical_direction(tactical)
    agreed = wanted != 0 and wanted == direction
    if agreed:
        target = wanted * strength * max_leverage
    elif tactical == FLAT:
        target = 0.0
    else:  # hold, or a side without consensus
        target = exposure
    cap = RISK_CAP[risk] * max_leverage
    if abs(target) > cap:
        target = cap if target > 0 else -cap
    if risk == NO_NEW_RISK and _opens_risk(exposure, target):
        target = exposure
    return target, agreed


def _opens_risk(exposure: float, target: float) -> bool:
    """True when moving from ``exposure`` to ``target`` grows or reverses it."""
    if target == 0.0:
        return False
    if exposure == 0.0 or (target > 0) != (exposure > 0):
        return True
    return abs(target) > abs(exposure)


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
