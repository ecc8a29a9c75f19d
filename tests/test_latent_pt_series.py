"""The ``pt_series`` latent: the paper's hardware recipe (issue #13)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qboson.circuits import time_bin_interferometer
from qboson._seeding import split_seed
from qboson.latent import KINDS, from_spec, generate_bank, make
from qboson.latent.photonic import PT_SERIES_DEFAULTS


def test_pt_series_is_the_documented_recipe():
    z = make("pt_series", dim=32, seed=7, threads=1)
    assert "pt_series" in KINDS and z.dim == 32 and z.n_photons == 32
    assert z.input_modes.tolist() == list(range(32))  # every input bin filled
    expected = time_bin_interferometer(32, (1, 1), seed=split_seed(7)[0])
    np.testing.assert_allclose(z.unitary, expected.unitary())
    assert z.circuit.delays == (1, 1)
    assert z.noise.min_detected == 16 and z.noise.postselection_rule == "at least 16 detected photons"
    assert z.noise.transmission == PT_SERIES_DEFAULTS["transmission"]
    assert z.noise.visibility == pytest.approx(PT_SERIES_DEFAULTS["hom_visibility"])
    rows = z.raw(300)
    assert rows.shape == (300, 32) and rows.sum(axis=1).min() >= 16
    assert rows.max() >= 2  # PNR counts: bunching is kept
    # A different seed draws different angles.
    assert not np.allclose(make("pt_series", dim=32, seed=8, threads=1).unitary, z.unitary)


def test_pt_series_is_centred_on_its_own_mean():
    z = make("pt_series", dim=12, seed=3, threads=1, transmission=0.6, hom_visibility=0.9)
    assert z.mean_source == "exact-noisy"
    # Every bin filled: each mode's lossless mean is 1, so the post-selected mean is E[N | N >= 6] / 12.
    acc = z.acceptance_probability()
    assert 0 < acc < 1
    shots = 20_000
    zs = z.sample(shots, seed=9).astype(np.float64)
    assert np.max(np.abs(zs.mean(axis=0)) / (z.std / np.sqrt(shots))) < 5
    emp_cov = np.cov(zs, rowvar=False)
    assert np.max(np.abs(emp_cov - z.covariance)) < 0.03


def test_pt_series_threshold_variant_uses_a_calibration_stream():
    z = make("pt_series", dim=10, seed=4, threads=1, detection="threshold", calibration_shots=5000)
    assert z.mean_source == "empirical-calibration" and z.spec()["calibration_shots"] == 5000
    assert z.raw(20).max() <= 1


def test_pt_series_spec_round_trip_and_bank(tmp_path):
    z = make("pt_series", dim=10, seed=5, threads=1, delays="1-1", transmission=0.7)
    spec = z.spec()
    assert spec["delays"] == [1, 1] and spec["transmission"] == 0.7 and spec["min_detected"] == 5
    again = from_spec(spec)
    np.testing.assert_array_equal(again.raw_at(0, 50), z.raw_at(0, 50))
    bank = generate_bank(z, 200, tmp_path / "pt", progress=False)
    assert bank.spec["name"] == "pt_series" and bank.spec["mean_source"] == "exact-noisy"
    np.testing.assert_allclose(bank.mean, z.mean)
    rule = json.loads((tmp_path / "pt" / "bank.json").read_text())["normalisation"]["rule"]
    assert rule.endswith("mean and std: exact-noisy")  # not "exact" (regression)


def test_pt_series_per_mode_dark_counts_round_trip():
    dark = [0.01 * (i % 3) for i in range(8)]
    z = make("pt_series", dim=8, seed=6, threads=1, dark_count_probability=dark)
    assert z.mean_source == "exact-noisy" and z.spec()["dark_count_probability"] == dark
    np.testing.assert_array_equal(from_spec(z.spec()).raw_at(0, 20), z.raw_at(0, 20))


def test_pt_series_bad_arguments():
    with pytest.raises(ValueError, match="builds its own circuit"):
        make("pt_series", dim=8, seed=0, unitary=np.eye(8))
    with pytest.raises(ValueError, match="min_detected"):
        make("pt_series", dim=8, seed=0, min_detected=9)
    with pytest.raises(ValueError, match="transmission"):
        make("pt_series", dim=8, seed=0, transmission=1.5)
    with pytest.raises(ValueError, match="delays"):
        make("pt_series", dim=8, seed=0, delays="1-x")
    with pytest.raises(TypeError):
        make("pt_series", dim=8, seed=0, p=0.5)


def test_pt_series_bank_chunks_follow_measured_cost_not_the_lossless_model():
    """Regression: the cost model assumes all 32 photons survive (~0.3 s a row), so banks of this
    latent were cut into the smallest chunks (64 rows: ~1,600 files for 100k rows).  Under loss a
    row costs milliseconds; the chunk size now comes from timing a few rows."""
    from qboson.cost import estimate_cost
    from qboson.latent.bank import default_chunk_size

    lat = make("pt_series", 32, seed=0)
    assert estimate_cost(lat.n_photons, lat.dim, 1, threads=1) > 0.1  # what the model alone would use
    assert default_chunk_size(lat) >= 256
