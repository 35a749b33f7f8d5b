"""The ``pageflags`` command (placeholder until the front-door issue lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("pageflags: no commands yet", file=sys.stderr)
    return 1
