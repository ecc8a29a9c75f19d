"""2-D mixture of Gaussians (paper Fig. 1, App. C): ``qboson experiment mog``.

Data: 7 blobs on a circle: pick ``k`` uniformly from 0..6, draw a radius ``r ~ N(5, 0.2)``
and an angle ``φ ~ N(θ_k, 0.05)`` with ``θ_k = 2πk/7``, return ``r (cos φ, sin φ)``.
A GAN (generator and critic 2 × 256, LeakyReLU slope 0.2, WGAN-GP weight 10, Adam
β = (0, 0.9), lr 5e-4, batch 32, 5 critic updates per generator update) learns it from
latents of size 16: ``quantum`` and ``photonic`` photon counts of 8 photons in a 16-mode
"1-3-9" time-bin loop circuit (:func:`qboson.circuits.time_bin_interferometer`, angles
drawn per seed), ``gaussian`` and ``bernoulli``; all centred to mean 0.  Within a seed all
latents share the circuit, the data and the network initialisation.

Mode metrics (on ``n_gen`` generated points from held-out latent draws).  Each blob is an
exact Gaussian in polar coordinates, so a point's standardised distance to blob ``k`` is

    d_k = sqrt( ((ρ − 5) / 0.2)² + (wrap(φ − θ_k) / 0.05)² ),

with ``(ρ, φ)`` its polar coordinates and ``wrap`` into (−π, π].  A point *belongs* to
blob ``k`` if ``d_k ≤ 3`` (the "3σ" region; a data point falls outside every blob with
probability ``exp(−9/2) ≈ 0.011``).

* ``between``: fraction of generated points that belong to no blob (farther than 3σ from
  every mode: interpolation between modes or outliers); lower is better; data: 0.011.
* ``modes``: number of blobs holding at least 10 % of a fair share (``0.1 · n_gen / 7``
  points); 7 is best.
* ``mode_tvd``: total-variation distance between the share of each blob among the
  points that belong to a blob and the uniform 1/7; 0 is best.

Outputs in ``--out``: ``cells/*.json`` (+ ``.npz`` with 2,000 generated points per
evaluation), ``table.md``/``.csv`` (last evaluation) and ``table_iter<N>.*``, and
``scatter_iter<N>.png`` (one column per latent, one row per seed, the data first).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import _banks, _grid

N_BLOBS = 7
RADIUS, RADIUS_STD, ANGLE_STD = 5.0, 0.2, 0.05
THRESHOLD = 3.0
COVERED_SHARE = 0.1
DIM = 16
DELAYS = (1, 3, 9)
METRICS = ("between", "modes", "mode_tvd")
PLOT_POINTS = 2000

PROFILES: dict[str, dict[str, Any]] = {
    "paper": dict(
        seeds=5, iterations=5000, eval_at=[], latents=["quantum", "photonic", "gaussian", "bernoulli"],
        hidden=[256, 256], batch_size=32, critic_steps=5, lr=5e-4, betas=[0.0, 0.9], objective="wgan-gp",
        gp_weight=10.0, n_data=100000, n_latent=100000, n_gen=10000,
    ),
    "quick": dict(
        seeds=2, iterations=1000, eval_at=[500], latents=["quantum", "photonic", "gaussian", "bernoulli"],
        hidden=[256, 256], batch_size=32, critic_steps=5, lr=5e-4, betas=[0.0, 0.9], objective="wgan-gp",
        gp_weight=10.0, n_data=20000, n_latent=20000, n_gen=5000,
    ),
}
_NOT_RESULT_SETTINGS = ("seeds", "latents")


# ----------------------------------------------------------------------------- data and metrics
def blob_angles() -> np.ndarray:
    """θ_k = 2πk/7, shape (7,)."""
    return 2 * np.pi * np.arange(N_BLOBS) / N_BLOBS


def sample_mixture(k: int, seed) -> np.ndarray:
    """``k`` points of the 7-blob mixture, shape (k, 2), float32."""
    rng = np.random.default_rng(seed)
    blob = rng.integers(0, N_BLOBS, size=int(k))
    r = rng.normal(RADIUS, RADIUS_STD, size=int(k))
    phi = rng.normal(blob_angles()[blob], ANGLE_STD)
    return np.stack([r * np.cos(phi), r * np.sin(phi)], axis=1).astype(np.float32)


def blob_distances(points: np.ndarray) -> np.ndarray:
    """Standardised polar distance ``d_k`` of each point to each blob, shape (k, 7)."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"points must have shape (k, 2), got {p.shape}")
    rho = np.hypot(p[:, 0], p[:, 1])
    phi = np.arctan2(p[:, 1], p[:, 0])
    dphi = np.angle(np.exp(1j * (phi[:, None] - blob_angles()[None, :])))  # wrapped into (-pi, pi]
    return np.sqrt(((rho[:, None] - RADIUS) / RADIUS_STD) ** 2 + (dphi / ANGLE_STD) ** 2)


def mode_metrics(points: np.ndarray) -> dict:
    """``between``, ``modes`` and ``mode_tvd`` of generated points (see the module docstring)."""
    p = np.asarray(points, dtype=np.float64)
    if not np.isfinite(p).all():
        raise FloatingPointError("generated points contain NaN or infinite values")
    d = blob_distances(p)
    nearest = d.argmin(axis=1)
    on = d.min(axis=1) <= THRESHOLD
    counts = np.bincount(nearest[on], minlength=N_BLOBS)
    share = counts / counts.sum() if counts.sum() else np.zeros(N_BLOBS)
    return {
        "between": float(1.0 - on.mean()),
        "modes": int((counts >= COVERED_SHARE * len(p) / N_BLOBS).sum()),
        "mode_tvd": float(0.5 * np.abs(share - 1.0 / N_BLOBS).sum()) if counts.sum() else 1.0,
    }


# ----------------------------------------------------------------------------- the grid
def cells(settings: dict) -> list[dict]:
    return [{"latent": lat, "seed": s} for s in range(settings["seeds"]) for lat in settings["latents"]]


def _seeds(settings: dict, s: int) -> dict:
    base = settings["seed"]
    return {
        "circuit": _grid.derive_seed(base, 1, s),
        "latent": _grid.derive_seed(base, 2, s),
        "data": _grid.derive_seed(base, 3, s),
        "network": _grid.derive_seed(base, 4, s) % (2**31),
        "latent_eval": _grid.derive_seed(base, 5, s),
    }


def make_latent(name: str, seeds: dict, banks: Optional[dict] = None):
    """The latent of a cell: photon kinds (and matched controls) on the seed's 1-3-9 loop circuit;
    ``pt_series`` on its own "1-1" circuit from the seed; a latent served by a bank (``banks``, from
    ``--latent-bank``) is a slice of that bank (one fixed circuit for every seed)."""
    from .. import latent as latent_mod

    if banks and name in banks:
        return _banks.BankLatent(banks[name], seeds["latent"])
    if name in ("quantum", "photonic", "gaussian_matched", "counts_matched"):
        from ..circuits import time_bin_interferometer

        u = time_bin_interferometer(DIM, DELAYS, seed=seeds["circuit"]).unitary()
        return latent_mod.make(name, DIM, seed=seeds["latent"], unitary=u)
    return latent_mod.make(name, DIM, seed=seeds["latent"])


def gan_config(settings: dict):
    from .gan import GanConfig

    return GanConfig(
        latent_dim=DIM, data_dim=2, hidden=tuple(settings["hidden"]), activation="leaky_relu", negative_slope=0.2,
        objective=settings["objective"], gp_weight=settings["gp_weight"], optimizer="adam", lr=settings["lr"],
        betas=tuple(settings["betas"]), batch_size=settings["batch_size"], critic_steps=settings["critic_steps"],
        precision=settings.get("precision", "fp32"),
    )


def run_grid(settings: dict, out: Path, *, stack: Optional[int] = None, progress: bool = True) -> list[dict]:
    """Train and evaluate every unfinished cell, write tables and plots; returns flat records."""
    import torch

    from .gan import train_stack

    store = _grid.ResultStore(out, {k: v for k, v in settings.items() if k not in _NOT_RESULT_SETTINGS},
                              kind="experiment-mog")
    grid = cells(settings)
    todo = store.pending(grid)
    stack = int(stack or max(1, len(todo)))
    config = gan_config(settings)
    if todo and progress:
        print(f"mog: {len(todo)} of {len(grid)} cells to train, {settings['iterations']} iterations each, "
              f"{stack} per stack, torch threads {torch.get_num_threads()}", file=sys.stderr)
    for group in _grid.chunks(todo, stack):
        seeds = [_seeds(settings, c["seed"]) for c in group]
        latents = [make_latent(c["latent"], s, settings.get("latent_banks")) for c, s in zip(group, seeds)]
        rows = [_banks.train_and_eval_rows(lat, settings["n_latent"], settings["n_gen"], s["latent_eval"])
                for lat, s in zip(latents, seeds)]
        banks = [r[0] for r in rows]
        z_eval = torch.stack([torch.as_tensor(r[1]) for r in rows])
        data = [sample_mixture(settings["n_data"], s["data"]) for s in seeds]

        def evaluate(trainer):
            gen = trainer.generate(z_eval).numpy()
            return [dict(mode_metrics(g), points=g[:PLOT_POINTS].tolist()) for g in gen]

        started = time.time()
        evals = train_stack(
            config, [s["network"] for s in seeds], data, banks, settings["iterations"], evaluate,
            eval_at=settings["eval_at"], checkpoint=str(out / "checkpoints" / f"stack-{_grid.stack_id(group)}.pt"),
            progress=progress, description=f"mog stack of {len(group)}",
        )
        seconds = time.time() - started
        for i, (c, s, lat) in enumerate(zip(group, seeds, latents)):
            arrays = {f"iter{it}": np.asarray(res[i]["points"], dtype=np.float32) for it, res in evals.items()}
            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            _grid.atomic_write_bytes(store.path(c, ".npz"), buf.getvalue())
            store.save(c, {
                "seeds": s, "latent": lat.describe(), "stack_size": len(group), "stack_seconds": seconds,
                "evaluations": [{"iteration": it, **{k: v for k, v in res[i].items() if k != "points"}}
                                for it, res in sorted(evals.items())],
            })
    results = store.results(grid)
    records = [{**r["cell"], **e} for r in results for e in r["evaluations"]]
    write_tables(records, out, settings)
    if results:
        try:
            for it in sorted({r["iteration"] for r in records}):
                plot_grid(store, grid, settings, it, out / f"scatter_iter{it}.png")
        except ImportError as exc:
            print(f"mog: no scatter plots ({exc})", file=sys.stderr)
    return records


def write_tables(records: list[dict], out: Path, settings: dict) -> list[Path]:
    paths = []
    iterations = sorted({r["iteration"] for r in records})
    headers = {"between": "between modes (>3σ)", "modes": "modes covered (of 7)", "mode_tvd": "mode-share TVD"}
    digits = {"between": 3, "modes": 2, "mode_tvd": 3}
    for it in iterations:
        rows = _grid.summarise([r for r in records if r["iteration"] == it], ["latent"], METRICS)
        title = (f"2-D mixture of 7 Gaussians (paper Fig. 1), after {it} generator iterations; "
                 f"mean ± standard error over seeds; data itself: between = {np.exp(-THRESHOLD**2 / 2):.3f}")
        stems = [out / f"table_iter{it}"] + ([out / "table"] if it == iterations[-1] else [])
        for stem in stems:
            paths.extend(_grid.write_table(rows, stem, ["latent"], METRICS, digits, headers, title))
    return paths


def plot_grid(store: _grid.ResultStore, grid: list[dict], settings: dict, iteration: int, path: Path) -> Path:
    """Scatter plots: one column per latent (data first), one row per seed; written atomically as PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("scatter plots need matplotlib: pip install qboson[plot]") from exc
    latents = list(dict.fromkeys(c["latent"] for c in grid))
    seeds = sorted({c["seed"] for c in grid})
    fig, axes = plt.subplots(len(seeds), len(latents) + 1, figsize=(2.2 * (len(latents) + 1), 2.2 * len(seeds)),
                             squeeze=False)
    centres = RADIUS * np.stack([np.cos(blob_angles()), np.sin(blob_angles())], axis=1)
    for row, s in enumerate(seeds):
        panels = [("data", sample_mixture(PLOT_POINTS, _seeds(settings, s)["data"] + 1))]
        for lat in latents:
            npz = store.path({"latent": lat, "seed": s}, ".npz")
            pts = None
            if npz.exists():
                try:
                    with np.load(npz, allow_pickle=False) as f:
                        pts = f[f"iter{iteration}"] if f"iter{iteration}" in f.files else None
                except Exception as exc:  # noqa: BLE001 - zipfile, pickle and format errors alike
                    raise ValueError(f"{npz} is corrupt ({exc}); delete it and its .json to recompute that cell") from exc
                if pts is not None and (pts.ndim != 2 or pts.shape[1] != 2 or pts.dtype.kind != "f"):
                    raise ValueError(f"{npz}: points of shape {pts.shape} {pts.dtype}, expected (k, 2) floats; delete it")
            panels.append((lat, pts))
        for col, (name, pts) in enumerate(panels):
            ax = axes[row, col]
            if pts is not None:
                ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.3, color="C0" if col else "k", rasterized=True)
            ax.scatter(centres[:, 0], centres[:, 1], s=8, marker="x", color="r")
            ax.set_xlim(-7.5, 7.5)
            ax.set_ylim(-7.5, 7.5)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
            if col == 0:
                ax.set_ylabel(f"seed {s}", fontsize=8)
    fig.suptitle(f"2-D mixture, {iteration} iterations", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    _grid.atomic_write_bytes(path, buf.getvalue())
    return path


# ----------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Train GANs on a 2-D mixture of 7 Gaussians with each latent (paper Fig. 1)."
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                        help="settings preset (default quick; 'paper': 5 seeds x 5,000 iterations; add --iterations 10000 "
                             "--eval-at 5000 for the paper's longer run)")
    parser.add_argument("--out", default="results/mog", help="output folder (resumable)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the grid (default 0)")
    parser.add_argument("--seeds", type=int, help="seeds per latent")
    parser.add_argument("--iterations", type=int, help="generator updates per run")
    parser.add_argument("--eval-at", type=int, nargs="*", help="extra iterations at which to evaluate")
    _grid.add_training_arguments(parser, data_flag="--n-data", data_help="training points per seed",
                                 stack_help="cells trained together (default: all pending cells)")
    _banks.add_argument(parser)


def resolve_settings(args: argparse.Namespace) -> dict:
    """Profile defaults overridden by the flags that were given; validated."""
    s = _grid.resolve_settings(
        PROFILES[args.profile], args, dim=DIM,
        flags=("seeds", "iterations", "eval_at", "latents", "hidden", "batch_size", "critic_steps", "lr", "objective",
               "gp_weight", "n_data", "n_latent", "n_gen"),
        counts=("seeds", "iterations", "batch_size", "critic_steps", "n_data", "n_latent", "n_gen"))
    gan_config(s)
    return s


def run(args: argparse.Namespace) -> int:
    """Entry point of ``qboson experiment mog``; returns the exit code."""
    return _grid.run_experiment("mog", args, resolve_settings, run_grid, "seeds")
