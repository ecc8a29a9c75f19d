"""What the training loop draws from: training graphs, latent vectors, and their shuffled streams.

Every random choice is made by a numpy generator whose state can be saved as plain
Python data (see :meth:`Stream.state_dict`), so checkpoints load with
``torch.load(..., weights_only=True)`` and resume bit-for-bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from .config import TrainConfig

__all__ = ["GraphData", "Stream", "real_batch", "real_batches", "latent_source", "make_latent_bank", "derived_seed"]


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

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(nodes per graph, atom classes, bond classes)``."""
        return self.nodes.shape[1], self.n_atom_types, self.n_bond_types

    def to(self, device: torch.device | str) -> "DeviceGraphs":
        """The graphs as int64 tensors on ``device`` (moved once, indexed per batch)."""
        return DeviceGraphs(torch.from_numpy(self.nodes).to(device), torch.from_numpy(self.adjacency).to(device),
                            self.n_atom_types, self.n_bond_types)


@dataclass
class DeviceGraphs:
    """:class:`GraphData` as tensors on one device."""

    nodes: torch.Tensor
    adjacency: torch.Tensor
    n_atom_types: int
    n_bond_types: int


def real_batch(data: GraphData | DeviceGraphs, idx: np.ndarray, permute_prob: float,
               rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot real graphs ``(B, n, n, R)``, ``(B, n, A)`` float32 for rows ``idx``.

    Each graph's nodes are permuted with probability ``permute_prob`` (the permutations are
    drawn from ``rng`` on the CPU, so the draw does not depend on the device).
    """
    e, x = real_batches(data, [idx], permute_prob, [rng])
    return e[0], x[0]


def real_batches(data: GraphData | DeviceGraphs, idx: Sequence[np.ndarray], permute_prob: float,
                 rngs: Sequence[np.random.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`real_batch` of ``K`` runs at once: ``(K, B, n, n, R)``, ``(K, B, n, A)`` float32.

    Run ``k`` takes rows ``idx[k]`` and its permutations from ``rngs[k]``, exactly as
    :func:`real_batch` would; the indexing and one-hot encoding are then done once for all runs.
    """
    if isinstance(data, GraphData):
        data = DeviceGraphs(torch.from_numpy(data.nodes), torch.from_numpy(data.adjacency),
                            data.n_atom_types, data.n_bond_types)
    if not idx or len(rngs) != len(idx) or len({len(i) for i in idx}) != 1:
        raise ValueError(f"real_batches needs one random generator per run and equal batches, got "
                         f"{len(idx)} index arrays of sizes {sorted({len(i) for i in idx})} and {len(rngs)} generators")
    device = data.nodes.device
    k, b, n = len(idx), len(idx[0]), data.nodes.shape[1]
    rows = torch.from_numpy(np.concatenate([np.asarray(i, dtype=np.int64) for i in idx])).to(device)
    nodes, adj = data.nodes[rows], data.adjacency[rows]
    if permute_prob > 0:
        perms = []
        for rng in rngs:
            keys = rng.random((b, n))
            keys[rng.random(b) >= permute_prob] = np.arange(n)  # identity for the unpermuted graphs
            perms.append(np.argsort(keys, axis=1))
        perm = torch.from_numpy(np.concatenate(perms)).to(device)
        nodes = torch.gather(nodes, 1, perm)
        adj = adj[torch.arange(k * b, device=device)[:, None, None], perm[:, :, None], perm[:, None, :]]
    e = torch.nn.functional.one_hot(adj, data.n_bond_types).float()
    x = torch.nn.functional.one_hot(nodes, data.n_atom_types).float()
    return e.view(k, b, *e.shape[1:]), x.view(k, b, *x.shape[1:])


class Stream:
    """Shuffled epochs over ``size`` items; the tail of an epoch too short for a batch is dropped."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.perm = self.rng.permutation(size)
        self.pos = 0

    def take(self, k: int) -> np.ndarray:
        """The next ``k`` indices, ``(k,) int64``."""
        if k > self.size:
            raise ValueError(f"batch of {k} from a set of {self.size}: use a smaller batch or a larger set")
        if self.pos + k > self.size:
            self.perm = self.rng.permutation(self.size)
            self.pos = 0
        idx = self.perm[self.pos: self.pos + k]
        self.pos += k
        return idx

    def state_dict(self) -> dict[str, Any]:
        """Plain data (dicts, ints, a tensor): loadable with ``weights_only=True``."""
        return {"rng": self.rng.bit_generator.state, "perm": torch.from_numpy(self.perm.astype(np.int64)),
                "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        perm = state["perm"]
        perm = perm.numpy() if isinstance(perm, torch.Tensor) else np.asarray(perm)
        if perm.shape != (self.size,) or int(state["pos"]) > self.size:
            raise ValueError(f"stream state of {perm.shape} items at {state['pos']} does not fit a set of {self.size}")
        self.rng.bit_generator.state = state["rng"]
        self.perm = perm.astype(np.int64)
        self.pos = int(state["pos"])


#: purposes named before every byte of a purpose counted: they keep the seeds their runs were made
#: with (only the first 4 bytes entered), so finished runs stay reproducible.  Two pairs share a seed
#: ("latent-order" / "latent-bank", "curve" / "curve-decode"), harmlessly: each pair feeds different
#: generator constructions (a plain ``default_rng`` against spawned block sequences or the C++
#: sampler; numpy against torch), so the streams do not overlap.
_FIRST_WORD_PURPOSES = frozenset({"init", "data-order", "latent-order", "augment", "noise", "latent-bank",
                                  "eval", "decode", "curve", "curve-decode"})


def derived_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for ``purpose`` derived from the run seed: distinct purposes, independent streams.

    Every byte of ``purpose`` enters the seed (as little-endian 32-bit words), except for the
    purposes of ``_FIRST_WORD_PURPOSES``, which keep their earlier seeds.
    """
    data = purpose.encode()
    words = [int.from_bytes(data[i:i + 4], "little") for i in range(0, max(len(data), 1), 4)]
    if purpose in _FIRST_WORD_PURPOSES:
        words = words[:1]
    else:
        words = [len(data), *words]  # the length keeps "ab" apart from "ab\0\0" (SeedSequence drops trailing zeros)
    state = np.random.SeedSequence([int(seed), *words]).generate_state(2, dtype=np.uint32)
    return int(state.view(np.uint64)[0] >> 1)


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
        return np.asarray(source.rows(0, min(len(source), config.latent_bank_size)), dtype=np.float32)
    bank = np.asarray(source.sample(config.latent_bank_size, seed=derived_seed(config.seed, "latent-bank")),
                      dtype=np.float32)
    if bank.shape != (config.latent_bank_size, config.dim):
        raise ValueError(f"latent {config.latent!r} returned shape {bank.shape}, "
                         f"expected {(config.latent_bank_size, config.dim)}")
    return bank
