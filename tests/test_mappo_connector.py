"""MAPPO on the team path without a Ray session: the semantics the MAPPO paper
has, each checked on the real learner pipeline and module.

- every actor acts on its own observation only (decentralised execution);
- the centralized critic sees the global state (independent PPO: each agent's
  critic its own observation), and env runners never get it;
- per-agent GAE from the critic equals a textbook GAE per agent, for
  terminated, truncated and cut episodes, with the agents' own rewards when
  the env gives them;
- each agent's PPO ratio is clipped on its own;
- value normalisation; the critic learns on a fixed batch; frozen agents have
  no trainable parameters; minibatches use every row once per epoch.
"""
import copy

import numpy as np
import pytest
import torch

pytest.importorskip("ray")

from ray.rllib.core.columns import Columns  # noqa: E402
from ray.rllib.env.single_agent_episode import SingleAgentEpisode  # noqa: E402
from ray.rllib.evaluation.postprocessing import Postprocessing  # noqa: E402
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch  # noqa: E402

from envs.market.team import TeamMarketEnv  # noqa: E402
from rllib_algospace.config import load_config, quick_overrides  # noqa: E402
from rllib_algospace.mappo.algorithm import EpochMinibatches  # noqa: E402
from rllib_algospace.mappo.connectors import OLD_VALUES_NORM  # noqa: E402
from envs.market.team import STATE_INDEX  # noqa: E402
from rllib_algospace.mappo.modules import TeamModule  # noqa: E402
from rllib_algospace.rllib_env import make_env  # noqa: E402
from rllib_algospace.training import AGENTS, build_algorithm_config  # noqa: E402

GAMMA, LAM = 0.97, 0.9
MODULE = "default_policy"


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
    env = make_env(algo_config.env_config)
    return algo_config, algo_config.build_learner(env=env), env


def _module(learner) -> TeamModule:
    return learner.module[MODULE].unwrapped()


def _textbook(values, rewards, terminated):
    T = len(rewards)
    adv = np.zeros(T)
    running = 0.0
    for t in reversed(range(T)):
        next_v = (0.0 if terminated else values[T]) if t == T - 1 else values[t + 1]
        running = rewards[t] + GAMMA * next_v - values[t] + GAMMA * LAM * running
        adv[t] = running
    return adv, adv + values[:T]


def _episodes(env: TeamMarketEnv, seed=0, agent_rewards=False):
    """Four chunks: terminated, truncated, and one episode cut in two."""
    rng = np.random.default_rng(seed)
    dim = env.observation_space.shape[0]
    nvec = env.action_space.nvec

    def data(T):
        return {
            "obs": [rng.uniform(-1, 1, dim).astype(np.float32) for _ in range(T + 1)],
            "team": rng.normal(size=T),
            "own": rng.normal(size=(T, len(AGENTS))).astype(np.float32),
            "acts": [rng.integers(0, nvec) for _ in range(T)],
        }

    def fill(ep, d, t0, t1, terminated=False, truncated=False, reset=True):
        if reset:
            ep.add_env_reset(observation=d["obs"][t0], infos={})
        for t in range(t0, t1):
            last = t == t1 - 1
            ep.add_env_step(
                observation=d["obs"][t + 1],
                action=d["acts"][t],
                reward=float(d["team"][t]),
                infos={"agent_rewards": d["own"][t]} if agent_rewards else {},
                terminated=terminated and last,
                truncated=truncated and last,
                extra_model_outputs={Columns.ACTION_LOGP: np.float32(-1.0), Columns.ACTION_DIST_INPUTS: np.zeros(int(nvec.sum()), np.float32)},
            )
        return ep

    dA, dB, dC = data(7), data(12), data(10)
    A = fill(SingleAgentEpisode(), dA, 0, 7, terminated=True)
    B = fill(SingleAgentEpisode(), dB, 0, 12, truncated=True)
    C1 = fill(SingleAgentEpisode(), dC, 0, 6)
    C2 = C1.cut(len_lookback_buffer=3)  # the same episode continued in the next batch
    fill(C2, dC, 6, 10, terminated=True, reset=False)
    episodes = [A, B, C1, C2]
    for e in episodes:
        e.to_numpy()
    spec = [(dA, 0, 7, True), (dB, 0, 12, False), (dC, 0, 6, False), (dC, 6, 10, True)]
    return episodes, spec


def _pipeline(learner, episodes):
    return learner._learner_connector(rl_module=learner.module, batch={}, episodes=copy.deepcopy(episodes), shared_data={}, metrics=None)


@pytest.mark.parametrize("centralized,critic_input,agent_rewards", [(True, "state", False), (True, "concat_obs", True), (False, "state", True)])
def test_per_agent_gae_matches_textbook(market_file, centralized, critic_input, agent_rewards):
    _, learner, env = _learner(market_file, centralized=centralized, critic_input=critic_input, **({"env.w_shared": 0.5} if agent_rewards else {}))
    module = _module(learner)
    module.value_normalizer.update(torch.full((4,), 3.0), torch.full((4,), 20.0), torch.tensor(1.0))  # denormalisation matters
    episodes, spec = _episodes(env, agent_rewards=agent_rewards)
    reference_values = []
    for d, t0, t1, _ in spec:
        obs = torch.as_tensor(np.stack(d["obs"][t0 : t1 + 1]))
        with torch.no_grad():
            reference_values.append(module.value_normalizer.denormalize(module.compute_values({Columns.OBS: obs})).numpy())
    batch = _pipeline(learner, episodes)[MODULE]
    mask = batch[Columns.LOSS_MASK].numpy().astype(bool)
    rows = sum(t1 - t0 + 1 for _, t0, t1, _ in spec)
    assert batch[Postprocessing.ADVANTAGES].shape == (rows, 4) and int(mask.sum()) == rows - len(spec)
    for j, _agent in enumerate(AGENTS):
        advs, targets = [], []
        for (d, t0, t1, terminated), v in zip(spec, reference_values):
            rewards = d["own"][t0:t1, j] if agent_rewards else d["team"][t0:t1]
            a, tg = _textbook(v[:, j], rewards, terminated)
            advs.append(a)
            targets.append(tg)
        ref_adv = np.concatenate(advs)
        ref_adv = (ref_adv - ref_adv.mean()) / ref_adv.std(ddof=1)
        target_norm = module.value_normalizer.normalize(torch.as_tensor(np.concatenate(targets)[:, None].repeat(4, 1)))[:, j].numpy()
        np.testing.assert_allclose(batch[Postprocessing.VALUE_TARGETS].numpy()[mask][:, j], target_norm, atol=1e-4)
        np.testing.assert_allclose(batch[Postprocessing.ADVANTAGES].numpy()[mask][:, j], ref_adv, atol=1e-4)
    assert batch[OLD_VALUES_NORM].shape == (rows, 4)


def test_pipeline_replaces_gae_and_only_trainable_parameters_are_optimised(market_file):
    _, learner, _ = _learner(market_file, **{"training.train_agents": ["tactical"], "training.frozen_policy": "rule"})
    names = [type(c).__name__ for c in learner._learner_connector.connectors]
    assert "GeneralAdvantageEstimation" not in names and names[-1] == "TeamGAEConnector"
    module = _module(learner)
    assert module.trainable_agents() == ["tactical"]
    optimizers = dict(learner.get_optimizers_for_module(MODULE))
    assert set(optimizers) == {"actor_tactical", "critic"}  # one each: gradient norms are clipped per part

    def params(name):
        return {id(p) for group in optimizers[name].param_groups for p in group["params"]}

    assert params("actor_tactical") == {id(p) for p in module.actors["tactical"].parameters()}
    assert params("critic") == {id(p) for p in module.critic.parameters()}
    assert not any(p.requires_grad for a in ("regime", "structure", "risk") for p in module.actors[a].parameters())


def _team_module(env, centralized=True, critic_input="state", inference_only=False):
    return TeamModule(
        observation_space=env.observation_space,
        action_space=env.action_space,
        inference_only=inference_only,
        model_config={"agents": list(AGENTS), "layout": env.layout, "state_index": STATE_INDEX.tolist(), "hiddens": [16, 16], "critic_hiddens": [16, 16], "centralized_critic": centralized, "critic_input": critic_input},
    )


def test_each_actor_reads_only_its_own_observation(market_file):
    env = TeamMarketEnv(data=market_file)
    module = _team_module(env)
    obs = torch.as_tensor(np.stack([env.reset(seed=s)[0] for s in range(8)]))
    base = [x.detach() for x in module.agent_logits(obs)]
    for i, agent in enumerate(AGENTS):
        start, stop = env.layout[agent]
        others = obs.clone()
        others[:, :start] += 1.0
        others[:, stop:] -= 1.0
        assert torch.equal(module.agent_logits(others)[i], base[i]), agent  # the others' inputs change nothing
        own = obs.clone()
        own[:, start:stop] += 0.5
        assert not torch.equal(module.agent_logits(own)[i], base[i]), agent
        # the actor alone (what export and the live path run) gives the same logits
        assert torch.equal(module.actors[agent](obs[:, start:stop]), base[i])


def test_every_network_scales_its_inputs_by_the_train_split_statistics(market_file):
    """With ``input_statistics`` (the training file's train-split statistics)
    each actor and the critic see ``(obs - shift) /
    scale``, clipped; the scaling is part of the module's state, and the rule
    actor still reads raw values."""
    from envs.market.env import input_statistics, team_input_scaling
    from rllib_algospace.networks import SCALED_CLIP

    env = TeamMarketEnv(data=market_file)
    statistics = input_statistics(env.market_env.market)
    shift, scale = team_input_scaling(statistics)
    assert (scale > 0).all() and np.count_nonzero(shift) > 0
    scaled = TeamModule(
        observation_space=env.observation_space,
        action_space=env.action_space,
        model_config={"agents": list(AGENTS), "layout": env.layout, "state_index": STATE_INDEX.tolist(), "hiddens": [16, 16], "critic_hiddens": [16, 16], "input_statistics": statistics},
    )
    obs = torch.as_tensor(np.stack([env.reset(seed=s)[0] for s in range(8)]))
    expected_input = ((obs - torch.as_tensor(shift)) / torch.as_tensor(scale)).clamp(-SCALED_CLIP, SCALED_CLIP)
    logits = scaled.agent_logits(obs)
    for i, agent in enumerate(AGENTS):
        start, stop = env.layout[agent]
        actor = scaled.actors[agent]
        assert torch.allclose(logits[i], actor.pi(expected_input[:, start:stop]), atol=1e-6), agent
    values = scaled.compute_values({Columns.OBS: obs})
    assert torch.allclose(values, scaled.critic.vf(expected_input[:, STATE_INDEX]), atol=1e-6)
    # the scaling travels in the module's state (checkpoints, warm starts, export)
    state = scaled.actors["tactical"].state_dict()
    start, stop = env.layout["tactical"]
    np.testing.assert_allclose(state["scale_in.shift"].numpy(), shift[start:stop])
    np.testing.assert_allclose(state["scale_in.scale"].numpy(), scale[start:stop])
    plain = _team_module(env)
    plain.actors["tactical"].load_state_dict(state)
    assert torch.allclose(plain.actors["tactical"](obs[:, start:stop]), logits[2], atol=1e-6)


@pytest.mark.parametrize("scale", [True, False])
def test_scale_inputs_puts_the_training_files_statistics_in_the_model_config(market_file, scale):
    from envs.data.reader import MarketData
    from envs.market.env import input_statistics
    from rllib_algospace.training import build_algorithm_config

    cfg = load_config(None, {**quick_overrides(), "data.path": market_file, "algorithm.scale_inputs": scale, "training.warm_start": None})
    config = build_algorithm_config(cfg, data_path=market_file)
    if scale:
        market = MarketData(market_file)
        assert config.model_config["input_statistics"] == input_statistics(market)
        market.close()
    else:
        assert "input_statistics" not in config.model_config


def test_critic_inputs_and_env_runners_never_get_the_critic(market_file):
    env = TeamMarketEnv(data=market_file)
    obs = torch.as_tensor(np.stack([env.reset(seed=s)[0] for s in range(8)]))
    central = _team_module(env)
    outside = np.setdiff1d(np.arange(obs.shape[1]), STATE_INDEX)
    changed = obs.clone()
    changed[:, outside] += 1.0  # the agents' observations change outside the state
    assert torch.equal(central.compute_values({Columns.OBS: changed}), central.compute_values({Columns.OBS: obs}))
    changed[:, STATE_INDEX] += 1.0
    assert not torch.equal(central.compute_values({Columns.OBS: changed}), central.compute_values({Columns.OBS: obs}))
    independent = _team_module(env, centralized=False)
    values = independent.compute_values({Columns.OBS: obs})
    for j, agent in enumerate(AGENTS):
        a0, a1 = env.layout[agent]
        other = obs.clone()
        other[:, :a0] += 1.0
        other[:, a1:] += 1.0
        assert torch.equal(independent.compute_values({Columns.OBS: other})[:, j], values[:, j]), agent
    runner_side = _team_module(env, inference_only=True)
    assert not hasattr(runner_side, "critic")
    learner_state = central.get_state(inference_only=True)
    assert learner_state and not any(k.startswith(("critic", "value_normalizer")) for k in learner_state)
    runner_side.set_state(learner_state)
    assert torch.equal(runner_side._forward({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS], central._forward({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS])


def test_each_agents_ratio_is_clipped_on_its_own(market_file):
    algo_config, learner, env = _learner(market_file, **{"algorithm.entropy_coeff": 0.0})
    algo_config.use_kl_loss = False
    module = _module(learner)
    n = 6
    obs = torch.as_tensor(np.stack([env.reset(seed=s)[0] for s in range(n)]))
    logits = module._forward({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS].detach()
    actions = torch.zeros((n, 4), dtype=torch.long)
    old = logits.clone()
    # agent 0's old probability of its action much lower (ratio >> 1 + clip), agent 1's much higher
    sizes = module.action_sizes
    old[:, 0] -= 2.0
    old[:, sizes[0]] += 2.0
    advantages = torch.ones((n, 4))
    batch = {
        Columns.OBS: obs,
        Columns.ACTIONS: actions,
        Columns.ACTION_DIST_INPUTS: old,
        Columns.LOSS_MASK: torch.ones(n, dtype=torch.bool),
        Postprocessing.ADVANTAGES: advantages,
        Postprocessing.VALUE_TARGETS: torch.zeros((n, 4)),
        OLD_VALUES_NORM: torch.zeros((n, 4)),
    }
    cfg = learner.config.get_config_for_module(MODULE)
    cfg.use_kl_loss = False
    values = module.compute_values(batch).float()
    loss = learner.compute_loss_for_module(module_id=MODULE, config=cfg, batch=batch, fwd_out={Columns.ACTION_DIST_INPUTS: logits, Columns.VF_PREDS: values})
    from rllib_algospace.mappo.valuenorm import clipped_value_loss

    value_loss = clipped_value_loss(values, batch[OLD_VALUES_NORM], batch[Postprocessing.VALUE_TARGETS], batch[Columns.LOSS_MASK], cfg.critic_value_clip)
    expected, ratios = 0.0, []
    for i, (new_i, old_i) in enumerate(zip(module.split_logits(logits), module.split_logits(old))):
        ratio = torch.exp(torch.log_softmax(new_i, -1)[:, 0] - torch.log_softmax(old_i, -1)[:, 0])
        ratios.append(ratio)
        expected = expected - torch.min(ratio, ratio.clamp(1 - cfg.clip_param, 1 + cfg.clip_param)).mean()
    assert float(ratios[0].min()) > 1 + cfg.clip_param and float(ratios[1].max()) < 1 - cfg.clip_param
    torch.testing.assert_close(loss, expected + cfg.critic_loss_coeff * value_loss)
    joint = torch.stack(ratios).prod(0)
    joint_loss = -torch.min(joint, joint.clamp(1 - cfg.clip_param, 1 + cfg.clip_param)).mean()
    assert abs(float(joint_loss - expected)) > 0.1  # one clipped joint ratio is a different algorithm


def test_critic_loss_falls_on_a_fixed_batch(market_file):
    _, learner, env = _learner(market_file, **{"algorithm.lr": 1e-3})
    episodes, _ = _episodes(env, seed=3)
    losses = []
    for _ in range(8):
        results = learner.update(episodes=copy.deepcopy(episodes), num_epochs=4, minibatch_size=16)
        value = results[MODULE]["vf_loss"]
        losses.append(float(value.peek() if hasattr(value, "peek") else value))
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


def test_epoch_minibatches_use_every_row_once_per_epoch():
    rows = 103
    batch = MultiAgentBatch({MODULE: SampleBatch({"x": torch.arange(rows), "y": torch.arange(rows) * 2})}, env_steps=rows)
    seen = []
    for minibatch in EpochMinibatches(batch, num_epochs=3, minibatch_size=25):
        b = minibatch.policy_batches[MODULE]
        assert torch.equal(b["y"], b["x"] * 2)  # rows stay whole
        seen.append(b["x"])
    assert len(seen) == 3 * 4  # round(103 / 25) parts per epoch
    for epoch in range(3):
        assert sorted(torch.cat(seen[epoch * 4 : (epoch + 1) * 4]).tolist()) == list(range(rows))
    whole = list(EpochMinibatches(batch, num_epochs=2, minibatch_size=None))
    assert len(whole) == 2 and all(m is batch for m in whole)


def test_team_env_layout_and_rewards(market_file):
    env = make_env({"data": market_file, "w_shared": 0.5, "infos": "episode"})
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and info == {}
    from envs.market.env import AlgoSpaceMarketEnv

    market = AlgoSpaceMarketEnv(data=market_file, w_shared=0.5)
    observations, _ = market.reset(seed=0)  # the same market, the same seed
    for agent in AGENTS:
        start, stop = env.layout[agent]
        np.testing.assert_array_equal(obs[start:stop], observations[agent])
    np.testing.assert_array_equal(obs[STATE_INDEX], market.state())  # the critic's global state
    for _ in range(300):  # and at every later step
        action = env.action_space.sample()
        obs, *_ = env.step(action)
        market.step({a: int(action[i]) for i, a in enumerate(AGENTS)})
        np.testing.assert_array_equal(obs[STATE_INDEX], market.state())
    env.reset(seed=1)
    obs, reward, terminated, truncated, info = env.step(np.array([0, 3, 1, 0]))
    assert set(info) == {"agent_rewards"} and info["agent_rewards"].shape == (4,)
    assert np.isfinite(reward)


def test_checkpoints_of_the_old_schema_are_refused(tmp_path):
    import json

    from rllib_algospace.checkpoints import CheckpointError, load_team_module

    old = tmp_path / "checkpoint_000001"
    old.mkdir()
    (old / "algospace.json").write_text(json.dumps({"format": 1, "agents": list(AGENTS), "modules_dir": "learner_group/learner/rl_module"}))
    with pytest.raises(CheckpointError, match=r"checkpoint schema 1 is not this version's schema 4") as info:
        load_team_module(old)
    assert str(old) in str(info.value) and "\n" not in str(info.value)
    # format 2: one team module, but the old operation actions (enter/exit/reduce, modify/block)
    (old / "algospace.json").write_text(json.dumps({"format": 2, "agents": list(AGENTS), "module_dir": "learner_group/learner/rl_module/default_policy"}))
    with pytest.raises(CheckpointError, match=r"schema 2 is not this version's schema 4 \(its actions are the old operations"):
        load_team_module(old)
    (old / "algospace.json").write_text(json.dumps({"format": 3, "agents": list(AGENTS), "module_dir": "learner_group/learner/rl_module/default_policy"}))
    with pytest.raises(CheckpointError, match=r"schema 3 is not this version's schema 4 \(its networks do not scale their inputs"):
        load_team_module(old)


@pytest.mark.parametrize(
    "cpus,overrides,expected",
    [
        # env runners and the local learner take turns: one runner per core, the learner uses them all
        (2, {}, (2, 1, 0.5, 2)),
        (8, {}, (8, 1, 0.875, 8)),
        (1, {}, (0, 1, 1.0, 1)),
        # sampling in the learner's process: the trial's whole share
        (2, {"resources.num_env_runners": 0}, (0, 2, 1.0, 2)),
        (8, {"resources.num_env_runners": 0, "resources.max_concurrent_trials": 4}, (0, 2, 1.0, 2)),
        # remote learners hold cores of their own
        (8, {"resources.num_learners": 2}, (5, 1, 1.0, 0)),
        (2, {"resources.num_learners": 1}, (0, 1, 1.0, 0)),
    ],
)
def test_resources_never_ask_for_more_cores_than_the_machine(monkeypatch, cpus, overrides, expected):
    from rllib_algospace import tune_session

    monkeypatch.setattr(tune_session.os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(tune_session, "gpu_count", lambda: 0)
    cfg = load_config(None, overrides)
    res = tune_session.resolve_resources(cfg)
    assert (res.num_env_runners, res.num_cpus_for_main_process, res.cpus_per_env_runner, res.learner_threads) == expected
    asked = res.num_cpus_for_main_process + res.num_env_runners * res.cpus_per_env_runner + cfg.resources.num_learners
    assert asked <= max(cpus, 1) + 1e-9 or cpus == 1
    assert not any(note.startswith("warning") for note in res.notes)


def _loss_inputs(module, obs, advantage: float):
    """The module's logits on ``obs``, a batch whose old policy is the current
    one (ratio 1) with every action 0 and the given advantage, and the
    forward outputs the loss reads."""
    n = len(obs)
    logits = module._forward({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
    batch = {
        Columns.OBS: obs,
        Columns.ACTIONS: torch.zeros((n, 4), dtype=torch.long),
        Columns.ACTION_DIST_INPUTS: logits.detach(),
        Columns.LOSS_MASK: torch.ones(n, dtype=torch.bool),
        Postprocessing.ADVANTAGES: torch.full((n, 4), advantage),
        Postprocessing.VALUE_TARGETS: torch.zeros((n, 4)),
        OLD_VALUES_NORM: torch.zeros((n, 4)),
    }
    return logits, batch, {Columns.ACTION_DIST_INPUTS: logits, Columns.VF_PREDS: module.compute_values(batch).float()}


def test_warm_start_critic_warmup_and_teacher_kl(market_file, tmp_path):
    """The actors start as the clone; during the critic warm-up only the value
    loss counts; afterwards PPO plus coeff * KL(teacher || agent) per agent,
    the coefficient falling linearly to zero."""
    from rllib_algospace.teacher import build_actors, load_warm_start, pretrain

    ws = tmp_path / "ws.pt"
    pretrain({"data": market_file, "episode_length": 256}, ws, teacher="rule", steps=1500, val_steps=300, epochs=1, hiddens=[32, 32], activation="relu", progress=lambda m: None)
    algo_config, _, env = _learner(market_file, **{"algorithm.entropy_coeff": 0.0})
    algo_config.rl_module(model_config={**algo_config.model_config, "warm_start": str(ws)})
    algo_config.mappo(critic_warmup_steps=1000, teacher_kl_coeff=0.5, teacher_kl_steps=4000)
    learner = algo_config.build_learner(env=env)
    module = _module(learner)
    teacher = build_actors(load_warm_start(ws))
    obs = torch.as_tensor(np.stack([env.reset(seed=s)[0] for s in range(8)]))
    for agent in AGENTS:
        x = module.agent_obs(obs, agent)
        torch.testing.assert_close(module.actors[agent](x), teacher[agent](x))
    cfg = learner.config.get_config_for_module(MODULE)
    assert [cfg.teacher_kl_coeff_at(s) for s in (1000, 3000, 5000, 9000)] == [0.5, 0.25, 0.0, 0.0]

    with torch.no_grad():  # move the agents away from the teacher
        for p in module.actors.parameters():
            p.add_(0.05 * torch.randn_like(p))
    logits, batch, fwd = _loss_inputs(module, obs, advantage=1.0)
    values = fwd[Columns.VF_PREDS]
    from rllib_algospace.mappo.valuenorm import clipped_value_loss

    value_loss = cfg.critic_loss_coeff * clipped_value_loss(values, batch[OLD_VALUES_NORM], batch[Postprocessing.VALUE_TARGETS], batch[Columns.LOSS_MASK], cfg.critic_value_clip)

    learner.before_gradient_based_update(timesteps={"num_env_steps_sampled_lifetime": 1000})
    warm = learner.compute_loss_for_module(module_id=MODULE, config=cfg, batch=batch, fwd_out=fwd)
    torch.testing.assert_close(warm, value_loss)  # the critic alone

    teacher_kl = 0.0
    for agent, new_i in zip(module.agents, module.split_logits(logits)):
        t = torch.distributions.Categorical(logits=teacher[agent](module.agent_obs(obs, agent)))
        teacher_kl = teacher_kl + torch.distributions.kl_divergence(t, torch.distributions.Categorical(logits=new_i)).mean()
    assert float(teacher_kl.detach()) > 1e-4
    learner.before_gradient_based_update(timesteps={"num_env_steps_sampled_lifetime": 1000})
    learner._lifetime_steps = 3000.0  # halfway through the decay: 0.25
    loss = learner.compute_loss_for_module(module_id=MODULE, config=cfg, batch=batch, fwd_out=fwd)
    ppo = -torch.ones(())  # ratio 1, advantage 1: -1 per agent, no clipping
    torch.testing.assert_close(loss, 4 * ppo + 0.25 * teacher_kl + value_loss)
    learner._lifetime_steps = 6000.0
    late = learner.compute_loss_for_module(module_id=MODULE, config=cfg, batch=batch, fwd_out=fwd)
    torch.testing.assert_close(late, 4 * ppo + value_loss)


def test_regime_label_slot_and_auxiliary_regime_loss(market_file):
    """The team observation carries the bar's regime label where no actor and
    no critic input reaches; the learner adds coeff * cross-entropy of the
    regime actor against it, on labelled rows only."""
    from envs.market.team import REGIME_LABEL, TEAM_LAYOUT

    pos = TEAM_LAYOUT[REGIME_LABEL][0]
    assert pos == max(stop for _, stop in TEAM_LAYOUT.values()) - 1 and pos not in set(STATE_INDEX.tolist())
    assert all(stop <= pos for name, (_, stop) in TEAM_LAYOUT.items() if name != REGIME_LABEL)
    algo_config, learner, env = _learner(market_file, **{"algorithm.entropy_coeff": 0.0, "algorithm.regime_aux_coeff": 0.7, "training.warm_start": None})
    obs = []
    env.reset(seed=0)
    for s in range(40):
        o, *_ = env.step(env.action_space.sample())
        assert o[pos] == env.market_env.market.base("regime_label").row(env.market_env.bar_index)
        obs.append(o)
    obs = torch.as_tensor(np.stack(obs))
    obs[::5, pos] = -1.0  # some rows without a label
    module = _module(learner)
    cfg = learner.config.get_config_for_module(MODULE)
    logits, batch, fwd = _loss_inputs(module, obs, advantage=0.0)
    with_aux = learner.compute_loss_for_module(module_id=MODULE, config=cfg, batch=batch, fwd_out=fwd)
    cfg.regime_aux_coeff = 0.0
    without = learner.compute_loss_for_module(module_id=MODULE, config=cfg, batch=batch, fwd_out=fwd)
    labels = obs[:, pos].long()
    has = labels >= 0
    expected = torch.nn.functional.cross_entropy(module.split_logits(logits)[0][has], labels[has])
    torch.testing.assert_close(with_aux - without, 0.7 * expected)
