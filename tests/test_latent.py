"""The latent zoo: factory, protocol, seeding, normalisation, matched controls, backends."""

import subprocess
import sys

import numpy as np
import pytest

import qboson
from qboson import latent
from qboson.latent import make, moments

ALL = list(latent.KINDS)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        make("quantun", dim=8)
    for name in ALL:
        assert name in str(info.value)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dim", [0, -3])
def test_bad_dims_raise(name, dim):
    with pytest.raises(ValueError, match="dim"):
        make(name, dim=dim, seed=0)


@pytest.mark.parametrize("name", ALL)
def test_float_dim_raises_type_error(name):
    with pytest.raises(TypeError, match="dim"):
        make(name, dim=8.0, seed=0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="more photons than modes"):
        make("quantum", dim=4, n_photons=5)
    with pytest.raises(ValueError, match="no circuit"):
        make("gaussian", dim=4, n_photons=2)
    with pytest.raises(TypeError, match="does not take"):
        make("gaussian", dim=4, p=0.3)
    with pytest.raises(ValueError, match="probability"):
        make("bernoulli", dim=4, p=1.5)
    with pytest.raises(ValueError, match="unitary"):
        make("quantum", unitary=np.ones((4, 4)))
    with pytest.raises(ValueError, match="dim=5 does not match"):
        make("quantum", dim=5, unitary=np.eye(4))
    with pytest.raises(ValueError, match="seed"):
        make("gaussian", dim=4, seed=-1)
    for kind in ("quantum", "photonic", "pt_series"):  # at construction, not at the first sample
        with pytest.raises(ValueError, match="unknown method 'zz'"):
            make(kind, dim=8, seed=0, method="zz")
    with pytest.raises(ValueError, match="k must be"):
        make("gaussian", dim=4).sample(-1)


@pytest.mark.parametrize("name", ALL)
def test_protocol(name):
    z = make(name, dim=8, seed=3)
    assert z.name == name and z.dim == 8 and z.seed == 3
    x = z.sample(50)
    assert x.shape == (50, 8) and x.dtype == np.float32
    assert z.raw(4).shape == (4, 8)
    assert z.mean.shape == (8,) and z.std.shape == (8,)
    assert isinstance(z.describe(), str) and name in z.describe()
    assert latent.from_spec(z.spec()).spec() == z.spec()


@pytest.mark.parametrize("name", ALL)
def test_rows_depend_only_on_seed_and_index(name):
    z = make(name, dim=6, seed=5)
    full = z.raw_at(0, 2500)
    parts = np.concatenate([z.raw_at(0, 7), z.raw_at(7, 1100), z.raw_at(1100, 2500)])
    np.testing.assert_array_equal(full, parts)
    # successive raw() calls walk along the default stream
    fresh = make(name, dim=6, seed=5)
    np.testing.assert_array_equal(np.concatenate([fresh.raw(10), fresh.raw(20)]), full[:30])
    # explicit seeds select other streams, reproducibly
    a, b = z.raw(40, seed=1), z.raw(40, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, z.raw(40, seed=2))


def test_quantum_latent_is_qboson_sample_with_the_same_seed():
    z = make("quantum", dim=10, seed=4)
    assert z.n_photons == 5 and z.input_modes.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(z.raw(300), qboson.sample(5, 10, 300, seed=4))
    p = make("photonic", dim=10, seed=4)
    np.testing.assert_array_equal(p.unitary, z.unitary)
    np.testing.assert_array_equal(p.raw(300), qboson.sample(5, 10, 300, seed=4, distinguishable=True))
    assert p.raw_dtype == np.uint8


def test_given_unitary_and_input_modes():
    from qboson.circuits import time_bin_interferometer

    circuit = time_bin_interferometer(12, (1, 3), seed=2)
    z = make("quantum", unitary=circuit, input_modes=[0, 2, 4, 6], seed=1)  # dim follows the circuit
    assert z.dim == 12 and z.n_photons == 4
    np.testing.assert_allclose(z.unitary, circuit.unitary())
    np.testing.assert_allclose(z.mean, moments.mean_counts(circuit.unitary(), [0, 2, 4, 6]))
    x = z.raw(200)
    assert np.all(x.sum(axis=1) == 4)


@pytest.mark.parametrize("name", ALL)
def test_centring_gives_mean_zero_within_sampling_error(name):
    z = make(name, dim=8, seed=2)
    x = z.sample(40_000).astype(np.float64)
    se = x.std(axis=0) / np.sqrt(x.shape[0])
    assert np.max(np.abs(x.mean(axis=0)) / se) < 5


@pytest.mark.parametrize("name", ALL)
def test_scaling_gives_unit_variance(name):
    z = make(name, dim=8, seed=2, scale=True)
    x = z.sample(40_000).astype(np.float64)
    assert np.max(np.abs(x.var(axis=0) - 1)) < 0.06
    raw = make(name, dim=8, seed=2, centre=False).sample(5)
    np.testing.assert_allclose(raw, z.raw_at(0, 5).astype(np.float32))


def test_photon_latent_exact_moments_are_the_module_formulas():
    z = make("quantum", dim=8, seed=9)
    np.testing.assert_allclose(z.covariance, moments.covariance(z.unitary, z.input_modes))
    p = make("photonic", dim=8, seed=9)
    np.testing.assert_allclose(p.covariance, moments.covariance(p.unitary, p.input_modes, distinguishable=True))
    np.testing.assert_allclose(z.mean, p.mean)
    assert z.fano_factor > 1 > p.fano_factor


def test_gaussian_matched_has_the_quantum_covariance():
    z = make("quantum", dim=8, seed=6)
    g = make("gaussian_matched", dim=8, seed=6)
    np.testing.assert_allclose(g.covariance, z.covariance)
    x = g.raw(60_000).astype(np.float64)
    assert np.max(np.abs(x.mean(axis=0) - z.mean)) < 0.02
    assert np.max(np.abs(np.cov(x, rowvar=False) - z.covariance)) < 0.03
    gp = make("gaussian_matched", dim=8, seed=6, match="photonic")
    np.testing.assert_allclose(gp.covariance, make("photonic", dim=8, seed=6).covariance)


def test_counts_matched_matches_mean_and_fano_factor():
    z = make("quantum", dim=8, seed=6)
    c = make("counts_matched", dim=8, seed=6)
    np.testing.assert_allclose(c.mean, z.mean)
    assert abs(np.sum(c.std**2) / 4 - z.fano_factor) < 1e-12  # exact formula
    x = c.raw(60_000).astype(np.float64)
    assert np.all(x.sum(axis=1) == 4)
    fano = x.var(axis=0, ddof=1).sum() / x.mean(axis=0).sum()
    assert abs(fano - z.fano_factor) < 0.02
    assert np.max(np.abs(x.mean(axis=0) - z.mean)) < 0.02
    assert c.family == "dirichlet-multinomial"


@pytest.mark.parametrize("match", ["photonic", "quantum"])
def test_counts_matched_under_dispersed_targets(match):
    # photonic latents, and quantum latents of some loop circuits, are less dispersed than a multinomial
    from qboson.circuits import time_bin_interferometer

    u = time_bin_interferometer(16, (1, 3, 9), seed=12).unitary()
    ref = make(match, unitary=u, seed=0)
    c = make("counts_matched", unitary=u, seed=0, match=match)
    assert c.family == "multinomial/systematic mixture" and 0 <= c.multinomial_weight <= 1
    np.testing.assert_allclose(c.mean, ref.mean)
    assert abs(np.trace(c.covariance) / 8 - ref.fano_factor) < 1e-12
    x = c.raw(80_000).astype(np.float64)
    assert np.all(x.sum(axis=1) == 8)
    assert abs(x.var(axis=0, ddof=1).sum() / 8 - ref.fano_factor) < 0.02
    assert np.max(np.abs(x.mean(axis=0) - ref.mean)) < 0.02
    assert np.max(np.abs(np.cov(x, rowvar=False) - c.covariance)) < 0.02  # the exact covariance is right


def test_systematic_allocation_moments():
    from qboson.latent.classical import systematic_counts, systematic_moments

    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(7))
    mean, cov = systematic_moments(p, 5)
    np.testing.assert_allclose(mean, 5 * p, atol=1e-12)
    x = systematic_counts(p, 5, rng.random(200_000)).astype(np.float64)
    assert np.all(np.abs(x - 5 * p) < 1)  # floor or ceil of n p_j
    assert np.max(np.abs(np.cov(x, rowvar=False) - cov)) < 0.01


class RecordingBackend:
    """The qboson.backends protocol: sample(unitary, input_modes, shots, seed=None)."""

    def __init__(self):
        self.calls = []

    def sample(self, unitary, input_modes, shots, seed=None):
        self.calls.append((shots, seed))
        return qboson.sample(unitary=unitary, input_modes=input_modes, shots=shots, seed=seed)


def test_backend_protocol():
    be = RecordingBackend()
    z = make("quantum", dim=6, seed=1, backend=be)
    assert not z.index_deterministic
    x = z.raw(7)
    assert x.shape == (7, 6) and np.all(x.sum(axis=1) == 3)
    assert be.calls and be.calls[0][0] == 7
    # reproducible: the same (stream, rows) give the same call seed
    np.testing.assert_array_equal(make("quantum", dim=6, seed=1, backend=RecordingBackend()).raw(7), x)
    with pytest.raises(ValueError, match="distinguishable"):
        make("photonic", dim=6, seed=1, backend=be)
    with pytest.raises(TypeError, match="sample"):
        make("quantum", dim=6, backend=object())
    with pytest.raises(ValueError, match="classical"):
        make("gaussian", dim=6, backend=be)


def test_backend_with_start_is_index_deterministic():
    class StartBackend:
        def sample(self, unitary, input_modes, shots, seed=None, start=0):
            return qboson.sample(unitary=unitary, input_modes=input_modes, shots=shots, seed=seed, start=start)

    z = make("quantum", dim=6, seed=1, backend=StartBackend())
    assert z.index_deterministic
    np.testing.assert_array_equal(z.raw_at(0, 50), make("quantum", dim=6, seed=1).raw_at(0, 50))


def test_seed_none_draws_fresh_recorded_entropy():
    a, b = make("gaussian", dim=4), make("gaussian", dim=4)
    assert a.seed != b.seed
    np.testing.assert_array_equal(make("gaussian", dim=4, seed=a.seed).raw(5), a.raw(5))


def test_import_latent_does_not_import_torch():
    code = "import sys, qboson.latent; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_local_backend_object_gives_the_default_stream():
    backends = pytest.importorskip("qboson.backends.local")
    for name in ("quantum", "photonic"):
        z = make(name, dim=6, seed=3, backend=backends.LocalBackend(threads=1))
        assert z.index_deterministic
        np.testing.assert_array_equal(z.raw_at(5, 40), make(name, dim=6, seed=3).raw_at(5, 40))


@pytest.mark.parametrize("name", ["gaussian", "bernoulli"])
def test_more_rows_than_memory_holds_are_refused_at_once(name):
    # regression: raw_at(0, 10**12) drew block after block until memory ran out
    lat = make(name, dim=4, seed=0)
    with pytest.raises(ValueError, match="1,000,000,000,000 latent rows of dim 4 would need"):
        lat.sample(10**12)
    # and the refused request did not move the latent's stream
    np.testing.assert_array_equal(lat.sample(3), make(name, dim=4, seed=0).sample(3))
