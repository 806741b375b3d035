"""Team policies as plain numpy callables, and the fixed baselines (no Ray, no torch).

The team-policy protocol
------------------------
A *team policy* is any callable ``policy(observations) -> actions`` that maps
the environment's observation dict (agent -> float32 vector, the layouts in
``envs.market.env``) to a greedy action (``int``) for every agent present.
A trained RLlib team is wrapped into this shape by the training code; the
evaluation runner (``rllib_algospace.evaluation``) accepts nothing else. A
policy with a callable ``reset()`` attribute has it called at each episode
start (the policies here are stateless and need none).

Fixed policies
--------------
* :data:`flat_policy` never trades: regime ``trending`` (any call would do),
  structure ``neutral``, tactical ``flat``, risk ``full``.
* :data:`buy_and_hold_policy` is long at full strength with consensus on
  every step (structure ``strong_long`` + tactical ``long`` -> target
  exposure ``max_leverage``); the position opened at the second bar's open is
  never resized, as exposure drifts less than the rebalance threshold.
* :class:`RuleTeamPolicy` (instance :data:`rule_policy`) is a simple rule
  baseline built from four per-agent rules, each reading only its own agent's
  observation; see the class docstring. ``rule_action(agent, obs)`` exposes
  the rules one agent at a time, and :func:`compose_policy` mixes them with
  other per-agent policies (e.g. while training one agent against rule-based
  team mates).
* :class:`RandomTeamPolicy` samples uniformly random actions from a seeded
  generator (the ``algospace demo``).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from envs.features import (
    REGIME_FEATURES,
    REGIME_WINDOW,
    STRUCTURE_FEATURES,
    STRUCTURE_WINDOW,
    TACTICAL_FEATURES,
    TACTICAL_WINDOW,
)
from envs.market.env import AGENTS, N_ACTIONS, OBSERVED_CALLS
from envs.market.portfolio import PORTFOLIO_FEATURES
from envs.market.trading import (
    FLAT,
    FULL,
    HOLD,
    LONG,
    NONE,
    REGIME_ACTIONS,
    SHORT,
    STRUCTURE_ACTIONS,
    STRUCTURE_VIEW,
)

__all__ = [
    "JointPolicy",
    "AgentRule",
    "flat_policy",
    "buy_and_hold_policy",
    "RuleTeamPolicy",
    "rule_policy",
    "rule_action",
    "RandomTeamPolicy",
    "random_policy",
    "compose_policy",
    "newest_row",
    "last_call",
    "FLAT_ACTIONS",
    "LONG_ACTIONS",
]

Observations = Mapping[str, np.ndarray]
Actions = dict[str, int]
AgentRule = Callable[[np.ndarray], int]


@runtime_checkable
class JointPolicy(Protocol):
    """``policy(observations) -> {agent: greedy action}`` for every agent
    present: what evaluation runs (the live class is ``inference.TeamPolicy``)."""

    def __call__(self, observations: Observations) -> Actions: ...


# -- observation layout helpers ----------------------------------------------
_WINDOWS = {
    "regime": (REGIME_WINDOW, len(REGIME_FEATURES)),
    "structure": (STRUCTURE_WINDOW, len(STRUCTURE_FEATURES)),
    "tactical": (TACTICAL_WINDOW, len(TACTICAL_FEATURES)),
}
_REG = {name: j for j, name in enumerate(REGIME_FEATURES)}
_STR = {name: j for j, name in enumerate(STRUCTURE_FEATURES)}
_TAC = {name: j for j, name in enumerate(TACTICAL_FEATURES)}
_PORT = {name: j for j, name in enumerate(PORTFOLIO_FEATURES)}
TRENDING, RANGING, VOLATILE, TRANSITION = (REGIME_ACTIONS.index(n) for n in ("trending", "ranging", "volatile", "transition"))
STRONG_SHORT, WEAK_SHORT, NEUTRAL, WEAK_LONG, STRONG_LONG = (STRUCTURE_ACTIONS.index(n) for n in ("strong_short", "short", "neutral", "long", "strong_long"))


def _feature_size(agent: str) -> int:
    if agent == "risk":
        return len(PORTFOLIO_FEATURES)
    rows, cols = _WINDOWS[agent]
    return rows * cols


def newest_row(agent: str, obs: np.ndarray) -> np.ndarray:
    """The newest feature row of ``agent``'s observation window (regime,
    structure or tactical; windows are row-major, oldest row first)."""
    rows, cols = _WINDOWS[agent]
    return np.asarray(obs[(rows - 1) * cols : rows * cols])


def last_call(agent: str, of: str, obs: np.ndarray) -> int:
    """The last call of agent ``of`` as seen in ``agent``'s observation, or
    ``-1`` before the first step (the one-hot part is all zeros) or when
    ``agent`` does not observe ``of``."""
    if of not in OBSERVED_CALLS[agent]:
        return -1
    offset = _feature_size(agent)
    for other in OBSERVED_CALLS[agent]:
        n = N_ACTIONS[other]
        if other == of:
            part = np.asarray(obs[offset : offset + n])
            return int(np.argmax(part)) if part.max() > 0.5 else -1
        offset += n
    return -1  # pragma: no cover


# -- fixed policies -------------------------------------------------------------
FLAT_ACTIONS: Actions = {"regime": TRENDING, "structure": NEUTRAL, "tactical": FLAT, "risk": FULL}
LONG_ACTIONS: Actions = {"regime": TRENDING, "structure": STRONG_LONG, "tactical": LONG, "risk": FULL}


def flat_policy(observations: Observations) -> Actions:
    """Never trades: structure neutral, tactical flat, risk full (regime's
    call has no effect on the book; it says ``trending``)."""
    return {a: FLAT_ACTIONS[a] for a in observations}


def buy_and_hold_policy(observations: Observations) -> Actions:
    """Long at full strength on every step: structure ``strong_long``,
    tactical ``long``, risk ``full`` (target exposure ``max_leverage``)."""
    return {a: LONG_ACTIONS[a] for a in observations}


# -- the rule baseline ----------------------------------------------------------
class RuleTeamPolicy:
    """A simple hand-written team; each agent's rule reads only its own
    observation (newest row of its window, plus the calls of the agents
    before it). Thresholds are constructor arguments; the defaults were set
    by hand with a coarse look at the *train* splits of the three default
    synthetic markets (never val/test). Features are vol-normalised, so the
    thresholds are in units of the series' own volatility.

    Regime (newest regime row)
        ``volatile`` if ``vol_ratio_16_48 > vol_16`` or ``vol_ratio_4_48 >
        vol_4`` (short-term volatility well above the 48-bar level);
        else ``trending`` if ``trend_r2_48 >= trend_r2`` and
        ``efficiency_16 >= trend_efficiency`` (a clean line that still moves);
        else ``ranging`` if ``trend_r2_48 < trend_r2`` and ``efficiency_16 <
        range_efficiency`` (no line, price going back and forth);
        else ``transition`` (mixed evidence: a line losing its drive, or a
        fresh move without a line yet).

    Structure (newest structure row; regime's last call)
        In ``volatile``: ``neutral`` (stand aside). In ``ranging``: fade the
        stretch from the kernel regression, ``short`` if ``nwrqk_value >
        fade_value``, ``long`` if ``< -fade_value``, else neutral. Otherwise
        (trending, transition, or no call yet) follow the trend: direction
        ``sign(nwrqk_slope)`` when ``|nwrqk_slope| > slope`` and the MLMI
        vote ``mlmi_value`` does not point the other way; ``strong`` when
        ``|nwrqk_slope| > strong_slope``, MLMI agrees (``mlmi_value *
        direction > mlmi_strong``) and regime's call is ``trending``;
        otherwise neutral.

    Tactical (newest tactical row; structure's last call)
        With ``d`` the direction of structure's last call and ``m`` =
        ``momentum_5``: ``long``/``short`` in direction ``d`` when ``m * d >
        enter_momentum`` (momentum agrees); ``flat`` when momentum turns
        strongly against it (``m * d < -exit_momentum``); otherwise, and
        whenever structure has no view (neutral, or no call yet), ``hold``.
        (Exiting whenever structure turns neutral churned the book: twice
        the round trips and costs that ate the edge on the train splits.)

    Risk (portfolio state)
        ``none`` (no exposure) when the drawdown from the equity peak exceeds
        ``drawdown_limit`` (feature ``drawdown`` = 10 x drawdown), else
        ``full``. The drawdown only falls at a new equity peak, so this is
        a kill switch for the rest of the episode.
    """

    def __init__(
        self,
        *,
        vol_16: float = 0.3,
        vol_4: float = 0.6,
        trend_r2: float = 0.4,
        trend_efficiency: float = 0.15,
        range_efficiency: float = 0.35,
        slope: float = 1.5,
        strong_slope: float = 2.0,
        mlmi_strong: float = 0.25,
        fade_value: float = 1.0,
        enter_momentum: float = 0.5,
        exit_momentum: float = 1.5,
        drawdown_limit: float = 0.10,
    ):
        self.vol_16 = vol_16
        self.vol_4 = vol_4
        self.trend_r2 = trend_r2
        self.trend_efficiency = trend_efficiency
        self.range_efficiency = range_efficiency
        self.slope = slope
        self.strong_slope = strong_slope
        self.mlmi_strong = mlmi_strong
        self.fade_value = fade_value
        self.enter_momentum = enter_momentum
        self.exit_momentum = exit_momentum
        self.drawdown_limit = drawdown_limit

    def __call__(self, observations: Observations) -> Actions:
        return {agent: self.action(agent, obs) for agent, obs in observations.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def action(self, agent: str, obs: np.ndarray) -> int:
        """The rule of one agent applied to that agent's observation."""
        rule = getattr(self, f"{agent}_rule", None)
        if rule is None:
            raise KeyError(f"no rule for agent {agent!r}; agents are {', '.join(AGENTS)}")
        return int(rule(obs))

    def regime_rule(self, obs: np.ndarray) -> int:
        row = newest_row("regime", obs)
        r2 = row[_REG["trend_r2_48"]]
        eff = row[_REG["efficiency_16"]]
        if row[_REG["vol_ratio_16_48"]] > self.vol_16 or row[_REG["vol_ratio_4_48"]] > self.vol_4:
            return VOLATILE
        if r2 >= self.trend_r2 and eff >= self.trend_efficiency:
            return TRENDING
        if r2 < self.trend_r2 and eff < self.range_efficiency:
            return RANGING
        return TRANSITION

    def structure_rule(self, obs: np.ndarray) -> int:
        row = newest_row("structure", obs)
        regime = last_call("structure", "regime", obs)
        if regime == VOLATILE:
            return NEUTRAL
        if regime == RANGING:
            value = row[_STR["nwrqk_value"]]
            if value > self.fade_value:
                return WEAK_SHORT
            if value < -self.fade_value:
                return WEAK_LONG
            return NEUTRAL
        slope = row[_STR["nwrqk_slope"]]
        mlmi = row[_STR["mlmi_value"]]
        if abs(slope) <= self.slope:
            return NEUTRAL
        direction = 1 if slope > 0 else -1
        if mlmi * direction < 0:
            return NEUTRAL
        strong = abs(slope) > self.strong_slope and mlmi * direction > self.mlmi_strong and regime == TRENDING
        if direction > 0:
            return STRONG_LONG if strong else WEAK_LONG
        return STRONG_SHORT if strong else WEAK_SHORT

    def tactical_rule(self, obs: np.ndarray) -> int:
        momentum = newest_row("tactical", obs)[_TAC["momentum_5"]]
        structure = last_call("tactical", "structure", obs)
        direction = STRUCTURE_VIEW[structure][0] if structure >= 0 else 0
        if direction == 0:
            return HOLD
        if momentum * direction > self.enter_momentum:
            return LONG if direction > 0 else SHORT
        if momentum * direction < -self.exit_momentum:
            return FLAT
        return HOLD

    def risk_rule(self, obs: np.ndarray) -> int:
        drawdown = obs[_PORT["drawdown"]] / 10.0
        return NONE if drawdown > self.drawdown_limit else FULL


rule_policy = RuleTeamPolicy()


def rule_action(agent: str, obs: np.ndarray) -> int:
    """Action of the default rule baseline (:data:`rule_policy`) for one agent."""
    return rule_policy.action(agent, obs)


# -- random and composed policies ----------------------------------------------
class RandomTeamPolicy:
    """Uniformly random actions from ``np.random.default_rng(seed)``; the same
    seed gives the same action sequence."""

    def __init__(self, seed: int | None = 0):
        self.rng = np.random.default_rng(seed)

    def __call__(self, observations: Observations) -> Actions:
        return {agent: int(self.rng.integers(N_ACTIONS[agent])) for agent in observations}


def random_policy(seed: int | None = 0) -> RandomTeamPolicy:
    return RandomTeamPolicy(seed)


def compose_policy(agent_policies: Mapping[str, AgentRule], base: JointPolicy | None = None) -> Callable[[Observations], Actions]:
    """A team policy that asks ``agent_policies[agent](obs)`` for the agents
    listed there and ``base`` (default: the rule baseline) for the others."""
    unknown = sorted(set(agent_policies) - set(AGENTS))
    if unknown:
        raise KeyError(f"unknown agent {unknown[0]!r}; agents are {', '.join(AGENTS)}")
    base = rule_policy if base is None else base

    def policy(observations: Observations) -> Actions:
        rest = {a: o for a, o in observations.items() if a not in agent_policies}
        actions = dict(base(rest)) if rest else {}
        for agent, fn in agent_policies.items():
            if agent in observations:
                actions[agent] = int(fn(observations[agent]))
        return actions

    return policy
