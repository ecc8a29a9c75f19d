import time

import numpy as np
import pytest

import qboson
from qboson import reference
from reference_math import exact_distribution, keyboard_interrupt_after, pooled_chisquare

P_MIN = 1e-4  # fixed seeds: a correct sampler passes deterministically; a wrong one fails by far


@pytest.mark.parametrize("method", ["cc2020", "cc2017"])
@pytest.mark.parametrize("n,m,seed", [(2, 3, 1), (3, 5, 2), (4, 6, 3), (4, 8, 4), (5, 10, 5)])
def test_quantum_matches_exact_distribution(n, m, seed, method):
    u = qboson.haar_unitary(m, seed=seed)
    inputs = list(range(0, 2 * n, 2))[:n] if 2 * n <= m else list(range(n))
    probs = exact_distribution(u, inputs)
    x = qboson.sample(unitary=u, input_modes=inputs, shots=40_000, seed=seed, method=method)
    assert pooled_chisquare(x, probs) > P_MIN


@pytest.mark.parametrize("n,m,seed", [(3, 5, 2), (4, 8, 4)])
def test_distinguishable_matches_exact_distribution(n, m, seed):
    u = qboson.haar_unitary(m, seed=seed)
    probs = exact_distribution(u, range(n), distinguishable=True)
    x = qboson.sample(unitary=u, n=n, shots=40_000, seed=seed, distinguishable=True)
    assert pooled_chisquare(x, probs) > P_MIN


def test_chisquare_has_power_quantum_vs_distinguishable():
    # The test above must be able to fail: quantum samples against the classical distribution.
    u = qboson.haar_unitary(6, seed=9)
    x = qboson.sample(unitary=u, n=3, shots=40_000, seed=9)
    assert pooled_chisquare(x, exact_distribution(u, range(3), distinguishable=True)) < 1e-6
    y = qboson.sample(unitary=u, n=3, shots=40_000, seed=9, distinguishable=True)
    assert pooled_chisquare(y, exact_distribution(u, range(3))) < 1e-6


def test_real_orthogonal_and_complex_phases_both_right():
    # A sampler right only for real unitaries would pass with the first and fail with the second.
    rng = np.random.default_rng(11)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    phases = np.diag(np.exp(1j * rng.uniform(0, 2 * np.pi, 4)))
    for u in (q, q @ phases @ q.T):
        x = qboson.sample(unitary=u, n=3, shots=30_000, seed=1)
        assert pooled_chisquare(x, exact_distribution(u, range(3))) > P_MIN


def test_hong_ou_mandel():
    bs = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
    x = qboson.sample(unitary=bs, n=2, shots=20_000, seed=0)
    assert not np.any((x[:, 0] == 1) & (x[:, 1] == 1))
    assert abs(np.mean(x[:, 0] == 2) - 0.5) < 0.02
    y = qboson.sample(unitary=bs, n=2, shots=20_000, seed=0, distinguishable=True)
    assert abs(np.mean((y[:, 0] == 1) & (y[:, 1] == 1)) - 0.5) < 0.02


def test_first_and_second_moments_at_larger_size():
    # Exact moments (DESIGN.md): E[s_j] = sum_p |U_jp|^2; pair bunching E[s_j(s_j - 1)] doubles
    # the distinguishable value's exchange term for indistinguishable photons.
    n, m = 8, 16
    u = qboson.haar_unitary(m, seed=21)
    p = np.abs(u[:, :n]) ** 2
    x = qboson.sample(unitary=u, n=n, shots=40_000, seed=21).astype(float)
    mean = p.sum(axis=1)
    se = x.std(axis=0) / np.sqrt(len(x))
    assert np.all(np.abs(x.mean(axis=0) - mean) < 5 * se + 1e-9)
    dist_pair = mean**2 - (p**2).sum(axis=1)
    quantum_pair = 2 * dist_pair
    fact2 = (x * (x - 1)).mean(axis=0)
    se2 = (x * (x - 1)).std(axis=0) / np.sqrt(len(x))
    assert np.all(np.abs(fact2 - quantum_pair) < 5 * se2 + 1e-9)
    assert np.mean(fact2 > dist_pair) > 0.9


def test_shape_dtype_and_photon_number():
    x = qboson.sample(n=5, m=9, shots=100, seed=0)
    assert x.shape == (100, 9) and x.dtype == np.uint8
    assert np.all(x.sum(axis=1) == 5)
    assert qboson.sample(n=3, m=4, shots=0, seed=0).shape == (0, 4)


def test_matches_numpy_reference_distribution():
    u = qboson.haar_unitary(5, seed=4)
    probs = exact_distribution(u, range(3))
    ref = reference.clifford_sample(u, range(3), 3000, np.random.default_rng(0))
    assert pooled_chisquare(ref, probs) > P_MIN


class TestReproducibility:
    def test_same_seed_same_samples_any_thread_count(self):
        runs = [qboson.sample(n=6, m=12, shots=300, seed=42, threads=t) for t in (1, 2, 16)]
        for r in runs[1:]:
            np.testing.assert_array_equal(runs[0], r)

    def test_single_shot_parallel_inside_permanents(self):
        runs = [qboson.sample(n=20, m=40, shots=2, seed=3, threads=t) for t in (1, 2, 4)]
        for r in runs[1:]:
            np.testing.assert_array_equal(runs[0], r)

    def test_split_calls_with_start(self):
        full = qboson.sample(n=5, m=10, shots=50, seed=7)
        parts = [qboson.sample(n=5, m=10, shots=20, seed=7), qboson.sample(n=5, m=10, shots=30, seed=7, start=20)]
        np.testing.assert_array_equal(full, np.vstack(parts))

    def test_methods_and_distinguishable_reproducible(self):
        for kw in ({"method": "cc2017"}, {"distinguishable": True}):
            a = qboson.sample(n=5, m=10, shots=200, seed=1, threads=1, **kw)
            b = qboson.sample(n=5, m=10, shots=200, seed=1, threads=2, **kw)
            np.testing.assert_array_equal(a, b)

    def test_different_seeds_differ(self):
        a = qboson.sample(n=5, m=10, shots=100, seed=1)
        b = qboson.sample(n=5, m=10, shots=100, seed=2)
        assert not np.array_equal(a, b)

    def test_seed_types(self):
        ss = np.random.SeedSequence(5)
        np.testing.assert_array_equal(
            qboson.sample(n=3, m=6, shots=20, seed=5), qboson.sample(n=3, m=6, shots=20, seed=ss)
        )
        g = np.random.default_rng(0)
        a = qboson.sample(n=3, m=6, shots=20, seed=g)
        b = qboson.sample(n=3, m=6, shots=20, seed=g)  # the generator has advanced
        assert not np.array_equal(a, b)
        np.testing.assert_array_equal(a, qboson.sample(n=3, m=6, shots=20, seed=np.random.default_rng(0)))

    def test_same_seedsequence_object_reused(self):
        # Regression: split_seed used to spawn from the caller's SeedSequence, advancing it.
        ss = np.random.SeedSequence(8)
        a = qboson.sample(n=3, m=6, shots=20, seed=ss)
        b = qboson.sample(n=3, m=6, shots=20, seed=ss)
        np.testing.assert_array_equal(a, b)

    def test_fixed_unitary_seed_only_drives_shots(self):
        u = qboson.haar_unitary(6, seed=0)
        a = qboson.sample(unitary=u, n=3, shots=30, seed=9)
        b = qboson.sample(unitary=u, n=3, shots=30, seed=9)
        np.testing.assert_array_equal(a, b)


def test_keyboard_interrupt_stops_promptly():
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt), keyboard_interrupt_after(0.3):
        qboson.sample(n=22, m=44, shots=100_000, seed=0, threads=2, progress=False)
    assert time.perf_counter() - t0 < 5.0


def test_progress_bar_shown_on_request(capsys):
    qboson.sample(n=3, m=6, shots=50, seed=0, progress=True)
    assert "50/50" in capsys.readouterr().err


def test_long_run_warns_with_estimate(monkeypatch):
    # Make the cost model pessimistic so a short run crosses the warning threshold.
    import qboson.sampling as sampling

    monkeypatch.setattr(sampling, "WARN_AFTER_S", 1e-9)
    with pytest.warns(ResourceWarning, match="expected to take about"):
        qboson.sample(n=3, m=6, shots=10, seed=0)


class TestBadInput:
    @pytest.mark.parametrize(
        "kwargs,exc,match",
        [
            ({"n": 0, "m": 4}, ValueError, "n must be >= 1"),
            ({"n": 5, "m": 4}, ValueError, "more photons than modes"),
            ({"n": 2, "m": 4, "shots": -1}, ValueError, "shots must be >= 0"),
            ({"n": 2, "m": 4, "shots": 2.5}, TypeError, "shots must be an integer"),
            ({"n": 2, "m": 4, "threads": 0}, ValueError, "threads must be >= 1"),
            ({"n": 2, "m": 4, "method": "magic"}, ValueError, "unknown method"),
            ({"m": 4, "input_modes": [0, 0]}, ValueError, "distinct"),
            ({"m": 4, "input_modes": [0, 4]}, ValueError, r"lie in \[0, 4\)"),
            ({"m": 4, "input_modes": [0.5]}, TypeError, "integers"),
            ({"n": 2}, ValueError, "number of modes"),
            ({"n": 2, "m": 4, "start": -3}, ValueError, "start must be >= 0"),
            ({"n": 2, "m": 4, "seed": "abc"}, TypeError, "seed must be"),
            ({"n": 2, "m": 4, "seed": -1}, ValueError, "non-negative"),
        ],
    )
    def test_errors(self, kwargs, exc, match):
        with pytest.raises(exc, match=match):
            qboson.sample(**kwargs)

    def test_too_many_photons_for_exact_sampling(self):
        # Beyond 62 photons the C++ Gray-code counters overflow: a clear Python error, not a C++ one.
        with pytest.raises(ValueError, match="out of reach"):
            qboson.sample(n=70, m=140, shots=1, seed=0)
        assert qboson.sample(n=70, m=140, shots=3, seed=0, distinguishable=True).sum(axis=1).tolist() == [70] * 3

    def test_non_unitary(self):
        with pytest.raises(ValueError, match="not unitary"):
            qboson.sample(unitary=np.ones((3, 3)), n=2)

    def test_non_finite_unitary(self):
        u = np.eye(3, dtype=complex)
        u[0, 0] = np.inf
        with pytest.raises(ValueError, match="non-finite"):
            qboson.sample(unitary=u, n=2)

    def test_non_square_unitary(self):
        with pytest.raises(ValueError, match="square"):
            qboson.sample(unitary=np.eye(3)[:, :2], n=1)

    def test_m_mismatch(self):
        with pytest.raises(ValueError, match="does not match"):
            qboson.sample(unitary=np.eye(3), m=4, n=1)
