"""The Optuna study's storage: a sqlite file, a PostgreSQL URL, or a
journal file (for network file systems such as Drive); opening it with
retries, failing trials a killed run left RUNNING, and each worker's seed."""
from __future__ import annotations

import logging
import os
import socket
import time
import zlib
from pathlib import Path
from typing import Any

from rllib_algospace.config import (
    ConfigError,
)

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------
JOURNAL_SCHEME = "journal://"
JOURNAL_SUFFIXES = (".journal", ".log")


def storage_url(value: str) -> str:
    """A storage URL as given; a plain file path -> a journal URL (a file
    ending in .journal or .log) or a sqlite URL (anything else), absolute."""
    if "://" in value:
        return value
    path = os.path.abspath(os.path.expanduser(value))
    if path.endswith(JOURNAL_SUFFIXES):
        return f"{JOURNAL_SCHEME}{path}"
    return f"sqlite:///{path}"


def _journal_storage(url: str):
    """Optuna's ``JournalStorage`` on a file: appends under a lock file,
    made for network file systems such as a mounted Google Drive, where
    SQLite's locking fails."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = url[len(JOURNAL_SCHEME) :]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))


def mask_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def rdb_storage(url: str, attempts: int = 8):
    """The study storage of ``url``: a journal file (``journal:///path``),
    else ``optuna.storages.RDBStorage``; sqlite writers wait for each other
    (60 s lock timeout) and creating the tables is retried when several
    processes open a new file at once."""
    import optuna
    import sqlalchemy.exc

    if url.startswith(JOURNAL_SCHEME):
        return _journal_storage(url)

    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
        db = url.split("///", 1)[1] if "///" in url else ""
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError) as exc:
            if attempt == attempts - 1:
                raise ConfigError(f"study storage {mask_url(url)}: {' '.join(str(exc).split())[:300]}") from None
            time.sleep(0.2 + 0.3 * attempt + (os.getpid() % 7) * 0.05)
        except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError, ImportError, ValueError) as exc:
            raise ConfigError(f"study storage {mask_url(url)}: cannot open: {' '.join(str(exc).split())[:300]}") from None
    raise AssertionError("unreachable")


def open_study(url: str, study_name: str, directions: list[str] | None = None, metrics: list[str] | None = None, sampler=None):
    """Create or load (``load_if_exists``) the study ``study_name`` in the RDB
    storage ``url``; with ``directions``/``metrics``, check that an existing
    study optimises the same objectives. Returns ``(storage, study)``."""
    import optuna
    import sqlalchemy.exc

    storage = rdb_storage(url)
    for attempt in range(8):
        try:
            if directions is None:
                study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
            else:
                study = optuna.create_study(storage=storage, study_name=study_name, directions=directions, load_if_exists=True, sampler=sampler)
            break
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError, optuna.exceptions.DuplicatedStudyError):
            if attempt == 7:
                raise
            time.sleep(0.2 + 0.3 * attempt)
        except KeyError:
            raise ConfigError(f"study storage {mask_url(url)}: no study named {study_name!r}") from None
    if directions is not None:
        have = [d.name.lower() for d in study.directions]
        if have != directions:
            raise ConfigError(f"study {study_name!r} in {mask_url(url)} has directions {have}, this search {directions}; use another search.study_name")
    if metrics is not None:
        recorded = study.user_attrs.get("metrics")
        if recorded is None:
            study.set_user_attr("metrics", list(metrics))
        elif list(recorded) != list(metrics):
            raise ConfigError(f"study {study_name!r} in {mask_url(url)} optimises {recorded}, this search {list(metrics)}; use another search.study_name")
    return storage, study


def fail_stale_trials(url: str, study_name: str, experiment: str) -> None:
    """After a finished search, Optuna trials of this experiment still RUNNING
    (handed out just before a kill and not run after all) are marked FAIL."""
    from optuna.trial import TrialState

    try:
        storage, study = open_study(url, study_name)
        study_id = storage.get_study_id_from_name(study_name)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get("experiment") == experiment:
                trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
                storage.set_trial_user_attr(trial_id, "failure", "handed out before an interruption and not run")
                study.tell(t.number, state=TrialState.FAIL)
    except Exception as exc:  # bookkeeping only
        logger.warning("could not clean up stale trials: %s", exc)


def worker_seed(base_seed: int, shared: bool, run: int = 0) -> tuple[int, str]:
    """This process's sampler seed and worker name. A private study samples
    with the base seed (reproducible); a shared one adds a hash of host, pid
    and run number so parallel workers do not repeat each other."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    if not shared:
        return int(base_seed), worker
    return (int(base_seed) + zlib.crc32(f"{worker}:{run}".encode())) % (2**31 - 1), worker


