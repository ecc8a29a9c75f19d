"""Exact moments of photon latents (qboson.latent.moments) against independent references:
the brute-force output distribution (numpy Glynn permanents, qboson.reference) and long samples."""

import math

import numpy as np
import pytest

import qboson
from qboson import reference
from qboson.latent import moments


def brute_force_distribution(u, inputs, distinguishable):
    """Every output pattern and its probability, from permanents computed in numpy."""
    n, m = len(inputs), u.shape[0]
    patterns, probs = [], []
    for pattern in reference.output_patterns(n, m):
        rows = [j for j, c in enumerate(pattern) for _ in range(c)]
        sub = u[np.ix_(rows, list(inputs))]
        norm = math.prod(math.factorial(c) for c in pattern)
        if distinguishable:
            p = reference.glynn_permanent(np.abs(sub) ** 2).real / norm
        else:
            p = abs(reference.glynn_permanent(sub)) ** 2 / norm
        patterns.append(pattern)
        probs.append(p)
    return np.array(patterns, dtype=float), np.array(probs)


@pytest.mark.parametrize("distinguishable", [False, True])
@pytest.mark.parametrize("n,m,inputs,seed", [(2, 3, (0, 2), 1), (3, 5, (0, 1, 3), 2), (4, 6, (0, 1, 2, 3), 3)])
def test_moments_match_brute_force_distribution(n, m, inputs, seed, distinguishable):
    u = qboson.haar_unitary(m, seed=seed)
    s, p = brute_force_distribution(u, inputs, distinguishable)
    assert abs(p.sum() - 1) < 1e-10
    mean = p @ s
    second = np.einsum("k,kj,kl->jl", p, s, s)
    cov = second - np.outer(mean, mean)
    np.testing.assert_allclose(moments.mean_counts(u, inputs), mean, atol=1e-12)
    np.testing.assert_allclose(moments.second_moments(u, inputs, distinguishable=distinguishable), second, atol=1e-12)
    np.testing.assert_allclose(moments.covariance(u, inputs, distinguishable=distinguishable), cov, atol=1e-12)
    fact = second - np.diag(mean)
    np.testing.assert_allclose(moments.factorial_moments(u, inputs, distinguishable=distinguishable), fact, atol=1e-12)


def test_quantum_doubles_the_bunching_term():
    u = qboson.haar_unitary(7, seed=11)
    gq = moments.factorial_moments(u, [0, 1, 2])
    gd = moments.factorial_moments(u, [0, 1, 2], distinguishable=True)
    np.testing.assert_allclose(np.diag(gq), 2 * np.diag(gd), rtol=1e-12)
    assert not np.allclose(gq, gd)  # off-diagonal exchange terms differ


def test_hong_ou_mandel_has_no_coincidences():
    bs = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
    g = moments.factorial_moments(bs, [0, 1])
    assert abs(g[0, 1]) < 1e-15  # E[s_0 s_1] = 0: both photons always leave together
    assert abs(moments.factorial_moments(bs, [0, 1], distinguishable=True)[0, 1] - 0.5) < 1e-15


def _covariance_z_scores(x, mean, cov):
    x = x.astype(float)
    d = x - mean  # exact mean: products are unbiased for the exact covariance
    prod = np.einsum("kj,kl->kjl", d, d)
    se = prod.std(axis=0) / np.sqrt(x.shape[0])
    return (prod.mean(axis=0) - cov) / np.where(se > 0, se, np.inf)


@pytest.mark.parametrize("distinguishable", [False, True])
def test_moments_match_long_samples_where_quantum_and_photonic_differ(distinguishable):
    n, m, shots = 5, 10, 100_000
    u = qboson.haar_unitary(m, seed=7)
    x = qboson.sample(unitary=u, n=n, shots=shots, seed=8, distinguishable=distinguishable)
    mean = moments.mean_counts(u, range(n))
    cov = moments.covariance(u, range(n), distinguishable=distinguishable)
    z_mean = (x.mean(axis=0) - mean) / (x.std(axis=0) / np.sqrt(shots))
    assert np.max(np.abs(z_mean)) < 5
    assert np.max(np.abs(_covariance_z_scores(x, mean, cov))) < 5.5
    other = moments.covariance(u, range(n), distinguishable=not distinguishable)
    # the other kind's covariance is rejected by the same samples
    assert np.max(np.abs(_covariance_z_scores(x, mean, other))) > 10


def test_fano_factor_of_paper_configuration():
    # DESIGN.md: at 8 photons in 16 modes the Fano factor is about 1.28 (quantum) vs 0.89 (photonic).
    fq = [moments.total_fano_factor(qboson.haar_unitary(16, seed=s), range(8)) for s in range(20)]
    fd = [moments.total_fano_factor(qboson.haar_unitary(16, seed=s), range(8), distinguishable=True) for s in range(20)]
    assert 1.2 < np.mean(fq) < 1.36
    assert 0.85 < np.mean(fd) < 0.93
    f = moments.fano_factors(qboson.haar_unitary(16, seed=0), range(8))
    assert f.shape == (16,) and np.all(f > 0)


def test_moments_reject_bad_input():
    with pytest.raises(ValueError, match="unitary"):
        moments.mean_counts(np.ones((3, 3)), [0])
    with pytest.raises(ValueError, match="input_modes"):
        moments.covariance(np.eye(3), [0, 3])
