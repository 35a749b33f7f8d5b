"""How the package's modules depend on each other, read from their source (AST).

* No import cycle: the graph of imports between the package's modules is acyclic.
  Module-level imports count, and so do imports inside functions and methods (they
  run later, but a module that imports another one lazily still depends on it, and a
  lazy edge is how cycles hide).  Imports under ``if TYPE_CHECKING:`` do not count:
  they never run.  Importing ``pageflags.x`` runs ``pageflags/__init__.py`` first,
  which imports the public modules (some on first use of their names); that
  implicit step is not an edge (or every module would be in a cycle with the
  package), but ``from . import Name`` of a name the package defines is.
* Only ``bitmap.py`` touches the table's private state; every other module goes
  through PageFlags' package-internal table API.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pageflags

PACKAGE = Path(pageflags.__file__).parent
#: The table's state and the methods that change it: bitmap.py's alone.
TABLE_STATE = {"_addrs", "_counts", "_total", "_refs", "_full_addr", "_store", "_store_new",
               "_allocate", "_unshare"}
#: Hooks a subclass may override and reach through ``super()`` (preallocated.py).
TABLE_HOOKS = {"_fill", "_free"}


def modules() -> dict[str, ast.Module]:
    """Every module of the package (``pageflags/**/*.py``) by dotted name, parsed."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = ast.parse(path.read_text(), str(path))
    return out


def _under_type_checking(tree: ast.Module) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (
                (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
                or (isinstance(node.test, ast.Attribute)
                    and node.test.attr == "TYPE_CHECKING")):
            skipped |= {id(inner) for part in node.body for inner in ast.walk(part)}
    return skipped


def import_graph(trees: dict[str, ast.Module]) -> dict[str, set[str]]:
    """``{module: the package's modules it imports}``, at any depth of its code."""
    graph: dict[str, set[str]] = {name: set() for name in trees}
    for name, tree in trees.items():
        is_package = (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()
        skipped = _under_type_checking(tree)
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = name.split(".")
                    base = parts[:len(parts) - node.level + is_package]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                # ``from m import x``: the submodule m.x when there is one, else m.
                targets = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in trees
                           else module for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in trees and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or ``[]`` when it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return []


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph(modules()))
    assert not cycle, " -> ".join(cycle)


def test_the_graph_holds_every_kind_of_import():
    graph = import_graph(modules())
    assert "pageflags.persist" in graph["pageflags.bitmap"]          # from . import m
    assert "pageflags._kernels" in graph["pageflags.bitmap"]
    assert "pageflags.bitmap" in graph["pageflags.memmap"]           # from .m import x
    assert "pageflags.sharded_scan" in graph["pageflags.experiments"]  # in a function
    assert "pageflags.bitmap" not in graph["pageflags.persist"]      # TYPE_CHECKING only
    assert "pageflags.cli" in graph["pageflags.__main__"]


def test_find_cycle_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]
    tree = ast.parse("def f():\n    from .b import x\n")
    graph = import_graph({"pageflags.a": tree, "pageflags.b": ast.parse("from . import a")})
    assert find_cycle(graph) == ["pageflags.a", "pageflags.b", "pageflags.a"]


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return node.targets
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return [node.target]
    if isinstance(node, ast.Delete):
        return node.targets
    return []


def _assigned_attributes(target: ast.expr) -> list[str]:
    """Attribute names ``target`` writes: ``x.a = ``, ``x.a[i] = ``, ``x.a, y = ``."""
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _assigned_attributes(element)]
    if isinstance(target, ast.Starred):
        return _assigned_attributes(target.value)
    while isinstance(target, ast.Subscript):
        target = target.value
    return [target.attr] if isinstance(target, ast.Attribute) else []


def _outside_bitmap() -> list[tuple[str, ast.AST]]:
    """``(module, node)`` for every AST node of every module but bitmap.py."""
    return [(name, node) for name, tree in modules().items() if name != "pageflags.bitmap"
            for node in ast.walk(tree)]


def test_only_bitmap_assigns_the_table_shadows_or_the_total():
    writes = [f"{name}:{node.lineno} assigns {attr}" for name, node in _outside_bitmap()
              for target in _targets(node) for attr in _assigned_attributes(target)
              if attr in {"_addrs", "_counts", "_total"}]
    assert not writes, writes


def _is_super_call(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "super")


def test_only_bitmap_touches_the_table_state():
    touches = [f"{name}:{node.lineno} uses .{node.attr}" for name, node in _outside_bitmap()
               if isinstance(node, ast.Attribute)
               and (node.attr in TABLE_STATE
                    or (node.attr in TABLE_HOOKS and not _is_super_call(node.value)))]
    assert not touches, touches


def test_the_scans_see_what_they_look_for():
    """The checks above find reach-ins when there are some (bitmap.py has them all)."""
    tree = modules()["pageflags.bitmap"]
    assigned = {attr for node in ast.walk(tree) for target in _targets(node)
                for attr in _assigned_attributes(target)}
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert {"_addrs", "_counts", "_total"} <= assigned
    assert TABLE_STATE | TABLE_HOOKS <= used
