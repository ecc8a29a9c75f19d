"""Sample banks: round trip, chunk-size independence, resume after a crash, growth, corrupt files."""

import json
import pickle

import numpy as np
import pytest

import qboson
from qboson.latent import Bank, BankError, generate_bank, make
from qboson.latent.photonic import QuantumLatent


def test_round_trip_and_metadata(tmp_path):
    z = make("quantum", dim=8, seed=3)
    bank = generate_bank(z, 1000, tmp_path / "b", chunk_size=300)
    assert bank.generation["chunks_computed"] == 4
    again = Bank(tmp_path / "b")  # verifies the sha256
    assert len(again) == 1000 and again.dim == 8 and again.name == "quantum"
    assert isinstance(again.raw, np.memmap)
    np.testing.assert_array_equal(again.raw, qboson.sample(4, 8, 1000, seed=3))
    meta = again.metadata
    for key in ("kind", "n_photons", "input_modes", "unitary_sha256", "seed", "shots", "qboson_version", "sha256", "normalisation"):
        assert key in meta, key
    assert meta["n_photons"] == 4 and meta["seed"] == 3 and meta["normalisation"]["centre"] is True
    np.testing.assert_allclose(again.rows(0, 10), z.normalise(again.raw[:10]))
    np.testing.assert_allclose(again.take([5, 2, 999]), z.normalise(again.raw[[5, 2, 999]]))
    rebuilt = again.latent()
    np.testing.assert_array_equal(rebuilt.unitary, z.unitary)
    np.testing.assert_array_equal(rebuilt.raw_at(990, 1000), again.raw[990:])
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["bank.json", "samples.npy"]


@pytest.mark.parametrize("name", ["gaussian", "bernoulli", "counts_matched", "photonic"])
def test_bank_content_does_not_depend_on_chunk_size(tmp_path, name):
    z = make(name, dim=6, seed=1)
    a = generate_bank(z, 2100, tmp_path / "a", chunk_size=70 if name == "photonic" else 130)
    b = generate_bank(z, 2100, tmp_path / "b", chunk_size=5000)
    assert a.sha256 == b.sha256
    assert a.raw.dtype == z.raw_dtype
    np.testing.assert_array_equal(a.raw, z.raw_at(0, 2100))


class CrashingLatent(QuantumLatent):
    """Raises KeyboardInterrupt (a simulated Ctrl-C) when asked for rows at or past ``crash_at``."""

    crash_at = None

    def _draw(self, start, stop, seed, threads):
        if self.crash_at is not None and start >= self.crash_at:
            raise KeyboardInterrupt
        return super()._draw(start, stop, seed, threads)


def test_resume_after_crash_is_byte_identical(tmp_path):
    reference = generate_bank(make("quantum", dim=8, seed=2), 1000, tmp_path / "ref", chunk_size=150)
    crashing = CrashingLatent(8, seed=2)
    crashing.crash_at = 450
    with pytest.raises(KeyboardInterrupt):
        generate_bank(crashing, 1000, tmp_path / "b", chunk_size=150)
    with pytest.raises(BankError, match="unfinished"):
        Bank(tmp_path / "b")
    assert len(list((tmp_path / "b" / "chunks").glob("*.npy"))) == 3
    crashing.crash_at = None
    bank = generate_bank(crashing, 1000, tmp_path / "b")  # chunk size taken from the metadata
    assert bank.generation["chunks_reused"] == 3 and bank.generation["chunks_computed"] == 4
    assert bank.sha256 == reference.sha256
    assert (tmp_path / "b" / "samples.npy").read_bytes() == (tmp_path / "ref" / "samples.npy").read_bytes()
    assert not (tmp_path / "b" / "chunks").exists()


def test_resume_recomputes_a_corrupt_chunk(tmp_path):
    crashing = CrashingLatent(8, seed=2)
    crashing.crash_at = 300
    with pytest.raises(KeyboardInterrupt):
        generate_bank(crashing, 600, tmp_path / "b", chunk_size=100)
    chunk = sorted((tmp_path / "b" / "chunks").glob("*.npy"))[1]
    chunk.write_bytes(chunk.read_bytes()[:-5])  # e.g. a bad copy
    crashing.crash_at = None
    bank = generate_bank(crashing, 600, tmp_path / "b")
    assert bank.generation["chunks_reused"] == 2 and bank.generation["chunks_computed"] == 4
    np.testing.assert_array_equal(bank.raw, qboson.sample(4, 8, 600, seed=2))


def test_growing_a_bank_appends_the_same_stream(tmp_path):
    z = make("photonic", dim=8, seed=4)
    generate_bank(z, 250, tmp_path / "b", chunk_size=100)
    grown = generate_bank(z, 730, tmp_path / "b")
    assert grown.generation["existing_shots"] == 250 and grown.generation["chunks_computed"] == 6  # 250-300, 300-400, ..., 700-730
    direct = generate_bank(z, 730, tmp_path / "c", chunk_size=64)
    assert grown.sha256 == direct.sha256
    files = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert files == ["bank.json", "samples-730.npy"]  # the old data file is gone
    same = generate_bank(z, 500, tmp_path / "b")  # asking for fewer keeps the bank
    assert len(same) == 730


def test_other_latent_in_the_same_directory_is_refused(tmp_path):
    generate_bank(make("quantum", dim=8, seed=1), 100, tmp_path / "b")
    with pytest.raises(BankError, match="different latent"):
        generate_bank(make("quantum", dim=8, seed=2), 100, tmp_path / "b")
    with pytest.raises(BankError, match="different latent"):
        generate_bank(make("photonic", dim=8, seed=1), 100, tmp_path / "b")
    # normalisation is recorded but does not change the raw rows: same bank, the recorded one kept
    with pytest.warns(UserWarning, match="keeping the recorded one"):
        generate_bank(make("quantum", dim=8, seed=1, scale=True), 100, tmp_path / "b")


def _bank(tmp_path):
    generate_bank(make("quantum", dim=8, seed=1), 500, tmp_path / "b")
    return tmp_path / "b"


def test_truncated_data_file(tmp_path):
    root = _bank(tmp_path)
    data = root / "samples.npy"
    data.write_bytes(data.read_bytes()[:-17])
    with pytest.raises(BankError, match="truncated"):
        Bank(root, verify=False)


def test_tampered_data_file(tmp_path):
    root = _bank(tmp_path)
    data = root / "samples.npy"
    raw = bytearray(data.read_bytes())
    raw[-3] ^= 1
    data.write_bytes(bytes(raw))
    with pytest.raises(BankError, match="modified"):
        Bank(root)
    Bank(root, verify=False)  # opening without the checksum is the caller's choice


def test_corrupt_or_edited_metadata(tmp_path):
    root = _bank(tmp_path)
    meta_path = root / "bank.json"
    good = meta_path.read_text()
    meta_path.write_text(good[: len(good) // 2])
    with pytest.raises(BankError, match="invalid JSON"):
        Bank(root)
    meta = json.loads(good)
    meta["spec"]["seed"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BankError, match="fingerprint"):
        Bank(root)
    meta = json.loads(good)
    meta["shots"] = 400
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BankError, match="metadata says"):
        Bank(root)
    meta_path.write_text(good)
    (root / "samples.npy").unlink()
    with pytest.raises(BankError, match="missing"):
        Bank(root)


def test_not_a_bank(tmp_path):
    with pytest.raises(BankError, match="not a sample bank"):
        Bank(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BankError, match="not a directory"):
        generate_bank(make("gaussian", dim=2, seed=0), 10, tmp_path / "file")


def test_bad_generation_arguments(tmp_path):
    z = make("gaussian", dim=2, seed=0)
    with pytest.raises(ValueError, match="shots"):
        generate_bank(z, 0, tmp_path / "b")
    with pytest.raises(ValueError, match="chunk_size"):
        generate_bank(z, 10, tmp_path / "b", chunk_size=0)
    with pytest.raises(TypeError, match="Latent"):
        generate_bank("gaussian", 10, tmp_path / "b")


def test_bank_pickles_by_path(tmp_path):
    bank = Bank(_bank(tmp_path))
    _ = bank.raw[0]
    blob = pickle.dumps(bank)
    assert len(blob) < 20_000  # metadata only (the unitary is in it), not the rows
    np.testing.assert_array_equal(pickle.loads(blob).raw, bank.raw)


def test_bank_sample_draws_distinct_rows(tmp_path):
    bank = Bank(_bank(tmp_path))
    x = bank.sample(500, seed=0)
    assert x.shape == (500, 8) and x.dtype == np.float32
    np.testing.assert_allclose(np.sort(x.sum(axis=1)), np.sort(bank.rows(0, 500).sum(axis=1)), atol=1e-4)
    with pytest.raises(ValueError, match="distinct"):
        bank.sample(501)


def test_crash_during_merge_leaves_a_valid_bank_and_resumes(tmp_path, monkeypatch):
    import qboson.latent.bank as bank_module

    z = make("quantum", dim=8, seed=1)
    generate_bank(z, 200, tmp_path / "b", chunk_size=100)

    def killed_before_metadata(root, meta):  # the new data file is in place, the metadata is not
        raise KeyboardInterrupt

    plan = bank_module.plan_generation(z, 450, tmp_path / "b")
    for a, b in plan.missing:
        bank_module.compute_chunk(z, a, b, plan.root)
    monkeypatch.setattr(bank_module, "_write_meta", killed_before_metadata)
    with pytest.raises(KeyboardInterrupt):
        bank_module.finalize(plan)
    assert (tmp_path / "b" / "samples-450.npy").exists()
    monkeypatch.undo()
    assert len(Bank(tmp_path / "b")) == 200  # the old bank is still valid
    grown = generate_bank(z, 450, tmp_path / "b")
    assert grown.generation["chunks_reused"] == 3 and grown.generation["chunks_computed"] == 0
    np.testing.assert_array_equal(grown.raw, qboson.sample(4, 8, 450, seed=1))
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["bank.json", "samples-450.npy"]


def test_second_writer_is_refused_while_a_bank_is_being_generated(tmp_path):
    import subprocess
    import sys
    import textwrap

    from qboson.latent.bank import BankError, writer_lock

    out = tmp_path / "bank"
    holder = textwrap.dedent(f"""
        import sys, time
        from qboson.latent.bank import writer_lock
        with writer_lock({str(out)!r}):
            print("locked", flush=True)
            time.sleep(30)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(BankError, match="another process"):
            generate_bank(make("gaussian", dim=4, seed=0), 10, out)
    finally:
        proc.kill()
        proc.wait()
    # once the other process is gone (even killed), the lock is free again
    with writer_lock(out):
        pass
    assert len(generate_bank(make("gaussian", dim=4, seed=0), 10, out)) == 10


# ---------------------------------------------------------------------------------------------
# issue #12: hostile metadata, full disks, growing under readers, lock and cleanup durability


def _edit_meta(root, **changes):
    meta = json.loads((root / "bank.json").read_text())
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(meta.get(k), dict):
            meta[k].update(v)
        else:
            meta[k] = v
    (root / "bank.json").write_text(json.dumps(meta))
    return meta


def test_bank_metadata_with_a_wrong_dim_is_refused(tmp_path):
    root = _bank(tmp_path)
    data = np.load(root / "samples.npy")
    np.save(root / "samples.npy", np.ascontiguousarray(data[:, :4]))  # data file and metadata agree on dim 4 ...
    meta = _edit_meta(root, dim=4)
    meta["normalisation"]["mean"] = meta["normalisation"]["mean"][:4]
    (root / "bank.json").write_text(json.dumps(meta))
    with pytest.raises(BankError, match="'dim'"):  # ... but the latent it names has dim 8
        Bank(root, verify=False)


def test_bank_metadata_with_a_short_mean_is_refused(tmp_path):
    root = _bank(tmp_path)
    _edit_meta(root, normalisation={"mean": [0.5]})
    with pytest.raises(BankError, match="'mean' must be 8 finite numbers"):
        Bank(root)


def test_bank_data_file_outside_the_bank_is_refused(tmp_path):
    root = _bank(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (root / "samples.npy").rename(tmp_path / "elsewhere" / "samples.npy")
    for name in ("../elsewhere/samples.npy", str(tmp_path / "elsewhere" / "samples.npy"), "bank.json", 7):
        _edit_meta(root, data_file=name)
        with pytest.raises(BankError, match="data_file"):
            Bank(root)


def test_npy_header_whose_size_overflows_int64_is_refused(tmp_path):
    from qboson.latent.bank import npy_header

    path = tmp_path / "huge.npy"
    with open(path, "wb") as f:  # a header only: shape (2**32, 2**32) of float64 is 2**67 bytes
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (2**32, 2**32)})
    with pytest.raises(BankError, match="more than any file"):
        npy_header(path)
    root = _bank(tmp_path)
    (root / "samples.npy").write_bytes(path.read_bytes())
    _edit_meta(root, shots=2**32, dtype="<f8")
    with pytest.raises(BankError):
        Bank(root, verify=False)


def test_bank_metadata_fields_of_the_wrong_type_are_bank_errors(tmp_path):
    root = _bank(tmp_path)
    good = (root / "bank.json").read_text()
    for change in ({"shots": "500"}, {"shots": -1}, {"shots": 1e400}, {"dim": None}, {"dim": True},
                   {"dtype": "O"}, {"dtype": [1]}, {"dtype": "<U4"}, {"chunk_size": 0}, {"sha256": 5},
                   {"normalisation": [1]}, {"normalisation": {"std": [float("nan")] * 8}},
                   {"normalisation": {"centre": "yes"}}, {"spec": [1]}, {"seed": "x"}):
        (root / "bank.json").write_text(good)
        _edit_meta(root, **change)
        with pytest.raises(BankError):
            Bank(root)
    (root / "bank.json").write_text("[" * 100_000)
    with pytest.raises(BankError, match="invalid JSON"):
        Bank(root)


def _straight_bank(tmp_path, z, shots):
    return Bank(generate_bank(z, shots, tmp_path / "straight", chunk_size=100).path)


@pytest.mark.parametrize("grow", [False, True])
def test_full_disk_during_merge_is_a_bank_error_and_resumes(tmp_path, monkeypatch, grow):
    import errno

    import qboson.latent.bank as bank_module

    z = make("quantum", dim=8, seed=1)
    root = tmp_path / "b"
    if grow:
        generate_bank(z, 200, root, chunk_size=100)
    calls = []

    def disk_full(f, data):
        calls.append(1)
        if len(calls) > 2:  # a few blocks get through first
            raise OSError(errno.ENOSPC, "No space left on device")
        f.write(data)

    monkeypatch.setattr(bank_module, "_write_block", disk_full)
    with pytest.raises(BankError, match="disk is full.*rerun"):
        generate_bank(z, 450, root, chunk_size=100)
    monkeypatch.undo()
    assert not list(root.glob(".samples*"))  # no partial data file left
    if grow:
        assert len(Bank(root)) == 200  # the old bank is intact
    bank = generate_bank(z, 450, root)
    assert bank.generation["chunks_computed"] == 0  # the finished chunks were kept
    straight = _straight_bank(tmp_path, z, 450)
    assert (root / bank.metadata["data_file"]).read_bytes() == (straight.path / "samples.npy").read_bytes()
    np.testing.assert_array_equal(bank.raw, qboson.sample(4, 8, 450, seed=1))


def test_full_disk_at_preallocation_is_a_bank_error(tmp_path, monkeypatch):
    import errno
    import os

    z = make("gaussian", dim=4, seed=0)

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space, raising=False)
    with pytest.raises(BankError, match="disk is full"):
        generate_bank(z, 300, tmp_path / "b", chunk_size=100)
    monkeypatch.undo()
    assert len(generate_bank(z, 300, tmp_path / "b")) == 300


def test_merged_data_file_is_a_standard_npy(tmp_path):
    z = make("quantum", dim=8, seed=2)
    bank = generate_bank(z, 300, tmp_path / "b", chunk_size=64)
    np.save(tmp_path / "ref.npy", qboson.sample(4, 8, 300, seed=2).astype(bank.raw.dtype))
    assert (tmp_path / "b" / "samples.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()


def test_growing_a_bank_does_not_break_open_readers(tmp_path):
    z = make("quantum", dim=8, seed=1)
    root = tmp_path / "b"
    generate_bank(z, 250, root, chunk_size=100)
    reader = Bank(root)
    worker_copy = pickle.dumps(reader)  # what a DataLoader worker receives
    mapped = Bank(root)
    first = mapped.rows(0, 250)  # mapped before the growth
    generate_bank(z, 450, root)
    assert not (root / "samples.npy").exists()
    for bank in (reader, pickle.loads(worker_copy), mapped):
        assert len(bank) == 250
        np.testing.assert_array_equal(bank.rows(0, 250), first)
        np.testing.assert_array_equal(bank.take([249, 0]), first[[249, 0]])
    reader.verify()


def test_bank_writer_lock_survives_the_unlink_race(tmp_path, monkeypatch):
    """A writer that opened .lock just before the previous holder removed it must not count as holding it."""
    import os

    import qboson.latent.bank as bank_module

    root = tmp_path / "b"
    root.mkdir()
    (root / ".lock").touch()
    real_open = bank_module._open_lock
    raced = []

    def open_then_previous_holder_leaves(path):
        handle = real_open(path)
        if not raced:
            raced.append(1)
            os.unlink(path)  # the previous holder's cleanup, between our open and our flock
        return handle

    monkeypatch.setattr(bank_module, "_open_lock", open_then_previous_holder_leaves)
    with bank_module.writer_lock(root):
        monkeypatch.setattr(bank_module, "_open_lock", real_open)
        with pytest.raises(BankError, match="another process"):
            with bank_module.writer_lock(root):
                pass


def test_chunks_left_by_a_crash_after_the_merge_are_cleaned(tmp_path, monkeypatch):
    import qboson.latent.bank as bank_module

    z = make("quantum", dim=8, seed=1)
    root = tmp_path / "b"
    monkeypatch.setattr(bank_module, "_remove_merged_chunks", lambda root, shots: None)  # crash before cleanup
    generate_bank(z, 300, root, chunk_size=100)
    monkeypatch.undo()
    assert len(list((root / "chunks").glob("*.npy"))) == 3
    (root / "chunks" / "mine.txt").write_text("not qboson's")
    Bank(root)  # opening cleans what qboson left ...
    assert sorted(p.name for p in (root / "chunks").iterdir()) == ["mine.txt"]  # ... and only that
    (root / "chunks" / "mine.txt").unlink()
    (root / "chunks" / "000000000000-000000000100.npy").write_bytes(b"stale")
    (root / "samples-7.npy.bak").write_bytes(b"user backup")
    generate_bank(z, 400, root, chunk_size=100)  # so does resuming / growing
    assert sorted(p.name for p in root.iterdir()) == ["bank.json", "samples-400.npy", "samples-7.npy.bak"]
