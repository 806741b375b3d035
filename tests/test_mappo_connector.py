"""The MAPPO learner pipeline on hand-built episodes (no Ray session): the
shared critic's advantages and targets equal a textbook GAE per agent with rows
of all agents aligned to the same env step, for terminated, truncated and cut
episodes; independent PPO gets RLlib's GAE with the truncation fix; the critic
learns on a fixed batch; and the critic trains even when left out of
``policies_to_train``."""
import copy

import numpy as np
import pytest
import torch

pytest.importorskip("ray")

from ray.rllib.core.columns import Columns  # noqa: E402
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode  # noqa: E402
from ray.rllib.evaluation.postprocessing import Postprocessing  # noqa: E402

from rllib_algospace.config import load_config, quick_overrides  # noqa: E402
from rllib_algospace.mappo.modules import CRITIC_ID, CRITIC_STATE  # noqa: E402
from rllib_algospace.rllib_env import make_env  # noqa: E402
from rllib_algospace.training import AGENTS, build_algorithm_config  # noqa: E402

GAMMA, LAM = 0.97, 0.9


def _learner(market_file, centralized=True, critic_input="state", **extra):
    cfg = load_config(
        None,
        {
            **quick_overrides(),
            "data.path": market_file,
            "algorithm.centralized_critic": centralized,
            "algorithm.critic_input": critic_input,
            "algorithm.gamma": GAMMA,
            "algorithm.lambda_": LAM,
            **extra,
        },
    )
    algo_config = build_algorithm_config(cfg)
    algo_config.mappo(mappo_debug_checks=True)
    env = make_env(algo_config.env_config)
    return algo_config, algo_config.build_learner(env=env), env


def _textbook(values, rewards, terminated):
    T = len(rewards)
    adv = np.zeros(T)
    running = 0.0
    for t in reversed(range(T)):
        next_v = (0.0 if terminated else values[T]) if t == T - 1 else values[t + 1]
        running = rewards[t] + GAMMA * next_v - values[t] + GAMMA * LAM * running
        adv[t] = running
    return adv, adv + values[:T]


def _episodes(env, dict_obs, seed=0):
    rng = np.random.default_rng(seed)
    spaces = {a: env.par_env.observation_space(a) for a in AGENTS}
    state_dim = env.par_env.state_space.shape[0]

    def data(T):
        obs = [{a: rng.uniform(-1, 1, spaces[a].shape).astype(np.float32) for a in AGENTS} for _ in range(T + 1)]
        states = [rng.uniform(-1, 1, state_dim).astype(np.float32) for _ in range(T + 1)]
        team = rng.normal(size=T)
        rewards = [{a: float(team[t] + 0.1 * i) for i, a in enumerate(AGENTS)} for t in range(T)]
        actions = [{a: int(rng.integers(env.par_env.action_space(a).n)) for a in AGENTS} for _ in range(T)]
        return {"obs": obs, "states": states, "rew": rewards, "acts": actions}

    def fill(ep, d, t0, t1, terminated=False, truncated=False, reset=True):
        def ob(t):
            return {a: {"obs": d["obs"][t][a], "state": d["states"][t]} for a in AGENTS} if dict_obs else d["obs"][t]

        if reset:
            ep.add_env_reset(observations=ob(t0), infos={a: {} for a in AGENTS})
        for t in range(t0, t1):
            last = t == t1 - 1
            ep.add_env_step(
                observations=ob(t + 1),
                actions=d["acts"][t],
                rewards=d["rew"][t],
                infos={a: {} for a in AGENTS},
                terminateds={a: terminated and last for a in AGENTS} | {"__all__": terminated and last},
                truncateds={a: truncated and last for a in AGENTS} | {"__all__": truncated and last},
                extra_model_outputs={
                    a: {Columns.ACTION_LOGP: np.float32(-1.0), Columns.ACTION_DIST_INPUTS: np.zeros(env.par_env.action_space(a).n, np.float32)}
                    for a in AGENTS
                },
            )
        return ep

    def new():
        return MultiAgentEpisode(agent_to_module_mapping_fn=lambda aid, ep, **kw: aid)

    dA, dB, dC = data(7), data(12), data(10)
    A = fill(new(), dA, 0, 7, terminated=True)
    B = fill(new(), dB, 0, 12, truncated=True)
    C1 = fill(new(), dC, 0, 6)
    C2 = C1.cut(len_lookback_buffer=3)  # the same episode continued in the next batch
    fill(C2, dC, 6, 10, terminated=True, reset=False)
    episodes = [A, B, C1, C2]
    for e in episodes:
        e.to_numpy()
    spec = [(dA, 0, 7, True), (dB, 0, 12, False), (dC, 0, 6, False), (dC, 6, 10, True)]
    return episodes, spec


def _pipeline(learner, episodes):
    return learner._learner_connector(rl_module=learner.module, batch={}, episodes=copy.deepcopy(episodes), shared_data={}, metrics=None)


@pytest.mark.parametrize("critic_input", ["state", "concat_obs"])
def test_shared_critic_gae_matches_textbook_and_rows_align(market_file, critic_input):
    _, learner, env = _learner(market_file, critic_input=critic_input)
    critic = learner.module[CRITIC_ID].unwrapped()
    critic.update_stats(torch.full((4,), 3.0), torch.full((4,), 20.0), torch.tensor(1.0))  # denormalisation matters
    dict_obs = critic_input == "state"
    episodes, spec = _episodes(env, dict_obs)
    reference_values = []
    for d, t0, t1, _ in spec:
        if dict_obs:
            S = np.stack(d["states"][t0 : t1 + 1])
        else:
            S = np.stack([np.concatenate([d["obs"][t][a] for a in AGENTS]) for t in range(t0, t1 + 1)])
        with torch.no_grad():
            reference_values.append(critic.denormalize(critic.compute_values({CRITIC_STATE: torch.as_tensor(S)})).numpy())
    batch = _pipeline(learner, episodes)  # debug checks assert obs rows == episode rows per agent
    for j, agent in enumerate(AGENTS):
        b = batch[agent]
        mask = b[Columns.LOSS_MASK].numpy().astype(bool)
        advs, targets = [], []
        for (d, t0, t1, terminated), v in zip(spec, reference_values):
            rewards = np.array([d["rew"][t][agent] for t in range(t0, t1)])
            a, tg = _textbook(v[:, j], rewards, terminated)
            advs.append(a)
            targets.append(tg)
        ref_adv = np.concatenate(advs)
        ref_adv = (ref_adv - ref_adv.mean()) / ref_adv.std(ddof=1)
        np.testing.assert_allclose(b[Postprocessing.VALUE_TARGETS].numpy()[mask], np.concatenate(targets), atol=1e-4)
        np.testing.assert_allclose(b[Postprocessing.ADVANTAGES].numpy()[mask], ref_adv, atol=1e-4)
    critic_batch = batch[CRITIC_ID]
    rows = sum(t1 - t0 + 1 for _, t0, t1, _ in spec)
    assert critic_batch[CRITIC_STATE].shape[0] == rows
    assert int(critic_batch[Columns.LOSS_MASK].sum()) == rows - len(spec)


def test_independent_ppo_bootstraps_truncated_episodes(market_file):
    _, learner, env = _learner(market_file, centralized=False)
    names = [type(c).__name__ for c in learner._learner_connector.connectors]
    assert names[-2:] == ["BootstrapTruncatedEpisodes", "GeneralAdvantageEstimation"]
    episodes, spec = _episodes(env, dict_obs=False)
    batch = _pipeline(learner, episodes)
    for agent in AGENTS:
        module = learner.module[agent].unwrapped()
        b = batch[agent]
        mask = b[Columns.LOSS_MASK].numpy().astype(bool)
        targets = []
        for d, t0, t1, terminated in spec:
            obs = torch.as_tensor(np.stack([d["obs"][t][agent] for t in range(t0, t1 + 1)]))
            with torch.no_grad():
                v = module.compute_values({Columns.OBS: obs}).numpy()
            rewards = np.array([d["rew"][t][agent] for t in range(t0, t1)])
            targets.append(_textbook(v, rewards, terminated)[1])
        np.testing.assert_allclose(b[Postprocessing.VALUE_TARGETS].numpy()[mask], np.concatenate(targets), atol=1e-4)


def test_mappo_pipeline_replaces_gae(market_file):
    _, learner, _ = _learner(market_file)
    names = [type(c).__name__ for c in learner._learner_connector.connectors]
    assert "GeneralAdvantageEstimation" not in names
    assert names[-2:] == ["BootstrapTruncatedEpisodes", "MAPPOGAEConnector"]
    # every actor and the critic have an optimizer (policy-only actors would silently get none)
    assert set(learner._module_optimizers) == set(AGENTS) | {CRITIC_ID}


def _critic_loss_series(learner, episodes, updates):
    losses = []
    for _ in range(updates):
        results = learner.update(episodes=copy.deepcopy(episodes), num_epochs=4, minibatch_size=64)
        losses.append(float(results[CRITIC_ID]["vf_loss"].peek() if hasattr(results[CRITIC_ID]["vf_loss"], "peek") else results[CRITIC_ID]["vf_loss"]))
    return losses


def test_critic_loss_falls_on_a_fixed_batch(market_file):
    _, learner, env = _learner(market_file, **{"algorithm.lr": 1e-3})
    episodes, _ = _episodes(env, dict_obs=True, seed=3)
    losses = _critic_loss_series(learner, episodes, 8)
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


def test_critic_trains_when_left_out_of_policies_to_train(market_file):
    algo_config, _, env = _learner(market_file)
    algo_config.multi_agent(policies_to_train=["regime"])
    learner = algo_config.build_learner(env=env)
    episodes, _ = _episodes(env, dict_obs=True)
    results = learner.update(episodes=copy.deepcopy(episodes), num_epochs=1, minibatch_size=64)
    steps = results[CRITIC_ID]["num_module_steps_trained"]
    steps = steps.peek() if hasattr(steps, "peek") else steps
    assert steps > 0
    assert "tactical" not in results or "num_module_steps_trained" not in results["tactical"]


def test_wrapper_keeps_the_env_agent_order(market_file):
    env = make_env({"data": market_file, "state_in_obs": True})
    assert env.possible_agents == list(AGENTS) == env.agents
    obs, _ = env.reset(seed=0)
    assert set(obs["risk"]) == {"obs", "state"}
    assert obs["risk"]["state"].shape == env.par_env.state_space.shape
