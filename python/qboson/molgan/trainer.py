"""WGAN-GP training of MolGAN: the loop, in one function you can read at one sitting.

One critic step draws real and fake batches, scores both in one critic pass, adds
the gradient penalty at per-sample interpolates and updates the critic; after
every ``n_critic``-th critic step the generator is updated on a fresh latent
batch.  ``config.iteration_unit`` says whether an *iteration* counts critic steps
or generator steps.  The run folder's files are described in
:mod:`qboson.molgan.runfiles`, the batches in :mod:`qboson.molgan.batches`.

Reproducibility: every random number comes from generators seeded from
``config.seed`` (data order + augmentation, latent order, Gumbel / interpolation
noise), all saved in the checkpoint, so ``resume`` continues bit-for-bit on CPU.
A first Ctrl-C finishes the current step, writes a checkpoint and stops.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from .._atomic import atomic_save_npy, atomic_write_text
from .._bf16support import warn_if_bf16_emulated
from .._fpenv import flushed_subnormals
from .._heap import retained_heap
from .._validation import check_memory
from .batches import GraphData, Stream, derived_seed, make_latent_bank, real_batch
from .config import EXECUTION_FIELDS, TrainConfig, evaluation_bytes
from .model import Discriminator, Generator, init_weights, relax
from .runfiles import (CHECKPOINT, CURVE_FIELDS, METRIC_FIELDS, LossWindow, load_checkpoint,
                       prepare_run_dir, read_rows, save_checkpoint, stop_on_sigint, write_rows)

__all__ = ["train", "gradient_penalty", "build_models", "resolve_device", "open_run", "RunState",
           "forward_precision", "fake_graphs"]

#: ``evaluator(generator, iteration, critic_step) -> rows`` records points of the training curve
Evaluator = Callable[[Generator, int, int], list[dict[str, Any]]]


def build_models(config: TrainConfig, n_nodes: int = 9, n_atom_types: int = 5,
                 n_bond_types: int = 4) -> tuple[Generator, Discriminator]:
    """Generator and critic of ``config`` (weights drawn from torch's global RNG, then ``config.init``)."""
    gen = Generator(config.dim, n_nodes, n_atom_types, n_bond_types, config.generator_widths, config.leaky_slope)
    critic = Discriminator(n_atom_types, n_bond_types, config.critic_conv_dims, config.critic_aggregation_dim,
                           config.critic_mlp_dims)
    init_weights(gen, config.init)
    init_weights(critic, config.init)
    return gen, critic


def gradient_penalty(critic: torch.nn.Module, real: tuple[torch.Tensor, torch.Tensor],
                     fake: tuple[torch.Tensor, torch.Tensor], eps: torch.Tensor,
                     precision: str = "fp32") -> torch.Tensor:
    """Mean over the batch of ``(||grad_{(E,X)} D(E_hat, X_hat)||_2 - 1)^2`` (scalar, differentiable).

    ``E_hat = eps_b E_real + (1 - eps_b) E_fake`` (same for nodes X) with one
    ``eps (B,)`` per sample; the gradient norm of sample ``b`` is taken over both
    inputs of sample ``b`` together: the edges and the nodes the critic sees.
    ``precision="bf16"`` runs the critic's products under bf16 autocast; the
    interpolates, their gradients and the norm stay float32.
    """
    (real_e, real_x), (fake_e, fake_x) = real, fake
    e_hat = (eps.view(-1, 1, 1, 1) * real_e + (1 - eps.view(-1, 1, 1, 1)) * fake_e).requires_grad_(True)
    x_hat = (eps.view(-1, 1, 1) * real_x + (1 - eps.view(-1, 1, 1)) * fake_x).requires_grad_(True)
    with forward_precision(precision, e_hat.device):
        scores = critic(e_hat, x_hat)
    grad_e, grad_x = torch.autograd.grad(scores.float().sum(), (e_hat, x_hat), create_graph=True)
    sq = grad_e.flatten(1).pow(2).sum(1) + grad_x.flatten(1).pow(2).sum(1)
    return (sq.sqrt() - 1.0).pow(2).mean()


def forward_precision(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context for the networks' forward products: bf16 autocast on ``device`` or nothing (fp32)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"unknown precision {precision!r}; choose fp32 or bf16")
    return contextlib.nullcontext()


def fake_graphs(gen: Generator, z: torch.Tensor, config: TrainConfig, noise: torch.Generator) -> tuple[
        torch.Tensor, torch.Tensor]:
    """``gen.graphs(z)`` with the products in ``config.precision`` and the softmax in float32."""
    with forward_precision(config.precision, z.device):
        edges, nodes = gen(z)
    return relax(edges.float(), nodes.float(), config.output_mode, config.temperature, noise)


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"`` (CUDA, then MPS, then CPU) as a
    ``torch.device``; ``ValueError`` if that device is not available here."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}: use cpu, cuda, cuda:N, mps or auto") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but this torch build sees no CUDA GPU")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} asked for, but MPS is not available")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r}: use cpu, cuda, cuda:N, mps or auto")
    return dev


def _curve_schedule(config: TrainConfig) -> set[int]:
    """Iterations at which the curve is evaluated: ``curve_points`` evenly spaced, the last one included."""
    k = config.curve_points
    return {max(1, round(i * config.iterations / k)) for i in range(1, k + 1)} if k else set()


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
    evaluator: Optional[Evaluator] = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Train MolGAN into ``out_dir`` and return the summary dict (also saved as ``train_summary.json``).

    ``data``: training graphs (default: the QM9 training split of ``config.data_seed``).
    ``latent_bank``: ``(M, dim)`` latent vectors (default: drawn with :func:`make_latent_bank`).
    ``resume``: continue from ``out_dir/checkpoint.pt`` if there is one, else start (the
    saved config is used; ``config`` may only change ``iterations``, to extend a run, and
    ``threads``; a run continued on another thread count equals the uninterrupted one to float
    rounding, not bit for bit).
    ``out_dir`` must be new, empty, or a qboson run folder (``qboson._outdir.OutputDirError`` otherwise);
    without ``resume`` an existing checkpoint is an error too.
    ``evaluator``: called at ``config.curve_points`` evenly spaced iterations; its rows go to
    ``curve.csv`` (see :func:`qboson.molgan.evaluate.curve_evaluator`).
    ``device``: where the networks, latents and graphs live (see :func:`resolve_device`);
    resume is bit-for-bit on CPU only.
    ``stop_after``: stop (with a checkpoint) after this many critic steps in total, as an
    interruption would; used by tests.
    """
    dev = resolve_device(device)
    run = open_run(config, out_dir, resume=resume, data=data, latent_bank=latent_bank, device=dev)
    config, out, graphs, bank = run.config, run.out, run.graphs, run.bank
    gen, critic, opt_g, opt_d = run.gen, run.critic, run.opt_g, run.opt_d
    critic_params = list(critic.parameters())
    real_stream, latent_stream, augment_rng, noise = run.real_stream, run.latent_stream, run.augment_rng, run.noise
    step, elapsed, window, rows, curve = run.step, run.elapsed, run.window, run.rows, run.curve

    def checkpoint() -> None:
        run.step, run.elapsed, run.window = step, elapsed, window
        run.checkpoint(torch.get_rng_state())

    total = config.critic_steps
    per_iter = config.n_critic if config.iteration_unit == "generator" else 1
    curve_at = _curve_schedule(config)
    B = config.batch_size
    last_g_loss = float("nan")

    # --- the loop ------------------------------------------------------------------------------
    with stop_on_sigint() as flag, flushed_subnormals(config.flush_denormal and dev.type == "cpu"), \
            retained_heap(dev.type == "cpu"), \
            _bar(config, step, progress) as bar:
        while step < total:
            t0 = time.perf_counter()
            # critic update: real and fake scored in one pass, penalty at per-sample interpolates
            real = real_batch(graphs, real_stream.take(B), config.permute_prob, augment_rng)
            z = bank[torch.from_numpy(latent_stream.take(B)).to(dev)]
            with torch.no_grad():
                fake = fake_graphs(gen, z, config, noise)
            with forward_precision(config.precision, dev):
                scores = critic(torch.cat([real[0], fake[0]]), torch.cat([real[1], fake[1]])).float()
            wasserstein = scores[:B].mean() - scores[B:].mean()
            eps = torch.rand(B, generator=noise, device=dev)
            gp = gradient_penalty(critic, real, fake, eps, config.precision)
            d_loss = -wasserstein + config.gp_weight * gp
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward(inputs=critic_params)  # not into the penalty's interpolates: unused
            opt_d.step()
            step += 1
            # generator update every n_critic critic steps, on a fresh latent batch
            if step % config.n_critic == 0:
                z = bank[torch.from_numpy(latent_stream.take(B)).to(dev)]
                critic.requires_grad_(False)
                fake = fake_graphs(gen, z, config, noise)
                with forward_precision(config.precision, dev):
                    g_loss = -critic(*fake).float().mean()
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
                    window = LossWindow()
                evaluated = evaluator is not None and iteration in curve_at
                if evaluated:
                    gen.eval()
                    for point in evaluator(gen, iteration, step):
                        curve.append({**point, "iteration": iteration, "critic_step": step,
                                      "fraction": round(iteration / config.iterations, 4)})
                    gen.train()
                if evaluated or iteration % config.checkpoint_every == 0 or step == total:
                    checkpoint()
            if flag["stop"] or (stop_after is not None and step >= stop_after):
                checkpoint()  # a consistent state after a whole critic step
                return {"finished": False, "critic_step": step, "iteration": _iteration(config, step)}

    run.step, run.elapsed = step, elapsed
    return run.summary()


@dataclass
class RunState:
    """One run's folder, models, optimisers and random streams, as :func:`train` draws them.

    Built by :func:`open_run`; shared by :func:`train` and the stacked trainer
    (:mod:`qboson.molgan.stacked`) so that both draw every random number the same way.
    ``step``, ``elapsed``, ``window``, ``rows`` and ``curve`` are the caller's to advance.
    """

    config: TrainConfig
    out: Path
    device: torch.device
    graph_shape: tuple[int, int, int]
    graphs: Any  # DeviceGraphs
    bank: torch.Tensor  # (M, dim) float32 on device
    gen: Generator
    critic: Discriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    real_stream: Stream
    latent_stream: Stream
    augment_rng: np.random.Generator
    noise: torch.Generator
    torch_rng: torch.Tensor  # torch's global RNG state after the weights were drawn
    step: int = 0
    elapsed: float = 0.0
    window: LossWindow = field(default_factory=LossWindow)
    rows: list = field(default_factory=list)
    curve: list = field(default_factory=list)

    def checkpoint(self, torch_rng: Optional[torch.Tensor] = None) -> None:
        """Write the logs, then ``checkpoint.pt`` (the models and optimisers as they are now)."""
        out, config = self.out, self.config
        write_rows(out / "metrics.csv", METRIC_FIELDS, self.rows)  # logs first: see runfiles
        write_rows(out / "curve.csv", CURVE_FIELDS, self.curve)
        save_checkpoint({
            "config": config.to_dict(), "critic_step": self.step, "graph_shape": list(self.graph_shape),
            "iteration": _iteration(config, self.step), "device": str(self.device),
            "generator": self.gen.state_dict(), "critic": self.critic.state_dict(),
            "opt_generator": self.opt_g.state_dict(), "opt_critic": self.opt_d.state_dict(),
            "real_stream": self.real_stream.state_dict(), "latent_stream": self.latent_stream.state_dict(),
            "augment_rng": self.augment_rng.bit_generator.state, "noise_rng": self.noise.get_state(),
            "torch_rng": self.torch_rng if torch_rng is None else torch_rng, "elapsed_s": self.elapsed,
            "window": dict(self.window.__dict__),
        }, out / CHECKPOINT)

    def summary(self, extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """The finished run's summary, written to ``train_summary.json`` and returned."""
        config, step, elapsed = self.config, self.step, self.elapsed
        summary = {
            "finished": True, "critic_step": step, "iteration": _iteration(config, step),
            "iteration_unit": config.iteration_unit, "train_seconds": elapsed, "device": str(self.device),
            "iterations_per_second": _iteration(config, step) / elapsed if elapsed > 0 else math.nan,
            "final": self.rows[-1] if self.rows else None, "curve": self.curve, **(extra or {}),
        }
        atomic_write_text(self.out / "train_summary.json", json.dumps(summary, indent=2) + "\n")
        return summary


def open_run(config: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False,
             data: Optional[GraphData] = None, latent_bank: Optional[np.ndarray] = None,
             device: str | torch.device = "cpu") -> RunState:
    """Prepare ``out_dir`` and build (or restore from its checkpoint) everything one run needs.

    The arguments mean what they mean for :func:`train`.  Sets torch's thread count and
    re-seeds torch's global RNG (the weights are drawn from it).
    """
    out = Path(out_dir)
    dev = resolve_device(device)
    # checked on the config given, which a resumed run's may differ from only in iterations and EXECUTION_FIELDS
    warn_if_bf16_emulated(config.precision, dev)
    # before the run folder and hours of training, not at the evaluation that would fail
    check_memory(config.latent_bank_size * config.dim * 4, f"a latent bank of {config.latent_bank_size:,} rows")
    check_memory(evaluation_bytes(config.eval_samples, config.dim), f"evaluating {config.eval_samples:,} molecules")
    if config.curve_points:
        check_memory(evaluation_bytes(config.curve_samples, config.dim),
                     f"curve evaluations of {config.curve_samples:,} molecules")
    prepare_run_dir(out, resume=resume)
    ckpt = None
    if resume and (out / CHECKPOINT).exists():
        ckpt = load_checkpoint(out)
        saved = TrainConfig.from_dict(ckpt["config"])
        # the iteration count may be extended and the execution settings changed; nothing else
        changeable = {k: getattr(config, k) for k in ("iterations", *EXECUTION_FIELDS)}
        if saved.replace(**changeable) != config:
            diff = {k: (v, config.to_dict()[k]) for k, v in saved.to_dict().items()
                    if config.to_dict()[k] != v and k not in changeable}
            raise ValueError(f"cannot resume {out}: config differs from the checkpoint's: {diff}")
        config = saved.replace(**changeable)
    torch.set_num_threads(config.threads)
    atomic_write_text(out / "config.json", config.to_json() + "\n")

    data = GraphData.qm9_train(config.data_seed) if data is None else data
    bank_path = out / "latent_bank.npy"
    if ckpt is not None:
        try:
            latent_bank = np.load(bank_path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot resume {out}: latent bank {bank_path} is missing or damaged ({exc})") from exc
        if latent_bank.ndim != 2 or latent_bank.shape[1] != config.dim:
            raise ValueError(f"cannot resume {out}: latent bank {bank_path} has shape {latent_bank.shape}")
    else:
        latent_bank = make_latent_bank(config) if latent_bank is None else np.asarray(latent_bank, np.float32)
        if latent_bank.ndim != 2 or latent_bank.shape[1] != config.dim:
            raise ValueError(f"latent_bank must have shape (M, {config.dim}), got {latent_bank.shape}")
        atomic_save_npy(bank_path, latent_bank)
    bank = torch.from_numpy(np.ascontiguousarray(latent_bank, dtype=np.float32)).to(dev)

    torch.manual_seed(derived_seed(config.seed, "init"))
    gen, critic = build_models(config, *data.shape)
    gen.to(dev)
    critic.to(dev)
    run = RunState(
        config=config, out=out, device=dev, graph_shape=tuple(data.shape), graphs=data.to(dev), bank=bank,
        gen=gen, critic=critic,
        opt_g=torch.optim.Adam(gen.parameters(), lr=config.lr_generator, betas=config.betas),
        opt_d=torch.optim.Adam(critic.parameters(), lr=config.lr_critic, betas=config.betas),
        real_stream=Stream(len(data.nodes), derived_seed(config.seed, "data-order")),
        latent_stream=Stream(len(bank), derived_seed(config.seed, "latent-order")),
        augment_rng=np.random.default_rng(derived_seed(config.seed, "augment")),
        noise=torch.Generator(device=dev).manual_seed(derived_seed(config.seed, "noise")),
        torch_rng=torch.get_rng_state(),
    )
    if ckpt is not None:
        run.gen.load_state_dict(ckpt["generator"])
        run.critic.load_state_dict(ckpt["critic"])
        run.opt_g.load_state_dict(ckpt["opt_generator"])
        run.opt_d.load_state_dict(ckpt["opt_critic"])
        run.real_stream.load_state_dict(ckpt["real_stream"])
        run.latent_stream.load_state_dict(ckpt["latent_stream"])
        run.augment_rng.bit_generator.state = ckpt["augment_rng"]
        run.noise.set_state(ckpt["noise_rng"])
        run.torch_rng = ckpt["torch_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        run.step, run.elapsed = int(ckpt["critic_step"]), float(ckpt["elapsed_s"])
        run.window = LossWindow(**ckpt["window"])
        run.rows = read_rows(out / "metrics.csv", run.step)
        run.curve = read_rows(out / "curve.csv", run.step)
    return run


def _iteration(config: TrainConfig, step: int) -> int:
    return step // (config.n_critic if config.iteration_unit == "generator" else 1)


@contextlib.contextmanager
def _bar(config: TrainConfig, step: int, enabled: bool):
    from .._progress import progress_bar

    with progress_bar(config.iterations, enabled, desc=f"{config.latent} d={config.dim} s={config.seed}",
                      unit="it", initial=_iteration(config, step)) as bar:
        yield bar
