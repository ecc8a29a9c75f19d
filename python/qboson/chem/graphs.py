"""Molecules <-> dense MolGAN graphs.

A molecule with at most :data:`MAX_ATOMS` heavy atoms is a pair of integer arrays

* ``nodes`` (``MAX_ATOMS``,) int64: atom class per node, an index into
  :data:`ATOM_TYPES` (0 = padding, 1 = C, 2 = N, 3 = O, 4 = F);
* ``adjacency`` (``MAX_ATOMS``, ``MAX_ATOMS``) int64, symmetric, zero diagonal:
  bond class per pair, an index into :data:`BOND_TYPES` (0 none, 1 single,
  2 double, 3 triple) of the *kekulised* molecule (no aromatic class).

Hydrogens are implicit and come back from the default valences when decoding,
so a graph only represents neutral, closed-shell molecules.  What does not fit
(:func:`smiles_to_graph` returns ``None``, :func:`featurise` says why):

* more than 9 heavy atoms, or an element other than C, N, O, F;
* any formal charge (QM9's zwitterions such as ``[NH3+]CC(=O)[O-]``): the graph
  has no charge channel; decoding would give a different molecule (the neutral
  tautomer) or none at all (``[N+]`` with four bonds), so they are dropped and
  counted rather than silently changed;
* radicals, molecules RDKit cannot kekulise, and disconnected molecules (salts,
  mixtures): a generated molecule must be one fragment to count as valid.

Decoding (:func:`graph_to_mol`) strips padding nodes that have no bonds.  A
padding node that does have bonds is kept as a dummy atom ``*`` so that such
graphs are *invalid* under the strict definition rather than silently repaired.

Canonical SMILES throughout :mod:`qboson.chem` are RDKit canonical SMILES
without stereochemistry (:func:`canonical_smiles`): graphs carry no stereo.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._deps import quiet_rdkit, require_rdkit

__all__ = [
    "MAX_ATOMS",
    "ATOM_TYPES",
    "BOND_TYPES",
    "canonical_smiles",
    "mol_to_graph",
    "featurise",
    "smiles_to_graph",
    "graph_to_mol",
    "graph_to_smiles",
    "graphs_to_smiles",
    "is_strictly_valid_mol",
]

MAX_ATOMS = 9
ATOM_TYPES = ("*pad*", "C", "N", "O", "F")
BOND_TYPES = ("none", "single", "double", "triple")

_ATOMIC_NUMBERS = (0, 6, 7, 8, 9)  # per atom class; 0 (padding) decodes to a dummy atom when bonded
_ATOM_CLASS = {6: 1, 7: 2, 8: 3, 9: 4}

Graph = tuple[np.ndarray, np.ndarray]


def _bond_type_objects() -> tuple[Any, ...]:
    Chem = require_rdkit()
    return (None, Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE)


def canonical_smiles(smiles: str | None) -> str | None:
    """RDKit canonical SMILES without stereochemistry, or None if ``smiles`` does not parse.

    ``None``, non-strings and empty strings give None.  Never raises on bad input.
    """
    Chem = require_rdkit()
    if not isinstance(smiles, str) or not smiles.strip():
        return None
    with quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles)
        if mol is None or mol.GetNumAtoms() == 0:
            return None
        return Chem.MolToSmiles(mol, isomericSmiles=False)


def mol_to_graph(mol: Any) -> Graph | str:
    """Featurise an RDKit molecule: ``(nodes, adjacency)`` or a short reason why it does not fit.

    Node order is RDKit's atom order in ``mol``.  Reasons: ``"too_many_atoms"``,
    ``"element"``, ``"charged"``, ``"radical"``, ``"disconnected"``, ``"kekulize"``, ``"empty"``.
    """
    Chem = require_rdkit()
    n = mol.GetNumAtoms()
    if n == 0:
        return "empty"
    if n > MAX_ATOMS:
        return "too_many_atoms"
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() not in _ATOM_CLASS:
            return "element"
        if atom.GetFormalCharge() != 0:
            return "charged"
        if atom.GetNumRadicalElectrons() != 0:
            return "radical"
    if len(Chem.GetMolFrags(mol)) != 1:
        return "disconnected"
    mol = Chem.Mol(mol)
    try:
        with quiet_rdkit():
            Chem.Kekulize(mol, clearAromaticFlags=True)
    except Exception:
        return "kekulize"
    nodes = np.zeros(MAX_ATOMS, dtype=np.int64)
    adjacency = np.zeros((MAX_ATOMS, MAX_ATOMS), dtype=np.int64)
    for atom in mol.GetAtoms():
        nodes[atom.GetIdx()] = _ATOM_CLASS[atom.GetAtomicNum()]
    order = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2, Chem.BondType.TRIPLE: 3}
    for bond in mol.GetBonds():
        cls = order.get(bond.GetBondType())
        if cls is None:  # dative, zero-order, leftover aromatic ...
            return "bond_type"
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        adjacency[i, j] = adjacency[j, i] = cls
    return nodes, adjacency


def featurise(smiles: str) -> Graph | str:
    """Like :func:`smiles_to_graph`, but returns the reason (a string) instead of None.

    Extra reason: ``"unparsable"`` when RDKit cannot read ``smiles``.
    """
    Chem = require_rdkit()
    if not isinstance(smiles, str) or not smiles.strip():
        return "unparsable"
    with quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return "unparsable"
    return mol_to_graph(mol)


def smiles_to_graph(smiles: str) -> Graph | None:
    """``(nodes (9,) int64, adjacency (9, 9) int64)`` for ``smiles``, or None if it does not fit.

    Nodes follow the atom order of ``smiles`` (pass canonical SMILES for a canonical order);
    padding nodes come last.  See the module docstring for what does not fit.
    """
    graph = featurise(smiles)
    return None if isinstance(graph, str) else graph


def _check_graphs(nodes: Any, adjacency: Any, batch: bool) -> Graph:
    """Validate (9,) / (9, 9) graphs, or (B, 9) / (B, 9, 9) batches with ``batch=True``."""
    nodes = np.asarray(nodes)
    adjacency = np.asarray(adjacency)
    lead = nodes.shape[:1] if batch else ()
    if (nodes.ndim != len(lead) + 1 or nodes.shape != lead + (MAX_ATOMS,)
            or adjacency.shape != lead + (MAX_ATOMS, MAX_ATOMS)):
        what = "(B, 9) and (B, 9, 9)" if batch else "(9,) and (9, 9)"
        raise ValueError(f"expected nodes and adjacency of shapes {what}, got {nodes.shape} and {adjacency.shape}")
    if not (np.issubdtype(nodes.dtype, np.integer) and np.issubdtype(adjacency.dtype, np.integer)):
        raise ValueError(f"nodes and adjacency must hold integer class indices, got {nodes.dtype} and "
                         f"{adjacency.dtype} (take the argmax of one-hot/probability tensors first)")
    if nodes.size and (nodes.min() < 0 or nodes.max() >= len(ATOM_TYPES)):
        raise ValueError(f"node classes must lie in 0..{len(ATOM_TYPES) - 1}")
    if adjacency.size and (adjacency.min() < 0 or adjacency.max() >= len(BOND_TYPES)):
        raise ValueError(f"bond classes must lie in 0..{len(BOND_TYPES) - 1}")
    if not np.array_equal(adjacency, np.swapaxes(adjacency, -1, -2)):
        raise ValueError("adjacency must be symmetric (bond class of i-j equals that of j-i)")
    return nodes, adjacency


def _check_graph(nodes: Any, adjacency: Any) -> Graph:
    return _check_graphs(nodes, adjacency, batch=False)


def graph_to_mol(nodes: Any, adjacency: Any) -> Any | None:
    """Decode a graph to a sanitised RDKit ``Mol``, or None if RDKit cannot sanitise it.

    ``nodes`` (9,) and ``adjacency`` (9, 9) hold integer class indices (any integer dtype).
    The diagonal of ``adjacency`` is ignored; it must be symmetric (ValueError otherwise).
    Padding nodes without bonds are removed; padding nodes with bonds become dummy atoms
    (``*``).  The result may have several fragments or dummy atoms: see
    :func:`is_strictly_valid_mol`.  An all-padding graph gives None.
    """
    require_rdkit()
    nodes, adjacency = _check_graph(nodes, adjacency)
    return _build_mol(nodes.tolist(), np.triu(adjacency, 1))


def _build_mol(nodes: list[int], upper: np.ndarray) -> Any | None:
    """Sanitised Mol from validated node classes and the strict upper triangle of the bonds."""
    Chem = require_rdkit()
    rows, cols = np.nonzero(upper)
    rows_l, cols_l = rows.tolist(), cols.tolist()
    classes = upper[rows, cols].tolist()
    bonded = set(rows_l) | set(cols_l)
    keep = [i for i in range(len(nodes)) if nodes[i] > 0 or i in bonded]
    if not keep:
        return None
    position = {old: new for new, old in enumerate(keep)}
    bond_types = _bond_type_objects()
    mol = Chem.RWMol()
    for i in keep:
        mol.AddAtom(Chem.Atom(_ATOMIC_NUMBERS[nodes[i]]))
    for i, j, cls in zip(rows_l, cols_l, classes):
        mol.AddBond(position[i], position[j], bond_types[cls])
    mol = mol.GetMol()
    try:
        with quiet_rdkit():
            Chem.SanitizeMol(mol)
    except Exception:
        return None
    return mol


def is_strictly_valid_mol(mol: Any | None) -> bool:
    """Strict validity of a sanitised molecule: at least one atom, no dummy atoms, one fragment."""
    if mol is None or mol.GetNumAtoms() == 0:
        return False
    Chem = require_rdkit()
    if any(atom.GetAtomicNum() == 0 for atom in mol.GetAtoms()):
        return False
    return len(Chem.GetMolFrags(mol)) == 1


def graph_to_smiles(nodes: Any, adjacency: Any, strict: bool = True) -> str | None:
    """Canonical SMILES of a graph, or None if it is not a valid molecule.

    ``strict=True``: sanitisable, one connected fragment, no dummy atoms.
    ``strict=False`` (MolGAN-style, "loose"): sanitisable only; the SMILES may contain
    ``.`` (fragments) and ``*`` (bonded padding nodes).  Feed loose SMILES to
    :func:`qboson.chem.evaluate_molecules` to get both validity counts.
    """
    return _mol_smiles(graph_to_mol(nodes, adjacency), strict)


def _mol_smiles(mol: Any | None, strict: bool) -> str | None:
    if mol is None or (strict and not is_strictly_valid_mol(mol)):
        return None
    return require_rdkit().MolToSmiles(mol, isomericSmiles=False)


def graphs_to_smiles(nodes: Any, adjacency: Any, strict: bool = False) -> list[str | None]:
    """Decode a batch: ``nodes`` (B, 9), ``adjacency`` (B, 9, 9) -> B SMILES or None.

    Same result as calling :func:`graph_to_smiles` on each graph, but validates the batch once
    and decodes each distinct graph once.  Defaults to ``strict=False`` so that
    :func:`qboson.chem.evaluate_molecules` can count both strict and loose validity from the
    result.  Accepts numpy arrays or CPU tensors.
    """
    nodes, adjacency = _check_graphs(nodes, adjacency, batch=True)
    nodes = nodes.astype(np.int64, copy=False)
    upper = np.triu(adjacency.astype(np.int64, copy=False), 1)
    seen: dict[bytes, str | None] = {}
    out: list[str | None] = []
    for n, a in zip(nodes, upper):
        key = n.tobytes() + a.tobytes()
        if key not in seen:
            seen[key] = _mol_smiles(_build_mol(n.tolist(), a), strict)
        out.append(seen[key])
    return out


def _as_graph_arrays(graphs: Sequence[Graph]) -> Graph:
    nodes = np.stack([g[0] for g in graphs]) if graphs else np.zeros((0, MAX_ATOMS), np.int64)
    adjacency = (np.stack([g[1] for g in graphs]) if graphs
                 else np.zeros((0, MAX_ATOMS, MAX_ATOMS), np.int64))
    return nodes.astype(np.int64), adjacency.astype(np.int64)
