"""The live decision path: one decision per new bar from an exported bundle.

``TeamPolicy.load(BUNDLE)`` reads a bundle (``algospace export``) and
``policy.on_bar(bar)`` takes each new base bar as it closes (a mapping with
``timestamp`` (bar open time: epoch seconds, ``datetime``, ``numpy.datetime64``
or an ISO string), ``open``, ``high``, ``low``, ``close``, ``volume``) and
returns a :class:`Decision`. Per bar it

1. updates the features incrementally (``envs.features.online``: bounded
   buffers, no history recomputed, so the cost of a bar does not grow with
   the history; an HTF bar enters the windows only once its bucket closed),
2. executes the previous decision at this bar's open (the simulated fill),
   marks the portfolio at this bar's close,
3. builds the four observations exactly as the env does (feature windows,
   the last calls one-hot, the portfolio features), runs the four actors
   (greedy; an ensemble bundle averages its members' probabilities) and
   applies the joint-action rules (``envs.market.trading.target_exposure``).

How fills are modelled (the env's rules, so the observations the actors see
match training): the target exposure decided at the close of bar t is traded
at the *open of the next bar that arrives* (t+1), moved against the trader by
``slippage_bps`` and paying ``commission_bps`` of the traded notional; a
change of exposure smaller than ``rebalance_threshold`` is skipped unless the
target is flat; equity is marked at every close with the bar's close price.
The portfolio is therefore simulated; a deployment that trades for real should
place ``decision.target_exposure`` as an order for the next bar's open and
compare its broker fills with ``decision.fill`` (the simulated one).

Until the observation windows are full (``HTF_ROWS_NEEDED`` closed HTF bars
and ``BASE_ROWS_NEEDED`` base bars, the market file's ``first_valid`` rule),
decisions have ``ready=False`` and a flat target. ``warm_up(bars)`` feeds
history (features only, no decisions, no portfolio). Trading starts at the
first ``on_bar`` once the windows are full.

Importing this module imports neither Ray nor RLlib.
"""
from __future__ import annotations

import math
import os
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterable, Mapping

import numpy as np

from envs.features import (
    FEATURE_CLIP,
    REGIME_FEATURES,
    REGIME_WINDOW,
    STRUCTURE_FEATURES,
    STRUCTURE_WINDOW,
    TACTICAL_FEATURES,
    TACTICAL_WINDOW,
)
from envs.features.online import OnlineFeatures
from envs.market.env import (
    ACTION_NAMES,
    AGENTS,
    CALL_OFFSETS,
    N_ACTIONS,
    calls_vector,
    VOL_WARMUP_BARS,
)
from envs.market.portfolio import PORTFOLIO_FEATURES, Account, Fill, bars_in_trade, fill_target, portfolio_features, volatility_after
from envs.market.trading import target_exposure
from rllib_algospace.inference.bundle import TRADING_KEYS, Bundle, BundleError, load_bundle
from rllib_algospace.inference.probabilities import mean_probabilities, softmax



@dataclass
class Decision:
    """The team's decision at the close of one bar.

    ``target_exposure``: signed fraction of equity to hold from the next bar's
    open (what to trade toward); ``will_trade``: whether the simulated account
    will trade at that open (the rebalance threshold skips small resizes).
    ``actions`` / ``action_names`` / ``confidences``: each agent's greedy
    action and its probability (the ensemble's mean probability for an
    ensemble bundle). ``exposure``, ``equity``, ``position``: the simulated
    portfolio at this close; ``fill``: the simulated fill at this bar's open
    (of the previous decision), if any. ``ready`` is False (and the rest empty
    / flat) until the observation windows are full.
    """

    timestamp: int
    index: int
    ready: bool
    target_exposure: float = 0.0
    will_trade: bool = False
    agreed: bool = False
    actions: dict = field(default_factory=dict)
    action_names: dict = field(default_factory=dict)
    confidences: dict = field(default_factory=dict)
    exposure: float = 0.0
    equity: float = 0.0
    position: float = 0.0
    price: float = 0.0
    fill: dict | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _bar_number(value, key: str, ts: int) -> float:
    """A bar field as a float; one line naming the field when it is none."""
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"bar at {ts}: field {key!r} must be a number, got {value!r}") from None


MAX_EPOCH_SECONDS = 95_617_584_000  # the year 5000: a larger "seconds" value is milliseconds


def bar_timestamp(value) -> int:
    """Epoch seconds (UTC) of a bar's open time given as a number, a
    ``datetime`` (naive = UTC), a ``numpy.datetime64`` or an ISO-8601 string."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"timestamp must be a time, got {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise ValueError(f"timestamp must be finite, got {value!r}")
        return int(round(value))
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[s]").astype(np.int64))
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"timestamp {value!r} is not an ISO-8601 time") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(round(value.timestamp()))
    raise ValueError(f"timestamp must be epoch seconds, a datetime or an ISO string, got {type(value).__name__}")


class TeamPolicy:
    """The trained team from a bundle, fed one bar at a time (module docstring)."""

    def __init__(self, bundle: Bundle, *, initial_equity: float | None = None):
        import torch

        self._torch = torch
        self.bundle = bundle
        m = bundle.manifest
        if list(m["agents"]) != list(AGENTS):
            raise BundleError(f"{bundle.path}: bundle agents {m['agents']} differ from the env's {list(AGENTS)}")
        feats = m["features"]
        expected = {"regime": REGIME_FEATURES, "structure": STRUCTURE_FEATURES, "tactical": TACTICAL_FEATURES}
        for name, names in expected.items():
            if tuple(feats["names"][name]) != tuple(names):
                raise BundleError(f"{bundle.path}: the bundle's {name} features {feats['names'][name]} differ from this code's {list(names)}; export it again with this version")
        windows = {"regime": REGIME_WINDOW, "structure": STRUCTURE_WINDOW, "tactical": TACTICAL_WINDOW}
        if {k: int(v) for k, v in feats["windows"].items()} != windows or float(feats["clip"]) != FEATURE_CLIP:
            raise BundleError(f"{bundle.path}: the bundle's windows/clip {feats['windows']}/{feats['clip']} differ from this code's {windows}/{FEATURE_CLIP}")
        if tuple(m["portfolio_features"]) != tuple(PORTFOLIO_FEATURES):
            raise BundleError(f"{bundle.path}: the bundle's portfolio features differ from this code's")
        self.freq_seconds = int(feats["base_freq_seconds"])
        self.htf_multiple = int(feats["htf_multiple"])
        self.has_volume = bool(feats["has_volume"])
        self.bars_per_year = float(feats["bars_per_year"])
        self.trading = {k: float(m["trading"][k]) for k in TRADING_KEYS}
        if initial_equity is not None:
            self.trading["initial_equity"] = float(initial_equity)
        self.features = OnlineFeatures(self.freq_seconds, self.htf_multiple, has_volume=self.has_volume)
        self._closes: deque = deque(maxlen=VOL_WARMUP_BARS + 1)
        # Observation buffers (1, dim), shared with torch tensors (no copies per bar).
        self._obs_dims = {
            "regime": REGIME_WINDOW * len(REGIME_FEATURES),
            "structure": STRUCTURE_WINDOW * len(STRUCTURE_FEATURES) + CALL_OFFSETS["structure"],
            "tactical": TACTICAL_WINDOW * len(TACTICAL_FEATURES) + CALL_OFFSETS["tactical"],
            "risk": len(PORTFOLIO_FEATURES) + CALL_OFFSETS["risk"],
        }
        for member in m["members"]:
            for agent in AGENTS:
                spec = member["actors"][agent]
                if int(spec["obs_dim"]) != self._obs_dims[agent] or int(spec["n_actions"]) != N_ACTIONS[agent]:
                    raise BundleError(f"{bundle.path}: actor {member['name']}/{agent} expects {spec['obs_dim']} inputs and {spec['n_actions']} actions; the env has {self._obs_dims[agent]} and {N_ACTIONS[agent]}")
        self._obs = {a: np.zeros((1, d), dtype=np.float32) for a, d in self._obs_dims.items()}
        self._obs_t = {a: torch.from_numpy(buf) for a, buf in self._obs.items()}
        self._single = len(bundle.actors) == 1
        self._teams = bundle.teams
        self._obs_in = tuple(self._obs_t[a] for a in AGENTS)
        self._actors = bundle.actors
        self._weights = bundle.weights
        self._padded_logits = np.full((len(AGENTS), max(N_ACTIONS.values())), -np.inf)
        self._agent_rows = np.arange(len(AGENTS))
        self.reset_portfolio()

    # -- construction --------------------------------------------------------
    @classmethod
    def load(cls, bundle: str | os.PathLike, *, verify: bool = True, initial_equity: float | None = None, threads: int | None = None) -> "TeamPolicy":
        """Load a bundle folder (checksums verified). ``threads`` sets torch's
        intra-op threads (process-wide; 1 is fastest for these small actors)."""
        if threads is not None:
            import torch

            torch.set_num_threads(int(threads))
        return cls(load_bundle(bundle, verify=verify), initial_equity=initial_equity)

    @property
    def manifest(self) -> dict:
        return self.bundle.manifest

    def reset_portfolio(self, initial_equity: float | None = None) -> None:
        """Start a new simulated account (flat, no previous calls); trading
        (re)starts at the next ``on_bar`` once the windows are full."""
        if initial_equity is not None:
            self.trading["initial_equity"] = float(initial_equity)
        cfg = self.trading
        self.account = Account(cfg["initial_equity"], cfg["commission_bps"] * 1e-4, cfg["slippage_bps"] * 1e-4)
        self.equity = cfg["initial_equity"]
        self.peak = cfg["initial_equity"]
        self.drawdown = 0.0
        self.time_in_trade = 0
        self.vol_var = 0.0
        self.last_actions = {a: -1 for a in AGENTS}
        self._pending: float | None = None  # target exposure to trade at the next open
        self._exposure_at_decision = 0.0
        self._trading = False

    # -- feeding -------------------------------------------------------------
    def _parse(self, bar: Mapping) -> tuple[int, float, float, float, float, float]:
        """The bar's fields, checked: numbers where numbers belong, a time in
        epoch seconds, OHLC consistent, and the bundle's bar length (each
        problem names its field)."""
        if not isinstance(bar, Mapping):
            raise ValueError(f"bar must be a mapping with timestamp, open, high, low, close (and volume), got {type(bar).__name__}")
        missing = [k for k in ("timestamp", "open", "high", "low", "close") if k not in bar]
        if missing:
            raise ValueError(f"bar needs timestamp, open, high, low, close (and volume); missing {missing[0]!r}")
        try:
            ts = bar_timestamp(bar["timestamp"])
        except ValueError as exc:
            raise ValueError(f"bar field 'timestamp': {exc}") from None
        if ts > MAX_EPOCH_SECONDS:
            raise ValueError(f"bar field 'timestamp': {ts} is after the year 5000; epoch milliseconds? give epoch seconds")
        prices = []
        for key in ("open", "high", "low", "close"):
            x = _bar_number(bar[key], key, ts)
            if not (math.isfinite(x) and x > 0):
                raise ValueError(f"bar at {ts}: field {key!r} must be a positive finite number, got {bar[key]!r}")
            prices.append(x)
        o, h, l, c = prices
        for key, x in (("open", o), ("close", c)):
            if x > h * (1 + 1e-9) or x < l * (1 - 1e-9):
                raise ValueError(f"bar at {ts}: field {key!r} {x} is outside the bar's range [low {l}, high {h}]")
        last = self.features.last_timestamp
        if last is not None and ts > last and (ts - last) % self.freq_seconds:
            raise ValueError(f"bar at {ts}: comes {ts - last} s after the previous bar; the team trades {self.freq_seconds} s bars (a gap must be a whole number of bars)")
        if bar.get("volume") is None:
            if self.has_volume:
                raise ValueError(f"bar at {ts} has no volume, but the team was trained on data with volume")
            v = 1.0
        else:
            v = _bar_number(bar["volume"], "volume", ts)
        return ts, o, h, l, c, v

    def warm_up(self, bars: Iterable[Mapping]) -> int:
        """Feed history bars (features only: no decisions, no portfolio).
        Returns how many bars were fed."""
        if self._trading:
            raise RuntimeError("warm_up() feeds history before trading starts; call reset_portfolio() first to start over")
        n = 0
        for bar in bars:
            ts, o, h, l, c, v = self._parse(bar)
            self.features.update(ts, o, h, l, c, v)
            self._closes.append(c)
            n += 1
        return n

    @property
    def ready(self) -> bool:
        """True once the observation windows are full of defined feature rows."""
        return self.features.windows_full

    def on_bar(self, bar: Mapping) -> Decision:
        """The decision at the close of ``bar`` (see the module docstring)."""
        ts, o, h, l, c, v = self._parse(bar)
        up = self.features.update(ts, o, h, l, c, v)  # validates the bar first
        prev_close = self._closes[-1] if self._closes else None
        self._closes.append(c)
        fill = None
        if self._trading:
            fill = self._execute(o)
            self._mark(c, prev_close)
        elif self.features.windows_full:
            self._start(c)
        else:
            return Decision(timestamp=ts, index=up.index, ready=False, price=c, equity=self.equity)
        self._build_observations(c)
        actions, confidences = self._act()
        exposure = self.account.units * c / self.equity
        target, agreed = target_exposure(exposure, actions["structure"], actions["tactical"], actions["risk"], self.trading["max_leverage"])
        self._pending = target
        self._exposure_at_decision = exposure
        self.last_actions = actions
        will_trade = (target == 0.0 and self.account.units != 0.0) or (target != 0.0 and abs(target - exposure) >= self.trading["rebalance_threshold"])
        return Decision(
            timestamp=ts,
            index=up.index,
            ready=True,
            target_exposure=target,
            will_trade=will_trade,
            agreed=agreed,
            actions=actions,
            action_names={a: ACTION_NAMES[a][i] for a, i in actions.items()},
            confidences=confidences,
            exposure=exposure,
            equity=self.equity,
            position=self.account.units,
            price=c,
            fill=None if fill is None else {"units": fill.units, "price": fill.price, "commission": fill.commission},
        )

    # -- portfolio (the env's step, split at the bar boundary) ---------------
    def _start(self, close: float) -> None:
        closes = np.asarray(self._closes)
        returns = np.diff(np.log(closes))
        self.vol_var = float(np.mean(returns * returns)) if len(returns) else 0.0
        self._trading = True

    def _execute(self, next_open: float) -> Fill | None:
        """The previous decision's target, traded at this bar's open."""
        account = self.account
        target, exposure = self._pending, self._exposure_at_decision
        units_before = account.units
        fill = fill_target(account, target, exposure, self.equity, next_open, self.trading["rebalance_threshold"])
        self.time_in_trade = bars_in_trade(units_before, account.units, self.time_in_trade)
        self._pending = None
        return fill

    def _mark(self, close: float, prev_close: float) -> None:
        self.vol_var = volatility_after(self.vol_var, prev_close, close)
        equity = self.account.equity(close)
        self.equity = equity
        self.peak = max(self.peak, equity)
        self.drawdown = 1.0 - equity / self.peak

    def _portfolio(self, price: float) -> list[float]:
        return portfolio_features(
            self.account, price, self.equity, self.trading["initial_equity"], self.drawdown, self.vol_var, self.bars_per_year, self.time_in_trade
        )

    # -- observations and actors --------------------------------------------
    def _calls(self) -> np.ndarray:
        return calls_vector(self.last_actions)

    def _build_observations(self, price: float) -> None:
        f = self.features
        calls = self._calls()
        obs = self._obs
        obs["regime"][0] = f.regime.data.reshape(-1)
        n = STRUCTURE_WINDOW * len(STRUCTURE_FEATURES)
        obs["structure"][0, :n] = f.structure.data.reshape(-1)
        obs["structure"][0, n:] = calls[: CALL_OFFSETS["structure"]]
        n = TACTICAL_WINDOW * len(TACTICAL_FEATURES)
        obs["tactical"][0, :n] = f.tactical.data.reshape(-1)
        obs["tactical"][0, n:] = calls[: CALL_OFFSETS["tactical"]]
        n = len(PORTFOLIO_FEATURES)
        obs["risk"][0, :n] = self._portfolio(price)
        obs["risk"][0, n:] = calls[: CALL_OFFSETS["risk"]]

    def observations(self) -> dict[str, np.ndarray]:
        """Copies of the observations of the latest decision (the env's layout)."""
        return {a: buf[0].copy() for a, buf in self._obs.items()}

    def _act(self) -> tuple[dict[str, int], dict[str, float]]:
        torch = self._torch
        actions, confidences = {}, {}
        # A handful of logits per agent: numpy on plain lists beats tensor ops here.
        with torch.inference_mode():
            if self._teams is not None:  # one call per member runs the four actors
                per_member = [[z[0].tolist() for z in team(*self._obs_in)] for team in self._teams]
            else:
                per_member = [[actors[a](self._obs_t[a])[0].tolist() for a in AGENTS] for actors in self._actors]
        # The agents' logits as rows of one array, padded with -inf (probability
        # 0): one softmax call for the whole team keeps the decision fast.
        probs = []
        for logits in per_member:
            z = self._padded_logits
            for k, row in enumerate(logits):
                z[k, : len(row)] = row
            probs.append(softmax(z))
        if self._single:
            chosen = z.argmax(axis=1)  # the first maximum of the logits
            top = probs[0][self._agent_rows, chosen]
        else:
            mean = mean_probabilities([dict(zip(AGENTS, p)) for p in probs], self._weights)
            chosen = np.asarray([int(np.argmax(mean[a])) for a in AGENTS])
            top = [mean[a][i] for a, i in zip(AGENTS, chosen)]
        for agent, a, c in zip(AGENTS, chosen.tolist(), top):
            actions[agent] = a
            confidences[agent] = float(c)
        return actions, confidences

    def logits(self, observations: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Each member's actor logits on given observations (one dict per member)."""
        torch = self._torch
        out = []
        with torch.inference_mode():
            for actors in self._actors:
                out.append({a: actors[a](torch.as_tensor(np.asarray(o, dtype=np.float32)).reshape(1, -1))[0].numpy().copy() for a, o in observations.items()})
        return out

    def probabilities(self, observations: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Action probabilities on given observations (the weighted mean over members)."""
        per_member = [{a: softmax(z) for a, z in logits.items()} for logits in self.logits(observations)]
        return mean_probabilities(per_member, self._weights)

    def act(self, observations: Mapping[str, np.ndarray]) -> dict[str, int]:
        """Greedy actions on given observations (the env's plain vectors)."""
        if self._single:
            return {a: int(np.argmax(z)) for a, z in self.logits(observations)[0].items()}
        return {a: int(np.argmax(p)) for a, p in self.probabilities(observations).items()}

    __call__ = act

