"""Write the Colab notebooks under notebooks/ (thin: every cell calls the package).

Each notebook has a parameters cell (tagged ``parameters``, with ``QUICK``), is
saved without outputs, and runs top to bottom outside Colab. Edit the cell
texts here and run ``python tools/make_notebooks.py``.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent / "notebooks"

INSTALL = """# Install the package once per runtime (rllib-algospace is on no package index).
# Colab's own torch stays: the package accepts any torch >= 2.4, so pip keeps it.
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("rllib_algospace") is None:
    if not INSTALL_FROM:
        raise RuntimeError("set INSTALL_FROM in the first cell: your copy of the repository on Drive, "
                           "a git URL (git+https://...), or a wheel (.whl) on Drive")
    if INSTALL_FROM.startswith("/content/drive") and not os.path.isdir("/content/drive/MyDrive"):
        from google.colab import drive
        drive.mount("/content/drive")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", INSTALL_FROM])"""

SETUP = """from rllib_algospace import colab
session = colab.setup(PROJECT, local_root=LOCAL_ROOT, session_hours=SESSION_HOURS, quick=QUICK)"""


def params(extra: str = "") -> str:
    text = '''QUICK = True            # True: a one-minute smoke run; False: the real thing
PROJECT = "AlgoSpace"   # folder under MyDrive in Colab (or under LOCAL_ROOT elsewhere)
LOCAL_ROOT = None       # off Colab: a local project folder (default ~/algospace/PROJECT)
SESSION_HOURS = 12      # Colab's limit, counted from the VM's start: 12 h free, 24 h with Pro
INSTALL_FROM = None     # Colab: the repository folder on Drive (e.g. "/content/drive/MyDrive/rllib-algospace"),
                        # a git URL ("git+https://github.com/<you>/rllib-algospace"), or a wheel on Drive'''
    return text + ("\n" + extra if extra else "")


def notebook(title: str, intro: str, cells: list, extra_params: str = "") -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    p = new_code_cell(params(extra_params))
    p.metadata["tags"] = ["parameters"]
    nb.cells = [new_markdown_cell(f"# {title}\n\n{intro}"), p, new_code_cell(INSTALL), new_code_cell(SETUP)]
    for cell in cells:  # a str is a code cell, ("md", text) a markdown cell
        nb.cells.append(new_markdown_cell(cell[1]) if isinstance(cell, tuple) else new_code_cell(cell))
    return nb


NOTEBOOKS: dict[str, nbformat.NotebookNode] = {}


def define(path: str, title: str, intro: str, cells: list, extra_params: str = "") -> None:
    NOTEBOOKS[path] = notebook(title, intro, cells, extra_params)


define(
    "Data_Preparation_Colab.ipynb",
    "Data preparation",
    "Builds the project's market file on Drive: the synthetic market, or your vendor CSV export. "
    "Every feature is computed once and stored with per-chunk checksums; the file is then validated.",
    [
        """from envs.data.dataset import prepare_csv_market_file, synth_market_file
from envs.data.info import describe_market_file
from envs.data.store import validate_market_file

out = session.data_file(DATA_NAME)
if CSV_PATH:
    prepare_csv_market_file(CSV_PATH, out, timeframe=TIMEFRAME, htf_multiple=HTF_MULTIPLE)
else:
    synth_market_file(out, preset=PRESET, n_bars=5_000 if QUICK else BARS, seed=SEED, htf_multiple=HTF_MULTIPLE)""",
        """print(validate_market_file(out))
print(describe_market_file(out)["text"])""",
    ],
    extra_params='''CSV_PATH = None         # your CSV export, e.g. "/content/drive/MyDrive/AlgoSpace/EURUSD_5m.csv"; None: synthetic
TIMEFRAME = None        # base bar length ("5min", "1h", "1d"); None: inferred from the data
HTF_MULTIPLE = 6        # base bars per higher-timeframe bar
PRESET = "simple_markets"
BARS = 353_000          # synthetic bars (five years of 5-minute bars)
SEED = 0
DATA_NAME = "market.h5"''',
)

define(
    "MARL_Training_Master_Colab.ipynb",
    "MAPPO training (master notebook)",
    "Trains the four-agent team with MAPPO as a Ray Tune experiment in the project folder. "
    "Checkpoints go to Drive; the run stops with a checkpoint before the session's time limit, "
    "and running this notebook again in a new session resumes it.",
    [
        """from rllib_algospace.config import load_config, quick_overrides
from rllib_algospace.training import train

overrides = {**(quick_overrides() if QUICK else {}), **session.train_overrides(EXPERIMENT)}
if DATA_PATH:
    overrides["data.path"] = DATA_PATH
config = load_config(CONFIG_PATH, overrides, check_files=True)
resume = session.can_resume(EXPERIMENT)
print("resuming" if resume else "starting", session.experiment_name(EXPERIMENT))""",
        """outcome = train(config, resume=resume)
print(outcome.experiment_path, outcome.iterations, "iterations; best:", outcome.best_checkpoint)""",
        """from rllib_algospace.evaluation.checkpoint import evaluate_checkpoint, format_comparison

if outcome.best_checkpoint and not outcome.interrupted:
    report = evaluate_checkpoint(outcome.best_checkpoint, split="test")
    print(format_comparison(report["results"]))""",
        """from IPython.display import Image, display

if outcome.best_checkpoint and not outcome.interrupted:
    display(Image(report["png"]))""",
    ],
    extra_params='''CONFIG_PATH = None      # a YAML from tune_configs/ (None: the built-in MAPPO defaults)
DATA_PATH = None        # a market file (None: the embedded synthetic data)
EXPERIMENT = "mappo"''',
)


CURRICULUM_CELL = """from rllib_algospace.config import load_config, quick_overrides
from rllib_algospace.training import train

stages = [dict(stage, episodes=2) for stage in STAGES] if QUICK else STAGES
overrides = {**(quick_overrides() if QUICK else {}), **session.train_overrides("curriculum"), "curriculum.stages": stages}
if QUICK:
    overrides["experiment.stop.training_iteration"] = 3
curriculum_config = load_config(CURRICULUM_CONFIG, overrides, check_files=True)
outcome = train(curriculum_config, resume=session.can_resume("curriculum"))
print(outcome.iterations, "iterations; stage at the end:", outcome.metrics.get("curriculum_task"))"""

AGENT_DESCRIPTIONS = {
    "regime": "the regime agent (classifies the market: trending, ranging, volatile, transition)",
    "structure": "the structure agent (direction and strength from MLMI, NW-RQK and volume profile)",
    "tactical": "the tactical agent (entries and exits from fair value gaps and momentum)",
    "risk": "the risk agent (allow, halve, flatten or block from the portfolio state)",
}

for _agent, _what in AGENT_DESCRIPTIONS.items():
    define(
        f"agents/{_agent.capitalize()}_Agent_Training.ipynb",
        f"{_agent.capitalize()} agent training",
        f"Trains {_what} while the other three stay frozen (fixed rule policies, or a checkpoint), then continues "
        "joint training of the whole team from the result. The shared critic trains throughout.",
        [
            f'''from rllib_algospace.config import load_config, quick_overrides
from rllib_algospace.training import train

solo_name, joint_name = "{_agent}_solo", "{_agent}_joint"
solo = load_config(None, {{
    **(quick_overrides() if QUICK else {{}}),
    **session.train_overrides(solo_name),
    "training.train_agents": ["{_agent}"],
    "training.frozen_policy": FROZEN_POLICY,
    **({{"training.init_from": INIT_FROM}} if INIT_FROM else {{}}),
    **({{"experiment.stop.training_iteration": 1}} if QUICK else {{}}),
}}, check_files=True)
solo_outcome = train(solo, resume=session.can_resume(solo_name))
print("solo training:", solo_outcome.iterations, "iterations; best:", solo_outcome.best_checkpoint)''',
            '''joint = load_config(None, {
    **(quick_overrides() if QUICK else {}),
    **session.train_overrides(joint_name),
    "training.init_from": solo_outcome.best_checkpoint,
    **({"experiment.stop.training_iteration": 1} if QUICK else {}),
}, check_files=True)
joint_outcome = train(joint, resume=session.can_resume(joint_name))
print("joint training:", joint_outcome.iterations, "iterations; best:", joint_outcome.best_checkpoint)''',
            '''from rllib_algospace.evaluation.checkpoint import evaluate_checkpoint, format_comparison

report = evaluate_checkpoint(joint_outcome.best_checkpoint, split="val", episodes=1 if QUICK else None, full_split=not QUICK, episode_length=256)
print(format_comparison(report["results"]))''',
        ],
        extra_params='''FROZEN_POLICY = "rule"  # the other agents: "rule" (fixed rule policies) or "checkpoint" (needs INIT_FROM)
INIT_FROM = None        # a checkpoint to start from (and to take frozen agents from)''',
    )


define(
    "Hyperparameter_Optimization_Colab.ipynb",
    "Hyperparameter search (Optuna)",
    "Ray Tune with Optuna's TPE sampler over the search space of `tune_configs/hpo.yaml`, early stopping by ASHA. "
    "Several notebooks (or machines) can work on one study: they share the sqlite file in the project folder; "
    "give each notebook its own `EXPERIMENT` name. Running the notebook again resumes an interrupted search.",
    [
        """from rllib_algospace.hpo import load_hpo_config, run_search

hpo = load_hpo_config(
    CONFIG_PATH,
    quick=QUICK,
    trials=TRIALS,
    storage=session.storage_path,
    name=session.experiment_name(EXPERIMENT),
    study_storage=session.study_storage if SHARED_STUDY else None,
)
resume = session.can_resume(EXPERIMENT)
print("resuming" if resume else "starting", hpo.base.experiment.name)""",
        """outcome = run_search(hpo, resume=resume)
print("trials complete in the study:", outcome.trials_complete, "| best:", outcome.best)
print("ready-to-train config:", outcome.best_config)""",
        """from IPython.display import Image, display

for plot in outcome.plots:
    display(Image(plot))""",
    ],
    extra_params='''CONFIG_PATH = None      # an HPO YAML (None: the built-in search of tune_configs/hpo.yaml)
TRIALS = None           # number of trials (None: as the YAML says)
EXPERIMENT = "hpo"      # one name per notebook when several share the study
SHARED_STUDY = True     # use the project folder's optuna.db, shared by every notebook''',
)

define(
    "Advanced_Training_Techniques.ipynb",
    "Curriculum and ensembles",
    "Part 1 grows difficulty by curriculum (`simple_markets`, then `moderate_volatility`, then `complex_regimes`, "
    "each stage promotable early by validation Sharpe). Part 2 trains an ensemble over seeds and architectures in one "
    "Tune experiment and evaluates every member and the ensemble side by side.",
    [
        ("md", "## Curriculum"),
        CURRICULUM_CELL,
        ("md", "## Ensemble"),
        """from rllib_algospace.ensemble import evaluate_ensemble, format_ensemble_report, load_ensemble_config, quick_ensemble_overrides, train_ensemble

ensemble_overrides = {**(quick_ensemble_overrides() if QUICK else {}), "experiment.storage_path": session.storage_path, "experiment.name": session.experiment_name("ensemble")}
spec = load_ensemble_config(ENSEMBLE_CONFIG, ensemble_overrides, check_files=True)
ensemble = train_ensemble(spec, resume=session.can_resume("ensemble"))
print(ensemble.manifest_path)""",
        """report = evaluate_ensemble(ensemble.manifest_path, split="val", episodes=1 if QUICK else None, full_split=not QUICK, episode_length=256)
print(format_ensemble_report(report))""",
    ],
    extra_params='''CURRICULUM_CONFIG = None  # a YAML with a curriculum section, e.g. tune_configs/curriculum.yaml
STAGES = [  # the plan's stages, each promotable early by validation Sharpe
    {"name": "simple_markets", "episodes": 2000, "promote_when": {"metric": "val_sharpe", "above": 1.0}},
    {"name": "moderate_volatility", "episodes": 3000, "promote_when": {"metric": "val_sharpe", "above": 1.0}},
    {"name": "complex_regimes", "episodes": 5000},
]
ENSEMBLE_CONFIG = None    # an ensemble YAML, e.g. tune_configs/ensemble.yaml (None: the built-in members)''',
)

define(
    "Model_Selection_Colab.ipynb",
    "Model selection",
    "Evaluates every trained variant of an experiment folder (training runs, search trials, ensembles) on the "
    "validation split, ranks them with block-bootstrap confidence intervals and the deflated Sharpe ratio, picks the "
    "best, and reports it once on the test split with stress tests.",
    [
        """from pathlib import Path

from rllib_algospace.config import load_config, quick_overrides
from rllib_algospace.training import train

experiment = session.experiment_dir(EXPERIMENT)
if QUICK and not experiment.exists():  # two tiny runs to choose from
    for seed in (0, 1):
        train(load_config(None, {**quick_overrides(), "experiment.storage_path": str(experiment), "experiment.name": f"seed{seed}", "experiment.seed": seed, "experiment.stop.training_iteration": 1}))""",
        """from rllib_algospace.evaluation.selection import format_selection, select_best

selection = select_best(experiment, split="val", n_boot=200 if QUICK else 2000, stress=not QUICK)
print(format_selection(selection))""",
    ],
    extra_params='''EXPERIMENT = "mappo"    # the experiment folder under the project's results''',
)


define(
    "Production_Export_Colab.ipynb",
    "Selection, export and a latency check",
    "Picks the best model of an experiment folder (validation ranking with block-bootstrap intervals and the "
    "deflated Sharpe ratio), exports it as a bundle of TorchScript actors that loads without Ray, and measures the "
    "latency of one live decision from a new bar.",
    [
        """from pathlib import Path

from rllib_algospace.config import load_config, quick_overrides
from rllib_algospace.training import train

experiment = session.experiment_dir(EXPERIMENT)
if QUICK and not experiment.exists():  # a tiny model to export
    train(load_config(None, {**quick_overrides(), "experiment.storage_path": str(experiment), "experiment.name": "seed0", "experiment.stop.training_iteration": 1}))""",
        """from rllib_algospace.evaluation.selection import format_selection, select_best

selection = select_best(experiment, split="val", n_boot=200 if QUICK else 2000, stress=not QUICK)
print(format_selection(selection))
chosen = selection["chosen"]["path"]""",
        """from rllib_algospace.export import export_bundle, format_report

bundle = str(session.root / "bundles" / EXPERIMENT)
report = export_bundle(chosen, bundle, quantize="auto" if QUANTIZE else None, overwrite=True)
print(format_report(report))""",
        """import time

import numpy as np

from envs.data.reader import MarketData
from rllib_algospace.inference import TeamPolicy
from rllib_algospace.checkpoints import checkpoint_metadata

policy = TeamPolicy.load(bundle)
market = MarketData(checkpoint_metadata(chosen)["env_config"]["data"])
start, stop = market.splits["test"]
first = max(0, start - 1_500)  # history to fill the observation windows
last = min(stop, start + (300 if QUICK else 10_000))
columns = {name: market.read_base(name, first, last) for name in ("timestamp", "open", "high", "low", "close", "volume")}
latencies = []
for i in range(last - first):
    bar = {name: values[i] for name, values in columns.items()}
    t0 = time.perf_counter()
    decision = policy.on_bar(bar)
    elapsed = time.perf_counter() - t0
    if decision.ready:
        latencies.append(elapsed)
ms = np.asarray(latencies) * 1e3
print(f"decision latency over {len(ms)} bars: p50 {np.percentile(ms, 50):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms")
print(decision)""",
    ],
    extra_params='''EXPERIMENT = "mappo"    # the experiment folder under the project's results
QUANTIZE = False        # also try int8 dynamic quantization (kept only if faster)''',
)


def main() -> None:
    for rel, nb in NOTEBOOKS.items():
        path = ROOT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.validate(nb)
        nbformat.write(nb, str(path))
        print("wrote", path)


if __name__ == "__main__":
    main()
