"""The protocol every latent distribution follows, and the seeding of its sample streams.

A latent is an infinite, reproducible *stream* of rows: row ``i`` of the stream with seed
``s`` is fixed by ``(latent, s, i)``.  :meth:`Latent.raw_at` returns rows ``[start, stop)``
of such a stream; everything else (``sample``, banks, the Torch dataset, distributed
generation) is built on it, so a bank generated in chunks, resumed after a crash or
computed on a Dask cluster is byte-identical to one drawn in a single call.

Normalisation (the paper centres every latent to mean 0 before the generator): with
``centre=True`` the exact mean of the raw distribution is subtracted; with ``scale=True``
the result is also divided by the exact per-coordinate standard deviation.
"""

from __future__ import annotations

import abc
import hashlib
import json
from typing import Any, Optional

import numpy as np

from .._seeding import SeedLike, seed_sequence
from .._validation import as_int, check_memory

__all__ = ["Latent", "SeedTemplate", "stream_seed", "as_seed_int", "default_dim", "DEFAULT_DIM"]


class _DefaultDim(int):
    """The int 16, marked as 'not given by the caller' (so ``unitary=`` may set the dimension)."""

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return "16"


#: Default latent dimension of :func:`qboson.latent.make` (the paper's dz = 16).
DEFAULT_DIM = _DefaultDim(16)


def default_dim(dim) -> bool:
    """True when ``dim`` is the untouched default of :func:`qboson.latent.make`."""
    return dim is DEFAULT_DIM


class SeedTemplate:
    """An immutable description of a :class:`numpy.random.SeedSequence` (entropy + spawn key).

    ``SeedSequence.spawn`` is stateful; a template hands out a *fresh* copy each time, so the
    same template always yields the same random streams.
    """

    __slots__ = ("entropy", "spawn_key")

    def __init__(self, entropy, spawn_key: tuple = ()) -> None:
        self.entropy = entropy
        self.spawn_key = tuple(int(k) for k in spawn_key)

    @classmethod
    def from_seed(cls, seed: SeedLike) -> "SeedTemplate":
        ss = seed_sequence(seed)
        return cls(ss.entropy, ss.spawn_key)

    def sequence(self, *extra_key: int) -> np.random.SeedSequence:
        """A fresh SeedSequence, optionally a child identified by ``extra_key``."""
        return np.random.SeedSequence(self.entropy, spawn_key=self.spawn_key + tuple(int(k) for k in extra_key))

    def child(self, *extra_key: int) -> "SeedTemplate":
        return SeedTemplate(self.entropy, self.spawn_key + tuple(int(k) for k in extra_key))

    def to_json(self) -> Any:
        if not self.spawn_key and isinstance(self.entropy, int):
            return self.entropy
        ent = self.entropy if isinstance(self.entropy, int) else [int(e) for e in self.entropy]
        return {"entropy": ent, "spawn_key": list(self.spawn_key)}

    @classmethod
    def from_json(cls, value) -> "SeedTemplate":
        if isinstance(value, dict):
            ent = value["entropy"]
            return cls(ent if isinstance(ent, int) else tuple(ent), tuple(value.get("spawn_key", ())))
        return cls(int(value))

    def __eq__(self, other) -> bool:
        return isinstance(other, SeedTemplate) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_json()))

    def __repr__(self) -> str:
        return f"SeedTemplate({self.to_json()!r})"


def as_seed_int(seed: SeedLike) -> int:
    """A non-negative int that stands for ``seed`` (fresh 128-bit entropy for ``None``)."""
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        if int(seed) < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        return int(seed)
    if isinstance(seed, np.random.SeedSequence) and not seed.spawn_key and isinstance(seed.entropy, int):
        return int(seed.entropy)
    # Generators and spawned SeedSequences: 128 bits drawn from them.
    state = seed_sequence(seed).generate_state(4, dtype=np.uint32)
    return int(sum(int(w) << (32 * i) for i, w in enumerate(state)))


def stream_seed(seed: SeedLike) -> SeedTemplate:
    """The seed template of a sample stream chosen by the user's ``seed`` argument."""
    if isinstance(seed, SeedTemplate):
        return seed
    return SeedTemplate.from_seed(seed)


class Latent(abc.ABC):
    """A latent distribution over ``R^dim``: the protocol shared by every kind.

    Attributes
    ----------
    name : str
        The kind, as accepted by :func:`qboson.latent.make`.
    dim : int
        Length of each latent vector.
    seed : int
        Root seed: fixes the circuit (photon latents) and the default sample stream.
    mean, std : ndarray of shape (dim,), float64, or None
        Exact mean and standard deviation of the *raw* (unnormalised) distribution.
    centre, scale : bool
        Normalisation applied by :meth:`sample`: subtract ``mean``; divide by ``std``.
    raw_dtype : numpy dtype
        dtype of :meth:`raw` rows (unsigned counts for photon latents, float32 for Gaussians).
    index_deterministic : bool
        True when row ``i`` of a stream depends only on ``(seed, i)``, not on how rows are
        grouped into calls.  Banks built from latents where this is False (e.g. a hardware
        backend without a ``start`` argument) depend on their chunk size.
    """

    name: str = "latent"
    index_deterministic: bool = True

    def __init__(self, dim: int, *, seed: SeedLike = None, centre: bool = True, scale: bool = False) -> None:
        self.dim = as_int(dim, "dim", minimum=1)
        self.seed = as_seed_int(seed)
        self.centre = bool(centre)
        self.scale = bool(scale)
        self._position = 0  # next row of the default stream handed out by sample()/raw()

    # -- to be provided by each kind ------------------------------------------------------
    @property
    @abc.abstractmethod
    def mean(self) -> Optional[np.ndarray]:
        """Exact mean of the raw distribution, shape (dim,), float64."""

    @property
    @abc.abstractmethod
    def std(self) -> Optional[np.ndarray]:
        """Exact standard deviation of the raw distribution, shape (dim,), float64."""

    @property
    @abc.abstractmethod
    def raw_dtype(self) -> np.dtype:
        """dtype of raw rows."""

    @abc.abstractmethod
    def _draw(self, start: int, stop: int, seed: SeedTemplate, threads: Optional[int]) -> np.ndarray:
        """Rows ``[start, stop)`` of the stream ``seed`` (validated; ``stop > start``)."""

    @abc.abstractmethod
    def _spec(self) -> dict:
        """JSON-serialisable keyword arguments of :func:`qboson.latent.make` (besides name/dim/seed)."""

    # -- the shared protocol ---------------------------------------------------------------
    @property
    def covariance(self) -> Optional[np.ndarray]:
        """Exact covariance of the raw distribution, shape (dim, dim), or None if unknown."""
        return None

    @property
    def default_stream(self) -> SeedTemplate:
        """The stream used by :meth:`sample`/:meth:`raw` without ``seed`` (and by banks)."""
        return SeedTemplate(self.seed)

    def raw_at(self, start: int, stop: int, seed: SeedLike | SeedTemplate = None, *, threads: Optional[int] = None) -> np.ndarray:
        """Rows ``[start, stop)`` of a sample stream, unnormalised.

        Parameters
        ----------
        start, stop : int
            Row range, ``0 <= start <= stop``.
        seed : int, SeedSequence, Generator, SeedTemplate or None
            The stream; ``None`` = the latent's default stream (``self.seed``).
        threads : int, optional
            Threads for photon sampling (``None`` = the latent's setting).

        Returns
        -------
        ndarray, shape (stop - start, dim), dtype :attr:`raw_dtype`
        """
        start = as_int(start, "start", minimum=0)
        stop = as_int(stop, "stop", minimum=start)
        template = self.default_stream if seed is None else stream_seed(seed)
        # refused up front: drawn block by block, a huge range would otherwise run until memory is gone
        check_memory((stop - start) * self.dim * np.dtype(self.raw_dtype).itemsize,
                     f"{stop - start:,} latent rows of dim {self.dim}")
        if stop == start:
            return np.empty((0, self.dim), dtype=self.raw_dtype)
        out = self._draw(start, stop, template, threads)
        assert out.shape == (stop - start, self.dim), out.shape
        return out

    def raw(self, k: int, seed: SeedLike = None) -> np.ndarray:
        """``k`` unnormalised samples, shape (k, dim), dtype :attr:`raw_dtype`.

        Without ``seed`` successive calls return successive rows of the latent's default stream
        (so ``raw(a)`` then ``raw(b)`` equals ``raw_at(0, a + b)``); with ``seed`` the first
        ``k`` rows of the stream that ``seed`` names.
        """
        k = as_int(k, "k", minimum=0)
        if seed is None:
            out = self.raw_at(self._position, self._position + k)
            self._position += k  # only once drawn: a refused request leaves the stream where it was
            return out
        return self.raw_at(0, k, seed)

    def sample(self, k: int, seed: SeedLike = None) -> np.ndarray:
        """``k`` latent vectors, normalised as configured: shape (k, dim), float32."""
        return self.normalise(self.raw(k, seed))

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """Apply the configured centring/scaling to raw rows; returns float32."""
        return normalise(raw, self.mean if self.centre else None, self.std if self.scale else None)

    def spec(self) -> dict:
        """Everything needed to rebuild this latent with :func:`qboson.latent.from_spec` (JSON-safe)."""
        spec = {"name": self.name, "dim": self.dim, "seed": self.seed, "centre": self.centre, "scale": self.scale}
        spec.update(self._spec())
        return spec

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of :meth:`spec` (identifies the distribution and its stream)."""
        return hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()

    def describe(self) -> str:
        """One line: kind, dimension, parameters and normalisation."""
        norm = []
        if self.centre:
            norm.append("centred")
        if self.scale:
            norm.append("unit variance")
        return f"{self.name} latent, dim={self.dim}, seed={self.seed}" + (f" ({', '.join(norm)})" if norm else "")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.describe()}>"

    def __getstate__(self):
        return self.__dict__.copy()


def normalise(raw: np.ndarray, mean: Optional[np.ndarray], std: Optional[np.ndarray]) -> np.ndarray:
    """``(raw - mean) / std`` in float32 (either step skipped when its array is None)."""
    out = np.asarray(raw, dtype=np.float64)
    if mean is not None:
        out = out - np.asarray(mean, dtype=np.float64)
    if std is not None:
        std = np.asarray(std, dtype=np.float64)
        if np.any(std <= 0):
            raise ValueError("cannot scale to unit variance: some coordinates have zero variance")
        out = out / std
    return np.ascontiguousarray(out, dtype=np.float32)
