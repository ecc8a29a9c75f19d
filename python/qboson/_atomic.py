"""Atomic file writes: a reader sees the old file or the new one, never a partial one.

Everything qboson saves (banks, caches, checkpoints, result tables) goes through here: data is
written to a hidden temporary file in the destination folder, flushed to disk, then renamed over
the destination with :func:`os.replace` (atomic on POSIX and Windows).  A crash leaves at most a
``.NAME.tmp-*`` file behind, never a truncated ``NAME``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["temp_path", "atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_save_npy", "fsync_dir"]


def temp_path(path: PathLike) -> Path:
    """A unique hidden name next to ``path``: ``.NAME.tmp-<pid>-<random>``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def fsync_dir(folder: PathLike) -> None:
    """Flush a folder's entries (the rename) to disk where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    The folder is created if needed.  Whatever writes to the temporary path must close it before
    the ``with`` block ends.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(path.parent)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_save_npy(path: PathLike, array: np.ndarray) -> None:
    """Save ``array`` as a ``.npy`` file at ``path`` atomically (no pickled objects)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)
