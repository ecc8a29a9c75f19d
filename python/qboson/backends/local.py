"""The default backend: qboson's own C++ exact sampler, noise models included."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .._seeding import SeedLike, split_seed
from .._validation import UNITARY_ATOL, as_int, as_threads, check_unitary, input_mode_array
from ..circuits import TimeBinCircuit, as_unitary
from ..sampling import METHODS, sample as _sample

__all__ = ["LocalBackend"]


class LocalBackend:
    """Exact samples from :func:`qboson.sample`, optionally through a :class:`qboson.noise.NoiseModel`.

    Parameters
    ----------
    noise : qboson.noise.NoiseModel, optional
        Noisy device to sample; with a :class:`~qboson.circuits.TimeBinCircuit` the circuit itself reaches
        the model (needed for beam-splitter angle noise).
    threads : int, optional
        OpenMP threads (``None`` = all cores).
    method : {"cc2020", "cc2017"}
        Permanent scheme of the exact sampler.
    progress : bool, optional
        Progress bar (``None``: only for long runs).
    atol : float
        Unitarity tolerance of the matrix.

    ``sample(..., seed=s)`` equals ``qboson.sample(unitary=U, input_modes=..., shots=..., seed=s)``
    bit for bit, and accepts ``start=`` and ``distinguishable=`` like it.
    """

    name = "local"

    def __init__(
        self,
        *,
        noise=None,
        threads: Optional[int] = None,
        method: str = "cc2020",
        progress: Optional[bool] = None,
        atol: float = UNITARY_ATOL,
    ) -> None:
        if noise is not None and not callable(getattr(noise, "sample", None)):
            raise TypeError(f"noise must be a qboson.noise.NoiseModel, got {type(noise).__name__}")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
        self.noise = noise
        self.threads = None if threads is None else as_threads(threads)
        self.method = method
        self.progress = progress
        self.atol = float(atol)

    def __repr__(self) -> str:
        return f"LocalBackend(noise={self.noise!r}, threads={self.threads}, method={self.method!r})"

    def sample(
        self,
        unitary_or_circuit,
        input_modes: Sequence[int],
        shots: int,
        seed: SeedLike = None,
        *,
        start: int = 0,
        distinguishable: bool = False,
    ) -> np.ndarray:
        """Photon counts, shape (shots, m), unsigned integers; shot i depends only on (seed, start + i)."""
        u = as_unitary(unitary_or_circuit)
        if self.noise is None:
            return _sample(
                unitary=u, input_modes=input_modes, shots=shots, seed=seed, start=start,
                distinguishable=distinguishable, threads=self.threads, progress=self.progress,
                method=self.method, atol=self.atol,
            )
        shots = as_int(shots, "shots", minimum=0)
        start = as_int(start, "start", minimum=0)
        u = check_unitary(u, atol=self.atol, allow_subunitary=True)
        modes = input_mode_array(input_modes, None, u.shape[0])
        _, key = split_seed(seed)  # the same key qboson.sample(..., noise=...) uses
        target = unitary_or_circuit if isinstance(unitary_or_circuit, TimeBinCircuit) else u
        return self.noise.sample(
            target, modes, shots, key=key, start=start, threads=as_threads(self.threads),
            progress=self.progress, method=self.method, distinguishable=distinguishable,
        )
