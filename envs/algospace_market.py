"""PettingZoo entry points for the AlgoSpace market (PettingZoo's module convention).

>>> from envs import algospace_market
>>> env = algospace_market.parallel_env()          # ParallelEnv on the default data
>>> aec = algospace_market.env(split="val")         # the same game as an AEC env

Keyword arguments are ``envs.market.config.MarketEnvConfig``'s fields.
"""
from __future__ import annotations

from pettingzoo.utils.conversions import parallel_to_aec

from envs.market.config import MarketEnvConfig
from envs.market.env import (
    ACTION_NAMES,
    AGENTS,
    AlgoSpaceMarketEnv,
)
from envs.market.portfolio import PORTFOLIO_FEATURES

__all__ = ["parallel_env", "env", "raw_env", "AlgoSpaceMarketEnv", "MarketEnvConfig", "AGENTS", "ACTION_NAMES", "PORTFOLIO_FEATURES"]


def parallel_env(**config) -> AlgoSpaceMarketEnv:
    """The ParallelEnv; with no arguments it uses the default synthetic data."""
    return AlgoSpaceMarketEnv(**config)


def raw_env(**config):
    """The AEC version, without PettingZoo's order-enforcing wrapper."""
    return parallel_to_aec(parallel_env(**config)).env


def env(**config):
    """The AEC version (agents act in the fixed order regime, structure, tactical, risk)."""
    return parallel_to_aec(parallel_env(**config))
