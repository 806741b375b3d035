"""``algospace train``: a Tune experiment around MAPPO.

Tune owns trials, checkpoints (every N iterations, every M minutes, at the end;
best K by validation Sharpe plus the latest), resume and logging; this module
only turns a validated ``TrainConfig`` into an ``AlgorithmConfig`` and a
``Tuner``. Ray is imported here, never at package import.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from envs.market.trading import AGENTS
from rllib_algospace import tune_callbacks
from rllib_algospace.config import TrainConfig
from rllib_algospace.tune_session import (
    ResolvedResources,
    experiment_path,
    fit,
    gpu_count,
    ray_address,
    require_storage,
    resolve_resources,
    restore_tuner,
    run_config,
    start_ray,
    storage_problem,
    trial_dirname,
)
from rllib_algospace.artifacts import write_atomically

logger = logging.getLogger(__name__)

WARM_START_FILE = "warm_start.pt"  # in the experiment folder


def dataset_path(cfg: TrainConfig) -> str:
    """The market file to train on; the default data is generated here, before
    Ray starts, so env runners never race to build it."""
    if cfg.data.path:
        return cfg.data.path
    from envs.data.default import default_dataset_path

    return str(default_dataset_path(cfg.data.preset))


def rllib_callbacks(cfg: TrainConfig) -> list:
    """RLlib callback classes of a run (trial side). Features that need hooks in
    the algorithm (curriculum, frozen agents, ...) add theirs here."""
    from rllib_algospace.callbacks import TeamMetricsCallback

    callbacks = [TeamMetricsCallback.with_checkpoint_minutes(cfg.experiment.checkpoint.every_minutes)]
    if cfg.algorithm.cost_warmup_steps or cfg.algorithm.cost_free_steps:
        from rllib_algospace.callbacks import CostWarmupCallback

        callbacks.append(CostWarmupCallback.with_warmup(cfg.algorithm.cost_warmup_steps, cfg.algorithm.cost_free_steps))
    if cfg.curriculum.stages:  # after TeamMetricsCallback: reads the val_* it sets
        from rllib_algospace.curriculum import callback_class

        callbacks.append(callback_class(cfg))
    return callbacks


def build_algorithm_config(cfg: TrainConfig, *, data_path: str | None = None, resources: ResolvedResources | None = None, warm_start: str | None = None):
    """The ``MAPPOConfig`` of a ``TrainConfig`` (independent PPO when
    ``algorithm.centralized_critic`` is false): the team env on RLlib's
    single-agent env runner, one ``TeamModule``. ``warm_start``: the
    warm-start file the actors start from (``prepare_warm_start``)."""
    from envs.market.env import input_statistics
    from envs.market.team import REGIME_LABEL, STATE_INDEX, TEAM_LAYOUT, TeamMarketEnv
    from rllib_algospace.mappo import MAPPOConfig
    from rllib_algospace.rllib_env import register

    env_name = register()
    resources = resources or resolve_resources(cfg)
    data_path = data_path or dataset_path(cfg)
    algo = cfg.algorithm
    # Training and validation read infos only at an episode's end.
    overrides = {"infos": "episode"}
    if not cfg.env.get("tasks"):
        overrides["data"] = data_path  # the default data, resolved before Ray starts
    from rllib_algospace.curriculum import env_overrides as curriculum_env_overrides

    overrides.update(curriculum_env_overrides(cfg))  # all stages' markets; starts at the first
    env_config = cfg.env_config(split="train", **overrides)
    probe = TeamMarketEnv(**env_config)  # a bad env key or market file stops here, before Ray starts
    try:
        statistics = input_statistics(probe.market_env.market) if algo.scale_inputs else None
    finally:
        probe.close()
    model_config = {"hiddens": list(algo.actor_hiddens), "activation": algo.activation}
    if warm_start:
        model_config["warm_start"] = warm_start
    if statistics is not None:
        model_config["input_statistics"] = statistics

    amp = None
    if algo.mixed_precision:
        if resources.num_gpus_per_learner > 0 and gpu_count() > 0:
            amp = "fp16"
        else:
            logger.warning("algorithm.mixed_precision is on but the learner has no GPU: ignored (training in float32)")

    config = (
        MAPPOConfig()
        .environment(env_name, env_config=env_config)
        .framework("torch", torch_skip_nan_gradients=amp is not None)
        .env_runners(
            num_env_runners=resources.num_env_runners,
            num_envs_per_env_runner=cfg.resources.num_envs_per_env_runner,
            num_cpus_per_env_runner=resources.cpus_per_env_runner,
            rollout_fragment_length="auto",
        )
        .resources(num_cpus_for_main_process=resources.num_cpus_for_main_process)
        .learners(
            num_learners=cfg.resources.num_learners,
            num_gpus_per_learner=resources.num_gpus_per_learner,
            # a local learner's CPUs are the main process's (RLlib asks Ray for the larger of the two)
            num_cpus_per_learner=resources.num_cpus_for_main_process if cfg.resources.num_learners == 0 else "auto",
        )
        .rl_module(model_config=model_config)
        .training(
            lr=algo.lr,
            gamma=algo.gamma,
            lambda_=algo.lambda_,
            clip_param=algo.clip_param,
            entropy_coeff=algo.entropy_coeff,
            grad_clip=algo.grad_clip,
            train_batch_size_per_learner=algo.train_batch_size,
            minibatch_size=algo.minibatch_size,
            num_epochs=algo.num_epochs,
        )
        .mappo(
            centralized_critic=algo.centralized_critic,
            critic_input=algo.critic_input,
            agent_order=list(AGENTS),
            obs_layout=TEAM_LAYOUT,
            state_index=STATE_INDEX,
            critic_hiddens=list(algo.critic_hiddens),
            value_norm=algo.value_normalization,
            critic_value_clip=algo.vf_clip_param,
            critic_loss_coeff=algo.vf_loss_coeff,
            mappo_amp=amp,
            learner_threads=resources.learner_threads or None,
            critic_warmup_steps=algo.critic_warmup_steps if warm_start else 0,
            teacher_kl_coeff=algo.teacher_kl_coeff if warm_start else 0.0,
            teacher_kl_steps=algo.teacher_kl_steps,
            regime_aux_coeff=algo.regime_aux_coeff,
            regime_label_index=TEAM_LAYOUT[REGIME_LABEL][0],
            experiment_folder=None if cfg.experiment.storage_is_uri else os.path.abspath(experiment_path(cfg)),
        )
        .callbacks(rllib_callbacks(cfg))
        .debugging(seed=cfg.experiment.seed)
    )
    from rllib_algospace import per_agent  # per-agent training: frozen agents, --init-from

    init = per_agent.plan(cfg)
    for line in per_agent.describe(cfg, init):
        print(line)
    per_agent.configure(config, init)
    if amp is not None:
        import torch

        config.experimental(_torch_grad_scaler_class=torch.amp.GradScaler)
    ev = cfg.evaluation
    if ev.every_iterations > 0:
        eval_env = {**cfg.eval_env_config(), **overrides}
        config.evaluation(
            evaluation_interval=ev.every_iterations,
            evaluation_duration=1 if ev.full_split else ev.episodes,
            evaluation_duration_unit="episodes",
            evaluation_num_env_runners=0,
            # One env per episode, stepped together (RLlib runs at least one
            # episode per sub-env); one env for a pass over the whole split.
            evaluation_config=MAPPOConfig.overrides(env_config=eval_env, explore=False, num_envs_per_env_runner=1 if ev.full_split else max(1, min(ev.episodes, 16))),
        )
    return config


def warm_start_file(cfg: TrainConfig) -> str:
    """Where a run's warm start is written: in the experiment folder (a local
    storage), else in the user's cache."""
    if not cfg.experiment.storage_is_uri:
        return os.path.join(experiment_path(cfg), WARM_START_FILE)
    import hashlib

    key = hashlib.sha256(experiment_path(cfg).encode()).hexdigest()[:12]
    return os.path.join(os.path.expanduser("~/.cache/rllib-algospace/warm_start"), f"{cfg.experiment.name}-{key}.pt")


def warm_start_for(cfg: TrainConfig, data_path: str, folder: str, *, progress=print) -> str | None:
    """The warm start of one trial of a search or one ensemble member: a
    clone per teacher, network shape and seed in ``folder``, made on first
    use (trials that share a shape and seed share it); a given file as is."""
    import hashlib
    import json

    from rllib_algospace.teacher import WARM_START_FORMAT

    tr, algo = cfg.training, cfg.algorithm
    if tr.warm_start is None or tr.init_from is not None or tr.warm_start not in ("rule", "oracle"):
        return prepare_warm_start(cfg, data_path, progress=progress)
    shape = "x".join(map(str, algo.actor_hiddens)) + f"-{algo.activation}"
    # Everything the clone depends on names it: a trial with other costs or data never reuses another's teacher.
    made_from = {"data": os.path.abspath(data_path), "env": cfg.env, "training": cfg.to_dict()["training"], "shape": shape, "scale_inputs": algo.scale_inputs, "seed": cfg.experiment.seed, "experiment": experiment_path(cfg), "format": WARM_START_FORMAT}
    key = hashlib.sha256(json.dumps(made_from, sort_keys=True, default=str).encode()).hexdigest()[:12]
    out = os.path.join(folder, f"warm_start-{tr.warm_start}-{shape}-s{cfg.experiment.seed}-{key}.pt")
    if not os.path.exists(out):
        prepare_warm_start(cfg, data_path, out, progress=progress)
    return out


def prepare_warm_start(cfg: TrainConfig, data_path: str, out: str | None = None, *, progress=print) -> str | None:
    """The warm-start file of ``training.warm_start``: a given file (checked
    against this run's network shape), or a fresh behaviour clone of the rule
    or oracle teacher on the train split written to ``out`` (default
    ``warm_start_file(cfg)``); None without a warm start."""
    from rllib_algospace.teacher import TEACHERS, load_warm_start, pretrain

    tr, algo = cfg.training, cfg.algorithm
    if tr.warm_start is None:
        return None
    if tr.init_from is not None:
        progress(f"warm start: none (training.init_from {tr.init_from} gives the starting weights)")
        return None
    if tr.warm_start not in TEACHERS:
        load_warm_start(tr.warm_start, hiddens=list(algo.actor_hiddens), activation=algo.activation)
        progress(f"warm start: {tr.warm_start}")
        return tr.warm_start
    out = out or warm_start_file(cfg)
    env_config = cfg.env_config(split="train", **({} if cfg.env.get("tasks") else {"data": data_path}))
    pretrain(
        env_config,
        out,
        teacher=tr.warm_start,
        steps=tr.warm_start_steps,
        epochs=tr.warm_start_epochs,
        hiddens=list(algo.actor_hiddens),
        activation=algo.activation,
        explore=tr.warm_start_explore,
        oracle_cost_multiple=tr.oracle_cost_multiple,
        scale_inputs=algo.scale_inputs,
        seed=cfg.experiment.seed,
        progress=progress,
    )
    return out


def run_record(cfg: TrainConfig, data_path: str, warm_start: str | None) -> dict:
    """What a run was: its resolved config, the package version, the git
    commit of the code (when it is a git checkout), library versions, the
    data and the warm start."""
    import platform
    import subprocess
    from importlib import metadata

    from rllib_algospace import __version__

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    source = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "-C", source, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", source, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10).stdout.strip()) if commit else None
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    from envs.data.provenance import data_record

    return {
        "package": "rllib-algospace",
        "version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": {name: version(name) for name in ("ray", "torch", "numpy", "gymnasium", "pettingzoo", "optuna", "h5py", "pandas")},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": cfg.to_dict(),
        "data": data_record(data_path) if data_path and os.path.isfile(data_path) else None,
        "warm_start": warm_start,
    }


def write_run_record(cfg: TrainConfig, data_path: str, warm_start: str | None) -> str | None:
    """``algospace_run.json`` in the experiment folder (local storage), written
    atomically; the score it records ranks the run's checkpoints everywhere
    (``checkpoints.best_checkpoints``)."""
    import json

    from rllib_algospace.checkpoints import RUN_FILE

    if cfg.experiment.storage_is_uri:
        return None
    folder = experiment_path(cfg)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, RUN_FILE)
    record = run_record(cfg, data_path, warm_start)
    write_atomically(path, lambda fh: fh.write(json.dumps(record, indent=1, default=str).encode()))
    return path


@dataclass
class TrainOutcome:
    experiment_path: str
    best_checkpoint: str | None
    latest_checkpoint: str | None
    iterations: int
    interrupted: bool
    error: str | None
    metrics: dict


def start_experiment(cfg: TrainConfig, notes: list[str], *, resume: bool) -> str:
    """The start every Tune run of a search or an ensemble shares: print the
    resource notes and the data, check the storage, and (a new run) write the
    run record, whose score ranks the trials' checkpoints everywhere.
    Returns the data path."""
    for note in notes:
        print(note)
    data_path = dataset_path(cfg)
    print(f"data: {data_path}")
    require_storage(cfg)
    if not resume:
        write_run_record(cfg, data_path, None)
    return data_path


def train(cfg: TrainConfig, *, resume: bool = False) -> TrainOutcome:
    """Run (or, with ``resume``, continue) the experiment described by ``cfg``."""
    import ray
    from ray import tune

    from rllib_algospace.mappo import MAPPO
    from rllib_algospace.rllib_env import register

    resources = resolve_resources(cfg)
    for note in resources.notes:
        print(note)
    data_path = dataset_path(cfg)
    print(f"data: {data_path}")
    if cfg.curriculum.stages:
        print("curriculum: " + " -> ".join(f"{s.name} ({s.episodes} episodes)" for s in cfg.curriculum.stages))
    if cfg.training.init_from is not None and not resume:
        from rllib_algospace.per_agent import plan

        plan(cfg)  # a checkpoint that does not fit this run stops here, before Ray starts
    path = experiment_path(cfg)
    require_storage(cfg)
    print(f"results: {path} (TensorBoard: tensorboard --logdir {path}, with pip install 'rllib-algospace[tensorboard]')")
    warm_start = None if resume else prepare_warm_start(cfg, data_path)
    if not resume:
        write_run_record(cfg, data_path, warm_start)
    callbacks = tune_callbacks.driver_callbacks(cfg, time_budget_s=cfg.experiment.stop.time_budget, stop_iterations=cfg.experiment.stop.training_iteration)

    start_ray(cfg)
    if ray_address(cfg):
        print(f"Ray cluster: {ray_address(cfg)} ({len([n for n in ray.nodes() if n.get('Alive')])} nodes, {int(ray.cluster_resources().get('CPU', 0))} CPUs)")
    register()
    if resume:
        tuner = restore_tuner(cfg, MAPPO, callbacks)
    else:
        tuner = tune.Tuner(
            MAPPO,
            param_space=build_algorithm_config(cfg, data_path=data_path, resources=resources, warm_start=warm_start),
            tune_config=tune.TuneConfig(trial_dirname_creator=trial_dirname, max_concurrent_trials=cfg.resources.max_concurrent_trials),
            run_config=run_config(cfg, callbacks),
        )
    grid = fit(tuner, cfg)
    return _outcome(cfg, path, grid)


def _outcome(cfg: TrainConfig, path: str, grid) -> TrainOutcome:
    from rllib_algospace.artifacts import describe_failure
    from rllib_algospace.checkpoints import CheckpointError, find_checkpoint

    if len(grid) == 0:  # Tune dropped its record of the experiment and found nothing to run
        return TrainOutcome(experiment_path=path, best_checkpoint=None, latest_checkpoint=None, iterations=0, interrupted=False,
                            error=f"{path}: Tune ran no trial (its record of the experiment holds none); start it again with --overwrite", metrics={})
    result = grid[0]
    metrics = result.metrics or {}
    best = None
    try:  # the one definition of the best checkpoint (checkpoints.best_checkpoints)
        best = str(find_checkpoint(result.path)) if result.path and not cfg.experiment.storage_is_uri else None
    except CheckpointError:
        best = None
    if best is None:
        try:
            best_ckpt = result.get_best_checkpoint(cfg.experiment.checkpoint.score, cfg.experiment.checkpoint.score_mode)
            best = best_ckpt.path if best_ckpt else None
        except Exception:
            best = None
    latest = result.checkpoint.path if result.checkpoint else None
    return TrainOutcome(
        experiment_path=path,
        best_checkpoint=best or latest,
        latest_checkpoint=latest,
        iterations=int(metrics.get("training_iteration", 0)),
        interrupted=not metrics.get("done", False) and result.error is None,
        error=None if result.error is None else describe_failure(result.error, path, result.path, storage_problem=storage_problem(cfg)),
        metrics=metrics,
    )
