"""Exact boson sampling: the public :func:`sample` and the chunked kernel driver."""

from __future__ import annotations

import time
import warnings
from typing import Optional, Sequence

import numpy as np

from . import _core
from ._progress import progress_bar
from ._seeding import SeedLike, split_seed
from ._validation import (
    UNITARY_ATOL,
    as_atol,
    as_bool,
    as_int,
    as_threads,
    check_memory,
    check_shot_range,
    check_unitary,
    count_dtype,
    input_mode_array,
)
from .cost import estimate_cost
from .unitary import haar_unitary

__all__ = ["sample", "run_sampler", "METHODS"]

#: Sampling algorithms: "cc2020" uses repeated-row permanents (Clifford & Clifford 2020),
#: "cc2017" the plain Laplace expansion (algorithm B of Clifford & Clifford 2017).
METHODS = ("cc2020", "cc2017")

#: Most indistinguishable photons the exact sampler accepts (its Gray-code counters are 64-bit).
MAX_PHOTONS = 62

#: Estimated run time above which ``progress=None`` shows a progress bar.
PROGRESS_AFTER_S = 3.0
#: Estimated run time above which :func:`sample` warns before starting.
WARN_AFTER_S = 3600.0
#: Calls expected to take less CPU time than this run on one thread.
_SERIAL_BELOW_S = 0.02
#: Target duration of one kernel call: the progress bar updates and Ctrl-C is polled in between.
_CHUNK_S = 0.5


def sample(
    n: Optional[int] = None,
    m: Optional[int] = None,
    shots: int = 1,
    *,
    unitary=None,
    input_modes: Optional[Sequence[int]] = None,
    seed: SeedLike = None,
    distinguishable: bool = False,
    threads: Optional[int] = None,
    progress: Optional[bool] = None,
    start: int = 0,
    method: str = "cc2020",
    noise=None,
    atol: float = UNITARY_ATOL,
) -> np.ndarray:
    """Exact samples of photon counts at the outputs of a linear interferometer.

    Single photons enter ``input_modes`` of an m-mode interferometer ``unitary``;
    each returned row is the number of photons detected in every output mode.
    Indistinguishable photons are sampled exactly by the Clifford & Clifford
    algorithm; with ``distinguishable=True`` every photon is routed
    independently with probabilities ``|U_ij|^2`` (no interference).

    Parameters
    ----------
    n : int, optional
        Number of photons (1 <= n <= m); photons enter modes ``0..n-1``.  Omit when ``input_modes`` is given.
    m : int, optional
        Number of modes; omit when ``unitary`` is given.
    shots : int
        Number of samples, >= 0.
    unitary : array_like, shape (m, m), optional
        Transfer matrix, ``unitary[i, j]`` = amplitude from input j to output i.  Must be unitary within
        ``atol``.  Default: Haar-random, drawn from ``seed`` (see :func:`qboson.haar_unitary`).
    input_modes : sequence of int, optional
        Distinct occupied input modes (one photon each).
    seed : int, SeedSequence, Generator or None
        Seeds the Haar unitary (when drawn) and the shots, through independent streams.  Shot ``i`` depends
        only on the seed and ``start + i``: the result is identical for every thread count, and
        ``sample(..., shots=a+b, seed=s)`` equals ``sample(..., shots=a, seed=s)`` stacked on
        ``sample(..., shots=b, seed=s, start=a)``.
    distinguishable : bool
        Sample distinguishable photons through the same interferometer (the "photonic" latent).
    threads : int, optional
        OpenMP threads, 1 to 256; ``None`` = all cores.
    progress : bool, optional
        Show a progress bar with ETA; ``None`` shows one when the run is expected to take over a few seconds.
    start : int
        Index of the first shot (for splitting a long run into several calls); shot streams are 64-bit,
        so ``start + shots`` may not exceed ``2**64``.
    method : {"cc2020", "cc2017"}
        Permanent scheme of the exact sampler: ``cc2020`` exploits photons already bunched in one output
        mode (repeated-row permanents, faster on average), ``cc2017`` always expands them.  Same distribution.
    noise : qboson.noise.NoiseModel, optional
        Sample a noisy device (loss, partial distinguishability, detectors) exactly instead.
    atol : float
        Unitarity tolerance, max entry of ``|U^dagger U - I|``: finite, between 0 and 0.01.

    Returns
    -------
    ndarray, shape (shots, m)
        Photon counts, unsigned integers (``uint8`` for n < 256), rows in shot order.

    Raises
    ------
    ValueError, TypeError
        On invalid sizes, modes, matrices or arguments; ``KeyboardInterrupt`` on Ctrl-C.
    """
    shots = as_int(shots, "shots", minimum=0)
    start = as_int(start, "start", minimum=0)
    check_shot_range(start, shots)
    threads = as_threads(threads)
    distinguishable = as_bool(distinguishable, "distinguishable")
    atol = as_atol(atol)
    if progress is not None:
        progress = as_bool(progress, "progress")
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if noise is not None:
        from .noise import NoiseModel

        if not isinstance(noise, NoiseModel):
            raise TypeError(f"noise must be a qboson.noise.NoiseModel or None, got {type(noise).__name__}")
    circuit_rng, key = split_seed(seed)
    if unitary is None:
        if m is None:
            raise ValueError("give the number of modes m or a unitary")
        m = as_int(m, "m", minimum=1)
        if n is not None:
            n = as_int(n, "n", minimum=1)
            if n > m:
                raise ValueError(f"more photons than modes: n={n} > m={m}")
        modes = input_mode_array(input_modes, n, m)
        u = haar_unitary(m, circuit_rng)
    else:
        u = check_unitary(unitary, atol=atol, allow_subunitary=noise is not None)
        if m is not None and as_int(m, "m", minimum=1) != u.shape[0]:
            raise ValueError(f"m={m} does not match the unitary's {u.shape[0]} modes")
        m = u.shape[0]
        modes = input_mode_array(input_modes, n, m)
    if modes.size > MAX_PHOTONS and not distinguishable:
        raise ValueError(
            f"exact sampling of {modes.size} indistinguishable photons is out of reach (limit {MAX_PHOTONS}; "
            f"about {estimate_cost(MAX_PHOTONS, 2 * MAX_PHOTONS, 1, threads=threads):.2g} s per sample already there)"
        )
    check_memory(shots * m * count_dtype(modes.size + 1).itemsize, f"{shots:,} samples of {m} modes")
    if noise is not None:
        return noise.sample(
            u, modes, shots, key=key, start=start, threads=threads, progress=progress,
            method=method, distinguishable=distinguishable,
        )
    est = estimate_cost(modes.size, m, shots, distinguishable=distinguishable, threads=threads, method=method)
    if est > WARN_AFTER_S:
        warnings.warn(
            f"sampling {shots} shots of {modes.size} photons in {m} modes is expected to take about "
            f"{est / 3600:.1f} h on this machine (estimate_cost); Ctrl-C stops it",
            ResourceWarning,
            stacklevel=2,
        )
    return run_sampler(
        u[:, modes], shots, key=key, start=start, threads=threads, method=method,
        distinguishable=distinguishable, progress=progress, estimate=est,
    )


def run_sampler(
    columns: np.ndarray,
    shots: int,
    *,
    key: int,
    start: int = 0,
    threads: int = 1,
    method: str = "cc2020",
    distinguishable: bool = False,
    transmission: Optional[np.ndarray] = None,
    indistinguishability: float = 1.0,
    dark_counts: Optional[np.ndarray] = None,
    progress: Optional[bool] = None,
    estimate: Optional[float] = None,
) -> np.ndarray:
    """Drive the C++ sampler in chunks (progress bar, Ctrl-C) on validated input.

    This is the layer noise models build on; it does no validation of its own.

    Parameters
    ----------
    columns : ndarray, shape (m, n), complex128
        The interferometer's columns for the occupied inputs, in input order (may be sub-unitary).
    shots, key, start, threads, method, distinguishable, progress
        As in :func:`sample`; ``key`` is the 64-bit shot key.
    transmission : ndarray, shape (n,), optional
        Probability that each input photon survives (loss applied per shot, before the interferometer).
    indistinguishability : float
        Probability that each surviving photon is indistinguishable; the others are routed classically.
    dark_counts : ndarray, shape (m,), optional
        Probability of one extra (dark) count per output mode per shot.
    estimate : float, optional
        Expected run time in seconds (drives the progress bar and chunk size).

    Returns
    -------
    ndarray, shape (shots, m), unsigned integers
    """
    columns = np.ascontiguousarray(columns, dtype=np.complex128)
    m, n = columns.shape
    check_shot_range(start, shots)  # the C++ side refuses it too; say so in Python terms
    transmission = (
        np.ones(n) if transmission is None else np.ascontiguousarray(transmission, dtype=np.float64)
    )
    dark_counts = np.zeros(m) if dark_counts is None else np.ascontiguousarray(dark_counts, dtype=np.float64)
    out = np.empty((shots, m), dtype=count_dtype(n + int(np.any(dark_counts > 0))))
    if shots == 0:
        return out
    if estimate is None:
        estimate = estimate_cost(n, m, shots, distinguishable=distinguishable, threads=threads, method=method)
    per_shot = max(estimate / shots, 1e-9) * min(threads, shots)
    chunk = int(min(shots, max(threads, _CHUNK_S * threads / per_shot)))
    if estimate * threads < _SERIAL_BELOW_S:
        threads = 1  # waking a thread team costs more than a call this short (much more on a busy machine)
    show = progress if progress is not None else estimate > PROGRESS_AFTER_S
    method_id = METHODS.index(method)
    with progress_bar(total=shots, enabled=show, unit="shot", desc=f"sampling n={n} m={m}") as bar:
        done = 0
        while done < shots:
            size = min(chunk, shots - done)
            t0 = time.perf_counter()
            _core.sample(
                columns, out[done : done + size], start + done, key, threads, method_id,
                bool(distinguishable), transmission, float(indistinguishability), dark_counts,
            )
            elapsed = time.perf_counter() - t0
            done += size
            bar.update(size)
            # Adapt the chunk to the measured speed, so progress updates about every _CHUNK_S seconds.
            if elapsed > 0:
                chunk = int(min(max(threads, size * _CHUNK_S / elapsed), 4 * size + threads))
    return out
