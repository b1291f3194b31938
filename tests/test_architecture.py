"""The shape of the house: imports point one way (no cycle between modules), no module grows
into a room with several jobs, and the command line goes through the library's front door."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "alma"
MAX_LINES = 450
# what the command line may import besides its own modules: the front door and plain values
CLI_MAY_IMPORT = {"alma", "alma.api", "alma.errors", "alma.progress", "alma.types"}
CLI_MAY_IMPORT |= {"alma.storage_faults"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _in_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def top_level_imports(name: str) -> set[str]:
    """The alma modules ``name`` imports when it is imported (not inside functions, not for
    type checking only)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and not _in_type_checking(node):
                visit(node.body + node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body + node.orelse + node.finalbody)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)

    visit(tree.body)
    return {module for module in found if module in MODULES and module != name}


def test_no_import_cycle_between_modules() -> None:
    graph = {name: top_level_imports(name) for name in MODULES}
    # a package's __init__ importing its own modules is how packages re-export: not a cycle
    for name, imported in graph.items():
        graph[name] = {m for m in imported if not name or not _is_parent_init(m, name)}
    cycles = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt)
        path.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name)
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)


def _is_parent_init(imported: str, importer: str) -> bool:
    """``imported`` is a package whose ``__init__`` re-exports ``importer``'s siblings."""
    return MODULES[imported].name == "__init__.py" and importer.startswith(imported + ".")


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_oversized(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it by what its parts do"


def test_the_command_line_uses_only_the_library_front_door() -> None:
    for name in MODULES:
        if name == "alma.cli" or name.startswith("alma.cli."):
            outside = {
                m
                for m in top_level_imports(name) | _local_imports(name)
                if not m.startswith("alma.cli")
            }
            assert outside <= CLI_MAY_IMPORT, f"{name} imports {sorted(outside - CLI_MAY_IMPORT)}"


def _local_imports(name: str) -> set[str]:
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("alma"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("alma"))
    return {m for m in found if m in MODULES}
