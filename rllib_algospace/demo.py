"""``algospace demo``: one episode with random actions, and its trading metrics."""
from __future__ import annotations

import numpy as np

from rllib_algospace.metrics import EpisodeRecord


def run_random_episode(data: str | None = None, split: str = "test", seed: int = 0, episode_length: int = 0, render_every: int = 0) -> dict:
    """Play one episode of ``envs.algospace_market`` with uniformly random
    actions; returns the episode's metrics and a few facts about the run."""
    from envs import algospace_market

    env = algospace_market.parallel_env(data=data, split=split, episode_length=episode_length, random_start=episode_length > 0, render_mode="ansi" if render_every else None)
    try:
        observations, infos = env.reset(seed=seed)
        for agent in env.possible_agents:
            env.action_space(agent).seed(seed + env.possible_agents.index(agent))
        record = EpisodeRecord(initial_equity=env.config.initial_equity, bars_per_year=env.market.bars_per_year)
        start_bar = env.bar_index
        steps = 0
        while env.agents:
            actions = {a: env.action_space(a).sample() for a in env.agents}
            observations, rewards, terms, truncs, infos = env.step(actions)
            info = infos["regime"]
            record.add(info, regime_action=int(actions["regime"]), regime_label=info["regime_label"])
            steps += 1
            if render_every and steps % render_every == 0:
                print(env.render())
        metrics = record.metrics()
        metrics.update(
            {
                "source": env.market.source,
                "split": split,
                "start_bar": start_bar,
                "steps": steps,
                "final_equity": record.equity[-1] if record.equity else env.config.initial_equity,
            }
        )
        return metrics
    finally:
        env.close()


def format_metrics(metrics: dict) -> str:
    rows = []
    for key, value in metrics.items():
        if isinstance(value, float):
            if key in ("total_return", "annual_return", "max_drawdown", "win_rate", "exposure", "consensus_rate", "regime_accuracy"):
                text = "n/a" if np.isnan(value) else f"{value:.2%}"
            else:
                text = f"{value:,.4f}"
        else:
            text = str(value)
        rows.append(f"  {key:<16} {text}")
    return "\n".join(rows)
