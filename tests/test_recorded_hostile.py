"""Hostile and unusual recorded files (issue #12), and variable photon numbers (issue #13)."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import numpy as np
import pytest

import qboson
from qboson import backends
from qboson.backends.recorded import RecordedBackend, load_recorded, write_recorded
from qboson.noise import NoiseModel

U = qboson.haar_unitary(4, 11)


def _npy_bytes(header_shape, dtype="<i8", payload=b"") -> bytes:
    """A .npy stream whose header declares ``header_shape`` but carries only ``payload``."""
    from numpy.lib import format as npy_format

    buf = io.BytesIO()
    npy_format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": header_shape})
    return npy_format.magic(1, 0) + buf.getvalue()[len(npy_format.magic(1, 0)):] + payload


def test_decompression_bomb_is_refused_before_loading(tmp_path):
    # Declares 2**40 int64 entries (8 TiB) in a few hundred bytes: the old loader tried to allocate them.
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("samples.npy", _npy_bytes((2**20, 2**20)))
    with pytest.raises(ValueError, match="declares .* bytes"):
        backends.get("recorded", path=path)


def test_decompression_bomb_limit_is_configurable(tmp_path):
    # A real, honest bomb: 40 MB of zeros that compress to ~40 KB.
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, samples=np.zeros((1_250_000, 4), dtype=np.int64))
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="over the limit of 1000000"):
            load_recorded(path, max_bytes=1_000_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # refused from the headers, nothing decompressed
    assert load_recorded(path, max_bytes=50_000_000).shots == 1_250_000
    with pytest.raises(ValueError, match="max_bytes"):
        load_recorded(path, max_bytes=0)


def test_npy_header_declaring_objects_is_refused(tmp_path):
    path = tmp_path / "obj.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("samples.npy", _npy_bytes((2, 2), dtype="|O"))
    with pytest.raises(ValueError, match="objects"):
        RecordedBackend(path)


@pytest.mark.parametrize(
    "rows, what",
    [
        (np.array([[2**32 + 3, 0]], dtype=np.uint64), "2**32"),
        (np.array([[2**32 + 3, 0]], dtype=np.int64), "2**32"),
        (np.array([[5e18, 0.0]]), "2**32"),
        (np.array([[1e300, 0.0]]), "2**32"),
        (np.array([[np.nan, 0.0]]), "nan"),
    ],
)
def test_recorded_counts_do_not_wrap(tmp_path, rows, what):
    path = tmp_path / "big.npy"
    np.save(path, rows)
    with pytest.raises(ValueError, match=what.replace("*", r"\*")):
        RecordedBackend(path)


def test_recorded_nan_unitary_is_refused(tmp_path):
    samples = np.array([[1, 0, 1, 0], [0, 1, 1, 0]])
    path = tmp_path / "nan.npz"
    bad = U.copy()
    bad[0, 0] = np.nan
    np.savez(path, samples=samples, unitary=bad)
    with pytest.raises(ValueError, match="non-finite"):
        RecordedBackend(path)
    # An honest file keeps its interferometer check; a nan circuit passed in does not slip through it.
    write_recorded(tmp_path / "ok.npz", samples, unitary=U)
    backend = RecordedBackend(tmp_path / "ok.npz")
    with pytest.raises(ValueError, match="different interferometer"):
        backend.sample(qboson.haar_unitary(4, 12), [0, 2], 2)


def test_recorded_variable_photon_numbers_and_at_least_k(tmp_path):
    # A lossy run with every input filled, kept when at least 2 photons were detected.
    model = NoiseModel(transmission=0.6, postselect=">=2")
    modes = [0, 1, 2, 3]
    run = qboson.sample(unitary=U, input_modes=modes, shots=300, seed=5, noise=model)
    totals = run.sum(axis=1)
    assert totals.min() >= 2 and len(set(totals.tolist())) > 1
    for suffix in (".npz", ".csv"):
        path = tmp_path / f"run{suffix}"
        write_recorded(path, run, input_modes=modes, min_detected=2)
        backend = backends.get("recorded", path=path, min_detected=2)
        assert backend.data.min_detected == 2
        meta = backend.data.metadata()
        assert meta["postselection"] == "at least 2 detected photons" and meta["min_detected"] == 2
        np.testing.assert_array_equal(backend.sample(U, modes, 300), run)
    with pytest.raises(ValueError, match="at least 3 photons but row"):
        write_recorded(tmp_path / "x.npz", run, input_modes=modes, min_detected=3)
    with pytest.raises(ValueError, match="min_detected"):
        RecordedBackend(tmp_path / "run.npz", min_detected=3)
    # Without a rule: variable photon numbers are accepted and the rule says so.
    np.save(tmp_path / "raw.npy", run)
    assert RecordedBackend(tmp_path / "raw.npy", input_modes=modes).data.postselection == "none"
