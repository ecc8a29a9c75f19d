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
``[old_shots, new_shots)`` of the same stream.  Readers that opened it before keep their rows
(they follow the new data file by name).  A finished bank keeps its recorded normalisation
unless told otherwise (``normalisation=`` of :func:`generate_bank`).

Safety: generation writes only into a missing or empty folder or an existing bank
(:func:`check_bank_dir`), and deletes only the names it writes (``samples[-N].npy``,
``chunks/<start>-<stop>.npy`` and their temporary files).  Every field of ``bank.json`` is
checked before use; anything wrong is a :class:`BankError`.  The merge uses ordinary file
writes, so a full disk is a BankError that leaves the bank resumable.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np

from .._atomic import atomic_save_npy, atomic_write_text, fsync_dir, temp_path
from .._outdir import OutputDirError, check_output_dir
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
    "check_bank_dir",
    "default_chunk_size",
]

FORMAT = "qboson-bank"
FORMAT_VERSION = 1
META_FILE = "bank.json"
CHUNK_DIR = "chunks"
_HASH_BLOCK = 1 << 24
_NORM_KEYS = ("centre", "scale")
_MAX_META_BYTES = 64 << 20  # a spec holds at most a unitary as JSON lists
_MAX_ROWS = 1 << 48
_MAX_DIM = 1 << 20
# the only file names qboson writes in a bank; nothing else there is ever deleted
_DATA_NAME = re.compile(r"^samples(-[0-9]+)?\.npy$")
_CHUNK_NAME = re.compile(r"^(\.)?([0-9]{12})-([0-9]{12})\.npy(\.tmp-[0-9]+-[0-9a-f]+)?$")
_LOCK = ".lock"
_NORMALISATION_POLICIES = ("keep", "error", "replace")

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
    if any(int(n) < 0 for n in shape):
        raise BankError(f"{path}: negative array shape {shape} in its header")
    nbytes = math.prod(int(n) for n in shape) * dtype.itemsize  # Python ints: no silent int64 wrap-around
    if nbytes >= 1 << 63:
        raise BankError(f"{path}: its header's shape {shape} implies {nbytes} bytes, more than any file can hold")
    return tuple(int(n) for n in shape), dtype, offset + nbytes


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
        if path.stat().st_size > _MAX_META_BYTES:
            raise BankError(f"{path} is too large to be bank metadata")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BankError(f"{root} is not a sample bank: {META_FILE} is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BankError(f"{path} is unreadable ({exc})") from None
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BankError(f"{path} is corrupt (invalid JSON: {exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BankError(f"{path} is not qboson bank metadata")
    if meta.get("format_version") != FORMAT_VERSION:
        raise BankError(f"{path}: unsupported bank format version {meta.get('format_version')!r}")
    for key in ("spec", "fingerprint", "shots", "dim", "dtype", "chunk_size"):
        if key not in meta:
            raise BankError(f"{path} is corrupt: missing {key!r}")
    if not isinstance(meta["spec"], dict) or not isinstance(meta["fingerprint"], str):
        raise BankError(f"{path} is corrupt: 'spec' must be an object and 'fingerprint' a string")
    try:
        fingerprint = _fingerprint(meta["spec"])
    except (TypeError, ValueError, RecursionError) as exc:
        raise BankError(f"{path} is corrupt: its latent spec is not canonical JSON ({exc})") from None
    if fingerprint != meta["fingerprint"]:
        raise BankError(f"{path} is corrupt or was edited: its latent spec does not match its fingerprint")
    _check_meta(meta, path)
    return meta


def _is_int(x: Any, lo: int, hi: Optional[int] = None) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= lo and (hi is None or x <= hi)


def _check_meta(meta: dict, path: Path) -> None:
    """Every field a reader or writer uses has the right type and range (BankError naming the field)."""

    def bad(key: str, why: str) -> BankError:
        return BankError(f"{path} is corrupt: {key!r} {why} (got {str(meta.get(key))[:80]!r})")

    if not _is_int(meta["shots"], 0, _MAX_ROWS):
        raise bad("shots", f"must be an integer in [0, {_MAX_ROWS}]")
    if not _is_int(meta["dim"], 1, _MAX_DIM):
        raise bad("dim", f"must be an integer in [1, {_MAX_DIM}]")
    if "dim" in meta["spec"] and meta["spec"]["dim"] != meta["dim"]:
        raise bad("dim", f"disagrees with the latent spec's dim {str(meta['spec']['dim'])[:20]}")
    if not _is_int(meta["chunk_size"], 1, _MAX_ROWS):
        raise bad("chunk_size", "must be a positive integer")
    if "target_shots" in meta and not _is_int(meta["target_shots"], 0, _MAX_ROWS):
        raise bad("target_shots", "must be a non-negative integer")
    if meta.get("seed") is not None and not _is_int(meta["seed"], 0):
        raise bad("seed", "must be a non-negative integer")
    if not isinstance(meta.get("kind", ""), str):
        raise bad("kind", "must be a string")
    try:
        dtype = np.dtype(meta["dtype"]) if isinstance(meta["dtype"], str) else None
    except (TypeError, ValueError, SyntaxError):
        dtype = None
    if dtype is None or dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise bad("dtype", "must name a plain numeric numpy dtype")
    data_file = meta.get("data_file")
    if data_file is not None and not (isinstance(data_file, str) and _DATA_NAME.match(data_file)):
        raise bad("data_file", "must be a data file name inside the bank (samples.npy or samples-<rows>.npy)")
    sha = meta.get("sha256")
    if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise bad("sha256", "must be 64 hex digits")
    norm = meta.get("normalisation", {})
    if not isinstance(norm, dict):
        raise bad("normalisation", "must be an object")
    for key in _NORM_KEYS:
        if key in norm and not isinstance(norm[key], bool):
            raise BankError(f"{path} is corrupt: normalisation {key!r} must be true or false")
    for key in ("mean", "std"):
        v = norm.get(key)
        if v is None:
            continue
        ok = isinstance(v, list) and len(v) == meta["dim"] and all(_finite(x) for x in v)
        if not ok:
            raise BankError(f"{path} is corrupt: normalisation {key!r} must be {meta['dim']} finite numbers (one per dim)")
        if key == "std" and any(x < 0 for x in v):
            raise BankError(f"{path} is corrupt: normalisation 'std' must not be negative")


def _finite(x: Any) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:
        return False


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
    if getattr(latent, "noise", None) is not None:
        # Loss and post-selection change the photon numbers the cost model assumes (a PT-series
        # latent of 32 photons costs ~2 ms a row, not the model's ~0.3 s), so time a few rows of the
        # stream instead; the model over-estimates under loss, so the probe stays near a second.
        import time

        probe = int(min(256, max(1, 0.5 / max(per_shot, 1e-9))))
        while True:  # at most ~1 s of probing: the first call's set-up must not dominate the timing
            t0 = time.process_time()
            latent.raw_at(0, probe, threads=1)
            elapsed = time.process_time() - t0
            if elapsed >= 0.2 or probe >= 256:
                break
            probe = min(256, probe * 4)
        per_shot = elapsed / probe
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


def check_bank_dir(out: PathLike) -> None:
    """Refuse (BankError naming it) a folder that is neither missing, empty nor a qboson bank.

    A bank is recognised by its ``bank.json`` (which must validate); an empty ``.lock`` left by
    a writer killed before it wrote ``bank.json`` does not count as content.  Nothing is changed.
    """
    root = Path(out)
    if (root / META_FILE).is_file():
        _read_meta(root)  # BankError if it is not valid bank metadata
        return
    try:
        check_output_dir(root, "bank", ignore=(_LOCK,) if _empty_file(root / _LOCK) else ())
    except OutputDirError as exc:
        raise BankError(str(exc)) from None


def _empty_file(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size == 0
    except OSError:
        return False


def _open_lock(path: Path):
    return open(path, "a+")


@contextlib.contextmanager
def writer_lock(out: PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock on a bank directory while generating into it.

    Two processes generating into one bank would race on the merge; the second one gets a
    :class:`BankError` at once instead.  The lock (``fcntl.flock`` on ``.lock``) is released
    when the process ends, even if it crashes.  Without ``fcntl`` (Windows) no lock is taken.

    The folder must be missing, empty or a bank (:func:`check_bank_dir`): qboson never writes
    into, or deletes from, a folder of other files.
    """
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise BankError(f"{str(root)!r} is not a directory")
    check_bank_dir(root)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        root.mkdir(parents=True, exist_ok=True)
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    lock = root / _LOCK
    for _ in range(100):
        handle = _open_lock(lock)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise BankError(f"bank {str(root)!r} is being written by another process; wait for it to finish") from None
        # The previous holder unlinks .lock before unlocking it: if it did so after we opened the
        # file, we hold a lock on a deleted file that a third writer cannot see.  Retry on the new file.
        held = os.fstat(handle.fileno())
        try:
            now = os.stat(lock)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
            break
        handle.close()
    else:  # pragma: no cover - only under a storm of competing writers
        raise BankError(f"bank {str(root)!r}: could not take its writer lock; retry")
    try:
        yield
    finally:
        # Remove the lock file while still holding it, so a finished bank holds only its data.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


def _remove_merged_chunks(root: Path, shots: int) -> None:
    """Delete chunk files (and their temporary files) of rows below ``shots``: already merged into
    the data file, left by a crash between the metadata write and the cleanup.  Only names qboson
    writes are touched; ``chunks/`` is removed only if that leaves it empty."""
    folder = root / CHUNK_DIR
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        m = _CHUNK_NAME.match(p.name)
        if m and int(m.group(3)) <= shots and p.is_file():
            p.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()


def plan_generation(
    latent: Latent, shots: int, out: PathLike, *, chunk_size: Optional[int] = None, normalisation: str = "keep"
) -> GenerationPlan:
    """Create or reopen the bank directory ``out`` for ``shots`` rows of ``latent`` and list the
    chunks still to compute.

    ``normalisation`` says what happens when ``out`` is a finished bank whose recorded
    normalisation (centre, scale) differs from ``latent``'s: ``"keep"`` the recorded one (with a
    warning), ``"error"`` (BankError), or ``"replace"`` it (readers then normalise differently).

    Raises
    ------
    BankError
        If ``out`` holds a bank of a different latent, or unfinished chunks of another chunk size,
        or is a folder of other files.
    """
    if normalisation not in _NORMALISATION_POLICIES:
        raise ValueError(f"normalisation must be one of {_NORMALISATION_POLICIES}, got {normalisation!r}")
    normalisation_policy = normalisation
    if not isinstance(latent, Latent):
        raise TypeError(f"expected a qboson.latent.Latent, got {type(latent).__name__}")
    shots = as_int(shots, "shots", minimum=1)
    if chunk_size is not None:
        chunk_size = as_int(chunk_size, "chunk_size", minimum=1)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise BankError(f"{root} exists and is not a directory")
    check_bank_dir(root)
    spec = _data_spec(latent)
    fingerprint = _fingerprint(spec)
    normalisation = _normalisation_record(latent)
    if (root / META_FILE).exists():
        meta = _read_meta(root)
        if meta["fingerprint"] != fingerprint:
            raise BankError(
                f"{root} holds a bank of a different latent ({meta['spec'].get('name')}, seed {meta['spec'].get('seed')}); "
                "choose another output directory"
            )
        _remove_merged_chunks(root, int(meta["shots"]))
        recorded = meta.get("normalisation") or {}
        asked = {k: normalisation[k] for k in _NORM_KEYS}
        had = {k: recorded.get(k) for k in _NORM_KEYS}
        if int(meta["shots"]) > 0 and recorded and had != asked and normalisation_policy != "replace":
            # readers rely on the recorded normalisation: a finished bank keeps it unless told otherwise
            msg = (
                f"{root} records normalisation centre={had['centre']}, scale={had['scale']}, but this run asks for "
                f"centre={asked['centre']}, scale={asked['scale']}"
            )
            if normalisation_policy == "error":
                raise BankError(
                    f"{msg}; rerun with the recorded settings (qboson sample: the same --scale / --no-centre), or "
                    "choose them when reading: Bank(path, centre=..., scale=...)"
                )
            warnings.warn(f"{msg}; keeping the recorded one (pass normalisation='replace' to change it)", stacklevel=3)
        if int(meta["shots"]) > 0 and recorded and normalisation_policy != "replace":
            normalisation = recorded
        pending = sorted(p for p in (root / CHUNK_DIR).glob("*.npy") if _CHUNK_NAME.match(p.name)) \
            if (root / CHUNK_DIR).is_dir() else []
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
        if _DATA_NAME.match(stale.name[1:].split(".tmp-")[0]):
            stale.unlink(missing_ok=True)
    from .. import __version__

    meta["normalisation"] = normalisation
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
    source = getattr(latent, "mean_source", "exact")  # noisy and recorded latents: their own estimate
    rec["rule"] = f"z = (raw - mean if centre) / (std if scale); mean and std: {source}"
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
        _write_merged(tmp, root, meta, ranges, plan.target)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(root)
    meta.update(
        shots=plan.target, data_file=new_name, sha256=file_sha256(final), updated_utc=_now(),
        shape=[plan.target, dim],
    )
    meta.pop("target_shots", None)
    _write_meta(root, meta)
    for data in root.glob("samples*.npy"):  # the previous data file, or one orphaned by a crash
        if data.name != new_name and _DATA_NAME.match(data.name):
            data.unlink(missing_ok=True)
    _remove_merged_chunks(root, plan.target)
    bank = Bank(root, verify=False)
    bank.generation = plan.report
    return bank


def _write_block(f, data) -> None:
    """One write of the merged data file (a separate function so tests can fail it like a full disk)."""
    f.write(data)


def _write_merged(tmp: Path, root: Path, meta: dict, ranges: list, target: int) -> None:
    """Write the previous data rows and then every chunk into the ``.npy`` file ``tmp``.

    Ordinary writes (not a memory map): a full disk is an OSError, not SIGBUS.  Space is
    reserved first where the platform allows it, so a disk that is too small fails at once.
    Any OSError becomes a BankError; the bank itself is not changed (rerun to resume).
    """
    dim, dtype, old_shots = int(meta["dim"]), np.dtype(meta["dtype"]), int(meta["shots"])
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (target, dim)}
    old = root / meta["data_file"] if old_shots else None
    if old is not None:  # the rows we keep must be the ones the metadata vouches for
        shape, dt, size = npy_header(old)
        if shape != (old_shots, dim) or dt != dtype or old.stat().st_size != size or file_sha256(old) != meta.get("sha256"):
            raise BankError(f"{old} does not match {root / META_FILE} (truncated or modified); the bank cannot grow")
    try:
        with open(tmp, "wb") as f:
            try:
                np.lib.format.write_array_header_1_0(f, header)
            except ValueError:  # header too long for format 1.0 (as numpy itself would choose)
                f.seek(0)
                f.truncate()
                np.lib.format.write_array_header_2_0(f, header)
            total = f.tell() + target * dim * dtype.itemsize
            if hasattr(os, "posix_fallocate"):
                try:
                    os.posix_fallocate(f.fileno(), 0, total)
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                        raise
                    # the filesystem cannot preallocate: the writes below still report a full disk
            if old is not None:
                offset = size - old_shots * dim * dtype.itemsize
                with open(old, "rb") as src:
                    src.seek(offset)
                    while True:
                        block = src.read(_HASH_BLOCK)
                        if not block:
                            break
                        _write_block(f, block)
            for a, b in ranges:
                rows = np.load(chunk_path(root, a, b), allow_pickle=False)
                _write_block(f, np.ascontiguousarray(rows, dtype=dtype).data)
            if f.tell() != total:
                raise BankError(f"{tmp}: wrote {f.tell()} bytes, expected {total}")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        why = "the disk is full" if full else "a write failed"
        raise BankError(
            f"{root}: merging into a {target}-row data file failed: {why} ({exc.strerror or exc}). "
            f"The bank is unchanged and its finished chunks are kept: "
            f"{'free disk space' if full else 'fix the cause'} and rerun the same command to resume."
        ) from exc


def generate_bank(
    latent: Latent,
    shots: int,
    out: PathLike,
    *,
    chunk_size: Optional[int] = None,
    threads: Optional[int] = None,
    progress: Optional[bool] = None,
    normalisation: str = "keep",
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
    normalisation : {"keep", "error", "replace"}
        If ``out`` is a finished bank recording another normalisation than ``latent``'s: keep the
        recorded one (warning), raise BankError, or replace it (see :func:`plan_generation`).

    Returns
    -------
    Bank
        The finished bank; ``bank.generation`` reports chunks computed and reused.
    """
    with writer_lock(out):
        plan = plan_generation(latent, shots, out, chunk_size=chunk_size, normalisation=normalisation)
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


def _check_data_file(data: Path, meta: dict) -> None:
    """The data file's header and size agree with the metadata (BankError otherwise)."""
    shape, dtype, size = npy_header(data)
    expected = (int(meta["shots"]), int(meta["dim"]))
    if shape != expected or dtype != np.dtype(meta["dtype"]):
        raise BankError(f"{data}: holds {shape} {dtype}, metadata says {expected} {meta['dtype']}")
    actual = data.stat().st_size
    if actual != size:
        raise BankError(f"{data} is truncated or padded: {actual} bytes, its header implies {size}")


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
        for attempt in range(3):  # a writer growing the bank may replace the data file under us
            meta = _read_meta(self.path)
            if not meta.get("data_file") or int(meta["shots"]) <= 0:
                target = meta.get("target_shots", "?")
                raise BankError(
                    f"{self.path} is an unfinished bank (0 of {target} shots merged); rerun the same generation "
                    "command to resume it"
                )
            data = self.path / meta["data_file"]
            if data.is_file():
                break
        else:
            raise BankError(f"{self.path}: data file {meta['data_file']} is missing")
        self.metadata = meta
        _check_data_file(data, meta)
        with contextlib.suppress(OSError):  # chunks a crash left after the merge (best effort: may be read-only)
            _remove_merged_chunks(self.path, int(meta["shots"]))
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
        """All raw rows, shape (shots, dim), memory-mapped read-only.

        If the bank grew since it was opened (its old data file is gone, e.g. in a DataLoader
        worker that unpickled this object), the new data file is opened by name instead; this
        object keeps serving its original ``len(self)`` rows, which growing never changes.
        """
        if self._raw is None:
            try:
                self._raw = np.load(self._data_path, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:
                self._raw = self._reopen_grown()
        return self._raw

    def _reopen_grown(self) -> np.ndarray:
        meta = _read_meta(self.path)
        old = self.metadata
        if (meta["fingerprint"] != old["fingerprint"] or int(meta["shots"]) < len(self) or meta["dim"] != old["dim"]
                or meta["dtype"] != old["dtype"] or not meta.get("data_file")):
            raise BankError(f"{self.path} was replaced by another bank while open; open it again")
        data = self.path / meta["data_file"]
        _check_data_file(data, meta)
        self._data_path = data
        self.metadata = dict(meta, shots=len(self), shape=[len(self), self.dim], grown_to=int(meta["shots"]))
        return np.load(data, mmap_mode="r", allow_pickle=False)[: len(self)]

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
        self.raw  # noqa: B018 - follows a bank that grew since it was opened
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
