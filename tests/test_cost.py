import math

import numpy as np
import pytest

import qboson
from qboson.cost import expected_terms


def test_estimate_scales_with_shots_and_size():
    one = qboson.estimate_cost(10, 20, 100, threads=1)
    assert one > 0
    assert qboson.estimate_cost(10, 20, 200, threads=1) == pytest.approx(2 * one)
    assert qboson.estimate_cost(20, 40, 100, threads=1) > 10 * one
    assert qboson.estimate_cost(10, 20, 100, threads=2) == pytest.approx(one / 2)
    assert qboson.estimate_cost(10, 20, 0) == 0
    assert qboson.estimate_cost(24, 48, 1, method="cc2017") > qboson.estimate_cost(24, 48, 1)


def test_expected_terms_formula_against_monte_carlo():
    # E[prod(s_i + 1)] over uniformly random multisets of N photons in m modes.
    rng = np.random.default_rng(0)
    n_rows, m, draws = 6, 12, 50_000
    # A uniform multiset = a uniform composition: stars and bars.
    values = []
    for _ in range(draws):
        bars = np.sort(rng.choice(n_rows + m - 1, size=m - 1, replace=False))
        sizes = np.diff(np.concatenate([[-1], bars, [n_rows + m - 1]])) - 1
        values.append(np.prod(sizes + 1.0))
    exact = math.comb(2 * m + n_rows - 1, n_rows) / math.comb(m + n_rows - 1, n_rows)
    assert np.mean(values) == pytest.approx(exact, rel=0.02)
    assert expected_terms(n_rows, m) == pytest.approx(min(2 ** (n_rows - 1), exact / 2))


def test_bad_arguments():
    with pytest.raises(ValueError):
        qboson.estimate_cost(0, 4)
    with pytest.raises(TypeError):
        qboson.estimate_cost(2, 4, 1.5)
