"""The exported bundle: a folder of TorchScript actors and a JSON manifest.

Layout (``BUNDLE_FORMAT`` version ``BUNDLE_VERSION``)::

    BUNDLE/
      manifest.json          what the live path needs (see below), plus the
                             sha256 of every other file under "files"
      manifest.sha256        sha256 of manifest.json
      actors/<member>/<agent>.pt   one frozen TorchScript module per member
                             and agent: float32 observation (B, obs_dim) ->
                             action logits (B, n_actions)
      actors/<member>/team.pt      the same four actors in one module,
                             (regime, structure, tactical, risk) -> four
                             logits: the live path makes one call per member

``manifest.json`` holds the env's trading settings, the feature settings
(base bar length, ``htf_multiple``, windows, feature names, clip bound,
warmups), the observation layouts and action names, the market file's schema
version, the library versions the bundle was made with, the members (with
their weights: an ensemble averages their action probabilities), and the
quantization report when ``--quantize`` was asked for.

Loading verifies every checksum before anything is deserialised and reads
the actors with ``torch.jit.load`` (TorchScript's own archive reader, which
builds tensors and TorchScript modules only, never arbitrary Python objects);
no pickle, no ``torch.load``, no Ray.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs.data.provenance import file_sha256

BUNDLE_FORMAT = "algospace-bundle"
BUNDLE_VERSION = 1
MANIFEST_FILE = "manifest.json"
MANIFEST_SUM_FILE = "manifest.sha256"
ACTORS_DIR = "actors"
# The env's trading settings a bundle carries (the simulated account of the live path).
TRADING_KEYS = ("initial_equity", "commission_bps", "slippage_bps", "max_leverage", "rebalance_threshold")


class BundleError(ValueError):
    """A bundle that cannot be used (one-line message naming the file)."""


def bundle_size(path: str | os.PathLike) -> int:
    """Bytes of every file in the bundle folder."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def read_manifest(path: str | os.PathLike, *, verify: bool = True) -> dict:
    """The bundle's manifest, after checking ``manifest.sha256`` and (with
    ``verify``) the sha256 of every file it lists."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise BundleError(f"{root}: no such bundle folder")
    mpath = root / MANIFEST_FILE
    if not mpath.is_file():
        raise BundleError(f"{root}: not an algospace bundle (no {MANIFEST_FILE})")
    raw = mpath.read_bytes()
    if verify:
        spath = root / MANIFEST_SUM_FILE
        if not spath.is_file():
            raise BundleError(f"{root}: {MANIFEST_SUM_FILE} is missing")
        expected = spath.read_text().split()[0] if spath.read_text().strip() else ""
        got = hashlib.sha256(raw).hexdigest()
        if got != expected:
            raise BundleError(f"{mpath}: checksum mismatch (sha256 {got}, expected {expected}): the bundle is corrupt or was edited")
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise BundleError(f"{mpath}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{mpath}: not an algospace bundle manifest (format {manifest.get('format') if isinstance(manifest, dict) else None!r})")
    if int(manifest.get("format_version", 0)) > BUNDLE_VERSION:
        raise BundleError(f"{mpath}: bundle format version {manifest.get('format_version')} is newer than this code reads ({BUNDLE_VERSION})")
    from envs.market.trading import TRADING_ACTIONS_SCHEMA

    actions = manifest.get("actions_schema", "operations-v0")
    if actions != TRADING_ACTIONS_SCHEMA:
        raise BundleError(f"{mpath}: the bundle's actions follow schema {actions!r}, this code's are {TRADING_ACTIONS_SCHEMA!r} (target states); export it again from a checkpoint trained with this version")
    _check_manifest(manifest, mpath)
    if verify:
        for rel, expected in manifest.get("files", {}).items():
            fpath = root / rel
            if not fpath.is_file():
                raise BundleError(f"{fpath}: missing from the bundle")
            got = file_sha256(fpath)
            if got != expected:
                raise BundleError(f"{fpath}: checksum mismatch (sha256 {got}, expected {expected}): the bundle is corrupt")
    return manifest


def _inside(rel: Any) -> bool:
    """A relative path that stays inside the bundle folder."""
    if not isinstance(rel, str) or not rel or os.path.isabs(rel) or "\\" in rel:
        return False
    return ".." not in Path(rel).parts


def _check_manifest(m: dict, mpath: Path) -> None:
    """The manifest's shape: every key the loaders read, with its type, and
    every file path inside the bundle (a path out of it is refused)."""

    def bad(key: str, problem: str):
        raise BundleError(f"{mpath}: {key}: {problem}")

    def need(key: str, value: Any, kind, what: str):
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            bad(key, f"expected {what}, got {type(value).__name__ if value is not None else 'nothing'}")
        return value

    number = (int, float)
    agents = need("agents", m.get("agents"), list, "a list of agent names")
    if not agents or not all(isinstance(a, str) for a in agents):
        bad("agents", "expected a non-empty list of agent names")
    files = need("files", m.get("files", {}), dict, "a mapping of file -> sha256")
    for rel, digest in files.items():
        if not _inside(rel):
            bad("files", f"{rel!r} is not a path inside the bundle")
        need(f"files[{rel!r}]", digest, str, "a sha256 string")
    feats = need("features", m.get("features"), dict, "a mapping")
    for key, kind, what in (("names", dict, "a mapping"), ("windows", dict, "a mapping"), ("clip", number, "a number"), ("base_freq_seconds", number, "a number"),
                            ("htf_multiple", number, "a number"), ("has_volume", bool, "true or false"), ("bars_per_year", number, "a number")):
        need(f"features.{key}", feats.get(key), kind, what)
    for name in ("regime", "structure", "tactical"):
        need(f"features.names.{name}", feats["names"].get(name), list, "a list of feature names")
        need(f"features.windows.{name}", feats["windows"].get(name), number, "a number")
    need("portfolio_features", m.get("portfolio_features"), list, "a list of names")
    trading = need("trading", m.get("trading"), dict, "a mapping")
    for key in TRADING_KEYS:
        need(f"trading.{key}", trading.get(key), number, "a number")
    members = need("members", m.get("members"), list, "a list of members")
    if not members:
        bad("members", "the bundle has no members")
    for i, member in enumerate(members):
        where = f"members[{i}]"
        need(where, member, dict, "a mapping")
        need(f"{where}.weight", member.get("weight", 1.0), number, "a number")
        actors = need(f"{where}.actors", member.get("actors"), dict, "a mapping of agent -> actor")
        for agent in agents:
            spec = need(f"{where}.actors.{agent}", actors.get(agent), dict, "a mapping")
            if not _inside(spec.get("file")):
                bad(f"{where}.actors.{agent}.file", f"{spec.get('file')!r} is not a path inside the bundle")
            for key in ("obs_dim", "n_actions"):
                need(f"{where}.actors.{agent}.{key}", spec.get(key), int, "an integer")
        team = member.get("team")
        if team is not None:
            need(f"{where}.team", team, dict, "a mapping")
            if not _inside(team.get("file")):
                bad(f"{where}.team.file", f"{team.get('file')!r} is not a path inside the bundle")


@dataclass
class Bundle:
    """A loaded bundle: ``actors[member_index][agent]`` are TorchScript modules."""

    path: Path
    manifest: dict
    actors: list[dict]
    weights: list[float]
    teams: list | None = None  # per member: one module running the four actors, if the bundle has it

    @property
    def agents(self) -> list[str]:
        return list(self.manifest["agents"])


def load_bundle(path: str | os.PathLike, *, verify: bool = True) -> Bundle:
    """Read and check a bundle (``BundleError`` on any problem)."""
    import torch

    root = Path(path).expanduser()
    manifest = read_manifest(root, verify=verify)
    listed = set(manifest.get("files", {}))
    def load(rel: str):
        if verify and rel not in listed:
            raise BundleError(f"{root / rel}: not covered by the manifest's checksums")
        try:
            with warnings.catch_warnings():  # torch 2.13 marks torch.jit deprecated; it still works
                warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit")
                module = torch.jit.load(str(root / rel), map_location="cpu")
        except Exception as exc:  # a damaged archive that still matched (verify=False)
            raise BundleError(f"{root / rel}: cannot load the TorchScript module ({type(exc).__name__}: {exc})") from None
        return module.eval()

    actors, weights, teams = [], [], []
    for member in manifest["members"]:
        actors.append({agent: load(member["actors"][agent]["file"]) for agent in manifest["agents"]})
        team = member.get("team")
        teams.append(load(team["file"]) if team and list(team.get("inputs", [])) == list(manifest["agents"]) else None)
        weights.append(float(member.get("weight", 1.0)))
    total = sum(weights)
    if not actors or total <= 0:
        raise BundleError(f"{root}: the bundle has no members with a positive weight")
    return Bundle(path=root, manifest=manifest, actors=actors, weights=[w / total for w in weights], teams=teams if all(t is not None for t in teams) else None)
