"""Generate molecules from a trained MolGAN run and score them.

Each molecule comes from one latent vector: ``z -> logits -> graph`` -> SMILES via
:mod:`qboson.chem` (padding atoms stripped).  The graph is decoded by ``argmax`` over
atom and bond classes (the latent is the only randomness) or by ``sample`` (one
categorical draw per atom and bond, seeded from the run seed, as the original MolGAN
and the paper's public re-implementation do); ``config.decode`` is the default.
Metrics are those of :func:`qboson.chem.evaluate_molecules`: strict and loose
validity, valid & unique, novel (not in the training split), FCD of the strictly
valid molecules (duplicates included) and FCD of the unique valid ones, both against
the QM9 test split, whose ChemNet statistics are computed once and cached.

Writes ``eval.json`` (metrics + settings) and ``samples.smi`` (one generated SMILES
per line, an empty line for a graph that does not decode) into the run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from .._atomic import atomic_write_text
from .._validation import check_memory
from .batches import derived_seed, latent_source
from .config import DECODES, FCD_REFERENCES, MAX_THREADS, TrainConfig, evaluation_bytes
from .model import decode_graphs
from .runfiles import load_checkpoint
from .trainer import build_models, resolve_device

__all__ = ["load_generator", "generate_graphs", "evaluate_run", "curve_evaluator", "fcd_reference_path",
           "EVAL_FILE", "SAMPLES_FILE", "FCD_REFERENCES"]

EVAL_FILE = "eval.json"
SAMPLES_FILE = "samples.smi"


def load_generator(run_dir: str | os.PathLike, device: str | torch.device = "cpu"
                   ) -> tuple[torch.nn.Module, TrainConfig, dict[str, Any]]:
    """(generator in eval mode on ``device``, its config, the checkpoint's bookkeeping) of a run."""
    ckpt = load_checkpoint(run_dir)
    config = TrainConfig.from_dict(ckpt["config"])
    gen, _ = build_models(config, *ckpt["graph_shape"])
    gen.load_state_dict(ckpt["generator"])
    gen.eval()
    gen.to(resolve_device(device))
    info = {k: ckpt[k] for k in ("critic_step", "iteration")}
    return gen, config, info


@torch.no_grad()
def generate_graphs(generator: torch.nn.Module, z: np.ndarray, batch_size: int = 2000, *,
                    decode: str = "argmax", seed: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode latents ``z (K, dim)`` to ``nodes (K, n) int64`` and symmetric ``adjacency (K, n, n) int64``.

    ``decode``: "argmax" or "sample" (categorical draws from a ``torch.Generator`` seeded with
    ``seed``; the same seed and ``batch_size`` give the same graphs).
    """
    if decode not in DECODES:
        raise ValueError(f"unknown decode {decode!r}; choose one of {', '.join(DECODES)}")
    device = next(generator.parameters()).device
    draws = torch.Generator(device="cpu")
    draws.manual_seed(0 if seed is None else int(seed))
    nodes, adjacency = [], []
    for start in range(0, len(z), batch_size):
        edges, atom_logits = generator(torch.as_tensor(z[start:start + batch_size], dtype=torch.float32,
                                                       device=device))
        atoms, adj = decode_graphs(edges.cpu(), atom_logits.cpu(), decode, draws)
        adjacency.append(adj.numpy())
        nodes.append(atoms.numpy())
    if not nodes:
        raise ValueError("no latent vectors to decode")
    return np.concatenate(nodes).astype(np.int64), np.concatenate(adjacency).astype(np.int64)


def fcd_reference_path(data_seed: int, cache_dir: Optional[str | os.PathLike] = None) -> Path:
    """Where the ChemNet statistics of the QM9 test split of ``data_seed`` are cached."""
    from ..chem import default_cache_dir

    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "qm9" / f"fcd-reference-test-seed{data_seed}.npz"


def _eval_latents(config: TrainConfig, n: int, purpose: str) -> np.ndarray:
    source = latent_source(config)
    if config.latent_bank_path is not None:
        source = source.latent()  # fresh vectors from the bank's recorded latent, not its training rows
    return np.asarray(source.sample(n, seed=derived_seed(config.seed, purpose)), dtype=np.float32)


def _references(config: TrainConfig, cache_dir, threads: int, fcd: bool):
    from .. import chem

    data = chem.load_qm9_graphs(cache_dir=cache_dir, seed=config.data_seed)
    train_smiles = frozenset(data.split_smiles("train"))
    reference = None
    if fcd:
        reference = chem.FCDReference.from_smiles(data.split_smiles("test"),
                                                  cache_path=fcd_reference_path(config.data_seed, cache_dir),
                                                  threads=threads)
    return train_smiles, reference


def _train_sample_reference(train_smiles: frozenset, seed: int, threads: int) -> Callable[[int], Any]:
    """``n -> FCDReference`` of the first ``n`` molecules of a seeded permutation of the (sorted,
    so set order does not matter) training molecules; ChemNet runs once per molecule."""
    from .. import chem
    from ..chem.chemnet import activation_statistics

    pool = sorted(train_smiles)
    order = np.random.default_rng(seed).permutation(len(pool))
    done: list[np.ndarray] = []

    def reference(n: int) -> "chem.FCDReference":
        if n > len(pool):
            raise ValueError(f"an FCD reference of {n} training molecules was asked for; the training set has {len(pool)}")
        have = sum(len(a) for a in done)
        if n > have:
            done.append(chem.chemnet_activations([pool[i] for i in order[have:n]], threads=threads))
        mu, sigma = activation_statistics(np.concatenate(done)[:n])
        return chem.FCDReference(mu=mu, sigma=sigma, n=n)

    return reference


def _score(gen, z, decode, seed, train_smiles, reference, threads) -> tuple[dict[str, Any], list]:
    from .. import chem

    nodes, adjacency = generate_graphs(gen, z, decode=decode, seed=seed)
    smiles = chem.graphs_to_smiles(nodes, adjacency, strict=False)
    return chem.evaluate_molecules(smiles, train_smiles=train_smiles, fcd_reference=reference,
                                   threads=threads), smiles


def _draw_file(name: str, draw: int) -> str:
    """The file of draw ``draw``: ``name`` itself for draw 0, else ``eval.json`` -> ``eval-draw<k>.json``."""
    stem, dot, ext = name.rpartition(".")
    return f"{stem}-draw{draw}{dot}{ext}" if draw else name


def evaluate_run(
    run_dir: str | os.PathLike,
    *,
    n_samples: Optional[int] = None,
    decode: Optional[str] = None,
    fcd: bool = True,
    cache_dir: Optional[str | os.PathLike] = None,
    threads: int = 1,
    device: str | torch.device = "cpu",
    write: bool = True,
    draw: int = 0,
    fcd_reference: str = "test",
) -> dict[str, Any]:
    """Generate ``n_samples`` (default ``config.eval_samples``) molecules from a run and score them.

    ``decode``: "argmax" or "sample" (default ``config.decode``).  ``draw``: which independent
    draw of latent vectors and decoding randomness (0, the default, is the run's standard
    evaluation, written to ``eval.json`` and ``samples.smi``; draw ``k > 0`` gets seeds of its
    own and is written to ``eval-draw<k>.json`` and ``samples-draw<k>.smi``), so the spread of
    the metrics over draws separates evaluation noise from training noise.  ``fcd_reference``: one
    of :data:`FCD_REFERENCES`; with "train-sample" the result goes to ``eval-train-sample.json``
    (``eval-train-sample-draw<k>.json``) and ``eval.json`` is left alone.  Returns the dict of
    :func:`qboson.chem.evaluate_molecules` (``fcd`` over all valid molecules, ``fcd_unique``
    over the unique ones) plus ``latent``, ``dim``, ``seed``, ``iteration``, ``decode``,
    ``draw``, ``seconds`` (wall time of the evaluation) and ``seconds_fcd``.  ``fcd=False`` skips FCD.
    """
    if isinstance(draw, bool) or not isinstance(draw, (int, np.integer)) or draw < 0:
        raise ValueError(f"draw must be an integer >= 0, got {draw!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be an integer in [1, {MAX_THREADS}], got {threads!r}")
    if fcd_reference not in FCD_REFERENCES:
        raise ValueError(f"unknown FCD reference {fcd_reference!r}; choose one of {', '.join(FCD_REFERENCES)}")
    t_start = time.perf_counter()
    torch.set_num_threads(threads)
    run = Path(run_dir)
    gen, config, info = load_generator(run, device)
    decode = config.decode if decode is None else decode
    n = config.eval_samples if n_samples is None else int(n_samples)
    if n < 1:
        raise ValueError(f"n_samples must be >= 1, got {n}")
    check_memory(evaluation_bytes(n, config.dim), f"evaluating {n:,} molecules")
    suffix = f"-{draw}" if draw else ""  # draw 0 keeps the seeds evaluations always had
    z = _eval_latents(config, n, "eval" + suffix)
    train_smiles, reference = _references(config, cache_dir, threads, fcd and fcd_reference == "test")
    if fcd and fcd_reference == "train-sample":
        reference = _train_sample_reference(train_smiles, derived_seed(config.seed, "fcd-reference" + suffix), threads)
    t_fcd = time.perf_counter()
    result, smiles = _score(gen, z, decode, derived_seed(config.seed, "decode" + suffix), train_smiles, reference,
                            threads)
    now = time.perf_counter()
    result.update(latent=config.latent, dim=config.dim, seed=config.seed, iteration=info["iteration"],
                  critic_step=info["critic_step"], decode=decode, draw=int(draw), fcd_reference=f"qm9-{fcd_reference}",
                  seconds=round(now - t_start, 3), seconds_fcd=round(now - t_fcd, 3) if fcd else None)
    if write:
        atomic_write_text(run / _draw_file(SAMPLES_FILE, draw), "\n".join(s or "" for s in smiles) + "\n")
        name = EVAL_FILE if fcd_reference == "test" else f"eval-{fcd_reference}.json"
        atomic_write_text(run / _draw_file(name, draw), json.dumps(result, indent=2, default=_json_default) + "\n")
    return result


def curve_evaluator(config: TrainConfig, *, decodes: tuple[str, ...] = DECODES, cache_dir=None,
                    threads: int = 1) -> Callable[[torch.nn.Module, int, int], list[dict[str, Any]]]:
    """An ``evaluator`` for :func:`qboson.molgan.train`: scores ``config.curve_samples`` molecules
    (the same latents at every point) with each decoding in ``decodes``; one row per decoding."""
    z = _eval_latents(config, config.curve_samples, "curve")
    train_smiles, reference = _references(config, cache_dir, threads, True)

    def evaluate(gen: torch.nn.Module, iteration: int, step: int) -> list[dict[str, Any]]:
        rows = []
        for decode in decodes:
            t0 = time.perf_counter()
            with torch.no_grad():
                result, _ = _score(gen, z, decode, derived_seed(config.seed, "curve-decode"), train_smiles,
                                   reference, threads)
            rows.append({"decode": decode, "seconds": round(time.perf_counter() - t0, 2),
                         **{k: result[k] for k in ("n", "valid", "valid_unique", "novel", "fcd", "fcd_unique")}})
        return rows

    return evaluate


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
