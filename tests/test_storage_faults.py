"""Full and read-only disks: every command that writes stops with one line
naming the folder (exit 2) and leaves nothing behind; training stopped by a
full disk continues with --resume from the newest complete checkpoint.

Real small tmpfs mounts where this machine allows them (root, as in CI);
otherwise the same checks with the failure injected."""
import collections
import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import TINY_TRAINING, mount_tmpfs, unmount


@pytest.fixture
def read_only_disk(tmp_path):
    folder = tmp_path / "ro"
    if mount_tmpfs(folder, "1m", read_only=True):
        yield folder
        unmount(folder)
        return
    # no mount here: a folder the checks see as on a read-only file system
    folder.mkdir()
    real_access, real_statvfs = os.access, os.statvfs

    class ReadOnly:
        def __init__(self, st):
            self._st = st

        def __getattr__(self, name):
            return os.ST_RDONLY if name == "f_flag" else getattr(self._st, name)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "access", lambda p, mode, **kw: False if str(p).startswith(str(folder)) and mode & os.W_OK else real_access(p, mode, **kw))
        mp.setattr(os, "statvfs", lambda p: ReadOnly(real_statvfs(p)) if str(p).startswith(str(folder)) else real_statvfs(p))
        yield folder


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_every_writing_command_refuses_a_read_only_disk(read_only_disk, market_file, capsys):
    from rllib_algospace import cli

    commands = {
        "synth": ["data", "synth", "--out", str(read_only_disk / "m.h5"), "--bars", "3000"],
        "train": ["train", "--quick", "--data", market_file, "--storage", str(read_only_disk / "results"), "--name", "x", "--no-evaluate"],
    }
    for name, argv in commands.items():
        assert cli.main(argv) == 2, name
        line = _one_line(capsys.readouterr().err)
        assert line.startswith(f"algospace: error: {read_only_disk}") and "is not writable (read-only file system)" in line, (name, line)
    assert not any(read_only_disk.iterdir())


def test_prepare_refuses_a_read_only_and_a_full_disk(read_only_disk, tmp_path, monkeypatch, capsys):
    from test_cli_data import _write_hourly_csv

    from rllib_algospace import cli

    csv = _write_hourly_csv(tmp_path / "bars.csv")
    assert cli.main(["data", "prepare", "--csv", str(csv), "--out", str(read_only_disk / "m.h5")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"algospace: error: {read_only_disk}: cannot write {read_only_disk / 'm.h5'}: ") and "is not writable (read-only file system)" in line
    assert not any(read_only_disk.iterdir())

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    out = tmp_path / "full" / "m.h5"
    assert cli.main(["data", "prepare", "--csv", str(csv), "--out", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"algospace: error: {out.parent}: cannot write {out}: not enough free space: needs about ") and line.endswith("MB, 0.0 MB free")
    assert not out.exists() and (not out.parent.exists() or not any(out.parent.iterdir()))


def test_export_refuses_a_read_only_disk(tiny_checkpoint, read_only_disk):
    from envs.data.errors import DataError
    from rllib_algospace.export import ExportError, export_bundle

    with pytest.raises((ExportError, DataError), match=r"is not writable \(read-only file system\)"):
        export_bundle(tiny_checkpoint, read_only_disk / "bundle")
    assert not any(read_only_disk.iterdir())


def test_train_refuses_a_full_disk_before_ray_starts(market_file, tmp_path, monkeypatch, capsys):
    from rllib_algospace import cli

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    storage = tmp_path / "results"
    assert cli.main(["train", "--quick", "--data", market_file, "--storage", str(storage), "--name", "x", "--no-evaluate"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"algospace: error: {storage / 'x'}: cannot write the experiment: not enough free space: needs about ") and line.endswith("MB, 0.0 MB free")
    assert not storage.exists()


def test_a_trial_killed_by_a_full_disk_is_named_in_one_line(tmp_path):
    """The error Tune hands back (a Ray task error around pyarrow's OSError)
    becomes one line naming the experiment and the checkpoint to continue from."""
    from rllib_algospace.artifacts import describe_failure

    class RayTaskErrorLike(Exception):
        def __init__(self, cause):
            super().__init__("ray::MAPPO.save() (pid=1)\n  File ...\nOSError: ...")
            self.cause = cause

    error = RayTaskErrorLike(OSError(28, "Error writing bytes to file. Detail: [errno 28] No space left on device"))
    trial = tmp_path / "exp" / "MAPPO_x_00000"
    trial.mkdir(parents=True)
    text = describe_failure(error, tmp_path / "exp", trial)
    assert text == f"{tmp_path / 'exp'}: training stopped: No space left on device (MAPPO_x_00000: no complete checkpoint); free some space (or make the folder writable), then continue with --resume"
    other = describe_failure(RayTaskErrorLike(ValueError("bad value\nsecond line")), tmp_path / "exp", trial)
    assert other == "ValueError: bad value"


ITERATIONS = 10


@pytest.mark.slow
def test_a_disk_filling_up_mid_training_stops_with_one_line_and_resume_continues(market_file, tmp_path):
    """A real disk (a 64 MB tmpfs) fills up after the first checkpoint:
    `train` stops with exit 2 and one line naming the experiment and the
    newest complete checkpoint; once space is freed, --resume continues from
    it (the half-written checkpoint skipped) to the end."""
    from rllib_algospace.artifacts import complete_checkpoints

    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "64m"):
        pytest.skip("cannot mount a tmpfs here (not root): the injected checks above cover the messages")
    try:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        sets = [f"{k}={v}" for k, v in TINY_TRAINING.items() if not isinstance(v, list)] + ["training.warm_start=null"]
        args = [sys.executable, "-m", "rllib_algospace.cli", "train", "--quick", "--data", market_file, "--storage", str(disk), "--name", "full", "--stop-iters", str(ITERATIONS), "--no-evaluate", *sets]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        filler = disk / "filler"
        try:
            import time

            deadline = time.time() + 300
            while time.time() < deadline and proc.poll() is None:
                trials = list((disk / "full").glob("MAPPO_*"))
                if trials and complete_checkpoints(trials[0])[0]:
                    with open(filler, "wb") as fh:  # fill the disk to the last byte
                        block = b"\0" * (1 << 20)
                        try:
                            while True:
                                fh.write(block)
                                fh.flush()
                        except OSError:
                            pass
                    break
                time.sleep(0.2)
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert filler.exists(), "training ended before the disk was filled:\n" + out[-2000:] + err[-2000:]
        assert proc.returncode == 2, out[-3000:] + err[-3000:]
        line = _one_line(err)
        trial = next((disk / "full").glob("MAPPO_*"))
        newest = complete_checkpoints(trial)[0][-1]
        # Tune reports the failed save (No space left on device) or, having half written its own files, fails itself (the disk is then found full)
        assert line.startswith("algospace: error: ") and f"{disk / 'full'}: training stopped: " in line, line
        assert re.search(r"(No space left on device|not enough free space: needs about [\d.]+ MB, 0\.0 MB free) \(", line), line
        assert f"({trial.name}: newest complete checkpoint {newest[1].name} (iteration {newest[0]}))" in line, line
        assert line.endswith("free some space (or make the folder writable), then continue with --resume"), line

        filler.unlink()
        done = subprocess.run(args + ["--resume"], env=env, capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert f"continues from {newest[1].name} (iteration {newest[0]})" in done.stdout, done.stdout[-3000:]
        import json

        results = [json.loads(line) for line in (trial / "result.json").read_text().splitlines() if line.strip().endswith("}")]
        assert results[-1]["training_iteration"] == ITERATIONS
        assert results[-1]["num_env_steps_sampled_lifetime"] == ITERATIONS * TINY_TRAINING["algorithm.train_batch_size"]  # the step counter carried on
        first_after = next(r for r in results if r.get("iterations_since_restore") == 1 and r["training_iteration"] > 1)
        assert first_after["training_iteration"] == newest[0] + 1
    finally:
        unmount(disk)
