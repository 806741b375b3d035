"""Helpers shared by test modules (importable as ``helpers``: pytest puts this
folder on ``sys.path``)."""
from __future__ import annotations

import os
import signal

# Tiny training runs: 40-bar episodes, 128 env steps per iteration over 2 envs.
TINY_TRAINING = {
    "env.episode_length": 40,
    "algorithm.train_batch_size": 128,
    "algorithm.minibatch_size": 64,
    "algorithm.num_epochs": 1,
    "algorithm.actor_hiddens": [16],
    "algorithm.critic_hiddens": [16],
    "algorithm.critic_warmup_steps": 128,  # the first iteration (warm start from the rule: the default)
    "training.warm_start_steps": 2000,  # a small clone
    "training.warm_start_epochs": 1,
    "resources.num_envs_per_env_runner": 2,
    "evaluation.episodes": 1,
    "evaluation.episode_length": 40,
}


def kill_tree(proc) -> None:
    """SIGKILL a driver we started and every process it started (found by PID
    before the kill; nothing else is touched)."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def mount_tmpfs(folder, size: str, *, read_only: bool = False) -> bool:
    """Mount a small tmpfs (a real full or read-only disk) on ``folder``;
    False where this machine does not allow it (not root, no mount)."""
    import subprocess

    os.makedirs(folder, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def unmount(folder) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)
