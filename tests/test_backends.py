"""Tests of qboson.backends: registry, local, recorded and perceval adapters."""

from __future__ import annotations

import sys
import time
import types
from collections import Counter
from importlib.metadata import EntryPoint

import numpy as np
import pytest
from scipy import stats

import qboson
from qboson import backends
from qboson.backends.local import LocalBackend
from qboson.backends.recorded import RecordedBackend, load_recorded, write_recorded
from qboson.circuits import time_bin_interferometer
from qboson.noise import NoiseModel

U = qboson.haar_unitary(5, 4)
MODES = [0, 1, 3]


def _chi2_pvalue(samples, patterns, probs):
    counts = Counter(map(tuple, np.asarray(samples, dtype=np.int64).tolist()))
    index = {tuple(int(v) for v in p): i for i, p in enumerate(patterns)}
    assert all(s in index and probs[index[s]] > 1e-15 for s in counts), "sample outside the support"
    shots = len(samples)
    obs = np.array([counts.get(tuple(int(v) for v in p), 0) for p in patterns], float)
    exp = shots * np.asarray(probs, float)
    big = exp >= 5
    obs = np.append(obs[big], obs[~big].sum())
    exp = np.append(exp[big], exp[~big].sum())
    keep = exp > 0
    stat = float(np.sum((obs[keep] - exp[keep]) ** 2 / exp[keep]))
    return float(stats.chi2.sf(stat, keep.sum() - 1))


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------


def test_builtin_names_and_unknown_name():
    assert {"local", "perceval", "recorded"} <= set(backends.available())
    assert isinstance(backends.get("local"), LocalBackend)
    assert isinstance(backends.get(), LocalBackend)
    with pytest.raises(ValueError, match="unknown backend 'nope'.*local"):
        backends.get("nope")
    with pytest.raises(TypeError):
        backends.get(3)
    with pytest.raises(TypeError):
        backends.get("local", bogus_option=1)


class _Constant:
    """A toy vendor adapter: every photon stays in its input mode."""

    def __init__(self, scale: int = 1):
        self.scale = scale

    def sample(self, unitary_or_circuit, input_modes, shots, seed=None):
        m = np.asarray(unitary_or_circuit).shape[0]
        row = np.zeros(m, dtype=np.uint8)
        row[list(input_modes)] = self.scale
        return np.tile(row, (shots, 1))


def test_register_and_protocol(monkeypatch):
    monkeypatch.setattr(backends, "_REGISTERED", {})
    backends.register("toy", _Constant)
    assert "toy" in backends.available()
    toy = backends.get("toy", scale=2)
    assert isinstance(toy, backends.Backend)
    np.testing.assert_array_equal(toy.sample(U, MODES, 2), [[2, 2, 0, 2, 0]] * 2)
    with pytest.raises(ValueError, match="already defined"):
        backends.register("toy", _Constant)
    with pytest.raises(ValueError, match="already defined"):
        backends.register("local", _Constant)
    backends.register("toy", lambda: object(), overwrite=True)
    with pytest.raises(TypeError, match="no sample"):
        backends.get("toy")
    with pytest.raises(TypeError):
        backends.register("bad", 42)
    with pytest.raises(ValueError):
        backends.register("", _Constant)


def test_entry_point_group(monkeypatch):
    module = types.ModuleType("qboson_fake_vendor")
    module.Adapter = _Constant
    monkeypatch.setitem(sys.modules, "qboson_fake_vendor", module)
    eps = {
        "vendor": EntryPoint(name="vendor", value="qboson_fake_vendor:Adapter", group=backends.ENTRY_POINT_GROUP),
        "broken": EntryPoint(name="broken", value="qboson_missing_module_xyz:Adapter", group=backends.ENTRY_POINT_GROUP),
    }
    monkeypatch.setattr(backends, "_entry_points", lambda: eps)
    assert {"vendor", "broken"} <= set(backends.available())
    vendor = backends.get("vendor", scale=1)
    np.testing.assert_array_equal(vendor.sample(U, [2], 1), [[0, 0, 1, 0, 0]])
    with pytest.raises(ImportError, match="broken"):
        backends.get("broken")


def test_entry_points_are_read_from_metadata():
    # The real lookup runs without error (no qboson.backends entry points need be installed).
    assert isinstance(backends._entry_points(), dict)


def test_resolve():
    assert isinstance(backends.resolve(None), LocalBackend)
    assert isinstance(backends.resolve("local", threads=1), LocalBackend)
    toy = _Constant()
    assert backends.resolve(toy) is toy
    with pytest.raises(TypeError):
        backends.resolve(object())
    with pytest.raises(ValueError):
        backends.resolve(toy, threads=1)


# ----------------------------------------------------------------------------------------------
# local
# ----------------------------------------------------------------------------------------------


def test_local_equals_qboson_sample():
    local = backends.get("local", threads=2)
    ref = qboson.sample(unitary=U, input_modes=MODES, shots=500, seed=12)
    np.testing.assert_array_equal(local.sample(U, MODES, 500, seed=12), ref)
    np.testing.assert_array_equal(local.sample(U, MODES, 300, seed=12, start=200), ref[200:])
    dist = qboson.sample(unitary=U, input_modes=MODES, shots=100, seed=1, distinguishable=True)
    np.testing.assert_array_equal(local.sample(U, MODES, 100, seed=1, distinguishable=True), dist)
    np.testing.assert_array_equal(
        local.sample(U, MODES, 50, seed=np.random.SeedSequence(5)),
        qboson.sample(unitary=U, input_modes=MODES, shots=50, seed=np.random.SeedSequence(5)),
    )


def test_local_with_circuits_and_noise():
    tbi = time_bin_interferometer(6, (1, 3), seed=3)
    np.testing.assert_array_equal(
        backends.get("local").sample(tbi, [0, 2], 200, seed=4),
        qboson.sample(unitary=tbi.unitary(), input_modes=[0, 2], shots=200, seed=4),
    )
    model = NoiseModel(transmission=0.8, postselect=2, dark_count_probability=0.01)
    noisy = backends.get("local", noise=model)
    got = noisy.sample(tbi, [0, 2], 300, seed=4)
    np.testing.assert_array_equal(
        got, qboson.sample(unitary=tbi.unitary(), input_modes=[0, 2], shots=300, seed=4, noise=model)
    )
    assert np.all(got.sum(axis=1) == 2) and model.last_run.attempts > 300
    # Angle noise reaches the model through the circuit object.
    wobbly = backends.get("local", noise=NoiseModel(angle_noise=0.05))
    a = wobbly.sample(tbi, [0, 2], 100, seed=9)
    np.testing.assert_array_equal(a, wobbly.sample(tbi, [0, 2], 100, seed=9))
    with pytest.raises(ValueError, match="angle_noise"):
        wobbly.sample(tbi.unitary(), [0, 2], 10, seed=9)


def test_local_bad_input():
    with pytest.raises(TypeError):
        backends.get("local", noise="loss")
    with pytest.raises(ValueError):
        backends.get("local", method="fast")
    local = backends.get("local")
    with pytest.raises(ValueError):
        local.sample(0.5 * U, MODES, 3)
    with pytest.raises(ValueError):
        local.sample(U, [0, 9], 3)
    with pytest.raises(ValueError):
        local.sample(U, MODES, -1)
    with pytest.raises(ValueError):
        backends.get("local", noise=NoiseModel()).sample(2 * U, MODES, 3)


# ----------------------------------------------------------------------------------------------
# recorded
# ----------------------------------------------------------------------------------------------


@pytest.fixture()
def hardware_run():
    """Samples as a post-selected hardware run would give them (simulated here)."""
    model = NoiseModel(transmission=0.7, postselect=3, detection="threshold")
    return qboson.sample(unitary=U, input_modes=MODES, shots=400, seed=2, noise=model)


@pytest.mark.parametrize("suffix", [".npz", ".csv", ".npy"])
def test_recorded_round_trip(tmp_path, hardware_run, suffix):
    path = tmp_path / f"run{suffix}"
    if suffix == ".npy":
        np.save(path, hardware_run)
        backend = backends.get("recorded", path=path, input_modes=MODES, postselected=True)
    else:
        write_recorded(path, hardware_run, input_modes=MODES, postselected=True,
                       unitary=U if suffix == ".npz" else None, description="simulated PT run")
        backend = backends.get("recorded", path=path)
        assert backend.data.description == "simulated PT run"
    assert backend.shots_available == 400 and backend.data.n_photons == 3
    np.testing.assert_array_equal(backend.sample(U, MODES, 400), hardware_run)
    np.testing.assert_array_equal(backend.sample(U, MODES, 100, start=250), hardware_run[250:350])
    # A seed gives a fixed permutation of the rows; start indexes into it.
    shuffled = backend.sample(U, MODES, 400, seed=7)
    assert not np.array_equal(shuffled, hardware_run)
    assert sorted(map(tuple, shuffled.tolist())) == sorted(map(tuple, hardware_run.tolist()))
    np.testing.assert_array_equal(backend.sample(U, MODES, 150, seed=7, start=50), shuffled[50:200])
    assert list(tmp_path.iterdir()) == [path]  # no temp files left behind


def test_recorded_checks_metadata(tmp_path, hardware_run):
    path = tmp_path / "run.npz"
    write_recorded(path, hardware_run, input_modes=MODES, postselected=True, unitary=U)
    backend = RecordedBackend(path)
    with pytest.raises(ValueError, match="modes"):
        backend.sample(qboson.haar_unitary(4, 1), [0, 1, 3], 5)
    with pytest.raises(ValueError, match="different interferometer"):
        backend.sample(qboson.haar_unitary(5, 1), MODES, 5)
    with pytest.raises(ValueError, match="input modes"):
        backend.sample(U, [0, 1, 2], 5)
    with pytest.raises(ValueError, match="holds 400 samples"):
        backend.sample(U, MODES, 300, start=200)
    wrapped = RecordedBackend(path, cycle=True).sample(U, MODES, 500)
    np.testing.assert_array_equal(wrapped[400:], hardware_run[:100])
    with pytest.raises(ValueError, match="m=5, expected 6"):
        RecordedBackend(path, m=6)
    with pytest.raises(ValueError, match="input_modes"):
        RecordedBackend(path, input_modes=[0, 1, 2])
    # Rows that contradict the photon number the file declares.
    bad = hardware_run.copy()
    bad[7, :] = 0
    with pytest.raises(ValueError, match="row 7"):
        write_recorded(tmp_path / "bad.npz", bad, input_modes=MODES, postselected=True)
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match="row 7"):
        RecordedBackend(tmp_path / "bad.npy", n_photons=3, postselected=True)
    # n_photons without input modes still checks the photon number asked for.
    np.save(tmp_path / "n.npy", hardware_run)
    with pytest.raises(ValueError, match="3 photons"):
        RecordedBackend(tmp_path / "n.npy", n_photons=3).sample(U, [0, 1], 5)


def test_recorded_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        RecordedBackend(tmp_path / "missing.npz")
    (tmp_path / "x.txt").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"\.npz, \.npy or \.csv"):
        RecordedBackend(tmp_path / "x.txt")
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="cannot read"):
        RecordedBackend(tmp_path / "corrupt.npz")
    np.savez(tmp_path / "nosamples.npz", counts=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="no 'samples'"):
        RecordedBackend(tmp_path / "nosamples.npz")
    (tmp_path / "ragged.csv").write_text("# m=3\n1,0,0\n1,0\n")
    with pytest.raises(ValueError, match="different numbers of columns"):
        RecordedBackend(tmp_path / "ragged.csv")
    (tmp_path / "text.csv").write_text("a,b\n1,0\n0,x\n")
    with pytest.raises(ValueError, match="line 3"):
        RecordedBackend(tmp_path / "text.csv")
    (tmp_path / "neg.csv").write_text("1,-1\n")
    with pytest.raises(ValueError, match="non-negative"):
        RecordedBackend(tmp_path / "neg.csv")
    (tmp_path / "empty.csv").write_text("# m=2\n")
    with pytest.raises(ValueError, match="non-empty"):
        RecordedBackend(tmp_path / "empty.csv")
    np.save(tmp_path / "frac.npy", np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="integers"):
        RecordedBackend(tmp_path / "frac.npy")
    (tmp_path / "meta.csv").write_text("# m=2\n# postselected=maybe\n1,0\n")
    with pytest.raises(ValueError, match="postselected"):
        RecordedBackend(tmp_path / "meta.csv")
    with pytest.raises(ValueError, match=".npz or .csv"):
        write_recorded(tmp_path / "out.npy", np.ones((2, 2), dtype=int))


def test_recorded_csv_format(tmp_path):
    path = tmp_path / "lab.csv"
    path.write_text("# exported by a lab script\n# m=3\n# n_photons=2\n# input_modes=0;2\nb0,b1,b2\n1,1,0\n0,0,2\n")
    rec = load_recorded(path)
    assert rec.m == 3 and rec.n_photons == 2 and rec.input_modes.tolist() == [0, 2] and not rec.postselected
    np.testing.assert_array_equal(rec.samples, [[1, 1, 0], [0, 0, 2]])
    assert rec.samples.dtype == np.uint8


# ----------------------------------------------------------------------------------------------
# perceval
# ----------------------------------------------------------------------------------------------


def test_without_perceval(monkeypatch):
    monkeypatch.setitem(sys.modules, "perceval", None)
    with pytest.raises(ImportError, match=r"qboson\[hardware\]"):
        backends.get("perceval")


def test_perceval_local_simulators_match_exact_probabilities():
    pytest.importorskip("perceval")
    patterns, probs = qboson.probabilities(U, MODES)
    for simulator in ("SLOS", "CliffordClifford2017"):
        backend = backends.get("perceval", simulator=simulator)
        samples = backend.sample(U, MODES, 3000, seed=3)
        assert samples.shape == (3000, 5)
        assert _chi2_pvalue(samples, patterns, probs) > 1e-3
    # A circuit object works too.
    tbi = time_bin_interferometer(5, (1,), seed=0)
    assert backends.get("perceval").sample(tbi, [0, 1], 10, seed=1).shape == (10, 5)


def test_perceval_noise_translation():
    pytest.importorskip("perceval")
    model = NoiseModel(transmission=0.7, hom_visibility=0.64, postselect=[2, 3], detection="threshold")
    samples = backends.get("perceval", noise=model).sample(U, MODES, 500, seed=1)
    assert samples.max() <= 1 and samples.sum(axis=1).min() >= 2
    for bad in (
        NoiseModel(dark_count_probability=0.1),
        NoiseModel(output_transmission=np.ones(5)),
        NoiseModel(angle_noise=0.1),
        NoiseModel(postselect=[1, 3]),
    ):
        with pytest.raises(ValueError):
            backends.get("perceval", noise=bad)
    with pytest.raises(TypeError):
        backends.get("perceval", noise="lossy")


def _tvd(samples_or_dist, ref: dict, shots=None) -> float:
    if isinstance(samples_or_dist, dict):
        emp = samples_or_dist
    else:
        counts = Counter(map(tuple, np.asarray(samples_or_dist, dtype=np.int64).tolist()))
        emp = {k: v / len(samples_or_dist) for k, v in counts.items()}
    keys = set(emp) | set(ref)
    return 0.5 * sum(abs(emp.get(k, 0.0) - ref.get(k, 0.0)) for k in keys)


def test_perceval_noise_translation_matches_the_exact_noisy_distribution():
    pytest.importorskip("perceval")
    from test_noise import _direct_sum, exact_noisy

    def exact(t, x):
        dist, _ = exact_noisy(_direct_sum(U, 5), 5, MODES, [t] * 3, x, threshold=True, postselect={2, 3})
        return dist

    shots = 20_000
    ref = exact(0.7, 0.8)  # transmission 0.7, overlap x = 0.8 (HOM visibility 0.64)
    model = NoiseModel(transmission=0.7, hom_visibility=0.64, postselect=">=2", detection="threshold")
    samples = backends.get("perceval", noise=model).sample(U, MODES, shots, seed=1)
    # Null law of the TVD at this many shots, by drawing from the exact distribution itself.
    rng = np.random.default_rng(0)
    keys = list(ref)
    probs = np.array([ref[k] for k in keys])

    def draw_tvd(dist_keys, dist_probs):
        counts = rng.multinomial(shots, dist_probs)
        return _tvd({k: c / shots for k, c in zip(dist_keys, counts)}, ref)

    null = np.array([draw_tvd(keys, probs) for _ in range(300)])
    limit = float(np.quantile(null, 0.999)) * 1.2
    assert _tvd(samples, ref) < limit
    # Power: samples of a wrongly mapped model (x passed as V, visibility ignored, loss squared) fail.
    for t, x in ((0.7, 0.64), (0.7, 1.0), (0.49, 0.8)):
        wrong = exact(t, x)
        wk = list(wrong)
        assert min(draw_tvd(wk, np.array([wrong[k] for k in wk])) for _ in range(20)) > limit, (t, x)


def test_perceval_refuses_postselection_it_cannot_express():
    pytest.importorskip("perceval")
    backend = backends.get("perceval", noise=NoiseModel(transmission=0.8, postselect=2))
    with pytest.raises(ValueError, match="at least 2"):
        backend.sample(U, MODES, 10, seed=0)  # 3 photons: '== 2' is not '>= 2'


def test_perceval_remote_validates_offline_and_fails_clearly(monkeypatch):
    pytest.importorskip("perceval")
    from qboson.backends.perceval import TOKEN_ENV

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ValueError, match="token"):
        backends.get("perceval", platform="sim:altair")
    with pytest.raises(ValueError, match="platform"):
        backends.get("perceval", platform="bad name!", token="t")
    with pytest.raises(ValueError, match="timeout"):
        backends.get("perceval", platform="sim:altair", token="t", timeout=0)
    with pytest.raises(ValueError, match="url"):
        backends.get("perceval", platform="sim:altair", token="t", url="ftp://x")
    with pytest.raises(ValueError, match="simulator"):
        backends.get("perceval", simulator="Quantum")
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    remote = backends.get("perceval", platform="sim:altair", url="https://qboson-test.invalid", timeout=2)
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match="sim:altair"):
        remote.sample(U, MODES, 10, seed=0)
    assert time.monotonic() - t0 < 30


# ----------------------------------------------------------------------------------------------
# Backends plug into the latent distributions and the Torch dataset
# ----------------------------------------------------------------------------------------------


def test_latent_and_dataset_accept_backends(tmp_path, hardware_run):
    from qboson.latent import make

    model = NoiseModel(transmission=0.7, postselect=3, detection="threshold")
    # Simulated device through the local backend: the same rows as qboson.sample with the model.
    live = make("quantum", unitary=U, input_modes=MODES, seed=2, backend=backends.get("local", noise=model))
    raw = live.raw_at(0, 300)
    assert raw.shape == (300, 5) and np.all(raw.sum(axis=1) == 3) and raw.max() <= 1
    np.testing.assert_array_equal(live.raw_at(100, 300), raw[100:])
    # A recorded hardware run replays through the same latent interface.
    path = write_recorded(tmp_path / "run.npz", hardware_run, input_modes=MODES, postselected=True, unitary=U)
    replay = make("quantum", unitary=U, input_modes=MODES, seed=2, backend=backends.get("recorded", path=path))
    rows = replay.raw_at(0, 400)
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, hardware_run.tolist()))
    np.testing.assert_array_equal(replay.raw_at(150, 250), rows[150:250])
    torch = pytest.importorskip("torch")
    from qboson.torch import LatentDataset

    batches = list(LatentDataset(replay, batch_size=100, length=400))
    assert len(batches) == 4 and all(isinstance(b, torch.Tensor) and b.shape == (100, 5) for b in batches)
