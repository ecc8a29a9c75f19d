"""Tests of qboson.experiments.synthetic (paper Table I): data, metrics, resumable tiny runs."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

pytest.importorskip("torch")

from qboson.cli import main  # noqa: E402
from qboson.experiments import synthetic as syn  # noqa: E402

TINY = [
    "--runs", "1", "--iterations", "3", "--eval-at", "2", "--hidden", "8", "8", "--batch-size", "16",
    "--n-train", "300", "--n-latent", "200", "--n-gen", "100", "--n-mmd", "40", "--no-progress",
]


def test_l1_to_integer_by_hand():
    assert syn.l1_to_integer(np.array([[0.2, 1.9, -0.4], [3.0, 2.5, -1.25]])) == pytest.approx(
        (0.2 + 0.1 + 0.4 + 0.0 + 0.5 + 0.25) / 6
    )


def test_pattern_tvd_by_hand():
    a = np.array([[0, 1], [0, 1], [1, 0], [2, 0]])
    b = np.array([[0, 1], [1, 0], [1, 0], [1, 0]])
    # p = (1/2, 1/4, 1/4, 0), q = (1/4, 3/4, 0, 0) over ([0,1], [1,0], [2,0])
    assert syn.pattern_tvd(a, b) == pytest.approx(0.5 * (0.25 + 0.5 + 0.25))
    assert syn.pattern_tvd(a, a[::-1]) == 0.0
    assert syn.pattern_tvd(a[:1], b[1:2]) == 1.0
    with pytest.raises(ValueError):
        syn.pattern_tvd(a, b[:, :1])


def test_signature_sorts_counts():
    np.testing.assert_array_equal(syn.signature(np.array([[0, 2, 1, 0], [3, 0, 0, 1]])), [[2, 1, 0, 0], [3, 1, 0, 0]])


def test_mmd2_against_explicit_double_sum():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.0, size=(5, 3))
    h = 2.3

    def k(u, v):
        return np.exp(-np.sum((u - v) ** 2) / h)

    sxx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(7), 2)) / (7 * 6)
    syy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(5), 2)) / (5 * 4)
    sxy = sum(k(u, v) for u in x for v in y) / (7 * 5)
    assert syn.mmd2(x, y, h) == pytest.approx(sxx + syy - 2 * sxy, rel=1e-10)


def test_mmd2_separates_distributions():
    rng = np.random.default_rng(1)
    a, b, c = rng.normal(size=(600, 4)), rng.normal(size=(600, 4)), rng.normal(0.7, 1.0, size=(600, 4))
    h = syn.median_sq_distance(a)
    assert abs(syn.mmd2(a, b, h)) < 0.01
    assert syn.mmd2(a, c, h) > 0.05


def test_quantum_data_is_photon_counts_and_reproducible():
    x = syn.make_data("quantum", 500, seed=3)
    assert x.shape == (500, 16) and x.dtype == np.uint8
    assert (x.sum(axis=1) == 8).all()
    np.testing.assert_array_equal(x, syn.make_data("quantum", 500, seed=3))
    assert not np.array_equal(x, syn.make_data("quantum", 500, seed=4))
    # every photon in one of the 16 modes: the mean occupation is 1/2 per mode on average
    assert x.mean() == pytest.approx(0.5)
    assert syn.in_support(x.astype(np.int64), "quantum").all()


def test_bernoulli_data_and_support():
    x = syn.make_data("bernoulli", 4000, seed=0)
    assert set(np.unique(x)) == {0, 1}
    assert abs(x.mean() - 0.5) < 0.02
    assert syn.in_support(np.array([[0, 1] * 8, [2] + [0] * 15]), "bernoulli").tolist() == [True, False]
    assert syn.in_support(np.array([[8] + [0] * 15, [9, -1] + [0] * 14]), "quantum").tolist() == [True, False]
    with pytest.raises(ValueError, match="unknown dataset"):
        syn.make_data("mnist", 3, 0)


def test_metrics_of_the_data_itself_and_of_noise():
    data = syn.make_data("quantum", 3000, seed=1)
    a, b, c = data[:1000], data[1000:2000], data[2000:]
    perfect = syn.evaluate_samples(c.astype(np.float32), a, b, "quantum", n_mmd=300)
    assert perfect["l1_int"] == 0.0 and perfect["in_support"] == 1.0
    assert perfect["sig_tvd"] < 0.15 and perfect["cov_err"] < 0.3
    noisy = syn.evaluate_samples(c + np.random.default_rng(0).normal(0, 0.3, c.shape), a, b, "quantum", n_mmd=300)
    assert noisy["l1_int"] > 0.15
    assert noisy["in_support"] < perfect["in_support"]
    assert noisy["mmd"] > perfect["mmd"]
    with pytest.raises(FloatingPointError):
        syn.evaluate_samples(np.full((5, 16), np.nan), a[:5], b[:5], "quantum", 5)


def _run(out, *extra):
    return main(["experiment", "synthetic", "--out", str(out), *TINY, *extra])


def test_tiny_grid_runs_resumes_and_is_reproducible(tmp_path, monkeypatch, capsys):
    extra = ["--datasets", "quantum", "--latents", "quantum", "gaussian"]
    assert _run(tmp_path / "a", *extra) == 0
    cells = sorted((tmp_path / "a" / "cells").glob("*.json"))
    assert [c.name for c in cells] == ["dataset=quantum__latent=gaussian__run=0.json",
                                       "dataset=quantum__latent=quantum__run=0.json"]
    rec = json.loads(cells[1].read_text())
    assert [e["iteration"] for e in rec["evaluations"]] == [2, 3]
    assert "quantum latent" in rec["latent"]
    table = (tmp_path / "a" / "table.md").read_text()
    assert "| quantum | gaussian |" in table and "L1 to integer" in table
    assert (tmp_path / "a" / "table_iter2.csv").exists()

    # the same grid in another folder gives the same numbers
    assert _run(tmp_path / "b", *extra) == 0
    rec_b = json.loads((tmp_path / "b" / "cells" / cells[1].name).read_text())
    for e, f in zip(rec["evaluations"], rec_b["evaluations"]):
        for key in syn.METRICS:
            assert e[key] == pytest.approx(f[key], rel=1e-4, abs=1e-6)

    # finished cells are skipped: a second run trains nothing
    import qboson.experiments.gan as gan

    def boom(*a, **k):
        raise AssertionError("a finished cell was trained again")

    monkeypatch.setattr(gan, "train_stack", boom)
    assert _run(tmp_path / "a", *extra) == 0
    # more runs extend the grid (the run count is not a result setting) ...
    with pytest.raises(AssertionError, match="trained again"):
        _run(tmp_path / "a", *extra[:-1], "--runs", "2")
    # ... but other settings are refused
    capsys.readouterr()
    assert _run(tmp_path / "a", *extra, "--lr", "0.01") == 2
    assert "different settings" in capsys.readouterr().err


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    assert _run(tmp_path, "--latents", "squeezed") == 2
    assert "unknown latent" in capsys.readouterr().err
    assert _run(tmp_path, "--iterations", "0") == 2
    assert "--iterations must be >= 1" in capsys.readouterr().err


def test_corrupt_result_file_is_reported(tmp_path, capsys):
    extra = ["--datasets", "bernoulli", "--latents", "bernoulli"]
    assert _run(tmp_path, *extra) == 0
    (cell,) = (tmp_path / "cells").glob("*.json")
    cell.write_text("{truncated")
    capsys.readouterr()
    assert _run(tmp_path, *extra) == 2
    assert "corrupt" in capsys.readouterr().err


def test_paper_profile_settings_follow_the_paper():
    p = syn.PROFILES["paper"]
    assert (p["runs"], p["iterations"], p["batch_size"], p["critic_steps"]) == (12, 40000, 500, 5)
    assert p["hidden"] == [512, 512] and p["lr"] == 5e-4 and p["optimizer"] == "rmsprop"
    assert p["objective"] == "wgan-gp" and p["gp_weight"] == 10.0
    assert set(syn.PAPER_LATENTS) <= set(p["latents"])

