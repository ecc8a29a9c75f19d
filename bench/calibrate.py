"""Fit the constants of qboson's cost model (``qboson/cost.py``) to timings on this machine.

    python bench/calibrate.py

Times single-thread permanents and samples at several sizes, fits seconds per
(term x column) and the per-step overheads by non-negative least squares, and prints the
constants to paste into ``python/qboson/cost.py`` together with model/measured ratios.
Run it on an idle machine: the fit is only as good as the timings.
"""

from __future__ import annotations

import math
import time

import numpy as np
from scipy.optimize import nnls

import qboson
from qboson import cost


def best_time(fn, reps: int = 3) -> float:
    fn()
    return min(_once(fn) for _ in range(reps))


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    # Plain permanents: seconds per (2^(n-1) terms x n columns).
    per_term = []
    for n in (18, 20, 22):
        a = qboson.haar_unitary(n, seed=n)
        t = best_time(lambda: qboson.permanent(a, threads=1))
        per_term.append(t / (2 ** (n - 1) * n))
    print(f"PERM_TERM_COL_S = {np.median(per_term):.3g}")

    # Sampling: t = c_minor * sum_k E[terms_k] k + c_mode * sum_k m k + c_step * n.
    rows, times = [], []
    for n in (6, 8, 10, 12, 14, 16, 18, 20, 22):
        m = 2 * n
        u = qboson.haar_unitary(m, seed=n)
        shots = max(4, int(0.3 / max(qboson.estimate_cost(n, m, 1, threads=1), 1e-7)))
        t = best_time(lambda: qboson.sample(unitary=u, n=n, shots=shots, seed=0, threads=1, progress=False)) / shots
        terms = sum(cost.expected_terms(k - 1, m) * k for k in range(1, n + 1))
        rows.append([terms, m * n * (n + 1) / 2, n])
        times.append(t)
    a, b = np.array(rows), np.array(times)
    # Relative errors matter: weight each size by 1/t.
    coef, _ = nnls(a / b[:, None], np.ones_like(b))
    print(f"MINORS_TERM_COL_S = {coef[0]:.3g}\nMODE_PHOTON_S = {coef[1]:.3g}\nSTEP_OVERHEAD_S = {coef[2]:.3g}")
    print("\n| n | measured s/sample | model | model/measured |\n|---|---|---|---|")
    for (terms, modes, steps), t, n in zip(rows, times, (6, 8, 10, 12, 14, 16, 18, 20, 22)):
        model = coef @ np.array([terms, modes, steps])
        print(f"| {n} | {t:.3g} | {model:.3g} | {model / t:.2f} |")


if __name__ == "__main__":
    main()
