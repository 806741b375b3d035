"""Latency of one live decision from a new bar, against RLlib's own inference.

    python benchmarks/decision_latency.py [--data FILE] [--checkpoint CKPT] [--bars 12000] [--hiddens 128,128]

Per bar, interleaved in one loop over the same bars:

* ``live``: ``TeamPolicy.on_bar(bar)`` from an exported bundle: incremental
  feature update, the four observations, four TorchScript actors, the joint
  action rules and the simulated portfolio (the whole decision);
* ``features``: the feature update alone (a twin ``OnlineFeatures`` fed the same bar);
* ``bundle actors``: the bundle's four TorchScript actors alone on that bar's observations;
* ``rllib``: the checkpoint's team module on the same four observations: each actor
  network of the ``TeamModule`` (what ``ModuleTeamPolicy`` does) and the argmax.

The bars are the last ``--bars`` bars of the market file, after feeding the
history before them (``warm_up``). Also measured: bundle size, load time in
this process (torch already imported) and in a fresh process (cold start).
Without ``--checkpoint`` a team with the default actor size is trained for one
quick iteration first (Ray; its weights do not matter for latency).
torch runs with one intra-op thread (``--threads``), for both paths.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np


def _bars(path: str) -> list[dict]:
    import h5py

    with h5py.File(path, "r") as f:
        cols = {k: f[f"base/{k}"][:] for k in ("timestamp", "open", "high", "low", "close", "volume")}
    n = len(cols["timestamp"])
    return [{"timestamp": int(cols["timestamp"][i]), **{k: float(cols[k][i]) for k in ("open", "high", "low", "close", "volume")}} for i in range(n)]


def _train(data: str, storage: str, hiddens: list[int]) -> str:
    import ray

    from rllib_algospace.config import load_config, quick_overrides
    from rllib_algospace.training import train

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        cfg = load_config(None, {**quick_overrides(), "data.path": data, "experiment.storage_path": storage, "experiment.name": "latency", "experiment.stop.training_iteration": 1, "algorithm.actor_hiddens": hiddens})
        outcome = train(cfg)
    finally:
        ray.shutdown()
    if outcome.error or not outcome.best_checkpoint:
        raise SystemExit(f"training failed: {outcome.error}")
    return str(outcome.best_checkpoint)


def _stats(us: np.ndarray) -> dict:
    return {"p50": float(np.percentile(us, 50)), "p90": float(np.percentile(us, 90)), "p99": float(np.percentile(us, 99)), "p99.9": float(np.percentile(us, 99.9)), "max": float(us.max()), "mean": float(us.mean())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="market file (default: the embedded 60,000-bar simple_markets data)")
    ap.add_argument("--checkpoint", default=None, help="trained checkpoint (default: train one quick iteration)")
    ap.add_argument("--bars", type=int, default=12_000, help="bars measured (the last ones of the file)")
    ap.add_argument("--hiddens", default="128,128", help="actor hidden sizes when training (default: the default config's)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quantize", nargs="?", const="auto", default=None, choices=("auto", "force"), help="export with int8 actors (auto: kept only if faster)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--no-gc", action="store_true", help="disable Python's cyclic GC during the measured loop")
    args = ap.parse_args(argv)

    import torch

    from envs.data.default import default_dataset_path
    from envs.features.online import OnlineFeatures
    from rllib_algospace.export import export_bundle
    from rllib_algospace.inference import TeamPolicy, bundle_size
    from rllib_algospace.checkpoints import load_team_modules

    torch.set_num_threads(args.threads)
    data = args.data or str(default_dataset_path("simple_markets"))
    work = tempfile.mkdtemp(prefix="latency-")
    checkpoint = args.checkpoint or _train(data, work, [int(h) for h in args.hiddens.split(",")])
    bundle = os.path.join(work, "bundle")
    export = export_bundle(checkpoint, bundle, data=data, sample_size=1024, quantize=args.quantize)

    # load times: this process (torch imported), and a fresh interpreter
    warm_loads = []
    for _ in range(5):
        t0 = time.perf_counter()
        TeamPolicy.load(bundle)
        warm_loads.append(time.perf_counter() - t0)
    cold = []
    code = f"import time; t0 = time.perf_counter(); from rllib_algospace.inference import TeamPolicy; TeamPolicy.load({bundle!r}); print(time.perf_counter() - t0)"
    for _ in range(3):
        cold.append(float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]))

    bars = _bars(data)
    n = min(args.bars, len(bars) - 1000)
    start = len(bars) - n
    policy = TeamPolicy.load(bundle, threads=args.threads)
    twin = OnlineFeatures(policy.freq_seconds, policy.htf_multiple, has_volume=policy.has_volume)
    policy.warm_up(bars[:start])
    for b in bars[:start]:
        twin.update(b["timestamp"], b["open"], b["high"], b["low"], b["close"], b["volume"])
    assert policy.ready, "not enough history before the measured bars"
    modules = load_team_modules(checkpoint)
    agents = list(modules)

    def rllib_decide(obs):
        with torch.no_grad():
            return {a: int(torch.argmax(modules[a](torch.as_tensor(obs[a][None]))[0])) for a in agents}

    wall = {k: np.empty(n) for k in ("live", "features", "actors", "rllib")}
    cpu = {k: np.empty(n) for k in wall}
    agree = 0
    clock = time.perf_counter_ns
    cpu_clock = time.thread_time_ns  # this thread's CPU time: blind to time spent preempted
    if args.no_gc:
        import gc

        gc.disable()
    def timed(key, i, fn, *a):
        c0, t0 = cpu_clock(), clock()
        out = fn(*a)
        t1, c1 = clock(), cpu_clock()
        wall[key][i] = (t1 - t0) / 1e3
        cpu[key][i] = (c1 - c0) / 1e3
        return out

    load_before = os.getloadavg()
    for i, b in enumerate(bars[start:]):
        d = timed("live", i, policy.on_bar, b)
        timed("features", i, twin.update, b["timestamp"], b["open"], b["high"], b["low"], b["close"], b["volume"])
        timed("actors", i, policy._act)  # the four TorchScript actors on this bar's observations
        obs = policy.observations()
        ref = timed("rllib", i, rllib_decide, obs)
        agree += ref == d.actions
    result = {
        "command": "python benchmarks/decision_latency.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__, "torch_threads": args.threads},
        "data": data,
        "bars_measured": n,
        "actor_hiddens": policy.manifest["members"][0]["model_config"].get("hiddens"),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "wall_us": {k: _stats(v) for k, v in wall.items()},
        "thread_cpu_us": {k: _stats(v) for k, v in cpu.items()},
        "same_actions": agree / n,
        "precision": export["precision"],
        "quantization": export["quantization"],
        "bundle_bytes": bundle_size(bundle),
        "bundle_files": export["files"],
        "load_ms_warm_median": 1e3 * float(np.median(warm_loads)),
        "load_s_cold_median": float(np.median(cold)),
        "checkpoint": checkpoint,
    }
    print(json.dumps(result, indent=2))
    rows = [("live decision (features + 4 actors + rules)", "live"), ("  of which: feature update", "features"), ("  of which: 4 TorchScript actors", "actors"), ("RLlib forward_inference, 4 modules (same observations)", "rllib")]
    print(f"\nbundle: {result['precision']} actors {result['actor_hiddens']}, {result['bundle_bytes'] / 1e6:.2f} MB, load {result['load_ms_warm_median']:.1f} ms (torch imported) / {result['load_s_cold_median']:.2f} s (fresh process); same actions as RLlib on {result['same_actions']:.2%} of {n} bars")
    print(f"1-minute load average before / after the loop: {load_before[0]:.2f} / {result['load_average_after'][0]:.2f} (2 cores, shared)")
    print("\n| path | wall p50 us | wall p99 us | CPU p50 us | CPU p99 us | CPU p99.9 us |\n|---|---|---|---|---|---|")
    for label, key in rows:
        w, c = result["wall_us"][key], result["thread_cpu_us"][key]
        print(f"| {label} | {w['p50']:.0f} | {w['p99']:.0f} | {c['p50']:.0f} | {c['p99']:.0f} | {c['p99.9']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
