"""WGAN-GP training of MolGAN, in one loop you can read at one sitting.

A run directory holds::

    config.json          the TrainConfig (also inside every checkpoint)
    latent_bank.npy      (M, dim) float32 latent vectors drawn once for the run
    checkpoint.pt        model, optimisers, RNG states, stream positions, iteration
    metrics.csv          one row per ``log_every`` iterations (window means)
    train_summary.json   written when training finishes

Reproducibility: every random number of the loop comes from three generators
created from ``config.seed`` (data order + augmentation, latent order, Gumbel /
interpolation noise), all saved in the checkpoint, so ``resume`` continues
bit-for-bit on CPU.  A first Ctrl-C finishes the current iteration, writes a
checkpoint and stops; ``train(..., resume=True)`` carries on from there.

One training step (``critic step``) is: draw real and fake batches, score both in
one critic pass, add the gradient penalty at per-sample interpolates, update the
critic; after every ``n_critic``-th critic step, update the generator on a fresh
latent batch.  ``config.iteration_unit`` says whether an *iteration* counts
critic steps (default) or generator steps.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from .._atomic import atomic_path, atomic_save_npy, atomic_write_text
from .config import TrainConfig
from .model import Discriminator, Generator

__all__ = [
    "GraphData",
    "train",
    "gradient_penalty",
    "load_checkpoint",
    "build_models",
    "make_latent_bank",
    "CHECKPOINT",
]

CHECKPOINT = "checkpoint.pt"
METRIC_FIELDS = ["iteration", "critic_step", "critic_loss", "wasserstein", "gradient_penalty",
                 "generator_loss", "elapsed_s"]


@dataclass
class GraphData:
    """Dense training graphs: ``nodes (N, n) int64`` atom classes, ``adjacency (N, n, n) int64`` bond classes."""

    nodes: np.ndarray
    adjacency: np.ndarray
    n_atom_types: int = 5
    n_bond_types: int = 4

    def __post_init__(self) -> None:
        self.nodes = np.ascontiguousarray(self.nodes, dtype=np.int64)
        self.adjacency = np.ascontiguousarray(self.adjacency, dtype=np.int64)
        if self.nodes.ndim != 2 or self.adjacency.shape != self.nodes.shape + self.nodes.shape[1:]:
            raise ValueError(f"expected nodes (N, n) and adjacency (N, n, n), got {self.nodes.shape} and "
                             f"{self.adjacency.shape}")
        if len(self.nodes) == 0:
            raise ValueError("no training graphs")
        if self.nodes.min() < 0 or self.nodes.max() >= self.n_atom_types:
            raise ValueError(f"node classes must be in [0, {self.n_atom_types})")
        if self.adjacency.min() < 0 or self.adjacency.max() >= self.n_bond_types:
            raise ValueError(f"bond classes must be in [0, {self.n_bond_types})")

    @classmethod
    def qm9_train(cls, data_seed: int = 0) -> "GraphData":
        """The training split of QM9 from :mod:`qboson.chem` (needs the ``chem`` extra)."""
        from .. import chem

        g = chem.load_qm9_graphs(seed=data_seed)
        return cls(g.nodes[g.train_idx], g.adjacency[g.train_idx], len(chem.ATOM_TYPES), len(chem.BOND_TYPES))


def latent_source(config: TrainConfig):
    """The run's latent: ``config.latent`` drawn from ``config.seed``, or the one recorded in
    ``config.latent_bank_path`` (a ``qboson.latent.Bank``), checked against ``latent`` and ``dim``."""
    from .. import latent as latents

    if config.latent_bank_path is None:
        return latents.make(config.latent, config.dim, seed=config.seed)
    bank = latents.Bank(config.latent_bank_path)
    if bank.name != config.latent or bank.dim != config.dim:
        raise ValueError(f"latent bank {config.latent_bank_path!r} holds {bank.name!r} latents of dim {bank.dim}, "
                         f"but the run asks for {config.latent!r} of dim {config.dim}")
    return bank


def make_latent_bank(config: TrainConfig) -> np.ndarray:
    """``(rows, config.dim) float32`` centred latent vectors streamed during training.

    By default ``config.latent_bank_size`` vectors of ``config.latent`` (for photonic latents the
    interferometer is drawn from ``config.seed``, the shots from a seed derived from it); with
    ``config.latent_bank_path`` the first ``latent_bank_size`` rows of that bank (all if it is smaller).
    """
    source = latent_source(config)
    if config.latent_bank_path is not None:
        bank = np.asarray(source.rows(0, min(len(source), config.latent_bank_size)), dtype=np.float32)
        return bank
    bank = np.asarray(source.sample(config.latent_bank_size, seed=_derived_seed(config.seed, "latent-bank")),
                      dtype=np.float32)
    if bank.shape != (config.latent_bank_size, config.dim):
        raise ValueError(f"latent {config.latent!r} returned shape {bank.shape}, "
                         f"expected {(config.latent_bank_size, config.dim)}")
    return bank


def _derived_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for ``purpose`` derived from the run seed (independent streams)."""
    tag = int.from_bytes(purpose.encode(), "little") % (2**32)
    return int(np.random.SeedSequence([int(seed), tag]).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


def build_models(config: TrainConfig, n_nodes: int = 9, n_atom_types: int = 5,
                 n_bond_types: int = 4) -> tuple[Generator, Discriminator]:
    """Generator and critic of ``config`` (weights drawn from torch's global RNG)."""
    gen = Generator(config.dim, n_nodes, n_atom_types, n_bond_types, config.generator_widths, config.leaky_slope)
    critic = Discriminator(n_atom_types, n_bond_types, config.critic_conv_dims, config.critic_aggregation_dim,
                           config.critic_mlp_dims)
    return gen, critic


def gradient_penalty(critic: torch.nn.Module, real: tuple[torch.Tensor, torch.Tensor],
                     fake: tuple[torch.Tensor, torch.Tensor], eps: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``(||grad_{(E,X)} D(E_hat, X_hat)||_2 - 1)^2`` (scalar, differentiable).

    ``E_hat = eps_b E_real + (1 - eps_b) E_fake`` (same for nodes X) with one
    ``eps (B,)`` per sample; the gradient norm of sample ``b`` is taken over both
    inputs of sample ``b`` together: the edges and the nodes the critic sees.
    """
    (real_e, real_x), (fake_e, fake_x) = real, fake
    e_hat = (eps.view(-1, 1, 1, 1) * real_e + (1 - eps.view(-1, 1, 1, 1)) * fake_e).requires_grad_(True)
    x_hat = (eps.view(-1, 1, 1) * real_x + (1 - eps.view(-1, 1, 1)) * fake_x).requires_grad_(True)
    scores = critic(e_hat, x_hat)
    grad_e, grad_x = torch.autograd.grad(scores.sum(), (e_hat, x_hat), create_graph=True)
    sq = grad_e.flatten(1).pow(2).sum(1) + grad_x.flatten(1).pow(2).sum(1)
    return (sq.sqrt() - 1.0).pow(2).mean()


class _Stream:
    """Shuffled epochs over ``size`` items; state = (numpy RNG state, permutation, position)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.perm = self.rng.permutation(size)
        self.pos = 0

    def take(self, k: int) -> np.ndarray:
        if k > self.size:
            raise ValueError(f"batch of {k} from a set of {self.size}: use a smaller batch or a larger set")
        if self.pos + k > self.size:  # start a new epoch; the tail of the old one is dropped
            self.perm = self.rng.permutation(self.size)
            self.pos = 0
        idx = self.perm[self.pos: self.pos + k]
        self.pos += k
        return idx

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "perm": self.perm.copy(), "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.perm = np.asarray(state["perm"])
        self.pos = int(state["pos"])


def _real_batch(data: GraphData, idx: np.ndarray, permute_prob: float,
                rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot real graphs ``(B, n, n, R)``, ``(B, n, A)``; each graph's nodes permuted with probability ``permute_prob``."""
    nodes, adj = data.nodes[idx], data.adjacency[idx]
    b, n = nodes.shape
    if permute_prob > 0:
        keys = rng.random((b, n))
        keys[rng.random(b) >= permute_prob] = np.arange(n)  # identity for the unpermuted graphs
        perm = np.argsort(keys, axis=1)
        nodes = np.take_along_axis(nodes, perm, axis=1)
        adj = adj[np.arange(b)[:, None, None], perm[:, :, None], perm[:, None, :]]
    e = torch.nn.functional.one_hot(torch.from_numpy(adj), data.n_bond_types).float()
    x = torch.nn.functional.one_hot(torch.from_numpy(nodes), data.n_atom_types).float()
    return e, x


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict of a run (our own file format: it holds numpy RNG states, so ``weights_only=False``)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint in {run_dir} (expected {path})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated / foreign file
        raise ValueError(f"corrupt checkpoint {path}: {exc}") from exc
    if not isinstance(ckpt, dict) or "config" not in ckpt or "generator" not in ckpt:
        raise ValueError(f"{path} is not a qboson MolGAN checkpoint")
    return ckpt


def _read_metrics(path: Path, upto_step: int) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if int(row["critic_step"]) <= upto_step]


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


@contextlib.contextmanager
def _stop_on_sigint():
    """First Ctrl-C sets a flag (checked between iterations); a second one interrupts at once."""
    flag = {"stop": False}
    if not _in_main_thread():  # signal handlers can only be set from the main thread
        yield flag
        return

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    data: Optional[GraphData] = None,
    latent_bank: Optional[np.ndarray] = None,
    progress: bool = True,
    stop_after: Optional[int] = None,
    callback: Optional[Callable[[dict[str, Any]], None]] = None,
) -> dict[str, Any]:
    """Train MolGAN into ``out_dir`` and return the summary dict (also saved as ``train_summary.json``).

    ``data``: training graphs (default: the QM9 training split of ``config.data_seed``).
    ``latent_bank``: ``(M, dim)`` latent vectors (default: drawn with :func:`make_latent_bank`).
    ``resume``: continue from ``out_dir/checkpoint.pt`` if there is one, else start (the
    saved config is used; ``config`` may only change ``iterations``, to extend a run).
    Without ``resume`` an existing checkpoint is an error (``FileExistsError``).
    ``stop_after``: stop (with a checkpoint) after this many critic steps in total, as an
    interruption would; used by tests.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    ckpt = None
    if resume and (out / CHECKPOINT).exists():
        ckpt = load_checkpoint(out)
        saved = TrainConfig.from_dict(ckpt["config"])
        if saved.replace(iterations=config.iterations) != config.replace(iterations=config.iterations):
            diff = {k: (v, config.to_dict()[k]) for k, v in saved.to_dict().items()
                    if config.to_dict()[k] != v and k != "iterations"}
            raise ValueError(f"cannot resume {out}: config differs from the checkpoint's: {diff}")
        config = saved.replace(iterations=config.iterations)
    elif (out / CHECKPOINT).exists():
        raise FileExistsError(f"{out} already holds a run; pass resume=True (--resume) or use a new directory")
    atomic_write_text(out / "config.json", config.to_json() + "\n")

    data = GraphData.qm9_train(config.data_seed) if data is None else data
    bank_path = out / "latent_bank.npy"
    if ckpt is not None:
        try:
            latent_bank = np.load(bank_path)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot resume {out}: latent bank {bank_path} is missing or damaged ({exc})") from exc
        if latent_bank.ndim != 2 or latent_bank.shape[1] != config.dim:
            raise ValueError(f"cannot resume {out}: latent bank {bank_path} has shape {latent_bank.shape}")
    else:
        latent_bank = make_latent_bank(config) if latent_bank is None else np.asarray(latent_bank, np.float32)
        if latent_bank.ndim != 2 or latent_bank.shape[1] != config.dim:
            raise ValueError(f"latent_bank must have shape (M, {config.dim}), got {latent_bank.shape}")
        atomic_save_npy(bank_path, latent_bank)
    bank = torch.from_numpy(np.ascontiguousarray(latent_bank, dtype=np.float32))

    # --- models, optimisers, random streams -------------------------------------------------
    torch.manual_seed(_derived_seed(config.seed, "init"))
    gen, critic = build_models(config, data.nodes.shape[1], data.n_atom_types, data.n_bond_types)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr_generator, betas=config.betas)
    opt_d = torch.optim.Adam(critic.parameters(), lr=config.lr_critic, betas=config.betas)
    real_stream = _Stream(len(data.nodes), _derived_seed(config.seed, "data-order"))
    latent_stream = _Stream(len(bank), _derived_seed(config.seed, "latent-order"))
    augment_rng = np.random.default_rng(_derived_seed(config.seed, "augment"))
    noise = torch.Generator().manual_seed(_derived_seed(config.seed, "noise"))
    step, elapsed, window, rows = 0, 0.0, _Window(), []
    if ckpt is not None:
        gen.load_state_dict(ckpt["generator"])
        critic.load_state_dict(ckpt["critic"])
        opt_g.load_state_dict(ckpt["opt_generator"])
        opt_d.load_state_dict(ckpt["opt_critic"])
        real_stream.load_state_dict(ckpt["real_stream"])
        latent_stream.load_state_dict(ckpt["latent_stream"])
        augment_rng.bit_generator.state = ckpt["augment_rng"]
        noise.set_state(ckpt["noise_rng"])
        torch.set_rng_state(ckpt["torch_rng"])
        step, elapsed = int(ckpt["critic_step"]), float(ckpt["elapsed_s"])
        window = _Window(**ckpt["window"])
        rows = _read_metrics(out / "metrics.csv", step)

    def save_checkpoint() -> None:
        _atomic_torch_save({
            "config": config.to_dict(), "critic_step": step,
            "graph_shape": (data.nodes.shape[1], data.n_atom_types, data.n_bond_types), "iteration": _iteration(config, step),
            "generator": gen.state_dict(), "critic": critic.state_dict(),
            "opt_generator": opt_g.state_dict(), "opt_critic": opt_d.state_dict(),
            "real_stream": real_stream.state_dict(), "latent_stream": latent_stream.state_dict(),
            "augment_rng": augment_rng.bit_generator.state, "noise_rng": noise.get_state(),
            "torch_rng": torch.get_rng_state(), "elapsed_s": elapsed, "window": window.__dict__,
        }, out / CHECKPOINT)
        _write_metrics(out / "metrics.csv", rows)

    total = config.critic_steps
    per_iter = config.n_critic if config.iteration_unit == "generator" else 1
    B = config.batch_size
    last_g_loss = float("nan")

    # --- the loop ------------------------------------------------------------------------------
    with _stop_on_sigint() as flag, _bar(config, step, progress) as bar:
        while step < total:
            t0 = time.perf_counter()
            # critic update: real and fake scored in one pass, penalty at per-sample interpolates
            real = _real_batch(data, real_stream.take(B), config.permute_prob, augment_rng)
            z = bank[latent_stream.take(B)]
            with torch.no_grad():
                fake = gen.graphs(z, config.output_mode, config.temperature, noise)
            scores = critic(torch.cat([real[0], fake[0]]), torch.cat([real[1], fake[1]]))
            wasserstein = scores[:B].mean() - scores[B:].mean()
            eps = torch.rand(B, generator=noise)
            gp = gradient_penalty(critic, real, fake, eps)
            d_loss = -wasserstein + config.gp_weight * gp
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            step += 1
            # generator update every n_critic critic steps, on a fresh latent batch
            if step % config.n_critic == 0:
                z = bank[latent_stream.take(B)]
                critic.requires_grad_(False)
                g_loss = -critic(*gen.graphs(z, config.output_mode, config.temperature, noise)).mean()
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                critic.requires_grad_(True)
                last_g_loss = g_loss.item()
                window.add_generator(last_g_loss)
            window.add_critic(d_loss.item(), wasserstein.item(), gp.item())
            elapsed += time.perf_counter() - t0

            if step % per_iter == 0:
                bar.update(1)
                iteration = step // per_iter
                if iteration % config.log_every == 0 or step == total:
                    row = window.row(iteration, step, elapsed)
                    rows.append(row)
                    bar.set_postfix(d=f"{row['critic_loss']:.3f}", w=f"{row['wasserstein']:.3f}",
                                    g=f"{last_g_loss:.3f}", refresh=False)
                    if callback is not None:
                        callback(row)
                    window = _Window()
                if iteration % config.checkpoint_every == 0 or step == total:
                    save_checkpoint()
            if flag["stop"] or (stop_after is not None and step >= stop_after):
                save_checkpoint()  # a consistent state after a whole critic step
                return {"finished": False, "critic_step": step, "iteration": _iteration(config, step)}

    summary = {
        "finished": True, "critic_step": step, "iteration": _iteration(config, step),
        "iteration_unit": config.iteration_unit, "train_seconds": elapsed,
        "iterations_per_second": _iteration(config, step) / elapsed if elapsed > 0 else math.nan,
        "final": rows[-1] if rows else None,
    }
    atomic_write_text(out / "train_summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _iteration(config: TrainConfig, step: int) -> int:
    return step // (config.n_critic if config.iteration_unit == "generator" else 1)


@dataclass
class _Window:
    """Running sums of the losses since the last log row."""

    n_critic: int = 0
    critic_loss: float = 0.0
    wasserstein: float = 0.0
    gp: float = 0.0
    n_gen: int = 0
    generator_loss: float = 0.0

    def add_critic(self, loss: float, w: float, gp: float) -> None:
        self.n_critic += 1
        self.critic_loss += loss
        self.wasserstein += w
        self.gp += gp

    def add_generator(self, loss: float) -> None:
        self.n_gen += 1
        self.generator_loss += loss

    def row(self, iteration: int, step: int, elapsed: float) -> dict[str, Any]:
        n, g = max(self.n_critic, 1), self.n_gen
        return {"iteration": iteration, "critic_step": step, "critic_loss": self.critic_loss / n,
                "wasserstein": self.wasserstein / n, "gradient_penalty": self.gp / n,
                "generator_loss": self.generator_loss / g if g else math.nan, "elapsed_s": round(elapsed, 3)}


@contextlib.contextmanager
def _bar(config: TrainConfig, step: int, enabled: bool):
    from .._progress import progress_bar

    with progress_bar(config.iterations, enabled, desc=f"{config.latent} d={config.dim} s={config.seed}",
                      unit="it", initial=_iteration(config, step)) as bar:
        yield bar
