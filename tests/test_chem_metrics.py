"""Tests of qboson.chem.metrics on hand-made molecule lists."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("rdkit")

from qboson.chem import evaluate_molecules, validity  # noqa: E402
from qboson.chem import metrics as metrics_module  # noqa: E402


@pytest.mark.parametrize(
    ("smiles", "strict", "loose"),
    [
        ("CCO", True, True),
        ("OCC", True, True),
        ("c1ccccc1", True, True),
        ("C1=CC=CC=C1", True, True),
        ("*C", False, True),  # dummy atom
        ("*.*.CCO", False, True),  # MolGAN's padding-as-dummy trap
        ("CC.O", False, True),  # two fragments
        ("C(C)(C)(C)(C)C", False, False),  # five-valent carbon
        ("c1cccc1", False, False),  # cannot be kekulised
        ("C1CC", False, False),  # unclosed ring
        ("xyz", False, False),
        ("", False, False),
        ("   ", False, False),
        (None, False, False),
        (42, False, False),
    ],
)
def test_validity_of_single_molecules(smiles, strict: bool, loose: bool) -> None:
    got_strict, got_loose, canonical = validity(smiles)
    assert (got_strict, got_loose) == (strict, loose)
    assert (canonical is None) == (not loose)


def test_counts_on_a_hand_made_list() -> None:
    generated = [
        "CCO", "OCC",  # one molecule twice (different atom order)
        "c1ccccc1", "C1=CC=CC=C1",  # one molecule twice (aromatic / Kekulé)
        "CC#N",  # valid, in the training set
        "CC(=O)O",  # valid, novel
        "*C", "CC.O",  # loosely valid only
        "C(C)(C)(C)(C)C", "nonsense", None, "",  # invalid
    ]
    train = {"CC#N", "CCO"}
    result = evaluate_molecules(generated, train_smiles=train, fcd_reference=None)
    assert result == {
        "n": 12,
        "valid": 6,
        "valid_loose": 8,
        "valid_unique": 4,  # CCO, c1ccccc1, CC#N, CC(=O)O
        "novel": 2,  # c1ccccc1, CC(=O)O
        "fcd": None,
        "n_fcd": 0,
        "fcd_unique": None,
        "n_fcd_unique": 0,
    }


def test_empty_and_all_invalid_lists() -> None:
    assert evaluate_molecules([], train_smiles=set(), fcd_reference=None)["n"] == 0
    result = evaluate_molecules([None, "(", "*"], train_smiles=set(), fcd_reference=None)
    assert (result["valid"], result["valid_loose"], result["valid_unique"], result["novel"]) == (0, 1, 0, 0)


def test_train_smiles_may_be_any_iterable() -> None:
    result = evaluate_molecules(["CCO", "CCN"], train_smiles=["CCO"], fcd_reference=None)  # type: ignore[arg-type]
    assert result["novel"] == 1


def test_which_molecules_enter_fcd(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    scored: list[list[float]] = []

    def fake_activations(smiles, *, threads=1):
        seen.append(list(smiles))
        return np.arange(len(smiles), dtype=np.float32)[:, None] * np.ones((1, 512), np.float32)

    def fake_frechet(acts, reference):
        scored.append([float(a) for a in acts[:, 0]])
        return len(acts) + 0.25 if len(acts) >= 2 else math.nan

    monkeypatch.setattr(metrics_module, "chemnet_activations", fake_activations)
    monkeypatch.setattr(metrics_module, "_frechet", fake_frechet)
    reference = object()
    generated = ["OCC", None, "*C", "CCO", "CC.O", "C1=CC=CC=C1", "bad", "CN"]
    result = evaluate_molecules(generated, train_smiles=set(), fcd_reference=reference)  # type: ignore[arg-type]
    # strictly valid only, canonical, duplicates kept, in input order
    assert seen[-1] == ["CCO", "CCO", "c1ccccc1", "CN"]
    assert result["fcd"] == 4.25 and result["n_fcd"] == 4
    # the unique FCD takes each distinct molecule once (its first occurrence)
    assert scored[-1] == [0.0, 2.0, 3.0] and result["fcd_unique"] == 3.25 and result["n_fcd_unique"] == 3
    result = evaluate_molecules(generated, train_smiles=set(), fcd_reference=reference, n_fcd=3)  # type: ignore[arg-type]
    assert seen[-1] == ["CCO", "CCO", "c1ccccc1"] and result["n_fcd"] == 3 and result["n_fcd_unique"] == 2
    result = evaluate_molecules(["CCO", "*"], train_smiles=set(), fcd_reference=reference)  # type: ignore[arg-type]
    assert math.isnan(result["fcd"]) and result["n_fcd"] == 1 and math.isnan(result["fcd_unique"])


@pytest.mark.parametrize("n_fcd", [-1, 1.5, True])
def test_bad_n_fcd(n_fcd) -> None:
    with pytest.raises(ValueError, match="n_fcd"):
        evaluate_molecules(["CCO"], train_smiles=set(), fcd_reference=None, n_fcd=n_fcd)


def test_a_reference_of_matched_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from qboson.chem.chemnet import FCDReference, frechet_distance

    def fake_activations(smiles, *, threads=1):
        return np.array([[len(s), s.count("C")] + [0.0] * 510 for s in smiles], np.float32) + \
            np.random.default_rng(len(smiles)).normal(size=(len(smiles), 512)).astype(np.float32)

    monkeypatch.setattr(metrics_module, "chemnet_activations", fake_activations)
    asked: list[int] = []
    rng = np.random.default_rng(1)

    def matched(n: int) -> FCDReference:
        asked.append(n)
        acts = rng.normal(size=(n, 512))
        return FCDReference(mu=acts.mean(0), sigma=np.cov(acts, rowvar=False), n=n)

    generated = ["CCO", "OCC", "CN", "CCCC", "CC.O", "CN", "C1CC"]
    result = evaluate_molecules(generated, train_smiles=set(), fcd_reference=matched)
    # called once per FCD with the number of molecules entering it: 5 valid, 3 of them distinct
    assert asked == [5, 3] and result["n_fcd"] == 5 and result["n_fcd_unique"] == 3
    # the same numbers as passing those references themselves
    rng = np.random.default_rng(1)
    fixed = [matched(5), matched(3)]
    acts = fake_activations(["CCO", "CCO", "CN", "CCCC", "CN"]).astype(np.float64)
    for key, rows, ref in (("fcd", [0, 1, 2, 3, 4], fixed[0]), ("fcd_unique", [0, 2, 3], fixed[1])):
        a = acts[rows]
        assert result[key] == pytest.approx(frechet_distance(a.mean(0), np.cov(a, rowvar=False), ref.mu, ref.sigma))
