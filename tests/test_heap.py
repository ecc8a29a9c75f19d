"""qboson._heap: freed large blocks are reused inside retained_heap, glibc's defaults come back after."""

import platform
import resource

import pytest
import torch

from qboson import _heap
from qboson._heap import retained_heap

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
BLOCK = 64 << 20  # bytes: far above glibc's default mmap threshold (128 KiB, dynamic up to 32 MiB)


def _faults_of_fresh_blocks(repeats: int = 4) -> int:
    """Minor page faults of ``repeats`` steps that allocate, touch and free a 64 and a 48 MiB block."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        # torch, as in training (numpy would ask for huge pages); fill_ touches every page
        blocks = [torch.empty(size, dtype=torch.uint8).fill_(1) for size in (BLOCK, 3 * BLOCK // 4)]
        del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not GLIBC, reason="heap retention is a glibc feature")
def test_freed_blocks_are_reused_inside_and_returned_after():
    pages = BLOCK // resource.getpagesize()
    outside = _faults_of_fresh_blocks()
    with retained_heap() as active:
        assert active
        _faults_of_fresh_blocks(8)  # the heap grows until freed blocks fit the next aligned requests
        inside = _faults_of_fresh_blocks()
    after = _faults_of_fresh_blocks()
    assert outside >= 3 * pages  # each fresh mmap'd block faults in page by page
    assert inside < pages // 4  # the same block comes back from the heap, already mapped
    assert after >= 3 * pages  # defaults restored: blocks are mmap'd (and unmapped) again


@pytest.mark.skipif(not GLIBC, reason="heap retention is a glibc feature")
def test_nested_contexts_restore_only_at_the_outermost_exit():
    with retained_heap():
        with retained_heap() as inner:
            assert inner
        assert _heap._depth == 1
        _faults_of_fresh_blocks(8)
        still = _faults_of_fresh_blocks()
        assert still < (BLOCK // resource.getpagesize()) // 4  # the inner exit did not restore the defaults
    assert _heap._depth == 0


def test_disabled_or_without_glibc_it_does_nothing(monkeypatch):
    with retained_heap(False) as active:
        assert not active
    monkeypatch.setattr(_heap, "_glibc", lambda: None)
    with retained_heap() as active:
        assert not active
    assert _heap._depth == 0


@pytest.mark.skipif(not GLIBC, reason="heap retention is a glibc feature")
def test_an_exception_inside_still_restores_the_defaults():
    with pytest.raises(RuntimeError, match="boom"):
        with retained_heap():
            raise RuntimeError("boom")
    assert _heap._depth == 0
    assert _faults_of_fresh_blocks() >= 3 * (BLOCK // resource.getpagesize())
