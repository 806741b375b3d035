"""The trained team as a plain policy: the team RLModule's actors from a
checkpoint, no Tune, no env runners, no env registration.

A checkpoint may be named by its own folder, by a trial folder or by an
experiment folder (then its newest checkpoint is used).
"""
from __future__ import annotations

import csv
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rllib_algospace.artifacts import METADATA_FILE, RESULT_FILES, checkpoint_problem
from rllib_algospace.inference.probabilities import softmax


class CheckpointError(ValueError):
    """A path that holds no usable team checkpoint (one-line message)."""


RUN_FILE = "algospace_run.json"  # in an experiment folder: the resolved config and versions (training.write_run_record)
DEFAULT_SCORE, DEFAULT_MODE = "val_sharpe", "max"


def finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def trial_scores(trial_dir: str | os.PathLike, score: str = DEFAULT_SCORE) -> dict[int, float]:
    """``{training_iteration: score}`` from a trial's ``result.json`` (one JSON
    per line) or ``progress.csv``; empty when neither is there."""
    trial_dir = Path(trial_dir)
    out: dict[int, float] = {}
    json_lines, csv_rows = RESULT_FILES
    path = trial_dir / json_lines
    if path.exists():
        with open(path) as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a half-written last line
                it, value = row.get("training_iteration"), row.get(score)
                if it is not None and finite_number(value):
                    out[int(it)] = float(value)
        if out:
            return out
    path = trial_dir / csv_rows
    if path.exists():
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    it, value = int(float(row.get("training_iteration", ""))), float(row.get(score, ""))
                except (TypeError, ValueError):  # a half-written last row has missing fields
                    continue
                if math.isfinite(value):
                    out[it] = value
    return out


def run_score(path: str | os.PathLike) -> tuple[str, str]:
    """The score and mode that rank an experiment's checkpoints: its
    configured ``experiment.checkpoint.score``/``score_mode``, read from the
    run record in the folder or above it; ``val_sharpe``/``max`` without one."""
    path = Path(path)
    for folder in [path, *list(path.parents)[:3]]:
        record = folder / RUN_FILE
        if record.is_file():
            try:
                ck = json.loads(record.read_text())["config"]["experiment"]["checkpoint"]
                return str(ck["score"]), str(ck["score_mode"])
            except (OSError, ValueError, KeyError, TypeError):
                break
    return DEFAULT_SCORE, DEFAULT_MODE


@dataclass
class RankedCheckpoint:
    path: Path
    trial: Path
    iteration: int | None
    score: float | None  # the recorded score at that iteration (None: not recorded)
    note: str


def best_checkpoints(path: str | os.PathLike, *, score: str | None = None, mode: str | None = None) -> list[RankedCheckpoint]:
    """The best checkpoint of each trial under ``path``: the one whose
    iteration has the best recorded score (the configured one, as Tune's
    results report it), else the latest. One definition, used by train,
    evaluate, select and export."""
    root = Path(path).expanduser().absolute()
    if score is None or mode is None:
        found_score, found_mode = run_score(root)
        score, mode = score or found_score, mode or found_mode
    sign = 1.0 if mode == "max" else -1.0
    checkpoints = [root] if (root / METADATA_FILE).exists() else sorted(p.parent for p in root.rglob(METADATA_FILE)) if root.is_dir() else []
    by_trial: dict[Path, list[Path]] = {}
    for ckpt in checkpoints:
        by_trial.setdefault(ckpt.parent, []).append(ckpt)
    out = []
    for trial, ckpts in sorted(by_trial.items()):
        scores = trial_scores(trial, score)
        rows = []
        for ckpt in ckpts:
            problem = incomplete_checkpoint(ckpt)
            if problem:
                print(f"warning: skipping {ckpt}: incomplete checkpoint ({problem})", file=sys.stderr)
                continue
            try:
                it = json.loads((ckpt / METADATA_FILE).read_text()).get("training_iteration")
            except (OSError, ValueError):
                continue
            rows.append((ckpt, it, scores.get(int(it)) if it is not None else None))
        if not rows:
            continue
        scored = [r for r in rows if r[2] is not None]
        if scored:
            ckpt, it, value = max(scored, key=lambda r: (sign * r[2], r[1] or 0))
            note = f"best of {len(rows)} checkpoint(s) by {score}"
        else:
            ckpt, it, value = max(rows, key=lambda r: (r[1] or 0, str(r[0])))
            note = f"no {score} recorded: latest of {len(rows)} checkpoint(s)"
        out.append(RankedCheckpoint(ckpt, trial, it, value, note))
    return out


def incomplete_checkpoint(checkpoint: str | os.PathLike) -> str | None:
    """What makes a checkpoint of this version's format incomplete (a copy
    cut short by a kill or a full disk), or None. A checkpoint of another
    format is left to ``require_format``, which names its schema."""
    from rllib_algospace.mappo.modules import CHECKPOINT_FORMAT

    try:
        found = json.loads((Path(checkpoint) / METADATA_FILE).read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return None  # an unreadable algospace.json: checkpoint_metadata names it
    return checkpoint_problem(checkpoint) if found == CHECKPOINT_FORMAT else None


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder at ``path``, or the best one below it (a trial or
    experiment folder: ``best_checkpoints``, then the best trial by the same
    score), as an absolute path (RLlib reads a relative one as a URI and fails)."""
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint or folder")
    if (path / METADATA_FILE).exists():
        problem = incomplete_checkpoint(path)
        if problem:
            raise CheckpointError(f"{path}: incomplete checkpoint ({problem}); name its trial folder to use the best complete one, or resume the run")
        return path
    ranked = best_checkpoints(path)
    if not ranked:
        raise CheckpointError(f"{path}: no algospace checkpoint in it (expected a folder with {METADATA_FILE})")
    _, mode = run_score(path)
    sign = 1.0 if mode == "max" else -1.0
    scored = [r for r in ranked if r.score is not None]
    if scored:
        return max(scored, key=lambda r: sign * r.score).path
    return max(ranked, key=lambda r: r.path.stat().st_mtime).path


def checkpoint_metadata(checkpoint: str | os.PathLike) -> dict:
    """The checkpoint's ``algospace.json``, with its market files located:
    a recorded path that is gone (a new Colab VM, another machine) is
    replaced by the synthetic file generated again (see
    ``envs.data.provenance``). A file that cannot be found is left as
    recorded, and ``meta["data_missing"]`` says why (see ``checkpoint_data``)."""
    checkpoint = find_checkpoint(checkpoint)
    try:
        meta = json.loads((checkpoint / METADATA_FILE).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{checkpoint / METADATA_FILE}: unreadable checkpoint metadata ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{checkpoint / METADATA_FILE}: unreadable checkpoint metadata (expected a JSON object, got {type(meta).__name__})")
    records = meta.get("data_records") or {}
    if records:
        from envs.data.errors import DataError
        from envs.data.provenance import locate

        found = {}
        for recorded, record in records.items():
            try:
                found[recorded] = locate(record)
            except DataError as exc:
                meta.setdefault("data_missing", f"{checkpoint}: {exc}")
        for key in ("env_config", "evaluation_env_config"):
            cfg = meta.get(key) or {}
            if cfg.get("data") in found:
                cfg["data"] = found[cfg["data"]]
            if isinstance(cfg.get("tasks"), dict):
                cfg["tasks"] = {k: found.get(v, v) for k, v in cfg["tasks"].items()}
    return meta


# Env settings a checkpoint records that an evaluation sets itself (data, split, episodes ...).
NOT_CARRIED = frozenset({"data", "split", "episode_length", "random_start", "render_mode", "infos", "task", "tasks", "in_memory"})


def checkpoint_env_overrides(env_config: dict) -> dict:
    """The env settings of a checkpoint that an evaluation must keep (costs,
    leverage, rewards ...): all but ``NOT_CARRIED``."""
    return {k: v for k, v in env_config.items() if k not in NOT_CARRIED}


def checkpoint_data(meta: dict, override: str | os.PathLike | None = None) -> str | None:
    """The market file to run a checkpoint on: ``override`` (``--data``),
    else the one it was trained on; raises ``CheckpointError`` (one line
    naming the file and ``--data``) when that is gone or changed."""
    if override:
        return str(override)
    if meta.get("data_missing"):
        raise CheckpointError(meta["data_missing"])
    return (meta.get("env_config") or {}).get("data")


def require_format(meta: dict, where: str) -> None:
    """Refuse a checkpoint of another schema with one line (never misread it)."""
    from rllib_algospace.mappo.modules import CHECKPOINT_FORMAT

    found = meta.get("format")
    if found != CHECKPOINT_FORMAT:
        old = {2: " (its actions are the old operations, not target states)", 3: " (its networks do not scale their inputs by train-split statistics)"}.get(found, "")
        raise CheckpointError(
            f"{where}: checkpoint schema {found!r} is not this version's schema {CHECKPOINT_FORMAT}{old} "
            "(one team module with per-agent actors whose actions are target states and whose inputs are scaled); retrain it with this version"
        )


def load_team_module(checkpoint: str | os.PathLike):
    """The checkpoint's ``TeamModule`` (actors and critic), in eval mode."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    checkpoint = find_checkpoint(checkpoint)
    meta = checkpoint_metadata(checkpoint)
    require_format(meta, str(checkpoint))
    module_dir = checkpoint / meta["module_dir"]
    if not module_dir.exists():
        raise CheckpointError(f"{checkpoint}: the team module is missing ({module_dir})")
    import pickle

    try:
        module = RLModule.from_checkpoint(str(module_dir))
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError, ImportError, RuntimeError) as exc:
        raise CheckpointError(f"{module_dir}: the team module cannot be loaded ({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); the checkpoint is damaged or from another version") from None
    module.eval()
    return module


def load_team_modules(checkpoint: str | os.PathLike) -> dict:
    """``{agent: actor}`` from a checkpoint: each a torch module mapping the
    agent's own observations ``(B, obs_dim)`` to logits."""
    module = load_team_module(checkpoint)
    return {agent: module.actors[agent] for agent in module.agents}


class ModuleTeamPolicy:
    """Greedy team policy over the actors: ``policy(observations) -> actions``.

    ``observations`` are the env's plain per-agent vectors; the actors read only
    their own observation (never the global state).
    """

    def __init__(self, modules: dict, *, greedy: bool = True):
        import torch

        self._torch = torch
        self.modules = modules
        self.greedy = greedy

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike) -> "ModuleTeamPolicy":
        return cls(load_team_modules(checkpoint))

    @classmethod
    def from_warm_start(cls, path: str | os.PathLike) -> "ModuleTeamPolicy":
        """The cloned actors of a warm-start file (``algospace pretrain``)."""
        from rllib_algospace.teacher import build_actors, load_warm_start

        return cls(build_actors(load_warm_start(path)))

    def logits(self, observations: dict) -> dict[str, np.ndarray]:
        torch = self._torch
        out = {}
        with torch.no_grad():
            for agent, obs in observations.items():
                x = torch.as_tensor(np.asarray(obs, dtype=np.float32)[None])
                out[agent] = self.modules[agent](x)[0].numpy()
        return out

    def probabilities(self, observations: dict) -> dict[str, np.ndarray]:
        return {agent: softmax(logits) for agent, logits in self.logits(observations).items()}

    def __call__(self, observations: dict) -> dict[str, int]:
        return {agent: int(np.argmax(logits)) for agent, logits in self.logits(observations).items()}
