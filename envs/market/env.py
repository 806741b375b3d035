# long module: the market environment in one class (reset, step, observations, rewards); the account and rules live in trading.py
"""The four-agent market as a PettingZoo ``ParallelEnv``.

One step is one base bar. At bar t every agent sees data of bars <= t (the
higher-timeframe rows of bars that have closed by t) and the calls the others
made at the previous step; the joint action is filled at the open of bar t+1
and equity is marked at the close of t+1.

Observation layouts (flat float32 vectors; feature values lie in +-5):

* regime: regime matrix window (96 x 12), row-major, oldest row first;
* structure: structure window (48 x 8), then regime's last call one-hot (4);
* tactical: tactical window (60 x 7), then last calls of regime (4) and structure (5);
* risk: portfolio state (``PORTFOLIO_FEATURES``), then last calls of regime (4),
  structure (5) and tactical (5).

A last call is all zeros before the first step. ``state()`` (the centralized
critic's input) is the newest 4 regime rows, 4 structure rows and 10 tactical
rows, the portfolio state, and every agent's last call.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from envs.data.default import default_dataset_path
from envs.data.reader import MarketData
from envs.features import (
    FEATURE_CLIP,
    REGIME_FEATURES,
    REGIME_WINDOW,
    STRUCTURE_FEATURES,
    STRUCTURE_WINDOW,
    TACTICAL_FEATURES,
    TACTICAL_WINDOW,
)
from envs.market.config import MarketEnvConfig
from envs.market.trading import (
    AGENTS,
    REGIME_ACTIONS,
    RISK_ACTIONS,
    STRUCTURE_ACTIONS,
    TACTICAL_ACTIONS,
    FULL,
    LONG,
    SHORT,
    target_exposure,
)
from envs.market.portfolio import PORTFOLIO_FEATURES, Account, bars_in_trade, fill_target, portfolio_features, volatility_after

N_ACTIONS = {"regime": len(REGIME_ACTIONS), "structure": len(STRUCTURE_ACTIONS), "tactical": len(TACTICAL_ACTIONS), "risk": len(RISK_ACTIONS)}
ACTION_NAMES = {"regime": REGIME_ACTIONS, "structure": STRUCTURE_ACTIONS, "tactical": TACTICAL_ACTIONS, "risk": RISK_ACTIONS}
# Running totals of the episode so far, in every step's infos, so that the
# metrics of an episode can be read from its last step alone.
EPISODE_STATS = (
    "ep_steps",
    "ep_return_sum",  # of simple per-step returns of equity
    "ep_return_sq_sum",
    "ep_max_drawdown",
    "ep_agreed",  # steps on which structure and tactical agreed on an entry
    "ep_entries",  # steps on which tactical proposed an entry
    "ep_exposed_steps",
    "ep_regime_hits",
    "ep_regime_labelled",
    "ep_gross_win",  # of closed round trips
    "ep_gross_loss",
)
STATE_ROWS = {"regime": 4, "structure": 4, "tactical": 10}
VOL_WARMUP_BARS = 32
DSR_CLIP = 10.0

# What each agent sees of the others' last calls, in this order: always the
# agents before it, so each sees a prefix of the one-hot calls vector.
OBSERVED_CALLS = {"regime": (), "structure": ("regime",), "tactical": ("regime", "structure"), "risk": ("regime", "structure", "tactical")}
CALL_OFFSETS = {a: sum(N_ACTIONS[b] for b in AGENTS[:i]) for i, a in enumerate(AGENTS)}
CALLS_SIZE = sum(N_ACTIONS.values())

# The flat team observation (``AlgoSpaceMarketEnv.team_observation``): each
# agent's observation in ``AGENTS`` order, then the risk agent's own last call.
# FEATURE_SIZES: the part of each agent's observation before the others' calls.
FEATURE_SIZES = {
    "regime": REGIME_WINDOW * len(REGIME_FEATURES),
    "structure": STRUCTURE_WINDOW * len(STRUCTURE_FEATURES),
    "tactical": TACTICAL_WINDOW * len(TACTICAL_FEATURES),
    "risk": len(PORTFOLIO_FEATURES),
}
RISK_CALL = "risk_call"
# The ground-truth regime label of the bar the agents see (-1: none), last:
# for the learner's auxiliary regime loss only. No actor's slice and no part
# of the critic's input holds it.
REGIME_LABEL = "regime_label"
TEAM_LAYOUT: dict[str, tuple[int, int]] = {}
_start = 0
for _name, _size in [(a, FEATURE_SIZES[a] + CALL_OFFSETS[a]) for a in AGENTS] + [(RISK_CALL, N_ACTIONS["risk"]), (REGIME_LABEL, 1)]:
    TEAM_LAYOUT[_name] = (_start, _start + _size)
    _start += _size
TEAM_SIZE = _start


def _state_index() -> np.ndarray:
    """Positions in the team observation whose values, in this order, are
    ``state()``: the newest ``STATE_ROWS`` rows of each window, the portfolio
    state and every agent's last call."""
    parts = []
    for agent, window, width in (("regime", REGIME_WINDOW, len(REGIME_FEATURES)), ("structure", STRUCTURE_WINDOW, len(STRUCTURE_FEATURES)), ("tactical", TACTICAL_WINDOW, len(TACTICAL_FEATURES))):
        start = TEAM_LAYOUT[agent][0]
        parts.append(np.arange(start + (window - STATE_ROWS[agent]) * width, start + window * width))
    risk = TEAM_LAYOUT["risk"][0]
    parts.append(np.arange(risk, risk + FEATURE_SIZES["risk"] + CALL_OFFSETS["risk"]))  # portfolio, then the others' calls
    parts.append(np.arange(*TEAM_LAYOUT[RISK_CALL]))
    return np.concatenate(parts)


STATE_INDEX = _state_index()
# The smallest deviation a feature column is divided by (a column that barely
# moves on the train split is centred, not blown up).
MIN_FEATURE_STD = 0.01
WINDOW_MATRICES = {"regime": (REGIME_WINDOW, len(REGIME_FEATURES)), "structure": (STRUCTURE_WINDOW, len(STRUCTURE_FEATURES)), "tactical": (TACTICAL_WINDOW, len(TACTICAL_FEATURES))}


def input_statistics(market: MarketData) -> dict[str, dict[str, list[float]]]:
    """Each window matrix's column means and standard deviations over the
    rows the market file's train split sees (``MarketData.feature_stats``,
    which no val or test bar reaches), as plain lists: ``{"regime": {"mean":
    [...], "std": [...]}, ...}`` (a few dozen numbers, small enough for a
    model config)."""
    out = {}
    for agent in WINDOW_MATRICES:
        mean, std = market.feature_stats(agent)
        out[agent] = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    return out


def team_input_scaling(stats: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(shift, scale)`` over the team observation (``TEAM_SIZE`` each) from
    ``input_statistics``: every window's feature columns are centred by
    their mean and divided by their deviation (at least ``MIN_FEATURE_STD``);
    calls, the portfolio state and the label slot keep shift 0 and scale 1.
    A model computes ``(obs - shift) / scale``."""
    shift = np.zeros(TEAM_SIZE, dtype=np.float32)
    scale = np.ones(TEAM_SIZE, dtype=np.float32)
    for agent, (window, width) in WINDOW_MATRICES.items():
        mean = np.asarray(stats[agent]["mean"], dtype=np.float32)
        std = np.asarray(stats[agent]["std"], dtype=np.float32)
        if mean.shape != (width,) or std.shape != (width,):
            raise ValueError(f"input statistics of {agent}: {mean.shape[0]}/{std.shape[0]} values for {width} feature columns")
        start = TEAM_LAYOUT[agent][0]
        shift[start : start + window * width] = np.tile(mean, window)
        scale[start : start + window * width] = np.tile(np.maximum(std, MIN_FEATURE_STD), window)
    return shift, scale


def _box(low_high: list[tuple[int, float, float]]) -> spaces.Box:
    low = np.concatenate([np.full(n, lo, dtype=np.float32) for n, lo, _ in low_high])
    high = np.concatenate([np.full(n, hi, dtype=np.float32) for n, _, hi in low_high])
    return spaces.Box(low=low, high=high, dtype=np.float32)


def _call_parts(agent: str) -> list[tuple[int, float, float]]:
    return [(N_ACTIONS[other], 0.0, 1.0) for other in OBSERVED_CALLS[agent]]


def calls_vector(last_actions: dict) -> np.ndarray:
    """Every agent's last call, one-hot, in agent order (zeros for an agent
    that has not acted yet, code -1). Each agent observes a prefix of it:
    structure the regime part, tactical regime + structure, risk all but its own."""
    calls = np.zeros(CALLS_SIZE, dtype=np.float32)
    for agent, offset in CALL_OFFSETS.items():
        last = last_actions[agent]
        if last >= 0:
            calls[offset + last] = 1.0
    return calls


class EpisodeSpan:
    """Every row one episode can touch, from ``first`` to ``last`` bar plus the
    look-back of its windows, copied out of the (streamed) market data once at
    reset, so a step costs the same whether the data is on disk or in memory."""

    def __init__(self, market: MarketData, first: int, last: int):
        stop = last + 1
        self.base_lo = lo = max(0, first - VOL_WARMUP_BARS)
        self.open = market.base("open").rows(lo, stop).tolist()
        self.close = market.base("close").rows(lo, stop).tolist()
        self.label = market.base("regime_label").rows(lo, stop).tolist()
        self.timestamp = market.base("timestamp").rows(lo, stop).tolist()
        self.visible = market.base("htf_visible").rows(lo, stop).tolist()
        self.tactical_lo = first + 1 - TACTICAL_WINDOW
        self.tactical = market.features("tactical").rows(self.tactical_lo, stop)
        self.htf_lo = self.visible[first - lo] - max(REGIME_WINDOW, STRUCTURE_WINDOW)
        htf_stop = self.visible[last - lo]
        self.regime = market.features("regime").rows(self.htf_lo, htf_stop)
        self.structure = market.features("structure").rows(self.htf_lo, htf_stop)


class AlgoSpaceMarketEnv(ParallelEnv):
    """See the module docstring; configuration keys are ``MarketEnvConfig``'s."""

    metadata = {"name": "algospace_market_v0", "render_modes": ["ansi", "human"], "is_parallelizable": True}

    def __init__(self, **config):
        self.config = MarketEnvConfig.from_kwargs(**config)
        cfg = self.config
        self._cost_scale = 1.0  # share of the configured costs charged (training's cost warm-up)
        self.render_mode = cfg.render_mode
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self._task = cfg.task
        self._pending_task: str | None = None
        self._markets: dict[str, MarketData] = {}
        self._np_random: np.random.Generator | None = None
        clip = FEATURE_CLIP
        self._observation_spaces = {
            "regime": _box([(REGIME_WINDOW * len(REGIME_FEATURES), -clip, clip)]),
            "structure": _box([(STRUCTURE_WINDOW * len(STRUCTURE_FEATURES), -clip, clip)] + _call_parts("structure")),
            "tactical": _box([(TACTICAL_WINDOW * len(TACTICAL_FEATURES), -clip, clip)] + _call_parts("tactical")),
            "risk": _box([(len(PORTFOLIO_FEATURES), -clip, clip)] + _call_parts("risk")),
        }
        self._action_spaces = {a: spaces.Discrete(N_ACTIONS[a]) for a in AGENTS}
        state_parts = [
            (STATE_ROWS["regime"] * len(REGIME_FEATURES), -clip, clip),
            (STATE_ROWS["structure"] * len(STRUCTURE_FEATURES), -clip, clip),
            (STATE_ROWS["tactical"] * len(TACTICAL_FEATURES), -clip, clip),
            (len(PORTFOLIO_FEATURES), -clip, clip),
        ] + [(N_ACTIONS[a], 0.0, 1.0) for a in AGENTS]
        self.state_space = _box(state_parts)
        self._last = {a: -1 for a in AGENTS}
        self._bind(self._market(self._task))

    # -- PettingZoo API -----------------------------------------------------
    def observation_space(self, agent: str) -> spaces.Box:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None or self._np_random is None:
            self._np_random, _ = seeding.np_random(seed)
        if self._pending_task is not None:
            self._task, self._pending_task = self._pending_task, None
            self._bind(self._market(self._task))
        cfg = self.config
        start, stop = self._split
        length = cfg.episode_length
        latest_start = stop - 1 - length if length else start
        if cfg.random_start and latest_start > start:
            self._t = int(self._np_random.integers(start, latest_start + 1))
        else:
            self._t = start
        self._steps = 0
        self._account = Account(cfg.initial_equity, *self._cost_rates())
        self._equity = cfg.initial_equity
        self._peak = cfg.initial_equity
        self._drawdown = 0.0
        self._dsr_a = self._dsr_b = 0.0
        self._time_in_trade = 0
        self._last = {a: -1 for a in AGENTS}
        self._episode = dict.fromkeys(EPISODE_STATS, 0.0)
        last = min(stop - 1, self._t + length) if length else stop - 1
        self._span = EpisodeSpan(self._data, self._t, last)
        self._vol_var = self._initial_variance(self._t)
        self.agents = list(AGENTS)
        info = self._info(fill=None, agreed=False, entry=False, step_pnl=0.0, team_reward=0.0, trade_closed=False)
        infos = {a: info for a in AGENTS}
        return self._observations(), infos

    def step(self, actions: dict):
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        try:
            act = {a: int(actions[a]) for a in AGENTS}
        except KeyError as exc:
            raise KeyError(f"step() needs an action for every agent; missing {exc.args[0]!r}") from None
        _, rewards, terminated, truncated, info = self.advance(act)
        observations = self._observations()
        terminations = {a: bool(terminated) for a in AGENTS}
        truncations = {a: bool(truncated) and not terminated for a in AGENTS}
        infos = {a: info for a in AGENTS}
        if self.render_mode == "human":
            print(self._render_line(act))
        return observations, rewards, terminations, truncations, infos

    def advance(self, act: dict, *, with_info: bool = True):
        """One step of the market for the joint action ``act`` ({agent: int}):
        the core of ``step()``, shared with the grouped team env
        (``envs.market.team``). Returns ``(team_reward, rewards, terminated,
        truncated, info)``; ``info`` is None when ``with_info`` is false
        (training skips the step infos it never reads), except on an
        episode's last step."""
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        cfg = self.config
        t = self._t
        account = self._account
        sp = self._span
        close_t = sp.close[t - sp.base_lo]
        exposure = account.units * close_t / self._equity
        target, agreed = target_exposure(exposure, act["structure"], act["tactical"], act["risk"], cfg.max_leverage)
        entry = act["tactical"] in (LONG, SHORT)
        next_open = sp.open[t + 1 - sp.base_lo]
        units_before = account.units
        closed_before = account.closed_trades
        fill = fill_target(account, target, exposure, self._equity, next_open, cfg.rebalance_threshold)
        trade_closed = account.closed_trades != closed_before
        self._time_in_trade = bars_in_trade(units_before, account.units, self._time_in_trade)

        self._t = t = t + 1
        self._steps += 1
        close_next = sp.close[t - sp.base_lo]
        self._vol_var = volatility_after(self._vol_var, close_t, close_next)
        equity = account.equity(close_next)
        step_pnl = equity - self._equity
        self._equity = equity
        self._peak = max(self._peak, equity)
        drawdown = 1.0 - equity / self._peak
        scale = cfg.reward_scale
        step_return = step_pnl / (equity - step_pnl)
        if cfg.reward == "dsr":
            team = self._differential_sharpe(step_return) * scale / 100.0
        else:
            team = step_pnl / cfg.initial_equity * scale
        # Only drawdown beyond the limit costs: a flat book is no shelter from a penalty on every dip.
        excess = max(0.0, drawdown - cfg.drawdown_limit) - max(0.0, self._drawdown - cfg.drawdown_limit)
        team -= cfg.drawdown_penalty * max(0.0, excess) * scale
        self._drawdown = drawdown

        label = sp.label[t - 1 - sp.base_lo]
        ep = self._episode
        ep["ep_steps"] += 1
        ep["ep_return_sum"] += step_return
        ep["ep_return_sq_sum"] += step_return * step_return
        ep["ep_max_drawdown"] = max(ep["ep_max_drawdown"], drawdown)
        ep["ep_agreed"] += agreed
        ep["ep_entries"] += entry
        ep["ep_exposed_steps"] += account.units != 0.0
        if label >= 0:
            ep["ep_regime_labelled"] += 1
            ep["ep_regime_hits"] += act["regime"] == label
        if trade_closed:
            pnl = account.last_closed_pnl
            ep["ep_gross_win" if pnl > 0 else "ep_gross_loss"] += abs(pnl)
        rewards = self._rewards(act, team, agreed, exposure, label)
        self._last = act
        terminated = bool(equity < cfg.equity_floor * cfg.initial_equity)
        truncated = bool((cfg.episode_length and self._steps >= cfg.episode_length) or t >= self._split[1] - 1) and not terminated
        info = None
        if with_info or terminated or truncated:
            info = self._info(fill=fill, agreed=agreed, entry=entry, step_pnl=step_pnl, team_reward=team, trade_closed=trade_closed)
        if terminated or truncated:
            self.agents = []
        return team, rewards, terminated, truncated, info

    def _differential_sharpe(self, step_return: float) -> float:
        """Moody and Saffell's differential Sharpe ratio of this step's return:
        the first-order change of a Sharpe ratio built on exponential moving
        estimates (rate ``dsr_eta``) of the returns' first and second moments.
        Zero until the moving variance is positive; clipped to ``DSR_CLIP``
        (the ratio explodes while the moving variance is still tiny)."""
        eta = self.config.dsr_eta
        a, b = self._dsr_a, self._dsr_b
        delta_a, delta_b = step_return - a, step_return * step_return - b
        variance = b - a * a
        value = (b * delta_a - 0.5 * a * delta_b) / variance**1.5 if variance > 1e-18 else 0.0
        self._dsr_a, self._dsr_b = a + eta * delta_a, b + eta * delta_b
        return DSR_CLIP if value > DSR_CLIP else -DSR_CLIP if value < -DSR_CLIP else value

    def state(self) -> np.ndarray:
        t = self._t
        sp = self._span
        k = sp.visible[t - sp.base_lo] - sp.htf_lo
        tac = t + 1 - sp.tactical_lo
        parts = [
            sp.regime[k - STATE_ROWS["regime"] : k].ravel(),
            sp.structure[k - STATE_ROWS["structure"] : k].ravel(),
            sp.tactical[tac - STATE_ROWS["tactical"] : tac].ravel(),
            np.asarray(self._portfolio(), dtype=np.float32),
            self._calls(),
        ]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def render(self):
        if self.render_mode is None:
            return None
        line = self._render_line(self._last)
        if self.render_mode == "ansi":
            return line
        print(line)
        return None

    def close(self) -> None:
        for market in self._markets.values():
            market.close()
        self._markets.clear()

    # -- curriculum -----------------------------------------------------------
    def set_task(self, stage: str) -> None:
        """Switch to curriculum stage ``stage`` from the next ``reset()`` on."""
        tasks = self._task_names()
        if stage not in tasks:
            raise ValueError(f"unknown task {stage!r}; tasks are {', '.join(tasks)}")
        self._pending_task = stage if stage != self._task else None

    def get_task(self) -> str:
        return self._pending_task or self._task

    def set_cost_scale(self, scale: float) -> None:
        """Charge ``scale`` (0 to 1) of the configured commission and slippage
        from now on (the open position's next trades included). Training
        ramps it up over its first steps (``algorithm.cost_warmup_steps``);
        evaluation always charges the full costs."""
        scale = float(scale)
        if not 0.0 <= scale <= 1.0:
            raise ValueError(f"cost scale must be in [0, 1], got {scale!r}")
        self._cost_scale = scale
        account = getattr(self, "_account", None)
        if account is not None:
            account.commission_rate, account.slippage_rate = self._cost_rates()

    @property
    def cost_scale(self) -> float:
        return self._cost_scale

    def _cost_rates(self) -> tuple[float, float]:
        cfg = self.config
        return cfg.commission_bps * 1e-4 * self._cost_scale, cfg.slippage_bps * 1e-4 * self._cost_scale

    # -- data ---------------------------------------------------------------
    @property
    def market(self) -> MarketData:
        return self._data

    @property
    def bar_index(self) -> int:
        """Index of the base bar the agents see now."""
        return self._t

    def _task_names(self) -> list[str]:
        cfg = self.config
        if cfg.tasks is not None:
            return list(cfg.tasks)
        if cfg.data is not None:
            return [cfg.task]
        from envs.data.default import PRESET_NAMES

        return list(PRESET_NAMES)

    def _market(self, task: str) -> MarketData:
        market = self._markets.get(task)
        if market is None:
            cfg = self.config
            if cfg.tasks is not None:
                path = cfg.tasks[task]
            elif cfg.data is not None:
                path = cfg.data
            else:
                path = default_dataset_path(task)
            market = MarketData(path, in_memory=cfg.in_memory)
            self._markets[task] = market
        return market

    def _bind(self, market: MarketData) -> None:
        self._data = market
        self._split = market.splits[self.config.split]
        self._bars_per_year = market.bars_per_year
        self._t = self._split[0]

    def _initial_variance(self, t: int) -> float:
        sp = self._span
        i = t - sp.base_lo
        closes = np.asarray(sp.close[max(0, i - VOL_WARMUP_BARS) : i + 1])
        returns = np.diff(np.log(closes))
        return float(np.mean(returns * returns)) if len(returns) else 0.0

    # -- observations ---------------------------------------------------------
    def _calls(self) -> np.ndarray:
        return calls_vector(self._last)

    def _portfolio(self) -> list[float]:
        sp = self._span
        price = sp.close[self._t - sp.base_lo]
        return portfolio_features(
            self._account, price, self._equity, self.config.initial_equity, self._drawdown, self._vol_var, self._bars_per_year, self._time_in_trade
        )

    def team_observation(self) -> np.ndarray:
        """Every agent's observation, in ``AGENTS`` order, then the risk
        agent's own last call (the one part of ``state()`` no agent observes)
        and the regime label of the bar (for the learner only), in one new
        float32 vector (``TEAM_LAYOUT``). ``observe()`` and ``step()`` hand
        out slices of it."""
        t = self._t
        sp = self._span
        k = sp.visible[t - sp.base_lo] - sp.htf_lo
        tac = t + 1 - sp.tactical_lo
        calls = self._calls()
        out = np.empty(TEAM_SIZE, dtype=np.float32)
        for name, rows, window in (("regime", sp.regime, REGIME_WINDOW), ("structure", sp.structure, STRUCTURE_WINDOW)):
            start, stop = TEAM_LAYOUT[name]
            out[start : start + FEATURE_SIZES[name]] = rows[k - window : k].reshape(-1)
            out[start + FEATURE_SIZES[name] : stop] = calls[: CALL_OFFSETS[name]]
        start, stop = TEAM_LAYOUT["tactical"]
        out[start : start + FEATURE_SIZES["tactical"]] = sp.tactical[tac - TACTICAL_WINDOW : tac].reshape(-1)
        out[start + FEATURE_SIZES["tactical"] : stop] = calls[: CALL_OFFSETS["tactical"]]
        start, stop = TEAM_LAYOUT["risk"]
        out[start : start + FEATURE_SIZES["risk"]] = self._portfolio()
        out[start + FEATURE_SIZES["risk"] : stop] = calls[: CALL_OFFSETS["risk"]]
        start, stop = TEAM_LAYOUT[RISK_CALL]
        out[start:stop] = calls[CALL_OFFSETS["risk"] :]
        out[TEAM_LAYOUT[REGIME_LABEL][0]] = sp.label[t - sp.base_lo]
        if self.config.leak_future_bars:
            # in the newest row of both agents whose agreement opens a
            # position (the consensus rule): a leak only tactical saw could
            # be used only when structure happened to agree
            leak = self._leaked_return()
            for name, width in (("structure", len(STRUCTURE_FEATURES)), ("tactical", len(TACTICAL_FEATURES))):
                out[TEAM_LAYOUT[name][0] + FEATURE_SIZES[name] - width] = leak
        return out

    def _leaked_return(self) -> float:
        """The canary's look-ahead (``leak_future_bars``): the log return from
        the next bar's open (where a decision fills) to the close N bars on,
        in units of its volatility, clipped to the feature bound. TEST ONLY."""
        sp = self._span
        i = self._t - sp.base_lo
        n = self.config.leak_future_bars
        stop = min(i + n, len(sp.close) - 1)
        if stop <= i:
            return 0.0
        move = math.log(sp.close[stop] / sp.open[i + 1]) / max(math.sqrt(self._vol_var * n), 1e-12)
        return float(max(-FEATURE_CLIP, min(FEATURE_CLIP, move)))

    def _observations(self) -> dict[str, np.ndarray]:
        flat = self.team_observation()
        return {a: flat[TEAM_LAYOUT[a][0] : TEAM_LAYOUT[a][1]] for a in AGENTS}

    # -- rewards and infos ------------------------------------------------------
    def _rewards(self, act: dict, team: float, agreed: bool, exposure: float, label: int) -> dict[str, float]:
        cfg = self.config
        w = cfg.w_shared
        if w == 1.0:
            return {a: team for a in AGENTS}
        regime_shaping = 0.0 if label < 0 else (cfg.regime_accuracy_bonus if act["regime"] == label else -cfg.regime_accuracy_bonus)
        consensus = cfg.consensus_bonus if agreed else 0.0
        breach = self._drawdown > cfg.drawdown_limit and exposure != 0.0 and act["risk"] == FULL
        risk_shaping = -cfg.risk_compliance_penalty if breach else 0.0
        shaping = {"regime": regime_shaping, "structure": consensus, "tactical": consensus, "risk": risk_shaping}
        return {a: (1.0 - w) * shaping[a] + w * team for a in AGENTS}

    def _info(self, *, fill, agreed: bool, entry: bool, step_pnl: float, team_reward: float, trade_closed: bool) -> dict:
        t = self._t
        sp = self._span
        i = t - sp.base_lo
        account = self._account
        price = sp.close[i]
        return {
            "bar": t,
            "timestamp": sp.timestamp[i],
            "price": price,
            "equity": self._equity,
            "cash": account.cash,
            "position": account.units,
            "exposure": account.units * price / self._equity,
            "drawdown": self._drawdown,
            "step_pnl": step_pnl,
            "team_reward": team_reward,
            "fill_units": 0.0 if fill is None else fill.units,
            "fill_price": 0.0 if fill is None else fill.price,
            "fill_commission": 0.0 if fill is None else fill.commission,
            "trade_closed": trade_closed,
            "trade_pnl": account.last_closed_pnl if trade_closed else 0.0,
            "closed_trades": account.closed_trades,
            "winning_trades": account.winning_trades,
            "costs": account.costs,
            "regime_label": sp.label[i],
            "agreed": agreed,
            "entry_proposed": entry,
            "actions": dict(self._last),
            "task": self._task,
            **self._episode,
        }

    def _render_line(self, act: dict) -> str:
        sp = self._span
        i = self._t - sp.base_lo
        when = datetime.fromtimestamp(sp.timestamp[i], tz=timezone.utc).strftime("%Y-%m-%d %H:%M")
        calls = " ".join(f"{a}={ACTION_NAMES[a][act[a]] if act.get(a, -1) >= 0 else '-'}" for a in AGENTS)
        price = sp.close[i]
        return (
            f"[{self._task}/{self.config.split}] bar {self._t} {when} close={price:.5g} "
            f"pos={self._account.units:+.4g} equity={self._equity:,.2f} dd={self._drawdown:.2%} | {calls}"
        )
