"""The HDF5 store: layout, checksums, validation, determinism, and the streaming reader."""
import hashlib
import multiprocessing as mp
import pickle

import h5py
import numpy as np
import pytest

from envs.data.dataset import synth_market_file
from envs.data.errors import DataError
from envs.data.reader import MarketData
from envs.data.store import CHUNK_ROWS, SCHEMA_VERSION, validate_market_file


def _sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_layout_and_filters(market_file):
    with h5py.File(market_file, "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        for key in ("base/close", "htf/close", "features/regime", "features/structure", "features/tactical"):
            ds = f[key]
            assert ds.fletcher32 and ds.compression == "gzip" and ds.shuffle and ds.chunks is not None
        assert f["features/regime"].shape[1] == 12
        assert f["features/structure"].shape[1] == 8
        assert f["features/tactical"].shape[1] == 7
        names = [n.decode() if isinstance(n, bytes) else n for n in f["features/structure"].attrs["names"]]
        assert names[0] == "mlmi_value"
        bounds = f.attrs["split_bounds"]
        n = f["base/close"].shape[0]
        assert bounds[0][0] == f.attrs["first_valid"] and bounds[2][1] == n
        sizes = [b - a for a, b in bounds]
        assert sizes[0] / sum(sizes) == pytest.approx(0.70, abs=0.01)


def test_validate_ok(market_file):
    summary = validate_market_file(market_file)
    assert summary["chunks_checked"] > 10


def test_same_seed_same_bytes(tmp_path):
    a = synth_market_file(tmp_path / "a.h5", preset="moderate_volatility", n_bars=3_000, seed=5)
    b = synth_market_file(tmp_path / "b.h5", preset="moderate_volatility", n_bars=3_000, seed=5)
    c = synth_market_file(tmp_path / "c.h5", preset="moderate_volatility", n_bars=3_000, seed=6)
    assert _sha(a) == _sha(b) != _sha(c)


def test_corrupted_chunk_is_caught(tmp_path):
    path = synth_market_file(tmp_path / "x.h5", preset="simple_markets", n_bars=3_000, seed=1)
    with h5py.File(path, "r") as f:
        info = f["features/tactical"].id.get_chunk_info(0)
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset + info.size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="features/tactical: chunk checksum"):
        validate_market_file(path)


def test_not_a_market_file(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_text("hello")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        validate_market_file(bad)
    with pytest.raises(DataError, match="no such file"):
        validate_market_file(tmp_path / "missing.h5")


def test_wrong_schema_version(tmp_path, market_file):
    import shutil

    copy = tmp_path / "old.h5"
    shutil.copy(market_file, copy)
    with h5py.File(copy, "a") as f:
        f.attrs["schema_version"] = 0
    with pytest.raises(DataError, match="schema version"):
        validate_market_file(copy)


def test_reader_windows_match_the_file(market_file):
    data = MarketData(market_file, cache_mb=0.0, read_ahead=0)
    with h5py.File(market_file, "r") as f:
        tactical = f["features/tactical"][:]
        regime = f["features/regime"][:]
        close = f["base/close"][:]
    arr = data.features("tactical")
    for stop in (60, CHUNK_ROWS - 1, CHUNK_ROWS, CHUNK_ROWS + 1, CHUNK_ROWS + 59, len(tactical)):
        np.testing.assert_array_equal(arr.window(stop, 60), tactical[stop - 60 : stop])
    np.testing.assert_array_equal(data.features("regime").window(500, 96), regime[404:500])
    for i in (0, CHUNK_ROWS - 1, CHUNK_ROWS, len(close) - 1):
        assert data.base("close").row(i) == close[i]
    with pytest.raises(IndexError):
        arr.window(10, 60)


def test_reader_cache_is_bounded_and_reads_ahead(market_file):
    data = MarketData(market_file, cache_mb=0.0, read_ahead=1)
    arr = data.base("close")
    for i in range(arr.n_rows):
        arr.row(i)
    blocks = -(-arr.n_rows // CHUNK_ROWS)
    assert len(arr._cache) <= 2
    assert arr.reads <= -(-blocks // 2)  # each read fetched a block and the next one


def test_reader_pickles_without_its_handle(market_file):
    data = MarketData(market_file)
    data.base("close").row(5)
    clone = pickle.loads(pickle.dumps(data))
    assert clone._file is None
    assert clone.base("close").row(5) == data.base("close").row(5)


def _sum_windows(path):
    data = MarketData(path)
    arr = data.features("tactical")
    return float(sum(arr.window(stop, 60).sum() for stop in range(60, arr.n_rows, 7)))


def test_several_processes_read_one_file(market_file):
    expected = _sum_windows(market_file)
    ctx = mp.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.map(_sum_windows, [market_file] * 3)
    assert results == [expected] * 3


_INHERITED = {}


def _row_in_child(i):
    return float(_INHERITED["data"].base("close").row(i))


def test_forked_reader_reopens(market_file):
    """A reader inherited through fork must not use the parent's h5py handle."""
    data = MarketData(market_file)
    data.base("close").row(1)  # the parent opens its handle
    _INHERITED["data"] = data
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        results = pool.map(_row_in_child, [9_000, 9_001])
    assert results == [float(data.base("close").row(9_000)), float(data.base("close").row(9_001))]


@pytest.mark.parametrize(
    "edit,row,problem",
    [
        (lambda f: f["base/close"].__setitem__(123, np.nan), 123, "close nan"),
        (lambda f: f["base/close"].__setitem__(77, f["base/high"][77] * 1.01), 77, "impossible bar"),
        (lambda f: f["base/open"].__setitem__(900, f["base/high"][900] * 1000), 900, "impossible bar"),
        (lambda f: f["base/low"].__setitem__(5, -1.0), 5, "impossible bar"),
    ],
)
def test_every_reader_refuses_impossible_bars(tmp_path, market_file, edit, row, problem):
    """A file edited after validation (h5py writes fresh checksums): the env,
    hence demo/train/evaluate, stop with the file and the row."""
    import shutil

    from envs import algospace_market

    copy = tmp_path / "edited.h5"
    shutil.copy(market_file, copy)
    with h5py.File(copy, "r+") as f:
        edit(f)
    with pytest.raises(DataError, match=rf"edited\.h5: row {row}: impossible bar") as err:
        MarketData(copy)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match=rf"row {row}"):
        algospace_market.parallel_env(data=str(copy))
    from rllib_algospace import cli

    assert cli.main(["demo", "--data", str(copy)]) == 2


def test_a_foreign_hdf5_file_is_named(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.attrs["schema_version"] = 1
        f.create_dataset("x", data=np.arange(3))
    with pytest.raises(DataError, match=r"foreign\.h5: not a market file of this package: attribute 'source' is missing"):
        MarketData(foreign)


def test_a_full_disk_is_refused_before_writing(tmp_path, monkeypatch, capsys):
    """HDF5 can crash outright on a full disk: synth and prepare check the
    space first, say how much is needed, and leave nothing behind."""
    import collections
    import shutil

    from rllib_algospace import cli

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    out = tmp_path / "full" / "m.h5"
    assert cli.main(["data", "synth", "--out", str(out), "--bars", "3000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"algospace: error: {out.parent}: cannot write {out}: not enough free space: needs about ") and err.endswith("MB, 0.0 MB free")
    assert not out.exists() and (not out.parent.exists() or not any(out.parent.iterdir()))


def test_train_statistics_are_checked_and_computed_for_older_files(tmp_path, market_file):
    """``validate`` recomputes the stored train-split statistics (a file whose
    statistics saw other rows is named); a file written before they were
    stored gets the same values computed by the reader."""
    import shutil

    from envs.data.reader import MarketData
    from envs.data.store import MATRICES, STATS_ATTRS

    reference = MarketData(market_file)
    expected = {name: reference.feature_stats(name) for name in MATRICES}
    reference.close()

    tampered = tmp_path / "tampered.h5"
    shutil.copy(market_file, tampered)
    with h5py.File(tampered, "r+") as f:
        ds = f["features/regime"]
        ds.attrs["train_mean"] = ds[:].mean(axis=0).astype(np.float32)  # every row, val and test included
        ds.attrs["train_rows"] = np.array([0, ds.shape[0]], dtype=np.int64)
    with pytest.raises(DataError, match=r"/features/regime train statistics cover rows \[0, \d+\], but the train split sees rows"):
        validate_market_file(tampered)

    older = tmp_path / "older.h5"
    shutil.copy(market_file, older)
    with h5py.File(older, "r+") as f:
        for name in MATRICES:
            for key in STATS_ATTRS:
                del f[f"features/{name}"].attrs[key]
    validate_market_file(older)
    market = MarketData(older)
    for name in MATRICES:
        for got, want in zip(market.feature_stats(name), expected[name]):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    market.close()


def test_building_a_market_file_reports_each_stage(tmp_path):
    from envs.data.dataset import BUILD_STAGES

    stages = []
    synth_market_file(tmp_path / "s.h5", preset="simple_markets", n_bars=2000, seed=1, progress=stages.append)
    assert stages == ["generating bars", *BUILD_STAGES]
