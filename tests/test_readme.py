"""The README's module table names every module and subpackage of the
package (and nothing that is gone)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _table_entries() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| module | its one job |"):]
    end = table.find("\n\n")
    table = table if end < 0 else table[:end]
    return set(re.findall(r"^\| `([^`]+)` \|", table, flags=re.M))


def _tree_entries() -> set[str]:
    out = set()
    for sub in sorted((ROOT / "envs").iterdir()):
        if sub.is_dir() and (sub / "__init__.py").exists():
            out.add(f"envs/{sub.name}/")
    for entry in sorted((ROOT / "rllib_algospace").iterdir()):
        if entry.is_dir() and (entry / "__init__.py").exists():
            out.add(f"rllib_algospace/{entry.name}/")
        elif entry.suffix == ".py" and entry.name != "__init__.py":
            out.add(f"rllib_algospace/{entry.name}")
    return out


def test_the_module_table_matches_the_tree():
    table, tree = _table_entries(), _tree_entries()
    assert not tree - table, f"modules the README's table does not name: {sorted(tree - table)}"
    assert not table - tree, f"the README's table names modules that do not exist: {sorted(table - tree)}"
