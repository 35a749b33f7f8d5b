"""How the package's modules depend on each other, read from their source (AST).

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


def test_only_bitmap_assigns_the_table_shadows_or_the_total():
    writes = []
    for name, tree in modules().items():
        if name == "pageflags.bitmap":
            continue
        for node in ast.walk(tree):
            for target in _targets(node):
                for attr in _assigned_attributes(target):
                    if attr in {"_addrs", "_counts", "_total"}:
                        writes.append(f"{name}:{node.lineno} assigns {attr}")
    assert not writes, writes


def _is_super_call(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "super")


def test_only_bitmap_touches_the_table_state():
    touches = []
    for name, tree in modules().items():
        if name == "pageflags.bitmap":
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            if node.attr in TABLE_STATE or (node.attr in TABLE_HOOKS
                                            and not _is_super_call(node.value)):
                touches.append(f"{name}:{node.lineno} uses .{node.attr}")
    assert not touches, touches


def test_the_scans_see_what_they_look_for():
    """The checks above find reach-ins when there are some (bitmap.py has them all)."""
    tree = modules()["pageflags.bitmap"]
    assigned = {attr for node in ast.walk(tree) for target in _targets(node)
                for attr in _assigned_attributes(target)}
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert {"_addrs", "_counts", "_total"} <= assigned
    assert TABLE_STATE | TABLE_HOOKS <= used
