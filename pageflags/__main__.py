"""``python -m pageflags``: the same as the ``pageflags`` command."""

import sys

from .cli import main

# Guarded: ``scan --workers`` starts worker processes that re-import the main module.
if __name__ == "__main__":
    sys.exit(main())
