"""The distributed extra is optional: pageflags imports without it and says how to get it."""

import subprocess
import sys

import pytest

from pageflags import Geometry, ShardedPageFlags


def test_import_pageflags_does_not_import_dask():
    code = "import sys, pageflags; assert not {'dask', 'distributed'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_the_extra_a_sharded_map_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import raises ImportError
    with pytest.raises(ImportError, match=r'pip install "pageflags\[distributed\]"'):
        ShardedPageFlags(Geometry(40))


def test_scan_without_the_extra_says_how_to_install_it(monkeypatch, capsys):
    from pageflags.cli import main

    monkeypatch.setitem(sys.modules, "distributed", None)
    assert main(["scan", "--workers", "2"]) == 2
    assert 'pip install "pageflags[distributed]"' in capsys.readouterr().err


def test_workers_and_scheduler_are_checked(capsys):
    from pageflags.cli import main

    assert main(["scan", "--workers", "0"]) == 2
    assert main(["scan", "--workers", "2", "--scheduler", "tcp://x:1"]) == 2
    err = capsys.readouterr().err
    assert "--workers must be >= 1" in err and "not allowed with" in err
