"""The Colab/Drive helpers, off Colab: a local project folder, the GPU report,
the session time budget and resume detection."""
import time

import pytest

from rllib_algospace import colab
from rllib_algospace.config import load_config


def test_local_project_layout(tmp_path):
    session = colab.setup("Proj", local_root=tmp_path / "Proj", verbose=False)
    assert not session.colab
    assert (tmp_path / "Proj" / "results").is_dir() and (tmp_path / "Proj" / "data").is_dir()
    assert session.study_storage == f"sqlite:///{tmp_path / 'Proj' / 'optuna.db'}"
    assert session.data_file().endswith("data/market.h5")
    assert "not in Colab" in session.summary()


def test_gpu_report_says_plainly_when_none():
    report = colab.gpu_report()
    if not report["gpu"]:
        assert report["text"].startswith("no GPU")
    else:
        assert report["memory_gb"] > 0


def test_time_budget_from_session_limit():
    start = 1_000_000.0
    budget = colab.time_budget_seconds(session_hours=24, margin_minutes=30, started_at=start, now=start + 2 * 3600)
    assert budget == pytest.approx(24 * 3600 - 2 * 3600 - 30 * 60)
    assert colab.time_budget_seconds(1, 30, started_at=start, now=start + 3600) == 60.0  # never below a minute
    assert colab.time_budget_seconds(24, 30) <= 24 * 3600 - 30 * 60 + 1
    assert colab.session_started_at() <= time.time()


def test_overrides_load_into_a_train_config(tmp_path):
    session = colab.setup("Proj", local_root=tmp_path, verbose=False)
    cfg = load_config(None, session.train_overrides("mappo"))
    assert cfg.experiment.storage_path == session.storage_path
    assert cfg.experiment.stop.time_budget == pytest.approx(session.time_budget_s)
    assert not session.can_resume("mappo")


def test_not_in_colab_here():
    assert colab.in_colab() is False
    assert colab.mount_drive() is None


def test_colab_budget_counts_from_the_vm_start(monkeypatch):
    """A runtime restart starts a new kernel, not a new VM: in Colab the
    session's clock is the VM's boot time, never the kernel's start."""
    psutil = pytest.importorskip("psutil")
    assert colab.session_started_at(colab=True) == pytest.approx(psutil.boot_time())
    assert colab.session_started_at(colab=False) == pytest.approx(psutil.Process().create_time())
    assert colab.session_started_at(colab=True) <= colab.session_started_at(colab=False)
    assert colab.DEFAULT_SESSION_HOURS <= 12  # fits a free Colab session


def test_quick_and_full_runs_are_different_experiments(tmp_path):
    quick = colab.setup("Proj", local_root=tmp_path, quick=True, verbose=False)
    full = colab.setup("Proj", local_root=tmp_path, verbose=False)
    assert quick.train_overrides("mappo")["experiment.name"] == "mappo_quick"
    assert full.train_overrides("mappo")["experiment.name"] == "mappo"
    (quick.experiment_dir("mappo") / "experiment_state-x.json").parent.mkdir(parents=True)
    assert quick.experiment_dir("mappo") != full.experiment_dir("mappo")
    assert not full.can_resume("mappo")  # switching QUICK off never resumes the smoke run
