"""No import cycle between the parts of `personae` (docs/architecture.md, "Packages form a
graph without cycles").

A part is a top-level module (`app.py`, `state.py`) or a subpackage (`webhook/`, with all
it holds). An import counts wherever it stands: at the top of a module, inside a function,
or under `if TYPE_CHECKING:`, because each of them still ties the importer to what it
imports. Alembic's script folder (`db/migrations/`, not a package: Alembic runs its files by
path) is a part of its own, above the tables it reads.

`python tests/test_import_structure.py` prints every import between parts and the cycles.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "personae"
ROOT = "personae"
PARTS = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if p.is_dir()}

SHOWN = 3  # imports shown per arrow of a cycle
# part -> imported part -> where ("webhook/payloads.py:15 personae.dialects.characters")
Graph = dict[str, dict[str, list[str]]]


def part_of_module(module: str) -> str | None:
    """The part that holds the dotted module `module`; None outside `personae`."""
    names = module.split(".")
    if names[0] != ROOT:
        return None
    # `from personae import __version__` names the package's own module, not a part.
    return names[1] if len(names) > 1 and names[1] in PARTS else ROOT


def part_of_file(path: Path) -> tuple[str, list[str]]:
    """The part a source file belongs to, and the dotted package its relative imports
    start from."""
    relative = path.relative_to(PACKAGE)
    folder = relative.parent
    for depth in range(1, len(folder.parts) + 1):
        if not (PACKAGE.joinpath(*folder.parts[:depth]) / "__init__.py").exists():
            # A folder of scripts inside a package: its own part, named by its path.
            return "/".join(folder.parts[:depth]), []
    package = [ROOT, *folder.parts]
    if relative.name == "__init__.py":
        return (folder.parts[0] if folder.parts else ROOT), package
    return (folder.parts[0] if folder.parts else relative.stem), package


def imported_modules(tree: ast.AST, package: list[str]) -> list[tuple[int, str]]:
    """Every module an import statement anywhere in `tree` names, with its line; for
    `from a import b`, `a.b` too, since `b` may be a module."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def import_graph() -> Graph:
    graph: Graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        source, package = part_of_file(path)
        edges = graph.setdefault(source, {})  # a part that imports no other is still one
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for line, module in imported_modules(tree, package):
            target = part_of_module(module)
            if target is not None and target != source:
                # One line per statement: `from a.b import c` names `a.b` and `a.b.c`.
                where = f"{path.relative_to(PACKAGE)}:{line}"
                wheres = edges.setdefault(target, [])
                if not any(w.split(" ")[0] == where for w in wheres):
                    wheres.append(f"{where} {module}")
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one part (Tarjan's algorithm):
    each holds at least one cycle, and every cycle lies in one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(part: str) -> None:
        index[part] = low[part] = len(index)
        stack.append(part)
        on_stack.add(part)
        for other in sorted(graph.get(part, {})):
            if other not in index:
                visit(other)
                low[part] = min(low[part], low[other])
            elif other in on_stack:
                low[part] = min(low[part], index[other])
        if low[part] == index[part]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == part:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for part in sorted(graph):
        if part not in index:
            visit(part)
    return found


def describe(graph: Graph, component: list[str]) -> str:
    """A cycle and the imports that close it, for a reader who has to break it."""
    lines = [f"cycle between {', '.join(component)}:"]
    for source in component:
        for target in sorted(graph[source]):
            if target in component:
                wheres = graph[source][target]
                lines.append(f"  {source} -> {target}")
                lines += [f"      {where}" for where in wheres[:SHOWN]]
                if len(wheres) > SHOWN:
                    lines.append(f"      and {len(wheres) - SHOWN} more")
    return "\n".join(lines)


def test_no_import_cycle_between_packages() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "\n\n".join(describe(graph, component) for component in found)


def test_the_graph_sees_the_imports() -> None:
    """The walk finds what is known to be there, so that an empty graph cannot pass."""
    graph = import_graph()
    assert "dialects" in graph["app"]
    assert "db" in graph["models"]
    assert "models" in graph["db/migrations"]  # Alembic's scripts, above the tables
    assert "worker" in graph["cli"]  # imported inside a function
    assert "config" in graph["account"]  # imported under TYPE_CHECKING only
    assert cycles({"a": {"b": ["x"]}, "b": {"c": ["y"]}, "c": {"a": ["z"]}}) == [["a", "b", "c"]]


if __name__ == "__main__":
    graph = import_graph()
    for source in sorted(graph):
        sys.stdout.write(f"{source} -> {', '.join(sorted(graph[source])) or '(nothing)'}\n")
    found = cycles(graph)
    report = "\n\n".join(describe(graph, component) for component in found)
    sys.stdout.write(f"\n{report or 'no cycle'}\n")
    sys.exit(1 if found else 0)
