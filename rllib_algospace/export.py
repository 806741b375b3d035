# long module: export, quantisation and verification of a bundle are one pipeline over the same files
"""``algospace export``: a trained team (or an ensemble) as an inference bundle.

``export_bundle(SOURCE, OUT)`` reads a checkpoint (or a trial/experiment
folder: its best checkpoint by the run's score) or an ensemble manifest (``ensemble.json`` or
the experiment folder holding it), and writes a bundle folder
(``rllib_algospace.inference.bundle`` describes the layout) that
``rllib_algospace.inference.TeamPolicy.load`` runs without Ray or RLlib:

* each actor becomes a frozen TorchScript module: a plain ``nn.Module``
  wrapper around a copy of the team module's actor (its input scaling by the
  training data's train-split statistics, then its MLP), traced
  on a float32 observation and frozen (an RLModule itself does not script);
  the export checks that its logits equal the team module's actor's on a
  sample of real observations;
* the manifest records the trading settings of the env, the feature settings
  of the market file (base bar length, ``htf_multiple``, windows, feature
  names, clip bound, warmups, bars per year), its schema version, the
  library versions, and the sha256 of every file;
* ``quantize="auto"`` (``--quantize``) also makes int8 actors
  (``torch.ao.quantization.quantize_dynamic`` on the Linear layers), measures
  their accuracy (action agreement and largest probability difference with
  float32 on the sample) and their speed (one decision's four actors at batch
  size 1, interleaved with float32), and keeps int8 only when it is faster;
  ``quantize="force"`` keeps int8 regardless. The report is in the manifest.

The sample of real observations comes from running the float32 team greedily
through the env on the validation split of the market file (no Ray).
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import platform
import shutil
import tempfile
import time
import warnings
from dataclasses import fields
from pathlib import Path

import numpy as np

from envs.data.errors import DataError
from envs.data.provenance import file_sha256
from envs.data.store import require_free_space
from rllib_algospace.inference.bundle import (
    ACTORS_DIR,
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    MANIFEST_FILE,
    MANIFEST_SUM_FILE,
    bundle_size,
)
from rllib_algospace.inference.probabilities import mean_probabilities, softmax

QUANTIZE_MODES = (None, "auto", "force")
SAMPLE_SPLIT = "val"
LOGIT_TOLERANCE = 1e-4  # TorchScript vs RLModule, max abs logit difference


class ExportError(ValueError):
    """Export cannot go on (one-line message)."""


# ---------------------------------------------------------------- sources
def resolve_members(source: str | os.PathLike) -> tuple[str, list[dict], str | None]:
    """``(kind, members, manifest)``: kind ``"checkpoint"`` or ``"ensemble"``;
    each member ``{"name", "checkpoint", "weight", ...info}``."""
    from rllib_algospace.checkpoints import METADATA_FILE, CheckpointError, find_checkpoint

    p = Path(source).expanduser()
    if not p.exists():
        raise ExportError(f"{p}: no such checkpoint, experiment folder or ensemble manifest")
    manifest = None
    if not (p.is_dir() and (p / METADATA_FILE).exists()):
        manifest = _find_ensemble_manifest(p)
    if manifest is not None:
        doc = json.loads(manifest.read_text())
        members = []
        for i, entry in enumerate(doc.get("members") or []):
            ckpt = entry.get("checkpoint") if isinstance(entry, dict) else entry
            if not ckpt:
                continue  # a member that did not train
            path = Path(ckpt)
            path = path if path.is_absolute() else manifest.parent / path
            info = {k: entry.get(k) for k in ("seed", "architecture", "score") if isinstance(entry, dict) and k in entry}
            members.append({"name": (entry.get("name") if isinstance(entry, dict) else None) or f"m{i}", "checkpoint": path, "weight": float(entry.get("weight", 1.0)) if isinstance(entry, dict) else 1.0, **info})
        if not members:
            raise ExportError(f"{manifest}: no ensemble member has a checkpoint")
        try:
            for m in members:
                m["checkpoint"] = find_checkpoint(m["checkpoint"])
        except CheckpointError as exc:
            raise ExportError(str(exc)) from None
        return "ensemble", members, str(manifest)
    try:
        ckpt = find_checkpoint(p)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from None
    return "checkpoint", [{"name": "m0", "checkpoint": ckpt, "weight": 1.0}], None


def _find_ensemble_manifest(p: Path) -> Path | None:
    try:  # the ensemble module's own reader, when it is there
        from rllib_algospace.ensemble_policy import find_manifest
    except ImportError:
        find_manifest = None
    if find_manifest is not None:
        found = find_manifest(p)
        return Path(found) if found is not None else None
    if p.is_dir():
        p = p / "ensemble.json"
    if p.is_file() and p.suffix == ".json":
        try:
            doc = json.loads(p.read_text())
        except ValueError:
            return None
        if isinstance(doc, dict) and isinstance(doc.get("members"), list):
            return p
    return None


# ------------------------------------------------------------------- data
def _env_config(meta: dict) -> dict:
    from envs.market.config import MarketEnvConfig

    known = {f.name for f in fields(MarketEnvConfig)}
    return {k: v for k, v in (meta.get("env_config") or {}).items() if k in known}


def _data_path(env_config: dict, override: str | None) -> Path:
    if override:
        path = Path(override).expanduser()
    elif env_config.get("data"):
        path = Path(env_config["data"]).expanduser()
    elif env_config.get("tasks"):
        tasks = env_config["tasks"]
        path = Path(tasks.get(env_config.get("task")) or list(tasks.values())[-1]).expanduser()
    else:
        from envs.data.default import default_dataset_path

        path = Path(default_dataset_path(env_config.get("task") or "simple_markets"))
    if not path.is_file():
        raise ExportError(f"{path}: the market file the team was trained on is missing; pass --data FILE (a market file prepared the same way)")
    return path


def feature_settings(data: str | os.PathLike) -> tuple[dict, dict]:
    """What the live feature path needs to know about the market file."""
    from envs.data.reader import MarketData
    from envs.data.store import MATRICES, SCHEMA_VERSION
    from envs.features import FEATURE_CLIP, REGIME_WARMUP, STRUCTURE_WARMUP, TACTICAL_WARMUP

    market = MarketData(data)
    try:
        attrs = market.attrs
        if int(attrs["schema_version"]) != SCHEMA_VERSION:
            raise ExportError(f"{data}: market file schema v{attrs['schema_version']}, this code reads v{SCHEMA_VERSION}")
        for name, (names, _, _) in MATRICES.items():
            if tuple(market.feature_names[name]) != tuple(names):
                raise ExportError(f"{data}: its {name} features {list(market.feature_names[name])} differ from this code's {list(names)}; prepare it again")
        return {
            "base_freq_seconds": int(attrs["freq_seconds"]),
            "htf_multiple": int(attrs["htf_multiple"]),
            "htf_freq_seconds": int(attrs["htf_freq_seconds"]),
            "has_volume": bool(attrs["has_volume"]),
            "bars_per_year": float(market.bars_per_year),
            "windows": {name: int(window) for name, (_, window, _) in MATRICES.items()},
            "names": {name: list(names) for name, (names, _, _) in MATRICES.items()},
            "timeframes": {name: group for name, (_, _, group) in MATRICES.items()},
            "warmups": {"regime": REGIME_WARMUP, "structure": STRUCTURE_WARMUP, "tactical": TACTICAL_WARMUP},
            "clip": float(FEATURE_CLIP),
        }, {"path": str(data), "schema_version": int(attrs["schema_version"]), "source": str(attrs["source"]), "first_valid": int(attrs["first_valid"])}
    finally:
        market.close()


# ------------------------------------------------------------------ actors
def _actor_net(module):
    """A plain ``nn.Module`` around a copy of the actor: input scaling, then
    the policy MLP (the live path gets the scaling with the weights)."""
    import torch
    from torch import nn

    class ActorNet(nn.Module):
        def __init__(self, scale_in: nn.Module, pi: nn.Module):
            super().__init__()
            self.scale_in = scale_in
            self.pi = pi

        def forward(self, obs: torch.Tensor) -> torch.Tensor:
            return self.pi(self.scale_in(obs))

    return ActorNet(copy.deepcopy(module.scale_in).float(), copy.deepcopy(module.pi).float()).eval()


def _team_net(nets: dict):
    """One module running the four actors: ``forward(regime, structure,
    tactical, risk) -> four logits`` (one call per decision instead of four)."""
    from torch import nn

    class TeamNet(nn.Module):
        def __init__(self, regime: nn.Module, structure: nn.Module, tactical: nn.Module, risk: nn.Module):
            super().__init__()
            self.regime = regime
            self.structure = structure
            self.tactical = tactical
            self.risk = risk

        def forward(self, regime, structure, tactical, risk):
            return self.regime(regime), self.structure(structure), self.tactical(tactical), self.risk(risk)

    return TeamNet(nets["regime"], nets["structure"], nets["tactical"], nets["risk"]).eval()


class _jit_quiet(warnings.catch_warnings):
    """torch 2.13 marks torch.jit deprecated (it still works, and the bundle
    format relies on it): keep its DeprecationWarnings out of the output."""

    def __enter__(self):
        out = super().__enter__()
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit")
        return out


def _script_team(nets: dict, dims: dict):
    import torch

    from envs.market.env import AGENTS

    with torch.no_grad(), _jit_quiet():
        traced = torch.jit.trace(_team_net(nets), tuple(torch.zeros(1, dims[a], dtype=torch.float32) for a in AGENTS))
        return torch.jit.freeze(traced.eval())


def _script(net, obs_dim: int):
    import torch

    with torch.no_grad(), _jit_quiet():
        traced = torch.jit.trace(net, torch.zeros(1, obs_dim, dtype=torch.float32))
        return torch.jit.freeze(traced.eval())


def _quantize(net):
    import torch
    from torch import nn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's eager-mode quantization is deprecated in favour of torchao
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(net), {nn.Linear}, dtype=torch.qint8).eval()


def _obs_dim(module) -> int:
    return int(module.pi[0].in_features)


def _check_team(team, scripted: dict, sample: dict[str, np.ndarray]) -> None:
    import torch

    from envs.market.env import AGENTS

    with torch.inference_mode():
        x = [torch.as_tensor(sample[a][:64]) for a in AGENTS]
        for a, out in zip(AGENTS, team(*x)):
            if not torch.equal(out, scripted[a](x[AGENTS.index(a)])):
                raise ExportError(f"the team module's {a} logits differ from the {a} actor's")


def _module_logits(module, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return module(torch.as_tensor(x)).numpy()


def _probs(scripted_members: list[dict], weights: list[float], agent: str, x) -> np.ndarray:
    import torch

    with torch.inference_mode():
        per_member = [{agent: softmax(actors[agent](x).numpy())} for actors in scripted_members]
    return mean_probabilities(per_member, weights)[agent]


def sample_observations(data: Path, env_config: dict, scripted_members: list[dict], weights: list[float], n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Up to ``n`` observations per agent from the float32 team playing
    greedily on the validation split (the env, no Ray)."""
    import torch

    from envs.market.env import AGENTS, AlgoSpaceMarketEnv
    from rllib_algospace.checkpoints import checkpoint_env_overrides

    keys = checkpoint_env_overrides(env_config)
    env = AlgoSpaceMarketEnv(**keys, data=str(data), split=SAMPLE_SPLIT, episode_length=0, random_start=False)
    rows = {a: [] for a in AGENTS}
    try:
        obs, _ = env.reset(seed=seed)
        while len(rows["regime"]) < n:
            actions = {}
            for a in AGENTS:
                rows[a].append(obs[a])
                actions[a] = int(np.argmax(_probs(scripted_members, weights, a, torch.as_tensor(obs[a][None]))[0]))
            obs, _, term, trunc, _ = env.step(actions)
            if any(term.values()) or any(trunc.values()):
                break
    finally:
        env.close()
    return {a: np.asarray(v, dtype=np.float32) for a, v in rows.items()}


def _time_decisions(teams: list, sample: dict[str, np.ndarray], rounds: int) -> float:
    """Median seconds of one decision's actor call(s) (every member's team
    module, as the live path runs them) at batch 1."""
    import torch

    xs = [tuple(torch.as_tensor(sample[a][i : i + 1]) for a in sample) for i in range(min(rounds, len(sample["regime"])))]
    times = []
    with torch.inference_mode():
        for x in xs:
            t0 = time.perf_counter()
            for team in teams:
                team(*x)
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def quantization_report(float_members: list[dict], int8_members: list[dict], weights: list[float], sample: dict[str, np.ndarray], *, float_teams: list, int8_teams: list, rounds: int = 300, repeats: int = 3) -> dict:
    """Accuracy (action agreement, max probability difference) and speed of
    int8 against float32 on ``sample``."""
    import torch

    agents = list(sample)
    accuracy = {}
    for a in agents:
        x = torch.as_tensor(sample[a])
        pf = _probs(float_members, weights, a, x)
        pq = _probs(int8_members, weights, a, x)
        accuracy[a] = {
            "action_agreement": float(np.mean(pf.argmax(-1) == pq.argmax(-1))),
            "max_prob_diff": float(np.max(np.abs(pf - pq))),
        }
    # warm up, then interleave float32 and int8 timings
    _time_decisions(float_teams, sample, 50)
    _time_decisions(int8_teams, sample, 50)
    tf, tq = [], []
    for _ in range(repeats):
        tf.append(_time_decisions(float_teams, sample, rounds))
        tq.append(_time_decisions(int8_teams, sample, rounds))
    t_float, t_int8 = float(np.median(tf)), float(np.median(tq))
    return {
        "method": "torch.ao.quantization.quantize_dynamic(Linear, qint8)",
        "sample_observations": int(len(sample[agents[0]])),
        "sample_split": SAMPLE_SPLIT,
        "accuracy": accuracy,
        "min_action_agreement": min(v["action_agreement"] for v in accuracy.values()),
        "max_prob_diff": max(v["max_prob_diff"] for v in accuracy.values()),
        "float32_actor_us_per_decision": t_float * 1e6,
        "int8_actor_us_per_decision": t_int8 * 1e6,
        "speedup": t_float / t_int8 if t_int8 > 0 else float("nan"),
    }


# ------------------------------------------------------------------ export
def _versions() -> dict:
    import torch

    import rllib_algospace

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__, "rllib_algospace": rllib_algospace.__version__, "machine": platform.machine()}
    try:
        import ray

        out["ray"] = ray.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def export_stages(quantize: str | None = None) -> list[str]:
    """The stages ``export_bundle`` reports to its ``progress`` hook, in order."""
    return ["loading members", "sampling observations", "checking the TorchScript actors"] + (["quantizing and timing int8"] if quantize else []) + ["writing the bundle"]


def export_bundle(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    quantize: str | None = None,
    data: str | os.PathLike | None = None,
    sample_size: int = 1024,
    overwrite: bool = False,
    progress=None,
) -> dict:
    """Write the bundle of ``source`` to ``out`` (a folder); returns a report
    (``bundle``, ``size_bytes``, ``members``, ``precision``,
    ``torchscript_max_abs_logit_diff``, ``quantization``, ``load_seconds``).
    ``progress``: called with each of ``export_stages(quantize)`` as it starts."""
    import torch

    from envs.market.config import MarketEnvConfig
    from envs.market.env import ACTION_NAMES, AGENTS, CALL_OFFSETS, N_ACTIONS
    from envs.market.portfolio import PORTFOLIO_FEATURES
    from envs.market.trading import TRADING_ACTIONS_SCHEMA
    from rllib_algospace.inference.bundle import TRADING_KEYS
    from rllib_algospace.checkpoints import checkpoint_data, checkpoint_metadata, load_team_modules

    if quantize is True:
        quantize = "auto"
    if quantize not in QUANTIZE_MODES:
        raise ExportError(f"quantize must be one of auto, force (or none), got {quantize!r}")
    out = Path(out).expanduser()
    if out.exists():
        if not overwrite:
            raise ExportError(f"{out}: already exists (pass --overwrite to replace a bundle)")
        if not (out.is_dir() and (out / MANIFEST_FILE).is_file()):
            raise ExportError(f"{out}: exists and is not a bundle; not replacing it")
    step = progress or (lambda stage: None)
    step("loading members")
    kind, members, ensemble_manifest = resolve_members(source)

    # Members: modules, metadata, settings (all must agree on env and data).
    trading = env_config = features = data_info = None
    float_members, float_teams, nets, weights = [], [], [], []
    max_logit_diff = {}
    for m in members:
        meta = checkpoint_metadata(m["checkpoint"])
        if list(meta.get("agents") or []) != list(AGENTS):
            raise ExportError(f"{m['checkpoint']}: agents {meta.get('agents')} differ from the env's {list(AGENTS)}")
        cfg = _env_config(meta)
        if not data:
            checkpoint_data(meta)  # a training file that is gone: one line naming it and --data
        env_cfg = MarketEnvConfig.from_kwargs(**{k: v for k, v in cfg.items()}).to_dict()
        if env_cfg.get("leak_future_bars"):
            raise ExportError(f"{m['checkpoint']}: trained with env.leak_future_bars={env_cfg['leak_future_bars']} (the test-only look-ahead canary); such a team cannot trade live")
        m_trading = {k: env_cfg[k] for k in TRADING_KEYS}
        m_data = _data_path(cfg, str(data) if data else None)
        m_features, m_data_info = feature_settings(m_data)
        if trading is None:
            trading, env_config, features, data_info, data_path = m_trading, cfg, m_features, m_data_info, m_data
        else:
            if m_trading != trading:
                raise ExportError(f"{m['checkpoint']}: trading settings {m_trading} differ from the first member's {trading}")
            if {k: m_features[k] for k in ("base_freq_seconds", "htf_multiple", "has_volume")} != {k: features[k] for k in ("base_freq_seconds", "htf_multiple", "has_volume")}:
                raise ExportError(f"{m['checkpoint']}: trained on data with other bar settings than the first member")
        modules = load_team_modules(m["checkpoint"])
        m["modules"] = modules
        m["meta"] = meta
        net = {a: _actor_net(modules[a]) for a in AGENTS}
        nets.append(net)
        float_members.append({a: _script(net[a], _obs_dim(modules[a])) for a in AGENTS})
        m["dims"] = {a: _obs_dim(modules[a]) for a in AGENTS}
        float_teams.append(_script_team(net, m["dims"]))
        weights.append(m["weight"])
    total = sum(weights)
    if total <= 0:
        raise ExportError("ensemble weights must sum to a positive number")
    norm_weights = [w / total for w in weights]

    step("sampling observations")
    sample = sample_observations(data_path, env_config, float_members, norm_weights, sample_size)
    step("checking the TorchScript actors")
    for m, scripted in zip(members, float_members):
        for a in AGENTS:
            ref = _module_logits(m["modules"][a], sample[a])
            with torch.inference_mode():
                got = scripted[a](torch.as_tensor(sample[a])).numpy()
            diff = float(np.max(np.abs(ref - got)))
            max_logit_diff[a] = max(max_logit_diff.get(a, 0.0), diff)
            if not diff <= LOGIT_TOLERANCE:
                raise ExportError(f"{m['checkpoint']}: the TorchScript {a} actor's logits differ from the RLModule's by {diff:.3g}")
    for scripted, team in zip(float_members, float_teams):
        _check_team(team, scripted, sample)

    quant = None
    chosen, chosen_teams = float_members, float_teams
    precision = "float32"
    if quantize is not None:
        step("quantizing and timing int8")
        int8_members, int8_teams = [], []
        for net, m in zip(nets, members):
            qnets = {a: _quantize(net[a]) for a in AGENTS}
            int8_members.append({a: _script(qnets[a], m["dims"][a]) for a in AGENTS})
            int8_teams.append(_script_team(qnets, m["dims"]))
            _check_team(int8_teams[-1], int8_members[-1], sample)
        quant = quantization_report(float_members, int8_members, norm_weights, sample, float_teams=float_teams, int8_teams=int8_teams)
        keep = quantize == "force" or quant["int8_actor_us_per_decision"] < quant["float32_actor_us_per_decision"]
        quant["mode"] = quantize
        quant["kept"] = "int8" if keep else "float32"
        quant["reason"] = "forced" if quantize == "force" else ("int8 is faster" if keep else "int8 is not faster at these layer sizes")
        if keep:
            chosen, chosen_teams, precision = int8_members, int8_teams, "int8"

    # Each actor is saved twice (alone and in the member's team module); TorchScript adds code and metadata.
    params = sum(p.numel() * p.element_size() for m in members for mod in m["modules"].values() for p in mod.parameters())
    try:
        require_free_space(out.parent, 3 * params + (2 << 20) * len(members), f"the bundle {out}")
    except DataError as exc:
        raise ExportError(str(exc)) from None
    step("writing the bundle")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        files = {}
        member_entries = []
        for i, (m, scripted, team) in enumerate(zip(members, chosen, chosen_teams)):
            name = f"m{i}"
            actors = {}
            team_rel = f"{ACTORS_DIR}/{name}/team.pt"
            (tmp / team_rel).parent.mkdir(parents=True, exist_ok=True)
            with _jit_quiet():
                torch.jit.save(team, str(tmp / team_rel))
            files[team_rel] = file_sha256(tmp / team_rel)
            for a in AGENTS:
                rel = f"{ACTORS_DIR}/{name}/{a}.pt"
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                with _jit_quiet():
                    torch.jit.save(scripted[a], str(tmp / rel))
                files[rel] = file_sha256(tmp / rel)
                mod = m["modules"][a]
                actors[a] = {"file": rel, "obs_dim": _obs_dim(mod), "n_actions": N_ACTIONS[a], "input": "float32 (batch, obs_dim)", "output": "logits (batch, n_actions)"}
            meta = m["meta"]
            member_entries.append({
                "name": name,
                "label": m["name"],
                "weight": m["weight"],
                "checkpoint": str(m["checkpoint"]),
                "algorithm": meta.get("algorithm"),
                "training_iteration": meta.get("training_iteration"),
                "model_config": meta.get("model_config"),
                **{k: m[k] for k in ("seed", "architecture", "score") if k in m},
                "actors": actors,
                "team": {"file": team_rel, "inputs": list(AGENTS), "output": "tuple of the four agents' logits, same as the actors"},
            })
        manifest = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "source": {"kind": kind, "path": str(Path(source).expanduser()), "ensemble_manifest": ensemble_manifest},
            "agents": list(AGENTS),
            "combine": "mean of the members' action probabilities (weighted), greedy" if len(members) > 1 else "greedy on the logits",
            "precision": precision,
            "members": member_entries,
            "trading": trading,
            "env_config": env_config,
            "features": features,
            "data": data_info,
            "observations": {
                "regime": ["regime window (rows x features, row-major, oldest first)"],
                "structure": ["structure window", f"calls[:{CALL_OFFSETS['structure']}]"],
                "tactical": ["tactical window", f"calls[:{CALL_OFFSETS['tactical']}]"],
                "risk": ["portfolio features", f"calls[:{CALL_OFFSETS['risk']}]"],
            },
            "portfolio_features": list(PORTFOLIO_FEATURES),
            "action_names": {a: list(ACTION_NAMES[a]) for a in AGENTS},
            "actions_schema": TRADING_ACTIONS_SCHEMA,
            "versions": _versions(),
            "parity": {"torchscript_max_abs_logit_diff": max_logit_diff, "sample_observations": int(len(sample["regime"]))},
            "quantization": quant,
            "files": files,
        }
        from rllib_algospace.model_card import MODEL_CARD_FILE, model_card

        (tmp / MODEL_CARD_FILE).write_text(model_card(manifest, members))
        files[MODEL_CARD_FILE] = file_sha256(tmp / MODEL_CARD_FILE)
        text = (json.dumps(manifest, indent=2, default=str) + "\n").encode()
        (tmp / MANIFEST_FILE).write_bytes(text)
        import hashlib

        (tmp / MANIFEST_SUM_FILE).write_text(f"{hashlib.sha256(text).hexdigest()}  {MANIFEST_FILE}\n")
        for p in [tmp, *tmp.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    from rllib_algospace.inference import TeamPolicy

    t0 = time.perf_counter()
    TeamPolicy.load(out)
    load_seconds = time.perf_counter() - t0
    return {
        "bundle": str(out),
        "kind": kind,
        "members": len(members),
        "precision": precision,
        "size_bytes": bundle_size(out),
        "files": len(files) + 2,
        "torchscript_max_abs_logit_diff": max(max_logit_diff.values()),
        "quantization": quant,
        "load_seconds": load_seconds,
    }


def format_report(report: dict) -> str:
    lines = [
        f"wrote {report['bundle']} ({report['kind']}, {report['members']} member(s), {report['precision']} actors, "
        f"{report['size_bytes'] / 1e6:.2f} MB, {report['files']} files, loads in {report['load_seconds'] * 1e3:.0f} ms)",
        f"TorchScript vs RLModule logits: max abs diff {report['torchscript_max_abs_logit_diff']:.2e}",
    ]
    q = report.get("quantization")
    if q:
        lines.append(
            f"int8 vs float32 on {q['sample_observations']} {q['sample_split']} observations: action agreement "
            + ", ".join(f"{a} {v['action_agreement']:.1%}" for a, v in q["accuracy"].items())
            + f"; max prob diff {q['max_prob_diff']:.3g}"
        )
        lines.append(
            f"speed (4 actors, batch 1): float32 {q['float32_actor_us_per_decision']:.0f} us, int8 {q['int8_actor_us_per_decision']:.0f} us "
            f"(x{q['speedup']:.2f}); kept {q['kept']} ({q['reason']})"
        )
    return "\n".join(lines)
