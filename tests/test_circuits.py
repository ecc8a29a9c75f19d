"""Tests of qboson.circuits: time-bin loop interferometers and the Clements mesh.

References are built independently here: full m x m beam-splitter matrices multiplied densely.
"""

from __future__ import annotations

import numpy as np
import pytest

from qboson.circuits import (
    ClementsMesh,
    TimeBinCircuit,
    as_unitary,
    clements_decompose,
    clements_reconstruct,
    haar_unitary,
    time_bin_interferometer,
)


def _dense_rotation(m: int, i: int, j: int, theta: float) -> np.ndarray:
    b = np.eye(m, dtype=complex)
    c, s = np.cos(theta), np.sin(theta)
    b[i, i], b[i, j], b[j, i], b[j, j] = c, -s, s, c
    return b


def _reference_tbi(m: int, delays, angles) -> np.ndarray:
    """Loop after loop, pairs (i, i + d) in time order, each as a dense matrix product."""
    u = np.eye(m, dtype=complex)
    k = 0
    for d in delays:
        for i in range(m - d):
            u = _dense_rotation(m, i, i + d, angles[k]) @ u
            k += 1
    assert k == len(angles)
    return u


def _reference_mesh(m, modes, thetas, phis, phases) -> np.ndarray:
    u = np.eye(m, dtype=complex)
    for k, t, p in zip(modes, thetas, phis):
        e = np.eye(m, dtype=complex)
        e[k, k] = np.exp(1j * p) * np.cos(t)
        e[k, k + 1] = -np.sin(t)
        e[k + 1, k] = np.exp(1j * p) * np.sin(t)
        e[k + 1, k + 1] = np.cos(t)
        u = e @ u
    return np.diag(np.exp(1j * np.asarray(phases))) @ u


@pytest.mark.parametrize("m,delays", [(2, (1,)), (6, (1,)), (8, (1, 1)), (16, (1, 3, 9)), (12, (2, 5))])
def test_tbi_matches_dense_product_and_is_unitary(m, delays):
    c = time_bin_interferometer(m, delays, seed=7)
    assert c.m == m and c.delays == tuple(delays)
    assert c.angles.shape == (sum(m - d for d in delays),)
    u = c.unitary()
    assert u.shape == (m, m) and u.dtype == np.complex128
    np.testing.assert_allclose(u, _reference_tbi(m, delays, c.angles), atol=1e-13)
    np.testing.assert_allclose(u.conj().T @ u, np.eye(m), atol=1e-12)
    np.testing.assert_allclose(np.asarray(c), u)
    np.testing.assert_allclose(as_unitary(c), u)


def test_tbi_staircase_order():
    # Full swaps in a delay-1 loop: the photon of bin 0 keeps circulating and leaves in the last bin.
    m = 5
    c = time_bin_interferometer(m, (1,), angles=np.full(m - 1, np.pi / 2))
    u = c.unitary()
    assert abs(u[m - 1, 0]) == pytest.approx(1.0)
    # Zero angles: the identity.
    np.testing.assert_allclose(time_bin_interferometer(m, (1, 2), angles=np.zeros(7)).unitary(), np.eye(m))


def test_tbi_angles_per_loop_and_seed():
    m = 10
    a1, a3 = np.linspace(0, 1, 9), np.linspace(1, 2, 7)
    flat = time_bin_interferometer(m, (1, 3), angles=np.concatenate([a1, a3]))
    split = time_bin_interferometer(m, (1, 3), angles=[a1, a3])
    np.testing.assert_array_equal(flat.angles, split.angles)
    got = split.angles_per_loop()
    np.testing.assert_array_equal(got[0], a1)
    np.testing.assert_array_equal(got[1], a3)
    np.testing.assert_array_equal(
        time_bin_interferometer(m, (1, 3), seed=3).angles, time_bin_interferometer(m, (1, 3), seed=3).angles
    )
    assert not np.array_equal(
        time_bin_interferometer(m, (1, 3), seed=3).angles, time_bin_interferometer(m, (1, 3), seed=4).angles
    )
    a = time_bin_interferometer(m, (1, 3), seed=5).angles
    assert np.all((a >= 0) & (a < 2 * np.pi))


def test_tbi_batched_unitaries_with_columns():
    c = time_bin_interferometer(9, (1, 1), seed=1)
    rng = np.random.default_rng(0)
    angles = c.angles + 0.1 * rng.standard_normal((4, c.n_beam_splitters))
    cols = [0, 2, 5]
    batch = c.unitaries(angles, columns=cols)
    assert batch.shape == (4, 9, 3)
    for s in range(4):
        np.testing.assert_allclose(batch[s], _reference_tbi(9, (1, 1), angles[s])[:, cols], atol=1e-13)
    np.testing.assert_allclose(c.with_angles(angles[2]).unitary(), c.unitary(angles[2]))


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(m=4, delays=(4,)), ValueError),
        (dict(m=4, delays=(0,)), ValueError),
        (dict(m=4, delays=()), ValueError),
        (dict(m=1, delays=(1,)), ValueError),
        (dict(m=4, delays=(1,), angles=[0.1, 0.2]), ValueError),
        (dict(m=4, delays=(1,), angles=[0.1, np.nan, 0.2]), ValueError),
        (dict(m=4.0, delays=(1,)), TypeError),
        (dict(m=4, delays=(1.5,)), TypeError),
    ],
)
def test_tbi_bad_input(kwargs, error):
    m = kwargs.pop("m")
    with pytest.raises(error):
        time_bin_interferometer(m, **kwargs)


def test_tbi_repr_tells_circuits_apart():
    a, b = time_bin_interferometer(6, (1, 1), seed=1), time_bin_interferometer(6, (1, 1), seed=2)
    assert repr(a) == repr(time_bin_interferometer(6, (1, 1), seed=1))
    assert repr(a) != repr(b) and "delays=(1, 1)" in repr(a)


def test_tbi_is_immutable():
    c = time_bin_interferometer(4, (1,), seed=0)
    with pytest.raises(ValueError):
        c.angles[0] = 1.0
    with pytest.raises(ValueError):
        TimeBinCircuit(4, (1,), np.zeros(2))


@pytest.mark.parametrize("m", [1, 2, 3, 4, 7, 12, 31])
def test_clements_reconstructs_haar(m):
    u = haar_unitary(m, 100 + m)
    mesh = clements_decompose(u)
    assert isinstance(mesh, ClementsMesh)
    assert mesh.modes.size == m * (m - 1) // 2
    np.testing.assert_allclose(clements_reconstruct(mesh), u, atol=1e-10, rtol=0)
    np.testing.assert_allclose(
        _reference_mesh(m, mesh.modes, mesh.thetas, mesh.phis, mesh.output_phases), u, atol=1e-10, rtol=0
    )
    if m > 1:
        # Rectangular: at most m columns, each column acting on modes of one parity.
        assert mesh.layers.max() + 1 <= m
        for layer in np.unique(mesh.layers):
            modes = mesh.modes[mesh.layers == layer]
            assert len(set(modes % 2)) == 1
            assert np.all(np.diff(np.sort(modes)) >= 2)


@pytest.mark.parametrize(
    "u",
    [
        np.eye(6),
        np.eye(5)[[2, 0, 4, 1, 3]],
        np.diag(np.exp(1j * np.arange(4))),
        np.array([[0, 1], [1, 0]]),
        time_bin_interferometer(10, (1, 3, 9)[:2], seed=2).unitary(),
    ],
    ids=["identity", "permutation", "phases", "swap", "tbi"],
)
def test_clements_edge_cases(u):
    mesh = clements_decompose(u)
    np.testing.assert_allclose(mesh.unitary(), u, atol=1e-10, rtol=0)


def test_clements_rejects_non_unitary():
    with pytest.raises(ValueError, match="not unitary"):
        clements_decompose(0.9 * np.eye(3))
    with pytest.raises(ValueError):
        clements_decompose(np.ones((2, 3)))
    mesh = clements_decompose(haar_unitary(3, 1))
    bad = ClementsMesh(3, mesh.modes + 2, mesh.thetas, mesh.phis, mesh.output_phases, mesh.layers)
    with pytest.raises(ValueError, match="modes"):
        clements_reconstruct(bad)


def test_haar_is_the_core_function():
    import qboson

    np.testing.assert_array_equal(haar_unitary(5, 9), qboson.haar_unitary(5, 9))
