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


class SlowMount:
    """A running ``tests/slow_fs.py`` on ``folder`` (see ``mount_slow_fs``)."""

    def __init__(self, proc, folder, log_path):
        self.proc, self.folder, self.log_path = proc, str(folder), str(log_path)
        self.aborted = False

    def abort(self) -> None:
        """Abort the FUSE connection: every process waiting on the mount
        gets an error at once instead of waiting for an answer (the kernel's
        ``/sys/fs/fuse/connections/<dev>/abort``), then unmount."""
        import subprocess

        self.aborted = True
        connections = "/sys/fs/fuse/connections"
        if not (os.path.isdir(connections) and os.listdir(connections)):  # fusectl not mounted yet
            subprocess.run(["mount", "-t", "fusectl", "none", connections], capture_output=True, timeout=30)
        try:
            with open(os.path.join(connections, str(os.minor(os.stat(self.folder).st_dev)), "abort"), "w") as f:
                f.write("1")
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        """Unmount (lazily: a process still inside lets go later) and end the
        FUSE process, which exits once the kernel drops the mount."""
        import subprocess

        unmount(self.folder)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


def mount_slow_fs(backing, folder, delay_s: float):
    """Mount ``tests/slow_fs.py`` (every write, create, rename, mkdir and
    fsync waits ``delay_s``, like a Drive mount) on ``folder``, backed by
    ``backing``. Returns a ``SlowMount``, or None where this machine cannot
    (no libfuse, no fusepy, no /dev/fuse or no right to mount)."""
    import subprocess
    import sys
    import time

    os.makedirs(backing, exist_ok=True)
    os.makedirs(folder, exist_ok=True)
    if not os.path.exists("/dev/fuse"):
        return None
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slow_fs.py")
    log_path = os.path.join(os.path.dirname(os.path.abspath(backing)), "slow_fs.log")
    # The server's output goes to a file: a pipe nobody reads would block it
    # once full, and every process on the mount would wait with it.
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, script, str(backing), str(folder), str(delay_s), log_path], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            return None
        with open("/proc/mounts") as f:
            if any(line.split()[1] == os.path.realpath(folder) for line in f):
                return SlowMount(proc, folder, log_path)
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=10)
    return None
