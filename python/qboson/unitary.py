"""Random interferometers."""

from __future__ import annotations

import numpy as np

from ._seeding import SeedLike, generator
from ._validation import as_int, check_unitary

__all__ = ["haar_unitary", "check_unitary"]


def haar_unitary(m: int, seed: SeedLike = None) -> np.ndarray:
    """Draw an m x m unitary from the Haar measure.

    Uses the QR decomposition of a complex Ginibre matrix with the phases of
    R's diagonal moved into Q (Mezzadri, "How to generate random matrices from
    the classical compact groups", 2007); without that fix QR is not Haar.

    Parameters
    ----------
    m : int
        Number of modes, >= 1.
    seed : int, SeedSequence, Generator or None
        Source of randomness; the same int always gives the same matrix.

    Returns
    -------
    ndarray, shape (m, m), complex128
    """
    m = as_int(m, "m", minimum=1)
    gib = 4 * 16 * m * m / 2**30  # Ginibre matrix, QR factors and the result, complex128
    if gib > 16:
        raise ValueError(f"a Haar unitary of {m} modes needs about {gib:.0f} GiB of memory")
    rng = generator(seed)
    z = (rng.standard_normal((m, m)) + 1j * rng.standard_normal((m, m))) / np.sqrt(2.0)
    q, r = np.linalg.qr(z)
    d = np.diagonal(r)
    return np.ascontiguousarray(q * (d / np.abs(d)))
