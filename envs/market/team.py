"""The four-agent market grouped into one gymnasium env: the team as one actor.

Training samples the team on RLlib's single-agent env runner, which is several
times faster than its multi-agent runner (one connector pass, one module call
and one episode per env step instead of four of each). Nothing of MAPPO is
lost in the grouping, because the layout keeps every agent's part apart:

* observation: ``AlgoSpaceMarketEnv.team_observation()``, one flat float32
  vector: the agents' observations in ``AGENTS`` order, then the risk agent's
  own last call, then the bar's ground-truth regime label (-1: none), which
  only the learner's auxiliary regime loss reads. ``TEAM_LAYOUT`` gives each part's ``(start, stop)``; each
  actor of the team module reads only its own slice. The global state the
  centralized critic reads is ``obs[STATE_INDEX]`` (equal to ``env.state()``:
  every part of it is in some agent's observation but risk's own call), so it
  is not sent twice.
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

from envs.market.env import AGENTS, N_ACTIONS, REGIME_ACTIONS, REGIME_LABEL, RISK_CALL, STATE_INDEX, TEAM_LAYOUT, AlgoSpaceMarketEnv

INFO_MODES = ("episode", "full")
__all__ = ["INFO_MODES", "REGIME_LABEL", "RISK_CALL", "STATE_INDEX", "TEAM_LAYOUT", "TeamMarketEnv"]


class TeamMarketEnv(gym.Env):
    """``AlgoSpaceMarketEnv`` as one gymnasium env (see the module docstring).

    Keyword arguments are the market env's, plus ``infos``.
    """

    metadata = {"render_modes": ["ansi", "human"]}
    layout = TEAM_LAYOUT
    state_index = STATE_INDEX

    def __init__(self, *, infos: str = "episode", **config):
        if infos not in INFO_MODES:
            raise ValueError(f"environment config infos={infos!r}: must be one of {', '.join(INFO_MODES)}")
        self.market_env = AlgoSpaceMarketEnv(**config)
        self.info_mode = infos
        env = self.market_env
        parts = [env.observation_space(a) for a in AGENTS] + [
            gym.spaces.Box(0.0, 1.0, (N_ACTIONS["risk"],), np.float32),
            gym.spaces.Box(-1.0, float(len(REGIME_ACTIONS) - 1), (1,), np.float32),  # the regime label (learner only)
        ]
        self.observation_space = gym.spaces.Box(
            low=np.concatenate([p.low for p in parts]),
            high=np.concatenate([p.high for p in parts]),
            dtype=np.float32,
        )
        self.action_space = gym.spaces.MultiDiscrete([N_ACTIONS[a] for a in AGENTS])
        self._agent_rewards = env.config.w_shared != 1.0
        self._full = infos == "full"

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        _, infos = self.market_env.reset(seed=seed, options=options)
        return self.market_env.team_observation(), (infos[AGENTS[0]] if self._full else {})

    def step(self, action):
        act = {a: int(action[i]) for i, a in enumerate(AGENTS)}
        team, rewards, terminated, truncated, info = self.market_env.advance(act, with_info=self._full)
        info = info or {}
        if self._agent_rewards:
            info = {**info, "agent_rewards": np.array([rewards[a] for a in AGENTS], dtype=np.float32)}
        return self.market_env.team_observation(), float(team), terminated, truncated, info

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

    # training's cost warm-up: from the next trade on
    def set_cost_scale(self, scale: float) -> None:
        self.market_env.set_cost_scale(scale)
