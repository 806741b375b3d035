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

The account that fills these targets is ``envs.market.portfolio``.
"""
from __future__ import annotations

from envs.data.bars import REGIME_NAMES

TRADING_ACTIONS_SCHEMA = "target-state-v1"
# The four roles of the team, in the order every joint action, observation
# layout and module lists them (the one definition; the trainer imports it).
AGENTS = ("regime", "structure", "tactical", "risk")
REGIME_ACTIONS = REGIME_NAMES  # the regime agent calls one of the data's regimes
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
