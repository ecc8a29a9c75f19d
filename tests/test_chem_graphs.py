"""Tests of qboson.chem.graphs (featurise/decode) and qboson.chem.qm9 (loading, split, cache)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")
from rdkit import Chem  # noqa: E402

from qboson import chem  # noqa: E402
from qboson.chem import (  # noqa: E402
    ATOM_TYPES,
    BOND_TYPES,
    MAX_ATOMS,
    CacheRebuildWarning,
    featurise,
    graph_to_mol,
    graph_to_smiles,
    graphs_to_smiles,
    load_qm9_graphs,
    load_smiles,
    smiles_to_graph,
)

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "qm9_sample.smi"
HAS_QM9PACK = importlib.util.find_spec("qm9pack") is not None


def _canon(s: str) -> str:
    return Chem.MolToSmiles(Chem.MolFromSmiles(s), isomericSmiles=False)


def _empty_graph() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(MAX_ATOMS, np.int64), np.zeros((MAX_ATOMS, MAX_ATOMS), np.int64)


def _bond(adj: np.ndarray, i: int, j: int, cls: int) -> None:
    adj[i, j] = adj[j, i] = cls


# --------------------------------------------------------------------------- featurisation


def test_constants() -> None:
    assert MAX_ATOMS == 9
    assert ATOM_TYPES == ("*pad*", "C", "N", "O", "F")
    assert BOND_TYPES[0] == "none" and BOND_TYPES[1:] == ("single", "double", "triple")


def test_ethanol_graph_by_hand() -> None:
    nodes, adj = smiles_to_graph("CCO")
    assert nodes.dtype == np.int64 and adj.dtype == np.int64
    assert nodes.shape == (9,) and adj.shape == (9, 9)
    assert nodes.tolist() == [1, 1, 3, 0, 0, 0, 0, 0, 0]
    expected = np.zeros((9, 9), np.int64)
    _bond(expected, 0, 1, 1)
    _bond(expected, 1, 2, 1)
    np.testing.assert_array_equal(adj, expected)


def test_aromatic_rings_are_kekulised() -> None:
    nodes, adj = smiles_to_graph("c1ccncc1")  # pyridine
    assert sorted(nodes[:6].tolist()) == [1, 1, 1, 1, 1, 2]
    upper = adj[np.triu_indices(9, 1)]
    assert (upper == 2).sum() == 3 and (upper == 1).sum() == 3 and upper.max() == 2
    assert graph_to_smiles(nodes, adj) == "c1ccncc1"


def test_triple_bond_and_fluorine() -> None:
    nodes, adj = smiles_to_graph("FC#N")
    assert nodes[:3].tolist() == [4, 1, 2]
    assert adj[1, 2] == 3 and adj[0, 1] == 1
    assert graph_to_smiles(nodes, adj) == "N#CF"


@pytest.mark.parametrize(
    ("smiles", "reason"),
    [
        ("CCCCCCCCCC", "too_many_atoms"),  # 10 heavy atoms
        ("CCS", "element"),
        ("CCCl", "element"),
        ("[NH3+]CC(=O)[O-]", "charged"),  # a QM9-style zwitterion
        ("C[N+](C)(C)C", "charged"),
        ("[CH3]", "radical"),
        ("CC.O", "disconnected"),
        ("not a smiles", "unparsable"),
        ("", "unparsable"),
    ],
)
def test_molecules_that_do_not_fit(smiles: str, reason: str) -> None:
    assert featurise(smiles) == reason
    assert smiles_to_graph(smiles) is None


def test_nine_heavy_atoms_fit_and_hydrogens_do_not_count() -> None:
    assert smiles_to_graph("CCCCCCCCC") is not None
    assert smiles_to_graph("[H]OC([H])([H])C") is not None  # explicit H are not heavy atoms


# --------------------------------------------------------------------------- decoding


def test_padding_without_bonds_is_stripped() -> None:
    nodes, adj = _empty_graph()
    nodes[[0, 4, 8]] = [1, 1, 3]  # C, C, O at scattered positions, padding in between
    _bond(adj, 0, 4, 1)
    _bond(adj, 4, 8, 1)
    mol = graph_to_mol(nodes, adj)
    assert mol.GetNumAtoms() == 3
    assert graph_to_smiles(nodes, adj) == "CCO"
    assert graph_to_smiles(nodes, adj, strict=False) == "CCO"


def test_bonded_padding_becomes_a_dummy_atom() -> None:
    nodes, adj = _empty_graph()
    nodes[:2] = [1, 1]
    _bond(adj, 0, 1, 1)
    _bond(adj, 1, 2, 1)  # node 2 is padding but bonded
    assert graph_to_smiles(nodes, adj) is None
    loose = graph_to_smiles(nodes, adj, strict=False)
    assert loose is not None and "*" in loose


def test_fragments_are_loosely_but_not_strictly_valid() -> None:
    nodes, adj = _empty_graph()
    nodes[:3] = [1, 1, 3]
    _bond(adj, 0, 1, 1)  # C-C and a lone O
    assert graph_to_smiles(nodes, adj) is None
    assert graph_to_smiles(nodes, adj, strict=False) == "CC.O"


def test_over_valent_atoms_are_invalid() -> None:
    nodes, adj = _empty_graph()
    nodes[:3] = [3, 1, 1]
    _bond(adj, 0, 1, 2)
    _bond(adj, 0, 2, 1)  # O with valence 3
    assert graph_to_mol(nodes, adj) is None
    assert graph_to_smiles(nodes, adj, strict=False) is None


def test_all_padding_graph_is_invalid() -> None:
    nodes, adj = _empty_graph()
    assert graph_to_mol(nodes, adj) is None
    assert graph_to_smiles(nodes, adj, strict=False) is None


def test_diagonal_is_ignored() -> None:
    nodes, adj = smiles_to_graph("CCO")
    adj = adj.copy()
    np.fill_diagonal(adj, 3)
    assert graph_to_smiles(nodes, adj) == "CCO"


@pytest.mark.parametrize(
    "bad",
    [
        lambda n, a: (n[:8], a),
        lambda n, a: (n, a[:8]),
        lambda n, a: (n.astype(float), a),
        lambda n, a: (n + 5, a),
        lambda n, a: (n, a - 1),
        lambda n, a: (n, np.triu(a + 1, 1)),  # asymmetric
    ],
)
def test_bad_graph_input_raises_value_error(bad) -> None:
    nodes, adj = smiles_to_graph("CCO")
    with pytest.raises(ValueError):
        graph_to_mol(*bad(nodes, adj))


def test_batch_decoding_accepts_other_integer_dtypes() -> None:
    graphs = [smiles_to_graph(s) for s in ("CCO", "C#N", "c1ccoc1")]
    nodes = np.stack([g[0] for g in graphs]).astype(np.uint8)
    adj = np.stack([g[1] for g in graphs]).astype(np.int32)
    assert graphs_to_smiles(nodes, adj) == ["CCO", "C#N", "c1ccoc1"]
    with pytest.raises(ValueError):
        graphs_to_smiles(nodes[0], adj)


def test_batch_decoding_equals_one_by_one_on_random_graphs() -> None:
    rng = np.random.default_rng(5)
    nodes = rng.integers(0, 5, size=(300, 9))
    upper = np.triu(rng.choice(4, size=(300, 9, 9), p=[0.75, 0.15, 0.07, 0.03]), 1)
    adjacency = upper + np.swapaxes(upper, 1, 2)  # 0..99: random graphs, mostly invalid
    real = [g for g in map(smiles_to_graph, map(_canon, _fixture_smiles()[:150])) if g is not None][:100]
    nodes[100:200] = [g[0] for g in real]  # 100..199: QM9 molecules
    adjacency[100:200] = [g[1] for g in real]
    for k in range(200, 250):  # 200..249: QM9 molecules with one bond class changed
        nodes[k], adjacency[k] = nodes[k - 100], adjacency[k - 100].copy()
        i, j = rng.choice(9, size=2, replace=False)
        adjacency[k, i, j] = adjacency[k, j, i] = rng.integers(0, 4)
    nodes[250:], adjacency[250:] = nodes[:50], adjacency[:50]  # repeated graphs
    for strict in (True, False):
        batch = graphs_to_smiles(nodes, adjacency, strict=strict)
        assert batch == [graph_to_smiles(n, a, strict=strict) for n, a in zip(nodes, adjacency)]
    loose = graphs_to_smiles(nodes, adjacency, strict=False)
    strict_ = graphs_to_smiles(nodes, adjacency, strict=True)
    assert sum(s is not None for s in loose) > sum(s is not None for s in strict_) > 0


def test_round_trip_on_fixture() -> None:
    raw = [line.strip() for line in SAMPLE.read_text().splitlines() if line.strip()]
    n_ok = n_fit = 0
    for s in raw:
        canonical = _canon(s)
        graph = smiles_to_graph(canonical)
        if graph is None:
            assert featurise(canonical) == "charged", s  # the only misfit in QM9
            continue
        n_fit += 1
        n_ok += graph_to_smiles(*graph) == canonical
    assert n_ok == n_fit  # every molecule that fits comes back exactly
    assert n_ok / len(raw) >= 0.95  # the fixture is enriched in zwitterions on purpose


def _qm9_round_trip_rate(raw: list[str]) -> tuple[float, int]:
    n_ok = 0
    for s in raw:
        canonical = _canon(s)
        graph = smiles_to_graph(canonical)
        n_ok += graph is not None and graph_to_smiles(*graph) == canonical
    return n_ok / len(raw), n_ok


@pytest.mark.skipif(not HAS_QM9PACK, reason="qm9pack not installed")
def test_round_trip_on_a_qm9_sample() -> None:
    from qboson.chem.qm9 import _read_qm9pack

    raw = _read_qm9pack()
    assert len(raw) == 130831
    rng = np.random.default_rng(6)
    sample = [raw[i] for i in rng.choice(len(raw), 3000, replace=False)]
    rate, _ = _qm9_round_trip_rate(sample)
    assert rate >= 0.99


@pytest.mark.slow
@pytest.mark.skipif(not HAS_QM9PACK, reason="qm9pack not installed")
def test_round_trip_on_full_qm9() -> None:
    from qboson.chem.qm9 import _read_qm9pack

    raw = _read_qm9pack()
    rate, n_ok = _qm9_round_trip_rate(raw)
    print(f"QM9 round trip: {n_ok} / {len(raw)} = {rate:.5f}")
    assert rate >= 0.99


@pytest.mark.slow
@pytest.mark.skipif(not HAS_QM9PACK, reason="qm9pack not installed")
def test_full_qm9_graphs(tmp_path: Path) -> None:
    data = load_qm9_graphs(cache_dir=tmp_path)
    assert data.n_read == 130831
    assert len(data) + data.n_dropped + data.n_duplicates == data.n_read
    assert set(data.drop_reasons) == {"charged"}
    assert data.n_dropped < 0.01 * data.n_read
    assert len(set(data.smiles)) == len(data)
    all_smiles = chem.load_qm9_smiles()
    assert len(all_smiles) == len(data) + data.n_dropped
    assert set(data.smiles) <= set(all_smiles)


# --------------------------------------------------------------------------- loading files and URLs


def _fixture_smiles() -> list[str]:
    return [line.strip() for line in SAMPLE.read_text().splitlines() if line.strip()]


def test_load_smiles_from_smi_csv_and_sdf_agree(tmp_path: Path) -> None:
    raw = _fixture_smiles()
    expected = list(dict.fromkeys(_canon(s) for s in raw))
    assert load_smiles(SAMPLE) == expected

    csv_path = tmp_path / "mols.csv"
    csv_path.write_text("id,SMILES,note\n" + "".join(f"{i},{s},x\n" for i, s in enumerate(raw)))
    assert load_smiles(csv_path) == expected

    sdf_path = tmp_path / "mols.sdf"
    writer = Chem.SDWriter(str(sdf_path))
    for s in raw:
        writer.write(Chem.MolFromSmiles(s))
    writer.close()
    assert load_smiles(sdf_path) == expected


def test_load_smiles_deduplicates_and_warns_about_bad_entries(tmp_path: Path) -> None:
    path = tmp_path / "mols.smi"
    path.write_text("smiles\nOCC\nCCO name\nC1=CC=CC=C1\nc1ccccc1\nnonsense(\n")
    with pytest.warns(UserWarning, match="1 entries"):
        assert load_smiles(path) == ["CCO", "c1ccccc1"]


def test_load_smiles_rejects_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_smiles(tmp_path / "missing.smi")
    bad = tmp_path / "mols.xyz"
    bad.write_text("C\n")
    with pytest.raises(ValueError, match="unknown molecule file type"):
        load_smiles(bad)
    ambiguous = tmp_path / "mols.csv"
    ambiguous.write_text("a,b\nC,N\n")
    with pytest.raises(ValueError, match="which column"):
        load_smiles(ambiguous)


def test_url_source_with_checksum(tmp_path: Path) -> None:
    digest = hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
    url = SAMPLE.resolve().as_uri()
    cache = tmp_path / "cache"
    got = load_smiles(url, sha256=digest, cache_dir=cache)
    assert got == load_smiles(SAMPLE)
    downloaded = list((cache / "downloads").iterdir())
    assert len(downloaded) == 1 and downloaded[0].read_bytes() == SAMPLE.read_bytes()
    with pytest.raises(ValueError, match="sha256"):
        load_smiles(url, cache_dir=cache)
    with pytest.raises(ValueError, match="SHA-256"):
        load_smiles(url, sha256="0" * 64, cache_dir=tmp_path / "other")
    assert not any((tmp_path / "other" / "downloads").iterdir())  # nothing kept, no temp file left
    graphs = load_qm9_graphs(cache_dir=cache, source=url, sha256=digest)
    assert graphs.smiles == load_qm9_graphs(cache_dir=cache, source=SAMPLE).smiles


# --------------------------------------------------------------------------- graphs, split, cache


def test_load_graphs_from_file(tmp_path: Path) -> None:
    data = load_qm9_graphs(cache_dir=tmp_path, source=SAMPLE, seed=3)
    raw = _fixture_smiles()
    n_unique = len(set(_canon(s) for s in raw))
    assert data.n_read == len(raw)
    assert len(data) + data.n_dropped == n_unique
    assert data.drop_reasons == {"charged": data.n_dropped} and data.n_dropped >= 5
    assert data.nodes.shape == (len(data), 9) and data.nodes.dtype == np.int64
    assert data.adjacency.shape == (len(data), 9, 9) and data.adjacency.dtype == np.int64
    for i in (0, len(data) // 2, len(data) - 1):
        assert graph_to_smiles(data.nodes[i], data.adjacency[i]) == data.smiles[i]
    parts = [data.train_idx, data.val_idx, data.test_idx]
    assert sum(map(len, parts)) == len(data)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(len(data)))
    assert len(data.val_idx) == round(0.1 * len(data)) == len(data.test_idx)
    assert data.split_smiles("test") == [data.smiles[i] for i in data.test_idx]


def test_split_is_deterministic_and_depends_on_seed(tmp_path: Path) -> None:
    a = load_qm9_graphs(cache_dir=tmp_path, source=SAMPLE, seed=1)
    b = load_qm9_graphs(cache_dir=tmp_path, source=SAMPLE, seed=1, use_cache=False)
    c = load_qm9_graphs(cache_dir=tmp_path, source=SAMPLE, seed=2)
    np.testing.assert_array_equal(a.test_idx, b.test_idx)
    np.testing.assert_array_equal(a.nodes, b.nodes)
    assert not np.array_equal(a.test_idx, c.test_idx)
    d = load_qm9_graphs(cache_dir=tmp_path, source=SAMPLE, seed=1, val_fraction=0.0, test_fraction=0.25)
    assert len(d.val_idx) == 0 and len(d.test_idx) == round(0.25 * len(d))


@pytest.mark.parametrize(
    "kwargs",
    [dict(seed=-1), dict(seed=1.5), dict(val_fraction=-0.1), dict(test_fraction=1.0),
     dict(val_fraction=0.6, test_fraction=0.4)],
)
def test_bad_split_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        load_qm9_graphs(cache_dir=tmp_path, source=SAMPLE, **kwargs)


def test_cache_is_written_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QBOSON_CACHE", str(tmp_path / "envcache"))
    first = load_qm9_graphs(source=SAMPLE)
    files = list((tmp_path / "envcache" / "qm9").glob("graphs-*.npz"))
    assert len(files) == 1
    from qboson.chem import qm9

    def fail(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(qm9, "_build_graphs", fail)
    second = load_qm9_graphs(source=SAMPLE)
    np.testing.assert_array_equal(first.adjacency, second.adjacency)
    assert first.smiles == second.smiles and first.drop_reasons == second.drop_reasons


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path: Path, damage: str) -> None:
    good = load_qm9_graphs(cache_dir=tmp_path, source=SAMPLE)
    (path,) = (tmp_path / "qm9").glob("graphs-*.npz")
    blob = bytearray(path.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "flip":  # change one stored bond class: the zip stays readable, the checksum fails
        import io

        with np.load(io.BytesIO(bytes(blob))) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["adjacency"] = arrays["adjacency"].copy()
        arrays["adjacency"][0, 0, 1] ^= 1
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        blob = bytearray(buf.getvalue())
    else:
        blob = bytearray(b"not a zip file at all")
    path.write_bytes(bytes(blob))
    with pytest.warns(CacheRebuildWarning, match=str(path.name)):
        rebuilt = load_qm9_graphs(cache_dir=tmp_path, source=SAMPLE)
    np.testing.assert_array_equal(rebuilt.adjacency, good.adjacency)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_qm9_graphs(cache_dir=tmp_path, source=SAMPLE)  # the rewritten cache is good again


def test_without_rdkit(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "rdkit" or m.startswith("rdkit.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "rdkit", None)
    with pytest.raises(ImportError, match=r"qboson\[chem\]"):
        smiles_to_graph("CCO")
    with pytest.raises(ImportError, match=r"qboson\[chem\]"):
        chem.evaluate_molecules(["CCO"], train_smiles=set(), fcd_reference=None)


def test_without_qm9pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "qm9pack" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ImportError, match=r"qm9pack.*qboson\[chem\]"):
        load_qm9_graphs(cache_dir=tmp_path)
    assert len(load_qm9_graphs(cache_dir=tmp_path, source=SAMPLE)) > 0  # files still work
