"""The market env as an RLlib MultiAgentEnv, registered under ``ENV_NAME``.

RLlib 2.60's ``ParallelPettingZooEnv`` builds its agent list from a ``set``, so
the order differs between processes (driver, env runners, learners). This
wrapper pins it to the env's ``possible_agents``. With ``state_in_obs`` each
agent's observation becomes ``{"obs": own observation, "state": env.state()}``:
the actors read only ``"obs"``, the shared critic reads ``"state"``.

``register_env`` is process-local: call ``register()`` in every process that
builds or restores an Algorithm (``Algorithm.from_checkpoint`` fails without it).
"""
from __future__ import annotations

import gymnasium as gym
from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
from ray.tune.registry import register_env

from envs import algospace_market

ENV_NAME = "algospace_market"
STATE_IN_OBS_KEY = "state_in_obs"  # env_config key read by the wrapper, not by the env


class OrderedParallelPettingZooEnv(ParallelPettingZooEnv):
    """``ParallelPettingZooEnv`` with the agent order of ``possible_agents``."""

    def __init__(self, env, state_in_obs: bool = False):
        super().__init__(env)
        self.state_in_obs = state_in_obs
        self.possible_agents = list(env.possible_agents)
        self.agents = list(env.possible_agents)
        spaces = {a: env.observation_space(a) for a in self.possible_agents}
        if state_in_obs:
            spaces = {a: gym.spaces.Dict({"obs": sp, "state": env.state_space}) for a, sp in spaces.items()}
        self.observation_spaces = spaces
        self.action_spaces = {a: env.action_space(a) for a in self.possible_agents}
        self.observation_space = gym.spaces.Dict(self.observation_spaces)
        self.action_space = gym.spaces.Dict(self.action_spaces)

    def _wrap(self, obs):
        if not self.state_in_obs:
            return obs
        state = self.par_env.state()
        return {a: {"obs": o, "state": state} for a, o in obs.items()}

    def reset(self, *, seed=None, options=None):
        obs, infos = super().reset(seed=seed, options=options)
        return self._wrap(obs), infos

    def step(self, action_dict):
        obs, rewards, terminateds, truncateds, infos = super().step(action_dict)
        return self._wrap(obs), rewards, terminateds, truncateds, infos

    def state(self):
        return self.par_env.state()

    # curriculum hooks reach the PettingZoo env through the wrapper
    def set_task(self, stage: str) -> None:
        self.par_env.set_task(stage)

    def get_task(self) -> str:
        return self.par_env.get_task()


def make_env(env_config: dict | None = None) -> OrderedParallelPettingZooEnv:
    """Env creator for ``register_env``: ``env_config`` holds the market env's
    keyword arguments plus ``state_in_obs``."""
    config = dict(env_config or {})
    state_in_obs = bool(config.pop(STATE_IN_OBS_KEY, False))
    return OrderedParallelPettingZooEnv(algospace_market.parallel_env(**config), state_in_obs=state_in_obs)


def register() -> str:
    register_env(ENV_NAME, make_env)
    return ENV_NAME
