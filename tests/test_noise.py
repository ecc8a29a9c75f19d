"""Tests of qboson.noise: noisy samples against exact noisy output probabilities.

The reference distributions are computed here by brute force and independently of the code under test:
partially distinguishable photons by the first-quantised double sum over permutations with the Gram
matrix of their internal states (G_ab = x for a != b), output losses by an explicit physical dilation
(a beam splitter to an environment mode per lossy mode) with the environment traced out by enumeration,
input losses by enumerating surviving subsets, dark counts and detectors by enumeration.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict

import numpy as np
import pytest
from scipy import stats

import qboson
from qboson._seeding import split_seed
from qboson.circuits import time_bin_interferometer
from qboson.noise import NoiseModel, NoisyRun

# ----------------------------------------------------------------------------------------------
# Independent reference
# ----------------------------------------------------------------------------------------------


def _inverse(p):
    inv = [0] * len(p)
    for i, v in enumerate(p):
        inv[v] = i
    return tuple(inv)


def _fock_distribution(ubig: np.ndarray, cols, x: float) -> dict:
    """Output distribution of one photon in each of ``cols`` of the unitary ``ubig``, pairwise overlap x."""
    big_m = ubig.shape[0]
    k = len(cols)
    if k == 0:
        return {(0,) * big_m: 1.0}
    perms = list(itertools.permutations(range(k)))
    invs = [_inverse(p) for p in perms]
    out = {}
    for rho in itertools.combinations_with_replacement(range(big_m), k):
        s = np.bincount(rho, minlength=big_m)
        amps = [np.prod([ubig[rho[p[j]], cols[j]] for j in range(k)]) for p in perms]
        total = 0j
        for a, inv_a in zip(amps, invs):
            for b, inv_b in zip(amps, invs):
                differ = sum(inv_a[q] != inv_b[q] for q in range(k))
                total += a * np.conj(b) * x**differ
        out[tuple(int(v) for v in s)] = total.real / math.prod(math.factorial(int(v)) for v in s)
    return out


def _loss_dilation(t_out) -> np.ndarray:
    """2m-mode unitary coupling mode i to environment mode m + i with transmission t_out[i]."""
    t = np.asarray(t_out, dtype=float)
    m = t.size
    a, b = np.sqrt(t), np.sqrt(1 - t)
    big = np.zeros((2 * m, 2 * m), dtype=complex)
    big[:m, :m] = np.diag(a)
    big[:m, m:] = -np.diag(b)
    big[m:, :m] = np.diag(b)
    big[m:, m:] = np.diag(a)
    return big


def _direct_sum(u: np.ndarray, m: int) -> np.ndarray:
    big = np.eye(2 * m, dtype=complex)
    big[:m, :m] = u
    return big


def exact_noisy(ubig, m, modes, t_in, x, dark=None, threshold=False, postselect=None):
    """Exact distribution of the detected patterns (dict) and the post-selection acceptance."""
    n = len(modes)
    dist = defaultdict(float)
    for survive in itertools.product([0, 1], repeat=n):
        w = math.prod(t_in[j] if s else 1 - t_in[j] for j, s in enumerate(survive))
        if w == 0:
            continue
        cols = [modes[j] for j in range(n) if survive[j]]
        for s_big, p in _fock_distribution(ubig, cols, x).items():
            dist[s_big[:m]] += w * p
    if dark is not None:
        new = defaultdict(float)
        for s, p in dist.items():
            for clicks in itertools.product([0, 1], repeat=m):
                w = math.prod(dark[i] if c else 1 - dark[i] for i, c in enumerate(clicks))
                if w:
                    new[tuple(a + c for a, c in zip(s, clicks))] += p * w
        dist = new
    if threshold:
        new = defaultdict(float)
        for s, p in dist.items():
            new[tuple(min(v, 1) for v in s)] += p
        dist = new
    acceptance = 1.0
    if postselect is not None:
        dist = {s: p for s, p in dist.items() if sum(s) in postselect}
        acceptance = sum(dist.values())
        dist = {s: p / acceptance for s, p in dist.items()}
    return dict(dist), acceptance


def chi2_pvalue(samples: np.ndarray, dist: dict) -> float:
    """Chi-square goodness of fit on raw counts; bins with expected count < 5 pooled into one."""
    counts = Counter(map(tuple, np.asarray(samples, dtype=np.int64).tolist()))
    outside = [s for s in counts if dist.get(s, 0.0) <= 1e-15]
    assert not outside, f"samples outside the support of the exact distribution: {outside[:5]}"
    shots = len(samples)
    obs, exp = [], []
    pool_o, pool_e = 0, 0.0
    for s, p in dist.items():
        e = shots * p
        if e < 5:
            pool_o += counts.get(s, 0)
            pool_e += e
        else:
            obs.append(counts.get(s, 0))
            exp.append(e)
    if pool_e > 0:
        obs.append(pool_o)
        exp.append(pool_e)
    obs, exp = np.array(obs, float), np.array(exp, float)
    stat = float(np.sum((obs - exp) ** 2 / exp))
    return float(stats.chi2.sf(stat, len(obs) - 1))


def _draw(model, u, modes, shots, seed, **kw):
    _, key = split_seed(seed)
    return model.sample(u, modes, shots, key=key, threads=1, **kw)


M, MODES = 4, [0, 1, 3]
U = qboson.haar_unitary(M, 11)
SHOTS = 20_000

# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("distinguishable", [False, True])
def test_noiseless_model_is_bit_identical_to_sample(distinguishable):
    u = qboson.haar_unitary(7, 3)
    ref = qboson.sample(unitary=u, input_modes=[0, 2, 5], shots=3000, seed=9, distinguishable=distinguishable)
    for model in (
        NoiseModel(),
        NoiseModel(transmission=1.0, indistinguishability=1.0, dark_count_probability=0.0),
        NoiseModel(output_transmission=np.ones(7), detector_efficiency=np.ones(7), input_transmission=np.ones(7)),
    ):
        got = qboson.sample(
            unitary=u, input_modes=[0, 2, 5], shots=3000, seed=9, noise=model, distinguishable=distinguishable
        )
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)
        assert model.last_run.attempts == 3000 and model.last_run.acceptance_rate == 1.0


def test_overlap_one_and_zero_give_ideal_and_distinguishable_distributions():
    big = _direct_sum(U, M)
    ideal, _ = exact_noisy(big, M, MODES, [1, 1, 1], 1.0)
    dist, _ = exact_noisy(big, M, MODES, [1, 1, 1], 0.0)
    # The reference agrees with the core's exact probabilities.
    pats, probs = qboson.probabilities(U, MODES)
    for s, p in zip(pats, probs):
        assert ideal[tuple(int(v) for v in s)] == pytest.approx(p, abs=1e-12)
    pats, probs = qboson.probabilities(U, MODES, distinguishable=True)
    for s, p in zip(pats, probs):
        assert dist[tuple(int(v) for v in s)] == pytest.approx(p, abs=1e-12)
    one = _draw(NoiseModel(indistinguishability=1.0), U, MODES, SHOTS, 1)
    zero = _draw(NoiseModel(indistinguishability=0.0), U, MODES, SHOTS, 2)
    assert chi2_pvalue(one, ideal) > 1e-3
    assert chi2_pvalue(zero, dist) > 1e-3
    # The test can fail: each sample set is far from the other distribution.
    assert chi2_pvalue(one, dist) < 1e-6
    assert chi2_pvalue(zero, ideal) < 1e-6


def _sub_unitary():
    u1, u2 = qboson.haar_unitary(M, 21), qboson.haar_unitary(M, 22)
    t = np.array([0.9, 0.5, 0.75, 0.3])
    big = _direct_sum(u1, M) @ _loss_dilation(t) @ _direct_sum(u2, M)
    return big[:M, :M], big


CASES = {
    "uniform-loss+overlap": dict(
        model=dict(transmission=0.7, indistinguishability=0.6), t_in=[0.7] * 3, t_out=None, x=0.6
    ),
    "visibility+input-loss+dark": dict(
        model=dict(hom_visibility=0.49, input_transmission=[0.9, 0.6, 1.0, 0.8], dark_count_probability=0.05),
        t_in=[0.9, 0.6, 0.8], t_out=None, x=0.7, dark=[0.05] * 4,
    ),
    "output-loss+threshold+dark": dict(
        model=dict(
            output_transmission=[0.9, 0.4, 0.7, 1.0], detection="threshold",
            dark_count_probability=[0.0, 0.1, 0.02, 0.05], indistinguishability=0.8,
        ),
        t_in=[1, 1, 1], t_out=[0.9, 0.4, 0.7, 1.0], x=0.8, dark=[0.0, 0.1, 0.02, 0.05], threshold=True,
    ),
    "detector-efficiency+postselect": dict(
        model=dict(
            transmission=0.9, output_transmission=[0.95, 0.8, 0.9, 0.85], detector_efficiency=[0.9, 1.0, 0.7, 0.8],
            postselect=[2, 3], indistinguishability=0.9,
        ),
        t_in=[0.9] * 3, t_out=np.array([0.95, 0.8, 0.9, 0.85]) * np.array([0.9, 1.0, 0.7, 0.8]), x=0.9,
        postselect={2, 3},
    ),
    "scalar-detector-efficiency+postselect-threshold": dict(
        model=dict(detector_efficiency=0.8, postselect=3, detection="threshold", dark_count_probability=0.03),
        t_in=[0.8] * 3, t_out=None, x=1.0, dark=[0.03] * 4, threshold=True, postselect={3},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_noisy_samples_match_exact_noisy_probabilities(name):
    case = CASES[name]
    big = _direct_sum(U, M) if case["t_out"] is None else _loss_dilation(case["t_out"]) @ _direct_sum(U, M)
    dist, acceptance = exact_noisy(
        big, M, MODES, case["t_in"], case["x"], dark=case.get("dark"), threshold=case.get("threshold", False),
        postselect=case.get("postselect"),
    )
    model = NoiseModel(**case["model"])
    samples = _draw(model, U, MODES, SHOTS, 5)
    assert samples.shape == (SHOTS, M)
    assert chi2_pvalue(samples, dist) > 1e-3
    run = model.last_run
    if "postselect" in case:
        # attempts ~ negative binomial: the rate's standard error is about sqrt(p (1 - p) / attempts).
        se = math.sqrt(acceptance * (1 - acceptance) / run.attempts)
        assert abs(run.acceptance_rate - acceptance) < 5 * se
        assert run.attempts > SHOTS
    else:
        assert run.attempts == SHOTS


def test_sub_unitary_matrix_is_sampled_by_dilation():
    a, big = _sub_unitary()
    dist, acc = exact_noisy(big, M, MODES, [1, 1, 1], 0.75, postselect={1, 2})
    model = NoiseModel(indistinguishability=0.75, postselect=[1, 2])
    samples = qboson.sample(unitary=a, input_modes=MODES, shots=SHOTS, seed=7, noise=model, threads=1)
    assert chi2_pvalue(samples, dist) > 1e-3
    # Without noise a sub-unitary matrix is refused by qboson.sample.
    with pytest.raises(ValueError, match="not unitary"):
        qboson.sample(unitary=a, input_modes=MODES, shots=1, seed=7)


def test_chi_square_detects_a_wrong_noise_level():
    big = _direct_sum(U, M)
    wrong, _ = exact_noisy(big, M, MODES, [0.7] * 3, 0.6)
    samples = _draw(NoiseModel(transmission=0.8, indistinguishability=0.6), U, MODES, SHOTS, 3)
    assert chi2_pvalue(samples, wrong) < 1e-6


def test_shots_are_independent_of_threads_and_splits():
    tbi = time_bin_interferometer(6, (1, 2), seed=4)
    models = [
        NoiseModel(transmission=0.6, postselect=[2], dark_count_probability=0.02, hom_visibility=0.8),
        NoiseModel(output_transmission=np.linspace(0.5, 1, 6), detection="threshold"),
        NoiseModel(angle_noise=0.1, transmission=0.8, postselect=3, output_transmission=np.full(6, 0.9)),
    ]
    modes = [0, 2, 4]
    for model in models:
        _, key = split_seed(17)
        whole = model.sample(tbi, modes, 600, key=key, threads=1)
        assert model.sample(tbi, modes, 600, key=key, threads=2).tobytes() == whole.tobytes()
        parts = [model.sample(tbi, modes, 250, key=key, start=0), model.sample(tbi, modes, 350, key=key, start=250)]
        np.testing.assert_array_equal(np.vstack(parts), whole)
        _, other = split_seed(18)
        assert not np.array_equal(model.sample(tbi, modes, 600, key=other), whole)


def test_angle_noise_single_beam_splitter_matches_closed_form():
    # One balanced-ish splitter, angle theta + eps with eps ~ N(0, sigma^2) redrawn per shot:
    # one photon: P(stay) = E[cos^2] = 1/2 + cos(2 theta) exp(-2 sigma^2) / 2;
    # two photons (HOM): P(1, 1) = E[cos^2(2 (theta + eps))] = 1/2 + cos(4 theta) exp(-8 sigma^2) / 2.
    theta, sigma, shots = 0.1, 0.25, 5000
    c = time_bin_interferometer(2, (1,), angles=[theta])
    model = NoiseModel(angle_noise=sigma)
    _, key = split_seed(2)
    one = model.sample(c, [0], shots, key=key)
    p_stay = 0.5 + 0.5 * np.cos(2 * theta) * np.exp(-2 * sigma**2)
    assert stats.binomtest(int(one[:, 0].sum()), shots, p_stay).pvalue > 1e-3
    two = model.sample(c, [0, 1], shots, key=key)
    p11 = 0.5 + 0.5 * np.cos(4 * theta) * np.exp(-8 * sigma**2)
    assert stats.binomtest(int(np.sum(two[:, 0] == 1)), shots, p11).pvalue > 1e-3
    # Without angle noise the coincidence probability is cos^2(2 theta): clearly different here.
    assert abs(p11 - np.cos(2 * theta) ** 2) > 0.1
    noiseless = NoiseModel().sample(c, [0, 1], shots, key=key)
    assert stats.binomtest(int(np.sum(noiseless[:, 0] == 1)), shots, np.cos(2 * theta) ** 2).pvalue > 1e-3


def test_angle_noise_with_output_loss_matches_closed_form():
    # One photon, one splitter, per-shot angle noise, then output losses t0, t1 (dilation per shot):
    # P(click 0) = t0 E[cos^2], P(click 1) = t1 E[sin^2], P(nothing) = the rest.
    theta, sigma, shots, t0, t1 = 0.5, 0.3, 6000, 0.9, 0.6
    c = time_bin_interferometer(2, (1,), angles=[theta])
    model = NoiseModel(angle_noise=sigma, output_transmission=[t0, t1])
    _, key = split_seed(11)
    got = model.sample(c, [0], shots, key=key)
    cos2 = 0.5 + 0.5 * np.cos(2 * theta) * np.exp(-2 * sigma**2)
    expected = np.array([t0 * cos2, t1 * (1 - cos2), 1 - t0 * cos2 - t1 * (1 - cos2)])
    observed = np.array([np.sum(got[:, 0] == 1), np.sum(got[:, 1] == 1), np.sum(got.sum(axis=1) == 0)])
    assert observed.sum() == shots
    assert stats.chisquare(observed, shots * expected).pvalue > 1e-3


def test_transmission_from_db():
    from qboson.noise import transmission_from_db

    assert transmission_from_db(0) == 1.0
    assert transmission_from_db(10) == pytest.approx(0.1)
    assert transmission_from_db(3) == pytest.approx(0.501187, rel=1e-6)
    with pytest.raises(ValueError):
        transmission_from_db(-1)


def test_angle_noise_through_qboson_sample_needs_the_circuit():
    tbi = time_bin_interferometer(5, (1,), seed=1)
    with pytest.raises(ValueError, match="angle_noise needs the time-bin circuit"):
        qboson.sample(unitary=tbi.unitary(), input_modes=[0, 1], shots=5, seed=1, noise=NoiseModel(angle_noise=0.1))
    model = NoiseModel(angle_noise=0.1, circuit=tbi)
    got = qboson.sample(unitary=tbi.unitary(), input_modes=[0, 1], shots=50, seed=1, noise=model)
    _, key = split_seed(1)
    np.testing.assert_array_equal(got, NoiseModel(angle_noise=0.1).sample(tbi, [0, 1], 50, key=key, threads=4))
    other = time_bin_interferometer(5, (1,), seed=2)
    with pytest.raises(ValueError, match="not the unitary"):
        qboson.sample(unitary=other.unitary(), input_modes=[0, 1], shots=5, seed=1, noise=model)


def test_visibility_and_overlap_units():
    assert NoiseModel(hom_visibility=0.81).overlap == pytest.approx(0.9)
    assert NoiseModel(indistinguishability=0.9).visibility == pytest.approx(0.81)
    assert NoiseModel().overlap == 1.0
    # Same stream: V = x^2 gives bit-identical samples.
    a = _draw(NoiseModel(hom_visibility=0.64), U, MODES, 500, 4)
    b = _draw(NoiseModel(indistinguishability=0.8), U, MODES, 500, 4)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(transmission=1.2), ValueError, "transmission"),
        (dict(transmission="a"), TypeError, "transmission"),
        (dict(indistinguishability=0.5, hom_visibility=0.25), ValueError, "not both"),
        (dict(hom_visibility=-0.1), ValueError, "hom_visibility"),
        (dict(detection="photon"), ValueError, "detection"),
        (dict(postselect=[]), ValueError, "postselect"),
        (dict(postselect=-1), ValueError, "postselect"),
        (dict(postselect=1.5), TypeError, "postselect"),
        (dict(angle_noise=-0.1), ValueError, "angle_noise"),
        (dict(angle_noise=float("nan")), ValueError, "angle_noise"),
        (dict(output_transmission=0.5), ValueError, "per mode"),
        (dict(dark_count_probability=[0.1, 2.0]), ValueError, "dark_count"),
        (dict(circuit=np.eye(3)), TypeError, "TimeBinCircuit"),
        (dict(max_attempts=0), ValueError, "max_attempts"),
    ],
)
def test_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        NoiseModel(**kwargs)


def test_bad_calls():
    with pytest.raises(ValueError, match="entries but the circuit has 4 modes"):
        _draw(NoiseModel(output_transmission=[0.5] * 3), U, MODES, 5, 1)
    with pytest.raises(ValueError, match="can never be met"):
        _draw(NoiseModel(postselect=4), U, MODES, 5, 1)
    with pytest.raises(ValueError, match="can never be met"):
        _draw(NoiseModel(postselect=5, dark_count_probability=0.1, detection="threshold"), U, [0, 1, 2, 3], 5, 1)
    with pytest.raises(RuntimeError, match="post-selection"):
        _draw(NoiseModel(transmission=0.0, postselect=3, max_attempts=50), U, MODES, 5, 1)
    with pytest.raises(ValueError, match="sub-unitary"):
        _draw(NoiseModel(), 1.5 * U, MODES, 5, 1)
    with pytest.raises(ValueError):
        _draw(NoiseModel(), U, [0, 0], 5, 1)
    with pytest.raises(ValueError):
        _draw(NoiseModel(), U, MODES, -1, 1)


def test_run_reports_and_zero_shots():
    model = NoiseModel(transmission=0.5, postselect=3)
    _, key = split_seed(0)
    run = model.run(U, MODES, 0, key=key)
    assert isinstance(run, NoisyRun) and run.samples.shape == (0, M) and math.isnan(run.acceptance_rate)
    assert NoiseModel(transmission=0.5).run(U, MODES, 0, key=key).samples.shape == (0, M)
    run = model.run(U, MODES, 400, key=key)
    assert run.accepted == 400 and run.attempts > 400
    assert np.all(run.samples.sum(axis=1) == 3)
    # Deterministic given the seed: the attempt count too.
    assert model.run(U, MODES, 400, key=key).attempts == run.attempts


# ----------------------------------------------------------------------------------------------
# Perceval's SLOS with its NoiseModel, where the models coincide
# ----------------------------------------------------------------------------------------------


def _perceval_distribution(u, modes, visibility, transmittance, min_detected, threshold=False):
    pcvl = pytest.importorskip("perceval")
    m = u.shape[0]
    proc = pcvl.Processor(
        "SLOS", pcvl.Unitary(pcvl.Matrix(u)),
        noise=pcvl.NoiseModel(indistinguishability=visibility, transmittance=transmittance),
    )
    if threshold:
        for i in range(m):
            proc.add(i, pcvl.Detector.threshold())
    proc.with_input(pcvl.BasicState([1 if i in modes else 0 for i in range(m)]))
    proc.min_detected_photons_filter(min_detected)
    res = proc.probs()
    return {tuple(int(v) for v in s): float(p) for s, p in res["results"].items() if p > 0}, res["global_perf"]


@pytest.mark.parametrize("threshold", [False, True])
def test_against_perceval_slos(threshold):
    visibility, transmittance = 0.64, 0.7
    ref, perf = _perceval_distribution(U, MODES, visibility, transmittance, 2, threshold)
    # Our brute-force reference agrees with Perceval where the models coincide ...
    mine, acc = exact_noisy(_direct_sum(U, M), M, MODES, [transmittance] * 3, math.sqrt(visibility),
                            threshold=threshold, postselect={2, 3})
    assert set(mine) == set(ref)
    for s, p in ref.items():
        assert mine[s] == pytest.approx(p, abs=1e-10)
    if not threshold:
        assert acc == pytest.approx(perf, abs=1e-12)
    # ... and so do our samples.
    model = NoiseModel(hom_visibility=visibility, transmission=transmittance, postselect=[2, 3],
                       detection="threshold" if threshold else "pnr")
    assert chi2_pvalue(_draw(model, U, MODES, SHOTS, 8), ref) > 1e-3


# ----------------------------------------------------------------------------------------------
# Larger instances: exact moments instead of whole distributions
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("x", [1.0, 0.5])
def test_moments_of_a_lossy_partially_distinguishable_tbi(x):
    # 8 photons in a 16-bin "1-1" loop circuit with input and per-mode output losses (dilation).
    # For any linear optics A with single photons in T surviving with t_p, P_jp = |A_jp|^2:
    #   E[s_j] = sum_p t_p P_jp,   E[sum_j s_j (s_j - 1)] = (1 + x^2) sum_j sum_{p != q} t_p t_q P_jp P_jq.
    m, modes = 16, list(range(0, 16, 2))
    tbi = time_bin_interferometer(m, (1, 1), seed=5)
    t_out = np.linspace(0.6, 1.0, m)
    t_in = np.full(len(modes), 0.9)
    a = np.sqrt(t_out)[:, None] * tbi.unitary()[:, modes]
    p = np.abs(a) ** 2
    mean = p @ t_in
    w = p * t_in
    bunch = (1 + x**2) * float(np.sum(w.sum(axis=1) ** 2 - (w**2).sum(axis=1)))
    model = NoiseModel(transmission=0.9, output_transmission=t_out, indistinguishability=x)
    shots = 20_000
    s = backend_sample(model, tbi, modes, shots)
    z_mean = (s.mean(axis=0) - mean) / (s.std(axis=0) / np.sqrt(shots))
    assert np.max(np.abs(z_mean)) < 4.5
    b = (s * (s - 1.0)).sum(axis=1)
    assert abs(b.mean() - bunch) < 5 * b.std() / np.sqrt(shots)
    # The bunching statistic separates x = 1 from x = 0.5 by far more than its error.
    other = (1 + (1.5 - x) ** 2) / (1 + x**2) * bunch
    assert abs(b.mean() - other) > 10 * b.std() / np.sqrt(shots)


def backend_sample(model, circuit, modes, shots, seed=21):
    from qboson import backends

    return backends.get("local", noise=model, threads=2).sample(circuit, modes, shots, seed=seed).astype(float)


@pytest.mark.slow
def test_four_photons_everything_at_once_matches_exact():
    # n = 4 in 5 modes: input and output losses, overlap, dark counts, threshold, post-selection.
    m, modes = 5, [0, 1, 2, 4]
    u = qboson.haar_unitary(m, 31)
    t_out = [0.9, 0.7, 1.0, 0.8, 0.6]
    t_in_mode = [0.95, 0.9, 0.85, 1.0, 0.8]
    dark = [0.02, 0.0, 0.05, 0.01, 0.03]
    big = _loss_dilation(t_out) @ _direct_sum(u, m)
    dist, acc = exact_noisy(
        big, m, modes, [0.9 * t_in_mode[i] for i in modes], 0.7, dark=dark, threshold=True, postselect={3, 4}
    )
    model = NoiseModel(transmission=0.9, input_transmission=t_in_mode, output_transmission=t_out,
                       indistinguishability=0.7, dark_count_probability=dark, detection="threshold",
                       postselect=[3, 4])
    samples = _draw(model, u, modes, 100_000, 13)
    assert chi2_pvalue(samples, dist) > 1e-3
    se = math.sqrt(acc * (1 - acc) / model.last_run.attempts)
    assert abs(model.last_run.acceptance_rate - acc) < 5 * se


@pytest.mark.slow
def test_four_photons_against_perceval_slos():
    m, modes = 6, [0, 2, 3, 5]
    u = qboson.haar_unitary(m, 41)
    ref, _ = _perceval_distribution(u, modes, 0.81, 0.8, 3)
    model = NoiseModel(hom_visibility=0.81, transmission=0.8, postselect=[3, 4])
    assert chi2_pvalue(_draw(model, u, modes, 100_000, 3), ref) > 1e-3
