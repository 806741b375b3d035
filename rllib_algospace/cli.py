"""The ``algospace`` command: a thin layer over the Python API.

Bad input ends with one line on stderr naming the file/key/row and the
problem, and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user error to report in one line with exit code 2."""


def _refuse_existing(out: str, overwrite: bool) -> None:
    if os.path.lexists(out) and not overwrite:
        raise CliError(f"{out}: already exists (pass --overwrite to replace it)")


class _StageBar:
    """A progress bar over the named stages of building a market file."""

    def __init__(self, desc: str, stages: int):
        from rllib_algospace.evaluation.runner import progress_bar

        self.bar = progress_bar(stages, desc, unit="stage")
        self.started = False

    def __call__(self, stage: str) -> None:
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_postfix_str(stage)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


def _data_synth(args) -> int:
    from envs.data.dataset import BUILD_STAGES, synth_market_file

    _refuse_existing(args.out, args.overwrite)
    with _StageBar(f"data synth {os.path.basename(args.out)}", len(BUILD_STAGES) + 1) as bar:
        path = synth_market_file(args.out, preset=args.preset, n_bars=args.bars, seed=args.seed, htf_multiple=args.htf_multiple, progress=bar)
    print(f"wrote {path} ({args.bars} bars, preset {args.preset}, seed {args.seed})")
    return 0


def _data_prepare(args) -> int:
    from envs.data.dataset import BUILD_STAGES, prepare_csv_market_file

    if os.path.abspath(args.out) == os.path.abspath(args.csv) or (args.csv_htf and os.path.abspath(args.out) == os.path.abspath(args.csv_htf)):
        raise CliError(f"{args.out}: --out names an input CSV; the market file needs a path of its own")
    _refuse_existing(args.out, args.overwrite)
    with _StageBar(f"data prepare {os.path.basename(args.out)}", len(BUILD_STAGES) + 1) as bar:
        path = prepare_csv_market_file(args.csv, args.out, csv_htf=args.csv_htf, timeframe=args.timeframe, htf_multiple=args.htf_multiple, progress=bar)
    print(f"wrote {path} from {args.csv}")
    return 0


def _data_validate(args) -> int:
    from envs.data.store import validate_market_file

    summary = validate_market_file(args.file)
    print(f"ok: {summary['path']}: {summary['base_bars']} base bars, {summary['htf_bars']} higher-timeframe bars, {summary['chunks_checked']} chunks checked")
    return 0


def _data_info(args) -> int:
    from envs.data.info import describe_market_file

    info = describe_market_file(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(info["text"])
    return 0


def _demo(args) -> int:
    from rllib_algospace.demo import format_metrics, run_random_episode

    metrics = run_random_episode(data=args.data, split=args.split, seed=args.seed, episode_length=args.episode_length, render_every=args.render_every)
    print(f"random team, one episode on {metrics['source']} ({metrics['split']} split, {metrics['steps']} bars):")
    print(format_metrics(metrics))
    return 0


def _train(args) -> int:
    from rllib_algospace.config import load_config, parse_overrides, quick_overrides

    if args.config and args.quick:
        load_config(args.config)  # the user's file is valid as written: --quick's overrides must not hide an error in it
    overrides = dict(quick_overrides()) if args.quick else {}
    overrides.update(parse_overrides(args.overrides))
    flags = {
        "data.path": args.data,
        "experiment.storage_path": args.storage,
        "experiment.name": args.name,
        "experiment.stop.training_iteration": args.stop_iters,
        "experiment.stop.timesteps_total": args.stop_timesteps,
        "experiment.stop.time_budget": args.time_budget,
        "experiment.seed": args.seed,
        "training.train_agents": args.train_agents,  # "structure,tactical": checked by the config
        "training.init_from": args.init_from,
        "training.frozen_policy": args.frozen_policy,
        "training.warm_start": args.warm_start,
        "resources.address": args.address,
    }
    overrides.update({k: v for k, v in flags.items() if v is not None})
    if args.wandb:
        overrides["experiment.wandb.enabled"] = True
    cfg = load_config(args.config, overrides, check_files=True)
    from rllib_algospace.training import dataset_path, train
    from rllib_algospace.tune_session import clear_experiment, experiment_exists, experiment_path

    if not args.resume and experiment_exists(cfg):
        if not args.overwrite:
            raise CliError(f"{experiment_path(cfg)}: an experiment of this name exists; continue it with --resume, or replace it with --overwrite")
        clear_experiment(cfg)
        print(f"removed the old experiment {experiment_path(cfg)} (--overwrite)")
    outcome = train(cfg, resume=args.resume)
    print(f"experiment: {outcome.experiment_path} ({outcome.iterations} iterations)")
    if outcome.error:
        raise CliError(f"training failed: {outcome.error}")
    if outcome.interrupted:
        print(f"stopped before the end (time budget or interrupt); continue with: algospace train --resume{' --config ' + args.config if args.config else ''}{' --quick' if args.quick else ''}")
        return 0
    print(f"best checkpoint: {outcome.best_checkpoint}")
    if outcome.best_checkpoint and not args.no_evaluate:
        from rllib_algospace.evaluation.checkpoint import evaluate_checkpoint, format_comparison, format_intervals
        from rllib_algospace.evaluation.fresh import FreshMarketError, synthetic_origin

        fresh = args.fresh_markets
        if fresh and not cfg.env.get("tasks"):  # (a curriculum's stages are the default synthetic markets)
            try:
                synthetic_origin(dataset_path(cfg))
            except FreshMarketError:
                print("fresh markets: skipped (the training data is not synthetic; evaluate on your own held-out data)")
                fresh = 0
        report = evaluate_checkpoint(outcome.best_checkpoint, split="test", fresh_markets=fresh)
        print(f"test split of {report['data']}:")
        print(format_comparison(report["results"]))
        print(format_intervals(report))
        print(f"report: {report['json']} and {report['png']}; tear sheet: {report['tear_sheet']}")
    return 0


def _pretrain(args) -> int:
    from rllib_algospace.config import load_config, parse_overrides

    overrides = parse_overrides(args.overrides)
    overrides |= {k: v for k, v in {"data.path": args.data, "experiment.seed": args.seed, "training.warm_start_steps": args.steps, "training.warm_start_epochs": args.epochs}.items() if v is not None}
    overrides["training.warm_start"] = args.teacher
    overrides["training.init_from"] = None  # pretraining makes the starting weights; a config's checkpoint plays no part
    cfg = load_config(args.config, overrides, check_files=True)
    _refuse_existing(args.out, args.overwrite)
    from rllib_algospace.training import dataset_path, prepare_warm_start

    data_path = dataset_path(cfg)
    print(f"data: {data_path}")
    prepare_warm_start(cfg, data_path, out=args.out)
    print(f"train with it: algospace train --warm-start {args.out}")
    return 0


def _evaluate(args) -> int:
    from rllib_algospace.evaluation.checkpoint import evaluate_checkpoint, format_comparison

    report = evaluate_checkpoint(
        args.checkpoint,
        data=args.data,
        split=args.split,
        episodes=args.episodes,
        full_split=args.full_split or args.episodes is None,
        episode_length=args.episode_length,
        out=args.out,
        seed=args.seed,
        stress=args.stress,
        fresh_markets=args.fresh_markets,
        fresh_seed=args.fresh_seed,
    )
    print(f"{report['checkpoint']} on the {report['split']} split of {report['data']}:")
    if "diversity" in report:  # an ensemble: members, ensemble and baselines, and the members' disagreement
        from rllib_algospace.ensemble_policy import format_ensemble_report

        print(format_ensemble_report(report))
        print(f"members and diversity: {report['ensemble_json']}")
    else:
        from rllib_algospace.evaluation.checkpoint import format_intervals

        print(format_comparison(report["results"]))
        print(format_intervals(report))
    print(f"report: {report['json']} and {report['png']}" + (f"; tear sheet: {report['tear_sheet']}" if report.get("tear_sheet") else ""))
    if "stress" in report:
        from rllib_algospace.evaluation.stress import format_stress

        print(format_stress(report["stress"]))
        print(f"stress report: {report['stress_md']}, {report['stress_html']} and {report['stress_png']}")
    return 0


def _select(args) -> int:
    from rllib_algospace.evaluation.selection import format_selection, select_best

    doc = select_best(args.experiment, split=args.split, test_split=args.test_split, out=args.out, data=args.data, n_boot=args.n_boot, seed=args.seed, n_trials=args.n_trials, stress=not args.no_stress)
    print(format_selection(doc))
    print(f"report: {doc['files']['markdown']}, {doc['files']['html']} and {doc['files']['json']}")
    return 0


def _ensemble(args) -> int:
    from rllib_algospace.ensemble import load_ensemble_config, quick_ensemble_overrides

    overrides = dict(quick_ensemble_overrides()) if args.quick else {}
    flags = {
        "data.path": args.data,
        "experiment.storage_path": args.storage,
        "experiment.name": args.name,
        "experiment.stop.training_iteration": args.stop_iters,
        "experiment.stop.time_budget": args.time_budget,
        "resources.address": args.address,
    }
    overrides.update({k: v for k, v in flags.items() if v is not None})
    spec = load_ensemble_config(args.config, overrides, check_files=True)
    from rllib_algospace.ensemble import train_ensemble
    from rllib_algospace.ensemble_policy import evaluate_ensemble, format_ensemble_report

    outcome = train_ensemble(spec, resume=args.resume)
    print(f"experiment: {outcome.experiment_path} ({len(outcome.members)} members)")
    if outcome.manifest_path:
        print(f"manifest: {outcome.manifest_path}")
    if outcome.errors:
        raise CliError(f"ensemble training failed: {'; '.join(outcome.errors)}")
    if outcome.interrupted:
        print(f"stopped before the end (time budget or interrupt); continue with: algospace ensemble --resume{' --config ' + args.config if args.config else ''}{' --quick' if args.quick else ''}")
        return 0
    if outcome.manifest_path and not args.no_evaluate and not spec.train.experiment.storage_is_uri:
        report = evaluate_ensemble(outcome.manifest_path, split="test")
        print(f"test split of {report['data']}:")
        print(format_ensemble_report(report))
        print(f"report: {report['json']}, {report['png']} and {report['ensemble_json']}")
    return 0


def _tune(args) -> int:
    from rllib_algospace.hpo import load_hpo_config, run_search

    hpo = load_hpo_config(
        args.config,
        trials=args.trials,
        storage=args.storage,
        name=args.name,
        data=args.data,
        study_storage=args.study_storage,
        quick=args.quick,
        overrides={"resources.address": args.address} if args.address else None,
        check_files=True,
    )
    outcome = run_search(hpo, resume=args.resume)
    print(f"experiment: {outcome.experiment_path}; study {outcome.study_name} in {outcome.study_storage} ({outcome.trials_complete} completed trials)")
    if outcome.interrupted:
        print(f"stopped before the end; continue with: algospace tune --resume{' --config ' + args.config if args.config else ''}{' --quick' if args.quick else ''}")
    if outcome.errors and outcome.trials_complete == 0:
        raise CliError(f"every trial failed: {outcome.errors[0]}")
    return 0


def _export(args) -> int:
    from rllib_algospace.export import export_bundle, export_stages, format_report

    with _StageBar(f"export {os.path.basename(os.path.normpath(args.out))}", len(export_stages(args.quantize))) as bar:
        report = export_bundle(args.source, args.out, quantize=args.quantize, data=args.data, overwrite=args.overwrite, progress=bar)
    print(format_report(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from envs.data.default import PRESET_NAMES
    from envs.data.synthetic import DEFAULT_PRESET

    from rllib_algospace import __version__

    parser = argparse.ArgumentParser(prog="algospace", description="Train and evaluate the four-agent AlgoSpace trading team.")
    parser.add_argument("--version", action="version", version=f"algospace {__version__}")
    parser.add_argument("--verbose", action="store_true", help="also show Ray's start-up notices and the libraries' warnings")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="create, import, check and describe market files")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    p = data_commands.add_parser("synth", help="generate a synthetic market file")
    p.add_argument("--out", required=True, help="HDF5 file to write")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=PRESET_NAMES)
    p.add_argument("--bars", type=int, default=60_000, help="number of 5-minute base bars (default 60000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--htf-multiple", type=int, default=6, help="base bars per higher-timeframe bar (default 6)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file at --out")
    p.set_defaults(func=_data_synth)

    p = data_commands.add_parser("prepare", help="import a vendor CSV of OHLCV bars")
    p.add_argument("--csv", required=True, help="base-timeframe bars")
    p.add_argument("--csv-htf", default=None, help="optional higher-timeframe bars (else aggregated from base bars)")
    p.add_argument("--out", required=True, help="HDF5 file to write")
    p.add_argument("--timeframe", default=None, help="base bar length, e.g. 5min, 1h, 1d (default: inferred from the data)")
    p.add_argument("--htf-multiple", type=int, default=6, help="base bars per higher-timeframe bar (default 6)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file at --out (never an input CSV)")
    p.set_defaults(func=_data_prepare)

    p = data_commands.add_parser("validate", help="check a market file (schema, shapes, checksums, NaNs, time order, splits)")
    p.add_argument("file")
    p.set_defaults(func=_data_validate)

    p = data_commands.add_parser("info", help="describe a market file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_data_info)

    p = commands.add_parser("train", help="train the team with MAPPO (a Tune experiment); then evaluate the best checkpoint on the test split")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, checked like the YAML: algorithm.lr=1e-3 env.episode_length=512 (the flags below win over them)")
    p.add_argument("--config", default=None, help="experiment YAML (default: the settings of tune_configs/mappo.yaml)")
    p.add_argument("--data", default=None, help="market file (default: the embedded synthetic data)")
    p.add_argument("--storage", default=None, help="results folder, mounted Drive folder or URI (experiment.storage_path)")
    p.add_argument("--name", default=None, help="experiment name (experiment.name)")
    p.add_argument("--stop-iters", type=int, default=None, help="stop after N training iterations")
    p.add_argument("--stop-timesteps", type=int, default=None, help="stop after N env steps sampled")
    p.add_argument("--time-budget", default=None, help="stop with a checkpoint before this much wall time, e.g. 23h30m")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--resume", action="store_true", help="continue the interrupted or killed experiment of the same name")
    p.add_argument("--overwrite", action="store_true", help="replace an existing experiment of the same name (without it, training into one stops)")
    p.add_argument("--wandb", action="store_true", help="log to Weights & Biases (offline without a key)")
    p.add_argument("--quick", action="store_true", help="a one-minute smoke run")
    p.add_argument("--no-evaluate", action="store_true", help="skip the evaluation at the end")
    p.add_argument("--fresh-markets", type=int, default=5, metavar="N", help="the final evaluation also runs N freshly generated markets of the training preset (synthetic data; default 5, 0: none)")
    p.add_argument("--train-agents", default=None, metavar="AGENTS", help="comma list of the agents that train, e.g. structure,tactical; the others stay frozen (training.train_agents)")
    p.add_argument("--init-from", default=None, metavar="CHECKPOINT", help="start from this checkpoint's weights (or a trial/experiment folder: its best checkpoint by the run's score) (training.init_from)")
    p.add_argument("--frozen-policy", default=None, choices=("checkpoint", "rule"), help="how frozen agents act: their checkpoint weights, or the fixed rule policies (training.frozen_policy)")
    p.add_argument("--warm-start", default=None, metavar="TEACHER_OR_FILE", help="clone rule or oracle into the actors first, or start from a file of `algospace pretrain` (training.warm_start)")
    p.add_argument("--address", default=None, help="join this Ray cluster: auto, HOST:6379 or ray://HOST:10001 (resources.address; default: RAY_ADDRESS, else a Ray of this machine)")
    p.set_defaults(func=_train)

    p = commands.add_parser("pretrain", help="behaviour-clone a teacher (the rule baseline or a hindsight oracle) into the four actors on the train split")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. algorithm.actor_hiddens=[128,128] training.warm_start_explore=0.2")
    p.add_argument("--teacher", default="rule", choices=("rule", "oracle"))
    p.add_argument("--out", required=True, help="warm-start file to write (.pt)")
    p.add_argument("--config", default=None, help="experiment YAML: its data, env, network shape and training.warm_start_* settings (default: tune_configs/mappo.yaml's)")
    p.add_argument("--data", default=None, help="market file (default: the embedded synthetic data)")
    p.add_argument("--steps", type=int, default=None, help="teacher-labelled train-split steps (training.warm_start_steps)")
    p.add_argument("--epochs", type=int, default=None, help="passes of behaviour cloning (training.warm_start_epochs)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--overwrite", action="store_true", help="replace an existing file at --out")
    p.set_defaults(func=_pretrain)

    p = commands.add_parser("evaluate", help="evaluate a checkpoint against buy-and-hold, flat and a rule baseline")
    p.add_argument("checkpoint", help="checkpoint folder (or a trial/experiment folder: its best checkpoint by the run's score), or an ensemble.json (or the ensemble's folder)")
    p.add_argument("--data", default=None, help="market file prepared the same way (default: the data it was trained on)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--episodes", type=int, default=None, help="N episodes from random starts instead of the whole split")
    p.add_argument("--full-split", action="store_true", help="one pass over the whole split (the default)")
    p.add_argument("--episode-length", type=int, default=1024, help="bars per episode with --episodes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for evaluation.json and evaluation.png (default: beside the checkpoint)")
    p.add_argument("--stress", action="store_true", help="add stress tests (flash crash, volatility x3, trend reversal, gap, doubled costs) and regime adaptability to the report")
    p.add_argument("--fresh-markets", type=int, default=0, metavar="N", help="also evaluate on N newly generated markets of the training data's preset (synthetic data only), start to end")
    p.add_argument("--fresh-seed", type=int, default=None, metavar="S", help="first seed of the fresh markets (default 1000); a seed the training data used is refused")
    p.set_defaults(func=_evaluate)

    p = commands.add_parser("select", help="rank every trained variant of an experiment folder on val (bootstrap CIs, deflated Sharpe); report the best once on test")
    p.add_argument("experiment", help="experiment folder (train, tune or ensemble runs; every trial's best checkpoint and any ensemble.json)")
    p.add_argument("--split", default="val", choices=("train", "val", "test"), help="selection split (default val)")
    p.add_argument("--test-split", default="test", choices=("train", "val", "test"), help="where the chosen model is reported once (default test)")
    p.add_argument("--out", default=None, help="report folder (default: <experiment>/selection_<split>)")
    p.add_argument("--data", default=None, help="market file prepared the same way (default: the data each variant was trained on)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--n-trials", type=int, default=None, help="trials searched, for the deflated Sharpe ratio (default: candidates / trial folders found)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-stress", action="store_true", help="skip the stress tests of the chosen model")
    p.set_defaults(func=_select)

    p = commands.add_parser("ensemble", help="train an ensemble (seeds x architectures) as one Tune experiment; then evaluate members and ensemble")
    p.add_argument("--config", default=None, help="ensemble YAML (default: the settings of tune_configs/ensemble.yaml)")
    p.add_argument("--data", default=None, help="market file (default: the embedded synthetic data)")
    p.add_argument("--storage", default=None, help="results folder or URI (experiment.storage_path)")
    p.add_argument("--name", default=None, help="experiment name (experiment.name); ensemble.json is written in its folder")
    p.add_argument("--stop-iters", type=int, default=None, help="stop each member after N training iterations")
    p.add_argument("--time-budget", default=None, help="stop with checkpoints before this much wall time, e.g. 23h30m")
    p.add_argument("--resume", action="store_true", help="continue the interrupted or killed ensemble of the same name")
    p.add_argument("--quick", action="store_true", help="a smoke run: two tiny members, two iterations each")
    p.add_argument("--address", default=None, help="join this Ray cluster: auto, HOST:6379 or ray://HOST:10001 (resources.address; default: RAY_ADDRESS, else a Ray of this machine)")
    p.add_argument("--no-evaluate", action="store_true", help="skip the test-split evaluation at the end")
    p.set_defaults(func=_ensemble)

    p = commands.add_parser("tune", help="hyperparameter search: Optuna (TPE) in Ray Tune, early stopping, a study several machines can share")
    p.add_argument("--config", default=None, help="HPO YAML: training sections plus search (default: the settings of tune_configs/hpo.yaml)")
    p.add_argument("--trials", type=int, default=None, help="trials run by this process (search.trials)")
    p.add_argument("--storage", default=None, help="results folder, mounted Drive folder or URI (experiment.storage_path)")
    p.add_argument("--name", default=None, help="experiment name (experiment.name); each worker of a shared study needs its own")
    p.add_argument("--data", default=None, help="market file (default: the embedded synthetic data)")
    p.add_argument("--study-storage", default=None, help="Optuna study shared by workers: an RDB URL (postgresql://...) or a sqlite file (default: a sqlite file in the experiment folder)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted or killed search of the same name")
    p.add_argument("--quick", action="store_true", help="a smoke search: two tiny trials of two iterations")
    p.add_argument("--address", default=None, help="join this Ray cluster: auto, HOST:6379 or ray://HOST:10001 (resources.address; default: RAY_ADDRESS, else a Ray of this machine)")
    p.set_defaults(func=_tune)

    p = commands.add_parser("export", help="write a checkpoint or ensemble as a bundle for live decisions (TorchScript actors, no Ray needed to load)")
    p.add_argument("source", help="checkpoint folder (or trial/experiment folder: its best checkpoint by the run's score), or an ensemble manifest / its folder")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--quantize", nargs="?", const="auto", default=None, choices=("auto", "force"), help="also try int8 actors; keep them if faster (auto) or always (force)")
    p.add_argument("--data", default=None, help="market file prepared the same way (default: the data the team was trained on)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    p.set_defaults(func=_export)

    p = commands.add_parser("demo", help="one episode with random actions on the default data, with its trading metrics")
    p.add_argument("--data", default=None, help="market file (default: the embedded synthetic data)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episode-length", type=int, default=0, help="bars (default 0: the whole split)")
    p.add_argument("--render-every", type=int, default=0, help="print the state every N bars")
    p.set_defaults(func=_demo)
    return parser


NOISY_LOGGERS = ("ray", "ray.rllib", "ray.tune", "ray.train", "ray.air", "ray.data", "ray._private", "tensorboardX")  # tensorboardX: "NaN or Inf found" on every metric not defined yet
# Tune logs a failed trial's traceback (and a failed state sync) at ERROR; the
# commands report each failure in one line naming the trial's error.txt.
TRIAL_FAILURE_LOGGERS = ("ray.tune.execution", "ray.tune.tune")
NOISY_WARNING_MODULES = r"(ray|gymnasium|pettingzoo|optuna|torch|tree)(\..*)?"


RAY_COMMANDS = ("train", "evaluate", "select", "ensemble", "tune", "export")


def quiet_libraries(with_ray: bool = False) -> None:
    """Hide Ray's start-up notices, its deprecation warnings and the like
    (``--verbose`` shows them): what is left is our own progress and errors."""
    import logging
    import warnings

    if with_ray:
        import importlib

        importlib.import_module("ray")  # Ray sets its loggers' levels when imported: set ours after
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in TRIAL_FAILURE_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module=NOISY_WARNING_MODULES)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning,ignore::UserWarning")  # Tune's trial processes
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's new output engine prints its banner at any verbosity


def main(argv: list[str] | None = None) -> int:
    from envs.data.errors import DataError

    args = build_parser().parse_args(argv)
    if not args.verbose:
        quiet_libraries(with_ray=args.command in RAY_COMMANDS)
    from rllib_algospace.evaluation.runner import show_progress

    show_progress(True)  # bars on evaluations (they hide themselves when stderr is no terminal)
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, where a closed pipe is caught (`algospace data info x.h5 | head`)
        return code
    except BrokenPipeError:
        # the reader stopped reading: end quietly, and keep Python's exit-time flush from complaining
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("algospace: interrupted", file=sys.stderr)
        return 130
    except (DataError, CliError) as exc:
        print(f"algospace: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, FileNotFoundError) as exc:
        # one line per problem (a config with several bad keys reports them all)
        lines = str(exc).splitlines() if getattr(exc, "errors", None) else [str(exc)]
        for line in lines:
            print(f"algospace: error: {' '.join(line.split())}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
