"""``qboson experiment qm9``: seeds parsing, the mean ± s.e. table, and a resumable tiny grid."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")

import importlib  # noqa: E402

from qboson.experiments import qm9  # noqa: E402
from qboson.molgan.config import PROFILES  # noqa: E402
from qm9_fakes import fake_data, fake_evaluate  # noqa: E402

molgan_train = importlib.import_module("qboson.molgan.trainer")
molgan_evaluate = importlib.import_module("qboson.molgan.evaluate")

TINY = dict(batch_size=8, latent_bank_size=64, log_every=2, checkpoint_every=4, generator_widths=(8, 16),
            critic_conv_dims=(8,), critic_aggregation_dim=8, critic_mlp_dims=(8,), curve_points=0)


def test_parse_seeds():
    assert qm9.parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert qm9.parse_seeds("3,1,1") == [1, 3]
    assert qm9.parse_seeds("0-1,7") == [0, 1, 7]
    for bad in ("", "a", "4-2", "-1", "1-x"):
        with pytest.raises(ValueError, match="seed"):
            qm9.parse_seeds(bad)


def test_summarise_mean_and_standard_error():
    results = [{"latent": "quantum", "dim": 16, "seed": s, "fcd": f, "valid": v, "valid_loose": v,
                "valid_unique": u, "novel": u // 2, "n": 100}
               for s, f, v, u in [(0, 1.0, 50, 10), (1, 2.0, 70, 30), (2, float("nan"), 0, 0)]]
    results.append({"latent": "gaussian", "dim": 16, "seed": 0, "fcd": 3.0, "valid": 1, "valid_loose": 2,
                    "valid_unique": 1, "novel": 1, "n": 100})
    rows = {r["latent"]: r for r in qm9.summarise(results)}
    q = rows["quantum"]
    assert q["runs"] == 3 and q["fcd_n"] == 2  # FCD undefined (no valid molecule) in one run
    assert q["fcd_mean"] == pytest.approx(1.5)
    assert q["fcd_se"] == pytest.approx(np.std([1.0, 2.0], ddof=1) / np.sqrt(2))
    assert q["valid_mean"] == pytest.approx(40.0)
    assert q["valid_se"] == pytest.approx(np.std([50, 70, 0], ddof=1) / np.sqrt(3))
    assert math.isnan(rows["gaussian"]["fcd_se"])  # one run: no standard error
    table = qm9.markdown_table(list(rows.values()), ["quantum", "gaussian"])
    lines = table.strip().splitlines()
    assert lines[2].startswith("| quantum | 16 | 3 | 1.500 ± 0.500 (2 runs) | n/a | 40 ± 21 |")
    assert lines[3].startswith("| gaussian | 16 | 1 | 3.000 | n/a | 1 |")


def test_default_latents_follow_the_profile():
    parser = argparse.ArgumentParser()
    qm9.add_arguments(parser)
    names = lambda argv: qm9._latent_names(parser.parse_args(argv))  # noqa: E731
    assert names([]) == ["quantum", "gaussian"]  # quick: two runs, a schedule long enough to leave collapse
    assert names(["--profile", "paper"]) == ["quantum", "photonic", "gaussian", "bernoulli"]
    assert names(["--latents", "bernoulli, quantum"]) == ["bernoulli", "quantum"]


def test_default_grid_follows_the_profile(tmp_path):
    parser = argparse.ArgumentParser()
    qm9.add_arguments(parser)

    def grid(argv):
        configs = qm9._grid_configs(parser.parse_args(argv + ["--out", str(tmp_path)]))
        return sorted({c.seed for c, _ in configs}), len(configs)

    assert grid([]) == ([0], 2)  # quick: seed 0 of quantum and Gaussian
    assert grid(["--profile", "paper"]) == (list(range(20)), 80)  # Table II: 20 seeds of four latents
    assert grid(["--profile", "paper", "--seeds", "3-4", "--latents", "quantum"]) == ([3, 4], 2)


def _args(tmp_path, **kw):
    parser = argparse.ArgumentParser()
    qm9.add_arguments(parser)
    args = parser.parse_args(["--latents", "gaussian,bernoulli", "--dim", "4", "--seeds", "0-1", "--profile", "quick",
                              "--out", str(tmp_path / "grid"), "--iterations", "6", "--eval-samples", "20"])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


@pytest.fixture
def tiny_grid(monkeypatch):
    """QM9 replaced by random graphs, the chemistry metrics by counts of the decoded graphs."""
    monkeypatch.setattr(molgan_train.GraphData, "qm9_train", classmethod(lambda cls, data_seed=0: fake_data()))
    monkeypatch.setattr(qm9, "_prepare_shared_caches", lambda config: None)
    monkeypatch.setitem(PROFILES, "quick", {**PROFILES["quick"], **TINY})
    calls = {"train": [], "evaluate": []}
    real_train = molgan_train.train

    def counting_train(config, out_dir, **kw):
        calls["train"].append(str(out_dir))
        return real_train(config, out_dir, **kw)

    def counting_evaluate(run_dir, **kw):
        calls["evaluate"].append(str(run_dir))
        return fake_evaluate(run_dir, **kw)

    monkeypatch.setattr(molgan_train, "train", counting_train)
    monkeypatch.setattr(molgan_evaluate, "evaluate_run", counting_evaluate)
    return calls


def test_grid_runs_resumes_and_skips_finished_runs(tmp_path, tiny_grid, capsys):
    args = _args(tmp_path, no_plots=True)
    assert qm9.run(args) == 0
    grid = tmp_path / "grid"
    names = sorted(p.name for p in grid.iterdir() if p.is_dir())
    assert names == ["bernoulli-d4-s0", "bernoulli-d4-s1", "gaussian-d4-s0", "gaussian-d4-s1"]
    assert len(tiny_grid["train"]) == 4 and len(tiny_grid["evaluate"]) == 4
    table = (grid / "table.md").read_text()
    assert "| gaussian | 4 | 2 |" in table and "| bernoulli | 4 | 2 |" in table
    assert len((grid / "runs.csv").read_text().strip().splitlines()) == 5
    first = {n: json.loads((grid / n / "eval.json").read_text()) for n in names}

    # a second call trains nothing
    assert qm9.run(args) == 0
    assert len(tiny_grid["train"]) == 4 and len(tiny_grid["evaluate"]) == 4

    # an interrupted run (checkpoint at 2 of 6 iterations, no eval.json) is resumed, not restarted,
    # and ends with exactly the weights of the uninterrupted run
    victim = grid / "bernoulli-d4-s1"
    import torch

    full = molgan_train.load_checkpoint(victim)["generator"]
    for f in ("eval.json", "train_summary.json", "checkpoint.pt", "metrics.csv"):
        (victim / f).unlink()
    config = molgan_train.TrainConfig.from_dict(json.loads((victim / "config.json").read_text()))
    molgan_train.train(config, victim, resume=True, progress=False, stop_after=2)
    assert qm9.run(args) == 0
    assert tiny_grid["train"][-1] == str(victim) and len(tiny_grid["train"]) == 6
    again = molgan_train.load_checkpoint(victim)
    assert again["iteration"] == 6
    for k, v in full.items():
        assert torch.equal(v, again["generator"][k])
    assert json.loads((victim / "eval.json").read_text()) == first["bernoulli-d4-s1"]


def test_grid_refuses_a_run_made_with_other_settings(tmp_path, tiny_grid, capsys):
    assert qm9.run(_args(tmp_path, no_plots=True, seeds="0", latents="gaussian")) == 0
    assert qm9.run(_args(tmp_path, no_plots=True, seeds="0", latents="gaussian", iterations=8)) == 2
    err = capsys.readouterr().err
    assert "other settings (iterations 6 there, 8 asked)" in err  # says what differs, and how
    assert qm9.run(_args(tmp_path, latents="gaussian,klingon")) == 2
    assert "klingon" in capsys.readouterr().err


def test_grid_goes_on_with_another_thread_count(tmp_path, tiny_grid):
    # the thread count says how a run is executed, not what it is: not "other settings"
    victim = tmp_path / "grid" / "gaussian-d4-s0"
    assert qm9.run(_args(tmp_path, no_plots=True, seeds="0", latents="gaussian")) == 0
    for f in ("eval.json", "train_summary.json", "checkpoint.pt", "metrics.csv"):
        (victim / f).unlink()
    config = molgan_train.TrainConfig.from_dict(json.loads((victim / "config.json").read_text()))
    molgan_train.train(config, victim, resume=True, progress=False, stop_after=2)  # interrupted on 1 thread
    assert qm9.run(_args(tmp_path, no_plots=True, seeds="0", latents="gaussian", threads=2)) == 0
    assert json.loads((victim / "config.json").read_text())["threads"] == 2  # resumed on 2
    assert molgan_train.load_checkpoint(victim)["iteration"] == 6


def test_grid_plots(tmp_path, tiny_grid):
    pytest.importorskip("matplotlib")
    pytest.importorskip("rdkit")
    assert qm9.run(_args(tmp_path, seeds="0-1", latents="gaussian")) == 0
    grid = tmp_path / "grid"
    for name in ("fcd.png", "training_curves.png", "molecules-gaussian-d4.png"):
        assert (grid / name).stat().st_size > 1000
    # summary-only rewrites the tables from the finished runs without training
    (grid / "table.md").unlink()
    n_train = len(tiny_grid["train"])
    assert qm9.run(_args(tmp_path, seeds="0-1", latents="gaussian", summary_only=True, no_plots=True)) == 0
    assert (grid / "table.md").exists() and len(tiny_grid["train"]) == n_train


def test_quality_curves_are_read_and_plotted(tmp_path):
    pytest.importorskip("matplotlib")
    from qboson.molgan.runfiles import CURVE_FIELDS, write_rows

    rows = [{"iteration": i, "critic_step": 5 * i, "fraction": i / 20, "decode": d, "n": 100, "valid": 50,
             "valid_unique": 10 + i, "novel": 5, "fcd": 10.0 / i, "fcd_unique": 8.0 / i, "seconds": 1.0}
            for i in (10, 20) for d in ("argmax", "sample")]
    (tmp_path / "a").mkdir()
    write_rows(tmp_path / "a" / "curve.csv", CURVE_FIELDS, rows)
    (tmp_path / "b").mkdir()  # a run without a curve is skipped
    curve = qm9.read_quality_curve(tmp_path / "a")
    assert [(r["iteration"], r["decode"], r["fcd"]) for r in curve][:2] == [(10.0, "argmax", 1.0), (10.0, "sample", 1.0)]
    path = qm9.plot_quality_curves({"a": tmp_path / "a", "b": tmp_path / "b"}, tmp_path / "q.png")
    assert path is not None and path.stat().st_size > 1000
    assert qm9.plot_quality_curves({"b": tmp_path / "b"}, tmp_path / "none.png") is None


def test_experiment_cli_with_two_jobs_on_real_qm9(tmp_path, capsys):
    """`qboson experiment qm9 --jobs 2` end to end through the CLI: two worker processes train on QM9 and
    evaluate with FCD (a few iterations of the quick profile; the QM9 and FCD caches are built once)."""
    pytest.importorskip("rdkit")
    pytest.importorskip("fcd_torch")
    from qboson.cli import main

    out = tmp_path / "grid"
    argv = ["experiment", "qm9", "--profile", "quick", "--latents", "gaussian,bernoulli", "--seeds", "0",
            "--iterations", "4", "--eval-samples", "200", "--curve-points", "0", "--jobs", "2", "--no-plots",
            "--out", str(out)]
    assert main(argv) == 0
    table = (out / "table.md").read_text()
    assert "| gaussian | 16 | 1 |" in table and "| bernoulli | 16 | 1 |" in table
    for name in ("gaussian-d16-s0", "bernoulli-d16-s0"):
        result = json.loads((out / name / "eval.json").read_text())
        assert result["n"] == 200 and result["iteration"] == 4 and result["decode"] == "sample"
        assert set(result) >= {"fcd", "fcd_unique", "valid_unique", "novel"}
    assert main(argv) == 0  # finished runs are skipped
    assert "2 finished, 0 to do" in capsys.readouterr().err
