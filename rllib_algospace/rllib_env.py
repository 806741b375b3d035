"""The team env registered with RLlib under ``ENV_NAME``.

Training samples ``envs.market.team.TeamMarketEnv`` (the four agents grouped
into one gymnasium env) on RLlib's single-agent env runner; ``env_config``
holds the market env's keyword arguments plus ``infos`` ("episode" while
training, "full" where every step's infos are read).

``register_env`` is process-local: call ``register()`` in every process that
builds or restores an Algorithm (``Algorithm.from_checkpoint`` fails without it).
"""
from __future__ import annotations

from ray.tune.registry import register_env

from envs.market.team import TeamMarketEnv

ENV_NAME = "algospace_team_market"


def make_env(env_config: dict | None = None) -> TeamMarketEnv:
    """Env creator for ``register_env``. RLlib adds ``num_envs`` when it asks
    for a vector env; the single-agent runner vectorises by itself."""
    config = {k: v for k, v in dict(env_config or {}).items() if k != "num_envs"}
    return TeamMarketEnv(**config)


def register() -> str:
    register_env(ENV_NAME, make_env)
    return ENV_NAME
