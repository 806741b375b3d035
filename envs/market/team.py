"""The four-agent market grouped into one gymnasium env: the team as one actor.

Training samples the team on RLlib's single-agent env runner, which is several
times faster than its multi-agent runner (one connector pass, one module call
and one episode per env step instead of four of each). Nothing of MAPPO is
lost in the grouping, because the layout below keeps every agent's part apart:

* observation: one flat float32 vector, the agents' observations in
  ``AGENTS`` order followed by the global state (``env.state()``);
  ``TeamMarketEnv.layout`` gives each part's ``(start, stop)``. Each actor of
  the team module reads only its own slice; the centralized critic reads
  ``"state"``.
* action: ``MultiDiscrete`` of the agents' action counts, in ``AGENTS`` order.
* reward: the team reward. When agents' rewards differ (``w_shared < 1``)
  each step's infos carry them as ``"agent_rewards"`` (``AGENTS`` order).

``infos="episode"`` (training) gives the market env's full step infos only on
an episode's last step, where metrics are read; the other steps carry only
what training needs. ``infos="full"`` passes every step's infos through.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.market.env import AGENTS, N_ACTIONS, AlgoSpaceMarketEnv

INFO_MODES = ("episode", "full")
STATE = "state"


def team_layout(env: AlgoSpaceMarketEnv) -> dict[str, tuple[int, int]]:
    """``{agent or "state": (start, stop)}`` of the flat team observation."""
    layout, start = {}, 0
    for name in (*AGENTS, STATE):
        space = env.state_space if name == STATE else env.observation_space(name)
        size = int(np.prod(space.shape))
        layout[name] = (start, start + size)
        start += size
    return layout


class TeamMarketEnv(gym.Env):
    """``AlgoSpaceMarketEnv`` as one gymnasium env (see the module docstring).

    Keyword arguments are the market env's, plus ``infos``.
    """

    metadata = {"render_modes": ["ansi", "human"]}

    def __init__(self, *, infos: str = "episode", **config):
        if infos not in INFO_MODES:
            raise ValueError(f"environment config infos={infos!r}: must be one of {', '.join(INFO_MODES)}")
        self.market_env = AlgoSpaceMarketEnv(**config)
        self.info_mode = infos
        env = self.market_env
        self.layout = team_layout(env)
        parts = [env.observation_space(a) for a in AGENTS] + [env.state_space]
        self.observation_space = gym.spaces.Box(
            low=np.concatenate([p.low for p in parts]),
            high=np.concatenate([p.high for p in parts]),
            dtype=np.float32,
        )
        self.action_space = gym.spaces.MultiDiscrete([N_ACTIONS[a] for a in AGENTS])
        self._agent_rewards = env.config.w_shared != 1.0

    def _flat(self, observations: dict) -> np.ndarray:
        return np.concatenate([observations[a] for a in AGENTS] + [self.market_env.state()])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        observations, infos = self.market_env.reset(seed=seed, options=options)
        return self._flat(observations), (infos[AGENTS[0]] if self.info_mode == "full" else {})

    def step(self, action):
        actions = {a: int(action[i]) for i, a in enumerate(AGENTS)}
        observations, rewards, terminations, truncations, infos = self.market_env.step(actions)
        first = AGENTS[0]
        terminated, truncated = terminations[first], truncations[first]
        info = infos[first]  # the same team dict for every agent
        reward = float(info["team_reward"])
        if self.info_mode == "episode" and not (terminated or truncated):
            info = {}
        if self._agent_rewards:
            info = {**info, "agent_rewards": np.array([rewards[a] for a in AGENTS], dtype=np.float32)}
        return self._flat(observations), reward, terminated, truncated, info

    def state(self) -> np.ndarray:
        return self.market_env.state()

    def render(self):
        return self.market_env.render()

    def close(self) -> None:
        self.market_env.close()

    # curriculum: from each env's next reset on
    def set_task(self, stage: str) -> None:
        self.market_env.set_task(stage)

    def get_task(self) -> str:
        return self.market_env.get_task()

