"""Google Colab and Drive: one project folder for results, data and the Optuna
study, a time budget from the session limit, and resume of the latest run.

Off Colab the same calls work on a local folder, so a notebook runs the same
on a laptop:

>>> from rllib_algospace import colab
>>> session = colab.setup("AlgoSpace")          # mounts Drive only in Colab
>>> overrides = session.train_overrides("mappo") # storage, time budget, resume
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DRIVE_MOUNT = "/content/drive"
DRIVE_ROOT = "/content/drive/MyDrive"
DEFAULT_SESSION_HOURS = 12.0  # the longest free Colab runtime (Pro: pass session_hours=24)
DEFAULT_MARGIN_MINUTES = 30.0  # left for the final checkpoint and the copy to Drive


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules or (importlib.util.find_spec("google.colab") is not None and os.path.isdir("/content"))


def mount_drive(mount_point: str = DRIVE_MOUNT) -> str | None:
    """Mount Google Drive (Colab only; elsewhere nothing happens and None is returned)."""
    if not in_colab():
        return None
    if not os.path.isdir(os.path.join(mount_point, "MyDrive")):
        from google.colab import drive  # type: ignore[import-not-found]

        drive.mount(mount_point)
    return mount_point


def gpu_report() -> dict:
    """The GPU torch sees, with its memory; says plainly when there is none."""
    try:
        import torch
    except ImportError:
        return {"gpu": False, "text": "no GPU: torch is not installed"}
    if not torch.cuda.is_available():
        return {"gpu": False, "text": "no GPU: training runs on the CPU (in Colab: Runtime > Change runtime type > GPU)"}
    props = torch.cuda.get_device_properties(0)
    total_gb = props.total_memory / 1e9
    return {
        "gpu": True,
        "name": props.name,
        "memory_gb": round(total_gb, 2),
        "count": torch.cuda.device_count(),
        "text": f"GPU: {props.name}, {total_gb:.1f} GB ({torch.cuda.device_count()} visible)",
    }


def session_started_at(colab: bool | None = None) -> float:
    """Epoch seconds at which this session started. In Colab the VM's boot
    time: Colab's limit counts from the VM's start, and restarting the runtime
    (a new kernel) must not reset it. Elsewhere the kernel process's start."""
    try:
        import psutil

        if in_colab() if colab is None else colab:
            return float(psutil.boot_time())
        return psutil.Process(os.getpid()).create_time()
    except Exception:
        return time.time()


def time_budget_seconds(session_hours: float = DEFAULT_SESSION_HOURS, margin_minutes: float = DEFAULT_MARGIN_MINUTES, started_at: float | None = None, now: float | None = None) -> float:
    """Seconds a run may take in this session: the session limit, less what the
    session has used already, less a safety margin (never below a minute)."""
    started_at = session_started_at() if started_at is None else started_at
    now = time.time() if now is None else now
    left = session_hours * 3600.0 - (now - started_at) - margin_minutes * 60.0
    return max(60.0, left)


@dataclass
class ProjectSession:
    """Where a project's files live and how long this session may train."""

    root: Path
    colab: bool
    gpu: dict
    time_budget_s: float
    notes: list[str] = field(default_factory=list)
    quick: bool = False  # smoke runs: their experiments get their own names (see experiment_name)

    def experiment_name(self, experiment: str) -> str:
        """The folder name of ``experiment`` in this session: a quick run's
        is ``<name>_quick``, so a full run never resumes a finished smoke run."""
        return f"{experiment}_quick" if self.quick else experiment

    def experiment_dir(self, experiment: str) -> Path:
        return Path(self.storage_path) / self.experiment_name(experiment)

    @property
    def storage_path(self) -> str:
        return str(self.root / "results")

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def data_file(self, name: str = "market.h5") -> str:
        return str(self.data_dir / name)

    @property
    def study_storage(self) -> str:
        """The Optuna study shared by every notebook using this folder: on
        Drive (a network file system, where SQLite's locking fails) a journal
        file, ``optuna.journal``; on one machine a SQLite file, ``optuna.db``."""
        if self.colab:
            return f"journal://{self.root / 'optuna.journal'}"
        return f"sqlite:///{self.root / 'optuna.db'}"

    def can_resume(self, experiment: str) -> bool:
        """True when ``experiment`` has a run under ``storage_path`` to continue."""
        path = self.experiment_dir(experiment)
        if not (path / "tuner.pkl").exists() and not list(path.glob("experiment_state*.json")):
            return False
        from ray import tune

        return tune.Tuner.can_restore(str(path))

    def train_overrides(self, experiment: str) -> dict:
        """Config overrides for ``algospace train``/``load_config``: storage in
        the project folder, the session's time budget. Pair with
        ``resume=session.can_resume(experiment)``."""
        return {
            "experiment.storage_path": self.storage_path,
            "experiment.name": self.experiment_name(experiment),
            "experiment.stop.time_budget": self.time_budget_s,
        }

    def summary(self) -> str:
        where = "Google Drive" if self.colab else "local folder"
        lines = [f"project folder ({where}): {self.root}", self.gpu["text"], f"time budget for this session: {self.time_budget_s / 3600:.2f} h"]
        return "\n".join(lines + self.notes)


def setup(
    project: str = "AlgoSpace",
    *,
    local_root: str | os.PathLike | None = None,
    session_hours: float = DEFAULT_SESSION_HOURS,
    margin_minutes: float = DEFAULT_MARGIN_MINUTES,
    quick: bool = False,
    verbose: bool = True,
) -> ProjectSession:
    """Detect Colab, mount Drive there, report the GPU, and lay out the project
    folder (``MyDrive/<project>`` in Colab, else ``local_root`` or
    ``~/algospace/<project>``) with ``results/`` and ``data/``."""
    colab = in_colab()
    notes = []
    if colab:
        mount_drive()
        root = Path(DRIVE_ROOT) / project
    else:
        root = Path(local_root).expanduser() if local_root else Path.home() / "algospace" / project
        notes.append("not in Colab: using a local folder (Drive is not mounted)")
    (root / "results").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(parents=True, exist_ok=True)
    session = ProjectSession(
        root=root.resolve(),
        colab=colab,
        gpu=gpu_report(),
        time_budget_s=time_budget_seconds(session_hours, margin_minutes, started_at=session_started_at(colab)),
        notes=notes,
        quick=quick,
    )
    if verbose:
        print(session.summary())
    return session
