"""Training end to end through Tune (one Ray session per test process), and
resume after SIGKILL and after a time budget, through the CLI."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

psutil = pytest.importorskip("psutil")

from helpers import kill_tree
from rllib_algospace.config import load_config, quick_overrides  # noqa: E402

pytestmark = pytest.mark.slow


def _quick(market_file, storage, name, **extra):
    return load_config(None, {**quick_overrides(), "data.path": market_file, "experiment.storage_path": str(storage), "experiment.name": name, **extra})


def test_two_iterations_train_the_team_and_critic_and_evaluate(ray_session, market_file, tmp_path):
    from rllib_algospace.evaluate import evaluate_checkpoint
    from rllib_algospace.team_policy import checkpoint_metadata
    from rllib_algospace.training import train

    outcome = train(_quick(market_file, tmp_path / "results", "e2e"))
    assert outcome.error is None and outcome.iterations == 2
    from rllib_algospace.colab import ProjectSession

    project = ProjectSession(root=tmp_path, colab=False, gpu={}, time_budget_s=60.0)
    assert project.can_resume("e2e") and not project.can_resume("other")
    team = outcome.metrics["learners"]["default_policy"]  # the team module: actors and critic
    assert team["num_module_steps_trained"] > 0
    assert "vf_loss" in team and "value_norm_std" in team and "vf_explained_var" in team
    for agent in ("regime", "structure", "tactical", "risk"):
        assert {"policy_loss", "entropy", "mean_kl_loss"} <= set(team[agent]), agent  # each agent's own PPO loss
    assert "val_sharpe" in outcome.metrics and "sharpe" in outcome.metrics["env_runners"]
    meta = checkpoint_metadata(outcome.best_checkpoint)
    assert meta["algorithm"] == "MAPPO" and meta["env_config"]["data"] == market_file
    report = evaluate_checkpoint(outcome.best_checkpoint, split="val", episodes=2, episode_length=200, out=tmp_path / "eval")
    assert set(report["results"]) == {"team", "buy_and_hold", "flat", "rule"}
    assert Path(report["png"]).stat().st_size > 0
    json.loads(Path(report["json"]).read_text())


def test_independent_ppo_baseline_trains(ray_session, market_file, tmp_path):
    from rllib_algospace.training import train

    # no critic warm-up: the one iteration trains the actors too
    outcome = train(_quick(market_file, tmp_path, "ippo", **{"algorithm.centralized_critic": False, "experiment.stop.training_iteration": 1, "algorithm.critic_warmup_steps": 0}))
    assert outcome.error is None and outcome.iterations == 1
    from rllib_algospace.team_policy import load_team_module

    team = outcome.metrics["learners"]["default_policy"]
    assert team["num_module_steps_trained"] > 0 and "policy_loss" in team["risk"]
    module = load_team_module(outcome.latest_checkpoint)
    assert type(module.critic).__name__ == "AgentCritics" and not module.centralized_critic


def test_wandb_without_key_runs_offline(ray_session, market_file, tmp_path, monkeypatch):
    from rllib_algospace.training import train

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    outcome = train(_quick(market_file, tmp_path, "wb", **{"experiment.wandb.enabled": True, "experiment.stop.training_iteration": 1}))
    assert outcome.error is None and outcome.iterations == 1
    assert os.environ["WANDB_MODE"] == "offline"
    assert list(tmp_path.glob("wb/MAPPO_*/wandb/offline-run-*"))


def _cli(*args, env):
    return [sys.executable, "-m", "rllib_algospace.cli", *args]


def _run_env():
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["TUNE_GLOBAL_CHECKPOINT_S"] = "0"  # snapshot the experiment state after every result
    return env


def _trial_dir(storage: Path, name: str) -> Path | None:
    found = sorted((storage / name).glob("MAPPO_*"))
    return found[0] if found else None


def _last_result(trial_dir: Path) -> dict:
    lines = (trial_dir / "result.json").read_text().strip().splitlines()
    return json.loads(lines[-1])


def test_sigkill_mid_run_then_resume_finishes(market_file, tmp_path):
    env = _run_env()
    args = ["train", "--quick", "--data", market_file, "--storage", str(tmp_path), "--name", "killed", "--stop-iters", "6", "--no-evaluate"]
    proc = subprocess.Popen(_cli(*args, env=env), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            trial = _trial_dir(tmp_path, "killed")
            states = list((tmp_path / "killed").glob("experiment_state-*.json"))
            checkpoints = sorted(trial.glob("checkpoint_*")) if trial is not None else []
            # kill once Tune's snapshot of the experiment knows the second checkpoint
            if len(checkpoints) >= 2 and states and max(p.stat().st_mtime for p in states) > checkpoints[1].stat().st_mtime:
                break
            if proc.poll() is not None:
                pytest.fail(f"training ended before it could be killed:\n{proc.stdout.read()[-3000:]}")
            time.sleep(0.5)
        else:
            pytest.fail("no checkpoint within 240 s")
    finally:
        if proc.poll() is None:
            kill_tree(proc)
    killed_at = _last_result(trial)["training_iteration"]
    assert killed_at < 6
    resumed = subprocess.run(_cli(*args, "--resume", env=env), env=env, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout
    final = _last_result(trial)
    assert final["training_iteration"] == 6
    # the step counter continued from the checkpoint instead of starting again
    assert final["num_env_steps_sampled_lifetime"] == 6 * 512


def test_resume_continues_from_the_newest_complete_checkpoint_whatever_tune_recorded(market_file, tmp_path):
    """A kill that Tune's record of the experiment does not reflect (its
    snapshot predates every checkpoint), and a newest checkpoint whose copy
    was cut short: ``--resume`` skips the incomplete one, continues from the
    newest complete one on disk, says which, and keeps counting from there."""
    from rllib_algospace.artifacts import complete_checkpoints

    env = _run_env()
    env["TUNE_GLOBAL_CHECKPOINT_S"] = "100000"  # Tune's snapshot stays the one from the start
    args = ["train", "--quick", "--data", market_file, "--storage", str(tmp_path), "--name", "stale", "--stop-iters", "8", "--no-evaluate"]
    proc = subprocess.Popen(_cli(*args, env=env), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            trial = _trial_dir(tmp_path, "stale")
            complete = complete_checkpoints(trial)[0] if trial is not None else []
            if len(complete) >= 2 and complete[-1][0] >= 3:
                break
            if proc.poll() is not None:
                pytest.fail(f"training ended before it could be killed:\n{proc.stdout.read()[-3000:]}")
            time.sleep(0.2)
        else:
            pytest.fail("no two complete checkpoints within 240 s")
    finally:
        if proc.poll() is None:
            kill_tree(proc)
    complete, _ = complete_checkpoints(trial)
    (_, newest), (expected_iteration, expected) = complete[-1], complete[-2]
    largest = max((p for p in newest.rglob("*") if p.is_file() and p.name != "algospace.json"), key=lambda p: p.stat().st_size)
    largest.write_bytes(largest.read_bytes()[: largest.stat().st_size // 2])  # a copy cut short
    results_before = len((trial / "result.json").read_text().strip().splitlines())

    resumed = subprocess.run(_cli(*args, "--resume", env=env), env=env, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"skipping {newest.name}: incomplete" in resumed.stdout
    assert f"continues from {expected.name} (iteration {expected_iteration})" in resumed.stdout
    lines = [json.loads(line) for line in (trial / "result.json").read_text().strip().splitlines()]
    assert lines[results_before]["training_iteration"] == expected_iteration + 1  # not 1: the weights and counters came back
    assert lines[-1]["training_iteration"] == 8
    assert lines[-1]["num_env_steps_sampled_lifetime"] == 8 * 512


def test_time_budget_stops_with_checkpoint_then_resume(market_file, tmp_path):
    env = _run_env()
    args = ["train", "--quick", "--data", market_file, "--storage", str(tmp_path), "--name", "budget", "--stop-iters", "40", "--no-evaluate"]
    first = subprocess.run(_cli(*args, "--time-budget", "12s", env=env), env=env, capture_output=True, text=True, timeout=400)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "time budget reached" in first.stdout and "--resume" in first.stdout
    trial = _trial_dir(tmp_path, "budget")
    stopped_at = _last_result(trial)["training_iteration"]
    assert 1 <= stopped_at < 40
    assert list(trial.glob("checkpoint_*"))
    second = subprocess.run(_cli(*args, "--resume", "--stop-iters", "40", "--time-budget", "15s", env=env), env=env, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert _last_result(trial)["training_iteration"] > stopped_at


def test_validation_metrics_survive_iterations_without_validation():
    from rllib_algospace.callbacks import TeamMetricsCallback

    callback = TeamMetricsCallback()
    result = {"evaluation": {"env_runners": {"sharpe": 1.5, "max_drawdown": 0.02}}}
    callback.on_train_result(algorithm=None, result=result)
    assert result["val_sharpe"] == 1.5
    stale = {"evaluation": {"env_runners": {"sharpe": float("nan")}}}
    callback.on_train_result(algorithm=None, result=stale)
    assert stale["val_sharpe"] == 1.5 and stale["val_max_drawdown"] == 0.02


def test_progress_line_shows_the_latest_figures_and_no_nan(capsys):
    import math

    from rllib_algospace.training import _make_progress_callback

    class Trial:
        trial_id = "t0"

    progress = _make_progress_callback()
    progress.setup()
    nan = math.nan
    results = [
        {"training_iteration": 1, "env_runners": {"episode_return_mean": nan, "sharpe": nan}, "val_sharpe": nan},
        {"training_iteration": 2, "env_runners": {"episode_return_mean": -1.5, "sharpe": 0.25}, "val_sharpe": nan},
        {"training_iteration": 3, "env_runners": {"episode_return_mean": nan, "sharpe": nan}, "val_sharpe": 1.5},
    ]
    for result in results:
        progress.on_trial_result(0, [], Trial(), result)
    lines = capsys.readouterr().out.splitlines()
    assert "nan" not in "\n".join(lines)
    assert "team return n/a | train Sharpe n/a | val Sharpe n/a" in lines[0]
    assert "team return -1.500 | train Sharpe +0.25 | val Sharpe n/a" in lines[1]
    assert "team return -1.500 | train Sharpe +0.25 | val Sharpe +1.50" in lines[2]  # episodes end in bursts: the latest stay shown


@pytest.mark.slow
def test_relative_checkpoint_paths_work(tiny_checkpoint, tmp_path, monkeypatch):
    import os

    from rllib_algospace.team_policy import find_checkpoint, load_team_module

    monkeypatch.chdir(os.path.dirname(tiny_checkpoint))
    relative = os.path.basename(tiny_checkpoint)
    assert find_checkpoint(relative).is_absolute()
    assert load_team_module(relative).agents == ["regime", "structure", "tactical", "risk"]
