"""Every notebook runs top to bottom, headless, with its QUICK settings, in a
temporary project folder (each in its own kernel, so its own Ray session)."""
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted(str(p.relative_to(Path(__file__).parent.parent / "notebooks")) for p in (Path(__file__).parent.parent / "notebooks").rglob("*.ipynb"))
pytestmark = pytest.mark.slow


def test_notebooks_exist():
    assert "MARL_Training_Master_Colab.ipynb" in NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, tmp_path):
    path = Path(__file__).parent.parent / "notebooks" / name
    nb = nbformat.read(str(path), as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "saved with outputs"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "QUICK = True" in params[0].source
    params[0].source += f"\nQUICK = True\nLOCAL_ROOT = {str(tmp_path / 'project')!r}\n"
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
