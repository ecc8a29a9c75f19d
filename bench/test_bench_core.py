"""pytest-benchmark cases: ``pytest bench/test_bench_core.py --benchmark-enable``."""

import numpy as np
import pytest

import qboson


@pytest.mark.parametrize("n", [12, 16, 20, 22, 24, 26])
def test_permanent(benchmark, n):
    a = qboson.haar_unitary(n, seed=n)
    benchmark.group = "permanent (1 thread)"
    benchmark(qboson.permanent, a, threads=1)


SAMPLE_CASES = [(8, 16, 20_000), (12, 24, 5_000), (16, 32, 500), (20, 40, 50), (24, 48, 5)]


@pytest.mark.parametrize("n,m,shots", SAMPLE_CASES)
def test_sample(benchmark, n, m, shots):
    u = qboson.haar_unitary(m, seed=n)
    benchmark.group = "sample (1 thread), per call of `shots`"
    benchmark.extra_info["shots"] = shots
    benchmark.pedantic(qboson.sample, kwargs=dict(unitary=u, n=n, shots=shots, seed=0, threads=1),
                       rounds=3, iterations=1)


def test_distinguishable(benchmark):
    benchmark.group = "distinguishable (24, 48), 1M shots"
    benchmark.pedantic(qboson.sample, kwargs=dict(n=24, m=48, shots=1_000_000, seed=0, distinguishable=True),
                       rounds=3, iterations=1)
