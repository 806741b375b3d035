"""The trained team as a plain policy: the team RLModule's actors from a
checkpoint, no Tune, no env runners, no env registration.

A checkpoint may be named by its own folder, by a trial folder or by an
experiment folder (then its newest checkpoint is used).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

METADATA_FILE = "algospace.json"


class CheckpointError(ValueError):
    """A path that holds no usable team checkpoint (one-line message)."""


def find_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder at ``path``, or the newest one below it, as an
    absolute path (RLlib reads a relative one as a URI and fails)."""
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint or folder")
    if (path / METADATA_FILE).exists():
        return path
    found = sorted(path.rglob(METADATA_FILE), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CheckpointError(f"{path}: no algospace checkpoint in it (expected a folder with {METADATA_FILE})")
    return found[-1].parent


def checkpoint_metadata(checkpoint: str | os.PathLike) -> dict:
    """The checkpoint's ``algospace.json``, with its market files located:
    a recorded path that is gone (a new Colab VM, another machine) is
    replaced by the synthetic file generated again (see
    ``envs.data.provenance``). A file that cannot be found is left as
    recorded, and ``meta["data_missing"]`` says why (see ``checkpoint_data``)."""
    checkpoint = find_checkpoint(checkpoint)
    with open(checkpoint / METADATA_FILE) as f:
        meta = json.load(f)
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
        old = " (its actions are the old operations, not target states)" if found == 2 else ""
        raise CheckpointError(
            f"{where}: checkpoint schema {found!r} is not this version's schema {CHECKPOINT_FORMAT}{old} "
            "(one team module with per-agent actors whose actions are target states); retrain it with this version"
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
    module = RLModule.from_checkpoint(str(module_dir))
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
        result = {}
        for agent, logits in self.logits(observations).items():
            e = np.exp(logits - logits.max())
            result[agent] = e / e.sum()
        return result

    def __call__(self, observations: dict) -> dict[str, int]:
        return {agent: int(np.argmax(logits)) for agent, logits in self.logits(observations).items()}
