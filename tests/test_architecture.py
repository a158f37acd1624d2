"""The package's floor plan (docs/architecture.md): stages import only the stages before them.

Read from the source with :mod:`ast` (nothing is imported), so a new import that breaks
the plan fails here, whether it sits at the top of a module or inside a function.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ensembles"

#: Stage order (docs/architecture.md). Base modules import only base modules; a stage
#: imports base modules, earlier stages and itself; top-level modules import anything.
BASE = {"errors", "layout", "report"}
STAGES = ["sweep", "members", "simulations", "execution", "store", "analysis", "adaptive"]
TOP = 100


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _rank(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return TOP
    if parts[1] in BASE:
        return -1
    if parts[1] == "models":  # ready-made simulations: they use the contract only
        return STAGES.index("simulations")
    return STAGES.index(parts[1]) if parts[1] in STAGES else TOP


def _imports(module: str, path: Path) -> list[tuple[str, str, int]]:
    """(imported module, imported name, line) for every import of ``ensembles``."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in _walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [
                (a.name, "", node.lineno) for a in node.names if a.name.startswith("ensembles")
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "ensembles":
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                found.append(
                    (full, "", node.lineno)
                    if full in MODULES
                    else (source, alias.name, node.lineno)
                )
    return found


def _walk(node: ast.AST):
    """Every node, except under ``if TYPE_CHECKING:`` (imports for type hints only)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from (n for orelse in child.orelse for n in [orelse, *_walk(orelse)])
            continue
        yield child
        yield from _walk(child)


IMPORTS = {module: _imports(module, path) for module, path in MODULES.items()}


def test_the_scan_sees_the_package():
    assert {"ensembles.layout", "ensembles.execution.worker", "ensembles.store.lease"} <= set(
        MODULES
    )
    targets = {target for target, _, _ in IMPORTS["ensembles.store.zarr_store"]}
    assert "ensembles.layout" in targets


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_only_earlier_stages(module):
    if _rank(module) == TOP:
        return
    later = [
        f"line {line}: {target}"
        for target, _, line in IMPORTS[module]
        if _rank(target) > _rank(module) and target != "ensembles"
    ]
    assert not later, f"{module} imports a later stage: {later}"


def test_no_module_imports_another_modules_private_names():
    private = [
        f"{module} line {line}: {name} from {target}"
        for module, imports in IMPORTS.items()
        for target, name, line in imports
        if name.startswith("_") and not name.startswith("__") and target != module
    ]
    assert not private, private


def test_no_import_circles():
    graph: dict[str, set[str]] = defaultdict(set)
    for module, imports in IMPORTS.items():
        graph[module] |= {target for target, _, _ in imports if target in MODULES}
    # the package's own __init__ only re-exports (lazily): leave it out
    graph = {m: {t for t in ts if t != "ensembles"} for m, ts in graph.items() if m != "ensembles"}
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, trail: list[str]) -> None:  # depth first; 1: on the trail
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, circles


def test_a_later_stage_import_is_caught(tmp_path):
    """The check itself: an import of store/ from sweep/ is reported."""
    module = "ensembles.sweep.bad"
    fake = tmp_path / "ensembles" / "sweep" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        "from typing import TYPE_CHECKING\n"
        "from ..store import lease\n"
        "from ..errors import _private\n"
        "if TYPE_CHECKING:\n"
        "    from ..analysis import reduce\n"
        "def f():\n"
        "    from ..execution import wire\n"
    )
    imports = _imports(module, fake)
    later = [t for t, _, _ in imports if _rank(t) > _rank(module)]
    assert later == ["ensembles.store.lease", "ensembles.execution.wire"]
    assert [n for _, n, _ in imports if n.startswith("_")] == ["_private"]
