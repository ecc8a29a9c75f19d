"""The benchmarks' worker processes: one result from each, and none left running.

A benchmark that times or counts in fresh processes (``spawn``: a clean torch, its own thread
count) waits for one result from each.  A worker that dies without one (an exception, the
out-of-memory killer) must end the wait at once, not after the timeout, and a worker still
running when the benchmark is interrupted must be stopped: left alone, it keeps a core busy
and is timed into whatever runs next.
"""

from __future__ import annotations

import queue as queues
import time
from typing import Any, Sequence


def collect(results, procs: Sequence, limit_s: float) -> list[Any]:
    """One item per process from the ``results`` queue; ``RuntimeError`` as soon as one of the
    processes has died without giving its item, or after ``limit_s`` seconds."""
    out: list[Any] = []
    deadline = time.monotonic() + limit_s
    while len(out) < len(procs):
        try:
            out.append(results.get(timeout=0.5))
        except queues.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a benchmark process failed (exit code {dead[0]}); its error is above")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no result after {limit_s:.0f} s")
    return out


def stop_workers(procs: Sequence) -> None:
    """Terminate the workers still running (an interrupted or failed setting): left alone, they kept
    training for up to a minute and were timed into the next settings' rounds."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        if p.pid is not None:
            p.join(timeout=10)


def run_workers(procs: Sequence, results, limit_s: float) -> list[Any]:
    """Start ``procs``, :func:`collect` one item from each and join them; whatever happens on the
    way (an error, Ctrl-C, TERM), none is left running."""
    try:
        for p in procs:
            p.start()
        out = collect(results, procs, limit_s)
        for p in procs:
            p.join()
        return out
    finally:
        stop_workers(procs)
