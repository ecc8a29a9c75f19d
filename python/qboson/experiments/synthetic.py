"""Synthetic quantum dataset (paper Sec. IV.A, App. D, Table I): ``qboson experiment synthetic``.

Data: photon-count vectors of 8 indistinguishable photons in a 16-mode Haar-random
interferometer (``"quantum"`` data), or 16-dimensional Bernoulli(0.5) vectors
(``"bernoulli"`` data).  A GAN with fully connected generator and critic (2 × 512, ReLU,
RMSProp 5e-4, batch 500, 5 critic updates per generator update, WGAN-GP with weight 10;
the paper does not name its objective) learns the data from each latent distribution
of size 16.  Every *run* draws its own data interferometer and its own latent
interferometer (shared by the photon latents and the moment-matched controls of that
run, so they differ only in their statistics) and its own network seed (shared by all
latents of the run: the comparison between latents is paired).

Metrics of each trained generator, on ``n_gen`` generated vectors from held-out latent
draws, compared with held-out data:

* ``l1_int`` (the paper's metric): mean over vectors and coordinates of
  ``|x − round(x)|``; lower is better.  It rewards *any* integer-valued output.
* ``in_support``: fraction of rounded vectors that are possible data (quantum: all
  counts ≥ 0 and summing to 8; bernoulli: all entries 0 or 1).
* ``tvd``: total-variation distance between the empirical distributions of rounded
  generated patterns and of ``n_gen`` held-out data patterns.  With finitely many
  samples even perfect data has TVD > 0: ``tvd_floor`` is the same statistic between
  two disjoint held-out samples of the same size.
* ``sig_tvd``: the same TVD between *occupation signatures*, the rounded vectors sorted
  in decreasing order (which bunching pattern, forgetting which modes: 22 possible
  signatures for 8 photons, the Hamming weight for bits).  It is well estimated from
  10,000 samples and is sensitive to exactly what distinguishes quantum from classical
  counts; ``sig_tvd_floor`` as above.
* ``mmd``: unbiased squared maximum mean discrepancy between ``n_mmd`` (unrounded)
  generated vectors and ``n_mmd`` held-out vectors, with the Gaussian kernel
  ``exp(−||x − y||² / h)``, ``h`` the median squared distance between held-out vectors;
  ``mmd_floor`` between two held-out samples.
* ``cov_err``: ``||Cov(gen) − Cov(data)||_F / ||Cov(data)||_F``.

Results: ``<out>/cells/*.json`` (one per dataset × latent × run; finished cells are
skipped when the command is run again), ``<out>/table.md``/``.csv`` (mean ± standard
error over runs, at the last iteration) and ``table_iter<N>.*`` for every evaluated
iteration.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import _banks, _grid

DATASETS = ("quantum", "bernoulli")
PAPER_LATENTS = ("quantum", "photonic", "gaussian", "bernoulli")
CONTROL_LATENTS = ("gaussian_matched", "counts_matched")
METRICS = ("l1_int", "in_support", "sig_tvd", "sig_tvd_floor", "tvd", "tvd_floor", "mmd", "mmd_floor", "cov_err")
DIM = 16
N_PHOTONS = 8

#: settings of each profile (command-line flags override them)
PROFILES: dict[str, dict[str, Any]] = {
    "paper": dict(
        runs=12, iterations=40000, eval_at=[10000, 20000], datasets=list(DATASETS),
        latents=list(PAPER_LATENTS + CONTROL_LATENTS), hidden=[512, 512], batch_size=500, critic_steps=5,
        lr=5e-4, optimizer="rmsprop", objective="wgan-gp", gp_weight=10.0,
        n_train=100000, n_latent=100000, n_gen=10000, n_mmd=2000,
    ),
    "quick": dict(
        runs=2, iterations=100, eval_at=[], datasets=list(DATASETS),
        latents=list(PAPER_LATENTS), hidden=[512, 512], batch_size=500, critic_steps=5,
        lr=5e-4, optimizer="rmsprop", objective="wgan-gp", gp_weight=10.0,
        n_train=20000, n_latent=20000, n_gen=5000, n_mmd=1000,
    ),
}

#: settings that do not change any cell's result (left out of settings.json)
_NOT_RESULT_SETTINGS = ("runs", "datasets", "latents", "threads", "stack", "progress", "out", "profile")


# ----------------------------------------------------------------------------- data
def make_data(dataset: str, rows: int, seed: int) -> np.ndarray:
    """``rows`` data vectors, shape (rows, 16), uint8.

    ``"quantum"``: 8 photons in the first 8 of 16 modes of a Haar-random unitary drawn
    from ``seed`` (:func:`qboson.sample`); ``"bernoulli"``: independent fair bits.
    """
    if dataset == "quantum":
        import qboson

        return np.asarray(qboson.sample(N_PHOTONS, DIM, rows, seed=seed, threads=1), dtype=np.uint8)
    if dataset == "bernoulli":
        return np.random.default_rng(seed).integers(0, 2, size=(rows, DIM), dtype=np.uint8)
    raise ValueError(f"unknown dataset {dataset!r}; choose from {DATASETS}")


def in_support(rounded: np.ndarray, dataset: str) -> np.ndarray:
    """Boolean (k,): whether each rounded vector is a possible data vector."""
    if dataset == "quantum":
        return (rounded >= 0).all(axis=1) & (rounded.sum(axis=1) == N_PHOTONS)
    if dataset == "bernoulli":
        return ((rounded == 0) | (rounded == 1)).all(axis=1)
    raise ValueError(f"unknown dataset {dataset!r}; choose from {DATASETS}")


# ----------------------------------------------------------------------------- metrics
def l1_to_integer(x: np.ndarray) -> float:
    """Mean of ``|x − round(x)|`` over all entries (the paper's Table I metric), in [0, 0.5]."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(np.abs(x - np.rint(x))))


def pattern_tvd(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance between the empirical distributions of the integer rows of ``a`` and ``b``."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) == 0 or len(b) == 0:
        raise ValueError(f"need two non-empty (k, d) arrays of one width, got {a.shape} and {b.shape}")
    _, inv = np.unique(np.concatenate([a, b]), axis=0, return_inverse=True)
    inv = inv.ravel()
    k = int(inv.max()) + 1
    p = np.bincount(inv[: len(a)], minlength=k) / len(a)
    q = np.bincount(inv[len(a) :], minlength=k) / len(b)
    return float(0.5 * np.abs(p - q).sum())


def signature(x: np.ndarray) -> np.ndarray:
    """Rows of integer vectors sorted in decreasing order (the occupation pattern without mode labels)."""
    return -np.sort(-np.asarray(x, dtype=np.int64), axis=1)


def mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """Unbiased squared MMD between rows of ``x`` and ``y`` with kernel ``exp(−||u − v||² / bandwidth)``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 2 or len(y) < 2:
        raise ValueError("mmd2 needs at least two rows in each sample")

    def gram(a, b):
        d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
        return np.exp(-np.clip(d, 0.0, None) / bandwidth)

    kxx, kyy, kxy = gram(x, x), gram(y, y), gram(x, y)
    n, m = len(x), len(y)
    sxx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def median_sq_distance(x: np.ndarray) -> float:
    """Median squared Euclidean distance between distinct rows of ``x`` (> 0; 1.0 if all rows coincide)."""
    x = np.asarray(x, dtype=np.float64)
    d = (x * x).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2.0 * x @ x.T
    vals = d[np.triu_indices(len(x), 1)]
    med = float(np.median(np.clip(vals, 0, None))) if vals.size else 0.0
    return med if med > 0 else 1.0


def evaluate_samples(gen: np.ndarray, heldout_a: np.ndarray, heldout_b: np.ndarray, dataset: str, n_mmd: int) -> dict:
    """All metrics of generated vectors ``gen`` (k, 16) against held-out data samples A and B (each k rows)."""
    gen = np.asarray(gen, dtype=np.float64)
    if not np.isfinite(gen).all():
        raise FloatingPointError("generated vectors contain NaN or infinite values")
    a = np.asarray(heldout_a, dtype=np.float64)
    b = np.asarray(heldout_b, dtype=np.float64)
    rounded = np.rint(gen).astype(np.int64)
    j = min(int(n_mmd), len(gen), len(a), len(b))
    h = median_sq_distance(a[:j])
    cov_d = np.cov(a, rowvar=False)
    cov_g = np.cov(gen, rowvar=False)
    return {
        "l1_int": l1_to_integer(gen),
        "in_support": float(in_support(rounded, dataset).mean()),
        "sig_tvd": pattern_tvd(signature(rounded), signature(a)),
        "sig_tvd_floor": pattern_tvd(signature(b), signature(a)),
        "tvd": pattern_tvd(rounded, a.astype(np.int64)),
        "tvd_floor": pattern_tvd(b.astype(np.int64), a.astype(np.int64)),
        "mmd": mmd2(gen[:j], a[:j], h),
        "mmd_floor": mmd2(b[:j], a[:j], h),
        "cov_err": float(np.linalg.norm(cov_g - cov_d) / np.linalg.norm(cov_d)),
    }


# ----------------------------------------------------------------------------- the grid
def cells(settings: dict) -> list[dict]:
    """The grid in run-major order: (run, dataset, latent)."""
    return [
        {"dataset": d, "latent": lat, "run": r}
        for r in range(settings["runs"])
        for d in settings["datasets"]
        for lat in settings["latents"]
    ]


def _seeds(settings: dict, cell: dict) -> dict:
    base, d, r = settings["seed"], DATASETS.index(cell["dataset"]), cell["run"]
    return {
        "data": _grid.derive_seed(base, 1, d, r),
        "latent": _grid.derive_seed(base, 2, d, r),
        "latent_eval": _grid.derive_seed(base, 3, d, r),
        "network": _grid.derive_seed(base, 4, d, r) % (2**31),
    }


def _prepare(settings: dict, cell: dict, cache: dict) -> tuple:
    """(train data, held-out A, held-out B, latent bank, eval latents, seeds) of one cell."""
    from .. import latent as latent_mod

    seeds = _seeds(settings, cell)
    key = (cell["dataset"], cell["run"])
    if key not in cache:
        n_tr, n_gen = settings["n_train"], settings["n_gen"]
        data = make_data(cell["dataset"], n_tr + 2 * n_gen, seeds["data"])
        cache.clear()  # keep one run's data at a time
        cache[key] = (data[:n_tr], data[n_tr : n_tr + n_gen], data[n_tr + n_gen :])
    train, ha, hb = cache[key]
    banks = settings.get("latent_banks") or {}
    if cell["latent"] in banks:
        lat = _banks.BankLatent(banks[cell["latent"]], seeds["latent"])
    else:
        lat = latent_mod.make(cell["latent"], DIM, seed=seeds["latent"])
    bank, z_eval = _banks.train_and_eval_rows(lat, settings["n_latent"], settings["n_gen"], seeds["latent_eval"])
    return train, ha, hb, bank, z_eval, seeds, lat.describe()


def gan_config(settings: dict):
    from .gan import GanConfig

    return GanConfig(
        latent_dim=DIM, data_dim=DIM, hidden=tuple(settings["hidden"]), activation="relu",
        objective=settings["objective"], gp_weight=settings["gp_weight"], optimizer=settings["optimizer"],
        lr=settings["lr"], batch_size=settings["batch_size"], critic_steps=settings["critic_steps"],
        precision=settings.get("precision", "fp32"),
    )


def run_grid(settings: dict, out: Path, *, stack: Optional[int] = None, progress: bool = True) -> list[dict]:
    """Train and evaluate every unfinished cell, write the tables; returns the flat records."""
    import torch

    from .gan import train_stack

    result_settings = {k: v for k, v in settings.items() if k not in _NOT_RESULT_SETTINGS}
    store = _grid.ResultStore(out, result_settings, kind="experiment-synthetic")
    grid = cells(settings)
    todo = store.pending(grid)
    per_run = len(settings["datasets"]) * len(settings["latents"])
    stack = int(stack or per_run)
    config = gan_config(settings)
    if todo and progress:
        print(
            f"synthetic: {len(todo)} of {len(grid)} cells to train, {settings['iterations']} iterations each, "
            f"{stack} per stack, torch threads {torch.get_num_threads()}",
            file=sys.stderr,
        )
    cache: dict = {}
    for group in _grid.chunks(todo, stack):
        prepared = [_prepare(settings, c, cache) for c in group]
        cache.clear()
        members = [p[5]["network"] for p in prepared]
        started = time.time()

        def evaluate(trainer, prepared=prepared, group=group):
            z = torch.stack([torch.as_tensor(p[4]) for p in prepared])
            gen = trainer.generate(z).numpy()
            return [
                evaluate_samples(g, p[1], p[2], c["dataset"], settings["n_mmd"])
                for g, p, c in zip(gen, prepared, group)
            ]

        evals = train_stack(
            config, members, [p[0] for p in prepared], [p[3] for p in prepared], settings["iterations"],
            evaluate, eval_at=settings["eval_at"],
            checkpoint=str(out / "checkpoints" / f"stack-{_grid.stack_id(group)}.pt"),
            progress=progress, description=f"synthetic stack of {len(group)}",
        )
        seconds = time.time() - started
        for i, (c, p) in enumerate(zip(group, prepared)):
            store.save(c, {
                "seeds": p[5], "latent": p[6], "stack_size": len(group), "stack_seconds": seconds,
                "evaluations": [{"iteration": it, **res[i]} for it, res in sorted(evals.items())],
            })
    records = records_of(store.results(grid))
    write_tables(records, out, settings)
    return records


def records_of(results: list[dict]) -> list[dict]:
    """Flatten stored results to one record per (cell, evaluated iteration)."""
    out = []
    for r in results:
        for e in r["evaluations"]:
            out.append({**r["cell"], **e})
    return out


def write_tables(records: list[dict], out: Path, settings: dict) -> list[Path]:
    """``table_iter<N>.md/.csv`` per evaluated iteration and ``table.md/.csv`` for the last one."""
    paths = []
    iterations = sorted({r["iteration"] for r in records})
    headers = {"l1_int": "L1 to integer", "in_support": "in support", "tvd": "pattern TVD",
               "tvd_floor": "TVD floor", "sig_tvd": "signature TVD",
               "sig_tvd_floor": "sig. TVD floor", "mmd": "MMD²", "mmd_floor": "MMD² floor", "cov_err": "cov. rel. error"}
    digits = {"sig_tvd": 3, "sig_tvd_floor": 3, "l1_int": 4, "in_support": 3, "tvd": 3, "tvd_floor": 3, "mmd": 4, "mmd_floor": 4, "cov_err": 3}
    for it in iterations:
        rows = _grid.summarise([r for r in records if r["iteration"] == it], ["dataset", "latent"], METRICS)
        title = (f"Synthetic data (paper Table I), after {it} iterations; mean ± standard error over runs "
                 f"(objective {settings['objective']}, gp {settings['gp_weight']})")
        stems = [out / f"table_iter{it}"] + ([out / "table"] if it == iterations[-1] else [])
        for stem in stems:
            paths.extend(_grid.write_table(rows, stem, ["dataset", "latent"], METRICS, digits, headers, title))
    return paths


# ----------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Train GANs on the synthetic quantum / Bernoulli datasets with each latent (paper Table I)."
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                        help="settings preset (default quick; 'paper' is the paper's full grid)")
    parser.add_argument("--out", default="results/synthetic", help="output folder (resumable)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the grid (default 0)")
    parser.add_argument("--runs", type=int, help="runs (seeds) per cell")
    parser.add_argument("--iterations", type=int, help="generator updates per run")
    parser.add_argument("--eval-at", type=int, nargs="*", help="extra iterations at which to evaluate")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS)
    _grid.add_training_arguments(parser, data_flag="--n-train", data_help="training data vectors per run",
                                 stack_help="cells trained together (default: one run's cells)", optimizer=True)
    parser.add_argument("--n-mmd", type=int, help="rows per sample for the MMD")
    _banks.add_argument(parser)


def resolve_settings(args: argparse.Namespace) -> dict:
    """Profile defaults overridden by the flags that were given; validated."""
    s = _grid.resolve_settings(
        PROFILES[args.profile], args, dim=DIM,
        flags=("runs", "iterations", "eval_at", "datasets", "latents", "hidden", "batch_size", "critic_steps", "lr",
               "optimizer", "objective", "gp_weight", "n_train", "n_latent", "n_gen", "n_mmd"),
        counts=("runs", "iterations", "batch_size", "critic_steps", "n_train", "n_latent", "n_gen", "n_mmd"))
    if s["n_mmd"] < 2:
        raise ValueError("--n-mmd must be >= 2")
    gan_config(s)  # validates the GAN settings
    return s


def run(args: argparse.Namespace) -> int:
    """Entry point of ``qboson experiment synthetic``; returns the exit code."""
    return _grid.run_experiment("synthetic", args, resolve_settings, run_grid, "runs")
