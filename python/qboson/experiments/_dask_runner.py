"""Run an experiment grid's tasks on a Dask cluster (``--scheduler ADDRESS`` / ``--dask-workers N``).

A grid runner hands :func:`run_tasks` a function and a list of :class:`GridTask`; each task
calls ``fn(*task.args)`` on a worker.  The function writes its own results (a run folder)
atomically, so the folders must be on storage that the workers and this process share, at
the same absolute path; only the small return values travel back to :func:`run_tasks`,
which hands each one to ``on_result`` in this process as it arrives.

Failures and resumption:

* a task whose worker dies (killed, out of memory, node lost) is rerun by Dask on another
  worker (up to ``distributed.scheduler.allowed-failures`` times, default 3); a task that
  raises is rerun ``retries`` times.  A rerun MolGAN run resumes from its last checkpoint.
* Ctrl-C (or an error in ``on_result``) cancels the tasks not yet started.  Tasks already
  running on an external cluster cannot be stopped by Dask and finish on their own; tasks on
  a cluster started by ``n_workers`` stop with it.
* each task holds exclusive file locks (``task.locks``, one per run folder it writes) while it
  runs, so a task submitted again by a resumed grid waits for a still-running copy instead of
  writing the same folder at the same time; it then finds the run finished.  A stack of runs
  holds the locks of all its runs, taken in sorted order so that two tasks sharing runs
  (stacks regrouped by a resumed grid) cannot deadlock.
* in one worker process tasks run one at a time: training seeds torch's process-wide random
  generator and sets its thread count, so two concurrent runs in one process would not
  reproduce a local grid.  Start workers with one thread each (``--nthreads 1``).

Needs ``dask[distributed]`` (``pip install qboson[dist]``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

__all__ = ["GridTask", "TasksFailed", "run_tasks"]


@dataclass(frozen=True)
class GridTask:
    """One unit of work: ``fn(*args)`` on a worker.

    ``name``: short label (letters, digits, ``-_.``), used in messages and the Dask key.
    ``args``: picklable arguments.  ``locks``: absolute paths of lock files held while the task
    runs (on the shared storage, one next to each folder the task writes); may be empty.
    """

    name: str
    args: tuple
    locks: tuple[str, ...] = ()


class TasksFailed(RuntimeError):
    """Some tasks failed for good; the others finished and kept their results.  ``failed`` holds
    ``(task, exception)`` pairs."""

    def __init__(self, message: str, failed: list[tuple[GridTask, BaseException]]) -> None:
        super().__init__(message)
        self.failed = failed


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence[GridTask],
    *,
    client: Any = None,
    n_workers: Optional[int] = None,
    retries: int = 1,
    on_result: Optional[Callable[[GridTask, Any], None]] = None,
) -> None:
    """Run ``fn(*task.args)`` for every task on a Dask cluster; ``on_result(task, value)`` runs here,
    in completion order.

    ``client``: a ``dask.distributed.Client``, a scheduler address (``"tcp://host:8786"``), or
    None with ``n_workers``: a ``LocalCluster`` of that many single-threaded worker processes
    for this call.  ``fn`` must be importable on the workers (it is pickled by reference), and
    the workers must run the same qboson version as this process (checked per task).

    Raises ``TasksFailed`` after all other tasks finished if some failed for good, ConnectionError
    if the scheduler cannot be reached, ValueError for a malformed address, ImportError without
    Dask; KeyboardInterrupt cancels the tasks not yet started and is re-raised.
    """
    from .. import __version__
    from ..distributed import _client, require_dask

    distributed = require_dask()
    if not tasks:
        return
    tag = uuid.uuid4().hex[:8]  # fresh keys: a resumed grid never meets an old run's futures
    with contextlib.ExitStack() as stack:
        try:
            c = stack.enter_context(_client(client, n_workers))
        except OSError as exc:  # ValueError (a malformed address) passes through as it is
            if not isinstance(client, str):
                raise
            raise ConnectionError(f"cannot reach the Dask scheduler {client!r}: {exc}; is it running, "
                                  "and reachable from here?") from exc
        pending = {
            c.submit(_call, fn, tuple(t.locks), __version__, *t.args, key=f"qboson-{t.name}-{tag}", retries=retries,
                     pure=False): t
            for t in tasks
        }
        failed: list[tuple[GridTask, BaseException]] = []
        try:
            for fut in distributed.as_completed(list(pending)):
                task = pending.pop(fut)
                if fut.status == "finished":
                    value = fut.result()
                    fut.release()
                    if on_result is not None:
                        on_result(task, value)
                    continue
                try:
                    exc = fut.exception()
                except BaseException as err:  # cancelled or lost futures
                    exc = err
                failed.append((task, exc))
                fut.release()
        except BaseException:
            c.cancel(list(pending))
            raise
    if failed:
        task, exc = failed[0]
        names = ", ".join(t.name for t, _ in failed)
        raise TasksFailed(f"{len(failed)} of {len(tasks)} task(s) failed ({names}; first: {exc!r}); "
                          "finished ones are kept, rerun the same command to retry the rest", failed)


_ONE_AT_A_TIME = threading.Lock()


def _call(fn: Callable[..., Any], locks: Sequence[str], version: str, *args: Any) -> Any:
    """Executed on a worker: check the version, take the task's locks, run ``fn``."""
    from .. import __version__

    if version != __version__:
        raise RuntimeError(f"this Dask worker has qboson {__version__} but the client has {version}; "
                           "install the same version on the workers")
    for lock in locks:
        if not Path(lock).parent.is_dir():
            import socket

            raise FileNotFoundError(f"{Path(lock).parent} does not exist on the Dask worker "
                                    f"{socket.gethostname()}: the output folder must be on storage shared by "
                                    "the client and the workers, at the same path")
    with contextlib.ExitStack() as held:
        for lock in sorted(set(locks)):  # one global order: tasks sharing runs cannot deadlock
            held.enter_context(file_lock(lock))
        with _ONE_AT_A_TIME:  # always after the file locks: no deadlock between threads
            return fn(*args)


@contextlib.contextmanager
def file_lock(path: Optional[str]) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``path`` (created, and removed afterwards); waits while
    another process holds it.  The OS releases it if the holder dies.  No-op for None or without
    ``fcntl`` (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        fcntl = None
    if path is None or fcntl is None:
        yield
        return
    path = str(Path(path))
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # the previous holder removes the file before releasing it: if ours is gone or
            # replaced, a third process may hold the new one, so start again
            mine = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)  # releases the lock
