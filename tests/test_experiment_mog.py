"""Tests of qboson.experiments.mog (paper Fig. 1): mixture data, mode metrics, tiny resumable runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")

from qboson.cli import main  # noqa: E402
from qboson.experiments import mog  # noqa: E402

TINY = [
    "--seeds", "1", "--iterations", "3", "--eval-at", "2", "--hidden", "8", "8", "--batch-size", "8",
    "--n-data", "200", "--n-latent", "100", "--n-gen", "300", "--no-progress",
]


def test_mixture_samples_follow_the_stated_distribution():
    x = mog.sample_mixture(200_000, seed=0)
    assert x.shape == (200_000, 2) and x.dtype == np.float32
    r = np.hypot(x[:, 0], x[:, 1])
    assert r.mean() == pytest.approx(5.0, abs=0.005)
    assert r.std() == pytest.approx(0.2, rel=0.02)
    blob = np.rint(np.mod(np.arctan2(x[:, 1], x[:, 0]), 2 * np.pi) / (2 * np.pi / 7)).astype(int) % 7
    counts = np.bincount(blob, minlength=7)
    assert counts.min() > 0.135 * len(x) and counts.max() < 0.151 * len(x)
    np.testing.assert_array_equal(mog.sample_mixture(10, seed=5), mog.sample_mixture(10, seed=5))
    assert not np.array_equal(mog.sample_mixture(10, seed=5), mog.sample_mixture(10, seed=6))


def test_data_scores_as_the_exact_formula_says():
    # d_k^2 is chi-square with 2 degrees of freedom under the data: P(d > 3) = exp(-9/2)
    m = mog.mode_metrics(mog.sample_mixture(200_000, seed=1))
    p = math.exp(-4.5)
    assert m["between"] == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / 200_000))
    assert m["modes"] == 7
    assert m["mode_tvd"] < 0.01


def test_blob_distances_by_hand():
    theta = 2 * np.pi * 3 / 7
    pts = np.array([
        [5 * np.cos(theta), 5 * np.sin(theta)],  # centre of blob 3
        [5.6 * np.cos(theta), 5.6 * np.sin(theta)],  # 3 radial sigmas out
        [5 * np.cos(-0.1), 5 * np.sin(-0.1)],  # 2 angular sigmas below blob 0 (across the -pi/pi cut)
    ])
    d = mog.blob_distances(pts)
    assert d.shape == (3, 7)
    assert d[0, 3] == pytest.approx(0.0, abs=1e-9)
    assert d[1, 3] == pytest.approx(3.0)
    assert d[2, 0] == pytest.approx(2.0)
    assert d[2].argmin() == 0


def test_mode_metrics_of_degenerate_generators():
    collapsed = np.tile([[5.0, 0.0]], (700, 1))  # everything on blob 0
    m = mog.mode_metrics(collapsed)
    assert m == {"between": 0.0, "modes": 1, "mode_tvd": pytest.approx(6 / 7)}
    origin = np.zeros((50, 2))
    assert mog.mode_metrics(origin) == {"between": 1.0, "modes": 0, "mode_tvd": 1.0}
    # a ring of uniformly spread angles: most points fall between the blobs
    phi = np.linspace(0, 2 * np.pi, 7000, endpoint=False)
    ring = mog.mode_metrics(5 * np.stack([np.cos(phi), np.sin(phi)], 1))
    assert ring["between"] == pytest.approx(1 - 7 * 2 * 0.15 / (2 * np.pi), abs=0.01)
    assert ring["modes"] == 7
    with pytest.raises(ValueError):
        mog.blob_distances(np.zeros((3, 3)))
    with pytest.raises(FloatingPointError):
        mog.mode_metrics(np.full((2, 2), np.inf))


def test_photon_latents_use_the_seeds_1_3_9_loop_circuit():
    from qboson.circuits import time_bin_interferometer

    seeds = mog._seeds({"seed": 0}, 2)
    q = mog.make_latent("quantum", seeds)
    p = mog.make_latent("photonic", seeds)
    u = time_bin_interferometer(16, (1, 3, 9), seed=seeds["circuit"]).unitary()
    np.testing.assert_allclose(q.unitary, u)
    np.testing.assert_allclose(p.unitary, u)
    z = q.sample(4000)
    assert z.shape == (4000, 16)
    assert np.abs(z.mean(axis=0)).max() < 0.1  # centred on the exact mean
    assert mog.make_latent("gaussian", seeds).sample(3).shape == (3, 16)


def _run(out, *extra):
    return main(["experiment", "mog", "--out", str(out), *TINY, *extra])


def test_tiny_grid_writes_tables_plots_and_resumes(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    extra = ["--latents", "quantum", "gaussian"]
    assert _run(tmp_path / "a", *extra) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    for name in ("table.md", "table.csv", "table_iter2.md", "scatter_iter2.png", "scatter_iter3.png", "settings.json"):
        assert name in files
    rec = json.loads((tmp_path / "a" / "cells" / "latent=quantum__seed=0.json").read_text())
    assert [e["iteration"] for e in rec["evaluations"]] == [2, 3]
    assert set(mog.METRICS) <= set(rec["evaluations"][0])
    with np.load(tmp_path / "a" / "cells" / "latent=quantum__seed=0.npz") as f:
        assert f["iter3"].shape == (300, 2)
    assert (tmp_path / "a" / "scatter_iter3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert _run(tmp_path / "b", *extra) == 0
    rec_b = json.loads((tmp_path / "b" / "cells" / "latent=quantum__seed=0.json").read_text())
    for e, f in zip(rec["evaluations"], rec_b["evaluations"]):
        assert e["modes"] == f["modes"]
        assert e["between"] == pytest.approx(f["between"], abs=2 / 300)

    import qboson.experiments.gan as gan

    monkeypatch.setattr(gan, "train_stack", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    assert _run(tmp_path / "a", *extra) == 0
    capsys.readouterr()
    assert _run(tmp_path / "a", *extra, "--batch-size", "4") == 2
    assert "different settings" in capsys.readouterr().err


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    assert _run(tmp_path, "--latents", "cat") == 2
    assert "unknown latent" in capsys.readouterr().err
    assert _run(tmp_path, "--seeds", "0") == 2
    assert "--seeds must be >= 1" in capsys.readouterr().err


def test_paper_profile_settings_follow_the_paper():
    p = mog.PROFILES["paper"]
    assert (p["seeds"], p["iterations"], p["batch_size"], p["critic_steps"]) == (5, 5000, 32, 5)
    assert p["hidden"] == [256, 256] and p["lr"] == 5e-4 and p["betas"] == [0.0, 0.9]
    assert p["gp_weight"] == 10.0 and p["latents"] == ["quantum", "photonic", "gaussian", "bernoulli"]


def test_corrupt_points_file_is_a_clear_error(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert _run(tmp_path / "a", "--latents", "gaussian") == 0
    npz = tmp_path / "a" / "cells" / "latent=gaussian__seed=0.npz"
    for bad in (b"not a zip file", None):
        if bad is None:  # an object array: loading it would unpickle
            np.savez(npz, iter3=np.array([{"a": 1}], dtype=object))
        else:
            npz.write_bytes(bad)
        capsys.readouterr()
        assert _run(tmp_path / "a", "--latents", "gaussian") == 2
        assert "corrupt" in capsys.readouterr().err

