"""The manifest of a saved :class:`~pageflags.ShardedPageFlags` folder.

A folder holds one :meth:`PageFlags.save` file per present shard and
``manifest.json``, which names them.  Shard files of a save carry a generation
number in their names, so a new save never overwrites a file the current manifest
names; the manifest is written last (temporary file, fsync, ``os.replace``, fsync of
the folder), and only then are the old generation's files removed.  A crash at any
point leaves a manifest whose files are all there and all of one save.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._files import replace_text
from .errors import FormatError
from .geometry import Geometry

NAME = "manifest.json"
FORMAT = "pageflags-sharded"
VERSION = 1


def shard_name(index: int, generation: int) -> str:
    """The file name of shard ``index`` in save ``generation``."""
    return f"shard-{index:06d}.g{generation}.pgf"


def read(folder: Path) -> dict[str, Any]:
    """The checked manifest of ``folder``; :class:`FormatError` names what is wrong."""
    path = folder / NAME
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise FormatError(str(path), "manifest", "no manifest: not a saved sharded map"
                          ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(str(path), "manifest", f"not JSON: {exc}") from None
    keys = {"format", "version", "geometry", "shard_pages", "generation", "shards", "count"}
    if not isinstance(manifest, dict) or not keys <= manifest.keys():
        raise FormatError(str(path), "manifest", f"needs the keys {sorted(keys)}")
    if manifest["format"] != FORMAT or manifest["version"] != VERSION:
        raise FormatError(str(path), "manifest", f"not a {FORMAT} version {VERSION} manifest")
    try:
        manifest["geometry"] = Geometry(**manifest["geometry"])
    except (TypeError, ValueError) as exc:
        raise FormatError(str(path), "geometry", str(exc)) from None
    shards = manifest["shards"]
    if not isinstance(shards, list) or not all(
            s is None or (isinstance(s, str) and "/" not in s and s.endswith(".pgf"))
            for s in shards):
        raise FormatError(str(path), "shards", "a list of shard file names or nulls")
    return manifest


def generation(folder: Path) -> int:
    """The generation of the manifest in ``folder``, or 0 when there is none usable."""
    try:
        return int(read(folder)["generation"])
    except (FormatError, TypeError, ValueError):
        return 0


def write(folder: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` to ``folder`` atomically and durably."""
    replace_text(folder, NAME, json.dumps(dict(manifest, format=FORMAT, version=VERSION),
                                          indent=1))


def remove_stale(folder: Path, keep: set[str]) -> None:
    """Remove shard files of older saves (names not in ``keep``)."""
    for path in folder.glob("shard-*.pgf"):
        if path.name not in keep:
            path.unlink(missing_ok=True)
