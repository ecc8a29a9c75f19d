import numpy as np
import pytest

import qboson


@pytest.mark.parametrize("m", [1, 2, 7, 48])
def test_is_unitary_and_reproducible(m):
    u = qboson.haar_unitary(m, seed=3)
    assert u.shape == (m, m) and u.dtype == np.complex128
    np.testing.assert_allclose(u.conj().T @ u, np.eye(m), atol=1e-12)
    np.testing.assert_array_equal(u, qboson.haar_unitary(m, seed=3))
    if m > 1:
        assert not np.allclose(u, qboson.haar_unitary(m, seed=4))


def test_haar_moments():
    # For Haar U(m): E[U_00] = 0, E|U_00|^2 = 1/m, E|U_00|^4 = 2/(m(m+1)).  QR without the phase
    # fix gives E[U_00] far from 0 (a real positive bias), so this catches that mistake.
    m, draws = 4, 4000
    rng = np.random.default_rng(0)
    x = np.array([qboson.haar_unitary(m, seed=rng)[0, 0] for _ in range(draws)])
    assert abs(x.mean()) < 4 * np.sqrt(1 / m / draws)
    assert np.mean(np.abs(x) ** 2) == pytest.approx(1 / m, rel=0.05)
    assert np.mean(np.abs(x) ** 4) == pytest.approx(2 / (m * (m + 1)), rel=0.1)


def test_check_unitary():
    u = qboson.haar_unitary(5, seed=0)
    np.testing.assert_array_equal(qboson.check_unitary(u), u)
    with pytest.raises(ValueError, match="not unitary"):
        qboson.check_unitary(2 * u)
    lossy = 0.9 * u
    np.testing.assert_array_equal(qboson.check_unitary(lossy, allow_subunitary=True), lossy)
    with pytest.raises(ValueError, match="not sub-unitary"):
        qboson.check_unitary(1.1 * u, allow_subunitary=True)


def test_bad_sizes():
    with pytest.raises(ValueError, match="m must be >= 1"):
        qboson.haar_unitary(0)
    with pytest.raises(TypeError, match="integer"):
        qboson.haar_unitary(3.0)


def test_refuses_a_matrix_too_large_for_memory():
    with pytest.raises(ValueError, match="GiB"):
        qboson.haar_unitary(200_000)


@pytest.mark.parametrize("atol", [float("nan"), float("inf"), -1.0, 1.0, "1e-8", None])
def test_check_unitary_refuses_garbage_atol(atol):
    # NaN or a huge tolerance would switch the unitarity check off.
    with pytest.raises((ValueError, TypeError), match="atol"):
        qboson.check_unitary(np.ones((2, 2)), atol=atol)


def test_huge_entries_do_not_overflow_into_acceptance():
    # U^dagger U of entries near 1e300 overflows to inf - inf = NaN, and NaN > atol is False: the old
    # check accepted such a matrix as unitary.
    u = np.array([[1e300, 1e300], [1e300, 1e300j]])
    with np.errstate(all="ignore"):
        assert np.isnan(np.max(np.abs(u.conj().T @ u - np.eye(2))))  # the trap is real
    with pytest.raises(ValueError, match="not unitary"):
        qboson.check_unitary(u)
    with pytest.raises(ValueError, match="not sub-unitary"):
        qboson.check_unitary(u, allow_subunitary=True)
