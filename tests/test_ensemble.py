"""Ensembles: the `ensemble` config section (no Ray), the averaging team policy
and the diversity measure (numpy), and a two-member ensemble trained as one
Tune experiment, then evaluated member by member beside the ensemble."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rllib_algospace.config import ConfigError, load_config
from rllib_algospace.ensemble import load_ensemble_config, quick_ensemble_overrides, resolve_ensemble_resources
from rllib_algospace.ensemble_policy import MANIFEST_FILE, EnsembleTeamPolicy, diversity, find_manifest

ROOT = Path(__file__).resolve().parents[1]
ENSEMBLE_YAML = ROOT / "tune_configs" / "ensemble.yaml"


def _write(tmp_path, text: str, name: str = "x.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _error(path=None, overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_ensemble_config(path, overrides)
    msg = str(info.value)
    assert "\n" not in msg and msg == msg.strip(), msg
    return msg


# -- config (no Ray) ------------------------------------------------------------------
def test_shipped_yaml_is_the_defaults():
    spec = load_ensemble_config(ENSEMBLE_YAML)
    assert spec == load_ensemble_config(None)
    assert spec.train.experiment.name == "ensemble"
    assert spec.ensemble.seeds == (0, 1, 2) and spec.ensemble.max_concurrent == "auto"
    members = spec.members()
    assert len(members) == 6 and [m.index for m in members] == list(range(6))
    assert {(m.seed, m.actor_hiddens, m.critic_hiddens) for m in members} == {
        (s, a, c) for s in (0, 1, 2) for a, c in (((64, 64), (128, 128)), ((128, 128), (256, 256)))
    }
    # the shared settings are mappo.yaml's; `algospace train` reads the file too
    assert spec.train == load_config(ROOT / "tune_configs" / "mappo.yaml").with_overrides({"experiment.name": "ensemble"})
    assert load_config(ENSEMBLE_YAML).experiment.name == "ensemble"


def test_member_configs_and_architecture_defaults(tmp_path):
    path = _write(tmp_path, "algorithm:\n  critic_hiddens: [48]\nensemble:\n  seeds: [3]\n  architectures:\n    - {actor_hiddens: [8]}\n    - {critic_hiddens: [16, 16]}\n")
    spec = load_ensemble_config(path)
    m0, m1 = spec.members()
    assert (m0.seed, m0.actor_hiddens, m0.critic_hiddens) == (3, (8,), (48,))
    assert (m1.seed, m1.actor_hiddens, m1.critic_hiddens) == (3, (64, 64), (16, 16))  # actor_hiddens from algorithm (mappo.yaml)
    cfg = spec.member_config(m1)
    assert cfg.experiment.seed == 3 and cfg.algorithm.critic_hiddens == (16, 16)


def test_quick_and_overrides():
    quick = load_ensemble_config(None, quick_ensemble_overrides())
    assert quick.train.experiment.name == "quick_ensemble" and len(quick.members()) == 2
    assert quick.train.experiment.stop.training_iteration == 2
    spec = load_ensemble_config(ENSEMBLE_YAML, {"ensemble.seeds": [5, 6], "ensemble.max_concurrent": 2})
    assert spec.ensemble.seeds == (5, 6) and spec.ensemble.max_concurrent == 2 and len(spec.members()) == 4


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ensemble:\n  seeds: []\n", "ensemble.seeds: expected a non-empty list of integers >= 0, got []"),
        ("ensemble:\n  seeds: [0, -1]\n", "ensemble.seeds: expected a non-empty list of integers >= 0, got [0, -1]"),
        ("ensemble:\n  seeds: [0, 1.5]\n", "ensemble.seeds: expected a non-empty list of integers >= 0, got [0, 1.5]"),
        ("ensemble:\n  seeds: [true]\n", "ensemble.seeds: expected a non-empty list of integers >= 0, got [True]"),
        ("ensemble:\n  seeds: 3\n", "ensemble.seeds: expected a non-empty list of integers >= 0, got 3"),
        ("ensemble:\n  seeds: [1, 2, 1]\n", "ensemble.seeds: seed 1 is listed twice"),
        ("ensemble:\n  architectures: []\n", "ensemble.architectures: expected a non-empty list of mappings"),
        ("ensemble:\n  architectures: [5]\n", "ensemble.architectures[0]: expected a mapping with actor_hiddens and/or critic_hiddens, got 5"),
        ("ensemble:\n  architectures: [{}]\n", "ensemble.architectures[0]: expected a mapping"),
        (
            "ensemble:\n  architectures:\n    - {actor_hiddens: [8]}\n    - {actor_hiddens: [64, 0]}\n",
            "ensemble.architectures[1].actor_hiddens: expected a non-empty list of positive integers, got [64, 0]",
        ),
        ("ensemble:\n  architectures: [{critic_hiddens: []}]\n", "ensemble.architectures[0].critic_hiddens: expected a non-empty list of positive integers, got []"),
        ("ensemble:\n  architectures: [{actor_hidens: [8]}]\n", "unknown key ensemble.architectures[0].actor_hidens (did you mean actor_hiddens?)"),
        ("ensemble:\n  architectures: [{actor_hiddens: [8]}, {actor_hiddens: [8]}]\n", "ensemble.architectures[1]: the same as ensemble.architectures[0]"),
        ("ensemble:\n  max_concurrent: 0\n", "ensemble.max_concurrent: expected 'auto' or an integer >= 1, got 0"),
        ("ensemble:\n  max_concurrent: two\n", "ensemble.max_concurrent: expected 'auto' or an integer >= 1, got 'two'"),
        ("ensemble:\n  seed: [1]\n", "unknown key ensemble.seed (did you mean seeds?)"),
        ("ensemble: 5\n", "ensemble: expected a mapping, got 5"),
        ("ensembel:\n  seeds: [1]\n", "unknown key ensembel (did you mean ensemble?)"),
    ],
)
def test_bad_ensemble_section(tmp_path, text, expected):
    path = _write(tmp_path, text)
    msg = _error(path)
    assert msg.startswith(f"{path}: {expected}"), msg
    # `algospace train` loads the file through load_config, which checks the section too
    with pytest.raises(ConfigError, match="ensemble"):
        load_config(path)


def test_bad_overrides_name_overrides(tmp_path):
    assert _error(ENSEMBLE_YAML, {"ensemble.seeds": []}) == "overrides: ensemble.seeds: expected a non-empty list of integers >= 0, got []"
    msg = _error(ENSEMBLE_YAML, {"ensemble.architectures": [{"actor_hiddens": [0]}]})
    assert msg == "overrides: ensemble.architectures[0].actor_hiddens: expected a non-empty list of positive integers, got [0]"
    # a shared-section problem is still reported as usual
    assert _error(ENSEMBLE_YAML, {"algorithm.lr": -1}) == "overrides: algorithm.lr: must be > 0, got -1"


def test_cli_bad_config_is_one_line_exit_2(tmp_path, capsys):
    from rllib_algospace.cli import main

    path = _write(tmp_path, "ensemble:\n  seeds: [0, 0]\n")
    assert main(["ensemble", "--config", path]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"algospace: error: {path}: ensemble.seeds: seed 0 is listed twice"


def test_max_concurrent_is_sized_to_the_machine():
    spec = load_ensemble_config(ENSEMBLE_YAML)  # 6 members, runners auto
    assert resolve_ensemble_resources(spec, cpus=2)[0] == 1
    mc, res = resolve_ensemble_resources(spec, cpus=7)
    assert mc == 3 and res.num_env_runners == 0  # 2 cores a member: sampling in the learner
    mc, res = resolve_ensemble_resources(spec, cpus=64)
    assert mc == 6 and res.num_env_runners == 8  # capped by the members; runners share the rest
    mc, res = resolve_ensemble_resources(spec.__class__(spec.train.with_overrides({"resources.num_env_runners": 1}), spec.ensemble.__class__(max_concurrent=4)), cpus=2)
    assert mc == 4 and res.num_env_runners == 1


# -- the policy and the diversity measure (numpy) ---------------------------------------
class _FixedMember:
    """A team policy whose probabilities are a fixed function of the observation."""

    def __init__(self, table):
        self.table = table

    def probabilities(self, observations):
        return {agent: np.asarray(self.table[agent]) * (1.0 + 0.0 * float(np.sum(obs))) for agent, obs in observations.items()}


def test_ensemble_averages_probabilities_and_acts_greedily_on_the_mean():
    a = _FixedMember({"regime": [0.6, 0.4, 0.0], "risk": [0.1, 0.9]})
    b = _FixedMember({"regime": [0.0, 0.45, 0.55], "risk": [0.2, 0.8]})
    c = _FixedMember({"regime": [0.0, 0.45, 0.55], "risk": [0.7, 0.3]})
    ens = EnsembleTeamPolicy([a, b, c])
    obs = {"regime": np.ones(3, np.float32), "risk": np.zeros(2, np.float32)}
    probs = ens.probabilities(obs)
    np.testing.assert_allclose(probs["regime"], [0.2, 0.4333333, 0.3666667], atol=1e-6)
    np.testing.assert_allclose(probs["risk"], [1.0 / 3, 2.0 / 3], atol=1e-9)
    actions, member_actions = ens.act(obs)
    # the mean picks action 1 for regime though no member does: it is not a vote
    assert actions == {"regime": 1, "risk": 1} == ens(obs)
    assert member_actions["regime"].tolist() == [0, 2, 2] and member_actions["risk"].tolist() == [1, 1, 0]
    assert ens.names == ["m0", "m1", "m2"]
    with pytest.raises(ValueError, match="different action counts"):
        EnsembleTeamPolicy([a, _FixedMember({"regime": [0.5, 0.5], "risk": [0.5, 0.5]})]).probabilities(obs)
    with pytest.raises(ValueError):
        EnsembleTeamPolicy([])


def test_diversity_rates():
    # 4 steps, 3 members
    regime = np.array([[0, 0, 0], [0, 1, 0], [1, 1, 1], [2, 0, 1]])
    risk = np.zeros((4, 3), dtype=int)
    ensemble = {"regime": np.array([0, 0, 1, 2]), "risk": np.zeros(4, dtype=int)}
    d = diversity({"regime": regime, "risk": risk}, ensemble)
    assert d["steps"] == 4 and d["members"] == 3
    r = d["per_agent"]["regime"]
    assert r["disagreement_rate"] == 0.5
    # pairs (0,1): steps 1 and 3 differ; (0,2): step 3; (1,2): steps 1 and 3
    assert r["pairs"] == {"m0/m1": 0.5, "m0/m2": 0.25, "m1/m2": 0.5}
    assert math.isclose(r["pairwise_disagreement"], 1.25 / 3)
    assert r["agreement_with_ensemble"] == {"m0": 1.0, "m1": 0.5, "m2": 0.75}
    assert d["per_agent"]["risk"]["disagreement_rate"] == 0.0 and d["per_agent"]["risk"]["pairwise_disagreement"] == 0.0
    assert d["mean"]["disagreement_rate"] == 0.25 and d["mean"]["team_disagreement_rate"] == 0.5
    single = diversity({"regime": regime[:, :1]})
    assert single["mean"]["disagreement_rate"] == 0.0 and single["mean"]["pairwise_disagreement"] == 0.0


def test_find_manifest(tmp_path):
    assert find_manifest(tmp_path) is None and find_manifest(tmp_path / "nope") is None
    (tmp_path / "other.json").write_text('{"kind": "something"}')
    assert find_manifest(tmp_path / "other.json") is None
    (tmp_path / MANIFEST_FILE).write_text('{"kind": "algospace-ensemble", "members": []}')
    assert find_manifest(tmp_path) == tmp_path / MANIFEST_FILE == find_manifest(tmp_path / MANIFEST_FILE)
    from rllib_algospace.checkpoints import CheckpointError

    with pytest.raises(CheckpointError, match="no member has a checkpoint"):
        EnsembleTeamPolicy.from_manifest(tmp_path)


class _Ckpt:
    def __init__(self, path):
        self.path = str(path)


class _Result:
    """The parts of a Tune Result the manifest reads."""

    def __init__(self, path, params, checkpoints, done=True, error=None):
        import pyarrow.fs

        path.mkdir(parents=True)
        (path / "params.json").write_text(json.dumps(params))
        self.path, self.filesystem, self.error = str(path), pyarrow.fs.LocalFileSystem(), error
        self.best_checkpoints = [(_Ckpt(path / name), metrics) for name, metrics in checkpoints]
        self.checkpoint = self.best_checkpoints[-1][0] if self.best_checkpoints else None
        self.metrics = {"training_iteration": len(checkpoints), "done": done}


def test_manifest_picks_each_members_best_checkpoint_by_score(tmp_path):
    from rllib_algospace.ensemble import PARAM_KEY, _ensemble_outcome
    from rllib_algospace.ensemble_policy import read_manifest

    spec = load_ensemble_config(ENSEMBLE_YAML, {"experiment.storage_path": str(tmp_path), "ensemble.seeds": [7]})
    members = [m.to_dict() for m in spec.members()]
    params = lambda i: {"member": i, PARAM_KEY: {"members": members}}  # noqa: E731
    exp = tmp_path / "ensemble"
    grid = [
        _Result(exp / "MAPPO_b", params(1), [("checkpoint_000000", {"val_sharpe": float("nan")}), ("checkpoint_000001", {"val_sharpe": float("nan")})]),
        _Result(exp / "MAPPO_a", params(0), [("checkpoint_000000", {"val_sharpe": 1.5, "training_iteration": 1}), ("checkpoint_000001", {"val_sharpe": 0.5})]),
    ]
    outcome = _ensemble_outcome(spec.train, str(exp), grid)
    assert outcome.errors == [] and not outcome.interrupted
    manifest, doc = read_manifest(exp)
    assert manifest == exp / MANIFEST_FILE and doc["complete"]
    m0, m1 = doc["members"]
    assert (m0["name"], m0["checkpoint"], m0["score"], m0["checkpoint_iteration"]) == ("m0", "MAPPO_a/checkpoint_000000", 1.5, 1)
    assert m0["architecture"] == {"actor_hiddens": [64, 64], "critic_hiddens": [128, 128]} and m0["seed"] == 7
    assert (m1["checkpoint"], m1["score"]) == ("MAPPO_b/checkpoint_000001", None)  # nothing scored: the latest
    # an interrupted run: a member that never started is listed without a checkpoint
    outcome = _ensemble_outcome(spec.train, str(exp), grid[1:])
    assert outcome.interrupted and [m["checkpoint"] for m in outcome.members] == ["MAPPO_a/checkpoint_000000", None]
    assert not read_manifest(exp)[1]["complete"]


# -- a two-member ensemble through Tune ------------------------------------------------
@pytest.fixture(scope="module")
def trained(ray_session, market_file, tmp_path_factory):
    from rllib_algospace.ensemble import train_ensemble

    storage = tmp_path_factory.mktemp("ensembles")
    overrides = {
        **quick_ensemble_overrides(),
        "data.path": market_file,
        "experiment.storage_path": str(storage),
        "experiment.name": "pair",
        "experiment.stop.training_iteration": 1,
        "algorithm.train_batch_size": 256,
        "algorithm.minibatch_size": 128,
        "algorithm.num_epochs": 1,
        "evaluation.episode_length": 128,
        "ensemble.seeds": [0],
        "ensemble.architectures": [{"actor_hiddens": [16, 16], "critic_hiddens": [16, 16]}, {"actor_hiddens": [8], "critic_hiddens": [16]}],
        "ensemble.max_concurrent": 2,
    }
    spec = load_ensemble_config(ENSEMBLE_YAML, overrides)
    outcome = train_ensemble(spec)
    return spec, outcome, storage


@pytest.mark.slow
@pytest.mark.ray
def test_two_members_train_as_one_experiment_and_write_the_manifest(trained):
    spec, outcome, storage = trained
    assert outcome.errors == [] and not outcome.interrupted
    manifest = Path(outcome.manifest_path)
    assert manifest == storage / "pair" / MANIFEST_FILE and manifest.is_file()
    doc = json.loads(manifest.read_text())
    assert doc["kind"] == "algospace-ensemble" and doc["complete"] and doc["score"] == "val_sharpe"
    assert [m["name"] for m in doc["members"]] == ["m0", "m1"]
    assert [m["architecture"]["actor_hiddens"] for m in doc["members"]] == [[16, 16], [8]]
    assert len({m["trial_dir"] for m in doc["members"]}) == 2
    for m in doc["members"]:
        assert m["trial_dir"].startswith("MAPPO_") and m["iterations"] == 1 and m["seed"] == 0
        assert m["score"] is not None and math.isfinite(m["score"])  # val_sharpe of the chosen checkpoint
        meta = json.loads((manifest.parent / m["checkpoint"] / "algospace.json").read_text())
        assert meta["ensemble_member"]["architecture"] == m["architecture"]
        assert meta["model_config"]["hiddens"] == m["architecture"]["actor_hiddens"]


@pytest.mark.slow
@pytest.mark.ray
def test_ensemble_probabilities_are_the_members_mean(trained, market_file):
    from envs import algospace_market
    from rllib_algospace.checkpoints import ModuleTeamPolicy

    _, outcome, _ = trained
    ensemble = EnsembleTeamPolicy.from_manifest(outcome.manifest_path)
    members = [ModuleTeamPolicy.from_checkpoint(c) for c in ensemble.checkpoints]
    env = algospace_market.parallel_env(data=market_file, split="val", episode_length=50)
    observations, _ = env.reset(seed=3)
    checked = 0
    for _ in range(5):  # fixed observations: a few steps of one episode
        probs = ensemble.probabilities(observations)
        for agent, p in probs.items():
            expected = np.mean([m.probabilities(observations)[agent] for m in members], axis=0)
            np.testing.assert_allclose(p, expected, rtol=1e-6, atol=1e-9)
            assert math.isclose(float(p.sum()), 1.0, rel_tol=1e-6)
            checked += 1
        actions = ensemble(observations)
        assert actions == {a: int(np.argmax(p)) for a, p in probs.items()}
        observations, *_ = env.step(actions)
    env.close()
    assert checked == 20


@pytest.mark.slow
@pytest.mark.ray
def test_members_and_ensemble_evaluated_side_by_side(trained, tmp_path):
    from rllib_algospace.ensemble_policy import evaluate_ensemble, format_ensemble_report

    _, outcome, _ = trained
    report = evaluate_ensemble(outcome.manifest_path, split="val", episodes=1, episode_length=200, out=tmp_path / "eval")
    assert list(report["results"]) == ["ensemble", "m0", "m1", "buy_and_hold", "flat", "rule"]
    div = report["diversity"]
    assert div["steps"] == 200 and div["members"] == 2
    for v in list(div["per_agent"].values()) + [div["mean"]]:
        for key in ("disagreement_rate", "pairwise_disagreement"):
            if key in v:
                assert 0.0 <= v[key] <= 1.0
    assert 0.0 <= div["mean"]["team_disagreement_rate"] <= 1.0
    saved = json.loads(Path(report["ensemble_json"]).read_text())
    assert set(saved) >= {"members", "results", "diversity"} and len(saved["members"]) == 2
    assert set(json.loads(Path(report["json"]).read_text())["results"]) == set(report["results"])
    assert Path(report["png"]).stat().st_size > 0
    text = format_ensemble_report(report)
    assert "not all agree" in text and "m1" in text
    print(text)


@pytest.mark.slow
@pytest.mark.ray
def test_cli_evaluate_accepts_the_manifest_and_the_folder(trained, tmp_path, capsys):
    from rllib_algospace.cli import main
    from rllib_algospace.evaluation.checkpoint import evaluate_checkpoint

    _, outcome, _ = trained
    args = ["--split", "val", "--episodes", "1", "--episode-length", "100"]
    assert main(["evaluate", outcome.manifest_path, *args, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "ensemble" in out and "m0" in out and "pairwise" in out and "buy_and_hold" in out
    report = evaluate_checkpoint(outcome.experiment_path, split="val", episodes=1, episode_length=100, out=tmp_path / "b")
    assert report["checkpoint"] == outcome.manifest_path and "ensemble" in report["results"]


@pytest.mark.slow
@pytest.mark.ray
def test_resume_restores_the_finished_ensemble(trained):
    from rllib_algospace.ensemble import train_ensemble

    spec, outcome, _ = trained
    again = train_ensemble(spec, resume=True)
    assert again.errors == [] and not again.interrupted
    assert [m["checkpoint"] for m in again.members] == [m["checkpoint"] for m in outcome.members]
