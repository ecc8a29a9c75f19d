"""Training configuration of a MolGAN run: one dataclass, saved with every run and checkpoint.

Profiles
--------
``paper``
    The paper's settings (arXiv 2508.19857, App. E): Adam lr 1e-4, batch 256,
    20,000 iterations, node-permutation augmentation with probability 0.3; where the
    paper is silent, the reading that reproduced Table II best in ``docs/qm9.md``:
    an iteration is a generator update (20,000 of them = 100,000 critic updates), Adam
    betas (0, 0.9), Gumbel-softmax critic input, Glorot (Xavier) initialisation and
    sampled decoding.
``quick``
    What a new user runs first (``qboson experiment qm9 --profile quick``: seed 0 of the
    quantum and Gaussian latents, about 9 minutes on a nearly idle 2-core machine): the
    paper profile's reading (Gumbel critic input, Adam betas (0, 0.9), Glorot
    initialisation, sampled decoding) at batch 128 and learning rate 2e-4, for 8,000
    critic updates.  Measured on QM9, quantum latent, seed 0, 10,000 molecules: FCD 3.20
    with 1,103 valid & unique at 8,000 updates, 3.74 with 835 at 10,000 (the paper: FCD
    1.16, 2,522); the earlier quick profile (batch 32, learning rate 1e-3, softmax critic
    input, 12,000 updates) ended at FCD 4.25 with 413.  Still a first look, far from the
    paper; ``docs/qm9.md`` has the schedules tried.

What an iteration is
--------------------
``iteration_unit = "critic"`` (default): one iteration is one critic update on
one batch; the generator is updated after every ``n_critic``-th critic update
(as in the original MolGAN code).  ``"generator"``: one iteration is one
generator update, preceded by ``n_critic`` critic updates (5x more work).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

__all__ = ["TrainConfig", "PROFILES", "profile_config", "ITERATION_UNITS", "INITS", "DECODES", "PRECISIONS"]

ITERATION_UNITS = ("critic", "generator")
#: weight initialisation of both networks: PyTorch's default (Kaiming-uniform) or Glorot/Xavier
INITS = ("default", "xavier")
#: how logits become a graph at evaluation: the most likely class, or a seeded categorical draw
DECODES = ("argmax", "sample")
#: what the generated molecules are compared with in FCD: the whole QM9 test split ("test", the
#: default; its statistics are cached), or as many training molecules as enter each FCD, a seeded
#: random draw ("train-sample", the public re-implementation's choice).  FCD grows as the samples
#: shrink, so the two readings differ most for runs with few distinct molecules.
FCD_REFERENCES = ("test", "train-sample")
#: arithmetic of the networks' forward products: float32, or bfloat16 under torch.autocast
PRECISIONS = ("fp32", "bf16")
#: fields that say how a run is executed, not what it computes (beyond float rounding): a resumed
#: run or a grid may change them (a checkpoint only reads the state it saves)
EXECUTION_FIELDS = ("threads", "checkpoint_every")
#: most torch threads a run may ask for (torch takes a C int; far more threads than cores only hurts)
MAX_THREADS = 1024


def evaluation_bytes(n_molecules: int, dim: int, n_nodes: int = 9) -> int:
    """A lower bound on the memory an evaluation of ``n_molecules`` holds at once: their latents
    (float32), decoded graphs (int64 atoms and adjacency) and SMILES (~100 bytes each)."""
    return n_molecules * (4 * dim + 8 * (n_nodes + n_nodes * n_nodes) + 100)


@dataclass
class TrainConfig:
    """All settings of one training run.

    Units: learning rates per Adam step; ``*_every`` counts iterations (see module doc);
    ``latent_bank_size`` counts latent vectors.
    """

    latent: str = "gaussian"
    dim: int = 16
    seed: int = 0
    #: number of iterations and what one counts ("critic" or "generator" updates)
    iterations: int = 20_000
    iteration_unit: str = "critic"
    batch_size: int = 256
    n_critic: int = 5
    lr_generator: float = 1e-4
    lr_critic: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    gp_weight: float = 10.0
    #: probability that a real graph's nodes are randomly permuted before the critic sees it
    permute_prob: float = 0.3
    #: generator output fed to the critic: "softmax", "gumbel" or "gumbel_hard"
    output_mode: str = "softmax"
    temperature: float = 1.0
    #: weight initialisation: "default" (PyTorch's) or "xavier" (Glorot, as the original MolGAN)
    init: str = "default"
    generator_widths: tuple[int, ...] = (64, 176, 288, 400, 512)
    leaky_slope: float = 0.2
    critic_conv_dims: tuple[int, ...] = (128, 64)
    critic_aggregation_dim: int = 128
    critic_mlp_dims: tuple[int, ...] = (128, 64)
    #: latent vectors drawn once per run (reproducible from ``seed``) and streamed in shuffled epochs
    latent_bank_size: int = 200_000
    #: a pre-generated ``qboson.latent`` bank directory (``qboson sample ...``) to train from instead
    #: of drawing ``latent_bank_size`` vectors; ``latent`` and ``dim`` must match it
    latent_bank_path: Optional[str] = None
    #: seed of the QM9 train/validation/test split (fixed across runs so all runs share one split)
    data_seed: int = 0
    #: torch intra-op threads for this process (1 is often fastest on a busy 2-core machine)
    threads: int = 1
    log_every: int = 50
    checkpoint_every: int = 1000
    #: molecules generated by ``qboson evaluate``
    eval_samples: int = 10_000
    #: decoding at evaluation: "argmax" or "sample" (categorical draws, seeded from ``seed``)
    decode: str = "argmax"
    #: evaluations recorded during training (``curve.csv``), evenly spaced; 0 = none
    curve_points: int = 10
    #: molecules per curve evaluation (a fast FCD; compare curve values only with each other)
    curve_samples: int = 2000
    #: flush float32 subnormals to zero on CPU (they appear as the generator sharpens and slow
    #: matmuls ~15x; the change to results is below float32 resolution of O(1) values)
    flush_denormal: bool = True
    #: "fp32", or "bf16": generator and critic products under ``torch.autocast(bfloat16)``
    #: (parameters, optimiser, softmax and the gradient-penalty norm stay float32; opt-in:
    #: faster where the CPU has AMX / the GPU has bf16 units, at bf16's ~3 significant digits;
    #: on a CPU without AMX or AVX512-BF16 torch emulates it, several times slower: a RuntimeWarning says so)
    precision: str = "fp32"
    profile: str = "paper"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        self.generator_widths = tuple(int(w) for w in self.generator_widths)
        self.critic_conv_dims = tuple(int(w) for w in self.critic_conv_dims)
        self.critic_mlp_dims = tuple(int(w) for w in self.critic_mlp_dims)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        positive = ["dim", "iterations", "batch_size", "n_critic", "latent_bank_size", "threads",
                    "log_every", "checkpoint_every", "eval_samples", "curve_samples"]
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"config {name} must be a positive integer, got {value!r}")
        if self.threads > MAX_THREADS:
            raise ValueError(f"config threads must be at most {MAX_THREADS}, got {self.threads!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"config seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.curve_points, int) or isinstance(self.curve_points, bool) or self.curve_points < 0:
            raise ValueError(f"config curve_points must be a non-negative integer, got {self.curve_points!r}")
        if self.init not in INITS:
            raise ValueError(f"config init must be one of {INITS}, got {self.init!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"config precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.decode not in DECODES:
            raise ValueError(f"config decode must be one of {DECODES}, got {self.decode!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"config betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.iteration_unit not in ITERATION_UNITS:
            raise ValueError(f"config iteration_unit must be one of {ITERATION_UNITS}, got {self.iteration_unit!r}")
        for name in ("lr_generator", "lr_critic", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"config {name} must be > 0, got {getattr(self, name)!r}")
        if self.gp_weight < 0:
            raise ValueError(f"config gp_weight must be >= 0, got {self.gp_weight!r}")
        if not 0.0 <= self.permute_prob <= 1.0:
            raise ValueError(f"config permute_prob must be in [0, 1], got {self.permute_prob!r}")
        from .model import OUTPUT_MODES

        if self.output_mode not in OUTPUT_MODES:
            raise ValueError(f"config output_mode must be one of {OUTPUT_MODES}, got {self.output_mode!r}")
        if any(w < 1 for w in self.generator_widths) or list(self.generator_widths) != sorted(self.generator_widths):
            raise ValueError(f"config generator_widths must be positive and non-decreasing, got {self.generator_widths}")
        if self.generator_widths[0] < self.dim:
            raise ValueError("config generator_widths[0] must be >= dim (the generator must stay invertible)")

    @property
    def critic_steps(self) -> int:
        """Total critic updates of the run."""
        return self.iterations * (self.n_critic if self.iteration_unit == "generator" else 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


#: profile name -> settings that differ from the dataclass defaults.  The dataclass defaults are
#: the paper's stated settings (App. E) with qboson's first reading of what it leaves open
#: ("reading A": critic-unit iterations, Adam betas (0.5, 0.9), softmax critic input, PyTorch's
#: initialisation, argmax decoding); the ``paper`` profile takes the reading that came closest to
#: Table II in docs/qm9.md ("reading B", the public re-implementation's choices, with iterations
#: counted in generator updates).
PROFILES: dict[str, dict[str, Any]] = {
    "paper": {
        "iteration_unit": "generator",
        "betas": (0.0, 0.9),
        "output_mode": "gumbel",
        "init": "xavier",
        "decode": "sample",
    },
    "quick": {
        "iterations": 8_000,
        "batch_size": 128,
        "lr_generator": 2e-4,
        "lr_critic": 2e-4,
        "betas": (0.0, 0.9),
        "output_mode": "gumbel",
        "init": "xavier",
        "log_every": 50,
        "checkpoint_every": 500,
        "eval_samples": 10_000,
        "decode": "sample",
    },
}


def profile_config(profile: str, **overrides: Any) -> TrainConfig:
    """The config of a named profile, with ``overrides`` (``None`` values are ignored)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    settings = dict(PROFILES[profile])
    settings.update({k: v for k, v in overrides.items() if v is not None})
    settings["profile"] = profile
    return TrainConfig(**settings)
