"""Exact first and second moments of photon-count latents, computed from the interferometer.

Single photons enter the modes ``T`` of an m-mode interferometer ``U`` (``U[j, p]`` is the
amplitude from input p to output j); ``s_j`` is the number of photons counted in output j.
With ``P[j, p] = |U[j, p]|^2`` and ``M = U_T U_T^dagger`` (an m x m matrix):

* mean, for both distinguishable and indistinguishable photons::

      E[s_j] = sum_{p in T} P[j, p]

* second factorial moments, distinguishable photons (``j != k``: E[s_j s_k]; ``j == k``:
  E[s_j (s_j - 1)])::

      G_d[j, k] = sum_{p != q} P[j, p] P[k, q] = E[s_j] E[s_k] - (P P^T)[j, k]

* indistinguishable photons add the exchange term
  ``sum_{p != q} conj(U[j,p]) conj(U[k,q]) U[k,p] U[j,q] = |M[j, k]|^2 - (P P^T)[j, k]``,
  which equals the distinguishable term on the diagonal (bunching doubles)::

      G_q[j, k] = G_d[j, k] + |M[j, k]|^2 - (P P^T)[j, k]

Hence the covariances ``Cov[s_j, s_k] = G[j, k] + delta_jk E[s_j] - E[s_j] E[s_k]``:

      photonic:  diag(mu) - P P^T
      quantum:   diag(mu) - 2 P P^T + |M|^2

All functions validate the unitary and the input modes and return float64 arrays.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .._validation import check_unitary, input_mode_array

__all__ = [
    "mean_counts",
    "factorial_moments",
    "second_moments",
    "covariance",
    "fano_factors",
    "total_fano_factor",
]


def _columns(unitary, input_modes: Optional[Sequence[int]]) -> np.ndarray:
    u = check_unitary(unitary)
    modes = input_mode_array(input_modes, None if input_modes is not None else u.shape[0] // 2 or 1, u.shape[0])
    return u[:, modes]


def mean_counts(unitary, input_modes: Optional[Sequence[int]] = None) -> np.ndarray:
    """E[s_j] for every output mode, shape (m,), float64 (same for quantum and photonic).

    ``input_modes`` defaults to the first ``m // 2`` modes, as in :func:`qboson.latent.make`.
    """
    a = _columns(unitary, input_modes)
    return (np.abs(a) ** 2).sum(axis=1)


def factorial_moments(unitary, input_modes: Optional[Sequence[int]] = None, *, distinguishable: bool = False) -> np.ndarray:
    """Second factorial moments, shape (m, m), float64.

    ``out[j, k] = E[s_j s_k]`` for ``j != k`` and ``out[j, j] = E[s_j (s_j - 1)]``.
    """
    a = _columns(unitary, input_modes)
    p = np.abs(a) ** 2
    mu = p.sum(axis=1)
    ppt = p @ p.T
    g = np.outer(mu, mu) - ppt
    if not distinguishable:
        g = g + np.abs(a @ a.conj().T) ** 2 - ppt
    return g


def second_moments(unitary, input_modes: Optional[Sequence[int]] = None, *, distinguishable: bool = False) -> np.ndarray:
    """Raw second moments ``E[s_j s_k]``, shape (m, m), float64."""
    a = _columns(unitary, input_modes)
    mu = (np.abs(a) ** 2).sum(axis=1)
    return factorial_moments(unitary, input_modes, distinguishable=distinguishable) + np.diag(mu)


def covariance(unitary, input_modes: Optional[Sequence[int]] = None, *, distinguishable: bool = False) -> np.ndarray:
    """``Cov[s_j, s_k]``, shape (m, m), float64 (symmetric, positive semi-definite)."""
    mu = mean_counts(unitary, input_modes)
    cov = second_moments(unitary, input_modes, distinguishable=distinguishable) - np.outer(mu, mu)
    return (cov + cov.T) / 2


def fano_factors(unitary, input_modes: Optional[Sequence[int]] = None, *, distinguishable: bool = False) -> np.ndarray:
    """Per-mode Fano factors ``Var[s_j] / E[s_j]``, shape (m,) (nan where E[s_j] = 0)."""
    mu = mean_counts(unitary, input_modes)
    var = np.diag(covariance(unitary, input_modes, distinguishable=distinguishable))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mu > 0, var / np.where(mu > 0, mu, 1), np.nan)


def total_fano_factor(unitary, input_modes: Optional[Sequence[int]] = None, *, distinguishable: bool = False) -> float:
    """``sum_j Var[s_j] / sum_j E[s_j]``: the photon-weighted mean Fano factor (≈1.28 quantum, ≈0.89
    photonic for 8 photons in 16 Haar-random modes)."""
    mu = mean_counts(unitary, input_modes)
    var = np.diag(covariance(unitary, input_modes, distinguishable=distinguishable))
    return float(var.sum() / mu.sum())
