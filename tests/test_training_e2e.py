"""Training end to end through Tune (one Ray session per test process), and
resume after SIGKILL and after a time budget, through the CLI."""
import json
import os
import re
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
    from rllib_algospace.evaluation.checkpoint import evaluate_checkpoint
    from rllib_algospace.checkpoints import checkpoint_metadata
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
    from rllib_algospace.checkpoints import load_team_module

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


FAULT_ITERATIONS = 14
# Where each of the ten kills lands: just after a checkpoint folder appears
# (its copy possibly unfinished), mid-run once an iteration's result is out,
# and "mid-write" (killed after a checkpoint, whose copy is then cut short).
KILL_POINTS = ("new_folder", "result", "mid_write", "new_folder", "result", "new_folder", "mid_write", "result", "new_folder", "mid_write")


def _results(trial: Path | None) -> list[dict]:
    """The trial's results so far (a line Tune is still writing is left out)."""
    if trial is None or not (trial / "result.json").exists():
        return []
    out = []
    for line in (trial / "result.json").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            break
    return out


def _newest_checkpoint_iteration(trial: Path | None) -> int:
    """The highest iteration any checkpoint folder's algospace.json names (complete or not)."""
    best = 0
    for meta in (trial.glob("checkpoint_*/algospace.json") if trial is not None else []):
        try:
            best = max(best, int(json.loads(meta.read_text()).get("training_iteration") or 0))
        except (OSError, ValueError):
            pass
    return best


def test_ten_kills_each_resume_from_the_newest_complete_checkpoint(market_file, tmp_path):
    """SIGKILL at ten points spread over one run; after each, ``--resume``
    continues from the newest complete checkpoint on disk (whatever Tune's
    record says: half the sessions keep Tune's snapshot of the experiment
    from their start only), skips a checkpoint whose copy was cut short,
    says which, and the iteration and step counters carry on to the end."""
    from rllib_algospace.artifacts import complete_checkpoints

    args = ["train", "--quick", "--data", market_file, "--storage", str(tmp_path), "--name", "faults", "--stop-iters", str(FAULT_ITERATIONS), "--no-evaluate"]
    trial = None
    for point, kill_at in enumerate(KILL_POINTS + (None,)):
        env = _run_env()
        if point % 2:
            env["TUNE_GLOBAL_CHECKPOINT_S"] = "100000"  # Tune's record of this session stays the one from its start
        expected = complete_checkpoints(trial)[0][-1] if trial is not None and complete_checkpoints(trial)[0] else None
        # this session's results are those of a new trial process: Tune rewrites
        # result.json from scratch when its record of the trial has no checkpoint
        # (the trial then continues from the newest one on disk), so line counts mislead
        pids_before = {r.get("pid") for r in _results(trial)}
        newest_before = _newest_checkpoint_iteration(trial)
        command = _cli(*args, *(["--resume"] if point else []), env=env)
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 240
        try:
            while time.time() < deadline:
                trial = trial or _trial_dir(tmp_path, "faults")
                new = [r for r in _results(trial) if r.get("pid") not in pids_before]
                if new and point:
                    first = new[0]["training_iteration"]
                    want = expected[0] + 1 if expected else 1
                    assert first == want, f"kill {point}: resumed at iteration {first}, the newest complete checkpoint gives {want}"
                if kill_at is None:
                    if proc.poll() is not None:
                        break
                elif kill_at == "result":
                    if len(new) > 1:
                        break
                else:  # a checkpoint folder written (or rewritten) in this session
                    if _newest_checkpoint_iteration(trial) > newest_before and new:
                        break
                if proc.poll() is not None:
                    pytest.fail(f"kill {point}: training ended early:\n{proc.stdout.read()[-3000:]}")
                time.sleep(0.05)
            else:
                kill_tree(proc)
                raw = proc.stdout.read()
                shown = re.sub(r"(?:-?\d+\.\d+(?:e-?\d+)?, ){8,}", "<numbers>, ", raw)
                pytest.fail(f"kill {point} ({kill_at}): nothing happened within 240 s:\n{shown[-6000:]}")
        finally:
            if kill_at is not None and proc.poll() is None:
                kill_tree(proc)
        output = proc.stdout.read()
        if point:
            assert "resuming" in output, output[-3000:]
            if expected:
                assert f"continues from {expected[1].name} (iteration {expected[0]})" in output, output[-3000:]
        if kill_at == "mid_write":
            complete = complete_checkpoints(trial)[0]
            if len(complete) >= 2:  # cut the newest copy short: the next resume must skip it
                newest = complete[-1][1]
                largest = max((p for p in newest.rglob("*") if p.is_file() and p.name != "algospace.json"), key=lambda p: p.stat().st_size)
                largest.write_bytes(largest.read_bytes()[: largest.stat().st_size // 2])
    assert proc.returncode == 0, output[-3000:]
    lines = (trial / "result.json").read_text().splitlines()
    results = _results(trial)
    assert len(results) == len(lines), f"line {len(results) + 1} of result.json is broken: {lines[len(results)][:200]!r}"
    final = results[-1]
    assert final["training_iteration"] == FAULT_ITERATIONS, ([r["training_iteration"] for r in results], output[-3000:])
    assert final["num_env_steps_sampled_lifetime"] == FAULT_ITERATIONS * 512  # the step counter carried on through ten kills


DRIVE_DELAY_S = 0.02  # per write, create, rename, mkdir and fsync: a Drive mount's round trip
DRIVE_WATCHDOG_S = 360  # a request still waiting then is a hang: the mount is aborted and the test fails


@pytest.fixture
def drive_like_storage(tmp_path):
    """A folder on a slow FUSE file system (``tests/slow_fs.py``: a mounted
    Google Drive's round trips), or a plain folder where this machine cannot
    mount one (the test still runs). A watchdog aborts the FUSE connection
    after ``DRIVE_WATCHDOG_S``: anything stuck on the mount then fails at
    once instead of stalling the suite."""
    import threading

    from helpers import mount_slow_fs

    folder = tmp_path / "drive"
    mount = mount_slow_fs(tmp_path / "drive_backing", folder, DRIVE_DELAY_S)
    if mount is None:
        yield folder, None
        return
    watchdog = threading.Timer(DRIVE_WATCHDOG_S, mount.abort)
    watchdog.start()
    try:
        yield folder, mount
    finally:
        watchdog.cancel()
        mount.close()
    assert not mount.aborted, f"a request on the slow file system waited over {DRIVE_WATCHDOG_S} s; its log:\n{mount.log()[-3000:]}"


def _run_cli_to_files(args, env, log_prefix: Path, timeout: float):
    """The CLI with its output in files, not pipes: a Ray worker that
    outlives the driver cannot hold the test waiting on an open pipe."""
    with open(f"{log_prefix}.out", "w") as out, open(f"{log_prefix}.err", "w") as err:
        proc = subprocess.Popen(_cli(*args, env=env), env=env, stdout=out, stderr=err, text=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc)
    return proc.returncode, Path(f"{log_prefix}.out").read_text(), Path(f"{log_prefix}.err").read_text()


def test_time_budget_stops_with_checkpoint_then_resume(market_file, drive_like_storage, tmp_path):
    """A Colab session's budget ends with a checkpoint and the next session
    resumes from it, with the experiment on a slow Drive-like FUSE mount
    (where this machine can mount one)."""
    storage, mount = drive_like_storage
    env = _run_env()
    args = ["train", "--quick", "--data", market_file, "--storage", str(storage), "--name", "budget", "--stop-iters", "40", "--no-evaluate"]
    code, out, err = _run_cli_to_files([*args, "--time-budget", "12s"], env, tmp_path / "first", timeout=300)
    assert code == 0, out[-3000:] + err[-3000:]
    assert "time budget reached" in out and "--resume" in out
    trial = _trial_dir(storage, "budget")
    stopped_at = _last_result(trial)["training_iteration"]
    assert 1 <= stopped_at < 40
    assert list(trial.glob("checkpoint_*"))
    code, out, err = _run_cli_to_files([*args, "--resume", "--stop-iters", "40", "--time-budget", "15s"], env, tmp_path / "second", timeout=300)
    assert code == 0, out[-3000:] + err[-3000:]
    assert f"{trial.name} continues from checkpoint_" in out
    assert _last_result(trial)["training_iteration"] > stopped_at
    if mount is not None:
        assert os.path.ismount(storage)  # the run really went through the slow mount


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

    from rllib_algospace.tune_callbacks import _make_progress_callback

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

    from rllib_algospace.checkpoints import find_checkpoint, load_team_module

    monkeypatch.chdir(os.path.dirname(tiny_checkpoint))
    relative = os.path.basename(tiny_checkpoint)
    assert find_checkpoint(relative).is_absolute()
    assert load_team_module(relative).agents == ["regime", "structure", "tactical", "risk"]


def test_cost_warmup_scales_the_training_envs_only(ray_session, market_file, tmp_path):
    """``algorithm.cost_warmup_steps``: the training envs charge a share of
    the costs that grows with the lifetime step counter (logged as
    ``cost_scale``); the checkpoint records the full costs, so validation and
    evaluation pay them."""
    from rllib_algospace.callbacks import cost_scale_at
    from rllib_algospace.checkpoints import checkpoint_env_overrides, checkpoint_metadata
    from rllib_algospace.training import train

    assert [cost_scale_at(s, 1000) for s in (0, 250, 1000, 5000)] == [0.0, 0.25, 1.0, 1.0] and cost_scale_at(10, 0) == 1.0
    assert [cost_scale_at(s, 1000, free_steps=500) for s in (0, 499, 500, 750, 1500, 9000)] == [0.0, 0.0, 0.0, 0.25, 1.0, 1.0]
    assert [cost_scale_at(s, 0, free_steps=500) for s in (499, 500)] == [0.0, 1.0]
    cfg = _quick(market_file, tmp_path / "results", "costwarm", **{"algorithm.cost_warmup_steps": 2048, "experiment.stop.training_iteration": 2, "env.commission_bps": 2.0, "training.warm_start": None})
    outcome = train(cfg)
    assert outcome.error is None and outcome.iterations == 2
    results = [json.loads(line) for line in (Path(outcome.best_checkpoint).parent / "result.json").read_text().splitlines()]
    assert [r["cost_scale"] for r in results] == [0.25, 0.5]  # 512 and 1,024 of 2,048 steps
    env = checkpoint_env_overrides(checkpoint_metadata(outcome.best_checkpoint)["env_config"])
    assert env["commission_bps"] == 2.0 and "cost_scale" not in env
