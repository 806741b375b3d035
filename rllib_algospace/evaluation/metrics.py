"""Trading and coordination metrics from an episode's step infos (numpy only, no Ray)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rllib_algospace.evaluation.stats import sharpe_ratio


@dataclass
class EpisodeRecord:
    """What one run over a stretch of bars leaves behind, step by step."""

    initial_equity: float
    bars_per_year: float
    equity: list[float] = field(default_factory=list)  # after each step
    exposure: list[float] = field(default_factory=list)
    trade_pnls: list[float] = field(default_factory=list)
    agreed: int = 0
    entries: int = 0
    regime_hits: int = 0
    regime_labelled: int = 0
    costs: float = 0.0

    def add(self, info: dict, regime_action: int | None = None, regime_label: int | None = None) -> None:
        self.equity.append(float(info["equity"]))
        self.exposure.append(float(info["exposure"]))
        if info["trade_closed"]:
            self.trade_pnls.append(float(info["trade_pnl"]))
        self.agreed += bool(info["agreed"])
        self.entries += bool(info["entry_proposed"])
        self.costs = float(info["costs"])
        if regime_action is not None and regime_label is not None and regime_label >= 0:
            self.regime_labelled += 1
            self.regime_hits += int(regime_action == regime_label)

    def metrics(self) -> dict[str, float]:
        m = trading_metrics(np.r_[self.initial_equity, self.equity], self.bars_per_year, self.trade_pnls, self.exposure)
        m["consensus_rate"] = self.agreed / self.entries if self.entries else float("nan")
        m["regime_accuracy"] = self.regime_hits / self.regime_labelled if self.regime_labelled else float("nan")
        m["costs"] = self.costs
        return m


def sortino_ratio(returns, periods_per_year: float) -> float:
    """Mean over downside deviation (root mean square of the negative part)
    of simple returns, annualised by sqrt(periods per year); 0 without losses."""
    returns = np.asarray(returns, dtype=np.float64)
    if not len(returns):
        return 0.0
    downside = np.minimum(returns, 0.0)
    down_dev = float(np.sqrt(np.mean(downside * downside)))
    return float(returns.mean() / down_dev * math.sqrt(periods_per_year)) if down_dev > 0 else 0.0


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall from a running peak, as a share of that peak."""
    equity = np.asarray(equity, dtype=np.float64)
    if len(equity) == 0:
        return 0.0
    peaks = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peaks))


def trading_metrics(
    equity: np.ndarray,
    bars_per_year: float,
    trade_pnls: list[float] | np.ndarray = (),
    exposure: list[float] | np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of an equity curve that starts with the initial equity.

    Sharpe and Sortino are per-bar mean over standard (downside) deviation of
    simple returns, times sqrt(bars per year), so they are annualised for the
    data's bar frequency. Calmar is the annualised return over max drawdown.
    Win rate and profit factor are over closed round trips.
    """
    equity = np.asarray(equity, dtype=np.float64)
    returns = equity[1:] / equity[:-1] - 1.0 if len(equity) > 1 else np.zeros(0)
    n = len(returns)
    total_return = float(equity[-1] / equity[0] - 1.0) if len(equity) else 0.0
    sharpe = sharpe_ratio(returns, bars_per_year)
    sortino = sortino_ratio(returns, bars_per_year)
    mdd = max_drawdown(equity)
    years = n / bars_per_year if bars_per_year > 0 else 0.0
    growth = equity[-1] / equity[0] if len(equity) else 1.0
    annual_return = float(growth ** (1.0 / years) - 1.0) if years > 0 and growth > 0 else total_return
    calmar = annual_return / mdd if mdd > 0 else 0.0
    pnls = np.asarray(trade_pnls, dtype=np.float64)
    gross_win = float(pnls[pnls > 0].sum())
    gross_loss = float(-pnls[pnls < 0].sum())
    exposure_share = float(np.mean(np.abs(np.asarray(exposure)) > 1e-12)) if exposure is not None and len(exposure) else 0.0
    return {
        "total_return": total_return,
        "annual_return": annual_return,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": calmar,
        "max_drawdown": mdd,
        "win_rate": float(np.mean(pnls > 0)) if len(pnls) else float("nan"),
        "profit_factor": gross_win / gross_loss if gross_loss > 0 else (float("inf") if gross_win > 0 else float("nan")),
        "trades": int(len(pnls)),
        "exposure": exposure_share,
        "bars": n,
    }
