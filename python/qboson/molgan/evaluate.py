"""Generate molecules from a trained MolGAN run and score them.

Each molecule comes from one latent vector: ``z -> logits -> argmax`` over atom and
bond classes (no sampling noise at evaluation, so the latent distribution is the
only source of randomness) -> dense graph -> SMILES via :mod:`qboson.chem`
(padding atoms stripped).  Metrics are those of :func:`qboson.chem.evaluate_molecules`:
strict and loose validity, valid & unique, novel (not in the training split), and
FCD of the strictly valid molecules (duplicates included) against the QM9 test
split, whose ChemNet statistics are computed once and cached.

Writes ``eval.json`` (metrics + settings) and ``samples.smi`` (one generated
SMILES per line, an empty line for a graph that does not decode) into the run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from .config import TrainConfig
from .._atomic import atomic_write_text
from .train import _derived_seed, build_models, latent_source, load_checkpoint

__all__ = ["load_generator", "generate_graphs", "evaluate_run", "fcd_reference_path", "EVAL_FILE", "SAMPLES_FILE"]

EVAL_FILE = "eval.json"
SAMPLES_FILE = "samples.smi"


def load_generator(run_dir: str | os.PathLike) -> tuple[torch.nn.Module, TrainConfig, dict[str, Any]]:
    """(generator in eval mode, its config, the checkpoint's bookkeeping) of a run."""
    ckpt = load_checkpoint(run_dir)
    config = TrainConfig.from_dict(ckpt["config"])
    gen, _ = build_models(config, *ckpt["graph_shape"])
    gen.load_state_dict(ckpt["generator"])
    gen.eval()
    info = {k: ckpt[k] for k in ("critic_step", "iteration")}
    return gen, config, info


@torch.no_grad()
def generate_graphs(generator: torch.nn.Module, z: np.ndarray, batch_size: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Decode latents ``z (K, dim)`` to ``nodes (K, n) int64`` and symmetric ``adjacency (K, n, n) int64`` by argmax."""
    nodes, adjacency = [], []
    for start in range(0, len(z), batch_size):
        edges, atom_logits = generator(torch.as_tensor(z[start:start + batch_size], dtype=torch.float32))
        adj = edges.argmax(-1)
        adj = torch.triu(adj, diagonal=1)
        adjacency.append((adj + adj.transpose(1, 2)).numpy())
        nodes.append(atom_logits.argmax(-1).numpy())
    if not nodes:
        raise ValueError("no latent vectors to decode")
    return np.concatenate(nodes).astype(np.int64), np.concatenate(adjacency).astype(np.int64)


def fcd_reference_path(data_seed: int, cache_dir: Optional[str | os.PathLike] = None) -> Path:
    """Where the ChemNet statistics of the QM9 test split of ``data_seed`` are cached."""
    from ..chem import default_cache_dir

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "qm9" / f"fcd-reference-test-seed{data_seed}.npz"


def evaluate_run(
    run_dir: str | os.PathLike,
    *,
    n_samples: Optional[int] = None,
    fcd: bool = True,
    cache_dir: Optional[str | os.PathLike] = None,
    threads: int = 1,
    write: bool = True,
) -> dict[str, Any]:
    """Generate ``n_samples`` (default ``config.eval_samples``) molecules from a run and score them.

    Returns the dict of :func:`qboson.chem.evaluate_molecules` plus ``latent``, ``dim``,
    ``seed``, ``iteration``, ``seconds`` (wall time of the evaluation) and
    ``seconds_fcd``.  ``fcd=False`` skips FCD (``fcd`` is then None).
    """
    from .. import chem

    t_start = time.perf_counter()
    torch.set_num_threads(threads)
    run = Path(run_dir)
    gen, config, info = load_generator(run)
    n = config.eval_samples if n_samples is None else int(n_samples)
    if n < 1:
        raise ValueError(f"n_samples must be >= 1, got {n}")
    source = latent_source(config)
    if config.latent_bank_path is not None:
        source = source.latent()  # fresh vectors from the bank's recorded latent, not its training rows
    z = source.sample(n, seed=_derived_seed(config.seed, "eval"))
    nodes, adjacency = generate_graphs(gen, np.asarray(z, dtype=np.float32))
    smiles = chem.graphs_to_smiles(nodes, adjacency, strict=False)

    data = chem.load_qm9_graphs(cache_dir=cache_dir, seed=config.data_seed)
    train_smiles = frozenset(data.split_smiles("train"))
    reference = None
    t_fcd = time.perf_counter()
    if fcd:
        reference = chem.FCDReference.from_smiles(data.split_smiles("test"),
                                                  cache_path=fcd_reference_path(config.data_seed, cache_dir),
                                                  threads=threads)
    result = chem.evaluate_molecules(smiles, train_smiles=train_smiles, fcd_reference=reference, threads=threads)
    now = time.perf_counter()
    result.update(latent=config.latent, dim=config.dim, seed=config.seed, iteration=info["iteration"],
                  critic_step=info["critic_step"], seconds=round(now - t_start, 3),
                  seconds_fcd=round(now - t_fcd, 3) if fcd else None)
    if write:
        atomic_write_text(run / SAMPLES_FILE, "\n".join(s or "" for s in smiles) + "\n")
        atomic_write_text(run / EVAL_FILE, json.dumps(result, indent=2, default=_json_default) + "\n")
    return result


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
