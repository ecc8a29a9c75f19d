"""The MolGAN training loop: end to end on tiny random graphs, checkpoints, bit-for-bit resume."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qboson.molgan.config import PROFILES, TrainConfig, profile_config  # noqa: E402
from qboson.molgan.evaluate import generate_graphs  # noqa: E402
from qboson.molgan import GraphData, load_checkpoint, train  # noqa: E402
from qboson.molgan.batches import derived_seed, make_latent_bank, real_batch  # noqa: E402

TINY = dict(latent="gaussian", dim=4, seed=3, iterations=30, batch_size=8, n_critic=5,
            generator_widths=(8, 16), critic_conv_dims=(8, 8), critic_aggregation_dim=8, critic_mlp_dims=(8,),
            latent_bank_size=100, log_every=5, checkpoint_every=10, lr_generator=1e-3, lr_critic=1e-3,
            curve_points=0)


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
    e, x = real_batch(data, idx, 1.0, np.random.default_rng(0))
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
    e0, x0 = real_batch(data, idx, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(x0.argmax(-1).numpy(), data.nodes)


def test_real_batches_of_several_runs_equal_their_single_batches():
    from qboson.molgan.batches import real_batches

    data = _data(30, seed=2)
    idx = [np.arange(10), np.arange(10, 20)[::-1], np.arange(5, 15)]
    e, x = real_batches(data, idx, 0.5, [np.random.default_rng(s) for s in range(3)])
    assert e.shape == (3, 10, 9, 9, data.n_bond_types) and x.shape == (3, 10, 9, data.n_atom_types)
    for k in range(3):
        ek, xk = real_batch(data, idx[k], 0.5, np.random.default_rng(k))
        assert torch.equal(e[k], ek) and torch.equal(x[k], xk)
    with pytest.raises(ValueError, match="one random generator per run and equal batches"):
        real_batches(data, idx, 0.5, [np.random.default_rng(0)])
    with pytest.raises(ValueError, match="equal batches"):
        real_batches(data, [np.arange(10), np.arange(4)], 0.5, [np.random.default_rng(0)] * 2)


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
    # the open choices: the reading that came closest to Table II (docs/qm9.md, reading B)
    assert (paper.betas, paper.output_mode, paper.init, paper.decode) == ((0.0, 0.9), "gumbel", "xavier", "sample")
    assert (paper.iteration_unit, paper.critic_steps) == ("generator", 100_000)  # 20,000 generator updates
    assert (TrainConfig().betas, TrainConfig().output_mode) == ((0.5, 0.9), "softmax")  # reading A stays reachable
    assert profile_config("quick").profile == "quick" and set(PROFILES) == {"quick", "paper"}
    # the quick profile is the paper's reading on a shorter, smaller-batch schedule (docs/qm9.md)
    quick = profile_config("quick")
    same = ("betas", "output_mode", "init", "decode", "n_critic", "gp_weight", "permute_prob", "generator_widths",
            "latent_bank_size", "precision")
    assert {k: getattr(quick, k) for k in same} == {k: getattr(paper, k) for k in same}
    assert (quick.critic_steps, quick.batch_size, quick.lr_generator) == (8_000, 128, 2e-4)
    assert TrainConfig(iterations=10, iteration_unit="generator").critic_steps == 50
    assert TrainConfig.from_dict(json.loads(paper.to_json())) == paper


def test_derived_seeds_differ_for_every_purpose():
    # regression: only the first 4 bytes of a purpose counted, so "decode-2" got the seed of "decode"
    purposes = ["decode", "decode-1", "decode-2", "eval", "eval-1", "eval-2", "ab", "ab\0", "ab\0\0\0\0", "",
                "x" * 40, "x" * 41]
    seeds = [derived_seed(s, p) for s in (0, 1, 2**40) for p in purposes]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < 2**63 for s in seeds)


def test_derived_seeds_of_finished_runs_are_unchanged():
    # the purposes in use before every byte counted keep their seeds: the old formula, written out
    def earlier(seed, purpose):
        tag = int.from_bytes(purpose.encode(), "little") % (2**32)
        return int(np.random.SeedSequence([seed, tag]).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)

    for purpose in ("init", "data-order", "latent-order", "augment", "noise", "latent-bank", "eval", "decode",
                    "curve", "curve-decode"):
        for seed in (0, 7, 2**33):
            assert derived_seed(seed, purpose) == earlier(seed, purpose)


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


def test_cli_resume_takes_threads_and_refuses_other_settings(tmp_path, monkeypatch, capsys):
    # regression: on --resume every flag but --iterations was silently ignored (a run asked to
    # continue on 2 threads kept 1; one asked for another learning rate kept its own)
    monkeypatch.setattr(GraphData, "qm9_train", classmethod(lambda cls, data_seed=0: _data()))
    small = {k: v for k, v in TINY.items() if k not in ("latent", "dim", "seed", "iterations", "threads")}
    (tmp_path / "cfg.json").write_text(json.dumps(small))
    base = ["train", "--latent", "gaussian", "--dim", "4", "--out", str(tmp_path / "run"),
            "--config", str(tmp_path / "cfg.json"), "--no-progress", "--profile", "quick"]
    assert _cli(base + ["--iterations", "10"]) == 0
    capsys.readouterr()
    for extra, named in ([["--lr", "0.5"], "lr_generator"], [["--seed", "3"], "seed"],
                         [["--critic-input", "gumbel_hard"], "output_mode"]):
        assert _cli(base + ["--iterations", "12", "--resume"] + extra) == 2
        err = capsys.readouterr().err
        assert named in err and "--threads" in err
        assert load_checkpoint(tmp_path / "run")["iteration"] == 10  # nothing was trained
    assert _cli(["train", "--latent", "bernoulli", "--out", str(tmp_path / "run"), "--resume", "--no-progress"]) == 2
    assert "latent 'bernoulli' (the run has 'gaussian')" in capsys.readouterr().err
    assert _cli(base + ["--iterations", "12", "--resume", "--threads", "2"]) == 0
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["iteration"] == 12 and ckpt["config"]["threads"] == 2 and ckpt["config"]["lr_critic"] == TINY["lr_critic"]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["threads"] == 2


def test_resume_may_change_the_checkpoint_interval_and_stays_bit_for_bit(tmp_path):
    # regression: checkpoint_every counted as a training setting, so a run could not be resumed
    # with checkpoints more (or less) often, though checkpoints only read the state they save
    cfg = TrainConfig(**{**TINY, "output_mode": "gumbel"})
    train(cfg, tmp_path / "a", data=_data(), latent_bank=_bank(), progress=False)
    train(cfg, tmp_path / "b", data=_data(), latent_bank=_bank(), progress=False, stop_after=13)
    summary = train(cfg.replace(checkpoint_every=3), tmp_path / "b", data=_data(), progress=False, resume=True)
    assert summary["finished"]
    a, b = _state(tmp_path / "a"), _state(tmp_path / "b")
    assert b["config"]["checkpoint_every"] == 3
    for key in ("generator", "critic", "opt_generator", "opt_critic", "real_stream", "latent_stream", "augment_rng",
                "noise_rng", "critic_step", "iteration"):
        _assert_same_tensors(a[key], b[key])
    assert _metric_rows(tmp_path / "a") == _metric_rows(tmp_path / "b")


def test_cli_resume_takes_the_checkpoint_interval(tmp_path, monkeypatch):
    monkeypatch.setattr(GraphData, "qm9_train", classmethod(lambda cls, data_seed=0: _data()))
    small = {k: v for k, v in TINY.items() if k not in ("latent", "dim", "seed", "iterations", "threads")}
    (tmp_path / "cfg.json").write_text(json.dumps(small))
    base = ["train", "--latent", "gaussian", "--dim", "4", "--out", str(tmp_path / "run"),
            "--config", str(tmp_path / "cfg.json"), "--no-progress"]
    assert _cli(base + ["--iterations", "10"]) == 0
    assert _cli(base + ["--iterations", "12", "--resume", "--checkpoint-every", "4"]) == 0
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["iteration"] == 12 and ckpt["config"]["checkpoint_every"] == 4
    assert ckpt["config"]["threads"] == TINY.get("threads", 1)


def test_resume_may_change_the_thread_count(tmp_path):
    cfg = TrainConfig(**TINY)
    train(cfg, tmp_path / "r", data=_data(), latent_bank=_bank(), progress=False, stop_after=5)
    summary = train(cfg.replace(threads=2), tmp_path / "r", data=_data(), progress=False, resume=True)
    assert summary["finished"] and load_checkpoint(tmp_path / "r")["config"]["threads"] == 2


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


# --------------------------------------------------------------------------- readings of the paper


def test_curve_points_are_recorded_at_even_fractions_and_kept_on_resume(tmp_path):
    calls = []

    def evaluator(gen, iteration, step):
        calls.append(iteration)
        z = torch.zeros(3, 4)
        return [{"decode": "argmax", "n": 3, "valid": int(gen(z)[1].argmax(-1).sum()), "valid_unique": 1,
                 "novel": 0, "fcd": 1.5, "fcd_unique": 1.25, "seconds": 0.0}]

    cfg = TrainConfig(**{**TINY, "iterations": 20, "curve_points": 4})
    train(cfg, tmp_path / "full", data=_data(), latent_bank=_bank(), progress=False, evaluator=evaluator)
    assert calls == [5, 10, 15, 20]
    with open(tmp_path / "full" / "curve.csv", newline="") as f:
        full = list(csv.DictReader(f))
    assert [r["iteration"] for r in full] == ["5", "10", "15", "20"]
    assert [r["fraction"] for r in full] == ["0.25", "0.5", "0.75", "1.0"]

    calls.clear()
    train(cfg, tmp_path / "cut", data=_data(), latent_bank=_bank(), progress=False, evaluator=evaluator,
          stop_after=12)
    train(cfg, tmp_path / "cut", resume=True, data=_data(), progress=False, evaluator=evaluator)
    assert calls == [5, 10, 15, 20]
    with open(tmp_path / "cut" / "curve.csv", newline="") as f:
        assert list(csv.DictReader(f)) == full


def test_curve_schedule_for_generator_iterations():
    from qboson.molgan.trainer import _curve_schedule

    cfg = TrainConfig(**{**TINY, "iterations": 20_000, "iteration_unit": "generator", "curve_points": 10})
    assert sorted(_curve_schedule(cfg)) == list(range(2000, 20_001, 2000))
    assert _curve_schedule(cfg.replace(curve_points=0)) == set()
    assert sorted(_curve_schedule(cfg.replace(iterations=3, curve_points=10))) == [1, 2, 3]


def test_decode_sample_is_seeded_and_follows_the_probabilities():
    from qboson.molgan.model import decode_graphs

    g = torch.Generator().manual_seed(0)
    edges = torch.randn(500, 9, 9, 4, generator=g)
    nodes = torch.randn(500, 9, 5, generator=g)
    a1 = decode_graphs(edges, nodes, "sample", torch.Generator().manual_seed(7))
    a2 = decode_graphs(edges, nodes, "sample", torch.Generator().manual_seed(7))
    b = decode_graphs(edges, nodes, "sample", torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(a1, a2))
    assert not torch.equal(a1[0], b[0])
    atoms, adj = a1
    assert torch.equal(adj, adj.transpose(1, 2)) and int(adj.diagonal(dim1=1, dim2=2).abs().sum()) == 0
    # frequency of each atom class matches the softmax probabilities (4,500 draws)
    p = torch.softmax(nodes.double(), -1).mean((0, 1))
    freq = torch.bincount(atoms.flatten(), minlength=5).double() / atoms.numel()
    assert torch.allclose(freq, p, atol=0.02)
    # a very confident generator samples its argmax
    def confident(logits):
        return logits + 60.0 * torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1])

    sharp = decode_graphs(confident(edges), confident(nodes), "sample", torch.Generator().manual_seed(1))
    hard = decode_graphs(edges, nodes, "argmax")
    assert torch.equal(sharp[0], hard[0])
    upper = torch.triu(torch.ones(9, 9, dtype=torch.bool), 1)
    assert torch.equal(sharp[1][:, upper], hard[1][:, upper])
    with pytest.raises(ValueError, match="decode"):
        decode_graphs(edges, nodes, "beam")


def test_generate_graphs_decodings(tmp_path):
    from qboson.molgan.trainer import build_models

    gen, _ = build_models(TrainConfig(**TINY))
    z = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    n1, a1 = generate_graphs(gen, z, decode="sample", seed=3)
    n2, a2 = generate_graphs(gen, z, decode="sample", seed=3)
    assert n1.shape == (50, 9) and a1.shape == (50, 9, 9)
    np.testing.assert_array_equal(n1, n2)
    np.testing.assert_array_equal(a1, a2)
    n3, _ = generate_graphs(gen, z, decode="sample", seed=4)
    assert not np.array_equal(n1, n3)
    with pytest.raises(ValueError, match="decode"):
        generate_graphs(gen, z, decode="top-k")


def test_xavier_init():
    from qboson.molgan.trainer import build_models

    torch.manual_seed(0)
    gen, critic = build_models(TrainConfig(**{**TINY, "init": "xavier"}))
    for module in (gen, critic):
        for layer in module.modules():
            if isinstance(layer, torch.nn.Linear):
                fan_out, fan_in = layer.weight.shape
                bound = (6.0 / (fan_in + fan_out)) ** 0.5
                largest = float(layer.weight.detach().abs().max())
                assert 0.5 * bound < largest <= bound
                if layer.bias is not None:
                    assert float(layer.bias.detach().abs().max()) == 0.0
    torch.manual_seed(0)
    default, _ = build_models(TrainConfig(**TINY))
    assert float(default.z_maps[0].bias.detach().abs().max()) > 0  # PyTorch's default keeps random biases
    with pytest.raises(ValueError, match="init"):
        TrainConfig(**{**TINY, "init": "orthogonal"})


def test_new_settings_are_validated():
    for bad in ({"decode": "greedy"}, {"curve_points": -1}, {"betas": (1.0, 0.9)}, {"betas": (0.5,)},
                {"curve_samples": 0}, {"output_mode": "hard"}):
        with pytest.raises(ValueError):
            TrainConfig(**{**TINY, **bad})


def test_a_huge_thread_count_is_a_clear_error():
    # regression: 2**40 threads reached torch.set_num_threads and failed there ("Overflow when unpacking long")
    with pytest.raises(ValueError, match="threads must be at most 1024"):
        TrainConfig(**{**TINY, "threads": 2**40})
    assert TrainConfig(**{**TINY, "threads": 1024}).threads == 1024


def test_device_names():
    from qboson.molgan.trainer import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    for bad in ("tpu", "gpu0", ""):
        with pytest.raises(ValueError, match="device"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_cli_flags_reach_the_config(tmp_path, monkeypatch):
    monkeypatch.setattr(GraphData, "qm9_train", classmethod(lambda cls, data_seed=0: _data()))
    small = {k: v for k, v in TINY.items() if k not in ("latent", "dim", "seed", "iterations", "batch_size",
                                                        "lr_generator", "lr_critic")}
    (tmp_path / "cfg.json").write_text(json.dumps(small))
    argv = ["train", "--latent", "gaussian", "--dim", "4", "--out", str(tmp_path / "run"), "--config",
            str(tmp_path / "cfg.json"), "--no-progress", "--iterations", "2", "--iteration-unit", "generator",
            "--batch-size", "4", "--lr", "3e-4", "--betas", "0,0.9", "--critic-input", "gumbel_hard",
            "--init", "xavier", "--decode", "sample", "--curve-points", "0"]
    assert _cli(argv) == 0
    cfg = load_checkpoint(tmp_path / "run")["config"]
    assert (cfg["iteration_unit"], cfg["batch_size"], cfg["lr_generator"], cfg["lr_critic"]) == ("generator", 4,
                                                                                                  3e-4, 3e-4)
    assert (cfg["betas"], cfg["output_mode"], cfg["init"], cfg["decode"]) == ([0.0, 0.9], "gumbel_hard", "xavier",
                                                                              "sample")
    assert load_checkpoint(tmp_path / "run")["critic_step"] == 10


def test_cli_config_file_may_be_a_runs_own_config(tmp_path, monkeypatch, capsys):
    # regression: a run's config.json (which names its profile, dim and seed) given to --config
    # failed with "multiple values for argument 'profile'", and --dim/--seed defaults replaced its values
    monkeypatch.setattr(GraphData, "qm9_train", classmethod(lambda cls, data_seed=0: _data()))
    small = {k: v for k, v in TINY.items() if k not in ("latent", "dim", "seed", "iterations")}
    (tmp_path / "cfg.json").write_text(json.dumps(small))
    first = ["train", "--latent", "gaussian", "--dim", "4", "--seed", "3", "--profile", "quick", "--out",
             str(tmp_path / "run"), "--config", str(tmp_path / "cfg.json"), "--no-progress", "--iterations", "2"]
    assert _cli(first) == 0
    again = ["train", "--latent", "gaussian", "--out", str(tmp_path / "again"), "--no-progress",
             "--config", str(tmp_path / "run" / "config.json")]
    assert _cli(again) == 0
    assert load_checkpoint(tmp_path / "again")["config"] == load_checkpoint(tmp_path / "run")["config"]
    # flags given still win over the file
    assert _cli(again[:4] + [str(tmp_path / "paper")] + again[5:] + ["--profile", "paper", "--seed", "5"]) == 0
    cfg = load_checkpoint(tmp_path / "paper")["config"]
    assert (cfg["profile"], cfg["seed"], cfg["dim"]) == ("paper", 5, 4)

    # an unknown profile named in the file is a clear error, not a crash
    (tmp_path / "bad.json").write_text(json.dumps({"profile": "turbo"}))
    assert _cli(["train", "--latent", "gaussian", "--out", str(tmp_path / "bad"), "--no-progress",
                 "--config", str(tmp_path / "bad.json")]) == 2
    assert "unknown profile 'turbo'" in capsys.readouterr().err


def test_cli_betas_must_be_two_numbers(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _cli(["train", "--latent", "gaussian", "--out", str(tmp_path / "x"), "--betas", "0.9"])
    assert "B1,B2" in capsys.readouterr().err


def test_cli_train_from_a_latent_bank(tmp_path, monkeypatch):
    from qboson.latent import Bank, generate_bank, make

    monkeypatch.setattr(GraphData, "qm9_train", classmethod(lambda cls, data_seed=0: _data()))
    generate_bank(make("gaussian", dim=4, seed=2), 300, tmp_path / "bank")
    small = {k: v for k, v in TINY.items() if k not in ("latent", "dim", "seed", "iterations")}
    (tmp_path / "cfg.json").write_text(json.dumps(small))
    argv = ["train", "--latent", "gaussian", "--dim", "4", "--out", str(tmp_path / "run"), "--config",
            str(tmp_path / "cfg.json"), "--no-progress", "--iterations", "3", "--latent-bank", str(tmp_path / "bank")]
    assert _cli(argv) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "run" / "latent_bank.npy"),
                                  Bank(tmp_path / "bank").rows(0, 100))
    # regression: flags left unset no longer replace the --config file's values with the profile's
    assert load_checkpoint(tmp_path / "run")["config"]["batch_size"] == 8
    argv[argv.index("--latent") + 1] = "bernoulli"
    argv[argv.index("--out") + 1] = str(tmp_path / "other")
    assert _cli(argv) == 2  # the bank holds gaussian latents


@pytest.mark.parametrize("field, words", [("eval_samples", "evaluating 10,000,000,000,000 molecules"),
                                          ("latent_bank_size", "a latent bank of 10,000,000,000,000 rows")])
def test_a_run_that_cannot_fit_in_memory_is_refused_before_training(tmp_path, field, words):
    # regression: eval_samples=10**13 trained to the end and failed only at evaluation; a bank that
    # large was drawn block by block until memory ran out
    with pytest.raises(ValueError, match=f"{words} would need .* GiB, more than this machine's memory"):
        train(TrainConfig(**{**TINY, field: 10**13}), tmp_path / "run", data=_data(), progress=False)
    assert not (tmp_path / "run").exists()  # refused before the run folder is made
