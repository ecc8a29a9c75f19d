"""Sample banks: a latent's default stream, pre-drawn to disk and memory-mapped for training.

Layout of a bank directory::

    bank/
      bank.json                    metadata (latent spec, shots, dtype, sha256, normalisation, ...)
      samples.npy                  rows [0, shots) of the latent's default stream, raw (counts)
      chunks/<start>-<stop>.npy    only while generating: finished chunks not yet merged

Generation is split into chunks of rows ``[start, stop)`` aligned to multiples of
``chunk_size``.  Each chunk is computed by :meth:`Latent.raw_at` (row ``i`` depends only on
``(seed, i)``) and written atomically (temporary file + ``os.replace``), so a crash loses at
most the chunks in flight, and a rerun computes only the missing ones.  When every chunk is
present they are merged into a new data file (atomically), the metadata is rewritten
(atomically) to point at it, and the chunk files are removed.  The same three steps
(:func:`plan_generation`, :func:`compute_chunk`, :func:`finalize`) serve local generation here
and :func:`qboson.distributed.generate_bank`, so both produce byte-identical banks.

A bank can grow: generating more shots into an existing bank appends rows
``[old_shots, new_shots)`` of the same stream.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np

from .._atomic import atomic_save_npy, atomic_write_text, fsync_dir, temp_path
from .._validation import as_int
from .base import Latent, normalise

__all__ = [
    "Bank",
    "BankError",
    "generate_bank",
    "GenerationPlan",
    "plan_generation",
    "compute_chunk",
    "finalize",
    "chunk_ranges",
    "default_chunk_size",
]

FORMAT = "qboson-bank"
FORMAT_VERSION = 1
META_FILE = "bank.json"
CHUNK_DIR = "chunks"
_HASH_BLOCK = 1 << 24
_NORM_KEYS = ("centre", "scale")

PathLike = Union[str, os.PathLike]


class BankError(ValueError):
    """A bank directory is missing, incomplete, truncated, tampered with or of another latent."""


# ---------------------------------------------------------------------------------------------
# atomic file helpers


def file_sha256(path: PathLike) -> str:
    """sha256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(_HASH_BLOCK)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def npy_header(path: PathLike) -> tuple[tuple, np.dtype, int]:
    """``(shape, dtype, expected file size)`` from a ``.npy`` header; BankError if unreadable."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                shape, fortran, dtype = np.lib.format._read_array_header(f, version)  # type: ignore[attr-defined]
            offset = f.tell()
    except (OSError, ValueError, EOFError) as exc:
        raise BankError(f"{path}: not a readable .npy file ({exc})") from None
    if fortran or dtype.hasobject:
        raise BankError(f"{path}: unexpected array layout (fortran={fortran}, dtype={dtype})")
    return tuple(shape), dtype, offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _data_spec(latent: Latent) -> dict:
    """The latent's spec without normalisation flags: what fixes the bank's raw rows."""
    spec = latent.spec()
    for key in _NORM_KEYS:
        spec.pop(key, None)
    return spec


def _fingerprint(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _read_meta(root: Path) -> dict:
    path = root / META_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BankError(f"{root} is not a sample bank: {META_FILE} is missing") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BankError(f"{path} is corrupt (invalid JSON: {exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BankError(f"{path} is not qboson bank metadata")
    if meta.get("format_version") != FORMAT_VERSION:
        raise BankError(f"{path}: unsupported bank format version {meta.get('format_version')!r}")
    for key in ("spec", "fingerprint", "shots", "dim", "dtype", "chunk_size"):
        if key not in meta:
            raise BankError(f"{path} is corrupt: missing {key!r}")
    if _fingerprint(meta["spec"]) != meta["fingerprint"]:
        raise BankError(f"{path} is corrupt or was edited: its latent spec does not match its fingerprint")
    return meta


def _write_meta(root: Path, meta: dict) -> None:
    atomic_write_text(root / META_FILE, json.dumps(meta, indent=1, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------
# generation in chunks


def chunk_ranges(begin: int, end: int, chunk_size: int) -> list[tuple[int, int]]:
    """Row ranges covering ``[begin, end)`` with boundaries at multiples of ``chunk_size``."""
    out = []
    a = begin
    while a < end:
        b = min((a // chunk_size + 1) * chunk_size, end)
        out.append((a, b))
        a = b
    return out


def default_chunk_size(latent: Latent, seconds: float = 10.0) -> int:
    """Rows per chunk so that one chunk takes about ``seconds`` on one core (64 .. 65536).

    The chunk size never changes the content of a bank of an index-deterministic latent.
    """
    if getattr(latent, "n_photons", None) is None or getattr(latent, "backend", None) is not None:
        return 65536
    from ..cost import estimate_cost

    per_shot = estimate_cost(
        latent.n_photons, latent.dim, 1000, distinguishable=getattr(latent, "distinguishable", False), threads=1
    ) / 1000.0
    rows = int(seconds / max(per_shot, 1e-9))
    return int(min(65536, max(64, 1 << max(0, rows.bit_length() - 1))))


def chunk_path(root: PathLike, start: int, stop: int) -> Path:
    return Path(root) / CHUNK_DIR / f"{start:012d}-{stop:012d}.npy"


def _chunk_ok(path: Path, rows: int, dim: int, dtype: np.dtype) -> bool:
    if not path.is_file():
        return False
    try:
        shape, dt, size = npy_header(path)
    except BankError:
        return False
    return shape == (rows, dim) and dt == dtype and path.stat().st_size == size


def compute_chunk(latent: Latent, start: int, stop: int, root: PathLike, threads: Optional[int] = None) -> tuple[int, int]:
    """Compute rows ``[start, stop)`` of ``latent``'s default stream and save them atomically as
    the bank's chunk file.  Returns ``(start, stop)``.  Safe to run in any process that sees
    ``root``."""
    rows = latent.raw_at(start, stop, threads=threads)
    path = chunk_path(root, start, stop)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_npy(path, rows)
    return start, stop


@dataclass
class GenerationPlan:
    """What a (re)run of bank generation must do.

    ``missing`` chunks must be computed; ``reused`` chunks are already on disk from an
    interrupted run.  ``report`` is filled in as the run proceeds.
    """

    root: Path
    latent: Latent
    meta: dict
    target: int
    chunk_size: int
    missing: list = field(default_factory=list)
    reused: list = field(default_factory=list)

    @property
    def done_shots(self) -> int:
        return int(self.meta["shots"]) + sum(b - a for a, b in self.reused)

    @property
    def report(self) -> dict:
        return {
            "target_shots": self.target,
            "existing_shots": int(self.meta["shots"]),
            "chunk_size": self.chunk_size,
            "chunks_total": len(self.missing) + len(self.reused),
            "chunks_computed": len(self.missing),
            "chunks_reused": len(self.reused),
        }


@contextlib.contextmanager
def writer_lock(out: PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock on a bank directory while generating into it.

    Two processes generating into one bank would race on the merge; the second one gets a
    :class:`BankError` at once instead.  The lock (``fcntl.flock`` on ``.lock``) is released
    when the process ends, even if it crashes.  Without ``fcntl`` (Windows) no lock is taken.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise BankError(f"{str(root)!r} is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BankError(f"bank {str(root)!r} is being written by another process; wait for it to finish") from None
        try:
            yield
        finally:
            # Remove the lock file while still holding it, so a finished bank holds only its data.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(root / ".lock")
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def plan_generation(latent: Latent, shots: int, out: PathLike, *, chunk_size: Optional[int] = None) -> GenerationPlan:
    """Create or reopen the bank directory ``out`` for ``shots`` rows of ``latent`` and list the
    chunks still to compute.

    Raises
    ------
    BankError
        If ``out`` holds a bank of a different latent, or unfinished chunks of another chunk size.
    """
    if not isinstance(latent, Latent):
        raise TypeError(f"expected a qboson.latent.Latent, got {type(latent).__name__}")
    shots = as_int(shots, "shots", minimum=1)
    if chunk_size is not None:
        chunk_size = as_int(chunk_size, "chunk_size", minimum=1)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise BankError(f"{root} exists and is not a directory")
    spec = _data_spec(latent)
    fingerprint = _fingerprint(spec)
    if (root / META_FILE).exists():
        meta = _read_meta(root)
        if meta["fingerprint"] != fingerprint:
            raise BankError(
                f"{root} holds a bank of a different latent ({meta['spec'].get('name')}, seed {meta['spec'].get('seed')}); "
                "choose another output directory"
            )
        pending = sorted((root / CHUNK_DIR).glob("*.npy")) if (root / CHUNK_DIR).is_dir() else []
        if chunk_size is not None and chunk_size != meta["chunk_size"]:
            if pending:
                raise BankError(
                    f"{root} has unfinished chunks of size {meta['chunk_size']}; resume with chunk_size={meta['chunk_size']} "
                    "(or omit it)"
                )
            meta["chunk_size"] = chunk_size
    else:
        root.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": latent.name,
            "dim": latent.dim,
            "seed": latent.seed,
            "spec": spec,
            "fingerprint": fingerprint,
            "dtype": np.dtype(latent.raw_dtype).str,
            "shots": 0,
            "data_file": None,
            "sha256": None,
            "chunk_size": chunk_size or default_chunk_size(latent),
            "index_deterministic": bool(latent.index_deterministic),
            "created_utc": _now(),
        }
        for key in ("n_photons", "input_modes"):
            if key in spec:
                meta[key] = spec[key]
        if "unitary_sha256" in spec:
            meta["unitary_sha256"] = spec["unitary_sha256"]
    for stale in root.glob(".samples*.npy.tmp-*"):  # a merge killed before its os.replace
        stale.unlink(missing_ok=True)
    from .. import __version__

    meta["normalisation"] = _normalisation_record(latent)
    meta["target_shots"] = max(shots, int(meta["shots"]))
    meta["qboson_version"] = __version__
    _write_meta(root, meta)
    plan = GenerationPlan(root, latent, meta, meta["target_shots"], int(meta["chunk_size"]))
    dtype = np.dtype(meta["dtype"])
    for a, b in chunk_ranges(int(meta["shots"]), plan.target, plan.chunk_size):
        (plan.reused if _chunk_ok(chunk_path(root, a, b), b - a, latent.dim, dtype) else plan.missing).append((a, b))
    return plan


def _normalisation_record(latent: Latent) -> dict:
    rec: dict[str, Any] = {"centre": latent.centre, "scale": latent.scale}
    rec["mean"] = None if latent.mean is None else [float(x) for x in latent.mean]
    rec["std"] = None if latent.std is None else [float(x) for x in latent.std]
    rec["rule"] = "z = (raw - mean if centre) / (std if scale); mean and std are exact"
    return rec


def finalize(plan: GenerationPlan) -> "Bank":
    """Merge the existing rows and every chunk into a new data file, point the metadata at it,
    and remove the chunk files.  Each step is atomic; a crash leaves the previous bank valid."""
    root, meta = plan.root, dict(plan.meta)
    old_shots = int(meta["shots"])
    if plan.target == old_shots and meta.get("data_file"):
        meta.pop("target_shots", None)
        _write_meta(root, meta)
        bank = Bank(root)
        bank.generation = plan.report
        return bank
    dim, dtype = int(meta["dim"]), np.dtype(meta["dtype"])
    ranges = chunk_ranges(old_shots, plan.target, plan.chunk_size)
    for a, b in ranges:
        if not _chunk_ok(chunk_path(root, a, b), b - a, dim, dtype):
            raise BankError(f"{root}: chunk {a}-{b} is missing or corrupt; rerun generation to compute it")
    old_file = meta.get("data_file")
    new_name = "samples.npy" if old_file != "samples.npy" else f"samples-{plan.target}.npy"
    final = root / new_name
    tmp = temp_path(final)
    try:
        merged = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(plan.target, dim))
        if old_shots:
            old = np.load(root / old_file, mmap_mode="r")
            step = 1 << 20
            for a in range(0, old_shots, step):
                merged[a : min(a + step, old_shots)] = old[a : min(a + step, old_shots)]
            del old
        for a, b in ranges:
            merged[a:b] = np.load(chunk_path(root, a, b), allow_pickle=False)
        merged.flush()
        del merged
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(root)
    meta.update(
        shots=plan.target, data_file=new_name, sha256=file_sha256(final), updated_utc=_now(),
        shape=[plan.target, dim],
    )
    meta.pop("target_shots", None)
    _write_meta(root, meta)
    for data in root.glob("samples*.npy"):  # the previous data file, or one orphaned by a crash
        if data.name != new_name:
            data.unlink(missing_ok=True)
    shutil.rmtree(root / CHUNK_DIR, ignore_errors=True)
    bank = Bank(root, verify=False)
    bank.generation = plan.report
    return bank


def generate_bank(
    latent: Latent,
    shots: int,
    out: PathLike,
    *,
    chunk_size: Optional[int] = None,
    threads: Optional[int] = None,
    progress: Optional[bool] = None,
) -> "Bank":
    """Generate (or resume, or grow) a bank of ``shots`` rows of ``latent``'s default stream in this process.

    Parameters
    ----------
    latent : Latent
        E.g. ``qboson.latent.make("quantum", dim=16, seed=0)``.
    shots : int
        Total rows the bank must hold (an existing bank with more is left as it is).
    out : path
        Bank directory (created if needed).
    chunk_size : int, optional
        Rows per chunk file (default: about 10 s of work each); fixed once generation started.
    threads : int, optional
        Sampler threads (default: the latent's setting, i.e. all cores).
    progress : bool, optional
        Progress bar with ETA over shots; ``None`` shows one when the run is expected to take > 3 s.

    Returns
    -------
    Bank
        The finished bank; ``bank.generation`` reports chunks computed and reused.
    """
    with writer_lock(out):
        plan = plan_generation(latent, shots, out, chunk_size=chunk_size)
        if progress is None:
            progress = _expected_seconds(latent, plan.target - plan.done_shots) > 3.0
        from .._progress import progress_bar

        with progress_bar(total=plan.target, enabled=bool(progress), unit="shot", desc=f"bank {latent.name}",
                          initial=plan.done_shots) as bar:
            for a, b in plan.missing:
                compute_chunk(latent, a, b, plan.root, threads=threads)
                bar.update(b - a)
        return finalize(plan)


def _expected_seconds(latent: Latent, shots: int) -> float:
    if getattr(latent, "n_photons", None) is None or shots <= 0:
        return 0.0
    from ..cost import estimate_cost

    return estimate_cost(latent.n_photons, latent.dim, shots, distinguishable=getattr(latent, "distinguishable", False))


# ---------------------------------------------------------------------------------------------
# reading


class Bank:
    """A finished sample bank, memory-mapped read-only.

    Parameters
    ----------
    path : path
        The bank directory.
    verify : bool
        Recompute the data file's sha256 and compare it with the metadata (reads the whole file
        once).  The file size is always checked against the ``.npy`` header.
    centre, scale : bool, optional
        Override the normalisation recorded with the bank.

    Raises
    ------
    BankError
        Missing or corrupt metadata, a bank with no finished rows, a truncated or tampered data file.
    """

    def __init__(self, path: PathLike, *, verify: bool = True, centre: Optional[bool] = None, scale: Optional[bool] = None) -> None:
        self.path = Path(path)
        meta = _read_meta(self.path)
        if not meta.get("data_file") or int(meta["shots"]) <= 0:
            target = meta.get("target_shots", "?")
            raise BankError(
                f"{self.path} is an unfinished bank (0 of {target} shots merged); rerun the same generation "
                "command to resume it"
            )
        self.metadata = meta
        data = self.path / meta["data_file"]
        if not data.is_file():
            raise BankError(f"{self.path}: data file {meta['data_file']} is missing")
        shape, dtype, size = npy_header(data)
        expected = (int(meta["shots"]), int(meta["dim"]))
        if shape != expected or dtype != np.dtype(meta["dtype"]):
            raise BankError(f"{data}: holds {shape} {dtype}, metadata says {expected} {meta['dtype']}")
        actual = data.stat().st_size
        if actual != size:
            raise BankError(f"{data} is truncated or padded: {actual} bytes, its header implies {size}")
        if verify:
            digest = file_sha256(data)
            if digest != meta.get("sha256"):
                raise BankError(
                    f"{data} was modified: sha256 {digest[:16]}... differs from the recorded {str(meta.get('sha256'))[:16]}..."
                )
        norm = meta.get("normalisation", {})
        self.centre = bool(norm.get("centre", True)) if centre is None else bool(centre)
        self.scale = bool(norm.get("scale", False)) if scale is None else bool(scale)
        self._mean = None if norm.get("mean") is None else np.asarray(norm["mean"], dtype=np.float64)
        self._std = None if norm.get("std") is None else np.asarray(norm["std"], dtype=np.float64)
        if self.centre and self._mean is None:
            raise BankError(f"{self.path}: no recorded mean to centre with")
        if self.scale and self._std is None:
            raise BankError(f"{self.path}: no recorded std to scale with")
        self._data_path = data
        self._raw: Optional[np.ndarray] = None
        self.generation: Optional[dict] = None

    # -- metadata -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.metadata["kind"])

    @property
    def dim(self) -> int:
        return int(self.metadata["dim"])

    @property
    def spec(self) -> dict:
        return dict(self.metadata["spec"])

    @property
    def sha256(self) -> str:
        return str(self.metadata["sha256"])

    @property
    def mean(self) -> Optional[np.ndarray]:
        """Exact mean of the raw rows (recorded at generation), shape (dim,)."""
        return self._mean

    @property
    def std(self) -> Optional[np.ndarray]:
        return self._std

    def __len__(self) -> int:
        return int(self.metadata["shots"])

    # -- data -----------------------------------------------------------------------------------
    @property
    def raw(self) -> np.ndarray:
        """All raw rows, shape (shots, dim), memory-mapped read-only."""
        if self._raw is None:
            self._raw = np.load(self._data_path, mmap_mode="r", allow_pickle=False)
        return self._raw

    def __getitem__(self, index) -> np.ndarray:
        """Raw rows (numpy indexing of :attr:`raw`)."""
        return self.raw[index]

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        return normalise(raw, self._mean if self.centre else None, self._std if self.scale else None)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Normalised rows ``[start, stop)``, float32, shape (stop - start, dim)."""
        return self.normalise(self.raw[start:stop])

    def take(self, indices) -> np.ndarray:
        """Normalised rows at ``indices`` (in that order), float32, shape (len(indices), dim)."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"bank index out of range [0, {len(self)})")
        order = np.argsort(idx, kind="stable")
        rows = np.empty((idx.size, self.dim), dtype=self.raw.dtype)
        rows[order] = self.raw[idx[order]]
        return self.normalise(rows)

    def sample(self, k: int, seed=None) -> np.ndarray:
        """``k`` distinct rows chosen uniformly at random (``seed``), normalised, float32."""
        from .._seeding import generator

        k = as_int(k, "k", minimum=0)
        if k > len(self):
            raise ValueError(f"cannot draw {k} distinct rows from a bank of {len(self)}")
        return self.take(generator(seed).choice(len(self), size=k, replace=False))

    def latent(self, **overrides) -> Latent:
        """The latent this bank was drawn from (its row i is the bank's row i)."""
        from . import from_spec

        spec = self.spec
        spec.update(centre=self.centre, scale=self.scale)
        return from_spec(spec, **overrides)

    def verify(self) -> None:
        """Recompute the sha256 of the data file; BankError if it differs from the metadata."""
        digest = file_sha256(self._data_path)
        if digest != self.sha256:
            raise BankError(f"{self._data_path} was modified: sha256 differs from the recorded one")

    def describe(self) -> str:
        m = self.metadata
        extra = ""
        if "n_photons" in m:
            extra = f", {m['n_photons']} photons, unitary sha256 {str(m.get('unitary_sha256'))[:12]}"
        return (
            f"bank {self.path}: {len(self)} x {self.dim} {m['dtype']} rows of the {self.name} latent "
            f"(seed {m['seed']}{extra}), sha256 {self.sha256[:16]}..., qboson {m.get('qboson_version')}"
        )

    def __repr__(self) -> str:
        return f"<Bank {self.path} {self.name} {len(self)}x{self.dim}>"

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_raw"] = None  # pickle by path (DataLoader workers, Dask), not by content
        return state
