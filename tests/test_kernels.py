"""Every compiled SIMD variant of the double kernels against independent references.

The vectorised all-minors kernel does all the sampler's work from about 12 photons up (the
scalar path covers at most 256 terms), so it is checked here at 11-16 rows, with repeated rows,
against Ryser's formula on the expanded matrix (tests/reference_math.py), once per variant.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qboson
from qboson import _core
from reference_math import permanent_ryser

KERNELS = ("avx512", "avx2", "baseline")
#: Largest Glynn term count the sampler hands to the scalar minors path (glynn.cpp kScalarMaxTerms).
SCALAR_MAX_TERMS = 256


def _skip_unless_available(kernel: str) -> None:
    available = qboson.build_info()["kernels"]
    if kernel not in available:
        pytest.skip(f"kernel {kernel!r} cannot run here: this CPU/build offers only {available}")


@pytest.fixture(params=KERNELS)
def kernel(request):
    _skip_unless_available(request.param)
    before = qboson.build_info()["kernel"]
    _core.set_kernel(request.param)
    assert qboson.build_info()["kernel"] == request.param
    yield request.param
    _core.set_kernel(before)


def _glynn_terms(mult) -> int:
    """Terms of the multiplicity formula with one copy of the smallest group pinned (as the kernel)."""
    mult = list(mult)
    smallest = min(mult)
    return int(np.prod([m + 1 for m in mult]) // (smallest + 1) * smallest)


# (rows with multiplicity N, multiplicities): distinct rows at 11-16 and bunched outputs.
MINOR_CASES = [
    (11, [1] * 11),
    (12, [3, 2, 2, 1, 1, 1, 1, 1]),
    (13, [1] * 13),
    (14, [4, 3, 2, 2, 1, 1, 1]),
    (15, [2, 2, 2, 2, 2, 1, 1, 1, 1, 1]),
    (16, [1] * 16),
    (16, [5, 4, 3, 2, 1, 1]),
]


@pytest.fixture(scope="module")
def minor_references():
    """Each case's matrix and its N+1 minors by Ryser on the expanded matrix (computed once)."""
    refs = {}
    for idx, (n, mult) in enumerate(MINOR_CASES):
        rng = np.random.default_rng(1000 + idx)
        b = (rng.normal(size=(len(mult), n + 1)) + 1j * rng.normal(size=(len(mult), n + 1))) / np.sqrt(2)
        expanded = np.repeat(b, mult, axis=0)
        expected = np.array([permanent_ryser(np.delete(expanded, col, axis=1)) for col in range(n + 1)])
        refs[idx] = (b, np.array(mult, dtype=np.int64), expected)
    return refs


@pytest.mark.parametrize("case", range(len(MINOR_CASES)))
def test_vectorised_minors_against_ryser(kernel, minor_references, case):
    b, mult, expected = minor_references[case]
    assert _glynn_terms(mult) > SCALAR_MAX_TERMS  # the vectorised path, not the scalar one
    for threads in (1, 3):
        got = _core.minors(b, mult, threads)
        scale = np.max(np.abs(expected))
        assert np.max(np.abs(got - expected)) <= 1e-11 * scale, (kernel, threads)


@pytest.mark.parametrize("n", [11, 13, 16])
def test_plain_permanent_against_ryser(kernel, n):
    rng = np.random.default_rng(2000 + n)
    a = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    expected = permanent_ryser(a)
    assert abs(qboson.permanent(a, threads=1) - expected) <= 1e-12 * abs(expected)


def test_repeated_rows_permanent_against_ryser(kernel):
    rng = np.random.default_rng(7)
    mult = np.array([4, 3, 3, 2, 2, 1, 1])  # 16 rows, 1,440 terms
    b = rng.normal(size=(7, 16)) + 1j * rng.normal(size=(7, 16))
    expanded = np.repeat(b, mult, axis=0)
    got = qboson.permanent(b, rows=mult, threads=2)
    # Ryser in double is itself only good to ~1.4e-11 here (its 2^16 signed terms cancel), so it
    # gets a looser bound; the expanded 16 x 16 matrix in extended precision (2^15 plain Glynn
    # terms, not the multiplicity formula) pins the value much tighter.
    expected = permanent_ryser(expanded)
    assert abs(got - expected) <= 1e-10 * abs(expected)
    tight = qboson.permanent(expanded, extended=True)
    assert abs(got - tight) <= 1e-13 * abs(tight)


def test_variants_agree_with_each_other_to_round_off():
    # The lane layout is the same in every variant; only the instruction set (FMA or not) differs.
    available = qboson.build_info()["kernels"]
    before = qboson.build_info()["kernel"]
    a = qboson.haar_unitary(20, seed=3)
    values = {}
    try:
        for k in available:
            _core.set_kernel(k)
            values[k] = qboson.permanent(a, threads=1)
    finally:
        _core.set_kernel(before)
    ref = values[available[0]]
    for k, v in values.items():
        assert abs(v - ref) <= 1e-12 * abs(ref), k


def test_unknown_or_unavailable_kernel_is_refused():
    with pytest.raises(ValueError, match="unknown kernel 'sse9'"):
        _core.set_kernel("sse9")
    proc = subprocess.run(
        [sys.executable, "-c", "import qboson"], capture_output=True, text=True, timeout=60,
        env=dict(os.environ, QBOSON_KERNEL="sse9"),
    )
    assert proc.returncode != 0 and "unknown kernel 'sse9'" in proc.stderr


@pytest.mark.parametrize("forced", KERNELS)
def test_permanent_tests_pass_under_each_forced_kernel(forced):
    """Run tests/test_permanent.py in a child with QBOSON_KERNEL set (the environment path)."""
    _skip_unless_available(forced)
    tests = Path(__file__).parent
    env = dict(os.environ, QBOSON_KERNEL=forced, OMP_NUM_THREADS="1")
    check = subprocess.run(
        [sys.executable, "-c", "import qboson; print(qboson.build_info()['kernel'])"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert check.stdout.strip() == forced, check.stderr
    # The interrupt test and the extended-precision comparisons do not exercise these kernels.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(tests / "test_permanent.py"),
         "-k", "not keyboard_interrupt and not extended and not isolated and not crashing"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tests.parent,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
