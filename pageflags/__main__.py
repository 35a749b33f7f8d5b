"""``python -m pageflags``: the same as the ``pageflags`` command."""

import sys

from .cli import main

sys.exit(main())
