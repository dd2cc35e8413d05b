"""The shape of the code: no import cycles anywhere in gateway/, and every package says its role.

An import cycle means two modules each need the other to be built first: the sign that two
places build the same parts. Imports inside functions count (they only defer the cycle);
imports under ``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gateway"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement below ``node``, at any depth, except under TYPE_CHECKING."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _imports_in(other)
            continue
        yield from _imports_in(child)


def _imports_in(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    yield from _imports(node)


def _running(target: str, importer: str, known: dict[str, Path]) -> set[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first, except the packages the
    importer is itself inside (they are already being run when it is)."""
    parts = target.split(".")
    parents = {".".join(parts[:i]) for i in range(1, len(parts))}
    inside = {p for p in parents if importer == p or importer.startswith(p + ".")}
    return ({target} | (parents - inside)) & known.keys()


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The gateway modules that importing ``name`` runs directly."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found |= _running(alias.name, name, known)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in known:  # `from gateway.web import server` imports a module
                found |= _running(submodule, name, known)
            else:  # a name defined in ``base`` itself: it must have run
                found |= {base} & known.keys() | _running(base, name, known)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it (the first repeated at the end)."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(graph[node]):
            cycle = visit(nxt)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle is not None:
            return cycle
    return None


def test_find_cycle_names_the_modules_around_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_imports_inside_functions_count_and_type_checking_ones_do_not(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from gateway import logs\n"
        "def f():\n"
        "    from gateway.web import server\n"
    )
    known = {"gateway": PACKAGE, "gateway.web": PACKAGE, "gateway.web.server": PACKAGE}
    assert imported("m", source, known) == {"gateway", "gateway.web", "gateway.web.server"}


def test_a_module_inside_a_package_does_not_depend_on_that_package_by_importing_a_sibling(
    tmp_path: Path,
) -> None:
    source = tmp_path / "changes.py"
    source.write_text("from gateway.store.records import Status\nfrom gateway.store import Hold\n")
    known = {name: PACKAGE for name in ("gateway", "gateway.store", "gateway.store.records")}
    # The sibling alone; the package only for a name its __init__ defines.
    assert imported("gateway.store.changes", source, known) == {
        "gateway.store.records",
        "gateway.store",
    }
    source.write_text("from gateway.store.records import Status\n")
    assert imported("gateway.store.changes", source, known) == {"gateway.store.records"}


def test_no_import_cycles_in_the_gateway() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_package_says_its_role() -> None:
    folders = {p.parent for p in PACKAGE.rglob("*.py")}
    undocumented = []
    for folder in sorted(folders):
        init = folder / "__init__.py"
        if not init.exists() or not ast.get_docstring(ast.parse(init.read_text())):
            undocumented.append(str(folder.relative_to(PACKAGE.parent)))
    assert not undocumented, f"packages without a docstring in __init__.py: {undocumented}"


def test_only_the_command_line_reaches_for_the_runtime() -> None:
    """The runtime builds the parts and hands them down; nothing it builds asks it for more."""
    allowed = ("gateway.runtime", "gateway.cli", "gateway.__main__")
    reaching = sorted(
        name
        for name, targets in import_graph().items()
        if not name.startswith(allowed) and any(t.startswith("gateway.runtime") for t in targets)
    )
    assert not reaching, f"modules that import gateway.runtime: {reaching}"
