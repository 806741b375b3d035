"""``algospace export``: a tiny trained team (one Ray iteration) as a bundle of
TorchScript actors that loads without Ray, with checksums, logits equal to the
RLModules', an int8 quantization report, and ensembles."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

AGENTS = ("regime", "structure", "tactical", "risk")


@pytest.fixture(scope="module")
def bundle(tiny_checkpoint, tmp_path_factory):
    from rllib_algospace.export import export_bundle

    out = tmp_path_factory.mktemp("export") / "bundle"
    report = export_bundle(tiny_checkpoint, out, sample_size=256)
    return out, report


def test_bundle_layout_and_report(bundle):
    from rllib_algospace.inference import read_manifest

    path, report = bundle
    manifest = read_manifest(path)
    assert report["size_bytes"] < 500e6 and report["size_bytes"] == sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    assert report["precision"] == "float32" and report["members"] == 1 and report["quantization"] is None
    assert report["torchscript_max_abs_logit_diff"] <= 1e-6
    assert manifest["agents"] == list(AGENTS)
    feats = manifest["features"]
    assert feats["htf_multiple"] == 6 and feats["base_freq_seconds"] == 300 and feats["windows"] == {"regime": 96, "structure": 48, "tactical": 60}
    assert feats["clip"] == 5.0 and len(feats["names"]["regime"]) == 12 and feats["bars_per_year"] > 0
    assert manifest["data"]["schema_version"] == 1
    assert {"torch", "numpy", "python", "ray"} <= set(manifest["versions"])
    assert set(manifest["trading"]) == {"initial_equity", "commission_bps", "slippage_bps", "max_leverage", "rebalance_threshold"}
    files = sorted(manifest["files"])
    assert files == sorted([f"actors/m0/{a}.pt" for a in AGENTS] + ["actors/m0/team.pt", "MODEL_CARD.md"])
    assert not any(p.suffix in (".pkl", ".pickle") for p in path.rglob("*"))


def test_bundle_loads_without_ray(bundle):
    path, _ = bundle
    code = (
        "import sys, json\n"
        "from rllib_algospace.inference import TeamPolicy\n"
        f"p = TeamPolicy.load({str(path)!r})\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
        "assert not any(m == 'ray' or m.startswith('ray.') for m in sys.modules)\n"
        "print(json.dumps({'members': len(p.bundle.actors)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"members": 1}


def test_importing_inference_does_not_import_ray():
    code = "import sys, rllib_algospace.inference, rllib_algospace.inference.policy; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_checksums_catch_a_corrupt_byte(bundle, tmp_path):
    from rllib_algospace.inference import BundleError, TeamPolicy

    path, _ = bundle
    for target in ("actors/m0/tactical.pt", "manifest.json"):
        copy = tmp_path / target.replace("/", "_")
        shutil.copytree(path, copy)
        f = copy / target
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0x01
        f.write_bytes(bytes(data))
        with pytest.raises(BundleError, match=r"checksum mismatch") as err:
            TeamPolicy.load(copy)
        assert target.split("/")[-1] in str(err.value)
    missing = tmp_path / "missing"
    shutil.copytree(path, missing)
    (missing / "actors/m0/risk.pt").unlink()
    with pytest.raises(BundleError, match="missing"):
        TeamPolicy.load(missing)


def test_every_bundle_has_a_model_card(bundle):
    path, _ = bundle
    card = (path / "MODEL_CARD.md").read_text()
    manifest = json.loads((path / "manifest.json").read_text())
    assert "MODEL_CARD.md" in manifest["files"]  # covered by the checksums
    for heading in ("## Data", "## Training", "## Results", "## Limitations"):
        assert heading in card
    assert "warm start: rule" in card and "git commit" in card  # from the run record beside the checkpoint
    assert "Not evaluated before export" in card or "fresh" in card


def test_bundles_with_the_old_operation_actions_are_refused(bundle, tmp_path):
    import hashlib

    from rllib_algospace.inference import BundleError, TeamPolicy

    path, _ = bundle
    old = tmp_path / "old"
    shutil.copytree(path, old)
    manifest = json.loads((old / "manifest.json").read_text())
    assert manifest["actions_schema"] == "target-state-v1"
    del manifest["actions_schema"]  # bundles of the operation actions had none
    raw = json.dumps(manifest).encode()
    (old / "manifest.json").write_bytes(raw)
    (old / "manifest.sha256").write_text(hashlib.sha256(raw).hexdigest() + "  manifest.json\n")
    with pytest.raises(BundleError, match=r"schema 'operations-v0'.*'target-state-v1'") as err:
        TeamPolicy.load(old)
    assert "manifest.json" in str(err.value) and "\n" not in str(err.value)


def test_a_team_trained_with_the_look_ahead_canary_is_refused(tiny_checkpoint, tmp_path):
    from rllib_algospace.export import ExportError, export_bundle

    leaky = tmp_path / "leaky"
    shutil.copytree(tiny_checkpoint, leaky)
    meta = json.loads((leaky / "algospace.json").read_text())
    meta["env_config"]["leak_future_bars"] = 6
    (leaky / "algospace.json").write_text(json.dumps(meta))
    with pytest.raises(ExportError, match=r"leak_future_bars=6 \(the test-only look-ahead canary\)"):
        export_bundle(str(leaky), tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_torchscript_actors_give_the_rlmodules_logits(bundle, tiny_checkpoint, market_file):
    import torch

    from envs.market.env import AlgoSpaceMarketEnv
    from rllib_algospace.inference import load_bundle
    from rllib_algospace.checkpoints import ModuleTeamPolicy

    path, _ = bundle
    actors = load_bundle(path).actors[0]
    modules = ModuleTeamPolicy.from_checkpoint(tiny_checkpoint)
    env = AlgoSpaceMarketEnv(data=market_file, split="test", episode_length=64, random_start=False)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(64):
        ref = modules.logits(obs)
        with torch.inference_mode():
            got = {a: actors[a](torch.as_tensor(obs[a][None]))[0].numpy() for a in AGENTS}
        worst = max(worst, max(float(np.abs(ref[a] - got[a]).max()) for a in AGENTS))
        obs, _, term, trunc, _ = env.step({a: int(rng.integers(env.action_space(a).n)) for a in AGENTS})
        if any(trunc.values()) or any(term.values()):
            break
    env.close()
    assert worst <= 1e-6


def test_cli_export_with_quantize_reports_accuracy_and_speed(tiny_checkpoint, tmp_path, capsys):
    from rllib_algospace.cli import main
    from rllib_algospace.inference import TeamPolicy, read_manifest

    out = tmp_path / "q"
    assert main(["export", tiny_checkpoint, "--out", str(out), "--quantize", "force"]) == 0
    text = capsys.readouterr().out
    assert "action agreement" in text and "kept int8" in text and "MB" in text
    manifest = read_manifest(out)
    q = manifest["quantization"]
    assert manifest["precision"] == "int8" and q["kept"] == "int8" and q["mode"] == "force"
    for a in AGENTS:
        assert 0.0 <= q["accuracy"][a]["action_agreement"] <= 1.0 and 0.0 <= q["accuracy"][a]["max_prob_diff"] <= 1.0
    assert q["min_action_agreement"] >= 0.5 and q["max_prob_diff"] < 0.2
    assert q["float32_actor_us_per_decision"] > 0 and q["int8_actor_us_per_decision"] > 0
    policy = TeamPolicy.load(out)
    obs = {a: np.zeros(d, dtype=np.float32) for a, d in policy._obs_dims.items()}
    assert set(policy.act(obs)) == set(AGENTS)
    # an existing bundle is not overwritten unless asked
    assert main(["export", tiny_checkpoint, "--out", str(out)]) == 2


def test_export_reports_each_stage_to_its_progress_hook(tiny_checkpoint, tmp_path):
    from rllib_algospace.export import export_bundle, export_stages

    stages = []
    export_bundle(tiny_checkpoint, tmp_path / "b", quantize="force", progress=stages.append)
    assert stages == export_stages("force") and "quantizing and timing int8" in stages


def test_ensemble_bundle_averages_member_probabilities(tiny_checkpoint, tmp_path):
    from rllib_algospace.export import export_bundle
    from rllib_algospace.inference import TeamPolicy

    manifest = tmp_path / "ens" / "ensemble.json"
    manifest.parent.mkdir()
    rel = os.path.relpath(tiny_checkpoint, manifest.parent)  # relative to the manifest, as ensemble.py writes it
    manifest.write_text(json.dumps({"format": 1, "kind": "algospace-ensemble", "members": [
        {"name": "a", "seed": 0, "checkpoint": str(rel)},
        {"name": "b", "seed": 1, "checkpoint": str(rel)},
        {"name": "untrained", "checkpoint": None},
    ]}))
    report = export_bundle(manifest.parent, tmp_path / "eb", sample_size=64)
    assert report["kind"] == "ensemble" and report["members"] == 2
    policy = TeamPolicy.load(tmp_path / "eb")
    assert [m["label"] for m in policy.manifest["members"]] == ["a", "b"]
    rng = np.random.default_rng(1)
    obs = {a: rng.uniform(-1, 1, d).astype(np.float32) for a, d in policy._obs_dims.items()}
    logits = policy.logits(obs)
    assert len(logits) == 2
    probs = policy.probabilities(obs)
    for a in AGENTS:
        zs = [z[a].astype(np.float64) for z in logits]
        mean = np.mean([np.exp(z - z.max()) / np.exp(z - z.max()).sum() for z in zs], axis=0)
        np.testing.assert_allclose(probs[a], mean, atol=1e-9)
        assert policy.act(obs)[a] == int(np.argmax(mean))


def test_export_errors_are_one_line(tmp_path):
    from rllib_algospace.export import ExportError, export_bundle

    with pytest.raises(ExportError, match="no such checkpoint"):
        export_bundle(tmp_path / "nothing", tmp_path / "b")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="no algospace checkpoint"):
        export_bundle(tmp_path / "empty", tmp_path / "b")


def test_damaged_checkpoints_are_named_in_one_line(tiny_checkpoint, tmp_path):
    from rllib_algospace.checkpoints import CheckpointError, checkpoint_metadata, load_team_module

    bad_meta = tmp_path / "bad_meta"
    shutil.copytree(tiny_checkpoint, bad_meta)
    (bad_meta / "algospace.json").write_text('{"format": 3, "env_conf')
    with pytest.raises(CheckpointError, match=r"bad_meta/algospace\.json: unreadable checkpoint metadata \(JSONDecodeError") as err:
        checkpoint_metadata(bad_meta)
    assert "\n" not in str(err.value)
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_checkpoint, truncated)
    states = [p for p in truncated.rglob("module_state*") if p.is_file()]
    assert states
    for p in states:
        p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 3)])
    with pytest.raises(CheckpointError, match=r"truncated: incomplete checkpoint \(learner_group/.*module_state\.pkl has \d+ of \d+ bytes\)") as err:
        load_team_module(truncated)
    assert "\n" not in str(err.value)
    garbled = tmp_path / "garbled"  # damaged but of the recorded size: the loader names it
    shutil.copytree(tiny_checkpoint, garbled)
    for p in [p for p in garbled.rglob("module_state*") if p.is_file()]:
        p.write_bytes(b"\x00" * p.stat().st_size)
    with pytest.raises(CheckpointError, match=r"default_policy: the team module cannot be loaded .*damaged") as err:
        load_team_module(garbled)
    assert "\n" not in str(err.value)


def _manifest_variants(manifest: dict):
    """Hostile edits of a good manifest: (name, edited manifest)."""
    import copy

    for key in ("agents", "members", "features", "trading", "portfolio_features"):
        m = copy.deepcopy(manifest)
        del m[key]
        yield f"no {key}", m
        for wrong in (None, 7, "x", [], {}):
            m = copy.deepcopy(manifest)
            m[key] = wrong
            if isinstance(wrong, type(manifest[key])) and wrong:
                continue
            yield f"{key}={wrong!r}", m
    for key in ("names", "windows", "clip", "base_freq_seconds", "htf_multiple", "has_volume", "bars_per_year"):
        m = copy.deepcopy(manifest)
        m["features"][key] = "oops"
        yield f"features.{key} a string", m
    for path in ("../outside.pt", "/etc/passwd", "actors/../../x.pt", "", None, 3):
        m = copy.deepcopy(manifest)
        m["members"][0]["actors"]["tactical"]["file"] = path
        yield f"actor file {path!r}", m
        m = copy.deepcopy(manifest)
        m["files"] = {**m["files"], **({path: "0" * 64} if isinstance(path, str) else {})}
        if isinstance(path, str):
            yield f"files key {path!r}", m
    for key, value in (("obs_dim", "12"), ("n_actions", 1.5), ("obs_dim", None)):
        m = copy.deepcopy(manifest)
        m["members"][0]["actors"]["risk"][key] = value
        yield f"actor {key}={value!r}", m
    m = copy.deepcopy(manifest)
    m["members"][0]["weight"] = "heavy"
    yield "weight a string", m
    m = copy.deepcopy(manifest)
    m["trading"]["commission_bps"] = "1bp"
    yield "trading value a string", m


def test_hostile_manifests_are_refused_in_one_line(bundle, tmp_path):
    import hashlib

    from rllib_algospace.inference import BundleError, TeamPolicy

    path, _ = bundle
    manifest = json.loads((path / "manifest.json").read_text())
    cases = list(_manifest_variants(manifest))
    assert len(cases) >= 40
    for i, (name, m) in enumerate(cases):
        copy_dir = tmp_path / f"case{i}"
        shutil.copytree(path, copy_dir)
        raw = json.dumps(m).encode()
        (copy_dir / "manifest.json").write_bytes(raw)
        (copy_dir / "manifest.sha256").write_text(hashlib.sha256(raw).hexdigest() + "  manifest.json\n")
        with pytest.raises(BundleError) as err:
            TeamPolicy.load(copy_dir)
        text = str(err.value)
        assert "\n" not in text and str(copy_dir) in text, (name, text)
        shutil.rmtree(copy_dir)


def test_export_refuses_a_full_disk_and_leaves_nothing(tiny_checkpoint, tmp_path, monkeypatch):
    import collections

    from rllib_algospace.export import ExportError, export_bundle

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(ExportError, match=r"cannot write the bundle .*: not enough free space: needs about .*MB free"):
        export_bundle(tiny_checkpoint, tmp_path / "out" / "bundle")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
