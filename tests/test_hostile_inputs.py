"""Hostile inputs, generated: byte flips across a market file, damaged CSV
exports and bad config values. Each must meet the contract: the documented
exception type, one line naming the file and the row or key, and nothing
left behind; a few go through the CLI (exit code 2, no traceback). Bundles
and live bars have their own generated suites (``test_inference``,
``test_export``). No Ray."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from envs.data.csv_import import read_bars_csv
from envs.data.dataset import prepare_csv_market_file, synth_market_file
from envs.data.errors import DataError
from envs.data.reader import MarketData
from envs.data.store import MATRICES, validate_market_file

FLIPS = 150
GOOD_CSV_ROWS = 400


@pytest.fixture(scope="module")
def small_market(tmp_path_factory):
    return str(synth_market_file(tmp_path_factory.mktemp("hostile") / "small.h5", preset="simple_markets", n_bars=3000, seed=5))


def _read_everything(path: str) -> None:
    """What a command does with a market file: open it, its statistics, every column."""
    market = MarketData(path)
    try:
        for name in MATRICES:
            market.feature_stats(name)
            market.features(name).read(0, None)
        for field in ("open", "high", "low", "close", "regime_label", "htf_visible", "timestamp"):
            market.read_base(field)
    finally:
        market.close()


def _one_line_naming(exc: BaseException, *names: str) -> None:
    text = str(exc)
    assert "\n" not in text, text
    assert "Traceback" not in text
    for name in names:
        assert name in text, (name, text)


@pytest.mark.parametrize("k", range(FLIPS))
def test_a_flipped_byte_anywhere_in_a_market_file_is_named_or_harmless(small_market, tmp_path, k):
    data = bytearray(open(small_market, "rb").read())
    offset = int(np.linspace(0, len(data) - 1, FLIPS)[k])
    data[offset] ^= 0xFF
    path = tmp_path / "flipped.h5"
    path.write_bytes(bytes(data))
    try:
        validate_market_file(path)
        _read_everything(str(path))  # a flip in unused bytes: still readable, consistently
    except DataError as exc:
        _one_line_naming(exc, str(path))


# -- CSV exports ------------------------------------------------------------------------
def _good_csv() -> list[list[str]]:
    rng = np.random.default_rng(0)
    price = 100.0
    rows = [["timestamp", "open", "high", "low", "close", "volume"]]
    for i in range(GOOD_CSV_ROWS):
        close = price * float(np.exp(rng.normal(0, 0.002)))
        high, low = max(price, close) * 1.001, min(price, close) * 0.999
        stamp = f"2024-01-{1 + (i * 5) // 1440:02d} {((i * 5) % 1440) // 60:02d}:{(i * 5) % 60:02d}"
        rows.append([stamp, f"{price:.4f}", f"{high:.4f}", f"{low:.4f}", f"{close:.4f}", str(int(rng.integers(1, 1000)))])
        price = close
    return rows


BAD_CELLS = ["abc", "nan", "inf", "-inf", "-1", "0", "1e400", "--5", "1.2.3", "12abc"]
PRICE_COLUMNS = {"open": 1, "high": 2, "low": 3, "close": 4}
CSV_CASES = (
    [("cell", col, token) for col in PRICE_COLUMNS for token in BAD_CELLS]
    + [("cell", "timestamp", token) for token in ("yesterday", "2024-13-45 25:61", "", "0x10", "not a date")]
    + [("cell", "volume", token) for token in ("abc", "-5", "nan")]
    + [("drop_column", col, None) for col in ("timestamp", "open", "high", "low", "close")]
    + [("duplicate_row", None, None), ("swap_high_low", None, None), ("close_above_high", None, None), ("open_1000x", None, None),
       ("mixed_lengths", None, None), ("header_only", None, None), ("binary", None, None), ("thousands_far", None, None)]
)


def _mutate(rows: list[list[str]], case) -> tuple[str, int | None]:
    """The CSV text and the 1-based file line the problem is on (None: not a row's)."""
    kind, col, token = case
    rows = [list(r) for r in rows]
    line = 150  # file line (header is line 1)
    r = line - 1
    if kind == "cell":
        rows[r][(["timestamp", "open", "high", "low", "close", "volume"]).index(col)] = token
    elif kind == "drop_column":
        i = rows[0].index(col)
        rows = [row[:i] + row[i + 1 :] for row in rows]
        line = None
    elif kind == "duplicate_row":
        rows[r][0] = rows[r - 1][0]
    elif kind == "swap_high_low":
        rows[r][2], rows[r][3] = rows[r][3], rows[r][2]
    elif kind == "close_above_high":
        rows[r][4] = f"{float(rows[r][2]) * 1.01:.4f}"
    elif kind == "open_1000x":
        rows[r][1] = f"{float(rows[r][2]) * 1000:.4f}"
    elif kind == "mixed_lengths":
        rows[r][0] = rows[r][0][:-2] + f"{(int(rows[r][0][-2:]) - 4) % 60:02d}"  # a bar 1 minute after the one before
    elif kind == "header_only":
        rows = rows[:1]
        line = None
    elif kind == "binary":
        return "\x00\x01\x02garbage\xff" * 50, None
    elif kind == "thousands_far":
        rows[r][2] = f'"{int(float(rows[r][2]))},{int(float(rows[r][2]) * 1000) % 1000:03d}"'
    return "\n".join(",".join(row) for row in rows) + "\n", line


@pytest.mark.parametrize("case", CSV_CASES, ids=[f"{k}-{c}-{t}" for k, c, t in CSV_CASES])
def test_a_damaged_csv_export_is_refused_with_its_line(tmp_path, case):
    text, line = _mutate(_good_csv(), case)
    csv = tmp_path / "export.csv"
    csv.write_text(text, encoding="utf-8", errors="surrogateescape")
    out = tmp_path / "market.h5"
    try:
        prepare_csv_market_file(csv, out)
    except DataError as exc:
        _one_line_naming(exc, str(csv))
        if line is not None and exc.row is not None:
            assert abs(exc.row - line) <= 1, (exc.row, line, str(exc))
    else:
        if case[0] == "cell" and case[1] == "volume" and case[2] == "-5":
            pytest.fail("a negative volume was accepted")
        assert case == ("cell", "volume", None)  # never: every case here is damaged
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".market")], os.listdir(tmp_path)


def test_the_good_csv_itself_is_accepted(tmp_path):
    csv = tmp_path / "export.csv"
    csv.write_text("\n".join(",".join(r) for r in _good_csv()) + "\n")
    assert len(read_bars_csv(csv)) == GOOD_CSV_ROWS


# -- configs ---------------------------------------------------------------------------------
BAD_CONFIG_VALUES = [
    ("algorithm.lr", "fast"), ("algorithm.lr", -1), ("algorithm.gamma", 1.5), ("algorithm.lambda_", 0), ("algorithm.clip_param", -0.2),
    ("algorithm.train_batch_size", 0), ("algorithm.minibatch_size", "all"), ("algorithm.num_epochs", 0), ("algorithm.actor_hiddens", [0]),
    ("algorithm.actor_hiddens", "big"), ("algorithm.activation", "sigmoid"), ("algorithm.scale_inputs", "maybe"), ("algorithm.critic_input", "everything"),
    ("algorithm.teacher_kl_coeff", -1), ("algorithm.entropy_coeff", "x"), ("algorithm.grad_clip", 0), ("algorithm.critic_warmup_steps", -5),
    ("env.episode_length", -1), ("env.commission_bps", -1), ("env.reward", "profit"), ("env.max_leverage", 0), ("env.equity_floor", 1.5),
    ("env.no_such_key", 1), ("env.split", "future"), ("env.dsr_eta", 2),
    ("experiment.stop.training_iteration", -3), ("experiment.seed", "one"), ("experiment.checkpoint.keep", -1),
    ("training.warm_start", "teacher"), ("training.warm_start_steps", -1),
    ("resources.num_env_runners", "many"), ("evaluation.every_iterations", -1), ("no_such_section.key", 1),
]


@pytest.mark.parametrize("key,value", BAD_CONFIG_VALUES, ids=[f"{k}={v!r}" for k, v in BAD_CONFIG_VALUES])
def test_a_bad_config_value_is_named_by_its_key(tmp_path, key, value):
    import yaml

    from rllib_algospace.config import ConfigError, load_config

    doc: dict = {}
    node = doc
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    _one_line_naming(info.value, str(path))
    named = key.split(".")[-1].rstrip("_") if not key.startswith("no_such_section") else "no_such_section"
    assert named in str(info.value), str(info.value)


def test_the_suite_has_at_least_200_hostile_inputs():
    assert FLIPS + len(CSV_CASES) + len(BAD_CONFIG_VALUES) >= 200


# -- a few through the CLI: exit code 2, one line, no traceback, nothing left ---------------------
def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "rllib_algospace.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_the_cli_names_a_flipped_market_file_and_a_damaged_csv(small_market, tmp_path):
    data = bytearray(open(small_market, "rb").read())
    data[len(data) // 2] ^= 0xFF
    flipped = tmp_path / "flipped.h5"
    flipped.write_bytes(bytes(data))
    result = _cli("data", "validate", str(flipped), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and str(flipped) in result.stderr and len(result.stderr.strip().splitlines()) == 1

    text, _ = _mutate(_good_csv(), ("close_above_high", None, None))
    csv = tmp_path / "export.csv"
    csv.write_text(text)
    result = _cli("data", "prepare", "--csv", str(csv), "--out", str(tmp_path / "m.h5"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "row 150" in result.stderr and "impossible bar" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["export.csv", "flipped.h5"]
    shutil.rmtree(tmp_path / "__pycache__", ignore_errors=True)
