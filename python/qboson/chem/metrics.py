"""Validity, uniqueness, novelty and FCD of generated molecules.

Definitions (counts, not fractions, as in the paper's Table II):

* ``valid`` (strict): RDKit parses and sanitises the SMILES, it has at least one atom,
  no dummy atom ``*`` and exactly one fragment (no ``.``).
* ``valid_loose`` (MolGAN's definition): RDKit parses and sanitises it, non-empty;
  fragments and dummy atoms allowed.  Only meaningful if the SMILES were decoded with
  ``graph_to_smiles(..., strict=False)``; strict decoding makes it equal ``valid``.
* ``valid_unique``: distinct canonical SMILES among the strictly valid ones.
* ``novel``: distinct strictly valid canonical SMILES not in ``train_smiles``.
* ``fcd``: FCD of the strictly valid molecules (duplicates included, the first ``n_fcd``
  of them if given) against the reference; ``n_fcd`` says how many entered it.
* ``fcd_unique``: FCD of the distinct strictly valid molecules among those (each once),
  as the public re-implementation of arXiv 2508.19857 reports it; ``n_fcd_unique`` of them.
  Duplicates pull ``fcd`` towards the repeated molecules, so a collapsed generator scores
  worse on ``fcd`` than on ``fcd_unique``; both depend on the number of molecules.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from ._deps import quiet_rdkit, require_rdkit
import numpy as np

from .chemnet import FCDReference, activation_statistics, chemnet_activations, frechet_distance

__all__ = ["validity", "evaluate_molecules"]


def validity(smiles: str | None) -> tuple[bool, bool, str | None]:
    """(strictly valid, loosely valid, canonical SMILES or None) of one SMILES; never raises."""
    Chem = require_rdkit()
    if not isinstance(smiles, str) or not smiles.strip():
        return False, False, None
    with quiet_rdkit():
        try:
            mol = Chem.MolFromSmiles(smiles)
        except Exception:  # pragma: no cover - RDKit returns None rather than raising
            mol = None
        if mol is None or mol.GetNumAtoms() == 0:
            return False, False, None
        canonical = Chem.MolToSmiles(mol, isomericSmiles=False)
    strict = all(a.GetAtomicNum() != 0 for a in mol.GetAtoms()) and len(Chem.GetMolFrags(mol)) == 1
    return strict, True, canonical


def evaluate_molecules(smiles: Sequence[str | None], *, train_smiles: set[str] | frozenset[str],
                       fcd_reference: FCDReference | Callable[[int], FCDReference] | None,
                       n_fcd: int | None = None,
                       threads: int | None = 1) -> dict[str, Any]:
    """Metrics of generated molecules (``None`` or unparsable entries count as invalid).

    Args:
        smiles: generated SMILES, e.g. ``graphs_to_smiles(nodes, adjacency, strict=False)``.
        train_smiles: canonical SMILES of the training set (as in ``QM9Graphs.smiles``);
            compared with the canonical form of each generated molecule.
        fcd_reference: statistics of the reference set, or a function ``n -> FCDReference``
            called with the number of molecules entering each FCD (a reference of matched
            size), or None to skip FCD.
        n_fcd: use only the first ``n_fcd`` strictly valid molecules for FCD (None = all).
        threads: torch threads for ChemNet.

    Returns a dict with int ``n``, ``valid``, ``valid_loose``, ``valid_unique``, ``novel``,
    ``n_fcd``, ``n_fcd_unique`` and floats ``fcd``, ``fcd_unique`` (None without a reference;
    NaN if fewer than 2 molecules enter them).
    """
    if n_fcd is not None and (isinstance(n_fcd, bool) or not isinstance(n_fcd, int) or n_fcd < 0):
        raise ValueError(f"n_fcd must be a non-negative int or None, got {n_fcd!r}")
    if not isinstance(train_smiles, (set, frozenset)):
        train_smiles = set(train_smiles)
    valid = valid_loose = 0
    canonical_valid: list[str] = []
    memo: dict[str, tuple[bool, bool, str | None]] = {}
    for s in smiles:
        if isinstance(s, str):
            if s not in memo:
                memo[s] = validity(s)
            strict, loose, canonical = memo[s]
        else:
            strict, loose, canonical = False, False, None
        valid_loose += loose
        if strict:
            valid += 1
            canonical_valid.append(canonical)  # type: ignore[arg-type]
    unique = set(canonical_valid)
    result: dict[str, Any] = {
        "n": len(smiles),
        "valid": valid,
        "valid_loose": valid_loose,
        "valid_unique": len(unique),
        "novel": len(unique - train_smiles),
        "fcd": None,
        "n_fcd": 0,
        "fcd_unique": None,
        "n_fcd_unique": 0,
    }
    if fcd_reference is not None:
        chosen = canonical_valid if n_fcd is None else canonical_valid[:n_fcd]
        first = sorted({s: i for i, s in reversed(list(enumerate(chosen)))}.values())  # first occurrences
        acts = chemnet_activations(chosen, threads=threads) if chosen else np.zeros((0, 512), np.float32)
        result["n_fcd"], result["n_fcd_unique"] = len(chosen), len(first)
        result["fcd"] = _frechet(acts, fcd_reference)
        result["fcd_unique"] = _frechet(acts[first], fcd_reference)
    return result


def _frechet(acts: np.ndarray, reference: FCDReference | Callable[[int], FCDReference]) -> float:
    if len(acts) < 2:
        return math.nan
    if not isinstance(reference, FCDReference):
        reference = reference(len(acts))
    mu, sigma = activation_statistics(acts)
    return frechet_distance(mu, sigma, reference.mu, reference.sigma)
