"""Every notebook runs top to bottom, headless, with its QUICK settings, in a
temporary project folder (each in its own kernel, so its own Ray session).

The master notebook runs as a Colab user runs it: in a fresh virtual
environment without the package, its install cell pointed at a wheel built
from this checkout (``INSTALL_FROM``). The environment borrows this one's
installed dependencies (a ``.pth`` line, so nothing is downloaded), never
this checkout's package."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted(str(p.relative_to(Path(__file__).parent.parent / "notebooks")) for p in (Path(__file__).parent.parent / "notebooks").rglob("*.ipynb"))
pytestmark = pytest.mark.slow


def test_notebooks_exist():
    assert "MARL_Training_Master_Colab.ipynb" in NOTEBOOKS


ROOT = Path(__file__).parent.parent
MASTER = "MARL_Training_Master_Colab.ipynb"


def _prepared(name: str, tmp_path: Path, **settings):
    path = ROOT / "notebooks" / name
    nb = nbformat.read(str(path), as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "saved with outputs"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "QUICK = True" in params[0].source
    params[0].source += f"\nQUICK = True\nLOCAL_ROOT = {str(tmp_path / 'project')!r}\n" + "".join(f"{k} = {v!r}\n" for k, v in settings.items())
    return nb, path


AGENT_NOTEBOOKS = [n for n in NOTEBOOKS if n.startswith("agents/")]


@pytest.mark.parametrize("name", [n for n in NOTEBOOKS if n != MASTER and n not in AGENT_NOTEBOOKS])
def test_notebook_runs(name, tmp_path):
    nb, path = _prepared(name, tmp_path)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()


def test_agent_notebooks_run_one_after_another(tmp_path):
    """The four per-agent notebooks, each top to bottom, one after another in
    one kernel (one Ray session for the four: they are the same flow for
    four agents, and each starts with its own parameters cell)."""
    assert len(AGENT_NOTEBOOKS) == 4, AGENT_NOTEBOOKS
    combined = None
    for name in AGENT_NOTEBOOKS:
        nb, path = _prepared(name, tmp_path / Path(name).stem)
        if combined is None:
            combined = nb
        else:
            combined.cells.extend(nb.cells)
        combined.cells.append(nbformat.v4.new_code_cell(f"print('finished {name}')"))
    client = nbclient.NotebookClient(combined, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    printed = [o.get("text", "") for c in combined.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert all(any(f"finished {name}" in t for t in printed) for name in AGENT_NOTEBOOKS)


def test_master_notebook_installs_from_a_wheel_and_trains(tmp_path, monkeypatch):
    # the wheel, built from a copy of this checkout (a stale build/ folder cannot leak
    # into it, nothing is written here) without downloading anything
    import shutil

    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "*.h5", "results", "benchmarks"))
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)], check=True, timeout=300)
    wheel = next(dist.glob("rllib_algospace-*.whl"))
    # a fresh environment: no rllib_algospace, this environment's dependencies
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip()
    borrowed = [p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)]
    Path(site, "_borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n")
    probe = subprocess.run([python, "-c", "import importlib.util; print(importlib.util.find_spec('rllib_algospace'))"], capture_output=True, text=True, cwd=str(ROOT / "notebooks"))
    assert probe.stdout.strip() == "None", probe.stdout + probe.stderr  # the package is not there before the install cell
    # a kernel running that environment's Python
    kernels = tmp_path / "jupyter"
    subprocess.run([python, "-m", "ipykernel", "install", "--prefix", str(kernels), "--name", "algospace-wheel"], check=True, capture_output=True, timeout=120)
    monkeypatch.setenv("JUPYTER_PATH", str(kernels / "share" / "jupyter"))

    nb, path = _prepared(MASTER, tmp_path, INSTALL_FROM=str(wheel))
    nb.cells.append(nbformat.v4.new_code_cell(f"import rllib_algospace\nassert rllib_algospace.__file__.startswith({site!r}), rllib_algospace.__file__"))
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="algospace-wheel", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
