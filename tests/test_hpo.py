"""Hyperparameter search (``algospace tune``): validation of the search section
(no Ray), reporting from a study (no Ray), a two-trial search in this process,
resume after SIGKILL, and two processes sharing one sqlite study."""
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from helpers import kill_tree
from rllib_algospace.config import ConfigError, load_config, quick_overrides
from rllib_algospace.hpo import DEFAULT_HPO_YAML, decode_params, load_hpo_config, trial_train_config

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
TINY_TRAIN = {
    **quick_overrides(),
    "experiment.stop.training_iteration": 1,
    "experiment.stop.time_budget": None,
    "env.episode_length": 128,
    "algorithm.train_batch_size": 256,
    "algorithm.minibatch_size": 128,
    "algorithm.num_epochs": 1,
    "algorithm.actor_hiddens": [8, 8],
    "algorithm.critic_hiddens": [8, 8],
    "evaluation.episode_length": 128,
}
TINY_SPACE = {
    "algorithm.lr": {"type": "loguniform", "low": 1.0e-5, "high": 1.0e-3},
    "algorithm.entropy_coeff": {"type": "uniform", "low": 0.0, "high": 0.02},
    "algorithm.minibatch_size": {"type": "choice", "values": [64, 128]},
    "algorithm.actor_hiddens": {"type": "choice", "values": [[8, 8], [16]]},
    "env.w_shared": {"type": "uniform", "low": 0.5, "high": 1.0},
}


def _write_hpo(path: Path, market_file=None, storage=None, train=None, **search) -> Path:
    """An HPO YAML: a full (tiny) training config plus a search section."""
    overrides = {**TINY_TRAIN, **(train or {})}
    if market_file:
        overrides["data.path"] = market_file
    if storage:
        overrides["experiment.storage_path"] = str(storage)
    raw = load_config(None, overrides).to_dict()
    raw["search"] = {
        "trials": 2,
        "max_concurrent": 1,
        "scheduler": {"type": "asha", "grace_period": 1, "reduction_factor": 2},
        "study_name": "tiny",
        "space": TINY_SPACE,
        **search,
    }
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _optuna_trials(url: str, study: str):
    """(number, state, params, user_attrs) of each trial, read through Optuna."""
    import optuna

    from rllib_algospace.hpo import rdb_storage

    found = optuna.load_study(study_name=study, storage=rdb_storage(url))
    return [(t.number, t.state.name, t.params, t.user_attrs) for t in sorted(found.get_trials(), key=lambda t: t.number)]


def _study_trials(db: Path, study: str):
    """(number, state, params, user_attrs) of each trial, read with plain sqlite3."""
    con = sqlite3.connect(str(db))
    try:
        rows = con.execute(
            "SELECT t.trial_id, t.number, t.state FROM trials t JOIN studies s ON s.study_id = t.study_id WHERE s.study_name = ? ORDER BY t.number",
            (study,),
        ).fetchall()
        out = []
        for trial_id, number, state in rows:
            params = dict(con.execute("SELECT param_name, param_value FROM trial_params WHERE trial_id = ?", (trial_id,)).fetchall())
            attrs = {k: json.loads(v) for k, v in con.execute("SELECT key, value_json FROM trial_user_attributes WHERE trial_id = ?", (trial_id,)).fetchall()}
            out.append((number, state, params, attrs))
        return out
    finally:
        con.close()


# ---------------------------------------------------------------------------
# Validation (no Ray)
# ---------------------------------------------------------------------------
def test_default_search_is_the_yaml_and_loads_without_ray():
    a, b = load_hpo_config(None), load_hpo_config(DEFAULT_HPO_YAML)
    assert a.base == b.base and a.search == b.search
    keys = {d.key for d in a.search.space}
    assert {"algorithm.lr", "algorithm.entropy_coeff", "algorithm.clip_param", "algorithm.gamma", "algorithm.lambda_",
            "algorithm.minibatch_size", "algorithm.num_epochs", "algorithm.actor_hiddens", "env.w_shared"} <= keys
    assert a.search.metric == "val_sharpe" and a.search.scheduler.type == "asha"
    q = load_hpo_config(DEFAULT_HPO_YAML, quick=True)
    assert q.search.trials == 2 and q.search.max_concurrent == 1 and q.max_t == 2
    assert q.base.experiment.name == "hpo-quick" and q.base.evaluation.every_iterations == 1 and q.base.evaluation.episodes == 1
    hiddens = next(d for d in q.search.space if d.key == "algorithm.actor_hiddens")
    assert max(max(v) for v in hiddens.values) <= 32
    code = "import sys; from rllib_algospace.hpo import load_hpo_config; load_hpo_config(None, quick=True); print(sorted(m for m in ('ray', 'optuna', 'torch') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_base_file_and_trial_config_roundtrip(tmp_path):
    (tmp_path / "hpo.yaml").write_text(
        f"base: {Path(__file__).resolve().parents[1] / 'tune_configs' / 'quick.yaml'}\n"
        "algorithm: {lr: 1.0e-4}\n"
        "search:\n  scheduler: {type: none}\n  space:\n    algorithm.actor_hiddens: {type: choice, values: [[8, 8], [16]]}\n    algorithm.num_epochs: {type: int, low: 1, high: 3}\n"
    )
    hpo = load_hpo_config(tmp_path / "hpo.yaml")
    assert hpo.base.algorithm.lr == 1.0e-4 and hpo.base.experiment.name == "quick"
    assert hpo.search.encoded_keys == ["algorithm.actor_hiddens"]
    dist = hpo.search.space[0].optuna()
    assert dist.choices == ("[8, 8]", "[16]")
    from rllib_algospace.hpo import SPEC_KEY, trial_spec

    config = {SPEC_KEY: trial_spec(hpo, "/x.h5", "/exp"), "algorithm.actor_hiddens": "[16]", "algorithm.num_epochs": 3}
    cfg = trial_train_config(config)
    assert cfg.algorithm.actor_hiddens == (16,) and cfg.algorithm.num_epochs == 3 and cfg.algorithm.lr == 1.0e-4
    assert decode_params({"algorithm.actor_hiddens": "[8, 8]", "x": "a"}, ["algorithm.actor_hiddens"]) == {"algorithm.actor_hiddens": [8, 8], "x": "a"}


BAD_SEARCH = [
    # (search section changes, training changes, expected message part)
    ({"trialz": 3}, {}, "unknown key search.trialz (did you mean trials?)"),
    ({"space": {"algorithm.lrr": {"type": "loguniform", "low": 1e-5, "high": 1e-3}}}, {}, "search.space.algorithm.lrr: not a training config key (did you mean lr?)"),
    ({"space": {"env.w_sharde": {"type": "uniform", "low": 0.5, "high": 1.0}}}, {}, "search.space.env.w_sharde: not a training config key (did you mean w_shared?)"),
    ({"space": {"algorithm.lr": {"type": "gaussian", "low": 1e-5, "high": 1e-3}}}, {}, "search.space.algorithm.lr.type: unknown distribution type 'gaussian'"),
    ({"space": {"algorithm.lr": {"low": 1e-5, "high": 1e-3}}}, {}, "search.space.algorithm.lr: missing type"),
    ({"space": {"algorithm.lr": {"type": "loguniform", "low": 1e-2, "high": 1e-3}}}, {}, "search.space.algorithm.lr: low (0.01) must be < high (0.001)"),
    ({"space": {"algorithm.lr": {"type": "uniform", "low": 0.1, "high": 0.1}}}, {}, "low (0.1) must be < high (0.1)"),
    ({"space": {"algorithm.lr": {"type": "loguniform", "low": 0, "high": 1e-3}}}, {}, "search.space.algorithm.lr.low: must be > 0 for loguniform"),
    ({"space": {"algorithm.minibatch_size": {"type": "choice", "values": []}}}, {}, "search.space.algorithm.minibatch_size.values: must not be empty"),
    ({"space": {"algorithm.minibatch_size": {"type": "choice", "values": [64, 64]}}}, {}, "duplicate value 64"),
    ({"space": {"algorithm.gamma": {"type": "uniform", "low": 0.9, "high": 1.5}}}, {}, "search.space.algorithm.gamma.high: must be in (0, 1], got 1.5"),
    ({"space": {"algorithm.num_epochs": {"type": "uniform", "low": 1, "high": 10}}}, {}, "use type: int or choice for this key"),
    ({"space": {"algorithm.num_epochs": {"type": "int", "low": 1, "high": 2.5}}}, {}, "search.space.algorithm.num_epochs.high: expected an integer, got 2.5"),
    ({"space": {"algorithm.actor_hiddens": {"type": "choice", "values": [[64, 64], [64, 0]]}}}, {}, "search.space.algorithm.actor_hiddens.values[1]: expected a non-empty list of positive integers"),
    ({"space": {"algorithm.minibatch_size": {"type": "choice", "values": [128, 1024]}}}, {}, "search.space.algorithm.minibatch_size.values[1]: algorithm.minibatch_size (1024) must not exceed algorithm.train_batch_size (256)"),
    ({"space": {"algorithm.lr": {"type": "uniform", "low": 1e-5, "high": 1e-3, "lo": 3}}}, {}, "unknown key search.space.algorithm.lr.lo"),
    ({"space": {"experiment.name": {"type": "choice", "values": ["a", "b"]}}}, {}, "search.space.experiment.name: cannot be searched"),
    ({"space": {}}, {}, "search.space: must name at least one key"),
    ({"space": {"algorithm.lr": [1e-4, 1e-3]}}, {}, "search.space.algorithm.lr: expected a mapping"),
    ({"scheduler": {"type": "hyperband"}}, {}, "search.scheduler.type: must be one of asha, median, none, got 'hyperband'"),
    ({"scheduler": {"type": "asha", "grace_period": 5, "max_t": 2}}, {}, "search.scheduler.grace_period: must not exceed max_t (2), got 5"),
    ({"scheduler": {"type": "asha", "reduction_factor": 1}}, {}, "search.scheduler.reduction_factor: must be a number > 1, got 1"),
    ({"scheduler": {"type": "median", "grace_period": 1}}, {"evaluation.every_iterations": 2, "experiment.stop.training_iteration": 4}, "search.scheduler.grace_period: (1) is less than evaluation.every_iterations (2)"),
    ({"mode": "maximize"}, {}, "search.mode: must be one of max, min, got 'maximize'"),
    ({"trials": 0}, {}, "search.trials: must be >= 1, got 0"),
    ({"max_concurrent": "all"}, {}, "search.max_concurrent: expected 'auto' or an integer >= 1"),
    ({"multi_objective": True, "second_metric": "val_sharpe"}, {}, "search.second_metric: must differ from search.metric"),
]


@pytest.mark.parametrize("search, train, expected", BAD_SEARCH, ids=[e[2][:40] for e in BAD_SEARCH])
def test_search_section_errors_are_one_line(tmp_path, search, train, expected):
    path = _write_hpo(tmp_path / "bad.yaml", train=train, **search)
    with pytest.raises(ConfigError) as err:
        load_hpo_config(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    assert expected in message, message


def test_top_level_and_flag_errors(tmp_path):
    path = _write_hpo(tmp_path / "ok.yaml")
    raw = yaml.safe_load(path.read_text())
    raw["serch"] = raw.pop("search")
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"typo.yaml: unknown key serch \(did you mean search\?\)"):
        load_hpo_config(tmp_path / "typo.yaml")
    del raw["serch"]
    (tmp_path / "nosearch.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"nosearch.yaml: search: missing section"):
        load_hpo_config(tmp_path / "nosearch.yaml")
    with pytest.raises(ConfigError, match=r"^overrides: search.trials: must be >= 1, got 0$"):
        load_hpo_config(path, trials=0)
    (tmp_path / "base.yaml").write_text("base: missing.yaml\nsearch: {space: {algorithm.lr: {type: uniform, low: 0.1, high: 0.2}}}\n")
    with pytest.raises(ConfigError, match=r"missing.yaml: file not found"):
        load_hpo_config(tmp_path / "base.yaml")


def test_cli_reports_a_bad_search_in_one_line_with_exit_2(tmp_path, capsys):
    from rllib_algospace import cli

    path = _write_hpo(tmp_path / "bad.yaml", space={"algorithm.lr": {"type": "loguniform", "low": 1e-2, "high": 1e-3}})
    assert cli.main(["tune", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "search.space.algorithm.lr: low (0.01) must be < high (0.001)" in err
    assert cli.main(["tune", "--config", str(path), "--trials", "-1"]) == 2
    assert "search.trials: must be >= 1" in capsys.readouterr().err
    # a study storage that cannot be opened: one line, before Ray starts, and nothing left behind
    good = _write_hpo(tmp_path / "good.yaml", storage=tmp_path / "res")
    assert cli.main(["tune", "--config", str(good), "--study-storage", "nosuchdb://x/y"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "study storage nosuchdb://x/y: cannot open" in err
    assert not (tmp_path / "res" / "quick" / "search_info.json").exists()


def test_schedulers_and_concurrency_follow_the_yaml_and_the_machine(tmp_path):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    from rllib_algospace.hpo.search import _max_concurrent, _scheduler

    train = {"experiment.stop.training_iteration": 8}
    asha = load_hpo_config(_write_hpo(tmp_path / "a.yaml", train=train, scheduler={"type": "asha", "grace_period": 2, "reduction_factor": 3}))
    assert isinstance(_scheduler(asha), ASHAScheduler) and asha.max_t == 8
    median = load_hpo_config(_write_hpo(tmp_path / "m.yaml", train=train, scheduler={"type": "median", "grace_period": 2}))
    assert isinstance(_scheduler(median), MedianStoppingRule)
    none = load_hpo_config(_write_hpo(tmp_path / "n.yaml", train=train, scheduler={"type": "none"}))
    assert isinstance(_scheduler(none), FIFOScheduler)
    # a scheduler without grace_period judges after the first validation
    every = load_hpo_config(_write_hpo(tmp_path / "e.yaml", train={**train, "evaluation.every_iterations": 4}, scheduler={"type": "asha"}))
    assert every.search.scheduler.grace_period == 4
    auto = load_hpo_config(_write_hpo(tmp_path / "c.yaml", trials=20, max_concurrent="auto"))
    assert _max_concurrent(auto, 16, 0, 0, 0.0)[0] == 16  # one CPU per trial (no env runners)
    assert _max_concurrent(auto, 16, 0, 3, 0.0)[0] == 4  # a learner and 3 env runners each
    assert _max_concurrent(auto, 16, 1, 0, 1.0)[0] == 1  # one GPU, a whole GPU per trial
    assert _max_concurrent(auto, 2, 0, 0, 0.0)[0] == 2
    assert _max_concurrent(load_hpo_config(_write_hpo(tmp_path / "f.yaml", trials=3, max_concurrent=8)), 2, 0, 0, 0.0)[0] == 3


# ---------------------------------------------------------------------------
# Reporting from a study (no Ray)
# ---------------------------------------------------------------------------
def test_report_multi_objective_table_best_config_and_plots(tmp_path):
    import optuna

    from rllib_algospace.hpo import open_study, report

    path = _write_hpo(tmp_path / "mo.yaml", storage=tmp_path / "res", multi_objective=True)
    hpo = load_hpo_config(path)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    _, study = open_study(url, "tiny", hpo.search.directions, hpo.search.metrics)
    dists = {d.key: d.optuna() for d in hpo.search.space}
    points = [(0.5, 0.10, 1e-4, "[8, 8]"), (1.5, 0.30, 3e-4, "[16]"), (1.0, 0.05, 5e-4, "[16]")]
    for sharpe, dd, lr, hid in points:
        params = {"algorithm.lr": lr, "algorithm.entropy_coeff": 0.01, "algorithm.minibatch_size": 64, "algorithm.actor_hiddens": hid, "env.w_shared": 0.7}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, values=[sharpe, dd], user_attrs={"worker": "h:1", "sampler_seed": 7}))
    out = tmp_path / "out"
    out.mkdir()
    outcome = report(hpo, url, str(out), "/exp", seed=7, worker="h:1")
    assert outcome.trials_complete == 3
    # Pareto front: (1.5, 0.30) and (1.0, 0.05); the best config is the front's best Sharpe
    assert outcome.best["number"] == 1 and outcome.best["params"]["algorithm.actor_hiddens"] == [16]
    rows = (out / "best_trials.csv").read_text().splitlines()
    assert rows[0].startswith("rank,trial,val_sharpe,val_max_drawdown,pareto,algorithm.lr")
    assert [r.split(",")[1] for r in rows[1:]] == ["1", "2", "0"]
    assert [r.split(",")[4] for r in rows[1:]] == ["yes", "yes", ""]
    assert "| rank | trial |" in (out / "best_trials.md").read_text()
    best = load_config(outcome.best_config)
    assert best.algorithm.lr == pytest.approx(3e-4) and best.algorithm.actor_hiddens == (16,) and best.env["w_shared"] == 0.7
    assert best.experiment.name.endswith("-best")
    assert {Path(p).name for p in outcome.plots} == {"optimization_history.png", "param_importances.png"}


def test_report_with_one_trial_says_importance_needs_two(tmp_path):
    import optuna

    from rllib_algospace.hpo import open_study, report

    hpo = load_hpo_config(_write_hpo(tmp_path / "one.yaml"))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    _, study = open_study(url, "tiny", hpo.search.directions, hpo.search.metrics)
    dists = {d.key: d.optuna() for d in hpo.search.space}
    params = {"algorithm.lr": 1e-4, "algorithm.entropy_coeff": 0.01, "algorithm.minibatch_size": 64, "algorithm.actor_hiddens": "[16]", "env.w_shared": 0.7}
    study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=0.3))
    outcome = report(hpo, url, str(tmp_path), "/exp", seed=0, worker="h:1")
    assert [Path(p).name for p in outcome.plots] == ["optimization_history.png"]
    assert any("at least 2 completed trials" in n for n in outcome.notes)
    # a study optimising something else is refused
    with pytest.raises(ConfigError, match="has directions"):
        open_study(url, "tiny", ["minimize"], ["val_sharpe"])


# ---------------------------------------------------------------------------
# Searches through Ray
# ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.ray
def test_two_trial_search_writes_study_and_a_trainable_best_config(ray_session, market_file, tmp_path):
    from rllib_algospace.hpo import run_search
    from rllib_algospace.training import build_algorithm_config

    path = _write_hpo(tmp_path / "hpo.yaml", market_file, tmp_path / "res", multi_objective=True)
    outcome = run_search(path)
    exp = tmp_path / "res" / "quick"
    assert outcome.experiment_path == str(exp) and not outcome.errors and not outcome.interrupted
    trials = _study_trials(exp / "optuna_study.db", "tiny")
    assert [state for _, state, _, _ in trials] == ["COMPLETE", "COMPLETE"]
    assert outcome.trials_complete == 2
    # each trial trained with its sampled values (the checkpoint records the env and the network)
    for _, _, params, attrs in trials:
        meta = json.loads(next((exp / f"AlgospaceTrial_{attrs['tune_trial_id']}").glob("checkpoint_*/algospace.json")).read_text())
        assert meta["env_config"]["w_shared"] == pytest.approx(params["env.w_shared"])
        assert meta["model_config"]["hiddens"] == [[8, 8], [16]][int(params["algorithm.actor_hiddens"])]
        assert attrs["sampler_seed"] == 0 and "val_max_drawdown" in attrs
    best = load_config(outcome.best_config)
    build_algorithm_config(best)  # ready to train
    assert (exp / "best_trials.csv").exists() and (exp / "best_trials.md").exists()
    assert (exp / "optimization_history.png").stat().st_size > 0
    assert (exp / "param_importances.png").exists() or any("importance" in n for n in outcome.notes)
    info = json.loads((exp / "search_info.json").read_text())
    assert info["sampler_seed"] == 0 and info["shared"] is False and info["trials_complete"] == 2
    # the same experiment again without --resume is refused before Ray does anything
    with pytest.raises(ConfigError, match="already uses this experiment folder"):
        run_search(path)


def _cli(*args):
    return [sys.executable, "-m", "rllib_algospace.cli", "tune", *args]


def _env():
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _watch(proc, lines: list) -> threading.Thread:
    def read():
        for line in proc.stdout:
            lines.append(line)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_killed_search_resumes_and_completes_both_trials(market_file, tmp_path):
    import optuna

    pytest.importorskip("psutil")
    path = _write_hpo(tmp_path / "hpo.yaml", market_file, tmp_path / "res", train={"experiment.stop.training_iteration": 2})
    exp = tmp_path / "res" / "quick"
    env = _env()
    proc = subprocess.Popen(_cli("--config", str(path)), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    _watch(proc, lines)
    deadline = time.time() + 240
    try:
        while time.time() < deadline:  # the driver prints a line per result
            if any(re.match(r"^\[\w+\] iter +1 \|", line) for line in list(lines)):
                break
            if proc.poll() is not None:
                pytest.fail("the search ended before it could be killed:\n" + "".join(lines)[-3000:])
            time.sleep(0.2)
        else:
            pytest.fail("no trial result within 240 s:\n" + "".join(lines)[-3000:])
    finally:
        if proc.poll() is None:
            kill_tree(proc)
    assert not (exp / "best_config.yaml").exists()
    db = exp / "optuna_study.db"
    assert [state for _, state, _, _ in _study_trials(db, "tiny")][-1] == "RUNNING"  # killed mid-trial
    # An Optuna trial handed out after Tune's last snapshot of the searcher (a kill
    # can land there): the resumed search must run it, not leave it RUNNING.
    hpo = load_hpo_config(path)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    orphan = study.ask({d.key: d.optuna() for d in hpo.search.space})
    orphan.set_user_attr("experiment", str(exp))

    resumed = subprocess.run(_cli("--config", str(path), "--resume"), env=env, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout
    assert f"runs Optuna trial {orphan.number}, handed out before the interruption" in resumed.stdout
    trials = _study_trials(db, "tiny")
    assert [state for _, state, _, _ in trials] == ["COMPLETE", "COMPLETE"]
    for _, _, _, attrs in trials:  # both trials ran to the end, or ASHA stopped one at its first rung
        result = [json.loads(x) for x in (exp / f"AlgospaceTrial_{attrs['tune_trial_id']}" / "result.json").read_text().splitlines()]
        assert result[-1]["training_iteration"] in (1, 2) and attrs["training_iteration"] == result[-1]["training_iteration"]
    assert max(attrs["training_iteration"] for _, _, _, attrs in trials) == 2
    assert (exp / "best_config.yaml").exists()


@pytest.mark.slow
def test_two_processes_share_one_sqlite_study(tmp_path):
    """A study two processes on one machine share through SQLite: both ask
    and tell at once through ``open_study``; every trial lands once."""
    url = f"sqlite:///{tmp_path / 'drive' / 'shared_study.db'}"
    _ask_and_tell_from_two_processes(url)


def _ask_and_tell_from_two_processes(url: str, trials_each: int = 15) -> None:
    code = (
        "import sys, optuna; from rllib_algospace.hpo import open_study\n"
        "optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
        "_, study = open_study(sys.argv[1], 'shared', directions=['maximize'], metrics=['val_sharpe'], sampler=optuna.samplers.RandomSampler(seed=int(sys.argv[2])))\n"
        f"for _ in range({trials_each}):\n"
        "    t = study.ask(); study.tell(t, t.suggest_float('x', 0, 1) + int(sys.argv[2]))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, url, str(i)], stderr=subprocess.PIPE, text=True) for i in range(2)]
    codes = [p.wait(timeout=180) for p in procs]
    assert codes == [0, 0], [p.stderr.read()[-2000:] for p in procs]
    import optuna

    from rllib_algospace.hpo import rdb_storage

    study = optuna.load_study(study_name="shared", storage=rdb_storage(url))
    trials = study.get_trials()
    assert len(trials) == 2 * trials_each and len({t.number for t in trials}) == 2 * trials_each
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.params["x"] for t in trials}) == 2 * trials_each  # distinct parameters: each worker its own sampler seed


def test_two_processes_share_one_journal_study(tmp_path):
    """The Drive-safe study: Optuna's JournalStorage on a file, written by two
    processes at once; every trial lands, none twice."""
    from rllib_algospace.hpo import storage_url

    url = storage_url(str(tmp_path / "drive" / "study.journal"))
    assert url == f"journal://{tmp_path / 'drive' / 'study.journal'}"
    _ask_and_tell_from_two_processes(url)


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture
def postgres_url():
    """A real PostgreSQL server in a temporary folder (``.ci/run`` installs
    the Debian package), on a Unix socket only; stopped at the end."""
    import getpass
    import shutil
    import socket

    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    import tempfile

    # pytest's folder is private to its user; the server's user must reach its own
    root = Path(tempfile.mkdtemp(prefix="algospace-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir(parents=True)
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    user = "postgres" if as_user else getpass.getuser()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*cmd):
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o", f"-k {sock} -p {port} -c listen_addresses=''", "start")
    try:
        run(str(bindir / "createdb"), "-h", str(sock), "-p", str(port), "-U", user, "studies")
        yield f"postgresql+psycopg2://{user}@/studies?host={sock}&port={port}"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def test_two_tune_workers_share_one_postgresql_study(postgres_url, market_file, tmp_path):
    """Two full ``algospace tune`` workers on one study in a real PostgreSQL
    server (the study several machines share): every trial completes once,
    with its own parameters, each worker its own sampler seed."""
    db = postgres_url
    path = _write_hpo(tmp_path / "hpo.yaml", market_file, tmp_path / "res")
    env = _env()
    procs = [
        subprocess.Popen(_cli("--config", str(path), "--name", f"worker{i}", "--study-storage", str(db)), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in (1, 2)
    ]
    outs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=400)
            outs.append(out)
            assert p.returncode == 0, out[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                kill_tree(p)
    trials = _optuna_trials(postgres_url, "tiny")
    assert [state for _, state, _, _ in trials] == ["COMPLETE"] * 4
    assert len({tuple(sorted(params.items())) for _, _, params, _ in trials}) == 4  # no repeats
    seeds = {attrs["worker"]: attrs["sampler_seed"] for _, _, _, attrs in trials}
    assert len(seeds) == 2 and len(set(seeds.values())) == 2
    infos = [json.loads((tmp_path / "res" / f"worker{i}" / "search_info.json").read_text()) for i in (1, 2)]
    assert {i["worker"]: i["sampler_seed"] for i in infos} == seeds and all(i["shared"] for i in infos)
    # each worker's table shows the study as it was when that worker finished:
    # its own trials and the other's finished ones; the last to finish sees all four
    rows = [len((tmp_path / "res" / f"worker{i}" / "best_trials.csv").read_text().strip().splitlines()) - 1 for i in (1, 2)]
    assert min(rows) >= 2 and max(rows) == 4


def test_trials_a_kill_left_running_are_failed_for_their_experiment_only(tmp_path):
    """After a finished search, the Optuna trials it was handed just before a
    kill (still RUNNING) are marked FAIL with the reason; another
    experiment's running trials in the same study are left alone."""
    import optuna

    from rllib_algospace.hpo import open_study
    from rllib_algospace.hpo.study import fail_stale_trials

    url = f"sqlite:///{tmp_path / 'study.db'}"
    _, study = open_study(url, "shared", directions=["maximize"], metrics=["val_sharpe"])
    mine, other, done = study.ask(), study.ask(), study.ask()
    mine.set_user_attr("experiment", "e1")
    other.set_user_attr("experiment", "e2")
    done.set_user_attr("experiment", "e1")
    study.tell(done, 1.0)
    fail_stale_trials(url, "shared", "e1")
    trials = {t.number: t for t in optuna.load_study(study_name="shared", storage=url).get_trials()}
    assert trials[mine.number].state == optuna.trial.TrialState.FAIL
    assert trials[mine.number].user_attrs["failure"] == "handed out before an interruption and not run"
    assert trials[other.number].state == optuna.trial.TrialState.RUNNING
    assert trials[done.number].state == optuna.trial.TrialState.COMPLETE
