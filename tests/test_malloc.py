"""Free memory handed back: RSS falls after a large freed allocation is trimmed (glibc)."""

from __future__ import annotations

import ctypes.util
import platform

import pytest

from stream import malloc


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1])


def test_trim_gives_freed_heap_memory_back() -> None:
    """On glibc (CI's Debian, the deployment images) RSS falls; elsewhere trim() says False."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        assert malloc.trim() is False
        return
    # 100 MiB in blocks below the mmap threshold: they live in the heap, not in own mappings
    blocks = [bytearray(64 * 1024 - 64) for _ in range(1600)]
    keep = blocks[-1]  # the heap's top stays in use: only an in-heap trim can return the rest
    del blocks
    before = _rss_kib()
    assert malloc.trim() is True
    after = _rss_kib()
    assert before - after > 50 * 1024, (before, after)
    assert keep


def test_trim_is_a_no_op_without_a_c_library(monkeypatch: pytest.MonkeyPatch) -> None:
    malloc._malloc_trim.cache_clear()
    monkeypatch.setattr(ctypes.util, "find_library", lambda _name: None)
    try:
        assert malloc.trim() is False
    finally:
        malloc._malloc_trim.cache_clear()
