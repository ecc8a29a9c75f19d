"""Readable pure-numpy transcriptions of qboson's algorithms, and output-pattern enumeration.

``glynn_permanent``, ``glynn_minors`` and ``clifford_sample`` follow the same algorithms as the
C++ kernels (Glynn's formula, leave-one-out minors by prefix/suffix products, Clifford &
Clifford algorithm B), written for clarity over speed.  They are the numpy baseline of
``bench/compare.py``; because they share the kernels' algorithms they are *not* an independent
check of them.  The tests' independent references (brute-force permanents, Ryser's formula,
exact distributions by enumeration) are in ``tests/reference_math.py``, and the tests check these
transcriptions against them too.  ``output_patterns``/``n_patterns`` are used by
:func:`qboson.probabilities`.  Nothing here validates its input; call the public API for that.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = [
    "glynn_permanent",
    "glynn_minors",
    "clifford_sample",
    "distinguishable_sample",
]

_CHUNK = 1 << 15  # sign vectors per numpy batch: bounds memory at large n


def _sign_vectors(rows: int, start: int, stop: int) -> np.ndarray:
    """Glynn sign vectors delta (first entry pinned to +1) for indices [start, stop)."""
    idx = np.arange(start, stop, dtype=np.int64)
    bits = (idx[:, None] >> np.arange(rows - 1, dtype=np.int64)) & 1
    return np.concatenate([np.ones((idx.size, 1)), 1.0 - 2.0 * bits], axis=1)


def glynn_permanent(a: np.ndarray) -> complex:
    """Permanent of a square matrix by Glynn's formula, vectorised over sign vectors."""
    a = np.asarray(a, dtype=np.complex128)
    n = a.shape[0]
    if n == 0:
        return 1.0 + 0j
    total = 0j
    terms = 1 << (n - 1)
    for start in range(0, terms, _CHUNK):
        d = _sign_vectors(n, start, min(terms, start + _CHUNK))
        total += np.sum(np.prod(d, axis=1) * np.prod(d @ a, axis=1))
    return complex(total / terms)


def glynn_minors(b: np.ndarray) -> np.ndarray:
    """All permanents of the (k-1)x(k-1) minors of a (k-1) x k matrix.

    ``out[l]`` is the permanent of ``b`` with column ``l`` removed, all k of them
    from one Glynn sweep: leave-one-out products come from prefix and suffix
    products of the column sums.
    """
    b = np.asarray(b, dtype=np.complex128)
    rows, k = b.shape
    if rows == 0:
        return np.ones(1, dtype=np.complex128)
    out = np.zeros(k, dtype=np.complex128)
    terms = 1 << (rows - 1)
    for start in range(0, terms, _CHUNK):
        d = _sign_vectors(rows, start, min(terms, start + _CHUNK))
        s = d @ b  # column sums, (batch, k)
        ones = np.ones((s.shape[0], 1), dtype=np.complex128)
        prefix = np.cumprod(np.concatenate([ones, s[:, :-1]], axis=1), axis=1)
        suffix = np.cumprod(np.concatenate([ones, s[:, :0:-1]], axis=1), axis=1)[:, ::-1]
        out += (np.prod(d, axis=1)[:, None] * prefix * suffix).sum(axis=0)
    return out / terms


def clifford_sample(unitary: np.ndarray, input_modes, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Exact samples of indistinguishable photons (Clifford & Clifford 2017, algorithm B).

    Returns an (shots, m) int64 array of photon counts.
    """
    u = np.asarray(unitary, dtype=np.complex128)
    m = u.shape[0]
    cols = np.asarray(input_modes)
    n = cols.size
    out = np.zeros((shots, m), dtype=np.int64)
    for shot in range(shots):
        a = u[:, rng.permutation(cols)]
        r: list[int] = []
        for k in range(1, n + 1):
            minors = glynn_minors(a[r, :k])
            w = np.abs(a[:, :k] @ minors) ** 2
            r.append(int(rng.choice(m, p=w / w.sum())))
        np.add.at(out[shot], r, 1)
    return out


def distinguishable_sample(unitary: np.ndarray, input_modes, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Samples of distinguishable photons: each routed independently by |U_ij|^2."""
    p = np.abs(np.asarray(unitary)[:, np.asarray(input_modes)]) ** 2  # (m, n)
    m, n = p.shape
    cdf = np.cumsum(p, axis=0)
    cdf /= cdf[-1]
    u = rng.random((shots, n))
    idx = np.empty((shots, n), dtype=np.int64)
    for j in range(n):
        idx[:, j] = np.minimum(np.searchsorted(cdf[:, j], u[:, j], side="right"), m - 1)
    out = np.zeros((shots, m), dtype=np.int64)
    np.add.at(out, (np.repeat(np.arange(shots), n), idx.ravel()), 1)
    return out


def output_patterns(n: int, m: int):
    """All photon-count patterns of n photons in m modes, lexicographic, as tuples."""
    for combo in itertools.combinations_with_replacement(range(m), n):
        pattern = [0] * m
        for i in combo:
            pattern[i] += 1
        yield tuple(pattern)


def n_patterns(n: int, m: int) -> int:
    """Number of ways to place n photons in m modes: C(m + n - 1, n)."""
    return math.comb(m + n - 1, n)
