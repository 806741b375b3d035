"""Per-agent training: the ``training:`` config section and CLI flags (no Ray),
``RuleActor`` (the rule policies inside the team module), frozen agents keeping
their weights while the others and the critic train, ``init_from`` loading a
checkpoint's team module, and a rule-frozen Tune run continued jointly."""
import os

import numpy as np
import pytest

from helpers import TINY_TRAINING
from rllib_algospace.config import AGENT_NAMES, ConfigError, load_config, quick_overrides

TINY = TINY_TRAINING
PARTS = (*AGENT_NAMES, "critic")  # the team module's actors and its critic


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
    assert cli.main(["train", "--train-agents", "structure,tactical", "--init-from", str(tmp_path / "ck"), "--frozen-policy", "rule", "--no-evaluate", "--storage", str(tmp_path / "results")]) == 130
    tr = seen["cfg"].training
    assert tr.train_agents == ("structure", "tactical") and tr.init_from == str(tmp_path / "ck") and tr.frozen_policy == "rule"


# -- RuleActor -----------------------------------------------------------------------------
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


def test_rule_actor_acts_by_the_rules():
    import torch

    from rllib_algospace.mappo.modules import RuleActor
    from rllib_algospace.policies import rule_action

    rows, spaces, _ = _observations()
    for agent in AGENT_NAMES:
        _, act_space = spaces[agent]
        actor = RuleActor(agent, int(act_space.n))
        assert list(actor.parameters()) == []
        expected = np.array([rule_action(agent, r) for r in rows[agent]])
        logits = actor(torch.as_tensor(rows[agent]))
        assert logits.shape == (len(rows[agent]), act_space.n)
        assert (logits.argmax(-1).numpy() == expected).all()
        assert (torch.softmax(logits, -1).max(-1).values > 0.999).all()
        # sampled actions (as the env runners do) are the rule's
        assert (torch.distributions.Categorical(logits=logits).sample().numpy() == expected).all()


# -- with Ray -----------------------------------------------------------------------------
def _part(module, part):
    return module.critic if part == "critic" else module.actors[part]


def _weights(algo, part):
    module = algo.learner_group._learner.module["default_policy"].unwrapped()
    return {k: v.detach().clone() for k, v in _part(module, part).state_dict().items()}


def _runner_weights(algo, agent):
    return {k: v.detach().clone() for k, v in algo.env_runner.module.actors[agent].state_dict().items()}


def _equal(a, b):
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _checkpoint_module(checkpoint):
    from rllib_algospace.checkpoints import load_team_module

    module = load_team_module(checkpoint)
    return module, {p: {k: v.detach().clone() for k, v in _part(module, p).state_dict().items()} for p in PARTS}


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
    _, saved = _checkpoint_module(checkpoint)

    cfg = _tiny(tmp_path, "structure_only", **{"training.train_agents": ["structure"], "training.init_from": checkpoint})
    algo = build_algorithm_config(cfg).build_algo()
    try:
        # the team module starts from the checkpoint (learner and env runner copies)
        for p in PARTS:
            assert _equal(_weights(algo, p), saved[p]), p
        for a in AGENT_NAMES:
            assert _equal(_runner_weights(algo, a), saved[a]), a
        before = {p: _weights(algo, p) for p in PARTS}
        for _ in range(2):
            algo.train()
        after = {p: _weights(algo, p) for p in PARTS}
        for a in ("regime", "tactical", "risk"):
            assert _equal(before[a], after[a]), f"{a} is frozen but its weights changed"
            assert _equal(_runner_weights(algo, a), saved[a]), a
        assert not _equal(before["structure"], after["structure"])
        assert _equal(_runner_weights(algo, "structure"), after["structure"])  # synced to the env runner
        # the critic keeps training
        assert not _equal(before["critic"], after["critic"])
    finally:
        algo.stop()


@pytest.mark.slow
def test_rule_frozen_run_trains_then_continues_jointly(ray_session, tmp_path):
    from rllib_algospace.mappo.modules import Actor, RuleActor
    from rllib_algospace.policies import rule_action
    from rllib_algospace.checkpoints import ModuleTeamPolicy
    from rllib_algospace.training import build_algorithm_config, train

    # through Tune (what `algospace train --train-agents structure,tactical --frozen-policy rule` runs)
    cfg = _tiny(tmp_path, "rules", **{"training.train_agents": "structure,tactical", "training.frozen_policy": "rule", "experiment.stop.training_iteration": 2})
    outcome = train(cfg)
    assert outcome.error is None and outcome.iterations == 2
    assert outcome.metrics["learners"]["default_policy"]["num_module_steps_trained"] > 0
    learner = outcome.metrics["learners"]["default_policy"]
    assert "structure" in learner and "tactical" in learner and "regime" not in learner and "risk" not in learner  # per-agent policy losses
    checkpoint = outcome.latest_checkpoint
    module, saved = _checkpoint_module(checkpoint)
    assert isinstance(module.actors["regime"], RuleActor) and isinstance(module.actors["risk"], RuleActor)
    assert saved["regime"] == {} and saved["risk"] == {}
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
        for p in ("structure", "tactical", "critic"):
            assert _equal(_weights(joint, p), saved[p]), p
        team = joint.learner_group._learner.module["default_policy"].unwrapped()
        assert isinstance(team.actors["regime"], Actor) and team.trainable_agents() == list(AGENT_NAMES)
        before = {p: _weights(joint, p) for p in PARTS}
        joint.train()
        for p in PARTS:
            assert not _equal(_weights(joint, p), before[p]), p
    finally:
        joint.stop()
