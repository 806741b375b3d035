"""``run_search``: the Tune run of an HPO config (resources, scheduler,
searcher, restore) and its outcome."""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from rllib_algospace.artifacts import describe_failure, write_atomically
from rllib_algospace.config import (
    ConfigError,
)
from rllib_algospace.hpo.search_space import HpoConfig, INFO_FILE, SPEC_KEY, STUDY_FILE, load_hpo_config
from rllib_algospace.hpo.study import fail_stale_trials, mask_url, open_study, storage_url, worker_seed
from rllib_algospace.hpo.trials import lazy_class, trial_spec
from rllib_algospace.hpo.reports import SearchOutcome, report
from rllib_algospace.tune_internals import restored_search_alg

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------
_RUNS = {"n": 0}


def _output_dir(hpo: HpoConfig) -> str:
    """The experiment folder, or (for URI storage) a local folder for the study
    file, tables and plots."""
    from rllib_algospace.tune_session import experiment_path

    if hpo.base.experiment.storage_is_uri:
        return os.path.abspath(f"{hpo.base.experiment.name}-hpo")
    return experiment_path(hpo.base)


def _max_concurrent(hpo: HpoConfig, cpus: float, gpus: float, runners: int, gpus_per_learner: float, cpus_per_runner: float = 1.0) -> tuple[int, str]:
    """Trials at once. A trial takes a core for its own process, its env
    runners' share and its remote learners; its learner's torch threads then
    follow the cores its share leaves (``resources.max_concurrent_trials``)."""
    res = hpo.base.resources
    cpu_per = 1 + runners * cpus_per_runner + res.num_learners
    gpu_per = gpus_per_learner * max(1, res.num_learners)
    want = hpo.search.max_concurrent
    if want != "auto":
        return min(int(want), hpo.search.trials), f"max_concurrent: {want}"
    fit = int(cpus // cpu_per)
    if gpu_per > 0:
        fit = min(fit, int(gpus // gpu_per + 1e-9))
    n = max(1, min(fit, hpo.search.trials))
    return n, f"max_concurrent=auto -> {n} ({cpus:g} CPUs, {gpus:g} GPUs; a trial takes {cpu_per:g} CPU(s){f' and {gpu_per:g} GPU' if gpu_per else ''})"


def _scheduler(hpo: HpoConfig):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    s, search = hpo.search.scheduler, hpo.search
    if s.type == "asha":
        return ASHAScheduler(
            time_attr="training_iteration", metric=search.metric, mode=search.mode, max_t=hpo.max_t, grace_period=s.grace_period, reduction_factor=s.reduction_factor
        )
    if s.type == "median":
        return MedianStoppingRule(time_attr="training_iteration", metric=search.metric, mode=search.mode, grace_period=s.grace_period, min_samples_required=2)
    return FIFOScheduler()


def _read_info(path: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: str, data: dict) -> None:
    write_atomically(path, lambda fh: fh.write(json.dumps(data, indent=2, default=str).encode()))


def run_search(config: HpoConfig | str | os.PathLike | None = None, *, resume: bool = False, **load_kwargs) -> SearchOutcome:
    """Run (or, with ``resume``, continue) the search. ``config``: an
    :class:`HpoConfig`, or the path of an HPO YAML (``None``: the built-in
    search) loaded with ``load_hpo_config(config, **load_kwargs)``."""
    hpo = config if isinstance(config, HpoConfig) else load_hpo_config(config, check_files=True, **load_kwargs)
    import optuna
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from rllib_algospace import training, tune_callbacks, tune_session
    from rllib_algospace.rllib_env import register

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import warnings

    # a resumed trial reports its first iterations again: Optuna keeps the first values
    warnings.filterwarnings("ignore", message="The reported value is ignored because this `step", category=UserWarning)
    search, base = hpo.search, hpo.base
    path = tune_session.experiment_path(base)
    out_dir = _output_dir(hpo)
    os.makedirs(out_dir, exist_ok=True)
    info_path = os.path.join(out_dir, INFO_FILE)
    previous = _read_info(info_path) if resume else {}

    if search.study_storage:
        url, shared = storage_url(search.study_storage), True
    elif previous.get("study_storage_url"):
        url, shared = previous["study_storage_url"], bool(previous.get("shared"))
    elif previous.get("shared"):
        raise ConfigError(f"{path}: give --study-storage again to resume (its URL holds a password, which is not saved)")
    else:
        url, shared = storage_url(os.path.join(out_dir, STUDY_FILE)), False
    _RUNS["n"] += 1
    seed, worker = worker_seed(search.sampler_seed, shared, _RUNS["n"])
    if resume and "sampler_seed" in previous:
        seed = int(previous["sampler_seed"])  # the restored sampler carries on
    info = {
        "worker": worker,
        "sampler_seed": seed,
        "base_sampler_seed": search.sampler_seed,
        "shared": shared,
        "study_name": search.study_name,
        "study_storage": mask_url(url),
        "study_storage_url": url if mask_url(url) == url else None,  # never a password in the file
        "experiment": path,
        "metrics": search.metrics,
        "modes": search.modes,
        "space": {d.key: d.to_dict() for d in search.space},
        "source": hpo.source,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "resumed": resume,
    }
    busy = ConfigError(
        f"{out_dir}: a search already uses this experiment folder; continue it with --resume, "
        "give this one its own name (--name), or delete the folder to start again"
    )
    if not resume and os.path.exists(info_path):
        raise busy
    storage, _study = open_study(url, search.study_name, search.directions, search.metrics)
    if not resume:
        try:
            with open(info_path, "x") as f:
                json.dump(info, f, indent=2)
        except FileExistsError:
            raise busy from None
    else:
        _write_json(info_path, {**previous, **{k: v for k, v in info.items() if k != "sampler_seed"}, "sampler_seed": seed})
    print(f"study: {search.study_name} in {mask_url(url)} ({'shared' if shared else 'private'}); {len(_study.trials)} trial(s) there so far")
    print(f"sampler: TPE, seed {seed}" + (f" (sampler_seed {search.sampler_seed} + hash of worker {worker})" if shared else "") + f"; objective: {', '.join(f'{m} ({d})' for m, d in zip(search.metrics, search.modes))}")

    resources = tune_session.resolve_resources(base)
    data_path = training.start_experiment(base, resources.notes, resume=resume)

    # per-trial budgets are Tune stops here, and the scheduler stops trials early: no fixed total
    callbacks = tune_callbacks.driver_callbacks(base, time_budget_s=None, stop_iterations=None)
    callbacks.append(tune_callbacks.trials_progress_callback(hpo.search.trials))
    tune_session.start_ray(base)
    register()
    trial_cls, searcher_cls = lazy_class("AlgospaceTrial"), lazy_class("AlgospaceOptunaSearch")

    if resume:
        tuner = tune_session.restore_tuner(base, trial_cls, callbacks, what="search")
        restored_search_alg(tuner).continue_with(url, worker)
    else:
        cluster = ray.cluster_resources()
        max_concurrent, note = _max_concurrent(hpo, cluster.get("CPU", os.cpu_count() or 1), cluster.get("GPU", 0), resources.num_env_runners, resources.num_gpus_per_learner, resources.cpus_per_env_runner)
        print(note)
        print(f"{search.trials} trial(s); scheduler: {search.scheduler.type}" + ("" if search.scheduler.type == "none" else f" (grace {search.scheduler.grace_period}, max_t {hpo.max_t} iterations)"))
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=False)
        searcher = searcher_cls(
            space={d.key: d.optuna() for d in search.space},
            metric=search.metrics if search.multi_objective else search.metric,
            mode=search.modes if search.multi_objective else search.mode,
            sampler=sampler,
            study_name=search.study_name,
            storage=storage,
            trial_spec=trial_spec(hpo, data_path, path, max_concurrent),
            worker={"worker": worker, "sampler_seed": seed, "experiment": path},
            shared=shared,
        )
        run_cfg = tune_session.run_config(base, callbacks)
        stop = dict(run_cfg.stop or {})
        if base.experiment.stop.time_budget:
            stop["time_total_s"] = base.experiment.stop.time_budget  # per trial
        run_cfg.stop = stop
        tuner = tune.Tuner(
            trial_cls,
            param_space={SPEC_KEY: trial_spec(hpo, data_path, path, max_concurrent)},
            tune_config=tune.TuneConfig(
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=max_concurrent),
                scheduler=_scheduler(hpo),
                num_samples=search.trials,
                trial_dirname_creator=tune_session.trial_dirname,
            ),
            run_config=run_cfg,
        )
    grid = tune_session.fit(tuner, base)
    errors = [f"{r.path}: {describe_failure(r.error, r.path, r.path)}" for r in grid if r.error is not None]
    try:
        interrupted = grid.num_terminated + grid.num_errors < search.trials
    except Exception:
        interrupted = False
    if not interrupted:
        fail_stale_trials(url, search.study_name, path)
    outcome = report(hpo, url, out_dir, path, seed=seed, worker=worker, trials_this_run=len(grid), errors=errors)
    outcome.interrupted = interrupted
    _write_json(
        info_path,
        {
            **_read_info(info_path),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "trials_complete": outcome.trials_complete,
            "best": outcome.best,
            "best_config": outcome.best_config,
        },
    )
    return outcome
