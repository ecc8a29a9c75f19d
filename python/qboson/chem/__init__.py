"""Chemistry layer: QM9 data, dense graphs <-> molecules, and generative metrics.

Needs the ``chem`` extra (``pip install 'qboson[chem]'``: RDKit, fcd_torch, qm9pack, torch);
these are imported only when a function needs them.  Knows nothing of photons or GANs.

Typical use::

    from qboson import chem
    data = chem.load_qm9_graphs(seed=0)                  # cached (N, 9) / (N, 9, 9) int64 arrays
    test = data.split_smiles("test")
    ref = chem.FCDReference.from_smiles(test, cache_path=chem.reference_cache_path(test))
    smiles = chem.graphs_to_smiles(nodes, adjacency)     # generated graphs -> SMILES or None
    chem.evaluate_molecules(smiles, train_smiles=set(data.split_smiles("train")), fcd_reference=ref)
"""

from ._cache import CorruptCacheError, default_cache_dir
from .chemnet import FCDReference, chemnet_activations, fcd, frechet_distance, reference_cache_path
from .graphs import (
    ATOM_TYPES,
    BOND_TYPES,
    MAX_ATOMS,
    canonical_smiles,
    featurise,
    graph_to_mol,
    graph_to_smiles,
    graphs_to_smiles,
    smiles_to_graph,
)
from .metrics import evaluate_molecules, validity
from .qm9 import (
    CacheRebuildWarning,
    QM9Graphs,
    fetch_url,
    load_qm9_graphs,
    load_qm9_smiles,
    load_smiles,
    split_indices,
)

__all__ = [
    "MAX_ATOMS",
    "ATOM_TYPES",
    "BOND_TYPES",
    "canonical_smiles",
    "featurise",
    "smiles_to_graph",
    "graph_to_mol",
    "graph_to_smiles",
    "graphs_to_smiles",
    "QM9Graphs",
    "load_qm9_smiles",
    "load_smiles",
    "fetch_url",
    "load_qm9_graphs",
    "split_indices",
    "evaluate_molecules",
    "validity",
    "FCDReference",
    "fcd",
    "chemnet_activations",
    "frechet_distance",
    "reference_cache_path",
    "CorruptCacheError",
    "CacheRebuildWarning",
    "default_cache_dir",
]
