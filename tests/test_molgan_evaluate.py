"""`qboson evaluate RUN`: generation, decoding, metrics and files, with a small FCD reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("rdkit")
pytest.importorskip("fcd_torch")

from qboson.molgan import GraphData, TrainConfig, train  # noqa: E402
from qboson.molgan import evaluate as evaluation  # noqa: E402

SAMPLE = Path(__file__).parent / "data" / "qm9_sample.smi"
TINY = dict(latent="gaussian", dim=4, seed=1, iterations=10, batch_size=8, generator_widths=(8, 16),
            critic_conv_dims=(8,), critic_aggregation_dim=8, critic_mlp_dims=(8,), latent_bank_size=100,
            checkpoint_every=5, curve_points=0, eval_samples=300)


@pytest.fixture
def small_reference(monkeypatch):
    """QM9's split replaced by the 306 molecules of tests/data (train: 200, reference: the rest)."""
    from qboson import chem

    smiles = [s for s in SAMPLE.read_text().split() if s]
    reference = chem.FCDReference.from_smiles(smiles[200:])
    monkeypatch.setattr(evaluation, "_references",
                        lambda config, cache_dir, threads, fcd: (frozenset(smiles[:200]), reference if fcd else None))
    return reference


@pytest.fixture
def run(tmp_path):
    rng = np.random.default_rng(0)
    adj = np.triu(rng.choice(4, (60, 9, 9), p=[0.8, 0.2, 0.0, 0.0]), 1)
    data = GraphData(rng.choice(5, (60, 9), p=[0.1, 0.6, 0.1, 0.2, 0.0]), adj + adj.transpose(0, 2, 1))
    out = tmp_path / "run"
    train(TrainConfig(**TINY), out, data=data, progress=False)
    return out


def _cli(argv):
    from qboson.cli import main

    return main(argv)


def test_evaluate_cli_success_path(run, small_reference, capsys):
    assert _cli(["evaluate", str(run), "-n", "300", "--decode", "sample"]) == 0
    out = capsys.readouterr().out
    assert "valid & unique" in out and "FCD (unique)" in out and "decoding         sample" in out
    result = json.loads((run / "eval.json").read_text())
    assert result["decode"] == "sample" and result["n"] == 300 and result["iteration"] == 10
    assert set(result) >= {"valid", "valid_unique", "novel", "fcd", "fcd_unique", "n_fcd", "n_fcd_unique"}
    assert len((run / "samples.smi").read_text().splitlines()) == 300
    assert result["valid"] >= result["valid_unique"] >= result["novel"]
    if result["n_fcd_unique"] >= 2:
        assert result["fcd_unique"] >= 0


def test_evaluate_is_reproducible_and_decodings_differ(run, small_reference):
    a = evaluation.evaluate_run(run, decode="sample", write=False)
    b = evaluation.evaluate_run(run, decode="sample", write=False)
    c = evaluation.evaluate_run(run, decode="argmax", write=False)
    keys = ("valid", "valid_unique", "novel", "fcd", "fcd_unique")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert c["decode"] == "argmax"
    # argmax maps a whole region of latent space to one graph: never more distinct graphs than sampling here
    assert c["valid_unique"] <= a["valid_unique"] or c["valid"] != a["valid"]


def test_other_draws_are_independent_reproducible_and_kept_apart(run, small_reference, capsys, monkeypatch):
    seen = []  # (latents, decoding seed) of every scoring call
    real_score = evaluation._score
    monkeypatch.setattr(evaluation, "_score", lambda gen, z, decode, seed, *a: seen.append((z, seed))
                        or real_score(gen, z, decode, seed, *a))
    standard = evaluation.evaluate_run(run, decode="sample")
    eval_json = (run / "eval.json").read_text()
    assert standard["draw"] == 0
    assert _cli(["evaluate", str(run), "--decode", "sample", "--draw", "2"]) == 0
    assert "(draw 2)" in capsys.readouterr().out
    second = json.loads((run / "eval-draw2.json").read_text())
    assert (run / "eval.json").read_text() == eval_json  # the standard evaluation is not replaced
    assert len((run / "samples-draw2.smi").read_text().splitlines()) == 300
    assert second["draw"] == 2
    again = evaluation.evaluate_run(run, decode="sample", draw=2, write=False)
    (z0, s0), (z2, s2), (z2_again, s2_again) = seen
    assert s0 != s2 and not np.allclose(z0, z2)  # other latents, other decoding draws
    assert s2 == s2_again and np.array_equal(z2, z2_again)
    keys = ("valid", "valid_unique", "novel", "fcd", "fcd_unique")
    np.testing.assert_equal([again[k] for k in keys], [second[k] for k in keys])  # NaN FCD when nothing is valid
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="draw must be an integer"):
            evaluation.evaluate_run(run, draw=bad, write=False)
    assert _cli(["evaluate", str(run), "--draw", "-3"]) == 2
    assert "draw must be an integer" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the junk file below says protocol 4
def test_evaluate_cli_errors(tmp_path, capsys):
    assert _cli(["evaluate", str(tmp_path / "missing")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.pt").write_bytes(b"\x80\x04junk")
    assert _cli(["evaluate", str(tmp_path / "bad")]) == 2
    assert "corrupt checkpoint" in capsys.readouterr().err


def test_evaluate_refuses_a_thread_count_torch_cannot_take(run, capsys):
    # regression: --threads 99999999999 reached torch.set_num_threads ("Overflow when unpacking long")
    before = torch.get_num_threads()
    for bad in (0, 2**40, True):
        with pytest.raises(ValueError, match="threads must be an integer in"):
            evaluation.evaluate_run(run, threads=bad, write=False)
    assert _cli(["evaluate", str(run), "--threads", "99999999999"]) == 2
    assert "threads must be an integer in [1, 1024]" in capsys.readouterr().err
    assert torch.get_num_threads() == before


def test_evaluate_refuses_more_molecules_than_memory_holds(run, capsys):
    with pytest.raises(ValueError, match="evaluating 10,000,000,000,000 molecules would need .* GiB"):
        evaluation.evaluate_run(run, n_samples=10**13, write=False)
    assert _cli(["evaluate", str(run), "-n", str(10**13)]) == 2
    assert "more than this machine's memory" in capsys.readouterr().err


def test_fcd_against_as_many_training_molecules(run, small_reference, capsys, monkeypatch):
    from qboson import chem
    from qboson.molgan.batches import derived_seed

    # the tiny run makes no valid molecule: decode every graph to one of 40 QM9 molecules outside the training set
    held_out = [s for s in SAMPLE.read_text().split() if s][200:240]
    monkeypatch.setattr(chem, "graphs_to_smiles", lambda nodes, adjacency, strict=False:
                        [held_out[i % 40] for i in range(len(nodes))])
    evaluation.evaluate_run(run, n_samples=150, decode="sample")
    before = (run / "eval.json").read_bytes()
    default = json.loads(before)
    a = evaluation.evaluate_run(run, n_samples=150, decode="sample", fcd_reference="train-sample")
    assert (run / "eval.json").read_bytes() == before  # the standard evaluation is left alone
    saved = json.loads((run / "eval-train-sample.json").read_text())
    assert saved["fcd_reference"] == "qm9-train-sample" and default["fcd_reference"] == "qm9-test"
    keys = ("valid", "valid_unique", "novel", "n_fcd", "n_fcd_unique")
    assert [saved[k] for k in keys] == [default[k] for k in keys]  # the same molecules, another reference
    assert (a["n_fcd"], a["n_fcd_unique"]) == (150, 40) and a["fcd"] != default["fcd"]
    again = evaluation.evaluate_run(run, n_samples=150, decode="sample", fcd_reference="train-sample", write=False)
    assert (again["fcd"], again["fcd_unique"]) == (a["fcd"], a["fcd_unique"])
    # independently: the reference is the first n_fcd of a seeded permutation of the sorted training molecules
    train = sorted(set([s for s in SAMPLE.read_text().split() if s][:200]))
    order = np.random.default_rng(derived_seed(TINY["seed"], "fcd-reference")).permutation(len(train))
    reference = chem.FCDReference.from_smiles([train[i] for i in order[:a["n_fcd"]]])
    smiles = (run / "samples.smi").read_text().splitlines()
    by_hand = chem.evaluate_molecules(smiles, train_smiles=set(train), fcd_reference=reference)
    assert by_hand["fcd"] == pytest.approx(a["fcd"], rel=1e-6)
    with pytest.raises(ValueError, match="300 training molecules was asked for; the training set has 200"):
        evaluation.evaluate_run(run, n_samples=300, fcd_reference="train-sample", write=False)
    with pytest.raises(ValueError, match="unknown FCD reference 'validation'"):
        evaluation.evaluate_run(run, fcd_reference="validation", write=False)
    assert _cli(["evaluate", str(run), "-n", "150", "--decode", "sample", "--fcd-reference", "train-sample"]) == 0
    assert "as many QM9 training molecules" in capsys.readouterr().out
