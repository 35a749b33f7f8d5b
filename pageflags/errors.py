"""The errors pageflags raises of its own.

:class:`FormatError` is what every reader of outside data raises for input it
refuses: saved files and pickled state (:mod:`pageflags.persist`), Roaring
serializations (:mod:`pageflags.roaring`) and sharded-map manifests.  It is a
``ValueError``, so code that catches bad values catches it too.
"""

from __future__ import annotations

__all__ = ["FormatError"]


class FormatError(ValueError):
    """A saved map, Roaring serialization, pickled state or manifest that cannot be loaded.

    ``path`` names the file (or the kind of input), ``check`` the check that failed
    and ``detail`` what it found.

    Examples
    --------
    >>> from pageflags import FormatError
    >>> error = FormatError("map.pgf", "magic", "not a pageflags file")
    >>> str(error), isinstance(error, ValueError)
    ('map.pgf: magic: not a pageflags file', True)
    """

    def __init__(self, path: str, check: str, detail: str) -> None:
        # All three in args, so the error survives pickling (multiprocessing).
        super().__init__(path, check, detail)
        self.path = path
        self.check = check
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.path}: {self.check}: {self.detail}"
