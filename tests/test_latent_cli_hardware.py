"""``qboson sample`` with time-bin circuits, noise models and backends; ``qboson inspect --ideal`` (issue #13)."""

import json

import numpy as np
import pytest

import qboson
from qboson._seeding import split_seed
from qboson.backends.recorded import write_recorded
from qboson.circuits import time_bin_interferometer
from qboson.cli import main
from qboson.latent import Bank, make
from qboson.noise import NoiseModel


def test_sample_time_bin_circuit_with_noise(tmp_path):
    (tmp_path / "noise.json").write_text(json.dumps({"transmission": 0.6, "postselect": ">=2"}))
    rc = main(["sample", "--m", "8", "--n", "4", "--delays", "1,1", "--noise", str(tmp_path / "noise.json"),
               "--shots", "300", "--seed", "5", "--out", str(tmp_path / "b"), "--quiet", "--threads", "1"])
    assert rc == 0
    bank = Bank(tmp_path / "b")
    tbi = time_bin_interferometer(8, (1, 1), seed=split_seed(5)[0])
    expected = qboson.sample(unitary=tbi.unitary(), input_modes=range(4), shots=300, seed=5,
                             noise=NoiseModel(transmission=0.6, postselect=">=2"), threads=1)
    np.testing.assert_array_equal(bank.raw, expected)
    assert bank.spec["noise"]["min_detected"] == 2 and bank.spec["mean_source"] == "exact-noisy"
    # Resuming without --seed reuses the bank's seed, hence the same circuit.
    assert main(["sample", "--m", "8", "--n", "4", "--delays", "1,1", "--noise", str(tmp_path / "noise.json"),
                 "--shots", "400", "--out", str(tmp_path / "b"), "--quiet", "--threads", "1"]) == 0
    assert len(Bank(tmp_path / "b")) == 400


def test_sample_pt_series_and_inspect_against_the_ideal_latent(tmp_path, capsys):
    (tmp_path / "pt.json").write_text(json.dumps({"transmission": 0.6, "hom_visibility": 0.9}))
    assert main(["sample", "--kind", "pt_series", "--m", "10", "--noise", str(tmp_path / "pt.json"), "--seed", "2",
                 "--shots", "400", "--out", str(tmp_path / "pt"), "--quiet", "--threads", "1"]) == 0
    bank = Bank(tmp_path / "pt")
    ref = make("pt_series", dim=10, seed=2, transmission=0.6, hom_visibility=0.9, threads=1)
    assert f"exact acceptance {ref.acceptance_probability():.4g}" in capsys.readouterr().err
    np.testing.assert_array_equal(bank.raw, ref.raw(400))
    capsys.readouterr()
    png = tmp_path / "cmp.png"
    rc = main(["inspect", str(tmp_path / "pt"), "--ideal", "--ideal-rows", "500", "--plot", str(png)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "ideal latent" in out and "photons per shot" in out and "P(max count >= 2)" in out
    if png.exists():  # matplotlib installed
        assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["inspect", str(tmp_path / "pt"), "--ideal", "--ideal-rows", "300", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (entry,) = report.values()
    assert entry["ideal"]["photons_per_shot"] == 5.0 and entry["photons_per_shot"] >= 5.0


def test_sample_through_a_recorded_backend(tmp_path, capsys):
    u = qboson.haar_unitary(6, 3)
    np.save(tmp_path / "u.npy", u)
    rows = qboson.sample(unitary=u, input_modes=range(6), shots=200, seed=1,
                         noise=NoiseModel(transmission=0.5, postselect=">=3"))
    write_recorded(tmp_path / "run.npz", rows, input_modes=range(6), min_detected=3, unitary=u)
    rc = main(["sample", "--unitary", str(tmp_path / "u.npy"), "--input-modes", "0,1,2,3,4,5", "--backend", "recorded",
               "--backend-option", f"path={tmp_path / 'run.npz'}", "--backend-option", "min_detected=3",
               "--shots", "200", "--seed", "0", "--out", str(tmp_path / "rec"), "--quiet"])
    assert rc == 0
    bank = Bank(tmp_path / "rec")
    assert sorted(map(tuple, np.asarray(bank.raw).tolist())) == sorted(map(tuple, rows.tolist()))
    np.testing.assert_allclose(bank.mean, rows.mean(axis=0))  # centred on the recorded rows' own mean
    assert bank.spec["mean_source"] == "empirical-recorded"
    # The ideal latent of a recorded bank: the same circuit and inputs through the exact sampler.
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "rec"), "--ideal", "--ideal-rows", "200", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out).values()
    assert entry["ideal"]["photons_per_shot"] == 6.0 and entry["photons_per_shot"] < 6.0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--delays", "1,x"], "--delays"),
        (["--noise", "missing.json"], "cannot read --noise"),
        (["--backend", "nope"], "unknown backend"),
        (["--backend-option", "a=1"], "needs --backend"),
        (["--backend", "local", "--backend-option", "novalue"], "KEY=VALUE"),
        (["--kind", "gaussian", "--delays", "1"], "circuit latents"),
    ],
)
def test_sample_hardware_flag_errors(tmp_path, capsys, extra, message):
    rc = main(["sample", "--m", "6", "--shots", "5", "--seed", "1", "--out", str(tmp_path / "x"), "--quiet", *extra])
    assert rc == 2
    assert message in capsys.readouterr().err
