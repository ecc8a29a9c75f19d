import os

import numpy as np
import pytest

from qboson._atomic import atomic_path, atomic_save_npy, atomic_write_bytes, atomic_write_text


def test_writes_and_replaces(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    atomic_save_npy(tmp_path / "a.npy", np.arange(5))
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.arange(5))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "b.bin", "sub"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "keep.txt"
    atomic_write_text(target, "original")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "original"
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_objects_are_not_pickled(tmp_path):
    with pytest.raises(ValueError):
        atomic_save_npy(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    assert not any(tmp_path.iterdir())
