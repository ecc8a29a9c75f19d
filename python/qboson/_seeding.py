"""Turning the user's ``seed`` argument into reproducible random streams.

Every public function that draws randomness takes ``seed`` as an int, a
:class:`numpy.random.SeedSequence`, a :class:`numpy.random.Generator` or ``None``
(fresh entropy).  A seed is split into independent streams by purpose, so that,
for example, the Haar unitary drawn by :func:`qboson.sample` does not share
random numbers with the shots.

Shot ``i`` of a sampling call is drawn from a C++ generator seeded only by
``(shot_key, i)``: results do not depend on the number of threads or on how the
shots are split between calls (see ``start`` in :func:`qboson.sample`).
"""

from __future__ import annotations

from typing import Union

import numpy as np

SeedLike = Union[None, int, np.integer, np.random.SeedSequence, np.random.Generator]

__all__ = ["SeedLike", "seed_sequence", "split_seed", "generator"]


def seed_sequence(seed: SeedLike) -> np.random.SeedSequence:
    """Return a SeedSequence for ``seed`` (a Generator contributes 128 fresh bits of its stream)."""
    if seed is None or isinstance(seed, (int, np.integer)):
        if isinstance(seed, (bool, np.bool_)):
            raise TypeError("seed must be an int, SeedSequence, Generator or None, not bool")
        if seed is not None and int(seed) < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        return np.random.SeedSequence(None if seed is None else int(seed))
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(seed.integers(0, 2**63, size=2, dtype=np.uint64).tolist())
    raise TypeError(
        f"seed must be an int, numpy.random.SeedSequence, numpy.random.Generator or None, "
        f"not {type(seed).__name__}"
    )


def split_seed(seed: SeedLike) -> tuple[np.random.Generator, int]:
    """Split ``seed`` into (generator for the circuit, 64-bit key for the shots).

    The two streams are independent children of one SeedSequence, so the same
    seed always gives the same unitary and the same shots.
    """
    ss = seed_sequence(seed)
    # spawn() advances the SeedSequence it is called on: spawn from a copy, so that passing the
    # same SeedSequence twice gives the same result.
    ss = np.random.SeedSequence(ss.entropy, spawn_key=ss.spawn_key, pool_size=ss.pool_size)
    circuit_ss, shots_ss = ss.spawn(2)
    key = int(shots_ss.generate_state(1, dtype=np.uint64)[0])
    return np.random.default_rng(circuit_ss), key


def generator(seed: SeedLike) -> np.random.Generator:
    """A numpy Generator for ``seed`` (a Generator is used as it is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed_sequence(seed))
