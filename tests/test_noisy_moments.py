"""Exact noisy moments and acceptance probabilities against brute-force distributions and samples."""

from __future__ import annotations

import numpy as np
import pytest

import qboson
from qboson import noisy_moments as nm
from qboson.noise import NoiseModel
from test_noise import _direct_sum, _loss_dilation, exact_noisy

M = 4
MODES = [0, 1, 3]
U = qboson.haar_unitary(M, 21)


def _brute(model_kwargs, t_in, t_out=None, x=1.0, dark=None, threshold=False, postselect=None):
    """Exact pattern distribution by enumeration (tests/test_noise.py's independent reference)."""
    ubig = _direct_sum(U, M) if t_out is None else _loss_dilation(t_out) @ _direct_sum(U, M)
    dist, acc = exact_noisy(ubig, M, MODES, t_in, x, dark=dark, threshold=threshold, postselect=postselect)
    pats = np.array(list(dist), dtype=float)
    probs = np.array(list(dist.values()))
    mean = probs @ pats
    cov = (pats - mean).T @ ((pats - mean) * probs[:, None])
    return dist, acc, mean, cov


CASES = {
    "uniform-loss": (dict(transmission=0.6), dict(t_in=[0.6] * 3)),
    "input-loss+overlap": (
        dict(input_transmission=[0.9, 0.5, 1.0, 0.7], indistinguishability=0.8),
        dict(t_in=[0.9, 0.5, 0.7], x=0.8),
    ),
    "output-loss+visibility": (
        dict(output_transmission=[0.9, 0.4, 0.8, 0.6], hom_visibility=0.49, transmission=0.9),
        dict(t_in=[0.9] * 3, t_out=[0.9, 0.4, 0.8, 0.6], x=0.7),
    ),
    "dark-counts": (dict(transmission=0.7, dark_count_probability=[0.05, 0.1, 0.0, 0.2]),
                    dict(t_in=[0.7] * 3, dark=[0.05, 0.1, 0.0, 0.2])),
    "threshold": (dict(transmission=0.8, detection="threshold"), dict(t_in=[0.8] * 3, threshold=True)),
    "threshold+everything": (
        dict(transmission=0.9, output_transmission=[0.7, 1.0, 0.5, 0.9], indistinguishability=0.6,
             dark_count_probability=0.1, detection="threshold"),
        dict(t_in=[0.9] * 3, t_out=[0.7, 1.0, 0.5, 0.9], x=0.6, dark=[0.1] * 4, threshold=True),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_noisy_moments_match_brute_force(case):
    model_kwargs, ref = CASES[case]
    _, _, mean, cov = _brute(model_kwargs, **ref)
    got = nm.statistics(U, MODES, NoiseModel(**model_kwargs))
    np.testing.assert_allclose(got.mean, mean, atol=1e-12)
    np.testing.assert_allclose(got.covariance, cov, atol=1e-12)


def test_uniform_loss_thins_moments_by_eta_and_eta_squared():
    eta = 0.37
    ideal = nm.statistics(U, MODES)
    lossy = nm.statistics(U, MODES, NoiseModel(transmission=eta))
    np.testing.assert_allclose(lossy.mean, eta * ideal.mean, atol=1e-14)
    g_ideal = ideal.covariance + np.outer(ideal.mean, ideal.mean) - np.diag(ideal.mean)
    g_lossy = lossy.covariance + np.outer(lossy.mean, lossy.mean) - np.diag(lossy.mean)
    np.testing.assert_allclose(g_lossy, eta**2 * g_ideal, atol=1e-14)
    # Distinguishable photons: the ideal latent moments of qboson.latent.moments.
    from qboson.latent import moments

    np.testing.assert_allclose(
        nm.statistics(U, MODES, distinguishable=True).covariance,
        moments.covariance(U, MODES, distinguishable=True), atol=1e-14,
    )


def test_low_rank_permanents_match_the_general_permanent():
    rng = np.random.default_rng(0)
    b = qboson.haar_unitary(12, 2)[:, :9] * 0.8
    for rows in ([3], [2, 7]):
        d, u, v = nm._no_photon_matrix(b[rows, :], 0.7)
        direct = qboson.permanent(np.diag(d) + u @ v.T)
        got = nm._per_diag_rank1(d, u[:, 0] * v[:, 0]) if len(rows) == 1 else nm._per_diag_rank2(d, u, v)
        assert got == pytest.approx(direct, rel=1e-10)
    d = rng.uniform(0.2, 1.0, 7)
    u = rng.normal(size=(7, 2)) + 1j * rng.normal(size=(7, 2))
    v = rng.normal(size=(7, 2)) + 1j * rng.normal(size=(7, 2))
    assert nm._per_diag_rank2(d, u, v) == pytest.approx(qboson.permanent(np.diag(d) + u @ v.T), rel=1e-10)


def test_threshold_moments_of_a_filled_time_bin_circuit_match_samples():
    # Every input bin filled, as on the PT-series, against 100k sampled shots.
    from qboson.circuits import time_bin_interferometer

    tbi = time_bin_interferometer(12, (1, 1), seed=3)
    modes = list(range(12))
    model = NoiseModel(transmission=0.5, hom_visibility=0.9, dark_count_probability=0.01, detection="threshold")
    exact = nm.statistics(tbi, modes, model)
    shots = qboson.sample(unitary=tbi.unitary(), input_modes=modes, shots=100_000, seed=4, noise=model, threads=1)
    emp_mean = shots.mean(axis=0)
    se = np.sqrt(np.diag(exact.covariance) / shots.shape[0])
    assert np.max(np.abs(emp_mean - exact.mean) / se) < 5
    emp_cov = np.cov(shots.astype(float), rowvar=False)
    assert np.max(np.abs(emp_cov - exact.covariance)) < 6 * 0.5 / np.sqrt(shots.shape[0])


def test_pnr_moments_match_100k_samples():
    model = NoiseModel(transmission=0.6, hom_visibility=0.8, dark_count_probability=0.02)
    u = qboson.haar_unitary(8, 5)
    modes = [0, 1, 2, 3]
    exact = nm.statistics(u, modes, model)
    shots = qboson.sample(unitary=u, input_modes=modes, shots=100_000, seed=6, noise=model, threads=1).astype(float)
    se = np.sqrt(np.diag(exact.covariance) / shots.shape[0])
    assert np.max(np.abs(shots.mean(axis=0) - exact.mean) / se) < 5
    assert np.max(np.abs(np.cov(shots, rowvar=False) - exact.covariance)) < 0.01


@pytest.mark.parametrize(
    "model_kwargs, ref",
    [
        (dict(transmission=0.6, postselect=">=2"), dict(t_in=[0.6] * 3, postselect={2, 3})),
        (dict(transmission=0.7, dark_count_probability=0.1, postselect="2..3"),
         dict(t_in=[0.7] * 3, dark=[0.1] * 4, postselect={2, 3})),
        (dict(output_transmission=[0.9, 0.4, 0.8, 0.6], indistinguishability=0.8, min_detected=2),
         dict(t_in=[1.0] * 3, t_out=[0.9, 0.4, 0.8, 0.6], x=0.8, postselect={2, 3})),
        (dict(transmission=0.9, detection="threshold", postselect=">=2", hom_visibility=0.5),
         dict(t_in=[0.9] * 3, threshold=True, x=np.sqrt(0.5), postselect={2, 3, 4})),
    ],
)
def test_exact_acceptance_probability(model_kwargs, ref):
    _, acc, _, _ = _brute(model_kwargs, **ref)
    model = NoiseModel(**model_kwargs)
    assert model.acceptance_probability(U, MODES) == pytest.approx(acc, abs=1e-12)


def test_at_least_k_acceptance_rate_matches_exact_probability():
    # Every input filled, lossy, kept when at least half the photons are detected (the PT-series rule).
    u = qboson.haar_unitary(10, 8)
    modes = list(range(10))
    model = NoiseModel(transmission=0.55, postselect=">=5")
    exact = model.acceptance_probability(u, modes)
    run = model.run(u, modes, 4000, key=17)
    assert run.samples.sum(axis=1).min() >= 5
    rate = run.accepted / run.attempts
    # Accepted-out-of-attempts is a negative-binomial ratio: its sd is about sqrt(p (1 - p) / attempts).
    assert abs(rate - exact) < 5 * np.sqrt(exact * (1 - exact) / run.attempts)
    # Reproducible: the same key gives the same shots, whatever the split.
    again = np.vstack([model.run(u, modes, 1500, key=17).samples, model.run(u, modes, 2500, key=17, start=1500).samples])
    np.testing.assert_array_equal(again, run.samples)


@pytest.mark.parametrize("rule, allowed", [(">=2", {2, 3}), ("1..2", {1, 2}), (3, {3})])
def test_postselected_moments_with_uniform_loss_match_brute_force(rule, allowed):
    _, _, mean, cov = _brute({}, t_in=[0.55] * 3, x=0.8, postselect=allowed)
    got = nm.statistics(U, MODES, NoiseModel(transmission=0.55, indistinguishability=0.8, postselect=rule))
    np.testing.assert_allclose(got.mean, mean, atol=1e-12)
    np.testing.assert_allclose(got.covariance, cov, atol=1e-12)


@pytest.mark.parametrize("rule, allowed", [(">=3", {3, 4, 5, 6, 7}), ("2..3", {2, 3}), (1, {1})])
def test_postselected_moments_with_dark_counts_match_brute_force(rule, allowed):
    dark = [0.05, 0.2, 0.0, 0.1]
    _, _, mean, cov = _brute({}, t_in=[0.6] * 3, x=0.9, dark=dark, postselect=allowed)
    model = NoiseModel(transmission=0.6, indistinguishability=0.9, dark_count_probability=dark, postselect=rule)
    got = nm.statistics(U, MODES, model)
    np.testing.assert_allclose(got.mean, mean, atol=1e-12)
    np.testing.assert_allclose(got.covariance, cov, atol=1e-12)


def test_moments_refuse_postselection_without_closed_form_and_angle_noise():
    for model in (
        NoiseModel(transmission=0.5, postselect=">=2", detection="threshold"),
        NoiseModel(input_transmission=[0.5, 0.6, 0.7, 0.8], postselect=">=2"),
    ):
        with pytest.raises(ValueError, match="post-selection"):
            nm.statistics(U, MODES, model)
    tbi = qboson.circuits.time_bin_interferometer(4, (1,), seed=0)
    with pytest.raises(ValueError, match="angle noise"):
        nm.statistics(tbi, MODES, NoiseModel(angle_noise=0.1, circuit=tbi))


@pytest.mark.slow
def test_moments_at_the_pt_series_size_match_samples():
    # 32 photons in 32 bins: threshold moments (rank-2 recursion at n = 32) and the post-selected
    # closed form with dark counts, each against 20,000 sampled shots.
    from qboson.circuits import time_bin_interferometer

    tbi = time_bin_interferometer(32, (1, 1), seed=5)
    modes = range(32)
    for model in (
        NoiseModel(transmission=0.5, hom_visibility=0.95, detection="threshold"),
        NoiseModel(transmission=0.5, hom_visibility=0.95, dark_count_probability=0.02, postselect=">=16"),
    ):
        exact = nm.statistics(tbi, modes, model)
        x = model.run(tbi, modes, 20_000, key=9, threads=1).samples.astype(float)
        se = np.sqrt(np.diag(exact.covariance) / x.shape[0])
        assert np.max(np.abs(x.mean(axis=0) - exact.mean) / se) < 5
        assert np.max(np.abs(np.cov(x, rowvar=False) - exact.covariance)) < 0.05
