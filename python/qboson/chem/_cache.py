"""Cache directory and atomic, checksummed array files for :mod:`qboson.chem`.

A cache file is a ``.npz`` archive written to a temporary file in the target
directory and moved into place with :func:`os.replace`, so a reader never sees
a half-written file.  Besides the arrays it holds ``__checksum__``, the SHA-256
of the arrays' names, dtypes, shapes and bytes; :func:`read_npz` recomputes it
and raises :class:`CorruptCacheError` on any mismatch or unreadable archive.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping, Union

import numpy as np

from .._atomic import atomic_path

__all__ = ["CorruptCacheError", "default_cache_dir", "resolve_cache_dir", "write_npz", "read_npz",
           "atomic_write_bytes"]

PathLike = Union[str, "os.PathLike[str]"]


class CorruptCacheError(ValueError):
    """A cache file exists but cannot be read or fails its checksum."""


def default_cache_dir() -> Path:
    """``$QBOSON_CACHE`` if set, else ``~/.cache/qboson``."""
    env = os.environ.get("QBOSON_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "qboson"


def resolve_cache_dir(cache_dir: PathLike | None) -> Path:
    return default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, then rename it to ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            write(fh)


def write_npz(path: PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Atomically write ``arrays`` (no object arrays) plus their checksum to ``path``."""
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    payload = dict(arrays)
    payload["__checksum__"] = np.array(_checksum(arrays))
    atomic_write_bytes(Path(path), lambda fh: np.savez(fh, **payload))


def read_npz(path: PathLike) -> dict[str, np.ndarray]:
    """Read a file written by :func:`write_npz`; raise CorruptCacheError if it is damaged."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except Exception as exc:  # zipfile, zlib, format and header errors all mean 'damaged'
        raise CorruptCacheError(f"cache file {path} is unreadable ({type(exc).__name__}: {exc})") from exc
    stored = arrays.pop("__checksum__", None)
    if stored is None:
        raise CorruptCacheError(f"cache file {path} has no checksum")
    if str(stored) != _checksum(arrays):
        raise CorruptCacheError(f"cache file {path} fails its checksum")
    return arrays
