"""What this machine has: available memory and the checks against it (pageflags/_system.py)."""

from __future__ import annotations

import pytest

from pageflags import _system as system_module


def test_available_memory_is_known_here():
    free = system_module.available_bytes()
    assert free is None or free > 0


def _refuse(*args, **kwargs):
    raise OSError("not on this machine")


def test_available_memory_falls_back_to_free_pages_then_to_unknown(monkeypatch):
    monkeypatch.setattr(system_module, "open", _refuse, raising=False)  # no /proc/meminfo
    pages = {"SC_AVPHYS_PAGES": 10, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(system_module.os, "sysconf", pages.__getitem__)
    assert system_module.available_bytes() == 40960
    monkeypatch.setattr(system_module.os, "sysconf", _refuse)
    assert system_module.available_bytes() is None
    system_module.ensure_fits(1 << 70, "anything")  # no guard without a number


def test_ensure_fits_names_what_does_not_fit(monkeypatch):
    monkeypatch.setattr(system_module, "available_bytes", lambda: 8192)
    system_module.ensure_fits(8192, "two chunks")  # exactly what is free fits
    with pytest.raises(MemoryError, match="three chunks takes 12 KiB, more than the 8 KiB"):
        system_module.ensure_fits(12288, "three chunks")
