"""``algospace demo``: one episode with random actions, and its trading metrics."""
from __future__ import annotations

import numpy as np


def run_random_episode(data: str | None = None, split: str = "test", seed: int = 0, episode_length: int = 0, render_every: int = 0) -> dict:
    """Play one episode of ``envs.algospace_market`` with uniformly random
    actions (``rllib_algospace.policies.RandomTeamPolicy(seed)``) through the
    evaluation runner; ``episode_length=0`` runs the whole split from its
    first bar, otherwise one episode of that many bars from a random start.
    Returns the episode's metrics and a few facts about the run."""
    from rllib_algospace.evaluation import run_policy
    from rllib_algospace.policies import RandomTeamPolicy

    common = {"data": data, "split": split, "seed": seed, "render_every": render_every}
    if episode_length:
        run = run_policy(RandomTeamPolicy(seed), episodes=1, episode_length=episode_length, **common)
    else:
        run = run_policy(RandomTeamPolicy(seed), full_split=True, **common)
    metrics = dict(run.metrics)
    for key in ("episodes", "terminated_early"):
        metrics.pop(key, None)
    metrics.update(
        {
            "source": run.meta["source"],
            "split": split,
            "start_bar": int(run.start_bars[0]),
            "steps": int(len(run.step_return)),
            "initial_equity": float(run.meta["initial_equity"]),
            "final_equity": float(run.equity[-1]) if len(run.equity) else run.meta["initial_equity"],
        }
    )
    if run.terminated_early:
        metrics["terminated_early"] = True
    return metrics


# Amounts of money: the env's account has no currency of its own (the data's
# quote currency, whatever the user's CSV priced in), so they say so.
MONEY_KEYS = ("costs", "initial_equity", "final_equity")
MONEY_UNIT = "(account currency)"


def format_metrics(metrics: dict) -> str:
    rows = []
    for key, value in metrics.items():
        if key in MONEY_KEYS and isinstance(value, (int, float)):
            text = f"{value:,.2f} {MONEY_UNIT}"
        elif isinstance(value, float):
            if key in ("total_return", "annual_return", "max_drawdown", "win_rate", "exposure", "consensus_rate", "regime_accuracy"):
                text = "n/a" if np.isnan(value) else f"{value:.2%}"
            else:
                text = f"{value:,.4f}"
        else:
            text = str(value)
        rows.append(f"  {key:<16} {text}")
    return "\n".join(rows)
