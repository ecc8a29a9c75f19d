"""Exact statistics of noisy photon counts: mean, covariance, number of detected photons.

The device is the one of :class:`qboson.noise.NoiseModel` (single photons in ``input_modes`` of an
m-mode interferometer ``U``).  Loss is absorbed into the effective amplitudes

    B[j, p] = sqrt(o_j) * U[j, p] * sqrt(t_p)          (m x n, one column per photon)

with ``t_p`` the survival of photon p before the interferometer (uniform transmission, input loss and a
scalar detector efficiency) and ``o_j`` the survival in output mode j (output loss, per-mode detector
efficiency).  With ``P = |B|^2``, ``M = B B^dagger`` and the overlap ``x`` (HOM visibility ``x^2``):

* PNR mean: ``E[s_j] = sum_p P[j, p]``: loss thins the first moment (by eta for uniform loss).
* PNR second factorial moments (``E[s_j s_k]``, ``j != k``; ``E[s_j (s_j - 1)]``, ``j == k``)::

      G = mu mu^T - P P^T + x^2 (|M|^2 - P P^T)

  (uniform loss eta thins them by eta^2; the pairwise overlap x^2 scales the exchange term).
* Dark counts: one independent Bernoulli(d_j) count per mode: the mean gains ``d_j``, the variance
  ``d_j (1 - d_j)``.
* Threshold detection reports ``c_j = min(s_j + dark_j, 1)``; its moments need the no-click
  probabilities of one mode and of a pair.  For a set S of modes, the probability that no photon
  reaches S is the permanent of ``x G + (1 - x) diag(G)`` with ``G = I - B_S^dagger B_S`` (n x n):
  fixed points carry the single-photon miss probability, every longer permutation cycle of length l
  the weight ``x^l``, as for the sampler.  For |S| <= 2 that matrix is a diagonal plus a rank-|S|
  part, whose permanent a short recursion over the photons gives in O(n^4) operations, so no
  exponential permanent is needed even at n = 32.
* The distribution of the number of detected photons (PNR) has the generating function
  ``E[z^N] = Per(x G(z) + (1 - x) diag G(z))``, ``G(z) = I - (1 - z) B^dagger B``; when ``B^dagger B``
  is diagonal (uniform or input loss) it is a Poisson-binomial law, otherwise it is read off the
  generating function at n + 1 roots of unity.  For threshold detection the number of clicks follows
  by inclusion-exclusion over sets of modes (2^m permanents, small m only).

* Post-selection on the number of detected photons, PNR detection and the same survival probability t
  for every photon, all of it before the interferometer (the PT-series recipe: uniform loss, every
  input filled): given that r photons survive, the survivors are a uniform random r-subset of the
  inputs, so ``E[s_j | r] = (r / n) mu_j`` and ``G(r) = r (r - 1) / (n (n - 1)) G`` (mu and G of the
  lossless device).  Dark counts are independent of the photons; given their total q, their
  conditional moments follow from leave-one-out and leave-two-out Poisson-binomial laws.  Everything
  is averaged over the joint law of (r, q) restricted to accepted totals r + q.

Other post-selected models and angle noise have no closed form here: :func:`statistics` raises
``ValueError`` and callers fall back to empirical moments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Optional, Sequence

import numpy as np

from ._validation import check_unitary, input_mode_array

__all__ = [
    "NoisyMoments",
    "effective_amplitudes",
    "statistics",
    "no_click_probability",
    "detected_number_distribution",
    "acceptance_probability",
]

#: Threshold-click distributions enumerate 2^m sets of modes: refuse above this many modes.
_MAX_SUBSET_MODES = 16
#: The generating-function route evaluates n + 1 permanents of n x n matrices.
_MAX_GF_PHOTONS = 20


@dataclass(frozen=True)
class NoisyMoments:
    """Exact first and second moments of the detected counts.

    Attributes
    ----------
    mean : ndarray, shape (m,), float64
        ``E[s_j]`` (counts or clicks).
    covariance : ndarray, shape (m, m), float64
        ``Cov[s_j, s_k]``.
    """

    mean: np.ndarray
    covariance: np.ndarray

    @property
    def std(self) -> np.ndarray:
        """Per-mode standard deviation, shape (m,)."""
        return np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))


def _photon_transmissions(model, m: int, modes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t_in = np.full(modes.size, model.transmission)
    if model.input_transmission is not None:
        t_in = t_in * _per_mode(model.input_transmission, m, "input_transmission")[modes]
    out_t = np.ones(m)
    if np.ndim(model.detector_efficiency) == 0:
        t_in = t_in * float(model.detector_efficiency)
    else:
        out_t = out_t * _per_mode(model.detector_efficiency, m, "detector_efficiency")
    if model.output_transmission is not None:
        out_t = out_t * _per_mode(model.output_transmission, m, "output_transmission")
    return t_in, out_t


def _per_mode(value, m: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (m,):
        raise ValueError(f"{name} has {arr.size} entries but the circuit has {m} modes")
    return arr


def effective_amplitudes(unitary, input_modes: Sequence[int], model=None) -> np.ndarray:
    """The lossy amplitudes ``B`` (m x n, complex128) of the module notes; ``model=None`` = lossless."""
    if callable(getattr(unitary, "unitary", None)):
        unitary = unitary.unitary()
    u = check_unitary(unitary, allow_subunitary=True)
    m = u.shape[0]
    modes = input_mode_array(input_modes, None, m)
    b = u[:, modes]
    if model is None:
        return np.ascontiguousarray(b)
    t_in, out_t = _photon_transmissions(model, m, modes)
    return np.ascontiguousarray(np.sqrt(out_t)[:, None] * b * np.sqrt(t_in)[None, :])


def _check_closed_form(model) -> None:
    if model is None:
        return
    if model.angle_noise > 0:
        raise ValueError("angle noise has no closed-form moments (every shot has its own circuit); use empirical moments")


def _uniform_survival(b: np.ndarray) -> Optional[float]:
    """t when ``B^dagger B = t I`` (every photon survives with probability t before the interferometer)."""
    gram = b.conj().T @ b
    t = float(np.mean(np.diag(gram).real)) if gram.size else 1.0
    if np.max(np.abs(gram - t * np.eye(gram.shape[0])), initial=0.0) > 1e-10:
        return None
    return t


def _postselected_statistics(b: np.ndarray, model, x: float) -> NoisyMoments:
    n = b.shape[1]
    m = b.shape[0]
    t = _uniform_survival(b)
    if model.detection != "pnr" or t is None or n == 0:
        raise ValueError(
            f"post-selection ({model.postselection_rule}) has closed-form moments only for PNR detection and "
            "the same loss for every photon before the interferometer; use empirical moments of a pre-drawn "
            "or recorded bank"
        )
    dark = _dark(model, m)
    r = np.arange(n + 1)
    law_n = np.array([math.comb(n, k) for k in r], dtype=np.float64) * t**r * (1.0 - t) ** (n - r)
    law_k = _poisson_binomial(dark)  # dark counts in all modes, independent of the photons
    qs = np.arange(m + 1)
    # Joint law of (survivors r, dark counts q) restricted to accepted totals r + q.
    w = law_n[:, None] * law_k[None, :] * model.accepts(r[:, None] + qs[None, :])
    if w.sum() <= 0:
        raise ValueError(f"post-selection ({model.postselection_rule}) never accepts a shot of this device")
    w = w / w.sum()
    w_r, w_q = w.sum(axis=1), w.sum(axis=0)
    a = b / math.sqrt(t) if t > 0 else b
    p = np.abs(a) ** 2
    mu = p.sum(axis=1)
    ppt = p @ p.T
    g = np.outer(mu, mu) - ppt + x**2 * (np.abs(a @ a.conj().T) ** 2 - ppt)
    f1 = r / n  # given r survivors (a uniform r-subset): E[photons_j] = f1 * mu_j
    f2 = r * (r - 1) / (n * (n - 1)) if n > 1 else np.zeros(n + 1)
    # Dark counts given their total q: E[d_j | q] and E[d_j d_k | q] from leave-out Poisson-binomial laws.
    e1, e2 = _dark_given_total(dark)
    ph_mean = float(w_r @ f1) * mu
    dk_mean = w_q @ e1
    mean = ph_mean + dk_mean
    cross = np.outer(mu, (w.T @ f1) @ e1)  # sum_{r,q} w f1(r) mu_j E[d_k | q]
    second = float(w_r @ f2) * g + np.diag(ph_mean) + cross + cross.T + np.einsum("q,qjk->jk", w_q, e2)
    cov = second - np.outer(mean, mean)
    return NoisyMoments(mean, (cov + cov.T) / 2)


def _dark_given_total(dark: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``E[d_j | K = q]`` (shape (m + 1, m)) and ``E[d_j d_k | K = q]`` (shape (m + 1, m, m)) for
    independent Bernoulli(dark_j) counts d_j with total K (zero where P(K = q) = 0)."""
    m = dark.size
    total = _poisson_binomial(dark)
    safe = np.where(total > 0, total, 1.0)
    e1 = np.zeros((m + 1, m))
    e2 = np.zeros((m + 1, m, m))
    if not np.any(dark > 0):
        return e1, e2
    for j in np.flatnonzero(dark > 0):
        rest = _poisson_binomial(np.delete(dark, j))
        e1[1:, j] = dark[j] * rest / safe[1:]
        e2[:, j, j] = e1[:, j]
        for k in np.flatnonzero(dark > 0):
            if k <= j:
                continue
            rest2 = _poisson_binomial(np.delete(dark, [j, k]))
            val = dark[j] * dark[k] * rest2 / safe[2:]
            e2[2:, j, k] = e2[2:, k, j] = val
    e1[total <= 0] = 0.0
    e2[total <= 0] = 0.0
    return e1, e2


def _dark(model, m: int) -> np.ndarray:
    if model is None:
        return np.zeros(m)
    return np.broadcast_to(np.asarray(model.dark_count_probability, dtype=np.float64), (m,)).copy()


def _overlap(model, distinguishable: bool) -> float:
    if distinguishable:
        return 0.0
    return 1.0 if model is None else float(model.overlap)


# ------------------------------------------------------------------------------------------------
# Permanents of diagonal + low-rank matrices
# ------------------------------------------------------------------------------------------------


def _per_diag_rank1(d: np.ndarray, w: np.ndarray) -> complex:
    """Per(diag(d) + u v^T) with ``w = u * v`` (elementwise): sum_S s! prod_{p in S} w_p prod_{p not in S} d_p."""
    poly = np.zeros(d.size + 1, dtype=np.complex128)
    poly[0] = 1.0
    for dp, wp in zip(d, w):
        poly[1:] = poly[1:] * dp + poly[:-1] * wp
        poly[0] *= dp
    fact = np.array([math.factorial(s) for s in range(d.size + 1)], dtype=np.float64)
    return complex(np.dot(poly, fact))


def _per_diag_rank2(d: np.ndarray, u: np.ndarray, v: np.ndarray) -> complex:
    """Per(diag(d) + u v^T) for n x 2 matrices ``u``, ``v``.

    A permutation is a choice of fixed points (weight d_p) and, on the rest S, a permanent of the rank-2
    matrix ``(u v^T)_S``, which equals ``sum_a a! (|S| - a)! e_a`` where e_a sums, over ways to give a of
    S's rows type 0 and a of its columns type 0 (the others type 1), the products of ``u[row, type]``
    and ``v[col, type]``.  State of the recursion: (|S|, rows of type 0, columns of type 0).
    """
    n = d.size
    dp = np.zeros((n + 1, n + 1, n + 1), dtype=np.complex128)
    dp[0, 0, 0] = 1.0
    for p in range(n):
        k = p + 1  # after p photons every index is <= p: update only the reachable block (4x fewer flops)
        old = dp[:k, :k, :k].copy()
        dp[:k, :k, :k] *= d[p]
        # Photon p joins S: its row takes type r, its column type c.
        dp[1 : k + 1, 1 : k + 1, 1 : k + 1] += old * (u[p, 0] * v[p, 0])
        dp[1 : k + 1, 1 : k + 1, :k] += old * (u[p, 0] * v[p, 1])
        dp[1 : k + 1, :k, 1 : k + 1] += old * (u[p, 1] * v[p, 0])
        dp[1 : k + 1, :k, :k] += old * (u[p, 1] * v[p, 1])
    total = 0.0 + 0.0j
    for s in range(n + 1):
        for a in range(s + 1):
            total += math.factorial(a) * math.factorial(s - a) * dp[s, a, a]
    return complex(total)


def _no_photon_matrix(k: np.ndarray, x: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d, u, v) with ``x G + (1 - x) diag G = diag(d) + u v^T``, ``G = I - k^dagger k`` (k: |S| x n)."""
    d = 1.0 - (1.0 - x) * np.sum(np.abs(k) ** 2, axis=0)
    return d, (-x) * k.conj().T, k.T.copy()


def _no_photon_probability(b: np.ndarray, rows: Sequence[int], x: float) -> float:
    """P(no photon detected in the output modes ``rows``) before dark counts."""
    k = b[list(rows), :]
    d, u, v = _no_photon_matrix(k, x)
    if len(rows) == 0:
        return 1.0
    if x == 0.0:
        return float(np.prod(d).real)
    if len(rows) == 1:
        val = _per_diag_rank1(d, u[:, 0] * v[:, 0])
    elif len(rows) == 2:
        val = _per_diag_rank2(d, u, v)
    else:
        from .permanent import permanent

        val = permanent(np.diag(d) + u @ v.T) if d.size else 1.0
    return float(min(max(val.real, 0.0), 1.0))


def no_click_probability(unitary, input_modes: Sequence[int], modes: Sequence[int], model=None) -> float:
    """Probability that none of the output ``modes`` registers a count (photons or dark counts)."""
    b = effective_amplitudes(unitary, input_modes, model)
    x = _overlap(model, False)
    dark = _dark(model, b.shape[0])
    return _no_photon_probability(b, list(modes), x) * float(np.prod(1.0 - dark[list(modes)]))


# ------------------------------------------------------------------------------------------------
# Moments
# ------------------------------------------------------------------------------------------------


def statistics(unitary, input_modes: Sequence[int], model=None, *, distinguishable: bool = False) -> NoisyMoments:
    """Exact mean and covariance of the detected counts of a noisy device (see the module notes).

    Parameters
    ----------
    unitary : array_like (m, m) or circuit
        The (possibly sub-unitary) interferometer.
    input_modes : sequence of int
        Occupied inputs, one photon each.
    model : qboson.noise.NoiseModel, optional
        The noise; ``None`` is the ideal device.  Angle noise, and post-selection outside the case of the
        module notes, raise ``ValueError``.
    distinguishable : bool
        Fully distinguishable photons (overrides the model's overlap).
    """
    _check_closed_form(model)
    b = effective_amplitudes(unitary, input_modes, model)
    m = b.shape[0]
    x = _overlap(model, distinguishable)
    if model is not None and model.postselects:
        return _postselected_statistics(b, model, x)
    dark = _dark(model, m)
    threshold = model is not None and model.detection == "threshold"
    if not threshold:
        p = np.abs(b) ** 2
        mu = p.sum(axis=1)
        ppt = p @ p.T
        g = np.outer(mu, mu) - ppt + x**2 * (np.abs(b @ b.conj().T) ** 2 - ppt)
        cov = g + np.diag(mu) - np.outer(mu, mu)
        mean = mu + dark
        cov = cov + np.diag(dark * (1.0 - dark))
        return NoisyMoments(mean, (cov + cov.T) / 2)
    q1 = np.array([_no_photon_probability(b, [j], x) for j in range(m)]) * (1.0 - dark)
    cov = np.diag(q1 * (1.0 - q1))
    for j, k in combinations(range(m), 2):
        q2 = _no_photon_probability(b, [j, k], x) * (1.0 - dark[j]) * (1.0 - dark[k])
        cov[j, k] = cov[k, j] = q2 - q1[j] * q1[k]
    return NoisyMoments(1.0 - q1, cov)


# ------------------------------------------------------------------------------------------------
# Number of detected photons and post-selection acceptance
# ------------------------------------------------------------------------------------------------


def _poisson_binomial(probs: np.ndarray) -> np.ndarray:
    dist = np.zeros(probs.size + 1)
    dist[0] = 1.0
    for q in probs:
        dist[1:] = dist[1:] * (1.0 - q) + dist[:-1] * q
        dist[0] *= 1.0 - q
    return dist


def detected_number_distribution(unitary, input_modes: Sequence[int], model=None) -> np.ndarray:
    """``out[k]`` = probability of k detected photons (clicks for threshold detection), dark counts
    included, before any post-selection.  Shape (n + m + 1,), float64.

    Exact.  PNR detection: closed form when loss acts before the interferometer (``B^dagger B``
    diagonal), otherwise up to 20 photons.  Threshold detection: up to 16 modes.  Larger cases raise
    ``ValueError``.  Angle noise raises ``ValueError``.
    """
    if model is not None and model.angle_noise > 0:
        raise ValueError("angle noise: the number of detected photons has no closed form here")
    b = effective_amplitudes(unitary, input_modes, model)
    m, n = b.shape
    x = _overlap(model, False)
    dark = _dark(model, m)
    out = np.zeros(n + m + 1)
    if model is None or model.detection == "pnr":
        gram = b.conj().T @ b
        if np.max(np.abs(gram - np.diag(np.diag(gram)))) < 1e-12:
            photons = _poisson_binomial(np.clip(np.diag(gram).real, 0.0, 1.0))
        else:
            if n > _MAX_GF_PHOTONS:
                raise ValueError(
                    f"the detected-photon distribution with per-mode loss needs {n + 1} permanents of {n} x {n} "
                    f"matrices; only up to {_MAX_GF_PHOTONS} photons are supported"
                )
            from .permanent import permanent

            # E[z^N] is a polynomial of degree n: evaluate it at n + 1 roots of unity and invert.
            z = np.exp(2j * np.pi * np.arange(n + 1) / (n + 1))
            values = []
            for zk in z:
                g = np.eye(n) - (1 - zk) * gram
                mat = x * g + (1 - x) * np.diag(np.diag(g))
                values.append(permanent(mat))
            photons = np.clip(np.fft.fft(np.array(values)).real / (n + 1), 0.0, None)
        total = np.convolve(photons, _poisson_binomial(dark))
        out[: total.size] = total
        return out / out.sum()
    if m > _MAX_SUBSET_MODES:
        raise ValueError(
            f"the click-number distribution of threshold detectors sums over 2^m sets of modes; "
            f"only up to {_MAX_SUBSET_MODES} modes are supported (this circuit has {m})"
        )
    from .permanent import permanent

    # f(S) = P(no click outside S); P(K = k) = sum_S f(S) (-1)^(k - |S|) C(m - |S|, k - |S|).
    for size in range(m + 1):
        for inside in combinations(range(m), size):
            outside = [j for j in range(m) if j not in inside]
            k = b[outside, :]
            d, u, v = _no_photon_matrix(k, x)
            f = permanent(np.diag(d) + u @ v.T).real if n else 1.0
            f *= float(np.prod(1.0 - dark[outside]))
            for clicks in range(size, m + 1):
                out[clicks] += f * (-1) ** (clicks - size) * math.comb(m - size, clicks - size)
    out = np.clip(out, 0.0, None)
    return out / out.sum()


def acceptance_probability(unitary, input_modes: Sequence[int], model) -> float:
    """Exact probability that a shot passes the model's post-selection (1.0 without one)."""
    if not model.postselects:
        return 1.0
    dist = detected_number_distribution(unitary, input_modes, model)
    return float(np.clip(dist[model.accepts(np.arange(dist.size))].sum(), 0.0, 1.0))
