"""Flushing float32 subnormals to zero on every CPU thread torch computes on.

``torch.set_flush_denormal`` sets the FTZ/DAZ bits of the calling thread only.  With
more than one torch thread, part of every product runs on torch's OpenMP workers, which
kept computing on subnormals: a trained MolGAN checkpoint trained at 300 ms per critic
update with two threads against 120 ms with one (85 ms once the workers flush too), on
the 2-core development machine.  :func:`flushed_subnormals` therefore also runs the call
once on each thread of torch's OpenMP team (through the runtime's ``GOMP_parallel`` entry
point, which libgomp, LLVM's libomp and Intel's libiomp5 all export).

Where that runtime cannot be found (not Linux, or ATen not built on OpenMP) only the
calling thread is set, as torch does; :func:`flushed_subnormals` reports how many threads
it reached.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from typing import Callable, Iterator, Optional

import torch

__all__ = ["flushed_subnormals"]

_RUNTIMES = ("libgomp", "libomp", "libiomp5")
_BODY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _omp_runtime() -> Optional[str]:
    """Path of the OpenMP runtime torch loaded (the one inside torch's folder if several are)."""
    if sys.platform != "linux" or "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        return None
    found = sorted(p for p in paths if os.path.basename(p).startswith(_RUNTIMES))
    torch_dir = os.path.dirname(torch.__file__)
    ours = [p for p in found if p.startswith(torch_dir)]
    return (ours or found or [None])[0]


def _on_torch_threads(fn: Callable[[], object]) -> int:
    """Call ``fn`` once on each of torch's ``get_num_threads()`` OpenMP threads; returns how many ran it."""
    path = _omp_runtime()
    if path is None:
        fn()
        return 1
    try:
        parallel = ctypes.CDLL(path).GOMP_parallel  # the loaded library: dlopen returns its handle
    except (OSError, AttributeError):
        fn()
        return 1
    parallel.argtypes = [_BODY, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    parallel.restype = None
    threads: set[int] = set()

    def body(_: object) -> None:  # runs on each team thread, the caller included, one at a time (GIL)
        fn()
        threads.add(threading.get_ident())

    callback = _BODY(body)  # kept alive for the call
    parallel(callback, None, max(1, torch.get_num_threads()), 0)
    return len(threads)


@contextlib.contextmanager
def flushed_subnormals(enabled: bool = True) -> Iterator[int]:
    """Context in which float32 subnormals are flushed to zero on all of torch's CPU threads.

    Yields the number of threads set (0 when ``enabled`` is false).  On exit flushing is
    turned off on the same threads.  Changes only values below ~1.2e-38 in magnitude.
    """
    if not enabled:
        yield 0
        return
    torch.set_flush_denormal(True)
    reached = _on_torch_threads(lambda: torch.set_flush_denormal(True))
    try:
        yield reached
    finally:
        _on_torch_threads(lambda: torch.set_flush_denormal(False))
        torch.set_flush_denormal(False)
