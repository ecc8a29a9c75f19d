import math

import numpy as np
import pytest

import qboson
from reference_math import exact_distribution


@pytest.mark.parametrize("n,m", [(1, 3), (2, 4), (3, 5), (4, 5)])
def test_probabilities_match_bruteforce(n, m):
    u = qboson.haar_unitary(m, seed=n * 10 + m)
    inputs = list(range(m - n, m))
    for dist in (False, True):
        patterns, probs = qboson.probabilities(u, inputs, distinguishable=dist)
        expected = exact_distribution(u, inputs, distinguishable=dist)
        assert patterns.shape == (math.comb(m + n - 1, n), m)
        assert probs.sum() == pytest.approx(1.0, abs=1e-12)
        for s, p in zip(patterns, probs):
            assert p == pytest.approx(expected[tuple(int(v) for v in s)], abs=1e-13)


def test_distinguishable_by_independent_routing():
    # Each photon exits independently: sum over all assignments of outputs to photons.
    u = qboson.haar_unitary(4, seed=1)
    inputs = [0, 2, 3]
    p = np.abs(u) ** 2
    expected = {}
    for outs in np.ndindex(4, 4, 4):
        s = tuple(np.bincount(outs, minlength=4))
        expected[s] = expected.get(s, 0.0) + np.prod([p[o, i] for o, i in zip(outs, inputs)])
    for s, value in expected.items():
        assert qboson.probability(u, inputs, s, distinguishable=True) == pytest.approx(value, abs=1e-14)


def test_hong_ou_mandel_probabilities():
    bs = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
    assert qboson.probability(bs, [0, 1], [1, 1]) == pytest.approx(0.0, abs=1e-15)
    assert qboson.probability(bs, [0, 1], [2, 0]) == pytest.approx(0.5)
    assert qboson.probability(bs, [0, 1], [1, 1], distinguishable=True) == pytest.approx(0.5)


def test_identity_circuit_is_deterministic():
    assert qboson.probability(np.eye(4), [1, 3], [0, 1, 0, 1]) == pytest.approx(1.0)
    assert qboson.probability(np.eye(4), [1, 3], [1, 1, 0, 0]) == 0.0


def test_refuses_huge_enumeration():
    with pytest.raises(ValueError, match="output patterns"):
        qboson.probabilities(qboson.haar_unitary(40, seed=0), range(20))


@pytest.mark.parametrize(
    "pattern,exc,match",
    [
        ([1, 1, 1], ValueError, "photons"),
        ([1, 0], ValueError, "shape"),
        ([1, -1, 2], ValueError, "non-negative"),
        ([0.5, 0.5, 1.0], TypeError, "integers"),
    ],
)
def test_bad_patterns(pattern, exc, match):
    with pytest.raises(exc, match=match):
        qboson.probability(qboson.haar_unitary(3, seed=0), [0, 1], pattern)


def test_wrapping_pattern_sum_is_refused_not_hung():
    # Issue #12 item 4: the int64 sum of this pattern wraps to 1 == photons, and the old code then
    # computed math.factorial(2**62) forever.  Run it in a child so a regression fails, not hangs.
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, qboson\n"
        "u = qboson.haar_unitary(5, seed=0)\n"
        "try:\n"
        "    qboson.probability(u, [0], np.array([2**62] * 4 + [1]))\n"
        "except ValueError as e:\n"
        "    print('ValueError:', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    assert "ValueError: pattern has a count above the 1 photons" in proc.stdout


def test_unsigned_pattern_beyond_int64_is_refused():
    with pytest.raises(ValueError, match="count above"):
        qboson.probability(np.eye(2), [0], np.array([2**64 - 1, 2], dtype=np.uint64))


@pytest.mark.parametrize("atol", [float("nan"), float("inf"), -1e-9, 0.5])
def test_nan_atol_is_refused(atol):
    # Issue #12 item 9: atol=nan made every comparison False, so a non-unitary matrix passed and its
    # "probabilities" summed to 50.
    bad = np.ones((3, 3))
    with pytest.raises(ValueError, match="atol"):
        qboson.probabilities(bad, [0], atol=atol)
    with pytest.raises(ValueError, match="atol"):
        qboson.probability(bad, [0], [1, 0, 0], atol=atol)


def test_wrong_flag_types_are_refused():
    u = qboson.haar_unitary(3, seed=0)
    with pytest.raises(TypeError, match="distinguishable"):
        qboson.probability(u, [0], [1, 0, 0], distinguishable="no")  # truthy string
    with pytest.raises(TypeError, match="max_patterns"):
        qboson.probabilities(u, [0], max_patterns=10.0)


def test_probability_out_of_reach_is_refused_at_once_not_hung():
    # 40 photons in distinct outputs: a 2**39-term permanent, weeks of CPU; refused by the cost model
    import time

    u = qboson.haar_unitary(80, seed=1)
    pattern = np.zeros(80, dtype=np.int64)
    pattern[:40] = 1
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="max_seconds"):
        qboson.probability(u, range(40), pattern)
    assert time.perf_counter() - t0 < 5
    with pytest.raises(ValueError, match="max_seconds"):
        qboson.probability(u, range(40), pattern, max_seconds=float("nan"))
    # a cheap pattern of as many photons (all in 2 outputs: 21 x 21 terms) still runs
    bunched = np.zeros(80, dtype=np.int64)
    bunched[:2] = 20
    assert 0.0 <= qboson.probability(u, range(40), bunched) <= 1.0
