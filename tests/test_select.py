"""``algospace select``: candidates of an experiment folder, ranking on val with
bootstrap intervals and the deflated Sharpe ratio, the winner once on test."""
import json
import math
from pathlib import Path

import pytest

from rllib_algospace import checkpoints
from rllib_algospace.evaluation import selection


# -- discovery (no Ray) ---------------------------------------------------------------------------
def _fake_trial(folder: Path, scores: dict[int, float | None], checkpoints: list[int]) -> None:
    folder.mkdir(parents=True)
    with open(folder / "result.json", "w") as f:
        for it, value in scores.items():
            f.write(json.dumps({"training_iteration": it, "val_sharpe": value if value is not None else float("nan")}) + "\n")
    for i, it in enumerate(checkpoints):
        ckpt = folder / f"checkpoint_{i:06d}"
        ckpt.mkdir()
        (ckpt / "algospace.json").write_text(json.dumps({"training_iteration": it, "env_config": {}}))


def test_discovery_picks_each_trials_best_checkpoint(tmp_path):
    root = tmp_path / "exp"
    _fake_trial(root / "a" / "MAPPO_1", {1: 0.5, 2: 2.0, 3: 1.0}, [1, 2, 3])
    _fake_trial(root / "a" / "MAPPO_2", {1: None, 2: None}, [1, 2])  # no validation recorded
    _fake_trial(root / "b" / "MAPPO_3", {1: -1.0, 2: 3.0}, [1])  # the best iteration has no checkpoint
    (root / "b" / "MAPPO_4").mkdir(parents=True)  # a trial that died before its first checkpoint
    (root / "b" / "MAPPO_4" / "result.json").write_text("")
    (root / "ens").mkdir()
    (root / "ens" / "ensemble.json").write_text(json.dumps({"kind": "algospace-ensemble", "members": [{"name": "m0", "checkpoint": "../a/MAPPO_1/checkpoint_000001"}]}))
    (root / "other.json").write_text("{}")
    cands, trials = selection.discover_candidates(root)
    by_name = {c.name: c for c in cands}
    assert set(by_name) == {"a/MAPPO_1", "a/MAPPO_2", "b/MAPPO_3", "ensemble:ens"}
    assert trials == 4
    assert by_name["a/MAPPO_1"].path.endswith("checkpoint_000001") and by_name["a/MAPPO_1"].score == 2.0
    assert by_name["a/MAPPO_2"].path.endswith("checkpoint_000001") and by_name["a/MAPPO_2"].score is None and "latest" in by_name["a/MAPPO_2"].note
    assert by_name["b/MAPPO_3"].score == -1.0
    assert by_name["ensemble:ens"].kind == "ensemble"
    assert checkpoints.trial_scores(root / "a" / "MAPPO_1") == {1: 0.5, 2: 2.0, 3: 1.0}
    cands, _ = selection.discover_candidates(root, mode="min")
    assert {c.name: c.score for c in cands}["a/MAPPO_1"] == 0.5
    # a checkpoint folder itself is one candidate
    cands, _ = selection.discover_candidates(root / "a" / "MAPPO_1" / "checkpoint_000002")
    assert [c.path for c in cands] == [str(root / "a" / "MAPPO_1" / "checkpoint_000002")]


def test_one_definition_of_the_best_checkpoint(tmp_path):
    """evaluate/export (find_checkpoint on a folder), select and train all rank
    a run's checkpoints by the configured score, read from the run record."""
    root = tmp_path / "exp"
    _fake_trial(root / "MAPPO_1", {1: 0.5, 2: 2.0, 3: 1.0}, [1, 2, 3])
    _fake_trial(root / "MAPPO_2", {1: 2.5, 2: -1.0}, [1, 2])
    assert checkpoints.find_checkpoint(root) == root / "MAPPO_2" / "checkpoint_000000"  # val_sharpe 2.5
    assert checkpoints.find_checkpoint(root / "MAPPO_1") == root / "MAPPO_1" / "checkpoint_000001"  # 2.0, not the newest
    # the run's configured score and mode, as `algospace train` records them
    (root / checkpoints.RUN_FILE).write_text(json.dumps({"config": {"experiment": {"checkpoint": {"score": "val_sharpe", "score_mode": "min"}}}}))
    assert checkpoints.find_checkpoint(root) == root / "MAPPO_2" / "checkpoint_000001"  # -1.0 is best when lower is better
    assert checkpoints.find_checkpoint(root / "MAPPO_1") == root / "MAPPO_1" / "checkpoint_000000"
    cands, _ = selection.discover_candidates(root, score="val_sharpe", mode="min")
    assert {c.name: c.path for c in cands} == {"MAPPO_1": str(root / "MAPPO_1" / "checkpoint_000000"), "MAPPO_2": str(root / "MAPPO_2" / "checkpoint_000001")}


def test_nothing_to_select(tmp_path):
    from rllib_algospace.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["select", str(tmp_path / "empty")]) == 2
    assert main(["select", str(tmp_path / "missing")]) == 2


# -- end to end on two trained trials (Ray) -------------------------------------------------------------
@pytest.fixture(scope="module")
def small_market(tmp_path_factory):
    """A smaller synthetic file (5,000 bars: val and test ~620 bars each), so
    the greedy passes of the trained teams stay short."""
    from envs.data.dataset import synth_market_file

    return str(synth_market_file(tmp_path_factory.mktemp("data") / "small.h5", preset="simple_markets", n_bars=5_000, seed=4))


@pytest.fixture(scope="module")
def experiment(ray_session, small_market, tmp_path_factory):
    """Two one-iteration trials (seeds 0 and 1) of the quick config in one
    results folder, plus an ensemble manifest of the two."""
    from rllib_algospace.config import load_config, quick_overrides
    from rllib_algospace.training import train

    market_file = small_market
    root = tmp_path_factory.mktemp("select") / "runs"
    best = []
    for i, seed in enumerate((0, 1)):
        cfg = load_config(None, {**quick_overrides(), "data.path": market_file, "experiment.storage_path": str(root), "experiment.name": f"seed{i}", "experiment.seed": seed, "experiment.stop.training_iteration": 1})
        outcome = train(cfg)
        assert outcome.error is None and outcome.best_checkpoint
        best.append(outcome.best_checkpoint)
    manifest = {"kind": "algospace-ensemble", "members": [{"name": f"m{i}", "member": i, "checkpoint": p} for i, p in enumerate(best)]}
    (root / "ensemble.json").write_text(json.dumps(manifest))
    return root, best


def _strict_json(path):
    def no_nan(value):
        raise AssertionError(f"{path}: {value} in JSON")

    return json.loads(Path(path).read_text(), parse_constant=no_nan)


@pytest.mark.ray
@pytest.mark.slow
def test_select_ranks_reports_and_tests_the_winner_once(experiment, small_market, tmp_path, monkeypatch):
    import rllib_algospace.evaluation as evaluation
    import rllib_algospace.evaluation.runner as runner

    root, best = experiment
    calls = []
    real = runner.run_policy

    def counting(policy, **kwargs):
        calls.append((policy, kwargs.get("split"), str(kwargs.get("data")), dict(kwargs.get("env_overrides") or {})))
        return real(policy, **kwargs)

    monkeypatch.setattr(runner, "run_policy", counting)
    monkeypatch.setattr(evaluation, "run_policy", counting)

    doc = selection.select_best(root, out=tmp_path / "sel", n_boot=200, seed=0)
    names = [c["name"] for c in doc["candidates"]]
    assert len(names) == 3 and "ensemble:runs" in names
    assert {c["path"] for c in doc["candidates"] if c["kind"] == "checkpoint"} == set(best)
    # ranked by validation Sharpe, with intervals around each estimate
    sharpes = [c["metrics"]["sharpe"] for c in doc["candidates"]]
    assert sharpes == sorted(sharpes, reverse=True) and [c["rank"] for c in doc["candidates"]] == [1, 2, 3]
    for c in doc["candidates"]:
        ci = c["sharpe_ci"]
        assert ci["estimate"] == pytest.approx(c["metrics"]["sharpe"]) and ci["low"] <= ci["estimate"] <= ci["high"]
        bh = c["vs_buy_and_hold"]
        assert bh["estimate"] == pytest.approx(c["metrics"]["sharpe"] - doc["buy_and_hold"]["metrics"]["sharpe"])
        assert 0.0 <= c["dsr"]["dsr"] <= c["psr"] <= 1.0  # deflating can only lower it
        assert c["dsr"]["n_trials"] == doc["method"]["n_trials"] == 3
        assert c["metrics"]["bars"] == c["sharpe_ci"]["n"]
    top, second = doc["candidates"][:2]
    assert top["vs_other"]["name"] == second["name"] and top["vs_other"]["role"] == "runner_up"
    assert top["vs_other"]["estimate"] == pytest.approx(top["metrics"]["sharpe"] - second["metrics"]["sharpe"])
    assert second["vs_other"]["estimate"] == pytest.approx(-top["vs_other"]["estimate"])
    assert doc["chosen"]["name"] == top["name"]
    # the winner, once on test: the losers never see the test split
    on_test = [c for c in calls if c[1] == "test" and c[2] == small_market and not c[3]]
    team_test = [c for c in on_test if c[0].__class__.__name__ in ("ModuleTeamPolicy", "EnsembleTeamPolicy")]
    assert len(team_test) == 1
    assert all(c[1] == "val" for c in calls if c[0].__class__.__name__ in ("ModuleTeamPolicy", "EnsembleTeamPolicy") and c[0] is not team_test[0][0])
    test = doc["test"]
    assert set(test["results"]) == {"team", "buy_and_hold", "flat", "rule"}
    assert test["sharpe_ci"]["estimate"] == pytest.approx(test["results"]["team"]["sharpe"])
    assert set(test["stress"]["scenarios"]) == {"flash_crash", "volatility_x3", "trend_reversal", "overnight_gap", "double_costs"}
    assert test["stress"]["reference"]["team"]["sharpe"] == pytest.approx(test["results"]["team"]["sharpe"])
    assert test["regime_adaptability"]["source"] == "ground_truth"
    # the files: Markdown, HTML, JSON with the same numbers, the plots
    files = doc["files"]
    for key in ("markdown", "html", "json", "val_equity", "val_drawdown", "val_regimes", "stress", "test_evaluation_png", "test_evaluation_json"):
        assert Path(files[key]).stat().st_size > 0, key
    saved = _strict_json(files["json"])
    assert [c["name"] for c in saved["candidates"]] == names
    assert saved["candidates"][0]["sharpe_ci"]["low"] == pytest.approx(top["sharpe_ci"]["low"])
    md = Path(files["markdown"]).read_text()
    html = Path(files["html"]).read_text()
    for name in names:
        assert name in md and name in html
    for image in ("val_equity.png", "val_drawdown.png", "val_regimes.png", "stress.png", "test/evaluation.png"):
        assert f"({image})" in md and f'src="{image}"' in html
    assert "Deflated" in md or "DSR" in md
    assert not list((tmp_path / "sel").glob(".*.tmp"))  # atomic writes leave nothing behind
    text = selection.format_selection(doc)
    assert "chosen:" in text and top["name"][-30:] in text


@pytest.mark.ray
@pytest.mark.slow
def test_cli_select_and_evaluate_stress(experiment, tmp_path, capsys):
    from rllib_algospace.cli import main

    root, best = experiment
    # one trial folder: a single candidate, N from --n-trials, the null variance of the Sharpe estimator
    assert main(["select", str(root / "seed0"), "--out", str(tmp_path / "sel"), "--n-boot", "100", "--n-trials", "50", "--no-stress"]) == 0
    out = capsys.readouterr().out
    assert "chosen:" in out and "selection.md" in out
    doc = _strict_json(tmp_path / "sel" / "selection.json")
    assert [c["path"] for c in doc["candidates"]] == [best[0]] and doc["chosen"]["path"] == best[0]
    assert doc["method"]["n_trials"] == 50 and "stress" not in doc["test"]
    c = doc["candidates"][0]
    assert c["vs_other"] is None
    n = c["metrics"]["bars"]
    assert c["dsr"]["trials_sharpe_variance"] == pytest.approx(1.0 / (n - 1))
    assert c["dsr"]["dsr"] < c["psr"]  # 50 trials searched: a higher bar than 0
    # evaluate --stress on a trained checkpoint: the stress section joins the evaluation JSON
    assert main(["evaluate", best[0], "--out", str(tmp_path / "eval"), "--stress"]) == 0
    out = capsys.readouterr().out
    assert "stress_test_score" in out and "stress.md" in out
    saved = _strict_json(tmp_path / "eval" / "evaluation.json")
    assert {"stress", "regime_adaptability", "results"} <= set(saved)
    assert saved["stress"]["reference"]["team"]["sharpe"] == pytest.approx(saved["results"]["team"]["sharpe"])
    assert 0.0 <= saved["stress"]["score"] <= 1.0 and not math.isnan(saved["stress"]["mean_sharpe_change"])
    assert (tmp_path / "eval" / "stress.md").exists() and (tmp_path / "eval" / "stress.png").exists()
    assert sum(v["steps"] for v in saved["regime_adaptability"]["regimes"].values()) == saved["results"]["team"]["bars"]


def test_a_half_written_progress_row_is_skipped(tmp_path):
    trial = tmp_path / "MAPPO_1"
    trial.mkdir()
    (trial / "progress.csv").write_text("training_iteration,val_sharpe\n1,0.5\n2,1.5\n3")
    assert checkpoints.trial_scores(trial) == {1: 0.5, 2: 1.5}
