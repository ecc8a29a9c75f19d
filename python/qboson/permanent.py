"""Matrix permanents (Glynn's formula, Gray-code order, vectorised C++ kernel)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import _core
from ._validation import as_complex_matrix, as_int, as_threads
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
        OpenMP threads; ``None`` uses all cores.  The result does not depend on it.
    extended : bool
        Accumulate in extended precision (x87 ``long double``, 64-bit mantissa), about 10x slower.
        Double precision loses about one bit per row: relative error ~1e-14 at n = 12, ~1e-10 at n = 24
        (see ``docs/precision.md``).
    max_seconds : float or None
        Refuse (``ValueError``) when the estimated run time exceeds this; ``None`` never refuses.

    Returns
    -------
    complex
    """
    threads = as_threads(threads)
    if rows is None:
        arr = as_complex_matrix(a, "a", square=True)
        mult = np.ones(arr.shape[0], dtype=np.int64)
    else:
        arr = as_complex_matrix(a, "a", square=False)
        mult = np.asarray(rows)
        if mult.ndim != 1 or mult.shape[0] != arr.shape[0] or not np.issubdtype(mult.dtype, np.integer):
            raise ValueError(f"rows must be a 1-D integer array of length {arr.shape[0]}, got {rows!r}")
        mult = mult.astype(np.int64)
        if np.any(mult < 1):
            raise ValueError("row multiplicities must be >= 1")
        if mult.sum() != arr.shape[1]:
            raise ValueError(f"sum of row multiplicities {mult.sum()} != number of columns {arr.shape[1]}")
    n = arr.shape[1]
    if n == 0:
        return 1.0 + 0.0j
    if n > MAX_DIM:
        raise ValueError(f"permanent of dimension {n} is out of reach (limit {MAX_DIM})")
    if max_seconds is not None:
        est = permanent_seconds(n, mult, threads=threads, extended=extended)
        if est > max_seconds:
            raise ValueError(
                f"a {n}x{n} permanent would take about {est:.3g} s here (max_seconds={max_seconds}); "
                "pass max_seconds=None to run it anyway"
            )
    return complex(_core.permanent(arr, mult, threads, bool(extended)))
