"""Checks of user input shared by the public functions; each raises a clear error."""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence

import numpy as np

#: Default tolerance of :func:`check_unitary`: max |U^dagger U - I| entry.
UNITARY_ATOL = 1e-8
#: Largest tolerance accepted: beyond it "unitary" no longer means anything (probabilities of a
#: matrix that passes need not sum to 1).
MAX_ATOL = 1e-2
#: Most OpenMP threads accepted (the C++ kernels refuse more; libgomp fails near 1,000).
MAX_THREADS = 256
#: Shot streams are indexed by 64-bit integers: ``start + shots`` may not exceed this.
SHOT_INDEX_LIMIT = 2**64


def as_int(value, name: str, *, minimum: Optional[int] = None, maximum: Optional[int] = None) -> int:
    """``value`` as a Python int, refusing floats, bools and values outside [minimum, maximum]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def as_bool(value, name: str) -> bool:
    """``value`` as a bool, refusing anything else (``"no"`` is truthy, so a silent ``bool()`` would lie)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def as_real(value, name: str, *, minimum: Optional[float] = None, maximum: Optional[float] = None,
            allow_inf: bool = False) -> float:
    """``value`` as a Python float, refusing bools, non-numbers, NaN, infinities (unless
    ``allow_inf``) and values outside [minimum, maximum]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    try:
        value = float(value)
    except OverflowError:  # an int beyond the float range
        raise ValueError(f"{name} is out of range: {value!r}") from None
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum:g}, got {value!r}")
    return value


def as_atol(atol) -> float:
    """A unitarity tolerance: a finite float in [0, MAX_ATOL] (NaN would switch the check off)."""
    return as_real(atol, "atol", minimum=0.0, maximum=MAX_ATOL)


def as_complex_matrix(a, name: str = "matrix", *, square: bool = True) -> np.ndarray:
    """``a`` as a C-contiguous complex128 2-D array with finite entries."""
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a 2-D numeric array: {exc}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if square and arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be square, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.complex128)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite entries (nan or inf)")
    return arr


def check_unitary(u, *, atol: float = UNITARY_ATOL, allow_subunitary: bool = False) -> np.ndarray:
    """Validate an interferometer matrix and return it as complex128.

    Parameters
    ----------
    u : array_like, shape (m, m)
        The transfer matrix; ``u[i, j]`` is the amplitude from input mode j to output mode i.
    atol : float
        Largest allowed entry of ``|U^dagger U - I|``: finite, in [0, MAX_ATOL] (0.01).
    allow_subunitary : bool
        Accept a lossy (sub-unitary) matrix, i.e. one whose singular values are all <= 1 + atol.

    Raises
    ------
    ValueError
        If ``u`` is not square, has non-finite entries or is not unitary within ``atol``.
    """
    atol = as_atol(atol)
    arr = as_complex_matrix(u, "unitary")
    m = arr.shape[0]
    if m == 0:
        raise ValueError("unitary must have at least one mode")
    # No entry of a (sub-)unitary exceeds 1 in modulus; checking that first also keeps huge
    # entries from overflowing the products below into NaN, which compares False with atol.
    biggest = float(np.max(np.abs(arr)))
    if biggest > 1 + atol:
        raise ValueError(
            f"matrix is not {'sub-' if allow_subunitary else ''}unitary: an entry has modulus {biggest:.3g} > 1"
        )
    if allow_subunitary:
        smax = np.linalg.norm(arr, 2)
        if not smax <= 1 + atol:
            raise ValueError(
                f"matrix is not sub-unitary: largest singular value {smax:.6g} > 1 (atol={atol:g})"
            )
        return arr
    err = np.max(np.abs(arr.conj().T @ arr - np.eye(m)))
    if not err <= atol:
        raise ValueError(
            f"matrix is not unitary: max |U^dagger U - I| = {err:.3g} > atol={atol:g}; "
            "pass a unitary (e.g. qboson.haar_unitary) or allow_subunitary=True for lossy circuits"
        )
    return arr


def input_mode_array(input_modes: Optional[Sequence[int]], n: Optional[int], m: int) -> np.ndarray:
    """Validated occupied input modes (int64, shape (n,), distinct, in [0, m))."""
    if input_modes is None:
        if n is None:
            raise ValueError("give the number of photons n or input_modes")
        n = as_int(n, "n", minimum=1)
        if n > m:
            raise ValueError(f"more photons than modes: n={n} > m={m}")
        return np.arange(n, dtype=np.int64)
    modes = np.asarray(input_modes)
    if modes.ndim != 1 or modes.size == 0:
        raise ValueError(f"input_modes must be a non-empty 1-D sequence of mode indices, got {input_modes!r}")
    if not np.issubdtype(modes.dtype, np.integer):
        raise TypeError(f"input_modes must be integers, got dtype {modes.dtype}")
    # Bound the values before narrowing to int64: a uint64 beyond 2**63 would wrap.
    if modes.min() < 0 or modes.max() >= m:
        raise ValueError(f"input_modes must lie in [0, {m}), got {modes.tolist()}")
    modes = modes.astype(np.int64)
    if np.unique(modes).size != modes.size:
        raise ValueError(f"input_modes must be distinct (one photon per mode), got {modes.tolist()}")
    if n is not None and as_int(n, "n", minimum=1) != modes.size:
        raise ValueError(f"n={n} does not match len(input_modes)={modes.size}")
    return modes


def as_threads(threads) -> int:
    """Thread count: None means all cores (at most MAX_THREADS); otherwise an int in [1, MAX_THREADS]."""
    if threads is None:
        import os

        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        return max(1, min(cores, MAX_THREADS))
    threads = as_int(threads, "threads", minimum=1)
    if threads > MAX_THREADS:
        raise ValueError(f"threads must be <= {MAX_THREADS}, got {threads}")
    return threads


def check_shot_range(start: int, shots: int) -> None:
    """Refuse a shot range past the 64-bit stream index (it would wrap round to shot 0)."""
    if start + shots > SHOT_INDEX_LIMIT:
        raise ValueError(
            f"start + shots = {start + shots} exceeds 2**64: shot streams are 64-bit and would wrap to shot 0"
        )


def check_memory(nbytes: int, what: str) -> None:
    """Refuse an allocation larger than this machine's physical memory (a clear ValueError instead
    of a MemoryError or the OOM killer)."""
    import os

    try:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX
        limit = 2**40
    if nbytes > limit:
        raise ValueError(f"{what} would need {nbytes / 2**30:.3g} GiB, more than this machine's memory")


def count_vector(values, name: str, length: int, *, lowest: int, highest: int, total: int,
                 too_low: str, too_high: str, total_message: str) -> np.ndarray:
    """``values`` as an int64 vector of ``length`` integers in [lowest, highest] summing to ``total``.

    Every value is bounded before anything is summed, so huge entries cannot wrap the sum round
    to a plausible total (which once sent the C++ kernel out of bounds).  ``too_low``, ``too_high``
    and ``total_message`` are the errors' texts, formatted with ``{value}`` / ``{total}``.
    """
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as exc:  # ragged sequences
        raise ValueError(f"{name} must be a 1-D integer array of length {length}: {exc}") from None
    if arr.ndim != 1 or arr.shape[0] != length:
        raise ValueError(f"{name} must be a 1-D integer array of length {length}, got shape {arr.shape}")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if length and arr.min() < lowest:
        raise ValueError(too_low.format(value=int(arr.min())))
    if length and arr.max() > highest:
        raise ValueError(too_high.format(value=int(arr.max())))
    arr = arr.astype(np.int64)
    got = sum(int(v) for v in arr)
    if got != total:
        raise ValueError(total_message.format(total=got))
    return arr


def count_dtype(n: int) -> np.dtype:
    """Smallest unsigned dtype that holds a count of n photons."""
    if n <= np.iinfo(np.uint8).max:
        return np.dtype(np.uint8)
    if n <= np.iinfo(np.uint16).max:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)
