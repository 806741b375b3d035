"""The experiment config: defaults, YAML files, overrides, and one-line errors (no Ray)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rllib_algospace.config import (
    DATA_PRESETS,
    AlgorithmSection,
    ConfigError,
    TrainConfig,
    load_config,
    parse_duration,
    parse_overrides,
    quick_overrides,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "tune_configs"
YAML_FILES = sorted(CONFIG_DIR.glob("*.yaml"))


def _write(tmp_path, text: str, name: str = "x.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _error(path=None, overrides=None) -> ConfigError:
    """The error of a config; one line per problem (several only when ``errors`` lists them)."""
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    msg = str(info.value)
    assert msg.count("\n") == max(0, len(info.value.errors) - 1) and msg == msg.strip(), msg
    return info.value


# -- defaults and the shipped files ---------------------------------------------
def test_defaults():
    cfg = load_config()
    assert isinstance(cfg, TrainConfig)
    assert cfg.experiment.name == "mappo" and cfg.experiment.seed == 0
    assert cfg.experiment.stop.training_iteration == 200 and cfg.experiment.stop.time_budget is None
    assert cfg.experiment.storage_path == os.path.join(os.path.expanduser("~"), "algospace_results")
    assert cfg.experiment.checkpoint.keep == 3 and cfg.experiment.checkpoint.score == "val_sharpe"
    assert cfg.data.path is None and cfg.data.preset == "simple_markets"
    assert cfg.env == {}
    a = cfg.algorithm
    assert a.centralized_critic and a.critic_input == "state" and a.lr == 3.0e-4 and a.lambda_ == 0.95
    assert a.actor_hiddens == (64, 64) and a.critic_hiddens == (64, 64) and a.activation == "relu"
    assert a.train_batch_size == 16384 and a.minibatch_size == 16384 and a.num_epochs == 5 and cfg.resources.num_envs_per_env_runner == 64
    assert cfg.resources.num_env_runners == "auto" and cfg.resources.num_gpus_per_learner == "auto"
    assert cfg.evaluation.every_iterations == 10 and cfg.evaluation.split == "val" and cfg.evaluation.full_split
    assert cfg == TrainConfig()


def test_default_is_mappo_yaml_and_states_every_key():
    assert load_config() == load_config(CONFIG_DIR / "mappo.yaml")
    raw = yaml.safe_load((CONFIG_DIR / "mappo.yaml").read_text())

    def keys(d, prefix=""):
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict) and k != "env":
                out |= keys(v, prefix + k + ".")
        return out

    assert keys(raw) == keys(load_config().to_dict())


@pytest.mark.parametrize("path", YAML_FILES, ids=[p.name for p in YAML_FILES])
def test_every_shipped_yaml_loads(path):
    cfg = load_config(path)
    assert cfg.experiment.name == path.stem
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_shipped_files_present():
    assert {"mappo.yaml", "ippo.yaml", "quick.yaml"} <= {p.name for p in YAML_FILES}


def test_ippo_is_mappo_without_central_critic():
    mappo, ippo = load_config(CONFIG_DIR / "mappo.yaml"), load_config(CONFIG_DIR / "ippo.yaml")
    assert not ippo.algorithm.centralized_critic
    assert ippo.experiment.name == "ippo"
    assert ippo == mappo.with_overrides({"experiment.name": "ippo", "algorithm.centralized_critic": False})


def test_quick_yaml_is_quick_overrides():
    quick = load_config(CONFIG_DIR / "quick.yaml")
    assert quick == load_config(None, quick_overrides())
    assert quick.experiment.stop.training_iteration == 2
    assert quick.algorithm.train_batch_size == 512 and quick.algorithm.minibatch_size == 128
    assert quick.algorithm.actor_hiddens == (32, 32) and quick.env["episode_length"] == 256
    assert quick.evaluation.every_iterations == 1 and quick.evaluation.episodes == 1
    assert quick.evaluation.episode_length == 256 and quick.experiment.checkpoint.every_iterations == 1


def test_empty_file_and_empty_sections_are_defaults(tmp_path):
    assert load_config(_write(tmp_path, "")) == load_config()
    assert load_config(_write(tmp_path, "# only a comment\n")) == load_config()
    assert load_config(_write(tmp_path, "algorithm:\nenv:\nexperiment:\n  stop:\n")) == load_config()


def test_presets_match_the_data_package():
    from envs.data.default import PRESET_NAMES

    assert tuple(DATA_PRESETS) == tuple(PRESET_NAMES)


def test_no_ray_or_torch_on_import():
    code = (
        "import sys; import rllib_algospace.config as c; c.load_config()\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'torch')]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# -- overrides --------------------------------------------------------------------
def test_overrides_apply(tmp_path):
    cfg = load_config(
        CONFIG_DIR / "mappo.yaml",
        {
            "experiment.stop.training_iteration": 5,
            "experiment.stop.time_budget": "1h30m",
            "data.path": "x.h5",
            "algorithm.actor_hiddens": [64],
            "env.w_shared": 0.5,
            "resources.num_env_runners": 3,
        },
    )
    assert cfg.experiment.stop.training_iteration == 5
    assert cfg.experiment.stop.time_budget == 5400.0
    assert cfg.data.path == os.path.abspath("x.h5")
    assert cfg.algorithm.actor_hiddens == (64,)
    assert cfg.env == {"w_shared": 0.5}
    assert cfg.resources.num_env_runners == 3
    assert cfg.algorithm.lr == 3.0e-4  # untouched
    # a mapping given for a section replaces that section
    cfg = load_config(None, {"experiment.stop": {"training_iteration": None, "timesteps_total": 1000}})
    assert cfg.experiment.stop.timesteps_total == 1000 and cfg.experiment.stop.training_iteration is None


def test_bad_overrides_name_overrides(tmp_path):
    path = _write(tmp_path, "algorithm:\n  lr: 0.001\n")
    e = _error(path, {"algorithm.lr": -1})
    assert str(e) == "overrides: algorithm.lr: must be > 0, got -1"
    e = _error(path, {"algorithm.lrr": 1.0})
    assert str(e) == "overrides: unknown key algorithm.lrr (did you mean lr?)"
    e = _error(path, {"algorithm.lr.x": 1})
    assert str(e).startswith("overrides: algorithm.lr.x:") and path in str(e)
    e = _error(path, {"": 1})
    assert str(e).startswith("overrides: bad key")
    # an error in the file itself still names the file
    bad = _write(tmp_path, "algorithm:\n  gamma: 2\n", "bad.yaml")
    assert str(_error(bad, {"algorithm.lr": 0.1})).startswith(f"{bad}: algorithm.gamma:")


def test_parse_overrides():
    got = parse_overrides(["algorithm.lr=1e-3", "algorithm.actor_hiddens=[64, 64]", "data.path=null", "experiment.name=run one", "experiment.stop.time_budget=2h"])
    assert got == {
        "algorithm.lr": 1e-3,
        "algorithm.actor_hiddens": [64, 64],
        "data.path": None,
        "experiment.name": "run one",
        "experiment.stop.time_budget": "2h",
    }
    cfg = load_config(None, got)
    assert cfg.algorithm.lr == 1e-3 and cfg.experiment.stop.time_budget == 7200.0
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["algorithm.lr"])


def test_with_overrides_validates():
    cfg = load_config()
    assert cfg.with_overrides({"algorithm.gamma": 0.9}).algorithm.gamma == 0.9
    with pytest.raises(ConfigError, match=r"^overrides: algorithm.gamma: must be in \(0, 1\], got 0$"):
        cfg.with_overrides({"algorithm.gamma": 0})


# -- bad input: one line, naming the file and the key -------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("algorithm:\n  lr: -1\n", "algorithm.lr: must be > 0, got -1"),
        ("algorithm:\n  lrr: 0.1\n", "unknown key algorithm.lrr (did you mean lr?)"),
        ("algoritm:\n  lr: 0.1\n", "unknown key algoritm (did you mean algorithm?)"),
        ("experiment:\n  stop:\n    training_iterations: 3\n", "unknown key experiment.stop.training_iterations (did you mean training_iteration?)"),
        ("algorithm:\n  num_epochs: five\n", "algorithm.num_epochs: expected an integer, got 'five'"),
        ("algorithm:\n  num_epochs: true\n", "algorithm.num_epochs: expected an integer, got True"),
        ("algorithm:\n  num_epochs: 5.0\n", "algorithm.num_epochs: expected an integer, got 5.0"),
        ("algorithm:\n  lr: 'fast'\n", "algorithm.lr: expected a number, got 'fast'"),
        ("algorithm:\n  lr: null\n", "algorithm.lr: expected a number, got null"),
        ("algorithm:\n  centralized_critic: 1\n", "algorithm.centralized_critic: expected true or false, got 1"),
        ("algorithm:\n  gamma: 1.5\n", "algorithm.gamma: must be in (0, 1], got 1.5"),
        ("algorithm:\n  gamma: 0\n", "algorithm.gamma: must be in (0, 1], got 0"),
        ("algorithm:\n  lambda: 0\n", "algorithm.lambda_: must be in (0, 1], got 0"),
        ("algorithm:\n  clip_param: 0\n", "algorithm.clip_param: must be > 0, got 0"),
        ("algorithm:\n  entropy_coeff: -0.1\n", "algorithm.entropy_coeff: must be >= 0, got -0.1"),
        ("algorithm:\n  actor_hiddens: []\n", "algorithm.actor_hiddens: expected a non-empty list of positive integers, got []"),
        ("algorithm:\n  critic_hiddens: [64, 0]\n", "algorithm.critic_hiddens: expected a non-empty list of positive integers, got [64, 0]"),
        ("algorithm:\n  actor_hiddens: 64\n", "algorithm.actor_hiddens: expected a non-empty list of positive integers, got 64"),
        ("algorithm:\n  activation: gelu\n", "algorithm.activation: must be one of tanh, relu, got 'gelu'"),
        ("algorithm:\n  critic_input: states\n", "algorithm.critic_input: must be one of state, concat_obs, got 'states' (did you mean state?)"),
        ("algorithm:\n  train_batch_size: 256\n  minibatch_size: 512\n", "algorithm.minibatch_size (512) must not exceed algorithm.train_batch_size (256)"),
        ("algorithm: [1, 2]\n", "algorithm: expected a mapping, got [1, 2]"),
        ("resources:\n  num_env_runners: many\n", "resources.num_env_runners: expected 'auto' or an integer >= 0, got 'many'"),
        ("resources:\n  num_env_runners: -1\n", "resources.num_env_runners: expected 'auto' or an integer >= 0, got -1"),
        ("resources:\n  num_gpus_per_learner: -0.5\n", "resources.num_gpus_per_learner: expected 'auto' or a number >= 0, got -0.5"),
        ("resources:\n  max_concurrent_trials: 0\n", "resources.max_concurrent_trials: must be >= 1, got 0"),
        ("evaluation:\n  split: validation\n", "evaluation.split: must be one of train, val, test, got 'validation'"),
        ("evaluation:\n  every_iterations: -1\n", "evaluation.every_iterations: must be >= 0, got -1"),
        ("data:\n  preset: hard\n", "data.preset: must be one of simple_markets, moderate_volatility, complex_regimes, got 'hard'"),
        ("data:\n  path: s3://bucket/m.h5\n", "data.path: must be a local file (URIs are not supported), got 's3://bucket/m.h5'"),
        ("data:\n  path: 5\n", "data.path: expected a string or null, got 5"),
        ("experiment:\n  name: a/b\n", "experiment.name: must be a plain folder name (no path separators), got 'a/b'"),
        ("experiment:\n  name: ''\n", "experiment.name: must not be empty"),
        ("experiment:\n  verbose: 4\n", "experiment.verbose: must be in [0, 3], got 4"),
        ("experiment:\n  stop:\n    time_budget: soon\n", "experiment.stop.time_budget: invalid duration 'soon'"),
        ("experiment:\n  stop:\n    time_budget: -5\n", "experiment.stop.time_budget: must be > 0, got -5"),
        ("experiment:\n  stop: {training_iteration: null}\n", "experiment.stop: set at least one of training_iteration, timesteps_total, time_budget"),
        ("experiment:\n  checkpoint:\n    keep: 0\n", "experiment.checkpoint.keep: must be >= 1, got 0"),
        ("experiment:\n  wandb:\n    enabled: 'yes please'\n", "experiment.wandb.enabled: expected true or false, got 'yes please'"),
        ("evaluation:\n  every_iterations: 0\n", "experiment.checkpoint.score ('val_sharpe') is a validation metric but evaluation.every_iterations is 0"),
        ("env:\n  w_shared: 2\n", "env.w_shared: must be in [0, 1], got 2"),
        ("env:\n  w_shared: high\n", "env.w_shared: expected a number, got 'high'"),
        ("env:\n  episode_length: -1\n", "env.episode_length: must be an integer >= 0, got -1"),
        ("env:\n  random_start: 0\n", "env.random_start: expected true or false, got 0"),
        ("env:\n  w_share: 0.5\n", "unknown key env.w_share (did you mean w_shared?)"),
        ("env:\n  data: m.h5\n", "env.data: not allowed here: use data.path instead"),
        ("env:\n  split: val\n", "env.split: not allowed here"),
        ("env:\n  render_mode: ansi\n", "env.render_mode: not allowed here"),
        ("env:\n  task: complex_regimes\n", "env.task ('complex_regimes') differs from data.preset ('simple_markets')"),
        ("env:\n  tasks: {a: a.h5, b: b.h5}\n  task: c\n", "env.task: must be one of the tasks ['a', 'b'], got 'c'"),
        ("env:\n  tasks: {}\n", "env.tasks: must be a non-empty mapping"),
        ("env: [1]\n", "env: expected a mapping, got [1]"),
    ],
)
def test_bad_values(tmp_path, text, expected):
    path = _write(tmp_path, text)
    msg = str(_error(path))
    assert msg.startswith(f"{path}: {expected}"), msg


def test_error_carries_key(tmp_path):
    e = _error(_write(tmp_path, "algorithm:\n  lr: -1\n"))
    assert e.key == "algorithm.lr" and isinstance(e, ValueError)


@pytest.mark.parametrize(
    "text, line",
    [
        ("algorithm:\n  lr: [1, 2\n", None),
        ("algorithm:\n  lr: 0.1\n   gamma: 0.9\n", 3),
        ("algorithm:\n\tlr: 0.1\n", 2),
        ("algorithm:\n  lr: 0.1\n  lr: 0.2\n", 3),
    ],
)
def test_yaml_syntax_errors(tmp_path, text, line):
    path = _write(tmp_path, text)
    msg = str(_error(path))
    assert msg.startswith(f"{path}: line ") and "invalid YAML" in msg, msg
    if line is not None:
        assert msg.startswith(f"{path}: line {line},"), msg


def test_duplicate_key_named(tmp_path):
    msg = str(_error(_write(tmp_path, "algorithm:\n  lr: 0.1\n  lr: 0.2\n")))
    assert "duplicate key 'lr'" in msg


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just text\n", "42\n"])
def test_top_level_not_a_mapping(tmp_path, text):
    path = _write(tmp_path, text)
    msg = str(_error(path))
    assert msg.startswith(f"{path}: expected a mapping of sections"), msg


def test_missing_file_and_folder(tmp_path):
    assert str(_error(str(tmp_path / "nope.yaml"))) == f"{tmp_path / 'nope.yaml'}: file not found"
    assert str(_error(str(tmp_path))).startswith(f"{tmp_path}: is a folder")


def test_from_dict_errors_name_source():
    with pytest.raises(ConfigError, match=r"^<dict>: algorithm.lr: must be > 0, got 0$"):
        TrainConfig.from_dict({"algorithm": {"lr": 0}})
    with pytest.raises(ConfigError, match=r"^run.json: unknown key foo"):
        TrainConfig.from_dict({"foo": 1}, source="run.json")
    with pytest.raises(ConfigError, match=r"^<dict>: expected a mapping of sections"):
        TrainConfig.from_dict([1, 2])


# -- types, aliases, numbers --------------------------------------------------------
def test_ints_accepted_for_floats_and_yaml_exponents(tmp_path):
    cfg = load_config(_write(tmp_path, "algorithm:\n  lr: 3e-4\n  vf_clip_param: 5\n  gamma: 1\n  entropy_coeff: 1e-3\n"))
    assert cfg.algorithm.lr == 3e-4 and cfg.algorithm.entropy_coeff == 1e-3
    assert isinstance(cfg.algorithm.vf_clip_param, float) and cfg.algorithm.vf_clip_param == 5.0
    assert cfg.algorithm.gamma == 1.0


def test_lambda_alias(tmp_path):
    cfg = load_config(_write(tmp_path, "algorithm:\n  lambda: 0.9\n"))
    assert cfg.algorithm.lambda_ == 0.9
    assert load_config(_write(tmp_path, "algorithm:\n  lambda_: 0.8\n")).algorithm.lambda_ == 0.8
    assert load_config(None, {"algorithm.lambda": 0.7}).algorithm.lambda_ == 0.7
    # an override under either name replaces the file's value under the other
    assert load_config(_write(tmp_path, "algorithm:\n  lambda: 0.9\n"), {"algorithm.lambda_": 0.6}).algorithm.lambda_ == 0.6
    msg = str(_error(_write(tmp_path, "algorithm:\n  lambda: 0.9\n  lambda_: 0.9\n")))
    assert "algorithm.lambda and algorithm.lambda_ are the same key" in msg
    assert "lambda_" in {f for f in AlgorithmSection.__dataclass_fields__}


def test_auto_values(tmp_path):
    cfg = load_config(_write(tmp_path, "resources:\n  num_env_runners: 0\n  num_gpus_per_learner: 1\n"))
    assert cfg.resources.num_env_runners == 0 and cfg.resources.num_gpus_per_learner == 1.0
    assert load_config(None, {"resources.num_gpus_per_learner": 0.5}).resources.num_gpus_per_learner == 0.5


def test_storage_path(tmp_path):
    for uri in ("s3://bucket/results", "gs://b/r", "file:///tmp/r"):
        assert load_config(None, {"experiment.storage_path": uri}).experiment.storage_path == uri
    assert load_config(None, {"experiment.storage_path": "~/x"}).experiment.storage_path == os.path.join(os.path.expanduser("~"), "x")
    assert load_config(None, {"experiment.storage_path": "rel"}).experiment.storage_path == os.path.abspath("rel")
    assert load_config(None, {"experiment.storage_path": "s3://b/r"}).experiment.storage_is_uri


# -- durations ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, seconds",
    [
        ("23h30m", 84600.0),
        ("1h", 3600.0),
        ("90m", 5400.0),
        ("90min", 5400.0),
        ("45s", 45.0),
        ("1h30m15s", 5415.0),
        ("1.5h", 5400.0),
        ("1h 30m", 5400.0),
        ("2d", 172800.0),
        ("600", 600.0),
        (600, 600.0),
        (2.5, 2.5),
    ],
)
def test_parse_duration(value, seconds):
    got = parse_duration(value)
    assert got == seconds and isinstance(got, float)


@pytest.mark.parametrize("value", ["-1h", "-5", -5, 0, "0m", "", "soon", "1h30", "h", "30m1h", "inf", True, None, [1]])
def test_parse_duration_rejects(value):
    with pytest.raises(ConfigError) as info:
        parse_duration(value, key="experiment.stop.time_budget")
    msg = str(info.value)
    assert msg.startswith("experiment.stop.time_budget: ") and "\n" not in msg


def test_time_budget_in_yaml(tmp_path):
    cfg = load_config(_write(tmp_path, "experiment:\n  stop:\n    time_budget: 23h30m\n"))
    assert cfg.experiment.stop.time_budget == 84600.0
    assert load_config(_write(tmp_path, "experiment:\n  stop:\n    time_budget: 90\n")).experiment.stop.time_budget == 90.0


# -- round trip and helpers -----------------------------------------------------------
def test_round_trip(tmp_path):
    cfg = load_config(
        CONFIG_DIR / "quick.yaml",
        {
            "data.path": str(tmp_path / "m.h5"),
            "env.w_shared": 0.5,
            "env.commission_bps": 2,
            "experiment.stop.time_budget": "1h",
            "resources.num_gpus_per_learner": 1,
            "algorithm.lambda": 0.9,
        },
    )
    d = cfg.to_dict()
    assert d["algorithm"]["actor_hiddens"] == [32, 32] and isinstance(d["algorithm"]["actor_hiddens"], list)
    assert d["experiment"]["stop"]["time_budget"] == 3600.0
    assert TrainConfig.from_dict(d) == cfg
    # through YAML text too
    again = load_config(_write(tmp_path, cfg.to_yaml(), "saved.yaml"))
    assert again == cfg
    # to_dict is a copy
    d["env"]["w_shared"] = 0.0
    assert cfg.env["w_shared"] == 0.5


def test_env_config_and_env_validation(tmp_path):
    cfg = load_config(None, {"env.episode_length": 512, "data.preset": "complex_regimes", "evaluation.full_split": True})
    assert cfg.env_config("train") == {"episode_length": 512, "data": None, "split": "train", "task": "complex_regimes"}
    ev = cfg.eval_env_config()
    assert ev["split"] == "val" and ev["episode_length"] == 0 and ev["random_start"] is False
    m = cfg.market_env_config("test")
    assert m.split == "test" and m.task == "complex_regimes" and m.episode_length == 512
    tasks = load_config(None, {"env.tasks": {"easy": "a.h5", "hard": "b.h5"}})
    assert tasks.env_config()["task"] == "easy" and tasks.env["tasks"]["easy"] == os.path.abspath("a.h5")
    msg = str(_error(None, {"env.tasks": {"easy": "a.h5"}, "data.path": "m.h5"}))
    assert msg.startswith("overrides: data.path and env.tasks")


def test_check_files(tmp_path):
    missing = tmp_path / "missing.h5"
    with pytest.raises(ConfigError, match=r"data\.path: file not found"):
        load_config(None, {"data.path": str(missing)}, check_files=True)
    missing.write_bytes(b"")
    load_config(None, {"data.path": str(missing)}, check_files=True)
    load_config(check_files=True)  # default data: nothing to check


def test_stop_for_tune():
    stop = load_config(None, {"experiment.stop.timesteps_total": 10_000}).experiment.stop
    assert stop.tune_stop() == {"training_iteration": 200, "env_runners/num_env_steps_sampled_lifetime": 10_000}


def test_config_is_frozen():
    cfg = load_config()
    with pytest.raises(Exception):
        cfg.algorithm.lr = 1.0  # type: ignore[misc]


def test_warm_start_settings():
    cfg = load_config()
    assert cfg.training.warm_start == "rule" and cfg.algorithm.teacher_kl_coeff > 0 and cfg.algorithm.critic_warmup_steps > 0
    assert load_config(None, {"training.warm_start": "oracle"}).training.warm_start == "oracle"
    assert load_config(None, {"training.warm_start": "runs/ws.pt"}).training.warm_start.endswith("/runs/ws.pt")
    assert str(_error(None, {"training.warm_start": "rul"})) == (
        "overrides: training.warm_start: must be rule, oracle or a warm-start file (.pt, from `algospace pretrain`), got 'rul' (did you mean rule?)"
    )
    scratch = load_config(None, {"training.warm_start": None})  # the teacher settings then do nothing
    assert scratch.training.warm_start is None


def test_every_error_of_a_config_is_reported_at_once(tmp_path, capsys):
    path = _write(tmp_path, "algorithm:\n  lr: -1\n  gamma: 2\n  lrr: 3\nresources:\n  num_learners: -2\nevaluation:\n  split: tset\n")
    e = _error(path)
    lines = str(e).splitlines()
    assert lines == [
        f"{path}: unknown key algorithm.lrr (did you mean lr?)",
        f"{path}: algorithm.lr: must be > 0, got -1",
        f"{path}: algorithm.gamma: must be in (0, 1], got 2",
        f"{path}: resources.num_learners: must be >= 0, got -2",
        f"{path}: evaluation.split: must be one of train, val, test, got 'tset' (did you mean test?)",
    ]
    from rllib_algospace import cli

    assert cli.main(["train", "--config", path, "--no-evaluate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"algospace: error: {line}" for line in lines]


@pytest.mark.parametrize("text,key", [("a: &x\n  - *x\n", "a[0]"), ("experiment: &e\n  name: *e\n", "experiment.name"), ("env: &e\n  tasks: *e\n", "env.tasks")])
def test_a_recursive_yaml_alias_is_one_line(tmp_path, text, key):
    path = _write(tmp_path, text)
    assert str(_error(path)) == f"{path}: {key}: a YAML alias refers to itself (a recursive structure)"
    assert str(_error(path, quick_overrides())) == f"{path}: {key}: a YAML alias refers to itself (a recursive structure)"


def test_recursive_alias_in_an_override_is_one_line():
    from rllib_algospace.config import parse_overrides

    with pytest.raises(ConfigError, match=r"overrides: algorithm.actor_hiddens: a YAML alias refers to itself"):
        parse_overrides(["algorithm.actor_hiddens=&x [*x]"])
    # a long chain of aliases (no cycle) is checked in linear time
    chain = "a0: &a0 [1, 2]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]\n" for i in range(1, 40))
    import yaml

    from rllib_algospace.config import find_cycle

    assert find_cycle(yaml.safe_load(chain)) is None
