"""The Tune session every run shares (``algospace train``, ``tune`` and
``ensemble``): resources planned for this machine or cluster, Ray started or
joined, the experiment's folder checked, the run config, ``fit`` with storage
failures named in one line. Ray is imported inside the functions, never at
package import."""
from __future__ import annotations

import os
from dataclasses import dataclass

from rllib_algospace.config import TrainConfig


@dataclass
class ResolvedResources:
    num_env_runners: int
    num_gpus_per_learner: float
    notes: list[str]
    num_cpus_for_main_process: int = 1  # what the trial's own process asks Ray for
    learner_threads: int = 0  # torch threads of a local learner (0: as Ray sets them)
    cpus_per_env_runner: float = 1.0


def ray_address(cfg: TrainConfig) -> str | None:
    """The Ray cluster this run joins: ``resources.address``, else
    ``RAY_ADDRESS``; None: a Ray started on this machine."""
    return cfg.resources.address or os.environ.get("RAY_ADDRESS") or None


def start_ray(cfg: TrainConfig) -> None:
    """Start Ray on this machine, or join the cluster of ``ray_address``
    (train, tune and ensemble alike)."""
    import ray

    if ray.is_initialized():
        return
    ray.init(address=ray_address(cfg), include_dashboard=False, log_to_driver=cfg.experiment.verbose >= 2, configure_logging=False)


def planning_cpus(cfg: TrainConfig) -> tuple[int, str]:
    """CPUs that ``auto`` resources are planned with, and what they are:
    the cluster's (joined now) on a cluster, this machine's otherwise."""
    if ray_address(cfg):
        import ray

        start_ray(cfg)
        return max(1, int(ray.cluster_resources().get("CPU", 0))), "this cluster"
    return os.cpu_count() or 1, "this machine"


def resolve_resources(cfg: TrainConfig, cpus: int | None = None) -> ResolvedResources:
    """Fill in ``auto`` from this machine (or cluster), saying why: a trial whose requests
    exceed the machine waits forever (RLlib's default of 2 env runners does on 2 cores)."""
    res = cfg.resources
    where = "this machine"
    if cpus is None:
        cpus, where = planning_cpus(cfg)
    notes = []
    # PPO samples, then learns, then samples: env runners and the learner
    # never work at the same time, so they share the cores. The trial's own
    # process (the local learner) asks Ray for one core and the runners split
    # the rest; torch in the learner uses every core the trial may use.
    share = max(1, cpus // max(1, res.max_concurrent_trials))
    local_learner = res.num_learners == 0
    if res.num_env_runners == "auto":
        # remote learners hold cores of their own: one runner per core left
        runners = (0 if share < 2 else min(share, 8)) if local_learner else max(0, min(share - 1 - res.num_learners, 8))
        notes.append(f"num_env_runners=auto -> {runners} ({cpus} CPUs: {'sampling in the learner process' if runners == 0 else 'one core each; the learner uses the same cores between samplings'})")
    else:
        runners = int(res.num_env_runners)
    gpus_visible = gpu_count()
    if res.num_gpus_per_learner == "auto":
        gpus = 1.0 if gpus_visible else 0.0
        notes.append(f"num_gpus_per_learner=auto -> {gpus:g} ({gpus_visible} GPU(s) visible)")
    else:
        gpus = float(res.num_gpus_per_learner)
    main_cpus = 1 if runners > 0 or not local_learner else share
    per_runner = 1.0
    if local_learner and runners > 0 and res.num_env_runners == "auto":
        per_runner = max(share - 1, 1) / runners
    needed = main_cpus + runners * per_runner + res.num_learners
    if needed > cpus:
        notes.append(f"warning: the trial asks for {needed:g} CPUs and {where} has {cpus}; it may wait for resources")
    return ResolvedResources(runners, gpus, notes, main_cpus, share if local_learner else 0, per_runner)


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:
        return 0


def experiment_path(cfg: TrainConfig) -> str:
    return f"{cfg.experiment.storage_path.rstrip('/')}/{cfg.experiment.name}"


def experiment_exists(cfg: TrainConfig) -> bool:
    """Whether an experiment of this name is already in the storage (a local
    folder or a URI pyarrow understands)."""
    path = experiment_path(cfg)
    if not cfg.experiment.storage_is_uri:
        return os.path.exists(path)
    import pyarrow.fs

    fs, inner = pyarrow.fs.FileSystem.from_uri(path)
    return fs.get_file_info(inner).type != pyarrow.fs.FileType.NotFound


def clear_experiment(cfg: TrainConfig) -> None:
    """Remove the experiment folder (``--overwrite``)."""
    path = experiment_path(cfg)
    if not cfg.experiment.storage_is_uri:
        import shutil

        shutil.rmtree(path)
        return
    import pyarrow.fs

    fs, inner = pyarrow.fs.FileSystem.from_uri(path)
    fs.delete_dir(inner)


# What an experiment needs free at its start: a few checkpoints (about 1.5 MB
# each with the default networks), Tune's logs and state. Less than this and
# the run would die at its first checkpoint.
TRAIN_FREE_SPACE_BYTES = 50 * 2**20


def require_storage(cfg: TrainConfig) -> None:
    """Stop before Ray starts when the experiment's folder cannot be written
    (read-only, a file in the way, the disk (nearly) full): ``DataError``
    naming the folder. URIs are left to their file system."""
    if cfg.experiment.storage_is_uri:
        return
    from envs.data.store import require_free_space

    require_free_space(experiment_path(cfg), TRAIN_FREE_SPACE_BYTES, "the experiment")


def storage_problem(cfg: TrainConfig) -> str | None:
    """What is wrong with the experiment's storage now (full, read-only), or None."""
    if cfg.experiment.storage_is_uri:
        return None
    from envs.data import store

    return store.storage_problem(experiment_path(cfg), TRAIN_FREE_SPACE_BYTES)


def fit(tuner, cfg: TrainConfig):
    """``tuner.fit()``; when it dies because the storage filled up or turned
    read-only (Tune itself then fails reading back what it half wrote), one
    ``DataError`` naming the experiment and where to continue from."""
    try:
        return tuner.fit()
    except Exception as exc:
        from envs.data.errors import DataError
        from rllib_algospace.artifacts import storage_failure, storage_stop

        disk = storage_failure(exc)
        problem = os.strerror(disk.errno) if disk is not None else storage_problem(cfg)
        if problem is None:
            raise
        raise DataError(experiment_path(cfg), None, storage_stop(problem, experiment_path(cfg))) from exc


def run_config(cfg: TrainConfig, callbacks: list):
    from ray import tune

    ck = cfg.experiment.checkpoint
    return tune.RunConfig(
        name=cfg.experiment.name,
        storage_path=cfg.experiment.storage_path,
        stop=cfg.experiment.stop.tune_stop(),
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=None if ck.keep is None else ck.keep + 1,  # best K plus the latest
            checkpoint_score_attribute=ck.score,
            checkpoint_score_order=ck.score_mode,
            checkpoint_frequency=ck.every_iterations,
            checkpoint_at_end=True,
        ),
        failure_config=tune.FailureConfig(max_failures=1),
        callbacks=callbacks,
        # Our progress line replaces Tune's tables at the default verbosity.
        verbose=0 if cfg.experiment.verbose <= 1 else cfg.experiment.verbose - 1,
    )


def trial_dirname(trial) -> str:
    return f"{trial.trainable_name}_{trial.trial_id}"


def restore_tuner(cfg: TrainConfig, trainable, callbacks: list, *, what: str = "experiment", note: str = ""):
    """The Tuner of an experiment to continue (train, tune and ensemble
    alike): a local experiment's files put in order first (Tune's state files
    and result lines a kill cut short), where each trial continues said, this
    session's driver callbacks in place of the pickled ones."""
    from ray import tune

    from rllib_algospace.artifacts import describe_resume, prepare_resume
    from rllib_algospace.tune_internals import replace_driver_callbacks, report_failed_restore

    path = experiment_path(cfg)
    local = not cfg.experiment.storage_is_uri
    if local:
        for line in prepare_resume(path):
            print(line)
    if not tune.Tuner.can_restore(path):
        raise FileNotFoundError(f"{path}: no {what} to resume there (run without --resume first)")
    print(f"resuming {path}{note}")
    if local:
        for line in describe_resume(path):
            print(line)
    report_failed_restore()
    tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    replace_driver_callbacks(tuner, callbacks)
    return tuner
