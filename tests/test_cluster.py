"""A real multi-node Ray cluster on this machine: a head node with no CPUs
and two worker nodes of two CPUs each (``ray.cluster_utils.Cluster``, run in
a helper process so this test process keeps its own Ray session).

* ``algospace train --address`` joins it: the trial and its env runner can
  only be placed on the worker nodes (the head has no CPU to give).
* ``algospace tune --address`` with two trials of two CPUs each runs them
  at the same time, which the cluster can only do with one trial per node.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from helpers import kill_tree

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

CLUSTER_SCRIPT = textwrap.dedent(
    """
    import sys
    from ray.cluster_utils import Cluster

    memory = 80 * 2**20
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": memory, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=2, object_store_memory=memory)
    cluster.wait_for_nodes()
    print(cluster.address, flush=True)
    sys.stdin.read()  # until the test closes our stdin
    cluster.shutdown()
    """
)

# A small run: 256-bar episodes, 512 steps per iteration, one env runner.
SMALL = {
    "experiment.stop.training_iteration": 2,
    "experiment.stop.timesteps_total": None,
    "experiment.stop.time_budget": None,
    "experiment.checkpoint.every_iterations": 1,
    "experiment.checkpoint.every_minutes": None,
    "env.episode_length": 256,
    "algorithm.train_batch_size": 512,
    "algorithm.minibatch_size": 128,
    "algorithm.num_epochs": 1,
    "algorithm.actor_hiddens": [16, 16],
    "algorithm.critic_hiddens": [16, 16],
    "training.warm_start": None,
    "resources.num_env_runners": 1,
    "resources.num_envs_per_env_runner": 2,
    "evaluation.every_iterations": 1,
    "evaluation.full_split": False,
    "evaluation.episodes": 1,
    "evaluation.episode_length": 256,
}


@pytest.fixture(scope="module")
def cluster_address():
    proc = subprocess.Popen([sys.executable, "-c", CLUSTER_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        address = proc.stdout.readline().strip()
        if not address:
            pytest.fail("the cluster did not start:\n" + proc.stderr.read()[-3000:])
        yield address
    finally:
        try:
            proc.stdin.close()
            proc.wait(timeout=60)
        except Exception:
            kill_tree(proc)


def _env():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    return env


def _set(tree: dict, dotted: str, value) -> None:
    *path, last = dotted.split(".")
    for key in path:
        tree = tree.setdefault(key, {})
    tree[last] = value


def test_train_joins_the_cluster_and_runs_on_its_worker_nodes(cluster_address, market_file, tmp_path):
    overrides = [f"{k}={json.dumps(v)}" for k, v in SMALL.items()]
    done = subprocess.run(
        [sys.executable, "-m", "rllib_algospace.cli", "train", *overrides, "--address", cluster_address, "--data", market_file, "--storage", str(tmp_path), "--name", "on_cluster", "--no-evaluate"],
        env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"Ray cluster: {cluster_address} (3 nodes, 4 CPUs)" in done.stdout, done.stdout[-3000:]
    trial = next((tmp_path / "on_cluster").glob("MAPPO_*"))
    results = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
    assert results[-1]["training_iteration"] == 2
    assert results[-1]["num_env_steps_sampled_lifetime"] == 2 * 512


def test_tune_spreads_two_trials_over_the_worker_nodes(cluster_address, market_file, tmp_path):
    config = yaml.safe_load((ROOT / "tune_configs" / "hpo.yaml").read_text())
    for key, value in {**SMALL, "data.path": market_file}.items():
        _set(config, key, value)
    config["search"].update({"trials": 2, "max_concurrent": 2, "scheduler": {"type": "none"}, "space": {"algorithm.lr": {"type": "loguniform", "low": 1.0e-4, "high": 1.0e-3}}})
    path = tmp_path / "hpo.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    done = subprocess.run(
        [sys.executable, "-m", "rllib_algospace.cli", "tune", "--config", str(path), "--address", cluster_address, "--storage", str(tmp_path / "results"), "--name", "spread"],
        env=_env(), capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    spans = []
    for trial in sorted((tmp_path / "results" / "spread").glob("*_*")):
        lines = (trial / "result.json").read_text().splitlines() if (trial / "result.json").exists() else []
        if lines:
            results = [json.loads(line) for line in lines]
            # from the start of its training (its first result less the time trained) to its last result
            spans.append((min(r["timestamp"] - r["time_total_s"] for r in results), max(r["timestamp"] for r in results), len(results)))
    assert len(spans) == 2 and all(n == 2 for _, _, n in spans), spans
    (a_start, a_end, _), (b_start, b_end, _) = spans
    # each trial holds 2 CPUs (its process and one env runner) and each worker node has 2:
    # running at the same time, they ran on different nodes
    assert a_start <= b_end and b_start <= a_end, f"the trials did not overlap: {spans}"
