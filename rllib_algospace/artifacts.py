"""Checkpoint folders on disk: their metadata file and whether they are complete.

A checkpoint is written by the trainable into a temporary folder and then
copied by Tune into the trial folder (``checkpoint_000003``), file by file. A
kill or a full disk can stop that copy half-way, and Tune's own record of
the experiment may lag behind the folders (or name one already deleted). So a
checkpoint says what it should hold: ``algospace.json`` lists every other
file of the folder with its size (``CHECKPOINT_FILES_KEY``), and a folder is
*complete* only when every listed file is there with that size. Readers (the
best checkpoint, resume) use complete checkpoints only and say which they
skipped. No Ray here.
"""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

METADATA_FILE = "algospace.json"
CHECKPOINT_FILES_KEY = "files"
RESULT_FILES = ("result.json", "progress.csv")  # Tune's per-trial results, one line per iteration

__all__ = [
    "CHECKPOINT_FILES_KEY",
    "METADATA_FILE",
    "RESULT_FILES",
    "TUNER_STATE",
    "TUNER_STATE_COPY",
    "checkpoint_files",
    "checkpoint_problem",
    "STORAGE_ERRNOS",
    "complete_checkpoints",
    "describe_failure",
    "describe_resume",
    "keep_tuner_state",
    "newest_complete_checkpoint",
    "prepare_resume",
    "trim_cut_result_lines",
    "write_checkpoint_metadata",
    "storage_failure",
    "storage_stop",
    "write_atomically",
]


def write_atomically(path: str | os.PathLike, write) -> Path:
    """``write(fh)`` into a temporary file beside ``path`` (usual file mode),
    then rename it onto ``path``: a reader never sees half a file, and a
    failure leaves nothing behind."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def checkpoint_files(folder: str | os.PathLike) -> dict[str, int]:
    """Every file below ``folder`` but the metadata file (and temporary
    files), as ``{relative path: size in bytes}``: what ``algospace.json``
    records so that a reader can tell a complete copy from a partial one."""
    folder = Path(folder)
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(folder).as_posix()
            if rel != METADATA_FILE and not rel.endswith(".tmp"):
                out[rel] = path.stat().st_size
    return out


def write_checkpoint_metadata(checkpoint_dir: str | os.PathLike, meta: dict, *, curriculum: dict | None = None) -> None:
    """Write a checkpoint's ``algospace.json``: ``meta`` (what the algorithm
    records of itself), the curriculum stage it was trained on last (whose
    market evaluation then uses), what made each market file (so another
    session finds or remakes it) and, last, every file of the folder with
    its size (``CHECKPOINT_FILES_KEY``); written to a temporary name, then renamed."""
    from envs.data.provenance import data_record

    meta = dict(meta)
    env_config = meta["env_config"] = dict(meta.get("env_config") or {})
    if curriculum:
        meta["curriculum"] = {k: curriculum[k] for k in ("stage", "task") if k in curriculum}
        tasks = env_config.get("tasks") or {}
        if curriculum.get("task") in tasks:
            env_config["task"] = curriculum["task"]
            env_config["data"] = tasks[curriculum["task"]]
    files = {p for p in [env_config.get("data"), *(env_config.get("tasks") or {}).values()] if p}
    meta["data_records"] = {p: data_record(p) for p in sorted(files) if os.path.isfile(p)}
    meta[CHECKPOINT_FILES_KEY] = checkpoint_files(checkpoint_dir)
    write_atomically(Path(checkpoint_dir) / METADATA_FILE, lambda fh: fh.write(json.dumps(meta, indent=2, default=str).encode()))


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """None when the checkpoint folder is complete; else what is wrong with
    it, in a few words (``"module_state.pkl has 12 of 4096 bytes"``)."""
    folder = Path(folder)
    meta_path = folder / METADATA_FILE
    if not meta_path.is_file():
        return f"no {METADATA_FILE}"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable {METADATA_FILE} ({type(exc).__name__})"
    if not isinstance(meta, dict):
        return f"{METADATA_FILE} is not a JSON object"
    listed = meta.get(CHECKPOINT_FILES_KEY)
    if not isinstance(listed, dict) or not listed:
        return f"{METADATA_FILE} lists no files (written by an older version, or damaged)"
    for rel, size in sorted(listed.items()):
        path = folder / rel
        if not path.is_file():
            return f"{rel} is missing"
        actual = path.stat().st_size
        if actual != size:
            return f"{rel} has {actual} of {size} bytes"
    return None


def _iteration(folder: Path) -> int | None:
    try:
        value = json.loads((folder / METADATA_FILE).read_text()).get("training_iteration")
        return int(value) if value is not None else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def complete_checkpoints(trial_folder: str | os.PathLike) -> tuple[list[tuple[int, Path]], list[tuple[Path, str]]]:
    """The trial folder's checkpoint folders: the complete ones as
    ``(training iteration, path)``, oldest first, and the incomplete ones as
    ``(path, problem)``."""
    trial_folder = Path(trial_folder)
    complete, incomplete = [], []
    if not trial_folder.is_dir():
        return complete, incomplete
    for folder in sorted(p for p in trial_folder.glob("checkpoint_*") if p.is_dir()):
        problem = checkpoint_problem(folder)
        iteration = _iteration(folder) if problem is None else None
        if problem is None and iteration is None:
            problem = f"{METADATA_FILE} records no training iteration"
        if problem is None:
            complete.append((iteration, folder))
        else:
            incomplete.append((folder, problem))
    complete.sort(key=lambda item: (item[0], item[1].name))
    return complete, incomplete


def newest_complete_checkpoint(trial_folder: str | os.PathLike) -> tuple[int, Path] | None:
    """``(training iteration, path)`` of the trial's newest complete checkpoint, or None."""
    complete, _ = complete_checkpoints(trial_folder)
    return complete[-1] if complete else None


TUNER_STATE = "tuner.pkl"  # Tune's own record of the experiment, rewritten by every restore
TUNER_STATE_COPY = "tuner.pkl.complete"  # each state file's copy: its name + ".complete"


def _pickle_complete(path) -> bool:
    """Whether a pickle file ends with the STOP opcode (a write cut short does not)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"."
    except OSError:
        return False


def _json_complete(path) -> bool:
    try:
        json.loads(Path(path).read_text())
        return True
    except (OSError, ValueError):
        return False


# Tune's state files in an experiment folder besides ``tuner.pkl``: JSON, or
# pickles (whatever their suffix) that Tune's storage sync copies in file by
# file, so a kill can cut them short like any other file.
TUNE_JSON_STATE = ("experiment_state-*.json",)
TUNE_PICKLE_STATE = ("basic-variant-state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl", "callback-states-*.pkl")


def _same_kind(state: Path) -> list[Path]:
    """The files of the same pattern as ``state`` (one per session)."""
    for pattern in TUNE_JSON_STATE + TUNE_PICKLE_STATE:
        if state.match(pattern):
            return sorted(state.parent.glob(pattern))
    return []


def _tune_state_files(folder: Path):
    yield folder / TUNER_STATE, _pickle_complete
    for pattern in TUNE_JSON_STATE:
        for path in sorted(folder.glob(pattern)):
            yield path, _json_complete
    for pattern in TUNE_PICKLE_STATE:
        for path in sorted(folder.glob(pattern)):
            yield path, _pickle_complete


def keep_tuner_state(experiment: str | os.PathLike, *, repair: bool = True) -> str | None:
    """Tune's own state files of a local experiment (``tuner.pkl``, which
    every restore rewrites in place, the ``experiment_state-*.json``
    snapshots and the search algorithm's and callbacks' state it rewrites as
    the run goes; a cut one makes Tune drop the restore and start the
    experiment again): keep a copy of each complete one
    beside it (``.complete``); put the copy back where a kill cut the file
    short. Called before a resume and, with ``repair=False`` (copies only:
    Tune may be writing a file at that moment), after every checkpoint.
    Returns a line naming what was put back, or None."""
    import shutil

    folder = Path(experiment)
    if not folder.is_dir():
        return None
    restored = []
    for state, complete in _tune_state_files(folder):
        copy = state.with_name(state.name + ".complete")
        if complete(state):
            tmp = copy.with_name(copy.name + ".tmp")
            shutil.copyfile(state, tmp)
            os.replace(tmp, copy)
        elif not repair:
            continue
        elif complete(copy):
            shutil.copyfile(copy, state)
            restored.append(f"{state.name} (put back its last complete copy)")
        elif state.exists() and any(complete(other) for other in _same_kind(state) if other != state):
            # cut on its first write: Tune reads the newest file of its kind,
            # so set this one aside and let it read the previous session's
            os.replace(state, state.with_name(state.name + ".cut"))
            restored.append(f"{state.name} (set aside as .cut: no complete copy; Tune reads the one before)")
    if not restored:
        return None
    return f"resume: cut short by a kill while Tune wrote it, in {folder}: {'; '.join(restored)}"


def trim_cut_result_lines(experiment: str | os.PathLike) -> list[str]:
    """Cut the half-written last line off each trial's result files. Tune
    appends to ``result.json``/``progress.csv`` when it resumes a trial, so a
    line a kill cut short would otherwise run into the next iteration's line
    and both be lost to every reader. Returns a line per file trimmed."""
    lines = []
    for trial in sorted(p for p in Path(experiment).iterdir() if p.is_dir()):
        for name in RESULT_FILES:
            path = trial / name
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if not data or data.endswith(b"\n"):
                continue
            keep = data.rfind(b"\n") + 1
            os.truncate(path, keep)
            lines.append(f"resume: {trial.name}/{name}: dropped its last line, cut short by the kill ({len(data) - keep} bytes)")
    return lines


def prepare_resume(experiment: str | os.PathLike) -> list[str]:
    """Put a local experiment's files in order before Tune restores it: Tune's
    state files (``keep_tuner_state``) and the trials' result files
    (``trim_cut_result_lines``). Returns the lines saying what was repaired."""
    if not Path(experiment).is_dir():
        return []
    note = keep_tuner_state(experiment)
    return ([note] if note else []) + trim_cut_result_lines(experiment)


def describe_resume(experiment: str | os.PathLike) -> list[str]:
    """Where each trial of a local experiment continues: its newest complete
    checkpoint on disk (what ``MAPPO`` restores, whatever Tune recorded),
    and the incomplete ones it skips."""
    lines = []
    for trial in sorted(p for p in Path(experiment).iterdir() if p.is_dir() and any(p.glob("checkpoint_*"))):
        complete, incomplete = complete_checkpoints(trial)
        for folder, problem in incomplete:
            lines.append(f"resume: {trial.name}: skipping {folder.name}: incomplete ({problem})")
        if complete:
            iteration, folder = complete[-1]
            lines.append(f"resume: {trial.name} continues from {folder.name} (iteration {iteration})")
        else:
            lines.append(f"resume: {trial.name} has no complete checkpoint: it starts again from iteration 1")
    return lines


# A trial that died of one of these failed because of where it writes, not
# because of the run: say so in one line and how to continue.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def _causes(exc: BaseException | None, *, context: bool = True):
    """``exc`` and what it wraps: a Ray task error's ``cause``, then the
    exception chain (with ``context``, also what was being handled)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = getattr(exc, "cause", None) or exc.__cause__ or (exc.__context__ if context else None)


def storage_failure(exc: BaseException | None) -> OSError | None:
    """The out-of-space / read-only / permission ``OSError`` behind ``exc``, if any."""
    for e in _causes(exc):
        if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
            return e
    return None


def storage_stop(reason: str, experiment: str | os.PathLike, trial_folder: str | os.PathLike | None = None) -> str:
    """What a run stopped by its storage left and how to continue, after
    ``reason`` ("No space left on device"): the newest complete checkpoint of
    ``trial_folder`` (or of every trial of ``experiment``)."""
    if trial_folder:
        folders = [Path(trial_folder)]
    else:
        root = Path(experiment)
        folders = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("checkpoint_*"))) if root.is_dir() else []
    kept = []
    for folder in folders:
        newest = newest_complete_checkpoint(folder) if folder.is_dir() else None
        kept.append(f"{folder.name}: newest complete checkpoint {newest[1].name} (iteration {newest[0]})" if newest else f"{folder.name}: no complete checkpoint")
    return f"training stopped: {reason} ({'; '.join(kept) or 'no checkpoint was written'}); free some space (or make the folder writable), then continue with --resume"


def describe_failure(exc: BaseException, experiment: str | os.PathLike, trial_folder: str | os.PathLike | None = None, *, storage_problem: str | None = None) -> str:
    """One line for a failed trial. A storage failure (the error says so, or
    ``storage_problem`` says what is wrong with the storage now) names the
    experiment folder, the newest complete checkpoint and how to continue;
    any other failure its innermost error and where Tune kept the traceback."""
    disk = storage_failure(exc)
    if disk is not None or storage_problem:
        reason = os.strerror(disk.errno) if disk is not None else storage_problem
        return f"{experiment}: {storage_stop(reason, experiment, trial_folder)}"
    root = list(_causes(exc, context=False))[-1]
    text = str(root).strip()
    first = " ".join(text.splitlines()[0].split()) if text else ""
    traceback_file = Path(trial_folder) / "error.txt" if trial_folder else None
    where = f" (traceback: {traceback_file})" if traceback_file is not None and traceback_file.exists() else ""
    return f"{type(root).__name__}: {first}{where}"
