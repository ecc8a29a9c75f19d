"""Independent slow references for the tests (not qboson code): brute-force permanents,
Ryser's formula, exact distributions by enumeration, and a pooled chi-square test."""

from __future__ import annotations

import contextlib
import itertools
import math
import signal

import numpy as np
from scipy import stats


def permanent_bruteforce(a: np.ndarray) -> complex:
    """Sum over all n! permutations (n <= 8)."""
    a = np.asarray(a, dtype=complex)
    n = a.shape[0]
    total = 0j
    for perm in itertools.permutations(range(n)):
        total += np.prod(a[np.arange(n), perm])
    return complex(total)


def permanent_ryser(a: np.ndarray) -> complex:
    """Ryser's inclusion-exclusion formula over column subsets, vectorised (n <= ~18)."""
    a = np.asarray(a, dtype=complex)
    n = a.shape[0]
    if n == 0:
        return 1 + 0j
    masks = np.arange(1, 1 << n, dtype=np.int64)
    total = 0j
    for chunk in np.array_split(masks, max(1, masks.size // 65536)):
        sel = ((chunk[:, None] >> np.arange(n)) & 1).astype(float)  # (batch, n) column subsets
        row_sums = sel @ a.T  # (batch, n): sum over chosen columns for each row
        sizes = sel.sum(axis=1)
        total += np.sum((-1.0) ** sizes * np.prod(row_sums, axis=1))
    return complex((-1) ** n * total)


def patterns(n: int, m: int) -> list[tuple[int, ...]]:
    out = []
    for combo in itertools.combinations_with_replacement(range(m), n):
        s = [0] * m
        for i in combo:
            s[i] += 1
        out.append(tuple(s))
    return out


def exact_distribution(u: np.ndarray, inputs, distinguishable: bool = False) -> dict:
    """Output distribution by brute force: |Per(U_{S,T})|^2 / prod s! or Per(|U_{S,T}|^2) / prod s!."""
    u = np.asarray(u)
    n, m = len(inputs), u.shape[0]
    probs = {}
    for s in patterns(n, m):
        rows = [i for i, c in enumerate(s) for _ in range(c)]
        sub = u[np.ix_(rows, list(inputs))]
        norm = math.prod(math.factorial(c) for c in s)
        if distinguishable:
            probs[s] = permanent_bruteforce(np.abs(sub) ** 2).real / norm
        else:
            probs[s] = abs(permanent_bruteforce(sub)) ** 2 / norm
    return probs


def counts_of(samples: np.ndarray) -> dict:
    rows, counts = np.unique(np.asarray(samples), axis=0, return_counts=True)
    return {tuple(int(v) for v in r): int(c) for r, c in zip(rows, counts)}


def pooled_chisquare(samples: np.ndarray, probs: dict, min_expected: float = 5.0) -> float:
    """Chi-square p-value of raw sample counts against exact probabilities.

    Bins with expected count below ``min_expected`` are pooled into one bin; a sample outside
    the support makes the p-value 0.
    """
    observed = counts_of(samples)
    shots = len(samples)
    if any(k not in probs or probs[k] <= 0 for k in observed):
        return 0.0
    obs, exp = [], []
    pool_o, pool_e = 0.0, 0.0
    for k, p in probs.items():
        e = p * shots
        if e < min_expected:
            pool_o += observed.get(k, 0)
            pool_e += e
        else:
            obs.append(observed.get(k, 0))
            exp.append(e)
    if pool_e > 0:
        obs.append(pool_o)
        exp.append(pool_e)
    obs, exp = np.array(obs, float), np.array(exp, float)
    exp *= obs.sum() / exp.sum()  # round-off in the probabilities only
    return float(stats.chisquare(obs, exp).pvalue)


@contextlib.contextmanager
def keyboard_interrupt_after(seconds: float):
    """Raise KeyboardInterrupt in the main thread after ``seconds``, as Ctrl-C would."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
