"""bench/ imports form a one-way graph: world and measure at the bottom, then the scenarios,
the report, the entry points. A cycle, or an import hidden in a function to dodge one,
fails here (parsed with ast: nothing is imported, so no benchmark dependency is needed)."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).parent.parent / "bench"


def _bench_module(name: str | None, level: int, package: str = "bench") -> str | None:
    """The bench module an import names (``bench.x``, relative ``.x``), else None."""
    if level:
        name = f"{package}.{name}" if name else package
    if name is None or not (name == "bench" or name.startswith("bench.")):
        return None
    return name


def imports(tree: ast.Module) -> list[tuple[str, bool]]:
    """(bench module, inside a function?) for every import of a bench module in ``tree``."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if (module := _bench_module(alias.name, 0)) is not None:
                        found.append((module, inner))
            elif isinstance(child, ast.ImportFrom):
                module = _bench_module(child.module, child.level)
                if module == "bench":  # from bench import world, measure: each a module
                    found.extend((f"bench.{alias.name}", inner) for alias in child.names)
                elif module is not None:
                    found.append((module, inner))
            visit(child, inner)

    visit(tree, False)
    return found


def graph() -> dict[str, set[str]]:
    """bench module -> the bench modules it imports (itself and the package left out)."""
    edges: dict[str, set[str]] = {}
    for path in sorted(BENCH.glob("*.py")):
        name = f"bench.{path.stem}"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges[name] = {m for m, _ in imports(tree) if m not in (name, "bench", "bench.__init__")}
    return edges


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of modules, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := walk(target)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := walk(node)) is not None:
            return found
    return None


def test_bench_imports_have_no_cycle() -> None:
    found = cycle(graph())
    assert found is None, "bench import cycle: " + " -> ".join(found or [])


def test_no_bench_import_inside_a_function() -> None:
    hidden = []
    for path in sorted(BENCH.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        hidden += [f"{path.name} imports {m}" for m, inner in imports(tree) if inner]
    assert not hidden, "function-level bench imports (move them up, or move the code down)"


def test_every_import_names_an_existing_module() -> None:
    modules = {f"bench.{p.stem}" for p in BENCH.glob("*.py")}
    for name, targets in graph().items():
        assert targets <= modules, f"{name} imports {targets - modules}"


def test_the_checks_see_cycles_and_hidden_imports() -> None:
    """The checker itself: a cycle and a function-level import are found."""
    assert cycle({"bench.a": {"bench.b"}, "bench.b": {"bench.a"}}) == [
        "bench.a",
        "bench.b",
        "bench.a",
    ]
    assert cycle({"bench.a": {"bench.b"}, "bench.b": set()}) is None
    source = "from bench import world\ndef f():\n    from bench.load import x\n    from . import y"
    assert imports(ast.parse(source)) == [
        ("bench.world", False),
        ("bench.load", True),
        ("bench.y", True),
    ]
