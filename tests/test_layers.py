"""The package layout is the architecture: every import follows the layer table of
``docs/architecture.md``, and no two modules import each other, even through a chain.

Imports are read from the source (every ``import`` and ``from ... import``, including those inside
functions), so a deferred import is no way around the rule."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: folder on disk -> the package name it installs as (pyproject's package-dir)
SOURCES = {ROOT / "videofocus": "videofocus", ROOT / "data_prep": "videofocus.data_prep"}


def layer_table() -> dict[str, int]:
    """Package (first name under ``videofocus``) -> its layer's rank (0: the top) from the fenced
    block after ``<!-- layers: top to bottom -->`` in docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- layers: top to bottom -->\s*```\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no layer table"
    ranks: dict[str, int] = {}
    for rank, line in enumerate(block.group(1).strip().splitlines()):
        # "layer   pkg pkg ...   description": packages sit between the first two wide gaps
        columns = re.split(r"\s{2,}", line.strip())
        for package in columns[1].split():
            ranks[package] = rank
    return ranks


def modules() -> dict[str, Path]:
    """Every module of the package, by its dotted name once installed."""
    found = {}
    for folder, package in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``path`` imports (``from a import b`` counts ``a.b`` when
    ``b`` is a module, else ``a``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{a.name}" for a in node.names]
            out.update(t if t in known else node.module for t in targets)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out & known


def package_of(module: str) -> str:
    """``videofocus.train.rl.stage`` -> ``train``; ``videofocus`` itself -> ``videofocus``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


GRAPH = {name: imports(path, set(modules())) - {name} for name, path in modules().items()}


def test_every_package_has_a_layer() -> None:
    ranks = layer_table()
    packages = {package_of(m) for m in GRAPH} - {"videofocus"}
    assert packages <= set(ranks), f"packages missing from the layer table: {packages - set(ranks)}"
    assert set(ranks) <= packages, f"the table names no such package: {set(ranks) - packages}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down_the_layers(module: str) -> None:
    ranks = layer_table()
    own = package_of(module)
    for target in sorted(GRAPH[module]):
        other = package_of(target)
        if other in (own, "videofocus"):  # itself; the top package holds only __version__ + API
            continue
        if own == "videofocus":  # the API at the top may reach anything below the jobs
            assert ranks[other] >= ranks["labeling"], f"videofocus imports {target}"
            continue
        assert ranks[other] > ranks[own], (
            f"{module} imports {target}: {own!r} may only import layers below its own "
            "(docs/architecture.md, Layers)"
        )


def test_the_top_package_imports_nothing_eagerly() -> None:
    # `import videofocus` (and so `videofocus --help`) stays light: the API loads on first call
    tree = ast.parse((ROOT / "videofocus" / "__init__.py").read_text(encoding="utf-8"))
    top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = [n.module for n in top_level if isinstance(n, ast.ImportFrom)]
    names += [a.name for n in top_level if isinstance(n, ast.Import) for a in n.names]
    assert all(str(name).split(".")[0] in sys.stdlib_module_names for name in names), names


def test_no_import_cycle() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"modules importing each other: {cycles}"


def test_the_reader_finds_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from videofocus.train import loop\n")
    assert imports(source, {"videofocus.train", "videofocus.train.loop"}) == {
        "videofocus.train.loop"
    }
