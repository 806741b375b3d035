"""Per-agent training: the ``training:`` config section and CLI flags (no Ray),
``RuleActorModule`` (the rule policies as an RLModule), frozen agents keeping
their weights while the others and the shared critic train, ``init_from``
loading a checkpoint's modules, and a rule-frozen Tune run continued jointly."""
import os

import numpy as np
import pytest

from helpers import TINY_TRAINING
from rllib_algospace.config import AGENT_NAMES, ConfigError, load_config, quick_overrides

TINY = TINY_TRAINING
MODULES = (*AGENT_NAMES, "shared_critic")


def _tiny(storage, name, **extra):
    return load_config(None, {**quick_overrides(), **TINY, "experiment.storage_path": str(storage), "experiment.name": name, **extra})


# -- config and CLI (no Ray) -------------------------------------------------------------
def test_agent_names_match_the_env():
    from envs.market.env import AGENTS

    assert AGENT_NAMES == tuple(AGENTS)


def test_training_section(tmp_path):
    cfg = load_config()
    assert cfg.training.train_agents is None and cfg.training.init_from is None and cfg.training.frozen_policy == "checkpoint"
    assert cfg.training.frozen_agents == ()
    cfg = load_config(None, {"training.train_agents": "tactical, structure", "training.frozen_policy": "rule"})
    assert cfg.training.train_agents == ("structure", "tactical")  # the team's order
    assert cfg.training.frozen_agents == ("regime", "risk")
    (tmp_path / "ck").mkdir()
    cfg = load_config(None, {"training.train_agents": ["risk"], "training.init_from": str(tmp_path / "ck")})
    assert cfg.training.init_from == str(tmp_path / "ck")
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  train_agents: [structure]\n  init_from: ~/runs/x\n")
    assert load_config(path).training.init_from == os.path.expanduser("~/runs/x")


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({"training.train_agents": "structure,tactcal", "training.frozen_policy": "rule"}, "overrides: training.train_agents: unknown agent 'tactcal' (did you mean tactical?); agents are regime, structure, tactical, risk"),
        ({"training.train_agents": [], "training.frozen_policy": "rule"}, "overrides: training.train_agents: expected a list of agent names"),
        ({"training.train_agents": ["risk", "risk"], "training.frozen_policy": "rule"}, "overrides: training.train_agents: an agent is listed twice"),
        ({"training.train_agents": 3}, "overrides: training.train_agents: expected a list of agent names"),
        ({"training.frozen_policy": "rules"}, "overrides: training.frozen_policy: must be one of checkpoint, rule, got 'rules' (did you mean rule?)"),
        ({"training.train_agents": ["structure"]}, "overrides: training.frozen_policy is checkpoint but training.init_from is not set: the frozen agents (regime, tactical, risk) would keep random weights"),
        ({"training.init_from": "s3://bucket/ckpt"}, "overrides: training.init_from: must be a local file"),
        ({"training.init_form": "x"}, "overrides: unknown key training.init_form (did you mean init_from?)"),
    ],
)
def test_bad_training_section(overrides, expected):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert str(info.value).startswith(expected), str(info.value)


def test_cli_flags_reach_the_config_and_unknown_agent_exits_2(capsys, monkeypatch, tmp_path):
    from rllib_algospace import cli, training

    assert cli.main(["train", "--train-agents", "structure,foo", "--frozen-policy", "rule", "--no-evaluate"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("algospace: error: overrides: training.train_agents: unknown agent 'foo'") and "\n" not in err
    assert cli.main(["train", "--train-agents", "structure", "--init-from", str(tmp_path / "missing"), "--no-evaluate"]) == 2
    assert "training.init_from: no such checkpoint or folder" in capsys.readouterr().err
    seen = {}

    def fake_train(cfg, resume=False):  # stands in for the Tune run
        seen["cfg"] = cfg
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", fake_train)
    (tmp_path / "ck").mkdir()
    assert cli.main(["train", "--train-agents", "structure,tactical", "--init-from", str(tmp_path / "ck"), "--frozen-policy", "rule", "--no-evaluate"]) == 130
    tr = seen["cfg"].training
    assert tr.train_agents == ("structure", "tactical") and tr.init_from == str(tmp_path / "ck") and tr.frozen_policy == "rule"


# -- RuleActorModule ----------------------------------------------------------------------
def _observations(n_steps=30):
    """Per-agent observations of a random episode of the real env."""
    from envs.market.env import AlgoSpaceMarketEnv

    env = AlgoSpaceMarketEnv(episode_length=64)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    rows = {a: [obs[a]] for a in AGENT_NAMES}
    for _ in range(n_steps):
        obs, *_ = env.step({a: int(rng.integers(env.action_space(a).n)) for a in AGENT_NAMES})
        for a in AGENT_NAMES:
            rows[a].append(obs[a])
    state_space = env.state_space
    spaces = {a: (env.observation_space(a), env.action_space(a)) for a in AGENT_NAMES}
    env.close()
    return {a: np.stack(r) for a, r in rows.items()}, spaces, state_space


def test_rule_actor_module_acts_by_the_rules():
    import gymnasium as gym
    import torch

    from rllib_algospace.frozen import RuleActorModule
    from rllib_algospace.policies import rule_action

    rows, spaces, state_space = _observations()
    for agent in AGENT_NAMES:
        obs_space, act_space = spaces[agent]
        module = RuleActorModule(observation_space=obs_space, action_space=act_space, inference_only=True, model_config={"agent": agent})
        assert list(module.parameters()) == []
        expected = np.array([rule_action(agent, r) for r in rows[agent]])
        batch = torch.as_tensor(rows[agent])
        for forward in (module.forward_exploration, module.forward_inference):
            logits = forward({"obs": batch})["action_dist_inputs"]
            assert logits.shape == (len(rows[agent]), act_space.n)
            assert (logits.argmax(-1).numpy() == expected).all()
            probs = torch.softmax(logits, -1)
            assert (probs.max(-1).values > 0.999).all()
        # with the critic input in the observation: {"obs", "state"}; only "obs" is read
        dict_space = gym.spaces.Dict({"obs": obs_space, "state": state_space})
        module = RuleActorModule(observation_space=dict_space, action_space=act_space, inference_only=True, model_config={"agent": agent})
        state = torch.zeros((len(rows[agent]), state_space.shape[0]))
        logits = module.forward_exploration({"obs": {"obs": batch, "state": state}})["action_dist_inputs"]
        assert (logits.argmax(-1).numpy() == expected).all()
        # sampled actions (as the env runners do) are the rule's
        dist = module.get_exploration_action_dist_cls().from_logits(logits)
        assert (dist.sample().numpy() == expected).all()


# -- with Ray -----------------------------------------------------------------------------
def _weights(algo, module_id):
    return {k: v.detach().clone() for k, v in algo.learner_group._learner.module[module_id].state_dict().items()}


def _runner_weights(algo, module_id):
    return {k: v.detach().clone() for k, v in algo.env_runner.module[module_id].state_dict().items()}


def _equal(a, b):
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _checkpoint_module(checkpoint, module_id):
    from ray.rllib.core.rl_module.rl_module import RLModule

    from rllib_algospace.frozen import MODULES_DIR

    module = RLModule.from_checkpoint(os.path.join(checkpoint, MODULES_DIR, module_id))
    return module, {k: v.detach().clone() for k, v in module.state_dict().items()}


def _steps_trained(result, module_id):
    value = result["learners"].get(module_id, {}).get("num_module_steps_trained", 0)
    return 0 if value is None or np.isnan(value) else int(value)


@pytest.mark.slow
def test_init_from_loads_weights_and_frozen_agents_stay_unchanged(ray_session, tmp_path):
    from rllib_algospace.training import build_algorithm_config

    source = build_algorithm_config(_tiny(tmp_path, "joint")).build_algo()
    try:
        source.train()
        checkpoint = str(tmp_path / "joint_ckpt")
        os.makedirs(checkpoint)
        source.save_checkpoint(checkpoint)  # RLlib's checkpoint plus algospace.json, as Tune writes it
    finally:
        source.stop()
    saved = {m: _checkpoint_module(checkpoint, m)[1] for m in MODULES}

    cfg = _tiny(tmp_path, "structure_only", **{"training.train_agents": ["structure"], "training.init_from": checkpoint})
    algo = build_algorithm_config(cfg).build_algo()
    try:
        # every module starts from the checkpoint (learner and env runner copies)
        for m in MODULES:
            assert _equal(_weights(algo, m), saved[m]), m
        for a in AGENT_NAMES:
            assert _equal(_runner_weights(algo, a), saved[a]), a
        before = {m: _weights(algo, m) for m in MODULES}
        for _ in range(2):
            result = algo.train()
        after = {m: _weights(algo, m) for m in MODULES}
        frozen = ("regime", "tactical", "risk")
        for a in frozen:
            assert _equal(before[a], after[a]), f"{a} is frozen but its weights changed"
            assert _equal(_runner_weights(algo, a), saved[a]), a
            assert _steps_trained(result, a) == 0
        assert not _equal(before["structure"], after["structure"])
        assert _equal(_runner_weights(algo, "structure"), after["structure"])  # synced to the env runner
        assert _steps_trained(result, "structure") > 0
        # the shared critic keeps training (its ValueNorm buffers too)
        assert not _equal(before["shared_critic"], after["shared_critic"])
        assert _steps_trained(result, "shared_critic") > 0
    finally:
        algo.stop()


@pytest.mark.slow
def test_rule_frozen_run_trains_then_continues_jointly(ray_session, tmp_path):
    from rllib_algospace.frozen import RuleActorModule
    from rllib_algospace.policies import rule_action
    from rllib_algospace.team_policy import ModuleTeamPolicy
    from rllib_algospace.training import build_algorithm_config, train

    # through Tune (what `algospace train --train-agents structure,tactical --frozen-policy rule` runs)
    cfg = _tiny(tmp_path, "rules", **{"training.train_agents": "structure,tactical", "training.frozen_policy": "rule", "experiment.stop.training_iteration": 2})
    outcome = train(cfg)
    assert outcome.error is None and outcome.iterations == 2
    learners = outcome.metrics["learners"]
    for a in ("structure", "tactical", "shared_critic"):
        assert learners[a]["num_module_steps_trained"] > 0, a
    for a in ("regime", "risk"):
        assert a not in learners or not learners[a].get("num_module_steps_trained"), a
    checkpoint = outcome.latest_checkpoint
    modules = {m: _checkpoint_module(checkpoint, m) for m in MODULES}
    assert isinstance(modules["regime"][0], RuleActorModule) and isinstance(modules["risk"][0], RuleActorModule)
    assert modules["regime"][1] == {} and modules["risk"][1] == {}
    # the checkpoint's team plays the rules for the frozen agents
    rows, _, _ = _observations(10)
    policy = ModuleTeamPolicy.from_checkpoint(checkpoint)
    for i in range(len(rows["risk"])):
        actions = policy({a: rows[a][i] for a in AGENT_NAMES})
        assert actions["regime"] == rule_action("regime", rows["regime"][i]) and actions["risk"] == rule_action("risk", rows["risk"][i])

    # then all agents train, starting from that run: trained agents and critic
    # load, the rule agents start from fresh weights
    joint = build_algorithm_config(_tiny(tmp_path, "joint", **{"training.init_from": checkpoint})).build_algo()
    try:
        for m in ("structure", "tactical", "shared_critic"):
            assert _equal(_weights(joint, m), modules[m][1]), m
        assert type(joint.learner_group._learner.module["regime"]).__name__ == "ActorModule"
        result = joint.train()
        for m in MODULES:
            assert _steps_trained(result, m) > 0, m
    finally:
        joint.stop()
