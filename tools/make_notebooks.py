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

INSTALL = """# In Colab: install the package (and its dependencies) once per runtime.
import importlib.util, subprocess, sys
if importlib.util.find_spec("rllib_algospace") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", PACKAGE_SPEC])"""

SETUP = """from rllib_algospace import colab
session = colab.setup(PROJECT, local_root=LOCAL_ROOT)"""


def params(extra: str = "") -> str:
    text = f'''QUICK = True            # True: a one-minute smoke run; False: the real thing
PROJECT = "AlgoSpace"   # folder under MyDrive in Colab (or under LOCAL_ROOT elsewhere)
LOCAL_ROOT = None       # off Colab: a local project folder (default ~/algospace/PROJECT)
PACKAGE_SPEC = "rllib-algospace"  # what pip installs in Colab (a git URL or a wheel path works too)'''
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
print("resuming" if resume else "starting", EXPERIMENT)""",
        """outcome = train(config, resume=resume)
print(outcome.experiment_path, outcome.iterations, "iterations; best:", outcome.best_checkpoint)""",
        """from rllib_algospace.evaluate import evaluate_checkpoint, format_comparison

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


def main() -> None:
    for rel, nb in NOTEBOOKS.items():
        path = ROOT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.validate(nb)
        nbformat.write(nb, str(path))
        print("wrote", path)


if __name__ == "__main__":
    main()
