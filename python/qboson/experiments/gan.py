"""Small GAN machinery for fully connected generators and critics (synthetic and 2-D experiments).

Nothing here is specific to molecules (MolGAN lives elsewhere).  The one idea beyond a
textbook WGAN-GP is that a :class:`GanTrainer` trains ``R`` *independent* GANs at once,
one per seed ("members"), with their weights stacked along a leading axis and every
layer computed by one batched matrix product.  For small networks (the 2-D experiment's
batch of 32) this removes most of PyTorch's per-call overhead; for large ones it costs
nothing.  The members never interact:

* each member's weights are initialised from its own seed (PyTorch's default ``Linear``
  initialisation, U(−1/√fan_in, 1/√fan_in) for weights and biases);
* each member's data rows, latent rows and gradient-penalty interpolation weights come
  from its own generators (:class:`StackedSampler`, :class:`GanTrainer`);
* the loss is the sum of the members' losses, so each member's gradient is its own;
* Adam and RMSProp act elementwise, so one optimiser over stacked parameters is the same
  as one optimiser per member.

A member therefore trains the same way whichever other members share its stack (up to
floating-point summation order inside the batched products).

Shapes: a stack of ``R`` batches of ``B`` rows of width ``d`` is a float32 tensor
``(R, B, d)``.

Objectives (``GanConfig.objective``):

- ``"wgan-gp"``: Wasserstein loss with the two-sided gradient penalty of Gulrajani et
  al. (2017), weight ``gp_weight``, at uniform interpolates between real and generated
  points.  The paper does not name its objective; this is the default here.
- ``"nonsaturating"``: the original GAN objective with the non-saturating generator loss
  (logistic loss on the critic's logits); ``gp_weight > 0`` adds the same penalty.

An *iteration* (:meth:`GanTrainer.step`) is ``critic_steps`` critic updates followed by
one generator update, as in the WGAN-GP reference code.

torch is an optional dependency of qboson: importing this module without it raises
ImportError naming the extra (``pip install qboson[torch]``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised by test_without_torch
    raise ImportError(
        "qboson.experiments.gan needs PyTorch: pip install qboson[torch] (torch==2.13.0 on CPU)"
    ) from exc

from .._bf16support import warn_if_bf16_emulated

__all__ = [
    "OBJECTIVES",
    "ACTIVATIONS",
    "OPTIMIZERS",
    "PRECISIONS",
    "GanConfig",
    "GanTrainer",
    "StackedMLP",
    "StackedSampler",
    "gradient_penalty",
    "train_stack",
]

OBJECTIVES = ("wgan-gp", "nonsaturating")
ACTIVATIONS = ("relu", "leaky_relu")
OPTIMIZERS = ("rmsprop", "adam")
#: arithmetic of the networks' products: float32, or bfloat16 under torch.autocast (opt-in)
PRECISIONS = ("fp32", "bf16")


def _member_generator(seed: int, purpose: int) -> torch.Generator:
    """A torch Generator for (member seed, purpose); purposes: 0 weights, 1 penalty, 2.. samplers."""
    if int(seed) < 0:
        raise ValueError(f"seeds must be non-negative, got {seed}")
    # a fixed odd-multiplier mix keeps streams of different purposes apart
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + 7919 * int(purpose)) % (2**63 - 1))


class StackedMLP(nn.Module):
    """``R`` fully connected networks ``dims[0] -> ... -> dims[-1]`` evaluated together.

    Input ``(R, B, dims[0])`` -> output ``(R, B, dims[-1])``.  Hidden layers apply
    ``activation`` (``"relu"`` or ``"leaky_relu"`` with ``negative_slope``); the output
    layer is linear.  Member ``r`` is initialised from ``seeds[r]`` alone.
    """

    def __init__(
        self, dims: Sequence[int], seeds: Sequence[int], activation: str = "relu", negative_slope: float = 0.2
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {ACTIVATIONS}")
        dims = [int(d) for d in dims]
        if len(dims) < 2 or any(d < 1 for d in dims):
            raise ValueError(f"layer widths must be >= 1 and at least two, got {dims}")
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("need at least one seed (one member)")
        self.dims = dims
        self.activation = activation
        self.negative_slope = float(negative_slope)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        gens = [_member_generator(s, 0) for s in seeds]
        for fan_in, fan_out in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            w = torch.stack([(torch.rand(fan_in, fan_out, generator=g) * 2 - 1) * bound for g in gens])
            b = torch.stack([(torch.rand(1, fan_out, generator=g) * 2 - 1) * bound for g in gens])
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    @property
    def members(self) -> int:
        return int(self.weights[0].shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = torch.relu(x) if self.activation == "relu" else nn.functional.leaky_relu(x, self.negative_slope)
        return x


class StackedSampler:
    """Random rows (uniform, with replacement) of one ``(N_r, d)`` array per member.

    ``sampler(k)`` returns ``(R, k, d)`` float32: row block ``r`` is drawn from
    ``arrays[r]`` with member ``r``'s own generator (seeded by ``seeds[r]`` and
    ``purpose``), so each member's stream does not depend on the others.
    """

    def __init__(self, arrays: Sequence, seeds: Sequence[int], purpose: int = 2) -> None:
        if len(arrays) != len(seeds) or not arrays:
            raise ValueError(f"need one array per seed, got {len(arrays)} arrays and {len(seeds)} seeds")
        self.rows = []
        for a in arrays:
            t = torch.as_tensor(a, dtype=torch.float32)
            if t.ndim != 2 or t.shape[0] < 1:
                raise ValueError(f"each array must be non-empty and 2-D, got shape {tuple(t.shape)}")
            if not torch.isfinite(t).all():
                raise ValueError("arrays contain NaN or infinite values")
            self.rows.append(t.contiguous())
        if len({t.shape[1] for t in self.rows}) != 1:
            raise ValueError(f"arrays differ in width: {[t.shape[1] for t in self.rows]}")
        self.generators = [_member_generator(s, purpose) for s in seeds]

    @property
    def dim(self) -> int:
        return int(self.rows[0].shape[1])

    def get_state(self) -> list:
        """The generators' states (for checkpoints)."""
        return [g.get_state() for g in self.generators]

    def set_state(self, state: list) -> None:
        if len(state) != len(self.generators):
            raise ValueError(f"sampler state has {len(state)} members, expected {len(self.generators)}")
        for g, s in zip(self.generators, state):
            g.set_state(s)

    def __call__(self, k: int) -> torch.Tensor:
        out = []
        for t, g in zip(self.rows, self.generators):
            idx = torch.randint(0, t.shape[0], (int(k),), generator=g)
            out.append(t.index_select(0, idx))
        return torch.stack(out)


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    eps: torch.Tensor,
) -> torch.Tensor:
    """Per-member penalty ``mean_b (||∇_x D(x̂_b)||₂ − 1)²`` at ``x̂ = ε·real + (1−ε)·fake``.

    ``real``, ``fake``: ``(R, B, d)``; ``eps``: ``(R, B, 1)`` in [0, 1].  Returns ``(R,)``,
    differentiable in the critic's parameters.  Works for any critic mapping
    ``(R, B, d) -> (R, B, 1)`` whose member ``r`` reads only block ``r``.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake differ in shape: {tuple(real.shape)} vs {tuple(fake.shape)}")
    x = (eps * real + (1.0 - eps) * fake.detach()).requires_grad_(True)
    out = critic(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return ((grad.norm(2, dim=-1) - 1.0) ** 2).mean(dim=-1)


@dataclass(frozen=True)
class GanConfig:
    """Settings of a fully connected GAN.

    Attributes:
        latent_dim, data_dim: widths of the generator's input and output.
        hidden: hidden widths, the same for generator and critic.
        activation: ``"relu"`` or ``"leaky_relu"`` (slope ``negative_slope``).
        objective: ``"wgan-gp"`` or ``"nonsaturating"`` (see the module docstring).
        gp_weight: gradient-penalty weight λ (0 disables it).
        optimizer: ``"rmsprop"`` or ``"adam"`` (same kind and settings for both networks).
        lr: learning rate of both optimisers.
        betas: Adam's (β1, β2); ignored by RMSProp.
        batch_size: rows of real data and latent vectors per update and member.
        critic_steps: critic updates per generator update.
        precision: ``"fp32"`` or ``"bf16"``: the generator's and critic's products under
            ``torch.autocast(bfloat16)`` (weights, optimiser, losses and the penalty's norm stay
            float32); faster where the CPU has AMX, at bf16's ~3 significant digits; emulated and
            slower on a CPU without AMX or AVX512-BF16 (a ``RuntimeWarning`` says so).
    """

    latent_dim: int
    data_dim: int
    hidden: tuple = (512, 512)
    activation: str = "relu"
    negative_slope: float = 0.2
    objective: str = "wgan-gp"
    gp_weight: float = 10.0
    optimizer: str = "rmsprop"
    lr: float = 5e-4
    betas: tuple = (0.0, 0.9)
    batch_size: int = 500
    critic_steps: int = 5
    precision: str = "fp32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose one of {OBJECTIVES}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {PRECISIONS}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {ACTIVATIONS}")
        for name in ("latent_dim", "data_dim", "batch_size", "critic_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden widths must be >= 1, got {self.hidden}")
        if len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers, got {self.betas}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.gp_weight < 0:
            raise ValueError(f"gp_weight must be >= 0, got {self.gp_weight}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["betas"] = list(self.betas)
        if self.precision == "fp32":  # recorded only when set, so checkpoints from before it existed still match
            del d["precision"]
        return d


@dataclass
class StepStats:
    """Per-member losses of the last iteration, each a list of R floats."""

    critic_loss: list
    penalty: list
    generator_loss: list


class GanTrainer:
    """``R = len(seeds)`` independent GANs (generator, critic, optimisers), trained by :meth:`step`.

    Args:
        config: the :class:`GanConfig` shared by all members.
        seeds: one non-negative int per member; seeds the member's weights and its
            gradient-penalty interpolation weights.
    """

    def __init__(self, config: GanConfig, seeds: Sequence[int]) -> None:
        self.config = config
        self.seeds = [int(s) for s in seeds]
        c = config
        warn_if_bf16_emulated(c.precision, "cpu")  # these GANs train on the CPU
        self.generator = StackedMLP([c.latent_dim, *c.hidden, c.data_dim], self.seeds, c.activation, c.negative_slope)
        self.critic = StackedMLP(
            [c.data_dim, *c.hidden, 1], [s + 1_000_000_007 for s in self.seeds], c.activation, c.negative_slope
        )
        self.g_opt = self._optimizer(self.generator.parameters())
        self.d_opt = self._optimizer(self.critic.parameters())
        self._eps_generators = [_member_generator(s, 1) for s in self.seeds]
        self.iterations = 0

    @property
    def members(self) -> int:
        return len(self.seeds)

    def _optimizer(self, params) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, betas=c.betas)
        return torch.optim.RMSprop(params, lr=c.lr)

    def state_dict(self) -> dict:
        """Everything needed to continue training exactly: weights, optimisers, RNG states, iteration."""
        return {
            "seeds": list(self.seeds),
            "config": self.config.to_dict(),
            "iterations": self.iterations,
            "generator": self.generator.state_dict(),
            "critic": self.critic.state_dict(),
            "g_opt": self.g_opt.state_dict(),
            "d_opt": self.d_opt.state_dict(),
            "eps": [g.get_state() for g in self._eps_generators],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output (ValueError if it belongs to other seeds or settings)."""
        if state.get("seeds") != self.seeds or state.get("config") != self.config.to_dict():
            raise ValueError("checkpoint belongs to other member seeds or settings")
        self.generator.load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        self.g_opt.load_state_dict(state["g_opt"])
        self.d_opt.load_state_dict(state["d_opt"])
        for g, s in zip(self._eps_generators, state["eps"]):
            g.set_state(s)
        self.iterations = int(state["iterations"])

    def _eps(self, b: int) -> torch.Tensor:
        return torch.stack([torch.rand(b, 1, generator=g) for g in self._eps_generators])

    def _run(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``net(x)`` with its products in ``config.precision``; the result in float32."""
        if self.config.precision == "fp32":
            return net(x)
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
            return net(x).float()

    def _critic_loss(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member critic loss (penalty included) and penalty, both ``(R,)``."""
        c = self.config
        both = self._run(self.critic, torch.cat([real, fake], dim=1)).squeeze(-1)
        d_real, d_fake = both[:, : real.shape[1]], both[:, real.shape[1] :]
        if c.objective == "wgan-gp":
            loss = d_fake.mean(dim=1) - d_real.mean(dim=1)
        else:
            sp = nn.functional.softplus
            loss = sp(-d_real).mean(dim=1) + sp(d_fake).mean(dim=1)
        if c.gp_weight > 0:
            gp = gradient_penalty(lambda x: self._run(self.critic, x), real, fake, self._eps(real.shape[1]))
        else:
            gp = torch.zeros(real.shape[0])
        return loss + c.gp_weight * gp, gp

    def _generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        d_fake = self._run(self.critic, fake).squeeze(-1)
        if self.config.objective == "wgan-gp":
            return -d_fake.mean(dim=1)
        return nn.functional.softplus(-d_fake).mean(dim=1)

    def _check(self, name: str, value: torch.Tensor, shape: tuple) -> torch.Tensor:
        if tuple(value.shape) != shape:
            raise ValueError(f"{name} returned shape {tuple(value.shape)}, expected {shape}")
        return value

    def step(self, real_batch: Callable[[int], torch.Tensor], latent_batch: Callable[[int], torch.Tensor]) -> StepStats:
        """One iteration: ``critic_steps`` critic updates, then one generator update.

        ``real_batch(k)`` -> ``(R, k, data_dim)`` and ``latent_batch(k)`` ->
        ``(R, k, latent_dim)`` float32 (e.g. :class:`StackedSampler`).
        """
        c = self.config
        b, r = c.batch_size, self.members
        for p in self.critic.parameters():
            p.requires_grad_(True)
        for _ in range(c.critic_steps):
            real = self._check("real_batch", real_batch(b), (r, b, c.data_dim))
            z = self._check("latent_batch", latent_batch(b), (r, b, c.latent_dim))
            with torch.no_grad():
                fake = self._run(self.generator, z)
            d_loss, gp = self._critic_loss(real, fake)
            self.d_opt.zero_grad(set_to_none=True)
            d_loss.sum().backward(inputs=list(self.critic.parameters()))  # not into the penalty's interpolates
            self.d_opt.step()
        for p in self.critic.parameters():
            p.requires_grad_(False)
        z = self._check("latent_batch", latent_batch(b), (r, b, c.latent_dim))
        g_loss = self._generator_loss(self._run(self.generator, z))
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.sum().backward()
        self.g_opt.step()
        self.iterations += 1
        return StepStats(d_loss.detach().tolist(), gp.detach().tolist(), g_loss.detach().tolist())

    def train(
        self,
        iterations: int,
        real_batch: Callable[[int], torch.Tensor],
        latent_batch: Callable[[int], torch.Tensor],
        callback: Optional[Callable[["GanTrainer"], None]] = None,
    ) -> Optional[StepStats]:
        """Run ``iterations`` iterations, calling ``callback(self)`` after each one.

        Raises FloatingPointError naming the member seeds whose losses became NaN/inf.
        Returns the last iteration's :class:`StepStats` (None for zero iterations).
        """
        stats = None
        for _ in range(int(iterations)):
            stats = self.step(real_batch, latent_batch)
            bad = [
                s
                for s, a, g in zip(self.seeds, stats.critic_loss, stats.generator_loss)
                if not (math.isfinite(a) and math.isfinite(g))
            ]
            if bad:
                raise FloatingPointError(f"GAN training diverged at iteration {self.iterations} for member seeds {bad}")
            if callback is not None:
                callback(self)
        return stats

    @torch.no_grad()
    def generate(self, z) -> torch.Tensor:
        """Generator outputs: ``z`` ``(R, k, latent_dim)`` -> ``(R, k, data_dim)`` float32."""
        z = torch.as_tensor(z, dtype=torch.float32)
        if z.ndim != 3 or z.shape[0] != self.members or z.shape[2] != self.config.latent_dim:
            raise ValueError(f"z must have shape ({self.members}, k, {self.config.latent_dim}), got {tuple(z.shape)}")
        return self.generator(z)


_CHECKPOINT_FORMAT = "qboson-gan-stack-1"


def _load_checkpoint(path: str, trainer: GanTrainer, real: StackedSampler, lat: StackedSampler) -> dict:
    """Restore a :func:`train_stack` checkpoint into ``trainer`` and the samplers; returns the evaluations.

    Loaded with ``weights_only=True``: a file holding pickled code is refused, never run.
    Any problem (hostile, corrupt, truncated, other settings) is a ValueError naming the file.
    """
    import json

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
            raise ValueError("not a qboson GAN stack checkpoint")
        trainer.load_state_dict(state["trainer"])
        real.set_state(state["real"])
        lat.set_state(state["latent"])
        evaluations = json.loads(state["evaluations"])
        if not isinstance(evaluations, dict):
            raise ValueError("evaluations are not a mapping")
        return {int(k): v for k, v in evaluations.items()}
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear error
        raise ValueError(f"checkpoint {path} is corrupt, unsafe or belongs to other settings: {exc}") from exc


def train_stack(
    config: GanConfig,
    seeds: Sequence[int],
    data: Sequence,
    latents: Sequence,
    iterations: int,
    evaluate: Callable[[GanTrainer], list],
    eval_at: Sequence[int] = (),
    checkpoint: Optional[str] = None,
    checkpoint_every_s: float = 300.0,
    progress: bool = False,
    description: str = "training",
) -> dict:
    """Train ``len(seeds)`` members and evaluate them at chosen iterations; resumable.

    Args:
        config: shared settings.
        seeds: one int per member (weights, penalty, and the data/latent row streams).
        data, latents: one ``(N_r, data_dim)`` / ``(M_r, latent_dim)`` array per member
            (rows drawn uniformly with replacement, :class:`StackedSampler`).
        iterations: total iterations (generator updates).
        evaluate: ``evaluate(trainer) -> list`` of one JSON-serialisable result per member;
            called after iteration ``i`` for every ``i`` in ``eval_at`` (and at the end).
        checkpoint: a file path; when given, the full training state is saved there
            atomically every ``checkpoint_every_s`` seconds, a run finding it resumes from
            it, and it is removed when training ends.
        progress: show a progress bar with an ETA (tqdm).

    Returns ``{iteration: [result per member]}`` for the evaluated iterations.
    """
    import os
    import time

    from .._progress import progress_bar

    iterations = int(iterations)
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    points = sorted({int(i) for i in eval_at if 0 < int(i) <= iterations} | {iterations})
    trainer = GanTrainer(config, seeds)
    real = StackedSampler(data, seeds, purpose=2)
    lat = StackedSampler(latents, seeds, purpose=3)
    evaluations: dict = {}
    if checkpoint is not None and os.path.exists(checkpoint):
        evaluations = _load_checkpoint(checkpoint, trainer, real, lat)

    def save() -> None:
        import io
        import json

        from ._grid import atomic_write_bytes

        buf = io.BytesIO()
        # tensors, plain containers and a JSON string only: loadable with weights_only=True
        torch.save(
            {"format": _CHECKPOINT_FORMAT, "trainer": trainer.state_dict(), "real": real.get_state(),
             "latent": lat.get_state(), "evaluations": json.dumps({str(k): v for k, v in evaluations.items()})},
            buf,
        )
        atomic_write_bytes(checkpoint, buf.getvalue())

    last_save = time.monotonic()
    with progress_bar(iterations, progress, desc=description, initial=trainer.iterations) as bar:
        while trainer.iterations < iterations:
            trainer.train(1, real, lat)
            if bar is not None:
                bar.update(1)
            if trainer.iterations in points and trainer.iterations not in evaluations:
                evaluations[trainer.iterations] = evaluate(trainer)
            if checkpoint is not None and time.monotonic() - last_save > checkpoint_every_s:
                save()
                last_save = time.monotonic()
    if checkpoint is not None and os.path.exists(checkpoint):
        os.unlink(checkpoint)
    return {i: evaluations[i] for i in points}
