import math
import time

import numpy as np
import pytest

import qboson
from qboson import _core
from reference_math import keyboard_interrupt_after, permanent_bruteforce, permanent_ryser


def random_complex(rng, *shape):
    return rng.normal(size=shape) + 1j * rng.normal(size=shape)


@pytest.mark.parametrize("n", range(1, 8))
def test_against_bruteforce(n):
    rng = np.random.default_rng(n)
    a = random_complex(rng, n, n)
    expected = permanent_bruteforce(a)
    assert abs(qboson.permanent(a) - expected) <= 1e-12 * abs(expected)


@pytest.mark.parametrize("n", [8, 10, 12])
def test_against_ryser(n):
    rng = np.random.default_rng(100 + n)
    a = random_complex(rng, n, n)
    expected = permanent_ryser(a)
    assert abs(qboson.permanent(a) - expected) <= 1e-12 * abs(expected)


@pytest.mark.parametrize("n", range(1, 13))
def test_all_ones_is_factorial(n):
    assert qboson.permanent(np.ones((n, n))) == pytest.approx(math.factorial(n), rel=1e-13)


def test_identity_and_permutation_matrices():
    rng = np.random.default_rng(0)
    for n in (1, 5, 9, 14):
        assert qboson.permanent(np.eye(n)) == pytest.approx(1.0, abs=1e-13)
        p = np.eye(n)[rng.permutation(n)]
        assert qboson.permanent(p) == pytest.approx(1.0, abs=1e-13)
        # a singular-looking 0/1 matrix: permanent of J - I counts derangements
        derangements = round(math.factorial(n) * sum((-1) ** k / math.factorial(k) for k in range(n + 1)))
        assert qboson.permanent(np.ones((n, n)) - np.eye(n)).real == pytest.approx(derangements, rel=1e-12)


def test_row_scaling_transpose_conjugate():
    rng = np.random.default_rng(3)
    a = random_complex(rng, 9, 9)
    d = random_complex(rng, 9)
    per = qboson.permanent(a)
    assert qboson.permanent(d[:, None] * a) == pytest.approx(np.prod(d) * per, rel=1e-12)
    assert qboson.permanent(a.T) == pytest.approx(per, rel=1e-12)
    assert qboson.permanent(a.conj()) == pytest.approx(np.conj(per), rel=1e-12)


def test_real_and_integer_input_and_empty():
    assert qboson.permanent([[1, 2], [3, 4]]) == pytest.approx(10)
    assert qboson.permanent(np.array([[2.5]])) == pytest.approx(2.5)
    assert qboson.permanent(np.zeros((0, 0))) == 1


@pytest.mark.parametrize("n", [20, 22, 24])
def test_double_agrees_with_extended_precision(n):
    # Documented bound (docs/precision.md): relative error below 1e-11 up to n = 24.
    rng = np.random.default_rng(n)
    a = random_complex(rng, n, n) / np.sqrt(n)
    exact = qboson.permanent(a, extended=True)
    assert abs(qboson.permanent(a) - exact) <= 1e-11 * abs(exact)


def test_extended_agrees_with_independent_ryser():
    rng = np.random.default_rng(16)
    a = random_complex(rng, 16, 16)
    expected = permanent_ryser(a)
    assert abs(qboson.permanent(a, extended=True) - expected) <= 1e-11 * abs(expected)


@pytest.mark.parametrize("seed", range(6))
def test_repeated_rows_equal_expanded_matrix(seed):
    rng = np.random.default_rng(seed)
    groups = int(rng.integers(1, 6))
    mult = rng.integers(1, 4, size=groups)
    n = int(mult.sum())
    b = random_complex(rng, groups, n)
    expanded = np.repeat(b, mult, axis=0)
    expected = permanent_ryser(expanded)
    got = qboson.permanent(b, rows=mult)
    assert abs(got - expected) <= 1e-11 * abs(expected)


@pytest.mark.parametrize("seed", range(6))
def test_minors_equal_bruteforce(seed):
    rng = np.random.default_rng(50 + seed)
    groups = int(rng.integers(1, 5))
    mult = rng.integers(1, 4, size=groups).astype(np.int64)
    n = int(mult.sum())
    b = random_complex(rng, groups, n + 1)
    expanded = np.repeat(b, mult, axis=0)
    got = _core.minors(b, mult, 1)
    for col in range(n + 1):
        expected = permanent_ryser(np.delete(expanded, col, axis=1))
        assert abs(got[col] - expected) <= 1e-11 * max(1.0, abs(expected))


def test_minors_of_empty_matrix():
    np.testing.assert_array_equal(_core.minors(np.zeros((0, 1), complex), np.zeros(0, np.int64), 1), [1])


def test_result_does_not_depend_on_threads():
    rng = np.random.default_rng(7)
    a = random_complex(rng, 19, 19)
    values = {qboson.permanent(a, threads=t) for t in (1, 2, 3, 8)}
    assert len(values) == 1


class TestBadInput:
    def test_not_square(self):
        with pytest.raises(ValueError, match="square"):
            qboson.permanent(np.ones((2, 3)))

    def test_not_2d(self):
        with pytest.raises(ValueError, match="2-D"):
            qboson.permanent(np.ones(4))

    def test_non_finite(self):
        a = np.eye(3)
        a[1, 2] = np.nan
        with pytest.raises(ValueError, match="non-finite"):
            qboson.permanent(a)

    def test_not_numeric(self):
        with pytest.raises(TypeError):
            qboson.permanent([["a", "b"], ["c", "d"]])

    def test_too_large_is_refused_with_estimate(self):
        with pytest.raises(ValueError, match=r"would take about .* s"):
            qboson.permanent(np.ones((44, 44)))

    def test_beyond_counter_range(self):
        with pytest.raises(ValueError, match="out of reach"):
            qboson.permanent(np.ones((63, 63)), max_seconds=None)

    def test_bad_multiplicities(self):
        with pytest.raises(ValueError, match="multiplicities"):
            qboson.permanent(np.ones((2, 3)), rows=[1, 1])
        with pytest.raises(ValueError, match=">= 1"):
            qboson.permanent(np.ones((2, 3)), rows=[3, 0])

    def test_bad_threads(self):
        with pytest.raises(ValueError, match="threads"):
            qboson.permanent(np.eye(2), threads=0)


def test_keyboard_interrupt_stops_a_long_permanent():
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt), keyboard_interrupt_after(0.3):
        qboson.permanent(qboson.haar_unitary(34, seed=0), threads=2)  # minutes if not stopped
    assert time.perf_counter() - t0 < 5.0


def _run_isolated(code: str, timeout: float = 120.0):
    """Run ``code`` in a fresh interpreter, so that a crash or hang fails one test, not the run."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)


def test_wrapping_multiplicities_raise_instead_of_crashing():
    # Issue #12 item 3: the int64 sum of these rows wraps to 2 == columns, and the C++ planner
    # then indexed its binomial table with 2**63 (SIGSEGV).
    proc = _run_isolated(
        "import numpy as np, qboson\n"
        "try:\n"
        "    qboson.permanent(np.ones((3, 2)), rows=[2**63 - 1, 2**63 - 1, 4], max_seconds=None)\n"
        "except ValueError as e:\n"
        "    print('ValueError:', e)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "ValueError: row multiplicities must be <=" in proc.stdout


def test_core_refuses_multiplicities_it_cannot_index():
    # The C++ side checks each multiplicity before summing, whatever the Python layer lets through.
    with pytest.raises(ValueError, match=r"multiplicities must lie in \[1, 62\]"):
        _core.permanent(np.ones((3, 2), complex), np.array([2**63 - 1, 2**63 - 1, 4]), 1, False)
    with pytest.raises(ValueError, match=r"multiplicities must lie in \[1, 62\]"):
        _core.minors(np.ones((2, 3), complex), np.array([2**62, -(2**62) + 2]), 1)
    with pytest.raises(ValueError, match="at most 62 rows"):
        _core.permanent(np.ones((63, 63), complex), np.ones(63, np.int64), 1, False)


def test_thread_counts_beyond_the_limit_are_refused():
    # libgomp aborts the process near 1,000 threads: refuse clearly in Python and in C++.
    with pytest.raises(ValueError, match="threads must be <= 256"):
        qboson.permanent(np.eye(3), threads=1000)
    with pytest.raises(ValueError, match=r"threads must be in \[1, 256\]"):
        _core.permanent(np.eye(3, dtype=complex), np.ones(3, np.int64), 1000, False)


@pytest.mark.parametrize("max_seconds", [float("nan"), -1.0, "10"])
def test_max_seconds_garbage_is_refused(max_seconds):
    # NaN compared False with every estimate, so it switched the cost refusal off.
    with pytest.raises((ValueError, TypeError), match="max_seconds"):
        qboson.permanent(np.ones((44, 44)), max_seconds=max_seconds)


def test_multiplicities_must_be_integers():
    with pytest.raises(TypeError, match="integers"):
        qboson.permanent(np.ones((2, 3)), rows=[1.5, 1.5])
    with pytest.raises(TypeError, match="True or False"):
        qboson.permanent(np.eye(2), extended="yes")


def test_numpy_transcriptions_against_independent_references():
    # qboson.reference shares the kernels' algorithms (it is the benchmarks' numpy baseline), so it
    # is checked here against brute force and Ryser rather than used as the check.
    from qboson import reference

    rng = np.random.default_rng(31)
    for n in (1, 4, 7):
        a = random_complex(rng, n, n)
        expected = permanent_bruteforce(a)
        assert abs(reference.glynn_permanent(a) - expected) <= 1e-12 * abs(expected)
        b = random_complex(rng, n, n + 1)
        minors = reference.glynn_minors(b)
        for col in range(n + 1):
            exp_minor = permanent_ryser(np.delete(b, col, axis=1))
            assert abs(minors[col] - exp_minor) <= 1e-11 * max(1.0, abs(exp_minor))


def test_overflowing_permanent_is_refused_not_returned_as_nan():
    # found by hypothesis: finite entries near 1e300 overflow the Glynn sums to inf - inf = nan,
    # which was returned as the permanent
    a = np.array([[1.26e299 - 5.36e299j, -1.32e299 + 3.62e299j],
                  [6.40e299 + 1.30e300j, 1.05e299 + 9.47e299j]])
    for extended in (False, True):
        with pytest.raises(ValueError, match="overflows double precision"):
            qboson.permanent(a, extended=extended)
    b = a / 1e299  # the rescaling the message suggests
    scaled = qboson.permanent(b)
    assert abs(scaled - (b[0, 0] * b[1, 1] + b[0, 1] * b[1, 0])) < 1e-12 * abs(scaled)
