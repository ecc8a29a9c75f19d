"""The MolGAN training loop: end to end on tiny random graphs, checkpoints, bit-for-bit resume."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qboson.molgan.config import PROFILES, TrainConfig, profile_config  # noqa: E402
from qboson.molgan.evaluate import generate_graphs  # noqa: E402
from qboson.molgan.train import GraphData, _real_batch, load_checkpoint, make_latent_bank, train  # noqa: E402

TINY = dict(latent="gaussian", dim=4, seed=3, iterations=30, batch_size=8, n_critic=5,
            generator_widths=(8, 16), critic_conv_dims=(8, 8), critic_aggregation_dim=8, critic_mlp_dims=(8,),
            latent_bank_size=100, log_every=5, checkpoint_every=10, lr_generator=1e-3, lr_critic=1e-3)


def _data(n: int = 50, seed: int = 0) -> GraphData:
    rng = np.random.default_rng(seed)
    adj = np.triu(rng.integers(0, 4, (n, 9, 9)), 1)
    return GraphData(rng.integers(0, 5, (n, 9)), adj + adj.transpose(0, 2, 1))


def _bank(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((100, 4)).astype(np.float32)


def _state(run_dir):
    ckpt = load_checkpoint(run_dir)
    return ckpt


def _assert_same_tensors(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same_tensors(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_tensors(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


def _metric_rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(f)]


def test_tiny_run_end_to_end(tmp_path):
    cfg = TrainConfig(**TINY)
    summary = train(cfg, tmp_path / "run", data=_data(), latent_bank=_bank(), progress=False)
    assert summary["finished"] and summary["iteration"] == 30 and summary["critic_step"] == 30
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"config.json", "checkpoint.pt", "metrics.csv", "latent_bank.npy",
                                               "train_summary.json"}
    assert TrainConfig.from_dict(json.loads((run / "config.json").read_text())) == cfg
    rows = _metric_rows(run)
    assert [int(r["iteration"]) for r in rows] == [5, 10, 15, 20, 25, 30]
    assert all(np.isfinite(float(r["critic_loss"])) and np.isfinite(float(r["generator_loss"])) for r in rows)
    ckpt = load_checkpoint(run)
    assert TrainConfig.from_dict(ckpt["config"]) == cfg and ckpt["iteration"] == 30
    # the generator trained: its weights moved away from the initialisation of a 0-step run
    cfg0 = cfg.replace(iterations=1)
    train(cfg0, tmp_path / "zero", data=_data(), latent_bank=_bank(), progress=False, stop_after=0)
    w0 = load_checkpoint(tmp_path / "zero")["generator"]["edge_head.weight"]
    assert not torch.equal(w0, ckpt["generator"]["edge_head.weight"])
    # the generator decodes to integer graphs the chemistry layer can read
    from qboson.molgan.evaluate import load_generator

    gen, config, info = load_generator(run)
    nodes, adj = generate_graphs(gen, _bank()[:10], batch_size=4)
    assert nodes.shape == (10, 9) and adj.shape == (10, 9, 9) and nodes.dtype == np.int64
    assert (adj == adj.transpose(0, 2, 1)).all() and (np.diagonal(adj, axis1=1, axis2=2) == 0).all()


@pytest.mark.parametrize("unit,stop", [("critic", 13), ("generator", 12)])
def test_resume_gives_exactly_the_uninterrupted_weights(tmp_path, unit, stop):
    cfg = TrainConfig(**{**TINY, "iteration_unit": unit, "iterations": 30 if unit == "critic" else 6,
                         "log_every": 5 if unit == "critic" else 1, "checkpoint_every": 10 if unit == "critic" else 2,
                         "output_mode": "gumbel", "permute_prob": 0.5})
    train(cfg, tmp_path / "a", data=_data(), latent_bank=_bank(), progress=False)
    part = train(cfg, tmp_path / "b", data=_data(), latent_bank=_bank(), progress=False, stop_after=stop)
    assert not part["finished"] and part["critic_step"] == stop
    # a fresh process would rebuild everything from the directory: pass no bank (it is read from the run)
    train(cfg, tmp_path / "b", data=_data(), progress=False, resume=True)
    a, b = _state(tmp_path / "a"), _state(tmp_path / "b")
    for key in ("generator", "critic", "opt_generator", "opt_critic", "real_stream", "latent_stream", "augment_rng",
                "noise_rng", "critic_step", "iteration", "config"):
        _assert_same_tensors(a[key], b[key])
    assert _metric_rows(tmp_path / "a") == _metric_rows(tmp_path / "b")


def test_resume_refuses_other_settings_and_existing_runs(tmp_path):
    cfg = TrainConfig(**TINY)
    train(cfg, tmp_path / "r", data=_data(), latent_bank=_bank(), progress=False, stop_after=5)
    with pytest.raises(FileExistsError, match="resume"):
        train(cfg, tmp_path / "r", data=_data(), latent_bank=_bank(), progress=False)
    with pytest.raises(ValueError, match="lr_critic"):
        train(cfg.replace(lr_critic=0.5), tmp_path / "r", data=_data(), progress=False, resume=True)
    # extending the iteration count is allowed
    summary = train(cfg.replace(iterations=12), tmp_path / "r", data=_data(), progress=False, resume=True)
    assert summary["finished"] and summary["iteration"] == 12


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")


def test_permutation_augmentation_permutes_whole_graphs():
    data = _data(20, seed=1)
    idx = np.arange(20)
    e, x = _real_batch(data, idx, 1.0, np.random.default_rng(0))
    adj, nodes = e.argmax(-1).numpy(), x.argmax(-1).numpy()
    changed = 0
    for b in range(20):
        # the permuted graph is isomorphic: same atom multiset, same bond multiset per atom-pair types
        assert sorted(nodes[b]) == sorted(data.nodes[b])
        assert (adj[b] == adj[b].T).all()
        pairs = sorted((min(nodes[b][i], nodes[b][j]), max(nodes[b][i], nodes[b][j]), adj[b][i, j])
                       for i in range(9) for j in range(i + 1, 9))
        ref = sorted((min(data.nodes[b][i], data.nodes[b][j]), max(data.nodes[b][i], data.nodes[b][j]),
                      data.adjacency[b][i, j]) for i in range(9) for j in range(i + 1, 9))
        assert pairs == ref
        changed += not np.array_equal(nodes[b], data.nodes[b])
    assert changed > 15
    e0, x0 = _real_batch(data, idx, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(x0.argmax(-1).numpy(), data.nodes)


def test_config_validation_and_profiles():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="iteration_unit"):
        TrainConfig(iteration_unit="epoch")
    with pytest.raises(ValueError, match="permute_prob"):
        TrainConfig(permute_prob=1.5)
    with pytest.raises(ValueError, match="non-decreasing"):
        TrainConfig(generator_widths=(64, 32))
    with pytest.raises(ValueError, match="unknown config keys"):
        TrainConfig.from_dict({"learning_rate": 1})
    with pytest.raises(ValueError, match="unknown profile"):
        profile_config("fast")
    paper = profile_config("paper")
    assert (paper.iterations, paper.batch_size, paper.lr_generator, paper.lr_critic) == (20_000, 256, 1e-4, 1e-4)
    assert (paper.n_critic, paper.gp_weight, paper.permute_prob) == (5, 10.0, 0.3)
    assert paper.generator_widths == (64, 176, 288, 400, 512)
    assert profile_config("quick").profile == "quick" and set(PROFILES) == {"quick", "paper"}
    assert TrainConfig(iterations=10, iteration_unit="generator").critic_steps == 50
    assert TrainConfig.from_dict(json.loads(paper.to_json())) == paper


def test_latent_bank_from_the_latent_zoo():
    bank = make_latent_bank(TrainConfig(latent="bernoulli", dim=6, latent_bank_size=500))
    assert bank.shape == (500, 6) and bank.dtype == np.float32
    assert set(np.unique(bank)) == {-0.5, 0.5}  # centred Bernoulli(1/2)
    with pytest.raises(ValueError, match="unknown latent"):
        make_latent_bank(TrainConfig(latent="klingon", latent_bank_size=10))


def test_training_from_a_pregenerated_qboson_bank(tmp_path):
    from qboson.latent import generate_bank, make

    generate_bank(make("quantum", dim=6, seed=2), 300, tmp_path / "bank")
    cfg = TrainConfig(**{**TINY, "latent": "quantum", "dim": 6, "latent_bank_size": 1000,
                         "latent_bank_path": str(tmp_path / "bank")})
    rows = make_latent_bank(cfg)  # the whole bank (300 < 1000 rows), normalised as recorded
    from qboson.latent import Bank

    np.testing.assert_array_equal(rows, Bank(tmp_path / "bank").rows(0, 300))
    summary = train(cfg, tmp_path / "run", data=_data(), progress=False)
    assert summary["finished"]
    np.testing.assert_array_equal(np.load(tmp_path / "run" / "latent_bank.npy"), rows)
    with pytest.raises(ValueError, match="holds 'quantum' latents of dim 6"):
        make_latent_bank(cfg.replace(latent="photonic"))


def test_bad_training_data(tmp_path):
    with pytest.raises(ValueError, match="bond classes"):
        GraphData(np.zeros((2, 9), int), np.full((2, 9, 9), 7))
    with pytest.raises(ValueError, match="expected nodes"):
        GraphData(np.zeros((2, 9), int), np.zeros((2, 9, 8), int))
    cfg = TrainConfig(**{**TINY, "batch_size": 64})
    with pytest.raises(ValueError, match="smaller batch"):
        train(cfg, tmp_path / "run", data=_data(10), latent_bank=_bank(), progress=False)


def _cli(argv):
    import argparse

    from qboson.molgan import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_train_resume_and_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(GraphData, "qm9_train", classmethod(lambda cls, data_seed=0: _data()))
    small = {k: v for k, v in TINY.items() if k not in ("latent", "dim", "seed", "iterations")}
    (tmp_path / "cfg.json").write_text(json.dumps(small))
    base = ["train", "--latent", "gaussian", "--dim", "4", "--seed", "1", "--out", str(tmp_path / "run"),
            "--config", str(tmp_path / "cfg.json"), "--no-progress", "--profile", "quick"]
    assert _cli(base + ["--iterations", "10"]) == 0
    assert "done: 10 iterations" in capsys.readouterr().out
    assert _cli(base + ["--iterations", "10"]) == 2  # exists: needs --resume
    assert "--resume" in capsys.readouterr().err
    assert _cli(base + ["--iterations", "15", "--resume"]) == 0
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["iteration"] == 15 and ckpt["config"]["profile"] == "quick" and ckpt["config"]["seed"] == 1
    assert _cli(["train", "--latent", "klingon", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "klingon" in capsys.readouterr().err
    assert _cli(["evaluate", str(tmp_path / "missing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_train_and_evaluate_on_qm9(tmp_path):
    """A few iterations on real QM9, then `qboson evaluate` with FCD (needs the chem extra; ~1-2 min)."""
    pytest.importorskip("rdkit")
    pytest.importorskip("fcd_torch")
    run = tmp_path / "q"
    assert _cli(["train", "--latent", "quantum", "--dim", "16", "--seed", "0", "--out", str(run), "--profile",
                 "quick", "--iterations", "20", "--no-progress"]) == 0
    from qboson.molgan.evaluate import evaluate_run

    result = evaluate_run(run, n_samples=300)
    assert result["n"] == 300 and 0 <= result["valid"] <= result["valid_loose"] <= 300
    assert result["valid_unique"] <= result["valid"] and result["novel"] <= result["valid_unique"]
    assert (result["fcd"] is None) or result["fcd"] != result["fcd"] or result["fcd"] > 0
    lines = (run / "samples.smi").read_text().splitlines()
    assert len(lines) == 300
    assert json.loads((run / "eval.json").read_text())["n"] == 300


def test_resume_with_a_damaged_latent_bank_is_a_clear_error(tmp_path):
    cfg = TrainConfig(**TINY)
    train(cfg, tmp_path / "r", data=_data(), latent_bank=_bank(), progress=False, stop_after=5)
    (tmp_path / "r" / "latent_bank.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="latent bank"):
        train(cfg, tmp_path / "r", data=_data(), progress=False, resume=True)
