"""A tear sheet: the team against buy-and-hold, as one self-contained HTML page.

What a quant looks at first, all from daily returns (bars resampled to the
last equity of each UTC day): the summary (return, annual return, Sharpe and
Sortino from daily returns, max drawdown, Calmar, win rate, trades), the
equity curves, monthly returns, a rolling Sharpe, the worst drawdown periods
(start, trough, recovery, depth, length) and the distribution of daily
returns. Figures are PNGs embedded in the page (no network, no JavaScript).
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
from pathlib import Path

import numpy as np

from rllib_algospace.evaluation.fresh import DAYS_PER_YEAR, daily_returns
from rllib_algospace.evaluation.metrics import max_drawdown, sortino_ratio
from rllib_algospace.artifacts import write_atomically

ROLLING_DAYS = 20
WORST_DRAWDOWNS = 5


def daily_series(step_return, timestamp) -> tuple[np.ndarray, np.ndarray]:
    """``(days, returns)``: each UTC day's date (numpy ``datetime64[D]``) and
    its simple return from the previous day's last equity."""
    r = np.asarray(step_return, dtype=np.float64)
    if not len(r):
        return np.zeros(0, dtype="datetime64[D]"), np.zeros(0)
    day = np.asarray(timestamp, dtype=np.int64) // 86_400
    last_of_day = np.flatnonzero(np.r_[day[1:] != day[:-1], True])
    return day[last_of_day].astype("datetime64[D]"), daily_returns(r, timestamp)


def summary(returns: np.ndarray, trade_pnls=None) -> dict:
    """Headline figures of daily returns (annualised with 252 days)."""
    equity = np.r_[1.0, np.cumprod(1.0 + returns)]
    n = len(returns)
    std = float(returns.std(ddof=1)) if n > 1 else 0.0
    years = n / DAYS_PER_YEAR
    annual = float(equity[-1] ** (1.0 / years) - 1.0) if years > 0 and equity[-1] > 0 else float("nan")
    mdd = max_drawdown(equity)
    pnls = np.asarray(trade_pnls if trade_pnls is not None else [], dtype=np.float64)
    return {
        "total_return": float(equity[-1] - 1.0),
        "annual_return": annual,
        "sharpe_daily": float(returns.mean() / std * math.sqrt(DAYS_PER_YEAR)) if std > 0 else 0.0,
        "sortino_daily": sortino_ratio(returns, DAYS_PER_YEAR),
        "max_drawdown": mdd,
        "calmar": annual / mdd if mdd > 0 and math.isfinite(annual) else float("nan"),
        "best_day": float(returns.max()) if n else float("nan"),
        "worst_day": float(returns.min()) if n else float("nan"),
        "win_rate": float(np.mean(pnls > 0)) if len(pnls) else float("nan"),
        "trades": int(len(pnls)),
        "days": n,
    }


def monthly_returns(days: np.ndarray, returns: np.ndarray) -> dict[int, dict[int, float]]:
    """{year: {month (1-12): compounded return}}."""
    out: dict[int, dict[int, float]] = {}
    months = days.astype("datetime64[M]")
    for m in np.unique(months):
        sel = months == m
        year, month = int(str(m)[:4]), int(str(m)[5:7])
        out.setdefault(year, {})[month] = float(np.prod(1.0 + returns[sel]) - 1.0)
    return out


def drawdown_periods(days: np.ndarray, returns: np.ndarray, top: int = WORST_DRAWDOWNS) -> list[dict]:
    """The deepest drawdowns: start (last peak), trough, recovery (None while
    under water), depth and length in days, deepest first."""
    equity = np.r_[1.0, np.cumprod(1.0 + returns)]
    dates = np.r_[days[:1] - 1, days] if len(days) else days
    peak = np.maximum.accumulate(equity)
    under = equity < peak
    periods, i = [], 0
    while i < len(equity):
        if not under[i]:
            i += 1
            continue
        start = i - 1
        j = i
        while j < len(equity) and under[j]:
            j += 1
        trough = start + int(np.argmin(equity[start:j]))
        periods.append({
            "start": str(dates[start]),
            "trough": str(dates[trough]),
            "recovery": str(dates[j]) if j < len(equity) else None,
            "depth": float(1.0 - equity[trough] / equity[start]),
            "days": int(j - start) if j < len(equity) else int(len(equity) - 1 - start),
        })
        i = j
    return sorted(periods, key=lambda p: -p["depth"])[:top]


def rolling_sharpe(returns: np.ndarray, window: int = ROLLING_DAYS) -> np.ndarray:
    out = np.full(len(returns), np.nan)
    for i in range(window, len(returns) + 1):
        w = returns[i - window : i]
        s = w.std(ddof=1)
        out[i - 1] = w.mean() / s * math.sqrt(DAYS_PER_YEAR) if s > 0 else np.nan
    return out


def _png(figure) -> str:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _pct(v) -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.2%}"


def _num(v) -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:+.2f}"


def tear_sheet_html(team, buy_and_hold, *, title: str) -> str:
    """The page for the team's run and buy-and-hold's run on the same bars
    (``EvaluationRun``s, or anything with ``step_return``, ``timestamp`` and
    ``trade_pnls``)."""
    from matplotlib.figure import Figure

    series = {}
    for name, run in (("team", team), ("buy and hold", buy_and_hold)):
        days, r = daily_series(run.step_return, run.timestamp)
        series[name] = (days, r, summary(r, getattr(run, "trade_pnls", None)))
    days, team_r, _ = series["team"]

    rows = [("total return", "total_return", _pct), ("annual return", "annual_return", _pct), ("Sharpe (daily returns)", "sharpe_daily", _num),
            ("Sortino (daily returns)", "sortino_daily", _num), ("max drawdown", "max_drawdown", _pct), ("Calmar", "calmar", _num),
            ("best day", "best_day", _pct), ("worst day", "worst_day", _pct), ("win rate (round trips)", "win_rate", _pct), ("round trips", "trades", str), ("days", "days", str)]
    summary_html = "<table><tr><th></th>" + "".join(f"<th>{html.escape(n)}</th>" for n in series) + "</tr>"
    for label, key, fmt in rows:
        summary_html += f"<tr><td>{html.escape(label)}</td>" + "".join(f"<td>{fmt(s[2][key])}</td>" for s in series.values()) + "</tr>"
    summary_html += "</table>"

    fig = Figure(figsize=(10, 3.2))
    ax = fig.add_subplot()
    for name, (d, r, _) in series.items():
        ax.plot(d, np.cumprod(1.0 + r), label=name)
    ax.set_yscale("log")
    ax.set_ylabel("growth of 1 (log)")
    ax.legend()
    equity_png = _png(fig)

    fig = Figure(figsize=(10, 2.8))
    ax = fig.add_subplot()
    for name, (d, r, _) in series.items():
        ax.plot(d, rolling_sharpe(r), label=name)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel(f"{ROLLING_DAYS}-day Sharpe")
    ax.legend()
    rolling_png = _png(fig)

    fig = Figure(figsize=(10, 2.8))
    ax = fig.add_subplot()
    bins = np.linspace(min(s[1].min() for s in series.values() if len(s[1])), max(s[1].max() for s in series.values() if len(s[1])), 40) if len(team_r) else 10
    for name, (_, r, _) in series.items():
        ax.hist(r, bins=bins, alpha=0.5, label=name)
    ax.set_xlabel("daily return")
    ax.legend()
    hist_png = _png(fig)

    monthly = monthly_returns(days, team_r)
    month_html = "<table><tr><th>year</th>" + "".join(f"<th>{m}</th>" for m in range(1, 13)) + "<th>year</th></tr>"
    for year, months in sorted(monthly.items()):
        total = float(np.prod([1.0 + v for v in months.values()]) - 1.0)
        month_html += f"<tr><td>{year}</td>" + "".join(f"<td>{_pct(months.get(m))}</td>" for m in range(1, 13)) + f"<td>{_pct(total)}</td></tr>"
    month_html += "</table>"

    dd_html = "<table><tr><th>start</th><th>trough</th><th>recovery</th><th>depth</th><th>days</th></tr>"
    for p in drawdown_periods(days, team_r):
        dd_html += f"<tr><td>{p['start']}</td><td>{p['trough']}</td><td>{p['recovery'] or 'not yet'}</td><td>{_pct(p['depth'])}</td><td>{p['days']}</td></tr>"
    dd_html += "</table>"

    style = "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>Daily returns: the equity at each UTC day's last bar; ratios annualised with {DAYS_PER_YEAR:g} days.</p>"
        f"<h2>Summary</h2>{summary_html}"
        f"<h2>Equity</h2><img src='data:image/png;base64,{equity_png}'>"
        f"<h2>Monthly returns (team)</h2>{month_html}"
        f"<h2>Rolling Sharpe</h2><img src='data:image/png;base64,{rolling_png}'>"
        f"<h2>Drawdown periods (team, deepest first)</h2>{dd_html}"
        f"<h2>Distribution of daily returns</h2><img src='data:image/png;base64,{hist_png}'>"
        "</body></html>\n"
    )


def write_tear_sheet(team, buy_and_hold, out_dir: str | os.PathLike, *, title: str) -> Path:
    """``tear_sheet.html`` in ``out_dir``, written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "tear_sheet.html"
    write_atomically(path, lambda fh: fh.write(tear_sheet_html(team, buy_and_hold, title=title).encode()))
    return path
