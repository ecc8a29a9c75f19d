"""qboson._heap: freed large blocks are reused inside retained_heap, glibc's defaults come back after."""

import ctypes
import platform
import resource

import pytest
import torch

from qboson import _heap
from qboson._heap import retained_heap

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
BLOCK = 64 << 20  # bytes: far above glibc's default mmap threshold (128 KiB, dynamic up to 32 MiB)
PAGES = BLOCK // resource.getpagesize()


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _mmapped_bytes() -> int:
    """Bytes glibc holds in mmap'd chunks right now (``mallinfo2().hblkhd``)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().hblkhd)


def _block_is_mmapped(size: int = 8 * BLOCK) -> bool:
    """Whether glibc serves a fresh 512 MiB tensor (never touched: no memory is used) with its own
    mmap, as by default, or from the heap.  Larger than any block freed into the heap here, so a
    free heap chunk cannot serve it once the default thresholds are back."""
    before = _mmapped_bytes()
    block = torch.empty(size, dtype=torch.uint8)
    grown = _mmapped_bytes() - before
    del block
    return grown >= size


def _faults_of_fresh_blocks(repeats: int = 4) -> int:
    """Minor page faults of ``repeats`` steps that allocate, touch and free a 64 and a 48 MiB block."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        # torch, as in training (numpy would ask for huge pages); fill_ touches every page
        blocks = [torch.empty(size, dtype=torch.uint8).fill_(1) for size in (BLOCK, 3 * BLOCK // 4)]
        del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


HAS_MALLINFO2 = GLIBC and hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
needs_glibc = pytest.mark.skipif(not HAS_MALLINFO2,
                                 reason="heap retention is a glibc feature (mallinfo2: glibc >= 2.33)")


@needs_glibc
def test_blocks_come_from_the_heap_only_inside():
    assert _block_is_mmapped()
    with retained_heap() as active:
        assert active
        assert not _block_is_mmapped()
    assert _block_is_mmapped()  # glibc's default thresholds are back


@needs_glibc
def test_freed_blocks_are_reused_without_page_faults_inside():
    outside = _faults_of_fresh_blocks()
    with retained_heap():
        _faults_of_fresh_blocks(8)  # the heap grows until freed blocks fit the next aligned requests
        inside = _faults_of_fresh_blocks()
    assert outside >= 3 * PAGES  # each fresh mmap'd block faults in page by page
    assert inside < PAGES // 4  # the same memory comes back from the heap, already mapped


@needs_glibc
def test_nested_contexts_restore_only_at_the_outermost_exit():
    with retained_heap():
        with retained_heap() as inner:
            assert inner
        assert _heap._depth == 1
        assert not _block_is_mmapped()  # the inner exit did not restore the defaults
    assert _heap._depth == 0
    assert _block_is_mmapped()


def test_disabled_or_without_glibc_it_does_nothing(monkeypatch):
    with retained_heap(False) as active:
        assert not active
    monkeypatch.setattr(_heap, "_glibc", lambda: None)
    with retained_heap() as active:
        assert not active
    assert _heap._depth == 0


@needs_glibc
def test_an_exception_inside_still_restores_the_defaults():
    with pytest.raises(RuntimeError, match="boom"):
        with retained_heap():
            raise RuntimeError("boom")
    assert _heap._depth == 0
    assert _block_is_mmapped()
