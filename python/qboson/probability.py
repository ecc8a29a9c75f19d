"""Exact output probabilities of single photons in a linear interferometer."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from . import _core
from ._validation import (UNITARY_ATOL, as_bool, as_int, as_real, check_memory, check_unitary, count_dtype,
                          count_vector, input_mode_array)
from .cost import permanent_seconds
from .reference import n_patterns, output_patterns

__all__ = ["probability", "probabilities"]

#: Most photons: their permanents have one row per photon (the kernel's limit).
MAX_PHOTONS = 62
#: Default largest number of output patterns :func:`probabilities` will enumerate.
MAX_PATTERNS = 2_000_000


def _pattern_array(pattern, m: int, n: int) -> np.ndarray:
    return count_vector(pattern, "pattern (photon counts)", m, lowest=0, highest=n, total=n,
                        too_low="pattern counts must be non-negative, got {value}",
                        too_high=f"pattern has a count above the {n} photons sent in: {{value}}",
                        total_message=f"pattern holds {{total}} photons but {n} were sent in")


def probability(
    unitary,
    input_modes: Sequence[int],
    pattern,
    *,
    distinguishable: bool = False,
    atol: float = UNITARY_ATOL,
    max_seconds: Optional[float] = 3600.0,
) -> float:
    """Exact probability of one output pattern.

    For indistinguishable photons ``|Per(U_{S,T})|^2 / prod_i s_i!``, where T holds the occupied input
    columns and S repeats output row i ``s_i`` times; for distinguishable photons
    ``Per(|U_{S,T}|^2) / prod_i s_i!``.

    Parameters
    ----------
    unitary : array_like, shape (m, m)
    input_modes : sequence of int
        Distinct occupied inputs (one photon each).
    pattern : array_like of int, shape (m,)
        Photon counts per output mode, summing to ``len(input_modes)``.
    distinguishable : bool
        Probability for distinguishable photons instead.
    max_seconds : float or None
        Refuse (``ValueError``) when the estimated time of its permanent (one thread) exceeds this
        (a number >= 0, not NaN; about an hour by default, as :func:`qboson.permanent`); ``None``
        never refuses.

    Returns
    -------
    float
    """
    distinguishable = as_bool(distinguishable, "distinguishable")
    if max_seconds is not None:
        max_seconds = as_real(max_seconds, "max_seconds", minimum=0.0, allow_inf=True)
    u = check_unitary(unitary, atol=atol)
    m = u.shape[0]
    modes = input_mode_array(input_modes, None, m)
    _check_photons(modes.size)
    s = _pattern_array(pattern, m, modes.size)
    if max_seconds is not None and modes.size:
        est = permanent_seconds(modes.size, s[s > 0], threads=1)
        if est > max_seconds:
            raise ValueError(f"this {modes.size}-photon pattern's permanent would take about {est:.3g} s here "
                             f"(max_seconds={max_seconds}); pass max_seconds=None to compute it anyway")
    return _probability(u, modes, s, distinguishable)


def _check_photons(n: int) -> None:
    if n > MAX_PHOTONS:
        raise ValueError(f"probabilities of {n} photons are out of reach (permanents up to {MAX_PHOTONS} rows)")


def _probability(u: np.ndarray, modes: np.ndarray, s: np.ndarray, distinguishable: bool) -> float:
    occupied = np.flatnonzero(s)
    rows = u[np.ix_(occupied, modes)]
    mult = s[occupied]
    norm = math.prod(math.factorial(int(c)) for c in mult)
    if distinguishable:
        value = _core.permanent(np.ascontiguousarray(np.abs(rows) ** 2, dtype=np.complex128), mult, 1, False)
        return float(value.real / norm)
    value = _core.permanent(np.ascontiguousarray(rows), mult, 1, False)
    return float(abs(value) ** 2 / norm)


def probabilities(
    unitary,
    input_modes: Sequence[int],
    *,
    distinguishable: bool = False,
    max_patterns: Optional[int] = MAX_PATTERNS,
    atol: float = UNITARY_ATOL,
) -> tuple[np.ndarray, np.ndarray]:
    """The whole output distribution of a small instance.

    Parameters
    ----------
    unitary : array_like, shape (m, m)
    input_modes : sequence of int
    distinguishable : bool
    max_patterns : int or None
        Refuse (``ValueError``) when there are more than this many patterns, C(m + n - 1, n).

    Returns
    -------
    patterns : ndarray, shape (K, m), unsigned integers
        Every way to place the n photons in m modes, in lexicographic order of occupied modes.
    probs : ndarray, shape (K,), float64
        Their probabilities (summing to 1 up to round-off).
    """
    distinguishable = as_bool(distinguishable, "distinguishable")
    if max_patterns is not None:
        max_patterns = as_int(max_patterns, "max_patterns", minimum=1)
    u = check_unitary(unitary, atol=atol)
    m = u.shape[0]
    modes = input_mode_array(input_modes, None, m)
    n = modes.size
    _check_photons(n)
    k = n_patterns(n, m)
    if max_patterns is not None and k > max_patterns:
        raise ValueError(
            f"{n} photons in {m} modes have {k:,} output patterns, more than max_patterns={max_patterns:,}; "
            "sample instead, or raise max_patterns"
        )
    check_memory(k * m * 8, f"the {k:,} output patterns")
    patterns = np.array(list(output_patterns(n, m)), dtype=count_dtype(n)).reshape(k, m)
    probs = np.array([_probability(u, modes, p.astype(np.int64), distinguishable) for p in patterns])
    return patterns, probs
