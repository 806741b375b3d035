"""Teachers and behaviour cloning (no Ray): the oracle's dynamic programme,
teacher labels from the train split only, cloning, the warm-start file, and
the teacher-KL schedule."""
from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

from envs.market.env import AGENTS, TEAM_LAYOUT, AlgoSpaceMarketEnv
from envs.market.trading import FLAT, FULL, LONG, SHORT, STRUCTURE_ACTIONS
from rllib_algospace.teacher import (
    WarmStartError,
    agreement,
    build_actors,
    clone_actors,
    label_steps,
    load_warm_start,
    oracle_actions,
    oracle_positions,
    pretrain,
    save_warm_start,
)


def _path_value(path, open_, cost):
    ret = np.diff(np.log(open_))[1:]
    value, prev = 0.0, 0
    for t, p in enumerate(path):
        value -= cost * abs(p - prev)
        if t < len(ret):
            value += p * ret[t]
        prev = p
    return value


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cost", [0.0, 0.002, 0.02])
def test_oracle_is_the_best_path(seed, cost):
    rng = np.random.default_rng(seed)
    open_ = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 8)))
    path = oracle_positions(open_, cost)
    best = max(_path_value(p, open_, cost) for p in itertools.product((-1, 0, 1), repeat=len(open_)))
    assert _path_value(path, open_, cost) == pytest.approx(best, abs=1e-12)


def test_oracle_trades_less_as_costs_grow():
    rng = np.random.default_rng(0)
    open_ = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, 5000)))
    changes = [int(np.sum(np.diff(oracle_positions(open_, c)) != 0)) for c in (0.0, 1e-4, 1e-3, 1e-2)]
    assert changes == sorted(changes, reverse=True) and changes[0] > 10 * max(1, changes[-1])


def test_oracle_actions_hold_the_position():
    strong_long, neutral, strong_short = (STRUCTURE_ACTIONS.index(n) for n in ("strong_long", "neutral", "strong_short"))
    assert oracle_actions(1, 2, 0) == (2, strong_long, LONG, FULL)
    assert oracle_actions(-1, -1, 3) == (3, strong_short, SHORT, FULL)  # no label: the rule's regime call
    assert oracle_actions(0, 1, 0) == (1, neutral, FLAT, FULL)


@pytest.mark.parametrize("teacher", ["rule", "oracle"])
def test_labels_come_from_the_train_split_only(market_file, teacher, monkeypatch):
    seen = []
    original = AlgoSpaceMarketEnv.team_observation

    def spy(self):
        seen.append((self.config.split, self.bar_index, self.market.splits["train"]))
        return original(self)

    monkeypatch.setattr(AlgoSpaceMarketEnv, "team_observation", spy)
    data = label_steps(teacher, {"data": market_file, "split": "train", "episode_length": 200}, steps=900, seed=1)
    assert len(data) == 900 and data.obs.shape[1] == max(stop for _, stop in TEAM_LAYOUT.values())
    assert all(split == "train" and start <= bar < stop for split, bar, (start, stop) in seen)


def test_rule_labels_are_the_rules_actions(market_file):
    from rllib_algospace.policies import rule_policy

    data = label_steps("rule", {"data": market_file, "split": "train", "episode_length": 300}, steps=600, seed=0, explore=0.3)
    for obs, actions in zip(data.obs[::37], data.actions[::37]):
        views = {a: obs[TEAM_LAYOUT[a][0] : TEAM_LAYOUT[a][1]] for a in AGENTS}
        assert [rule_policy(views)[a] for a in AGENTS] == actions.tolist()


def test_oracle_labels_follow_its_path(market_file):
    env_config = {"data": market_file, "split": "train", "episode_length": 0, "random_start": False}
    data = label_steps("oracle", env_config, steps=500, explore=0.0, oracle_cost_multiple=5.0)
    env = AlgoSpaceMarketEnv(**env_config)
    start, stop = env.market.splits["train"]
    path = oracle_positions(env.market.base("open").rows(start, stop), 1.5e-4 * 5.0)
    env.close()
    tactical = data.actions[:, AGENTS.index("tactical")]
    expected = np.where(path[:500] > 0, LONG, np.where(path[:500] < 0, SHORT, FLAT))
    assert np.array_equal(tactical, expected)


def test_cloning_learns_the_teacher_and_the_file_round_trips(market_file, tmp_path):
    import torch

    data = label_steps("rule", {"data": market_file, "split": "train", "episode_length": 500}, steps=4000, seed=0)
    actors = clone_actors(data, hiddens=[32], activation="relu", epochs=6, seed=0)
    agree = agreement(actors, data)
    assert agree["risk"] > 0.95 and agree["tactical"] > 0.8 and agree["structure"] > 0.6
    path = save_warm_start(tmp_path / "ws.pt", actors, {"hiddens": [32], "activation": "relu", "teacher": "rule"})
    payload = load_warm_start(path, hiddens=[32], activation="relu")
    again = build_actors(payload)
    x = torch.from_numpy(data.obs[:50, TEAM_LAYOUT["tactical"][0] : TEAM_LAYOUT["tactical"][1]])
    with torch.no_grad():
        assert torch.equal(again["tactical"](x), actors["tactical"](x))
    with pytest.raises(WarmStartError, match=r"hidden sizes \[32\].*actor_hiddens is \[64, 64\]"):
        load_warm_start(path, hiddens=[64, 64])
    with pytest.raises(WarmStartError, match="activation"):
        load_warm_start(path, activation="tanh")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WarmStartError, match=r"bad\.pt: not a readable warm-start file") as err:
        load_warm_start(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(WarmStartError, match="no such warm-start file"):
        load_warm_start(tmp_path / "missing.pt")


def test_old_action_schema_is_refused(market_file, tmp_path):
    import torch

    data = label_steps("rule", {"data": market_file, "split": "train", "episode_length": 200}, steps=300)
    path = save_warm_start(tmp_path / "ws.pt", clone_actors(data, hiddens=[8], activation="relu", epochs=1), {"hiddens": [8], "activation": "relu"})
    payload = torch.load(path, weights_only=True)
    payload["actions_schema"] = "operations-v0"
    torch.save(payload, path)
    with pytest.raises(WarmStartError, match="schema 'operations-v0'"):
        load_warm_start(path)


def test_pretrain_reports_val_agreement(market_file, tmp_path):
    lines = []
    report = pretrain({"data": market_file, "episode_length": 300}, tmp_path / "ws.pt", teacher="oracle", steps=2000, val_steps=500, epochs=2, hiddens=[16], activation="relu", scale_inputs=True, progress=lines.append)
    assert set(report["val_agreement"]) == set(AGENTS) and all(0.0 <= v <= 1.0 for v in report["val_agreement"].values())
    assert (tmp_path / "ws.pt").is_file() and not list(tmp_path.glob("*.tmp"))
    assert any("agreement with the teacher on val" in line for line in lines)
    payload = load_warm_start(tmp_path / "ws.pt")
    assert payload["meta"]["teacher"] == "oracle" and payload["meta"]["scale_inputs"] is True
    # the clone scales its inputs as the team will: by the file's train-split statistics
    from envs.data.reader import MarketData
    from envs.market.env import input_statistics, team_input_scaling

    market = MarketData(market_file)
    shift, scale = team_input_scaling(input_statistics(market))
    market.close()
    start, stop = TEAM_LAYOUT["regime"]
    np.testing.assert_allclose(payload["actors"]["regime"]["scale_in.shift"].numpy(), shift[start:stop])
    np.testing.assert_allclose(payload["actors"]["regime"]["scale_in.scale"].numpy(), scale[start:stop])


def test_teacher_module_imports_no_ray():
    code = "import sys, rllib_algospace.teacher; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_trials_share_a_clone_only_when_everything_it_depends_on_is_the_same(market_file, tmp_path):
    from helpers import TINY_TRAINING
    from rllib_algospace.config import load_config, quick_overrides
    from rllib_algospace.training import warm_start_for

    base = {**quick_overrides(), **TINY_TRAINING, "data.path": market_file, "experiment.storage_path": str(tmp_path)}
    a = warm_start_for(load_config(None, base), market_file, str(tmp_path), progress=lambda m: None)
    again = warm_start_for(load_config(None, base), market_file, str(tmp_path), progress=lambda m: None)
    costly = warm_start_for(load_config(None, {**base, "env.commission_bps": 5.0}), market_file, str(tmp_path), progress=lambda m: None)
    assert a == again and costly != a
    assert load_warm_start(a)["meta"]["teacher"] == "rule"
