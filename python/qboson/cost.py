"""Run-time model of qboson's kernels, used for warnings, refusals and ETAs.

``PERM_TERM_COL_S``, ``MINORS_TERM_COL_S``, ``MODE_PHOTON_S`` and ``STEP_OVERHEAD_S`` were
fitted to single-thread timings of the C++ kernels on the reference machine by
``bench/calibrate.py`` (the fit put the per-step overhead at zero).  The others are not fitted:
``PERM_TERM_COL_S_EXTENDED`` is the double constant times the extended/double time ratio
measured by ``bench/precision.py`` (``docs/precision.md``), and the distinguishable-sampler
constants are rounded from ``bench/compare.py``'s samples/s.  Estimates on other machines are
indicative only.  Multi-thread scaling is taken as ideal up to the core count.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ._validation import as_int, as_threads

__all__ = ["estimate_cost", "expected_terms", "permanent_seconds"]

# Fitted by bench/calibrate.py on the reference machine (2026-11-29, other jobs running), except
# where a comment says otherwise.
# Seconds per (Gray-code term x column) in the plain permanent kernel, double / extended (the
# latter not fitted: about 60x double, the ratio docs/precision.md measured).
PERM_TERM_COL_S = 1.7e-10
PERM_TERM_COL_S_EXTENDED = 1.0e-8
# Seconds per (term x column) in the all-minors kernel used by the sampler.
MINORS_TERM_COL_S = 9.1e-10
# Per output-mode x photon work of each sampling step (weights, scan) and fixed per-step overhead.
MODE_PHOTON_S = 1.4e-8
STEP_OVERHEAD_S = 0.0
# Distinguishable sampler, per photon and per output mode (not fitted: from bench/compare.py's
# 4 million samples/s of 24 photons in 48 modes on one thread).
DIST_PHOTON_S = 1.4e-8
DIST_MODE_S = 1.0e-9


# Beyond this many photons the model's term counts overflow a float: the estimate is infinite.
_MAX_FINITE_ROWS = 1000
# Largest photon, mode or shot count the model accepts (beyond it only overflow is left).
_MAX_COUNT = 2**64


def _terms_for_multiplicities(mult: np.ndarray) -> float:
    """Glynn terms for rows with multiplicities: prod(M+1), with one copy of the smallest group pinned."""
    mult = np.asarray(mult, dtype=np.float64)
    if mult.size == 0:
        return 1.0
    smallest = mult.min()
    return float(np.prod(mult + 1.0) / (smallest + 1.0) * smallest)


def permanent_seconds(n: int, mult=None, *, threads: int = 1, extended: bool = False) -> float:
    """Estimated seconds for an n-column permanent with the given row multiplicities."""
    terms = 2.0 ** (n - 1) if mult is None else _terms_for_multiplicities(mult)
    per = PERM_TERM_COL_S_EXTENDED if extended else PERM_TERM_COL_S
    return terms * n * per / max(1, threads)


def expected_terms(rows: int, m: int, method: str = "cc2020") -> float:
    """Expected Glynn terms for the minors at a sampling step with ``rows`` photons already placed.

    For ``cc2020`` the photons' output pattern is taken uniform over multisets (the Haar average),
    for which E[prod(s_i + 1)] = C(2m + N - 1, N) / C(m + N - 1, N); pinning one photon halves it.
    """
    if rows <= 0:
        return 1.0
    if rows > _MAX_FINITE_ROWS:
        return math.inf  # 2^(rows-1) is beyond the float range
    plain = 2.0 ** (rows - 1)
    if method == "cc2017":
        return plain
    log_e = (
        math.lgamma(2 * m + rows) - math.lgamma(2 * m) - (math.lgamma(m + rows) - math.lgamma(m))
    )
    return min(plain, 0.5 * math.exp(min(log_e, 709.0)))


def estimate_cost(
    n: int,
    m: int,
    shots: int = 1,
    *,
    distinguishable: bool = False,
    threads: Optional[int] = None,
    method: str = "cc2020",
) -> float:
    """Expected wall time, in seconds, of ``qboson.sample(n, m, shots)`` on this kind of machine.

    Parameters
    ----------
    n, m : int
        Photons and modes.
    shots : int
        Number of samples.
    distinguishable : bool
        Cost of the distinguishable-photon sampler instead of the exact quantum one.
    threads : int, optional
        Threads (``None``: all cores); scaling is assumed ideal.
    method : {"cc2020", "cc2017"}
        Sampling algorithm (see :func:`qboson.sample`).

    Returns
    -------
    float
        Seconds (a model, typically within a factor 2 on the reference machine).
    """
    n = as_int(n, "n", minimum=1, maximum=_MAX_COUNT)
    m = as_int(m, "m", minimum=1, maximum=_MAX_COUNT)
    shots = as_int(shots, "shots", minimum=0, maximum=_MAX_COUNT)
    threads = as_threads(threads)
    if not isinstance(distinguishable, (bool, np.bool_)):
        raise TypeError(f"distinguishable must be True or False, got {distinguishable!r}")
    if not isinstance(method, str) or method not in ("cc2020", "cc2017"):
        raise ValueError(f"unknown method {method!r}; choose 'cc2020' or 'cc2017'")
    if shots == 0:
        return 0.0
    if distinguishable:
        per_shot = n * DIST_PHOTON_S + m * DIST_MODE_S
    elif n > _MAX_FINITE_ROWS:
        return math.inf
    else:
        per_shot = 0.0
        for k in range(1, n + 1):
            per_shot += expected_terms(k - 1, m, method) * k * MINORS_TERM_COL_S
            per_shot += m * k * MODE_PHOTON_S + STEP_OVERHEAD_S
    return per_shot * shots / min(threads, max(1, shots))
