"""Stand-ins for QM9 and the chemistry evaluation in the experiment tests (no RDKit, no ChemNet).

The training graphs are random; the "metrics" are counts of the decoded graphs, so a run's
numbers still depend on its trained weights (two grids agree only if their runs do).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np

from qboson._atomic import atomic_write_text


def fake_data(data_seed: int = 0):
    """40 random 9-atom graphs in place of the QM9 training split."""
    trainer = importlib.import_module("qboson.molgan.trainer")
    rng = np.random.default_rng(0)
    adj = np.triu(rng.integers(0, 4, (40, 9, 9)), 1)
    return trainer.GraphData(rng.integers(0, 5, (40, 9)), adj + adj.transpose(0, 2, 1))


def fake_evaluate(run_dir, *, threads=1, **kw):
    """``evaluate_run`` with counts of the decoded graphs for metrics; writes eval.json and samples.smi."""
    evaluate = importlib.import_module("qboson.molgan.evaluate")
    gen, config, info = evaluate.load_generator(run_dir)
    z = np.random.default_rng(0).standard_normal((config.eval_samples, config.dim)).astype(np.float32)
    nodes, adj = evaluate.generate_graphs(gen, z)
    n_atoms = int((nodes > 0).sum())
    result = {"n": len(nodes), "valid": n_atoms % 7, "valid_loose": n_atoms % 11, "valid_unique": n_atoms % 5,
              "novel": n_atoms % 3, "fcd": float(adj.mean()), "n_fcd": 3, "latent": config.latent,
              "dim": config.dim, "seed": config.seed, "iteration": info["iteration"]}
    atomic_write_text(Path(run_dir) / "samples.smi", "CCO\nC1CC1\n\nCCO\n")
    atomic_write_text(Path(run_dir) / "eval.json", json.dumps(result))
    return result
