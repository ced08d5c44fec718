"""The packages of src/clarion import each other in one direction only: no cycle, and each import
goes down the layering below (docs/architecture.md). Every import is read with `ast`, lazy ones too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import clarion

ROOT = Path(clarion.__file__).parent

# Lowest first. A package (or top-level module) may import only from layers below its own; packages in
# the same layer are independent of each other. The worker's runner sits low: it runs what the
# composition root hands it and imports no feature.
LAYERS: list[set[str]] = [
    {"netpolicy", "metrics", "logs", "ids"},
    {"errors", "config"},
    {"validation", "models", "body_limit", "content", "secrets_box"},
    {"db", "outage", "attributes"},
    {"migrations", "queue"},
    {"runtime", "worker", "pacing"},
    {"provider"},
    {"event"},
    {"app_tenant"},
    {"audience"},
    {"campaign"},
    {"subscriber", "pictures", "schedule"},
    {"delivery"},
    {"gravitec", "swrve", "sdk"},
    {"admin", "composition", "health", "telemetry", "api_docs", "follow", "console"},
    {"v1"},
    {"app"},
    {"cli"},
]
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}


def _package(path: Path) -> str:
    """`delivery` for src/clarion/delivery/fanout.py, `app` for src/clarion/app.py."""
    return path.relative_to(ROOT).with_suffix("").parts[0]


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """(imported clarion package, line) for every import in the module, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module != "clarion" else [f"clarion.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "clarion" and len(parts) > 1:
                yield parts[1], node.lineno


def _edges() -> dict[tuple[str, str], str]:
    """(importer, imported) package pairs, each with the first import that makes it, as file:line."""
    edges: dict[tuple[str, str], str] = {}
    for path in sorted(ROOT.rglob("*.py")):
        if path == ROOT / "__init__.py" or path.name == "__main__.py":
            continue
        importer = _package(path)
        for imported, line in _imports(path):
            if imported != importer:
                edges.setdefault((importer, imported), f"{path.relative_to(ROOT.parent)}:{line}")
    return edges


def _cycle(edges: dict[tuple[str, str], str]) -> list[str] | None:
    graph: dict[str, list[str]] = {}
    for importer, imported in edges:
        graph.setdefault(importer, []).append(imported)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_every_package_has_a_layer() -> None:
    packages = {_package(p) for p in ROOT.rglob("*.py") if p != ROOT / "__init__.py"} - {"__main__"}
    assert packages - RANK.keys() == set(), "add these packages to LAYERS in tests/test_imports.py"


def test_no_package_cycle() -> None:
    edges = _edges()
    cycle = _cycle(edges)
    assert cycle is None, (
        "package cycle: "
        + " -> ".join(cycle or [])
        + "; imports: "
        + ", ".join(
            f"{a} -> {b} at {edges[(a, b)]}" for a, b in zip(cycle or [], (cycle or [])[1:], strict=False)
        )
    )


def test_imports_go_down_the_layers() -> None:
    upward = [
        f"{where}: {importer} imports {imported}"
        for (importer, imported), where in sorted(_edges().items())
        if importer in RANK and imported in RANK and RANK[imported] >= RANK[importer]
    ]
    assert upward == [], "imports against the layering (tests/test_imports.py LAYERS):\n" + "\n".join(upward)


def test_the_checks_see_a_cycle_and_an_upward_import() -> None:
    """The checker itself: a made-up graph with a cycle is caught, and names the imports."""
    edges = {("delivery", "worker"): "a.py:1", ("worker", "delivery"): "b.py:2"}
    assert _cycle(edges) == ["delivery", "worker", "delivery"]
    assert RANK["worker"] < RANK["delivery"], "the runner sits below every feature"
