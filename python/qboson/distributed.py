"""Sample-bank generation on a Dask cluster, byte-identical to a local run.

    >>> from dask.distributed import Client
    >>> from qboson.distributed import generate_bank
    >>> bank = generate_bank({"name": "quantum", "dim": 48, "seed": 0}, 1_000_000, "/shared/bank48",
    ...                      client=Client("tcp://scheduler:8786"), threads=8)

The bank is cut into the same aligned chunks as :func:`qboson.latent.generate_bank`; each chunk
is one task that computes rows ``[start, stop)`` of the latent's stream (row ``i`` depends only
on ``(seed, i)``) and writes them atomically into ``<out>/chunks/``, so ``out`` must be on a
filesystem the workers share with the client.  The client then merges the chunks, checksums
the data and writes the metadata with the same code as a local run: the bank's bytes do not
depend on the number of workers, the chunk size or on failures.  A rerun after a crash, a lost
worker or Ctrl-C computes only the chunks missing on disk.

Threads: each task runs the sampler with ``threads`` OpenMP threads (default 1).  Either run
workers with several Dask threads and ``threads=1`` (many small tasks), or, for large photon
numbers, start workers with ``--nthreads 1`` and pass ``threads=<cores per worker>``.

Needs ``dask[distributed]`` (``pip install qboson[dist]``); clusters from dask-jobqueue
(SLURM, PBS) or dask-kubernetes work as any other ``Client``.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any, Optional, Union

from ._validation import as_int
from .latent.bank import Bank, PathLike, compute_chunk, finalize, plan_generation, writer_lock
from .latent.base import Latent

__all__ = ["generate_bank", "require_dask"]


def require_dask():
    """Import ``dask.distributed`` or raise an ImportError naming the extra."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            "distributed bank generation needs Dask: pip install qboson[dist]  (i.e. dask[distributed])"
        ) from exc
    return distributed


def _as_latent(spec: Union[Latent, dict]) -> Latent:
    if isinstance(spec, Latent):
        return spec
    if isinstance(spec, dict):
        from .latent import from_spec, make

        if "unitary" in spec and isinstance(spec["unitary"], list):
            return from_spec(spec)
        kwargs = dict(spec)
        try:
            name = kwargs.pop("name")
        except KeyError:
            raise ValueError("a latent spec dict needs a 'name' (e.g. {'name': 'quantum', 'dim': 16, 'seed': 0})") from None
        return make(name, **kwargs)
    raise TypeError(f"spec must be a qboson Latent or a dict of qboson.latent.make arguments, got {type(spec).__name__}")


@contextlib.contextmanager
def _client(client: Any, n_workers: Optional[int]):
    """The client to use, and whether we started (and must close) it."""
    distributed = require_dask()
    if client is not None and not isinstance(client, str):
        yield client
        return
    if isinstance(client, str):
        with distributed.Client(client) as c:
            yield c
        return
    if n_workers is None:
        try:
            yield distributed.get_client()
            return
        except ValueError:
            pass
    from ._validation import as_threads

    workers = as_threads(None) if n_workers is None else as_int(n_workers, "n_workers", minimum=1)
    with distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # its HTTP server on a free port, not 8787
    ) as cluster, distributed.Client(cluster) as c:
        yield c


def generate_bank(
    spec: Union[Latent, dict],
    shots: int,
    out: PathLike,
    client: Any = None,
    chunk_size: Optional[int] = None,
    *,
    threads: Optional[int] = None,
    n_workers: Optional[int] = None,
    retries: int = 2,
    progress: Optional[bool] = None,
    normalisation: str = "keep",
) -> Bank:
    """Generate (or resume, or grow) a sample bank on a Dask cluster.

    Parameters
    ----------
    spec : Latent or dict
        The latent, or ``make`` arguments such as ``{"name": "quantum", "dim": 32, "seed": 0}``
        (or a :meth:`Latent.spec` dict, as stored in a bank).
    shots : int
        Rows the bank must hold.
    out : path
        Bank directory, on storage shared by the workers and this process.
    client : dask.distributed.Client, str or None
        A client, a scheduler address (``"tcp://host:8786"``), or ``None``: the current default
        client if there is one, else a ``LocalCluster`` of ``n_workers`` processes for this call.
    chunk_size : int, optional
        Rows per task / chunk file (default about 10 s of single-core work).
    threads : int, optional
        OpenMP threads per task (default 1).
    n_workers : int, optional
        Worker processes of the temporary LocalCluster (default: all cores).
    retries : int
        Extra attempts of a chunk task that raised (workers that die are handled by Dask itself).
    progress : bool, optional
        Progress bar over shots, fed by task completions (default on).
    normalisation : {"keep", "error", "replace"}
        What to do when ``out`` is a finished bank recording another normalisation
        (:func:`qboson.latent.bank.plan_generation`).

    Returns
    -------
    Bank
        ``bank.generation`` reports chunks computed and reused and the wall time.

    Raises
    ------
    ImportError
        Without ``dask[distributed]``.
    RuntimeError
        A chunk task failed ``retries + 1`` times (finished chunks stay on disk; rerun to resume).
    """
    require_dask()
    latent = _as_latent(spec)
    retries = as_int(retries, "retries", minimum=0)
    threads = 1 if threads is None else as_int(threads, "threads", minimum=1)
    with writer_lock(out):
        plan = plan_generation(latent, shots, out, chunk_size=chunk_size, normalisation=normalisation)
        t0 = time.perf_counter()
        if plan.missing:
            with _client(client, n_workers) as c:
                _run_tasks(c, plan, threads, retries, True if progress is None else bool(progress))
        bank = finalize(plan)
    bank.generation = dict(plan.report, seconds=time.perf_counter() - t0)
    return bank


def _run_tasks(client, plan, threads: int, retries: int, progress: bool) -> None:
    """Submit one task per missing chunk and wait; the chunk files on disk are the results.

    Futures are dropped as soon as they finish, so a worker that dies later does not cause
    finished chunks to be recomputed; a task whose worker died while running it is rerun by
    Dask.  The latent is broadcast to every worker once (it holds the unitary).
    """
    distributed = require_dask()
    from ._progress import progress_bar
    from .latent.bank import chunk_path, _chunk_ok

    [latent_future] = client.scatter([plan.latent], broadcast=True, hash=False)
    root = str(plan.root)
    tag = f"{plan.meta['fingerprint'][:12]}-{uuid.uuid4().hex[:8]}"  # unique per run: no stale keys
    pending = {
        client.submit(
            compute_chunk, latent_future, a, b, root, threads,
            key=f"qboson-chunk-{tag}-{a}-{b}", retries=retries, pure=False,
        ): (a, b)
        for a, b in plan.missing
    }
    failed = []
    dim, dtype = plan.latent.dim, plan.latent.raw_dtype
    try:
        with progress_bar(total=plan.target, enabled=progress, unit="shot",
                          desc=f"bank {plan.latent.name} (dask)", initial=plan.done_shots) as bar:
            for fut in distributed.as_completed(list(pending)):
                a, b = pending.pop(fut)
                if fut.status != "finished" and not _chunk_ok(chunk_path(root, a, b), b - a, dim, dtype):
                    try:
                        exc = fut.exception()
                    except Exception as err:  # cancelled or lost futures
                        exc = err
                    failed.append(((a, b), exc))
                else:
                    bar.update(b - a)
                fut.release()
    except BaseException:
        client.cancel(list(pending))
        raise
    finally:
        latent_future.release()
    if failed:
        (a, b), exc = failed[0]
        raise RuntimeError(
            f"{len(failed)} chunk task(s) failed (first: rows {a}-{b}: {exc!r}); finished chunks are kept in "
            f"{plan.root}/chunks, rerun to compute the rest"
        ) from (exc if isinstance(exc, BaseException) else None)
