"""Noisy and recorded photon latents are centred on the mean of their own distribution (issue #13)."""

from __future__ import annotations

import numpy as np

import qboson
from qboson import backends, noisy_moments
from qboson.backends.recorded import write_recorded
from qboson.latent import Bank, from_spec, generate_bank, make
from qboson.noise import NoiseModel

U = qboson.haar_unitary(8, 31)
MODES = [0, 1, 2, 3, 4, 5]


def _assert_centred(latent, shots=20_000, sigmas=5.0):
    z = latent.sample(shots, seed=123).astype(np.float64)
    se = latent.std / np.sqrt(shots)
    assert np.max(np.abs(z.mean(axis=0)) / se) < sigmas, (latent.mean_source, z.mean(axis=0) / se)


def test_noisy_latent_is_centred_on_its_own_mean():
    # Uniform loss thins the mean by 0.4: centring on the ideal mean would leave a large offset.
    model = NoiseModel(transmission=0.4, hom_visibility=0.8, dark_count_probability=0.01)
    latent = make("quantum", unitary=U, input_modes=MODES, seed=1, noise=model, threads=1)
    assert latent.mean_source == "exact-noisy"
    np.testing.assert_allclose(latent.mean, noisy_moments.statistics(U, MODES, model).mean)
    assert np.max(np.abs(latent.mean - qboson.latent.moments.mean_counts(U, MODES))) > 0.2
    _assert_centred(latent)
    photonic = make("photonic", unitary=U, input_modes=MODES, seed=1, noise=model, threads=1)
    np.testing.assert_allclose(photonic.covariance,
                               noisy_moments.statistics(U, MODES, model, distinguishable=True).covariance)
    _assert_centred(photonic)


def test_threshold_latent_is_centred_on_its_own_mean():
    model = NoiseModel(transmission=0.8, detection="threshold")
    latent = make("quantum", unitary=U, input_modes=MODES, seed=2, noise=model, threads=1)
    assert latent.mean_source == "exact-noisy" and latent.raw(10).max() <= 1
    _assert_centred(latent)


def test_postselected_latent_without_closed_form_is_centred_on_a_calibration_stream():
    model = NoiseModel(transmission=0.7, detection="threshold", postselect=">=3")
    latent = make("quantum", unitary=U, input_modes=MODES, seed=3, noise=model, threads=1, calibration_shots=20_000)
    assert latent.mean_source == "empirical-calibration"
    assert latent.spec()["calibration_shots"] == 20_000
    # Calibration rows come from their own stream, not the rows a bank or sample() hands out.
    assert not np.array_equal(latent.raw_at(0, 50), latent.raw_at(0, 50, seed=latent.seed + 1))
    _assert_centred(latent, sigmas=6.0)  # the reference mean itself has sampling error


def test_postselected_uniform_loss_latent_is_centred_exactly():
    model = NoiseModel(transmission=0.5, postselect=">=3", hom_visibility=0.9)
    latent = make("quantum", unitary=U, input_modes=MODES, seed=4, noise=model, threads=1)
    assert latent.mean_source == "exact-noisy"
    _assert_centred(latent)


def test_recorded_latent_is_centred_on_the_recorded_mean(tmp_path):
    model = NoiseModel(transmission=0.6, postselect=">=2")
    rows = qboson.sample(unitary=U, input_modes=MODES, shots=3000, seed=5, noise=model, threads=1)
    path = write_recorded(tmp_path / "run.npz", rows, input_modes=MODES, min_detected=2, unitary=U)
    latent = make("quantum", unitary=U, input_modes=MODES, seed=5, backend=backends.get("recorded", path=path))
    assert latent.mean_source == "empirical-recorded"
    np.testing.assert_allclose(latent.mean, rows.mean(axis=0))
    z = latent.sample(3000)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)


def test_noisy_bank_records_its_mean_and_rebuilds(tmp_path):
    model = NoiseModel(transmission=0.5, dark_count_probability=0.02)
    latent = make("quantum", unitary=U, input_modes=MODES, seed=6, noise=model, threads=1)
    bank = generate_bank(latent, 500, tmp_path / "bank", progress=False)
    again = Bank(tmp_path / "bank")
    np.testing.assert_allclose(again.mean, latent.mean)
    assert again.spec["mean_source"] == "exact-noisy" and again.spec["noise"]["transmission"] == 0.5
    rebuilt = from_spec(again.spec)
    np.testing.assert_array_equal(rebuilt.raw_at(0, 500), np.asarray(bank.raw[:500]))
