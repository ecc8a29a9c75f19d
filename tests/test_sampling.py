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


class TestOverflowingArguments:
    def test_shot_start_near_2_64_does_not_wrap_to_shot_0(self):
        # Issue #12 item 9: start + i wrapped round 2**64 inside C++, silently repeating shot 0.
        with pytest.raises(ValueError, match=r"exceeds 2\*\*64"):
            qboson.sample(n=2, m=4, shots=3, seed=0, start=2**64 - 2)
        with pytest.raises(ValueError, match="start must be >= 0"):
            qboson.sample(n=2, m=4, shots=1, seed=0, start=-1)
        # The last valid streams are usable, and they are not the first ones again.
        last = qboson.sample(n=6, m=12, shots=5, seed=0, start=2**64 - 5)
        first = qboson.sample(n=6, m=12, shots=5, seed=0, start=0)
        assert last.shape == (5, 12) and np.all(last.sum(axis=1) == 6)
        assert not np.array_equal(last, first)

    def test_core_refuses_wrapping_shot_range(self):
        from qboson import _core

        cols = np.eye(3, dtype=complex)[:, :1]
        out = np.zeros((2, 3), np.uint8)
        with pytest.raises(ValueError, match="2\\^64"):
            _core.sample(cols, out, 2**64 - 1, 0, 1, 0, False, np.ones(1), 1.0, np.zeros(3))

    def test_threads_beyond_limit(self):
        # libgomp aborted the whole process at 1,000 threads.
        with pytest.raises(ValueError, match="threads must be <= 256"):
            qboson.sample(n=2, m=4, shots=1, seed=0, threads=1000)
        with pytest.raises(ValueError, match="threads must be <= 256"):
            qboson.estimate_cost(2, 4, 1, threads=10**6)

    @pytest.mark.parametrize("atol", [float("nan"), -1.0, 1.0])
    def test_garbage_atol(self, atol):
        with pytest.raises(ValueError, match="atol"):
            qboson.sample(unitary=np.ones((3, 3)), n=1, shots=1, atol=atol)

    def test_shots_beyond_memory(self):
        with pytest.raises(ValueError, match="memory"):
            qboson.sample(n=2, m=4, shots=10**15, seed=0)

    def test_flag_and_noise_types(self):
        with pytest.raises(TypeError, match="distinguishable"):
            qboson.sample(n=2, m=4, shots=1, seed=0, distinguishable="no")
        with pytest.raises(TypeError, match="NoiseModel"):
            qboson.sample(n=2, m=4, shots=1, seed=0, noise="lossy")


class TestParallelPathsMatchSerial:
    """Thread invariance where the threads really run (the 0.02 s serial cut-off is bypassed)."""

    @staticmethod
    def _record_threads(monkeypatch):
        import types

        import qboson.sampling as sampling

        seen = []
        real = sampling._core

        def sample(*args):
            seen.append(args[4])  # the threads argument
            return real.sample(*args)

        monkeypatch.setattr(sampling, "_core", types.SimpleNamespace(sample=sample))
        return seen

    @pytest.mark.parametrize("kwargs", [{}, {"method": "cc2017"}, {"distinguishable": True}])
    def test_parallel_shot_loop_matches_serial(self, monkeypatch, kwargs):
        import qboson.sampling as sampling

        serial = qboson.sample(n=8, m=16, shots=400, seed=5, threads=1, **kwargs)
        monkeypatch.setattr(sampling, "_SERIAL_BELOW_S", 0.0)
        seen = self._record_threads(monkeypatch)
        for t in (2, 3, 7):
            np.testing.assert_array_equal(qboson.sample(n=8, m=16, shots=400, seed=5, threads=t, **kwargs), serial)
        assert set(seen) == {2, 3, 7}  # the kernel really got the threads

    def test_parallel_shot_loop_above_the_cut_off(self, monkeypatch):
        # A size whose estimate is above the cut-off, without touching it.
        import qboson.sampling as sampling

        assert qboson.estimate_cost(10, 20, 2000, threads=1) > sampling._SERIAL_BELOW_S
        serial = qboson.sample(n=10, m=20, shots=2000, seed=3, threads=1)
        seen = self._record_threads(monkeypatch)
        np.testing.assert_array_equal(qboson.sample(n=10, m=20, shots=2000, seed=3, threads=2), serial)
        assert seen and set(seen) == {2}

    def test_parallel_minors_inside_one_shot_match_serial(self, monkeypatch):
        # Fewer shots than threads: the threads split each shot's minors (vectorised kernel, > 256 terms).
        import qboson.sampling as sampling

        monkeypatch.setattr(sampling, "_SERIAL_BELOW_S", 0.0)
        serial = qboson.sample(n=20, m=40, shots=2, seed=3, threads=1)
        seen = self._record_threads(monkeypatch)
        for t in (3, 4):
            np.testing.assert_array_equal(qboson.sample(n=20, m=40, shots=2, seed=3, threads=t), serial)
        assert set(seen) == {3, 4}
