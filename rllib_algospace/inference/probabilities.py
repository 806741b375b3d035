"""Action probabilities of a team, and their mean over ensemble members.

Defined once here, at the Ray-free bottom of the package, and used by the live
path (``inference.policy``), the checkpoint and ensemble policies
(``checkpoints``, ``ensemble_policy``) and export's parity check, so all of
them rank actions the same way.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def softmax(logits) -> np.ndarray:
    """Probabilities from logits along the last axis, in float64 (stable: the
    maximum is taken off first)."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def mean_probabilities(per_member: Sequence[Mapping[str, np.ndarray]], weights: Sequence[float] | None = None) -> dict[str, np.ndarray]:
    """``{agent: sum_m w_m * p_m[agent]}`` over members' action probabilities
    (``weights`` None: the uniform mean). Members must agree on each agent's
    action count."""
    if not per_member:
        raise ValueError("no ensemble members to average")
    if weights is not None and len(weights) != len(per_member):
        raise ValueError(f"{len(weights)} weights for {len(per_member)} ensemble members")
    out = {}
    for agent in per_member[0]:
        rows = [np.asarray(p[agent], dtype=np.float64) for p in per_member]
        if len({r.shape for r in rows}) != 1:
            raise ValueError(f"ensemble members have different action counts for agent {agent!r}: {[r.shape[-1] for r in rows]}")
        out[agent] = np.mean(rows, axis=0) if weights is None else sum(w * r for w, r in zip(weights, rows))
    return out
