"""Matrix permanents (Glynn's formula, Gray-code order, vectorised C++ kernel)."""

from __future__ import annotations

import cmath
from typing import Optional

import numpy as np

from . import _core
from ._validation import as_bool, as_complex_matrix, as_real, as_threads, count_vector
from .cost import permanent_seconds

__all__ = ["permanent"]

#: Largest dimension accepted at all (the Gray-code counters are 64-bit).
MAX_DIM = 62


def permanent(
    a,
    *,
    rows: Optional[np.ndarray] = None,
    threads: Optional[int] = None,
    extended: bool = False,
    max_seconds: Optional[float] = 3600.0,
) -> complex:
    """Permanent of a square matrix.

    Computed by Glynn's formula (also called BB/FG) in reflected Gray-code
    order, several independent stretches of the code in SIMD lanes, in
    ``O(2^(n-1) n)`` operations.  With ``rows`` the matrix rows are taken with
    multiplicities (Clifford & Clifford 2020): ``a`` then has shape (g, n) with
    ``rows.sum() == n`` and the cost falls to ``O(n prod(rows + 1))``.

    Parameters
    ----------
    a : array_like, shape (n, n) or (g, n)
        Real or complex matrix.  ``n = 0`` gives 1.
    rows : array_like of int, shape (g,), optional
        Multiplicity of each row of ``a`` (each >= 1).
    threads : int, optional
        OpenMP threads, 1 to 256; ``None`` uses all cores.  The result does not depend on it.
    extended : bool
        Accumulate in extended precision (x87 ``long double``, 64-bit mantissa), 40-90x slower than
        double in the measurements of ``docs/precision.md``.  Double precision is already good to about
        1e-13 relative from n = 20 to 28 (measured there): no Gray-code chain runs more than 4,096 steps
        before its column sums are recomputed, so round-off does not grow with n as in a single sweep.
    max_seconds : float or None
        Refuse (``ValueError``) when the estimated run time exceeds this (a number >= 0, not NaN);
        ``None`` never refuses.

    Returns
    -------
    complex
    """
    threads = as_threads(threads)
    extended = as_bool(extended, "extended")
    if max_seconds is not None:
        max_seconds = as_real(max_seconds, "max_seconds", minimum=0.0, allow_inf=True)
    arr = as_complex_matrix(a, "a", square=rows is None)
    n = arr.shape[1]
    if n > MAX_DIM:
        raise ValueError(f"permanent of dimension {n} is out of reach (limit {MAX_DIM})")
    if rows is None:
        mult = np.ones(n, dtype=np.int64)
    else:
        mult = _multiplicities(rows, arr.shape[0], n)
    if n == 0:
        return 1.0 + 0.0j
    if max_seconds is not None:
        est = permanent_seconds(n, mult, threads=threads, extended=extended)
        if est > max_seconds:
            raise ValueError(
                f"a {n}x{n} permanent would take about {est:.3g} s here (max_seconds={max_seconds}); "
                "pass max_seconds=None to run it anyway"
            )
    value = complex(_core.permanent(arr, mult, threads, bool(extended)))
    if not cmath.isfinite(value):  # finite entries (checked above), so the sum overflowed a double
        big = float(np.abs(arr).max())
        raise ValueError(f"the permanent overflows double precision (largest |entry| {big:.3g}); rescale the "
                         f"matrix, since per(c a) = c**{n} per(a)")
    return value


def _multiplicities(rows, groups: int, n: int) -> np.ndarray:
    """Validated row multiplicities: int64, shape (groups,), each in [1, n], summing to n."""
    return count_vector(rows, "rows (multiplicities)", groups, lowest=1, highest=n, total=n,
                        too_low="row multiplicities must be >= 1, got {value}",
                        too_high=f"row multiplicities must be <= the number of columns {n}, got {{value}}",
                        total_message=f"sum of row multiplicities {{total}} != number of columns {n}")
