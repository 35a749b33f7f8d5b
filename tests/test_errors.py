"""FormatError: one class for every reader of outside data (pageflags/errors.py)."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest

import pageflags
from pageflags import PageFlags, errors, persist, roaring


def test_one_class_under_every_name():
    assert pageflags.FormatError is errors.FormatError is persist.FormatError
    assert errors.FormatError.__module__ == "pageflags.errors"
    assert issubclass(errors.FormatError, ValueError)


def test_fields_message_and_pickling():
    error = errors.FormatError("map.pgf", "magic", "not a pageflags file")
    assert (error.path, error.check, error.detail) == ("map.pgf", "magic",
                                                        "not a pageflags file")
    assert str(error) == "map.pgf: magic: not a pageflags file"
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is errors.FormatError
    assert (again.path, again.check, again.detail, str(again)) == (
        error.path, error.check, error.detail, str(error))


@pytest.mark.parametrize("read", [
    lambda: PageFlags.from_roaring64_bytes(b"\x01", 1 << 16),
    lambda: roaring.from_roaring64_bytes(bytes(7), 1 << 16),
    lambda: persist.restore(pageflags.Geometry.from_npages(1 << 16), None, None, None),
])
def test_readers_raise_it(read):
    with pytest.raises(errors.FormatError):
        read()


def test_every_module_takes_it_from_errors():
    package = Path(pageflags.__file__).parent
    users = {}
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        defined = [node for node in ast.walk(tree)
                   if isinstance(node, ast.ClassDef) and node.name == "FormatError"]
        imported = any(isinstance(node, ast.ImportFrom) and node.module == "errors"
                       and node.level == 1 and "FormatError" in {a.name for a in node.names}
                       for node in ast.walk(tree))
        if defined:
            assert path.name == "errors.py", f"{path.name} defines its own FormatError"
        elif "FormatError" in names:
            users[path.name] = imported
    assert users and all(users.values()), users
    assert {"persist.py", "roaring.py", "_manifest.py"} <= set(users)
