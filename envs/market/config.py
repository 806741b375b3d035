"""Environment configuration: every key, its default, and its checks."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

SPLITS = ("train", "val", "test")
RENDER_MODES = ("ansi", "human")
REWARDS = ("pnl", "dsr")


@dataclass
class MarketEnvConfig:
    """Settings of ``envs.algospace_market``; unknown keys are an error.

    ``data``: path of a market file; ``None`` uses the default synthetic
    dataset of the current ``task`` (generated and cached on first use).
    ``tasks``: curriculum stages, name -> market file; by default the three
    synthetic presets. ``set_task`` switches between them at run time.
    """

    data: str | None = None
    task: str = "simple_markets"
    tasks: dict[str, str] | None = None
    split: str = "train"
    episode_length: int = 1024  # bars per episode; 0 runs to the end of the split
    random_start: bool = True  # False starts every episode at the split's first bar
    in_memory: bool = False  # load the whole file instead of streaming chunks
    initial_equity: float = 100_000.0
    commission_bps: float = 1.0  # per side, of traded notional
    slippage_bps: float = 0.5  # against the trader, of the fill price
    max_leverage: float = 1.0  # exposure at full strength
    rebalance_threshold: float = 0.05  # skip resizing trades smaller than this exposure change
    reward: str = "pnl"  # "pnl": equity change net of costs; "dsr": differential Sharpe ratio
    dsr_eta: float = 0.004  # adaptation rate of the differential Sharpe ratio's moving moments (about 250 bars)
    reward_scale: float = 100.0  # team reward is in percent of initial equity ("dsr": the ratio times reward_scale / 100)
    drawdown_penalty: float = 0.5  # per unit of new drawdown beyond drawdown_limit (same scale)
    equity_floor: float = 0.5  # episode terminates below this share of initial equity
    w_shared: float = 1.0  # weight of the team reward in each agent's reward
    regime_accuracy_bonus: float = 0.01  # regime shaping: +bonus right, -bonus wrong (labelled data)
    consensus_bonus: float = 0.0  # structure/tactical shaping when they agree on an entry
    risk_compliance_penalty: float = 0.01  # risk shaping: allowing exposure beyond the drawdown limit
    drawdown_limit: float = 0.10  # the drawdown penalty and risk's compliance shaping start here
    # TEST ONLY (the learning canary): >0 writes the return of the next N bars
    # into structure's and tactical's newest observation rows. Look-ahead by design; never on by
    # default, and `export` refuses a team trained with it.
    leak_future_bars: int = 0
    render_mode: str | None = None

    @classmethod
    def from_kwargs(cls, **kwargs) -> "MarketEnvConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ValueError(f"unknown environment config key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
        cfg = cls(**kwargs)
        cfg.check()
        return cfg

    def check(self) -> None:
        def need(ok: bool, key: str, text: str) -> None:
            if not ok:
                raise ValueError(f"environment config {key}={getattr(self, key)!r}: {text}")

        need(self.split in SPLITS, "split", f"must be one of {', '.join(SPLITS)}")
        need(isinstance(self.episode_length, int) and self.episode_length >= 0, "episode_length", "must be an integer >= 0")
        need(self.initial_equity > 0, "initial_equity", "must be positive")
        need(self.commission_bps >= 0, "commission_bps", "must be >= 0")
        need(0 <= self.slippage_bps < 10_000, "slippage_bps", "must be in [0, 10000)")
        need(self.max_leverage > 0, "max_leverage", "must be positive")
        need(0 <= self.rebalance_threshold < 1, "rebalance_threshold", "must be in [0, 1)")
        need(self.reward in REWARDS, "reward", f"must be one of {', '.join(REWARDS)}")
        need(0 < self.dsr_eta < 1, "dsr_eta", "must be in (0, 1)")
        need(self.reward_scale > 0, "reward_scale", "must be positive")
        need(self.drawdown_penalty >= 0, "drawdown_penalty", "must be >= 0")
        need(0 <= self.equity_floor < 1, "equity_floor", "must be in [0, 1)")
        need(0 <= self.w_shared <= 1, "w_shared", "must be in [0, 1]")
        need(0 < self.drawdown_limit < 1, "drawdown_limit", "must be in (0, 1)")
        need(isinstance(self.leak_future_bars, int) and 0 <= self.leak_future_bars <= 64, "leak_future_bars", "must be an integer in [0, 64] (test only)")
        need(self.render_mode is None or self.render_mode in RENDER_MODES, "render_mode", f"must be None or one of {RENDER_MODES}")
        need(self.tasks is None or (isinstance(self.tasks, dict) and len(self.tasks) > 0), "tasks", "must be a non-empty mapping")
        if self.tasks is not None:
            need(self.task in self.tasks, "task", f"must be one of the tasks {sorted(self.tasks)}")

    def to_dict(self) -> dict:
        return asdict(self)
