"""Curriculum: the ``curriculum:`` config section (no Ray), the stage switching
every env runner's market (training and validation) and the stage in the
checkpointed state (Algorithm.from_checkpoint in-process; SIGKILL then
``algospace train --resume`` through the CLI)."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from helpers import TINY_TRAINING, kill_tree
from rllib_algospace.config import VALIDATION_METRICS, ConfigError, TrainConfig, load_config, quick_overrides

ROOT = Path(__file__).resolve().parents[1]
STAGES3 = [
    {"name": "simple_markets", "episodes": 2},
    # always true once a validation round ran on this stage's data (drawdown <= 1)
    {"name": "moderate_volatility", "episodes": 1000, "promote_when": {"metric": "val_max_drawdown", "below": 1.5}},
    {"name": "complex_regimes", "episodes": 1000},
]
# Tiny runs: 40-bar episodes, 128 env steps per iteration over 2 envs (about 3 episodes).
TINY = TINY_TRAINING


def _write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _error(overrides=None, text=None, tmp_path=None):
    with pytest.raises(ConfigError) as info:
        if text is not None:
            load_config(_write(tmp_path, text), overrides)
        else:
            load_config(None, overrides)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# -- config (no Ray) -----------------------------------------------------------------
def test_default_has_no_curriculum_and_shipped_yaml_is_the_plan():
    assert load_config().curriculum.stages == ()
    cfg = load_config(ROOT / "tune_configs" / "curriculum.yaml")
    stages = cfg.curriculum.stages
    assert [(s.name, s.episodes) for s in stages] == [("simple_markets", 2000), ("moderate_volatility", 3000), ("complex_regimes", 5000)]
    assert stages[0].promote_when.metric == "val_sharpe" and stages[0].promote_when.above == 1.0 and stages[0].promote_when.below is None
    assert stages[2].promote_when is None
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_stages_from_yaml_and_env_tasks(tmp_path):
    text = """
env:
  tasks: {calm: /data/calm.h5, wild: /data/wild.h5}
curriculum:
  stages:
    - {name: calm, episodes: 5, promote_when: {metric: val_total_return, above: 0.02}}
    - {name: wild, episodes: 7}
"""
    cfg = load_config(_write(tmp_path, text))
    assert [s.name for s in cfg.curriculum.stages] == ["calm", "wild"]
    assert cfg.curriculum.stages[0].promote_when.above == 0.02
    # a preset name is not a task when env.tasks names the markets
    msg = _error(text=text.replace("name: wild", "name: complex_regimes"), tmp_path=tmp_path)
    assert "curriculum.stages[1].name: must be a key of env.tasks (calm, wild)" in msg and msg.startswith(str(tmp_path))


@pytest.mark.parametrize(
    "stages, expected",
    [
        ([{"name": "simple", "episodes": 2}], "overrides: curriculum.stages[0].name: must be a preset of the default data (simple_markets, moderate_volatility, complex_regimes), got 'simple' (did you mean simple_markets?)"),
        ([{"name": "simple_markets", "episodes": 0}], "overrides: curriculum.stages[0].episodes: must be >= 1, got 0"),
        ([{"name": "simple_markets", "episodes": 2.5}], "overrides: curriculum.stages[0].episodes: expected an integer, got 2.5"),
        ([{"name": "simple_markets", "episodes": True}], "overrides: curriculum.stages[0].episodes: expected an integer, got True"),
        ([{"episodes": 2}], "overrides: curriculum.stages[0]: missing name"),
        ([{"name": "simple_markets"}], "overrides: curriculum.stages[0]: missing episodes"),
        ([{"name": "simple_markets", "episodes": 2, "epsiodes": 3}], "overrides: unknown key curriculum.stages[0].epsiodes"),
        ([{"name": "simple_markets", "episodes": 2}, {"name": "simple_markets", "episodes": 3}], "overrides: curriculum.stages[1].name: stage 'simple_markets' is listed twice"),
        ([{"name": "simple_markets", "episodes": 2, "promote_when": {"metric": "sharpe", "above": 1}}], "overrides: curriculum.stages[0].promote_when.metric: must be one of val_sharpe"),
        ([{"name": "simple_markets", "episodes": 2, "promote_when": {"metric": "val_sharpe"}}], "overrides: curriculum.stages[0].promote_when: give exactly one of above or below"),
        ([{"name": "simple_markets", "episodes": 2, "promote_when": {"metric": "val_sharpe", "above": 1, "below": 2}}], "overrides: curriculum.stages[0].promote_when: give exactly one of above or below"),
        ([{"name": "simple_markets", "episodes": 2, "promote_when": {"metric": "val_sharpe", "above": "high"}}], "overrides: curriculum.stages[0].promote_when.above: expected a number"),
        ([{"name": "simple_markets", "episodes": 2, "promote_when": {"metric": "val_sharpe", "abov": 1}}], "overrides: unknown key curriculum.stages[0].promote_when.abov (did you mean above?)"),
        ([{"name": "simple_markets", "episodes": 2, "promote_when": "val_sharpe > 1"}], "overrides: curriculum.stages[0].promote_when: expected a mapping"),
        ("simple_markets", "overrides: curriculum.stages: expected a list of stages"),
        (["simple_markets"], "overrides: curriculum.stages[0]: expected a mapping"),
    ],
)
def test_bad_stages(stages, expected):
    assert _error({"curriculum.stages": stages}).startswith(expected)


def test_cross_checks():
    one = [{"name": "simple_markets", "episodes": 2, "promote_when": {"metric": "val_sharpe", "above": 1.0}}]
    msg = _error({"curriculum.stages": one, "data.path": "/tmp/market.h5"})
    assert "curriculum.stages needs several markets" in msg
    msg = _error({"curriculum.stages": one, "evaluation.every_iterations": 0, "experiment.checkpoint.score": "env_runners/episode_return_mean"})
    assert msg.startswith("overrides: curriculum.stages[0].promote_when uses val_sharpe, a validation metric, but evaluation.every_iterations is 0")
    msg = _error({"curriculum.stages": [{"name": "complex_regimes", "episodes": 2}], "env.tasks": {"a": "/x.h5"}})
    assert "curriculum.stages[0].name: must be a key of env.tasks (a)" in msg
    # without promote_when, validation may be off
    load_config(None, {"curriculum.stages": [{"name": "simple_markets", "episodes": 2}], "evaluation.every_iterations": 0, "experiment.checkpoint.score": "env_runners/episode_return_mean"})


def test_validation_metrics_match_the_callbacks():
    from rllib_algospace.callbacks import TRADING_METRICS, VAL_PREFIX

    assert VALIDATION_METRICS == tuple(f"{VAL_PREFIX}{m}" for m in TRADING_METRICS)


def test_env_overrides_generate_every_stage_market_before_ray():
    from rllib_algospace.curriculum import env_overrides

    cfg = load_config(None, {"curriculum.stages": STAGES3[:2]})
    over = env_overrides(cfg)
    assert over["task"] == "simple_markets" and over["data"] is None
    assert list(over["tasks"]) == ["simple_markets", "moderate_volatility"]
    assert all(os.path.isfile(p) for p in over["tasks"].values())
    assert env_overrides(load_config()) == {}


# -- in-process: stage switching and Algorithm.from_checkpoint ----------------------
def _tiny(storage, name, **extra):
    return load_config(None, {**quick_overrides(), **TINY, "experiment.storage_path": str(storage), "experiment.name": name, **extra})


def _positive(counts: dict) -> set:
    return {k for k, v in (counts or {}).items() if v is not None and not math.isnan(float(v)) and float(v) > 0}


def _training_tasks(algo) -> set:
    """The tasks of every training env (on the remote env runners)."""
    from rllib_algospace.curriculum import env_runner_tasks

    per_runner = algo.env_runner_group.foreach_env_runner(env_runner_tasks, local_env_runner=False)
    return {t for tasks in per_runner for t in tasks}


@pytest.mark.slow
def test_stages_switch_every_env_runner_survive_a_runner_crash_and_restore(ray_session, tmp_path):
    from ray.rllib.algorithms.algorithm import Algorithm

    from rllib_algospace.curriculum import EPISODES_METRIC, env_runner_tasks
    from rllib_algospace.training import build_algorithm_config

    # one remote env runner (as on machines with more cores); validation in the driver
    cfg = _tiny(tmp_path, "cur", **{"curriculum.stages": STAGES3, "resources.num_env_runners": 1})
    algo = build_algorithm_config(cfg).build_algo()
    try:
        assert _training_tasks(algo) == {"simple_markets"}
        assert set(env_runner_tasks(algo.eval_env_runner)) == {"simple_markets"}
        seen = []
        for _ in range(6):
            result = algo.train()
            stage, task = result["curriculum_stage"], result["curriculum_task"]
            trained_on = _positive(result["env_runners"].get(EPISODES_METRIC))
            validated_on = _positive(result["evaluation"]["env_runners"].get(EPISODES_METRIC))
            seen.append((stage, task, sorted(trained_on), sorted(validated_on), result.get("curriculum_promoted_to")))
            # validation resets its envs: it always ran on the stage's market
            assert validated_on == {task}, seen
            # training episodes ran on this stage's market (or finished on the previous one)
            assert trained_on <= {task, STAGES3[max(stage - 1, 0)]["name"]}, seen
            # every env (training and validation) is switched to the stage in force now
            now = STAGES3[algo.extra_state["curriculum"]["stage"]]["name"]
            assert _training_tasks(algo) == {now} and set(env_runner_tasks(algo.eval_env_runner)) == {now}
            if stage == 2:
                break
        stages = [s[0] for s in seen]
        assert stages == sorted(stages) and stages[0] == 0 and stages[-1] == 2, seen
        assert seen[0][1] == "simple_markets" and "moderate_volatility" in [s[1] for s in seen]
        # stage 0 ended by its episode count, stage 1 by its validation metric
        assert algo.extra_state["curriculum"]["promoted_by"][0].endswith("episodes")
        assert algo.extra_state["curriculum"]["promoted_by"][1].startswith("val_max_drawdown=")

        # the env runner crashes; its replacement starts on the first stage's
        # market until the curriculum switches it (on_env_runners_recreated, or
        # the next iteration's switch when Ray restarted it unnoticed)
        (pid,) = algo.env_runner_group.foreach_env_runner(lambda runner: os.getpid(), local_env_runner=False)
        os.kill(pid, signal.SIGKILL)
        deadline, recovered = time.time() + 120, False
        while time.time() < deadline and not recovered:
            result = algo.train()
            assert result["curriculum_stage"] == 2
            recovered = _positive(result["env_runners"].get(EPISODES_METRIC)) == {"complex_regimes"}
        assert recovered, "the replacement env runner never played the current stage"
        assert _training_tasks(algo) == {"complex_regimes"}
        checkpoint = algo.save_to_path(str(tmp_path / "ckpt"))
        iteration = algo.iteration
    finally:
        algo.stop()

    restored = Algorithm.from_checkpoint(checkpoint)
    try:
        assert restored.extra_state["curriculum"]["stage"] == 2
        assert _training_tasks(restored) == {"complex_regimes"}
        assert set(env_runner_tasks(restored.eval_env_runner)) == {"complex_regimes"}
        result = restored.train()
        assert result["training_iteration"] == iteration + 1
        assert result["curriculum_stage"] == 2 and result["curriculum_task"] == "complex_regimes"
        assert _positive(result["env_runners"][EPISODES_METRIC]) == {"complex_regimes"}
        assert "complex_regimes" in _positive(result["evaluation"]["env_runners"][EPISODES_METRIC])
    finally:
        restored.stop()


# -- through the CLI: SIGKILL mid-run, then --resume ------------------------------------
def _result_lines(trial: Path) -> list[dict]:
    path = trial / "result.json"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _checkpoint_stage(checkpoint: Path):
    meta = checkpoint / "algospace.json"
    if not meta.exists():
        return None
    return json.loads(meta.read_text()).get("curriculum", {}).get("stage")


def _resumable_past_stage_0(experiment: Path, trial: Path) -> bool:
    """A checkpoint past stage 0 exists and the experiment state was saved after it."""
    marks = [c / "algospace.json" for c in trial.glob("checkpoint_*") if (_checkpoint_stage(c) or 0) >= 1]
    states = list(experiment.glob("experiment_state-*.json"))
    if not marks or not states:
        return False
    try:
        return max(p.stat().st_mtime for p in states) > min(m.stat().st_mtime for m in marks)
    except FileNotFoundError:  # a checkpoint deleted meanwhile (keep)
        return False


@pytest.mark.slow
def test_cli_curriculum_survives_sigkill_and_resume(tmp_path):
    pytest.importorskip("psutil")
    raw = {
        "experiment": {"name": "cur", "storage_path": str(tmp_path), "stop": {"training_iteration": 10, "time_budget": "10m"}, "checkpoint": {"every_iterations": 1, "every_minutes": None, "keep": 2}},
        "resources": {"num_env_runners": 0},
        "evaluation": {"every_iterations": 1, "full_split": False},
        "curriculum": {"stages": STAGES3},
    }
    for dotted, value in TINY.items():
        section, key = dotted.split(".")
        raw.setdefault(section, {})[key] = value
    config = _write(tmp_path, yaml.safe_dump(raw), "curriculum_tiny.yaml")
    # Tune snapshots the experiment state (which checkpoint a resume starts
    # from) every 10 s by default; every step here, so the kill below cannot
    # outrun it.
    env = dict(os.environ, PYTHONUNBUFFERED="1", TUNE_GLOBAL_CHECKPOINT_S="0")
    args = [sys.executable, "-m", "rllib_algospace.cli", "train", "--config", config, "--no-evaluate"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    trial = None
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            trials = sorted((tmp_path / "cur").glob("MAPPO_*"))
            trial = trials[0] if trials else None
            if trial is not None and _resumable_past_stage_0(tmp_path / "cur", trial):
                break
            if proc.poll() is not None:
                pytest.fail(f"training ended before it could be killed:\n{proc.stdout.read()[-3000:]}")
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint past stage 0 within 240 s")
    finally:
        if proc.poll() is None:
            kill_tree(proc)
    before = _result_lines(trial)
    assert before and before[-1]["training_iteration"] < 10, "the run finished before the kill"
    assert before[0]["curriculum_stage"] == 0 and before[0]["curriculum_task"] == "simple_markets"
    latest = max(trial.glob("checkpoint_*"), key=lambda c: c.name)
    meta = json.loads((latest / "algospace.json").read_text())
    # the checkpoint names the market its team was last trained on (what `evaluate` uses)
    task = STAGES3[meta["curriculum"]["stage"]]["name"]
    assert meta["curriculum"]["task"] == task and meta["env_config"]["data"] == meta["env_config"]["tasks"][task]
    for r in before:  # the envs' own task (from their infos) agrees with the logged stage
        assert _positive(r["evaluation"]["env_runners"]["curriculum_episodes"]) == {r["curriculum_task"]}

    resumed = subprocess.run(args + ["--resume"], env=env, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout
    after = _result_lines(trial)[len(before):]
    assert after and after[-1]["training_iteration"] == 10
    first = after[0]
    # it continued from a checkpoint past stage 0, in that checkpoint's stage
    checkpoint = trial / f"checkpoint_{first['training_iteration'] - 2:06d}"
    expected = _checkpoint_stage(checkpoint) if checkpoint.exists() else None
    assert first["curriculum_stage"] >= 1, [(r["training_iteration"], r["curriculum_stage"]) for r in before + after]
    if expected is not None:
        assert first["curriculum_stage"] == expected
    stages = [r["curriculum_stage"] for r in after]
    assert stages == sorted(stages) and stages[-1] == 2
    for r in after:
        # (after a restore RLlib repeats the restored validation counts of
        # earlier markets in later results: the stage's own market must be there)
        assert r["curriculum_task"] in _positive(r["evaluation"]["env_runners"]["curriculum_episodes"])
        assert r["curriculum_task"] == STAGES3[r["curriculum_stage"]]["name"]
