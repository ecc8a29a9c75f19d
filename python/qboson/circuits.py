"""Interferometers: Haar-random unitaries, time-bin loop circuits and Clements meshes.

Conventions (shared by the whole package): an m-mode interferometer is an
``(m, m)`` complex128 matrix ``U`` with ``U[i, j]`` the amplitude from input
mode ``j`` to output mode ``i``; a circuit is applied to a state by
multiplying from the left, so ``U = U_last @ ... @ U_first``.

Time-bin loop interferometers (TBI)
    The photonic processors of the ORCA PT-Series encode m modes as m time bins
    of one optical path that runs through fibre loops.  A loop of delay ``d``
    holds a programmable (variable) beam splitter: as time bin ``i + d``
    arrives, it interferes with the light of bin ``i`` that has been waiting in
    the loop.  One pass through the loop therefore applies the beam splitters
    ``B(theta_i)`` on the bin pairs ``(i, i + d)`` in time order
    ``i = 0, 1, ..., m - d - 1``; several loops are passed one after the other.
    The beam splitter used here is the real rotation ::

        B(theta) = [[cos(theta), -sin(theta)],
                    [sin(theta),  cos(theta)]]      acting on (bin i, bin i + d)

    so ``theta = 0`` lets both bins through unchanged and ``theta = pi/4`` is a
    balanced splitter.  Angles are in radians.  The loop configuration "1-3-9"
    of the paper is ``delays=(1, 3, 9)``; "1-1" (the hardware run) is ``(1, 1)``.

Clements meshes
    :func:`clements_decompose` writes any unitary as a rectangular mesh of
    ``m(m-1)/2`` beam splitters on neighbouring modes followed by output phases
    (Clements et al., Optica 3, 1460 (2016)); :func:`clements_reconstruct`
    multiplies such a mesh back into its unitary.  Each element is ::

        T(theta, phi) = [[exp(i phi) cos(theta), -sin(theta)],
                         [exp(i phi) sin(theta),  cos(theta)]]   on modes (k, k + 1)

    (the phase ``phi`` sits on the upper input), and
    ``U = diag(exp(i * output_phases)) @ T_K @ ... @ T_1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from ._seeding import SeedLike, generator
from ._validation import as_complex_matrix, as_int
from .unitary import haar_unitary

__all__ = [
    "haar_unitary",
    "TimeBinCircuit",
    "time_bin_interferometer",
    "ClementsMesh",
    "clements_decompose",
    "clements_reconstruct",
    "as_unitary",
]


# --------------------------------------------------------------------------------------------
# Time-bin loop interferometers
# --------------------------------------------------------------------------------------------


def _loop_pairs(m: int, delays: Sequence[int]) -> np.ndarray:
    """(K, 2) int64 array of the bin pairs (i, i + d) in the order the beam splitters act."""
    pairs = [(i, i + d) for d in delays for i in range(m - d)]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _apply_rotations(u: np.ndarray, pairs: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Left-multiply a batch of matrices ``u`` (S, m, k) by the beam splitters, in order, in place.

    ``angles`` has shape (S, K): one set of angles per matrix of the batch.
    """
    c = np.cos(angles)
    s = np.sin(angles)
    for b, (i, j) in enumerate(pairs):
        ri = u[:, i, :].copy()
        rj = u[:, j, :]
        cb = c[:, b, None]
        sb = s[:, b, None]
        u[:, i, :] = cb * ri - sb * rj
        u[:, j, :] = sb * ri + cb * rj
    return u


@dataclass(frozen=True)
class TimeBinCircuit:
    """A time-bin loop interferometer: ``m`` bins through loops of the given delays.

    Attributes
    ----------
    m : int
        Number of time bins (modes).
    delays : tuple of int
        Loop delays in bins, in the order the light passes the loops, each in ``[1, m - 1]``.
    angles : ndarray, shape (n_beam_splitters,), float64
        Beam-splitter angles in radians, loop after loop and, within a loop, in time order:
        loop ``k`` contributes ``m - delays[k]`` angles, the one of pair ``(i, i + d)`` at offset ``i``.
    """

    m: int
    delays: tuple
    angles: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        m = as_int(self.m, "m", minimum=1)
        delays = tuple(as_int(d, "delay", minimum=1) for d in self.delays)
        if not delays:
            raise ValueError("a time-bin circuit needs at least one loop (delays is empty)")
        too_long = [d for d in delays if d >= m]
        if too_long:
            raise ValueError(f"loop delays must be < m={m} (a delay of d couples bin i with bin i + d), got {too_long}")
        angles = np.asarray(self.angles, dtype=np.float64)
        count = sum(m - d for d in delays)
        if angles.shape != (count,):
            raise ValueError(
                f"delays {delays} in {m} bins have {count} beam splitters; got angles of shape {angles.shape}"
            )
        if not np.all(np.isfinite(angles)):
            raise ValueError("beam-splitter angles must be finite")
        angles = angles.copy()
        angles.setflags(write=False)
        object.__setattr__(self, "m", m)
        object.__setattr__(self, "delays", delays)
        object.__setattr__(self, "angles", angles)

    @property
    def n_beam_splitters(self) -> int:
        """Number of programmable beam splitters, ``sum(m - d for d in delays)``."""
        return int(self.angles.size)

    @property
    def pairs(self) -> np.ndarray:
        """(n_beam_splitters, 2) int64: the bins ``(i, i + d)`` each beam splitter couples, in order."""
        return _loop_pairs(self.m, self.delays)

    def angles_per_loop(self) -> list:
        """The angles split by loop: a list of arrays, loop k holding ``m - delays[k]`` angles."""
        bounds = np.cumsum([0] + [self.m - d for d in self.delays])
        return [self.angles[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def with_angles(self, angles) -> "TimeBinCircuit":
        """The same loops with other angles (shape ``(n_beam_splitters,)``)."""
        return TimeBinCircuit(self.m, self.delays, angles)

    def unitary(self, angles=None) -> np.ndarray:
        """The (m, m) complex128 matrix the circuit implements (with other ``angles`` if given)."""
        a = self.angles if angles is None else np.asarray(angles, dtype=np.float64)
        if a.shape != self.angles.shape:
            raise ValueError(f"angles must have shape {self.angles.shape}, got {a.shape}")
        return self.unitaries(a[None, :])[0]

    def unitaries(self, angles: np.ndarray, columns: Optional[Sequence[int]] = None) -> np.ndarray:
        """A batch of unitaries, one per row of ``angles``.

        Parameters
        ----------
        angles : ndarray, shape (S, n_beam_splitters)
            Angles in radians, one set per matrix.
        columns : sequence of int, optional
            Only these input columns (e.g. the occupied inputs), in this order.

        Returns
        -------
        ndarray, shape (S, m, m) or (S, m, len(columns)), complex128
        """
        angles = np.asarray(angles, dtype=np.float64)
        if angles.ndim != 2 or angles.shape[1] != self.n_beam_splitters:
            raise ValueError(f"angles must have shape (S, {self.n_beam_splitters}), got {angles.shape}")
        eye = np.eye(self.m, dtype=np.complex128)
        if columns is not None:
            eye = eye[:, np.asarray(columns, dtype=np.int64)]
        u = np.repeat(eye[None, :, :], angles.shape[0], axis=0)
        return _apply_rotations(u, self.pairs, angles)

    def __repr__(self) -> str:
        import hashlib

        digest = hashlib.sha256(np.ascontiguousarray(self.angles).tobytes()).hexdigest()[:16]
        return f"TimeBinCircuit(m={self.m}, delays={self.delays}, angles_sha256={digest!r})"

    def __array__(self, dtype=None, copy=None):
        u = self.unitary()
        return u if dtype is None else u.astype(dtype)


def time_bin_interferometer(
    m: int,
    delays: Iterable[int] = (1,),
    *,
    angles=None,
    seed: SeedLike = None,
) -> TimeBinCircuit:
    """Build a time-bin loop interferometer (see the module notes for the model).

    Parameters
    ----------
    m : int
        Number of time bins (modes), >= 2.
    delays : sequence of int
        Loop delays in time bins, e.g. ``(1,)``, ``(1, 1)`` or ``(1, 3, 9)`` (the paper's "1-3-9").
    angles : array_like, optional
        Beam-splitter angles in radians, either flat (``sum(m - d)`` values, loop after loop) or one
        sequence per loop (``m - d`` values each).  Default: drawn from ``seed``.
    seed : int, SeedSequence, Generator or None
        Used only when ``angles`` is None: every angle uniform in ``[0, 2 pi)``.

    Returns
    -------
    TimeBinCircuit
        ``.unitary()`` gives its (m, m) complex128 matrix.
    """
    m = as_int(m, "m", minimum=2)
    if isinstance(delays, (int, np.integer)):
        delays = (delays,)
    delays = tuple(delays)
    count = sum(m - as_int(d, "delay", minimum=1) for d in delays)
    if angles is None:
        flat = generator(seed).uniform(0.0, 2.0 * np.pi, size=max(count, 0))
    elif isinstance(angles, (list, tuple)) and len(angles) == len(delays) and all(np.ndim(a) == 1 for a in angles):
        for k, (a, d) in enumerate(zip(angles, delays)):
            if len(a) != m - d:
                raise ValueError(f"loop {k} (delay {d}) needs {m - d} angles, got {len(a)}")
        flat = np.concatenate([np.asarray(a, dtype=np.float64) for a in angles])
    else:
        flat = np.asarray(angles, dtype=np.float64)
    return TimeBinCircuit(m, delays, flat)


# --------------------------------------------------------------------------------------------
# Clements rectangular mesh
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClementsMesh:
    """A rectangular mesh of beam splitters on neighbouring modes followed by output phases.

    Attributes
    ----------
    m : int
        Number of modes.
    modes : ndarray, shape (K,), int64
        Element k couples modes ``modes[k]`` and ``modes[k] + 1``; elements in the order light meets them.
    thetas, phis : ndarray, shape (K,), float64
        Mixing angle and input phase of each element, radians (see the module notes for the matrix).
    output_phases : ndarray, shape (m,), float64
        Phases applied to the outputs after the mesh, radians.
    layers : ndarray, shape (K,), int64
        Column of the rectangular mesh each element sits in (0-based); at most m columns.
    """

    m: int
    modes: np.ndarray
    thetas: np.ndarray
    phis: np.ndarray
    output_phases: np.ndarray
    layers: np.ndarray

    def unitary(self) -> np.ndarray:
        """The (m, m) complex128 unitary of the mesh (same as :func:`clements_reconstruct`)."""
        return clements_reconstruct(self)


def _element(theta: float, phi: float) -> np.ndarray:
    e = np.exp(1j * phi)
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[e * c, -s], [e * s, c]], dtype=np.complex128)


def _layers(m: int, modes: Sequence[int]) -> np.ndarray:
    """Earliest column of each element, given the elements before it (as-soon-as-possible schedule)."""
    last = np.full(m, -1, dtype=np.int64)
    out = np.empty(len(modes), dtype=np.int64)
    for k, mode in enumerate(modes):
        layer = max(last[mode], last[mode + 1]) + 1
        out[k] = layer
        last[mode] = last[mode + 1] = layer
    return out


def clements_decompose(unitary, *, atol: float = 1e-8) -> ClementsMesh:
    """Decompose a unitary into a Clements rectangular mesh.

    Parameters
    ----------
    unitary : array_like, shape (m, m)
        Must be unitary within ``atol`` (max entry of ``|U^dagger U - I|``).

    Returns
    -------
    ClementsMesh
        ``m(m-1)/2`` elements in at most ``m`` columns; ``clements_reconstruct`` of it equals ``unitary``
        to about 1e-13 for m <= 50.
    """
    u = as_complex_matrix(unitary, "unitary").copy()
    m = u.shape[0]
    if m == 0:
        raise ValueError("unitary must have at least one mode")
    err = np.max(np.abs(u.conj().T @ u - np.eye(m)))
    if err > atol:
        raise ValueError(f"matrix is not unitary: max |U^dagger U - I| = {err:.3g} > atol={atol:g}")
    right = []  # (mode, theta, phi) of T applied to U from the right as T^{-1}
    left = []  # (mode, theta, phi) of T applied to U from the left
    for i in range(m - 1):
        if i % 2 == 0:
            for j in range(i + 1):
                row, k = m - 1 - j, i - j  # null u[row, k] mixing columns k and k + 1
                a, b = u[row, k], u[row, k + 1]
                theta = np.arctan2(abs(a), abs(b))
                phi = np.angle(a) - np.angle(b)
                t_inv = _element(theta, phi).conj().T
                u[:, k : k + 2] = u[:, k : k + 2] @ t_inv
                right.append((k, theta, phi))
        else:
            for j in range(i + 1):
                k, col = m - 2 - i + j, j  # null u[k + 1, col] mixing rows k and k + 1
                a, b = u[k, col], u[k + 1, col]
                theta = np.arctan2(abs(b), abs(a))
                phi = np.angle(-b) - np.angle(a) if abs(b) > 0 else 0.0
                u[k : k + 2, :] = _element(theta, phi) @ u[k : k + 2, :]
                left.append((k, theta, phi))
    d = np.diagonal(u).copy()
    d /= np.abs(d)  # removes the round-off in the moduli; u is diagonal up to ~1e-15 here
    # U = L_1^-1 ... L_p^-1 D R_q ... R_1.  Move each L^-1 through D: T^-1 D = D' T(theta, phi').
    moved = []
    for k, theta, phi in reversed(left):
        d1, d2 = d[k], d[k + 1]
        new_phi = np.angle(-d1 / d2)
        d[k] = -np.exp(-1j * phi) * d2
        moved.append((k, theta, new_phi))
    # Order in which light meets the elements: R_1 .. R_q, then T'_p .. T'_1.
    elements = right + moved
    modes = np.array([e[0] for e in elements], dtype=np.int64)
    thetas = np.array([e[1] for e in elements], dtype=np.float64)
    phis = np.array([float(np.mod(e[2], 2 * np.pi)) for e in elements], dtype=np.float64)
    return ClementsMesh(
        m=m,
        modes=modes,
        thetas=thetas,
        phis=phis,
        output_phases=np.mod(np.angle(d), 2 * np.pi),
        layers=_layers(m, modes),
    )


def clements_reconstruct(mesh: ClementsMesh) -> np.ndarray:
    """Multiply a mesh back into its (m, m) complex128 unitary: ``diag(e^{i phases}) T_K ... T_1``."""
    m = as_int(mesh.m, "m", minimum=1)
    modes = np.asarray(mesh.modes, dtype=np.int64)
    thetas = np.asarray(mesh.thetas, dtype=np.float64)
    phis = np.asarray(mesh.phis, dtype=np.float64)
    if not (modes.shape == thetas.shape == phis.shape) or modes.ndim != 1:
        raise ValueError("mesh modes, thetas and phis must be 1-D arrays of one length")
    if modes.size and (modes.min() < 0 or modes.max() > m - 2):
        raise ValueError(f"mesh element modes must lie in [0, {m - 2}]")
    phases = np.asarray(mesh.output_phases, dtype=np.float64)
    if phases.shape != (m,):
        raise ValueError(f"output_phases must have shape ({m},), got {phases.shape}")
    u = np.eye(m, dtype=np.complex128)
    for k, theta, phi in zip(modes, thetas, phis):
        u[k : k + 2, :] = _element(theta, phi) @ u[k : k + 2, :]
    return np.exp(1j * phases)[:, None] * u


# --------------------------------------------------------------------------------------------


def as_unitary(unitary_or_circuit) -> np.ndarray:
    """The matrix of a circuit object (anything with a ``unitary()`` method) or of an array, as complex128.

    No unitarity check: callers validate (``qboson.check_unitary``).
    """
    if hasattr(unitary_or_circuit, "unitary") and callable(unitary_or_circuit.unitary):
        return as_complex_matrix(unitary_or_circuit.unitary(), "circuit unitary")
    return as_complex_matrix(unitary_or_circuit, "unitary")
