"""A trained ensemble as a team: its manifest (``ensemble.json``), the
ensemble policy (members' action probabilities averaged per agent, then
greedy), the members' diversity, and the ensemble's evaluation and text
report. ``rllib_algospace.ensemble`` trains ensembles and writes the
manifest; evaluation, selection and export read it here. Imports neither Ray
nor torch at import time.
"""
from __future__ import annotations

import itertools
import json
import math
import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from rllib_algospace.inference.probabilities import mean_probabilities

MANIFEST_FILE = "ensemble.json"
MANIFEST_KIND = "algospace-ensemble"

__all__ = ["MANIFEST_FILE", "MANIFEST_KIND", "EnsembleTeamPolicy", "diversity", "evaluate_ensemble", "find_manifest", "format_diversity", "format_ensemble_report", "format_members", "manifest_members", "read_manifest"]


# ---------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------
def find_manifest(path: str | os.PathLike) -> Path | None:
    """The ensemble manifest at ``path`` (the file, or a folder holding
    ``ensemble.json``), or ``None`` when ``path`` is no ensemble."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / MANIFEST_FILE
        return p if p.is_file() else None
    if p.is_file() and p.suffix == ".json":
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            return p if p.name == MANIFEST_FILE else None  # read_manifest says what is wrong
        return p if isinstance(doc, dict) and doc.get("kind") == MANIFEST_KIND else None
    return None


def read_manifest(path: str | os.PathLike) -> tuple[Path, dict]:
    """``(manifest path, document)``; raises ``CheckpointError`` (one line)."""
    from rllib_algospace.checkpoints import CheckpointError

    manifest = find_manifest(path)
    if manifest is None:
        raise CheckpointError(f"{path}: no ensemble manifest ({MANIFEST_FILE}) there")
    try:
        doc = json.loads(manifest.read_text())
    except ValueError as exc:
        raise CheckpointError(f"{manifest}: not a valid ensemble manifest ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != MANIFEST_KIND or not isinstance(doc.get("members"), list):
        raise CheckpointError(f"{manifest}: not an ensemble manifest (expected kind {MANIFEST_KIND!r} and a members list)")
    return manifest, doc


def manifest_members(manifest: Path, doc: dict) -> list[tuple[dict, Path]]:
    from rllib_algospace.checkpoints import CheckpointError

    out = []
    for entry in doc["members"]:
        ckpt = entry.get("checkpoint")
        if not ckpt:
            print(f"warning: ensemble member {entry.get('name', '?')} has no checkpoint ({entry.get('error') or 'not trained'}); left out")
            continue
        p = Path(ckpt)
        out.append((entry, p if p.is_absolute() else manifest.parent / p))
    if not out:
        raise CheckpointError(f"{manifest}: no member has a checkpoint")
    return out


# ---------------------------------------------------------------------------
# The ensemble team policy
# ---------------------------------------------------------------------------
class EnsembleTeamPolicy:
    """Averages the members' action probabilities per agent and acts greedily
    on the average: ``policy(observations) -> actions``.

    ``members``: team policies with ``probabilities(observations) -> {agent:
    probability vector}`` (normally :class:`ModuleTeamPolicy`). ``info``: one
    dict per member (``name``, ``seed``, ``architecture``, ``checkpoint``).
    Ties go to the lowest action index.
    """

    def __init__(self, members: list, *, info: list[dict] | None = None):
        members = list(members)
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if info is not None and len(info) != len(members):
            raise ValueError(f"{len(info)} member infos for {len(members)} members")
        self.members = members
        self.info = [dict(d) for d in info] if info is not None else [{"name": f"m{i}"} for i in range(len(members))]
        for i, d in enumerate(self.info):
            d.setdefault("name", f"m{i}")

    @property
    def names(self) -> list[str]:
        return [d["name"] for d in self.info]

    # -- construction ---------------------------------------------------------
    @classmethod
    def from_checkpoints(cls, checkpoints: Iterable[str | os.PathLike], *, info: list[dict] | None = None) -> "EnsembleTeamPolicy":
        """Members from checkpoints (or trial/experiment folders: their best
        checkpoint); seed and architecture from each ``algospace.json`` when it has them."""
        from rllib_algospace.checkpoints import ModuleTeamPolicy, checkpoint_metadata, find_checkpoint

        paths = [find_checkpoint(c) for c in checkpoints]
        if info is None:
            info = []
            for i, p in enumerate(paths):
                d = dict(checkpoint_metadata(p).get("ensemble_member") or {})
                d["name"] = f"m{i}"
                info.append(d)
        info = [{**d, "checkpoint": str(p)} for d, p in zip(info, paths)]
        return cls([ModuleTeamPolicy.from_checkpoint(p) for p in paths], info=info)

    @classmethod
    def from_manifest(cls, path: str | os.PathLike) -> "EnsembleTeamPolicy":
        """The members of an ensemble manifest (``ensemble.json``, or the
        experiment folder holding it); members without a checkpoint are left out."""
        manifest, doc = read_manifest(path)
        entries = manifest_members(manifest, doc)
        info = [{**{k: e.get(k) for k in ("name", "member", "seed", "architecture", "score")}, "score_name": doc.get("score")} for e, _ in entries]
        policy = cls.from_checkpoints([p for _, p in entries], info=info)
        policy.manifest = str(manifest)
        return policy

    @property
    def checkpoints(self) -> list[str]:
        return [d.get("checkpoint") for d in self.info]

    # -- acting -----------------------------------------------------------------
    def member_probabilities(self, observations: dict) -> list[dict[str, np.ndarray]]:
        return [m.probabilities(observations) for m in self.members]

    def probabilities(self, observations: dict) -> dict[str, np.ndarray]:
        """``{agent: mean of the members' action probabilities}``."""
        return mean_probabilities(self.member_probabilities(observations))

    def act(self, observations: dict) -> tuple[dict[str, int], dict[str, np.ndarray]]:
        """``(actions, member_actions)``: the ensemble's greedy actions and, per
        agent, each member's own greedy action (an int array, one per member)."""
        per_member = self.member_probabilities(observations)
        mean = mean_probabilities(per_member)
        actions = {agent: int(np.argmax(p)) for agent, p in mean.items()}
        member_actions = {agent: np.asarray([int(np.argmax(p[agent])) for p in per_member], dtype=np.int64) for agent in mean}
        return actions, member_actions

    def __call__(self, observations: dict) -> dict[str, int]:
        return self.act(observations)[0]


class _RecordingEnsemble:
    """The ensemble as a team policy that remembers, at every step of its own
    trajectory, what each member would have done."""

    def __init__(self, ensemble: EnsembleTeamPolicy):
        self.ensemble = ensemble
        self.ensemble_actions: dict[str, list[int]] = {}
        self.member_actions: dict[str, list[np.ndarray]] = {}

    def __call__(self, observations: dict) -> dict[str, int]:
        actions, members = self.ensemble.act(observations)
        for agent, a in actions.items():
            self.ensemble_actions.setdefault(agent, []).append(a)
            self.member_actions.setdefault(agent, []).append(members[agent])
        return actions


# ---------------------------------------------------------------------------
# Diversity and evaluation
# ---------------------------------------------------------------------------
def diversity(member_actions: Mapping[str, np.ndarray], ensemble_actions: Mapping[str, np.ndarray] | None = None, names: list[str] | None = None) -> dict:
    """How often the members disagree, from their greedy actions on the same
    steps: ``member_actions[agent]`` is a ``(steps, members)`` int array.

    Per agent: ``disagreement_rate``, the share of steps on which not all
    members pick the same action; ``pairwise_disagreement``, the mean over
    member pairs of the share of steps on which the two differ; with
    ``ensemble_actions``, ``agreement_with_ensemble`` per member. ``mean``:
    both rates averaged over agents; ``team_disagreement_rate``: share of
    steps on which the members' joint actions (all agents) are not all the
    same. Rates are in [0, 1] (NaN without steps; 0 with a single member).
    """
    agents = list(member_actions)
    arrays = {a: np.asarray(member_actions[a], dtype=np.int64).reshape(len(member_actions[a]), -1) for a in agents}
    steps = int(arrays[agents[0]].shape[0]) if agents else 0
    n = int(arrays[agents[0]].shape[1]) if agents and steps else (len(names) if names else 0)
    names = names or [f"m{i}" for i in range(n)]
    pairs = list(itertools.combinations(range(n), 2))
    per_agent = {}
    joint_differs = np.zeros(steps, dtype=bool)
    for agent, a in arrays.items():
        if steps == 0:
            per_agent[agent] = {"disagreement_rate": math.nan, "pairwise_disagreement": math.nan}
            continue
        differs = np.any(a != a[:, :1], axis=1)
        joint_differs |= differs
        pair_rates = {f"{names[i]}/{names[j]}": float(np.mean(a[:, i] != a[:, j])) for i, j in pairs}
        entry = {
            "disagreement_rate": float(np.mean(differs)),
            "pairwise_disagreement": float(np.mean(list(pair_rates.values()))) if pairs else 0.0,
            "pairs": pair_rates,
        }
        if ensemble_actions is not None:
            e = np.asarray(ensemble_actions[agent], dtype=np.int64)
            entry["agreement_with_ensemble"] = {names[i]: float(np.mean(a[:, i] == e)) for i in range(n)}
        per_agent[agent] = entry
    mean = {
        key: float(np.mean([v[key] for v in per_agent.values()])) if steps else math.nan
        for key in ("disagreement_rate", "pairwise_disagreement")
    }
    mean["team_disagreement_rate"] = float(np.mean(joint_differs)) if steps else math.nan
    return {"steps": steps, "members": n, "per_agent": per_agent, "mean": mean}


def evaluate_ensemble(
    source,
    *,
    data: str | None = None,
    split: str = "test",
    episodes: int | None = None,
    full_split: bool = False,
    episode_length: int = 1024,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    include_members: bool = True,
) -> dict:
    """Evaluate the ensemble of ``source`` (a manifest, an experiment folder
    holding one, or an :class:`EnsembleTeamPolicy`), every member
    (``include_members``) and the baselines greedily on the same bars of
    ``split`` (of the data the first member was trained on, or ``data``);
    the members' disagreement is measured on the ensemble's own trajectory.

    Writes ``evaluation.json``/``evaluation.png`` (the ensemble's report, all
    results in it) and ``ensemble_evaluation.json`` (members, results,
    diversity) into ``out`` (default: ``ensemble_evaluation_<split>`` beside
    the manifest). Returns ``checkpoint`` (the manifest), ``data``, ``split``,
    ``results`` (``ensemble``, ``m0``.., the baselines), ``members``,
    ``diversity`` and the report paths.
    """
    from rllib_algospace.evaluation import BASELINES, Comparison, evaluate_with_baselines, run_policy, write_report
    from rllib_algospace.reports import atomic_json
    from rllib_algospace.checkpoints import checkpoint_data, checkpoint_env_overrides, checkpoint_metadata

    if isinstance(source, EnsembleTeamPolicy):
        policy, manifest = source, getattr(source, "manifest", None)
    else:
        policy = EnsembleTeamPolicy.from_manifest(source)
        manifest = policy.manifest
    if not policy.checkpoints or not policy.checkpoints[0]:
        raise ValueError("the ensemble's members have no checkpoints to read the data and env settings from")
    meta = checkpoint_metadata(policy.checkpoints[0])
    env_config = meta.get("env_config", {})
    data = checkpoint_data(meta, data)
    overrides = checkpoint_env_overrides(env_config)
    if not full_split and episodes is None:
        full_split = True
    kwargs = dict(data=data, split=split, episodes=episodes, full_split=full_split, episode_length=episode_length, seed=seed, env_overrides=overrides)

    recorder = _RecordingEnsemble(policy)
    comparison = evaluate_with_baselines(recorder, **kwargs)
    runs = {"ensemble": comparison.runs["team"]}
    results = {"ensemble": comparison["team"]}
    if include_members:
        for name, member in zip(policy.names, policy.members):
            run = run_policy(member, **kwargs)
            if not np.array_equal(run.start_bars, runs["ensemble"].start_bars):  # pragma: no cover - starts come from the seed only
                raise RuntimeError(f"member {name} ran on other episode starts than the ensemble")
            runs[name], results[name] = run, run.summary()
    for name in BASELINES:
        runs[name], results[name] = comparison.runs[name], comparison[name]
    div = diversity(
        {a: np.asarray(v) for a, v in recorder.member_actions.items()},
        {a: np.asarray(v) for a, v in recorder.ensemble_actions.items()},
        names=policy.names,
    )
    base = Path(manifest).parent if manifest else Path(policy.checkpoints[0]).parent
    out_dir = Path(out) if out else base / f"ensemble_evaluation_{split}"
    report_results = Comparison(results)
    report_results.runs = runs
    json_path, png_path = write_report(report_results, runs["ensemble"], out_dir)
    members = [dict(d) for d in policy.info]
    document = {"manifest": manifest, "data": data, "split": split, "members": members, "results": results, "diversity": div, "meta": runs["ensemble"].meta}
    ensemble_json = out_dir / "ensemble_evaluation.json"
    atomic_json(ensemble_json, document)
    return {
        "checkpoint": str(manifest or policy.checkpoints[0]),
        "manifest": manifest,
        "data": data,
        "split": split,
        "results": results,
        "members": members,
        "diversity": div,
        "json": str(json_path),
        "png": str(png_path),
        "ensemble_json": str(ensemble_json),
    }


# ---------------------------------------------------------------------------
# Text output
# ---------------------------------------------------------------------------
def _pct(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"


def format_members(members: list[dict]) -> str:
    lines = []
    for d in members:
        arch = d.get("architecture") or {}
        desc = [f"seed {d['seed']}" if d.get("seed") is not None else None]
        if arch:
            desc.append(f"actor {list(arch.get('actor_hiddens', []))}, critic {list(arch.get('critic_hiddens', []))}")
        if d.get("score") is not None:
            desc.append(f"{d.get('score_name') or 'score'} {d['score']:+.3f}")
        text = ", ".join(x for x in desc if x)
        lines.append(f"  {d['name']}: {text}{' - ' if text else ''}{d.get('checkpoint', '')}")
    return "\n".join(lines)


def format_diversity(div: dict) -> str:
    """The diversity table: per agent, the share of steps on which not all
    members agree and the mean pairwise disagreement."""
    lines = [f"member disagreement on the ensemble's trajectory ({div['steps']} steps, {div['members']} members):", f"{'agent':<16}{'not all agree':>14}{'pairwise':>14}"]
    for agent, v in div["per_agent"].items():
        lines.append(f"{agent:<16}{_pct(v['disagreement_rate']):>14}{_pct(v['pairwise_disagreement']):>14}")
    m = div["mean"]
    lines.append(f"{'mean':<16}{_pct(m['disagreement_rate']):>14}{_pct(m['pairwise_disagreement']):>14}")
    lines.append(f"{'team (joint)':<16}{_pct(m['team_disagreement_rate']):>14}")
    return "\n".join(lines)


def format_ensemble_report(report: dict) -> str:
    """Members legend, the results table (ensemble, members, baselines) and the diversity table."""
    from rllib_algospace.evaluation.runner import format_comparison

    return "\n".join(["members:", format_members(report["members"]), format_comparison(report["results"]), format_diversity(report["diversity"])])
