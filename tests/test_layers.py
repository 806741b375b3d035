"""The import layers of the package, read from the source (no imports run):

* ``envs`` imports nothing of ``rllib_algospace`` and no Ray;
* no import cycle among the modules, counting imports inside functions (a
  lazy import is still a dependency);
* no module imports another module's private (``_name``) names;
* no module over 600 lines without a one-line reason at its top.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("envs", "rllib_algospace")
MAX_LINES = 600
LONG_MODULE_REASON = "# long module:"  # the first line of a longer module's source says why


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The package module a dotted name lives in (``a.b.c`` -> ``a.b`` when ``c`` is a name in it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path):
    """(imported module, imported name or None) for every import statement, at any depth."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                yield (full if full in MODULES else target), alias.name


def _graph():
    edges, private = defaultdict(set), []
    for module, path in MODULES.items():
        for target, name in _imports(module, path):
            owner = _owner(target)
            if owner is None or owner == module:
                continue
            if MODULES[owner].name == "__init__.py" and module.startswith(owner + "."):
                continue  # a module of a package reaching its package face: not a layer edge
            edges[module].add(owner)
            if name and name.startswith("_") and not name.startswith("__"):
                private.append(f"{module} imports {owner}.{name}")
    return edges, private


def test_envs_import_nothing_of_the_trainer_and_no_ray():
    bad = []
    for module, path in MODULES.items():
        if not module.startswith("envs"):
            continue
        for target, _ in _imports(module, path):
            if target.split(".")[0] in ("rllib_algospace", "ray"):
                bad.append(f"{module} imports {target}")
    assert not bad, bad


def test_no_import_cycles():
    edges, _ = _graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(MODULES):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_names_imported_across_modules():
    _, private = _graph()
    assert not private, private


def test_long_modules_say_why():
    long = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES and not (lines and lines[0].startswith(LONG_MODULE_REASON)):
            long.append(f"{module}: {len(lines)} lines")
    assert not long, f"modules over {MAX_LINES} lines without a '{LONG_MODULE_REASON} <reason>' first line: {long}"


def test_the_checks_see_a_cycle_and_a_private_import(tmp_path, monkeypatch):
    """The checks above can fail: a planted cycle and private import are found."""
    pkg = tmp_path / "rllib_algospace"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from rllib_algospace.b import _hidden\n")
    (pkg / "b.py").write_text("from rllib_algospace import a\n_hidden = 1\n")
    planted = {"rllib_algospace": pkg / "__init__.py", "rllib_algospace.a": pkg / "a.py", "rllib_algospace.b": pkg / "b.py"}
    monkeypatch.setattr(__import__(__name__), "MODULES", planted)
    edges, private = _graph()
    assert edges["rllib_algospace.a"] == {"rllib_algospace.b"} and edges["rllib_algospace.b"] == {"rllib_algospace.a"}
    assert private == ["rllib_algospace.a imports rllib_algospace.b._hidden"]
    try:
        test_no_import_cycles()
    except AssertionError as exc:
        assert "rllib_algospace.a" in str(exc)
    else:
        raise AssertionError("the planted cycle was not found")
