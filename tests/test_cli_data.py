"""`algospace data ...` and `algospace demo`: outputs, and bad input as one line with exit code 2."""
import json
import os
import subprocess
import sys

import pytest

from rllib_algospace.cli import main

GOOD_CSV = "Date,Time,Open,High,Low,Close,Volume\n"


def _write_hourly_csv(path, n=3_000, newest_first=True):
    import numpy as np

    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    rows = []
    t0 = np.datetime64("2022-01-03T00:00")
    day = 0
    ts = []
    t = t0
    while len(ts) < n:  # weekdays only: weekend gaps
        if (t.astype("datetime64[D]").view("int64") - 4) % 7 < 5:
            ts.append(t)
        t = t + np.timedelta64(1, "h")
    for i in range(n):
        o = close[i - 1] if i else close[0]
        hi, lo = max(o, close[i]) * 1.001, min(o, close[i]) * 0.999
        stamp = str(ts[i])
        d, tm = stamp[:10], stamp[11:16]
        d = f"{d[8:10]}.{d[5:7]}.{d[0:4]}"
        rows.append(f"{d},{tm},{o:.5f},{hi:.5f},{lo:.5f},{close[i]:.5f},{int(rng.integers(100, 1000))}\n")
    if newest_first:
        rows.reverse()
    path.write_text("Exported by SomeVendor 2024\n" + GOOD_CSV + "".join(rows))
    del day
    return path


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_synth_validate_info(tmp_path, capsys):
    out_file = tmp_path / "m.h5"
    code, out, _ = _run(["data", "synth", "--out", str(out_file), "--preset", "complex_regimes", "--bars", "5000", "--seed", "3"], capsys)
    assert code == 0 and out_file.exists() and "wrote" in out
    code, out, _ = _run(["data", "validate", str(out_file)], capsys)
    assert code == 0 and out.startswith("ok:") and "chunks checked" in out
    code, out, _ = _run(["data", "info", str(out_file)], capsys)
    assert code == 0 and "synthetic:complex_regimes:seed=3" in out and "train split" in out and "mlmi_value" in out
    code, out, _ = _run(["data", "info", "--json", str(out_file)], capsys)
    info = json.loads(out)
    assert info["base_bars"] == 5000 and info["htf_multiple"] == 6 and set(info["splits"]) == {"train", "val", "test"}


def test_prepare_vendor_csv(tmp_path, capsys):
    csv = _write_hourly_csv(tmp_path / "eurusd_h1.csv")
    out_file = tmp_path / "eurusd.h5"
    code, out, err = _run(["data", "prepare", "--csv", str(csv), "--out", str(out_file), "--htf-multiple", "4"], capsys)
    assert code == 0, err
    code, out, _ = _run(["data", "info", "--json", str(out_file)], capsys)
    info = json.loads(out)
    assert info["base_freq_seconds"] == 3600 and info["htf_freq_seconds"] == 4 * 3600
    assert info["source"] == "csv:eurusd_h1.csv" and not info["has_labels"]
    assert _run(["data", "validate", str(out_file)], capsys)[0] == 0


BAD_CSVS = {
    "empty": ("", "empty"),
    "missing_column": ("Date,Time,Open,High,Close\n02.01.2024,00:00,1,2,1.5\n", "low"),
    "bad_timestamp": (GOOD_CSV + "02.01.2024,00:00,1,2,0.5,1.5,10\nnot-a-date,00:05,1,2,0.5,1.5,10\n", "row 3"),
    "duplicate": (GOOD_CSV + "02.01.2024,00:00,1,2,0.5,1.5,10\n02.01.2024,00:00,1,2,0.5,1.5,10\n", "duplicate"),
    "high_below_low": (GOOD_CSV + "02.01.2024,00:00,1,2,0.5,1.5,10\n02.01.2024,00:05,1,0.4,0.5,0.45,10\n", "row 3"),
    "non_positive": (GOOD_CSV + "02.01.2024,00:00,1,2,0.5,1.5,10\n02.01.2024,00:05,0,2,0.5,1.5,10\n", "row 3"),
    "nan": (GOOD_CSV + "02.01.2024,00:00,1,2,0.5,1.5,10\n02.01.2024,00:05,1,nan,0.5,1.5,10\n", "row 3"),
    "too_few_bars": (GOOD_CSV + "".join(f"02.01.2024,{h:02d}:00,1,2,0.5,1.5,10\n" for h in range(24)), "fewer bars than the longest window needs"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_csv_one_line_exit_2_no_output(tmp_path, capsys, case):
    text, needle = BAD_CSVS[case]
    csv = tmp_path / f"{case}.csv"
    csv.write_text(text)
    out_file = tmp_path / "out.h5"
    code, out, err = _run(["data", "prepare", "--csv", str(csv), "--out", str(out_file)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("algospace: error: ")
    assert str(csv) in err and needle in err.lower() if needle.islower() else needle in err
    assert not out_file.exists()
    assert list(tmp_path.glob("*.tmp")) == [] and list(tmp_path.glob(".out.h5*")) == []


def test_validate_bad_file_exit_2(tmp_path, capsys):
    bad = tmp_path / "junk.h5"
    bad.write_bytes(b"\x00" * 100)
    code, _, err = _run(["data", "validate", str(bad)], capsys)
    assert code == 2 and str(bad) in err and err.count("\n") == 1


def test_demo_prints_trading_metrics(market_file, capsys):
    code, out, _ = _run(["demo", "--data", market_file, "--episode-length", "500"], capsys)
    assert code == 0
    for key in ("total_return", "sharpe", "max_drawdown", "win_rate", "consensus_rate", "regime_accuracy"):
        assert key in out
    # money with its unit, to the cent
    import re

    assert re.search(r"^  initial_equity +100,000\.00 \(account currency\)$", out, flags=re.M), out
    assert re.search(r"^  final_equity +[\d,]+\.\d\d \(account currency\)$", out, flags=re.M), out
    assert re.search(r"^  costs +[\d,]+\.\d\d \(account currency\)$", out, flags=re.M), out


def test_console_script_exit_code(tmp_path):
    env = dict(os.environ)
    bad = tmp_path / "none.csv"
    result = subprocess.run(
        [sys.executable, "-m", "rllib_algospace.cli", "data", "prepare", "--csv", str(bad), "--out", str(tmp_path / "x.h5")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "none.csv" in result.stderr


def test_version(capsys):
    from rllib_algospace import __version__
    from rllib_algospace.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"algospace {__version__}"


def test_synth_and_prepare_refuse_to_overwrite_and_never_replace_the_csv(tmp_path, capsys):
    out_file = tmp_path / "m.h5"
    out_file.write_bytes(b"keep me")
    code, _, err = _run(["data", "synth", "--out", str(out_file), "--bars", "3000"], capsys)
    assert code == 2 and err.strip() == f"algospace: error: {out_file}: already exists (pass --overwrite to replace it)"
    assert out_file.read_bytes() == b"keep me"
    code, out, _ = _run(["data", "synth", "--out", str(out_file), "--bars", "3000", "--overwrite"], capsys)
    assert code == 0 and out_file.read_bytes() != b"keep me"

    csv = _write_hourly_csv(tmp_path / "eurusd_h1.csv")
    before = csv.read_bytes()
    code, _, err = _run(["data", "prepare", "--csv", str(csv), "--out", str(csv), "--overwrite"], capsys)
    assert code == 2 and "--out names an input CSV" in err and err.count("\n") == 1
    assert csv.read_bytes() == before  # the user's CSV is untouched
    code, _, err = _run(["data", "prepare", "--csv", str(csv), "--out", str(out_file)], capsys)
    assert code == 2 and "already exists" in err


def test_train_into_an_existing_experiment_stops_unless_resume_or_overwrite(tmp_path, capsys, monkeypatch):
    from rllib_algospace import cli, training

    runs = []

    def fake_train(cfg, resume=False):  # stands in for the Tune run
        runs.append(resume)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", fake_train)
    storage = tmp_path / "results"
    (storage / "mine" / "MAPPO_0001").mkdir(parents=True)
    base = ["train", "--storage", str(storage), "--name", "mine", "--no-evaluate"]
    assert cli.main(base) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"algospace: error: {storage}/mine: an experiment of this name exists; continue it with --resume, or replace it with --overwrite"
    assert runs == [] and (storage / "mine" / "MAPPO_0001").exists()
    assert cli.main([*base, "--resume"]) == 130 and runs == [True]
    assert (storage / "mine" / "MAPPO_0001").exists()
    assert cli.main([*base, "--overwrite"]) == 130 and runs == [True, False]
    assert not (storage / "mine").exists() and "removed the old experiment" in capsys.readouterr().out
    assert cli.main(["train", "--storage", str(storage), "--name", "new", "--no-evaluate"]) == 130  # a new name just trains


def test_train_takes_key_value_overrides_checked_like_the_yaml(tmp_path, capsys, monkeypatch):
    from rllib_algospace import cli, training

    seen = []

    def fake_train(cfg, resume=False):
        seen.append(cfg)
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train", fake_train)
    base = ["train", "--storage", str(tmp_path), "--no-evaluate"]
    assert cli.main([*base, "algorithm.lr=1e-3", "env.episode_length=512", "--name", "kv"]) == 130
    capsys.readouterr()
    cfg = seen[-1]
    assert cfg.algorithm.lr == 1e-3 and cfg.env["episode_length"] == 512 and cfg.experiment.name == "kv"
    assert cli.main([*base, "algorithm.lr=-1", "--name", "bad"]) == 2
    assert capsys.readouterr().err.strip() == "algospace: error: overrides: algorithm.lr: must be > 0, got -1"
    assert cli.main([*base, "algorithm.lrr=1", "--name", "bad"]) == 2
    assert "unknown key algorithm.lrr (did you mean lr?)" in capsys.readouterr().err
    assert cli.main([*base, "lr", "--name", "bad"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    # the user's YAML is checked as written, even with --quick (whose overrides would hide a bad value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("algorithm:\n  train_batch_size: -5\n")
    assert cli.main([*base, "--quick", "--config", str(bad), "--name", "q"]) == 2
    assert f"{bad}: algorithm.train_batch_size" in capsys.readouterr().err


def test_output_into_a_closed_pipe_ends_quietly(market_file):
    """`algospace data info FILE | head`: the reader goes away; no traceback."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "rllib_algospace.cli", "data", "info", market_file], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # like `head` that has read enough
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()


def test_library_noise_is_hidden_unless_verbose(monkeypatch):
    import logging
    import warnings

    from rllib_algospace import cli

    monkeypatch.delenv("RAY_AIR_NEW_OUTPUT", raising=False)
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    with warnings.catch_warnings():
        cli.quiet_libraries(with_ray=False)
        assert logging.getLogger("ray.rllib").getEffectiveLevel() == logging.ERROR
        assert os.environ["RAY_AIR_NEW_OUTPUT"] == "0" and "DeprecationWarning" in os.environ["PYTHONWARNINGS"]
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("old API", DeprecationWarning)
        assert caught == [] or all(w.category is not DeprecationWarning for w in caught)
    assert cli.build_parser().parse_args(["--verbose", "demo"]).verbose


def test_training_progress_line_has_total_rate_and_eta(capsys, monkeypatch):
    pytest.importorskip("ray")
    from types import SimpleNamespace

    from rllib_algospace import tune_callbacks
    from rllib_algospace.config import load_config

    cb = tune_callbacks.driver_callbacks(load_config(), time_budget_s=None, stop_iterations=200)[0]
    cb.setup()
    trial = SimpleNamespace(trial_id="abc_00000")
    for it in (1, 2):
        cb.on_trial_result(it, [], trial, {"training_iteration": it, "num_env_steps_sampled_lifetime": 16384 * it, "env_runners": {}})
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("[abc_00000] iter    2/200 | steps    32,768 (")
    assert "/s) | team return n/a | train Sharpe n/a | val Sharpe n/a |" in lines[-1] and ", ETA " in lines[-1] and "nan" not in lines[-1]


def test_tune_trials_bar_counts_done_trials_and_pickles(monkeypatch):
    pytest.importorskip("ray")
    import pickle

    import cloudpickle

    from rllib_algospace import tune_callbacks
    from rllib_algospace.evaluation import runner

    updates = []

    class Bar:
        def __init__(self, total, desc, unit="it"):
            updates.append(("new", total, desc))

        def update(self, n):
            updates.append(("update", n))

        def close(self):
            updates.append(("close",))

    monkeypatch.setattr(runner, "progress_bar", Bar)
    cb = tune_callbacks.trials_progress_callback(3)
    cb.setup()
    cb.on_trial_complete(1, [], None)
    cb.on_trial_error(2, [], None)
    cb.on_experiment_end([])
    assert updates == [("new", 3, "trials done"), ("update", 1), ("update", 1), ("close",)]
    again = pickle.loads(cloudpickle.dumps(cb))  # as Tune saves its callbacks with the experiment: no bar in it
    assert "_bar" not in again.__dict__
    again.on_trial_complete(3, [], None)  # a resumed search makes a new bar
