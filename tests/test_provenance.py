"""A checkpoint finds its market data in another session (no Ray): synthetic
data generated again bit-identically when the recorded path is gone; a
user's file by path and sha256, with one line naming --data otherwise."""
from __future__ import annotations

import json
import shutil

import h5py
import pytest

from envs.data.dataset import synth_market_file
from envs.data.errors import DataError
from envs.data.provenance import data_record, file_sha256, locate
from rllib_algospace.checkpoints import CheckpointError, checkpoint_data, checkpoint_metadata


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("ALGOSPACE_DATA_DIR", str(folder))
    return folder


def test_synthetic_data_is_made_again_when_gone(tmp_path, cache):
    path = synth_market_file(tmp_path / "vm1" / "simple.h5", preset="simple_markets", n_bars=3000, seed=7)
    record = data_record(path)
    assert record["synthetic"] == {"preset": "simple_markets", "seed": 7, "bars": 3000, "htf_multiple": 6, "schema_version": 1}
    assert locate(record) == str(path.resolve())  # still there: used as is
    shutil.rmtree(tmp_path / "vm1")  # the next Colab VM
    again = locate(record)
    assert again.startswith(str(cache)) and file_sha256(again) == record["sha256"]
    other = synth_market_file(tmp_path / "htf4.h5", preset="simple_markets", n_bars=3000, seed=7, htf_multiple=4)
    record4 = data_record(other)
    other.unlink()
    assert file_sha256(locate(record4)) == record4["sha256"]  # a non-default multiple too


def test_a_users_file_is_found_by_path_and_checksum(tmp_path, market_file):
    mine = tmp_path / "eurusd.h5"
    shutil.copy(market_file, mine)
    with h5py.File(mine, "r+") as f:
        f.attrs["source"] = "csv:EURUSD_5m.csv"
    record = data_record(mine)
    assert "synthetic" not in record and locate(record) == str(mine.resolve())
    with h5py.File(mine, "r+") as f:
        f.attrs["has_volume"] = not bool(f.attrs["has_volume"])
    with pytest.raises(DataError, match=r"eurusd\.h5: the market file this team was trained on has changed since training \(sha256 differs\); pass the same data with --data FILE"):
        locate(record)
    mine.unlink()
    with pytest.raises(DataError, match=r"is missing; pass the same data with --data FILE"):
        locate(record)


def test_checkpoint_metadata_relocates_its_data(tmp_path, cache, market_file):
    path = synth_market_file(tmp_path / "vm1" / "simple.h5", preset="simple_markets", n_bars=3000, seed=8)
    user = tmp_path / "user.h5"
    shutil.copy(market_file, user)
    with h5py.File(user, "r+") as f:
        f.attrs["source"] = "csv:mine.csv"
    records = {str(path.resolve()): data_record(path), str(user.resolve()): data_record(user)}
    ck = tmp_path / "checkpoint_000001"
    ck.mkdir()
    meta = {"format": 3, "env_config": {"data": str(path.resolve()), "episode_length": 64}, "evaluation_env_config": {"data": str(path.resolve())}, "data_records": {str(path.resolve()): records[str(path.resolve())]}}
    (ck / "algospace.json").write_text(json.dumps(meta))
    shutil.rmtree(tmp_path / "vm1")
    found = checkpoint_metadata(ck)
    assert found["env_config"]["data"].startswith(str(cache)) and found["evaluation_env_config"]["data"] == found["env_config"]["data"]
    assert checkpoint_data(found) == found["env_config"]["data"] and "data_missing" not in found

    meta["env_config"]["data"] = str(user.resolve())
    meta["data_records"] = {str(user.resolve()): records[str(user.resolve())]}
    (ck / "algospace.json").write_text(json.dumps(meta))
    user.unlink()
    found = checkpoint_metadata(ck)
    with pytest.raises(CheckpointError, match=r"checkpoint_000001: .*user\.h5: the market file this team was trained on is missing; pass the same data with --data FILE") as err:
        checkpoint_data(found)
    assert "\n" not in str(err.value)
    assert checkpoint_data(found, "other.h5") == "other.h5"  # --data wins
