"""Replay photon counts captured on hardware, so hardware runs plug in exactly like simulated ones.

File formats (one sample per row, one column per output mode, non-negative integer counts):

``.npz``  array ``samples`` (shots, m) plus optional metadata arrays: ``m`` (int), ``n_photons`` (int),
          ``input_modes`` (int array), ``postselected`` (bool: every row holds exactly ``n_photons``),
          ``min_detected`` (int: every row holds at least this many photons, e.g. a hardware run that
          filled every input and kept shots with >= k detections), ``unitary`` ((m, m) complex: the
          programmed interferometer), ``description`` (str).  Loaded with ``allow_pickle=False``, after
          checking the array sizes declared in the archive against ``max_bytes`` (a compressed archive
          can declare far more data than it occupies on disk).
``.npy``  the (shots, m) array only; give metadata to :class:`RecordedBackend` instead.
``.csv``  optional comment lines ``# key=value`` with the same keys (``input_modes=0;2;4``,
          ``postselected=true``, ``min_detected=16``), an optional header row of column names, then
          comma-separated rows.

Rows may hold different numbers of photons (lossy hardware); ``postselected`` or ``min_detected``
state, and are checked to state, the post-selection the rows went through.  Counts must be below
2**32 and a recorded unitary must be finite; anything else is a ``ValueError``.

:func:`write_recorded` writes ``.npz`` and ``.csv`` files atomically.
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .._atomic import atomic_write_bytes
from .._seeding import SeedLike, generator
from .._validation import as_int, count_dtype, input_mode_array
from ..circuits import as_unitary

__all__ = ["RecordedBackend", "RecordedSamples", "load_recorded", "write_recorded"]

_META_KEYS = ("m", "n_photons", "input_modes", "postselected", "min_detected", "unitary", "description")
_EXPECTED_KEYS = ("m", "n_photons", "input_modes", "postselected", "min_detected")
#: Default limit on the decoded size of a recorded file's arrays (bytes): 1 GiB.
DEFAULT_MAX_BYTES = 1 << 30
#: Photon counts must stay below this (they are stored as at most uint32).
_COUNT_LIMIT = 1 << 32


class RecordedSamples:
    """Validated samples and metadata of one recorded file.

    Attributes
    ----------
    samples : ndarray, shape (shots, m), unsigned integers
    m : int
    n_photons : int or None
    input_modes : ndarray of int64 or None
    postselected : bool
        Every row holds exactly ``n_photons`` photons.
    min_detected : int or None
        Every row holds at least this many photons (post-selection on "at least k").
    unitary : ndarray, shape (m, m), complex128, or None
    description : str
    path : str
    """

    def __init__(self, samples, *, path="<memory>", m=None, n_photons=None, input_modes=None,
                 postselected=False, min_detected=None, unitary=None, description=""):
        self.path = str(path)
        arr = np.asarray(samples)
        where = f"recorded samples {self.path!r}"
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"{where}: expected a non-empty 2-D array (shots, modes), got shape {arr.shape}")
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{where}: photon counts must be integers, got dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}: photon counts must be integers (found nan or inf)")
        if arr.min() < 0:
            raise ValueError(f"{where}: photon counts must be non-negative")
        # Range first, then cast: a cast would wrap (2**32 + 3 -> 3) or be undefined (floats).
        if arr.max() >= _COUNT_LIMIT:
            raise ValueError(f"{where}: photon count {arr.max()!r} is out of range (counts must be below 2**32)")
        if np.issubdtype(arr.dtype, np.floating):
            if not np.all(arr == np.round(arr)):
                raise ValueError(f"{where}: photon counts must be integers")
            arr = arr.astype(np.int64)
        self.m = arr.shape[1]
        if m is not None and as_int(m, "m", minimum=1) != self.m:
            raise ValueError(f"{where}: metadata says m={m} but the rows have {self.m} modes")
        self.samples = np.ascontiguousarray(arr, dtype=count_dtype(int(arr.max())))
        self.samples.setflags(write=False)
        self.n_photons = None if n_photons is None else as_int(n_photons, "n_photons", minimum=0)
        self.input_modes = None
        if input_modes is not None:
            self.input_modes = input_mode_array(list(np.asarray(input_modes).ravel()), None, self.m)
            if self.n_photons is not None and self.n_photons != self.input_modes.size:
                raise ValueError(
                    f"{where}: n_photons={self.n_photons} but {self.input_modes.size} input modes are recorded"
                )
            if self.n_photons is None:
                self.n_photons = int(self.input_modes.size)
        self.postselected = bool(postselected)
        if self.postselected:
            if self.n_photons is None:
                raise ValueError(f"{where}: postselected=true needs n_photons or input_modes")
            totals = self.samples.sum(axis=1, dtype=np.int64)
            bad = np.flatnonzero(totals != self.n_photons)
            if bad.size:
                raise ValueError(
                    f"{where}: post-selected on {self.n_photons} photons but row {int(bad[0])} holds "
                    f"{int(totals[bad[0]])} ({bad.size} rows disagree)"
                )
        self.min_detected = None
        if min_detected is not None:
            self.min_detected = as_int(min_detected, "min_detected", minimum=0)
            totals = self.samples.sum(axis=1, dtype=np.int64)
            bad = np.flatnonzero(totals < self.min_detected)
            if bad.size:
                raise ValueError(
                    f"{where}: post-selected on at least {self.min_detected} photons but row {int(bad[0])} holds "
                    f"{int(totals[bad[0]])} ({bad.size} rows disagree)"
                )
        self.unitary = None
        if unitary is not None:
            try:
                u = np.asarray(unitary, dtype=np.complex128)
            except (TypeError, ValueError):
                raise ValueError(f"{where}: recorded unitary is not a complex matrix") from None
            if u.shape != (self.m, self.m):
                raise ValueError(f"{where}: recorded unitary has shape {u.shape}, expected {(self.m, self.m)}")
            if not np.all(np.isfinite(u)):
                # A nan entry would make every comparison with it false and so switch off the circuit check.
                raise ValueError(f"{where}: recorded unitary has non-finite (nan or inf) entries")
            self.unitary = u
        self.description = str(description)

    @property
    def shots(self) -> int:
        return int(self.samples.shape[0])

    @property
    def postselection(self) -> str:
        """The post-selection rule the rows went through, in words (``"none"`` when not recorded)."""
        rules = []
        if self.postselected:
            rules.append(f"exactly {self.n_photons} detected photons")
        if self.min_detected is not None:
            rules.append(f"at least {self.min_detected} detected photons")
        return " and ".join(rules) if rules else "none"

    def metadata(self) -> dict:
        return {
            "m": self.m, "n_photons": self.n_photons,
            "input_modes": None if self.input_modes is None else self.input_modes.tolist(),
            "postselected": self.postselected, "min_detected": self.min_detected,
            "postselection": self.postselection, "description": self.description,
            "has_unitary": self.unitary is not None,
        }


def _scalar(value):
    arr = np.asarray(value)
    return arr.item() if arr.ndim == 0 else arr


def _parse_bool(text: str, key: str, path) -> bool:
    low = str(text).strip().lower()
    if low in ("1", "true", "yes"):
        return True
    if low in ("0", "false", "no", ""):
        return False
    raise ValueError(f"recorded file {str(path)!r}: {key} must be true or false, got {text!r}")


def _load_csv(path: Path) -> dict:
    meta: dict = {}
    rows: list = []
    with open(path, "r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text:
                continue
            if text.startswith("#"):
                body = text[1:].strip()
                if "=" in body:
                    key, _, value = body.partition("=")
                    key = key.strip()
                    if key in _META_KEYS:
                        meta[key] = value.strip()
                continue
            fields = [f.strip() for f in text.split(",")]
            try:
                rows.append([int(f) for f in fields])
            except ValueError:
                if not rows and all(f and not f.lstrip("-").isdigit() for f in fields):
                    continue  # a header row of column names
                raise ValueError(f"recorded file {str(path)!r}, line {lineno}: not a row of integers: {text[:80]!r}") from None
    if rows and len({len(r) for r in rows}) != 1:
        raise ValueError(f"recorded file {str(path)!r}: rows have different numbers of columns")
    out: dict = {"samples": np.array(rows, dtype=np.int64).reshape(len(rows), -1 if rows else 0)}
    try:
        if "m" in meta:
            out["m"] = int(meta["m"])
        if "n_photons" in meta:
            out["n_photons"] = int(meta["n_photons"])
        if "min_detected" in meta:
            out["min_detected"] = int(meta["min_detected"])
        if "input_modes" in meta:
            out["input_modes"] = [int(v) for v in meta["input_modes"].replace(";", " ").replace(",", " ").split()]
    except ValueError as exc:
        raise ValueError(f"recorded file {str(path)!r}: bad metadata: {exc}") from None
    if "postselected" in meta:
        out["postselected"] = _parse_bool(meta["postselected"], "postselected", path)
    if "description" in meta:
        out["description"] = meta["description"]
    return out


def _declared_bytes(fh, name: str) -> int:
    """Decoded size in bytes that a ``.npy`` stream declares in its header (the data is not read)."""
    from numpy.lib import format as npy_format

    version = npy_format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = npy_format.read_array_header_1_0(fh)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = npy_format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"array {name!r} has an unsupported .npy version {version}")
    if dtype.hasobject:
        raise ValueError(f"array {name!r} holds Python objects; recorded files hold numbers only")
    return math.prod(int(d) for d in shape) * max(1, dtype.itemsize)


def _check_declared_sizes(path: Path, max_bytes: int) -> None:
    """Refuse archives whose arrays, as declared in their headers, would decode to over ``max_bytes``."""
    total = 0
    if path.suffix.lower() == ".npy":
        with open(path, "rb") as fh:
            total = _declared_bytes(fh, path.name)
    else:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                with zf.open(info) as fh:
                    total += _declared_bytes(fh, info.filename)
                if total > max_bytes:
                    break
    if total > max_bytes:
        raise ValueError(
            f"recorded file {str(path)!r} declares {total} bytes of arrays, over the limit of {max_bytes} "
            "(pass a larger max_bytes if the file is trusted)"
        )


def load_recorded(path, *, max_bytes: int = DEFAULT_MAX_BYTES, **expected) -> RecordedSamples:
    """Read and validate a recorded file (``.npz``, ``.npy`` or ``.csv``).

    ``expected`` metadata (``m``, ``n_photons``, ``input_modes``, ``postselected``, ``min_detected``) fills
    in what the file lacks and must agree with what it holds (``ValueError`` otherwise).  ``max_bytes``
    bounds the decoded size of the arrays of a ``.npz``/``.npy`` file, checked from their headers before
    anything is decompressed.
    """
    path = Path(path)
    max_bytes = as_int(max_bytes, "max_bytes", minimum=1)
    if not path.is_file():
        raise FileNotFoundError(f"recorded samples file not found: {str(path)!r}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".npz", ".npy"):
            _check_declared_sizes(path, max_bytes)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "samples" not in z.files:
                    raise ValueError(f"recorded file {str(path)!r} has no 'samples' array (found {z.files})")
                data = {k: (z[k] if k in ("samples", "unitary", "input_modes") else _scalar(z[k]))
                        for k in z.files if k == "samples" or k in _META_KEYS}
        elif suffix == ".npy":
            data = {"samples": np.load(path, allow_pickle=False)}
        elif suffix == ".csv":
            data = _load_csv(path)
        else:
            raise ValueError(f"recorded samples must be .npz, .npy or .csv, got {str(path)!r}")
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        if isinstance(exc, ValueError) and str(path) in str(exc):
            raise
        raise ValueError(f"cannot read recorded samples {str(path)!r}: {exc}") from None
    for key, value in expected.items():
        if key not in _EXPECTED_KEYS:
            raise TypeError(f"unknown metadata {key!r}")
        if value is None:
            continue
        if key not in data or data[key] is None:
            data[key] = value
            continue
        recorded = data[key]
        same = (
            np.array_equal(np.asarray(recorded).ravel(), np.asarray(value).ravel())
            if key == "input_modes" else recorded == value
        )
        if not same:
            raise ValueError(f"recorded file {str(path)!r} has {key}={np.asarray(recorded).tolist()}, expected {value!r}")
    if "description" in data:
        data["description"] = str(data["description"])
    return RecordedSamples(data.pop("samples"), path=path, **data)


def write_recorded(
    path,
    samples,
    *,
    input_modes: Optional[Sequence[int]] = None,
    n_photons: Optional[int] = None,
    postselected: bool = False,
    min_detected: Optional[int] = None,
    unitary=None,
    description: str = "",
) -> Path:
    """Write samples and metadata to ``path`` (``.npz`` or ``.csv``) atomically; validates first.

    Returns the path.  ``unitary`` is stored only in ``.npz`` files.
    """
    path = Path(path)
    rec = RecordedSamples(samples, path=path, n_photons=n_photons, input_modes=input_modes,
                          postselected=postselected, min_detected=min_detected,
                          unitary=None if unitary is None else as_unitary(unitary),
                          description=description)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        arrays = {"samples": rec.samples, "m": np.int64(rec.m), "postselected": np.bool_(rec.postselected),
                  "description": np.str_(rec.description)}
        if rec.n_photons is not None:
            arrays["n_photons"] = np.int64(rec.n_photons)
        if rec.input_modes is not None:
            arrays["input_modes"] = rec.input_modes
        if rec.min_detected is not None:
            arrays["min_detected"] = np.int64(rec.min_detected)
        if rec.unitary is not None:
            arrays["unitary"] = rec.unitary
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        payload = buf.getvalue()
    elif suffix == ".csv":
        if rec.unitary is not None:
            raise ValueError("a .csv file cannot hold the unitary; write .npz")
        lines = [f"# m={rec.m}", f"# postselected={'true' if rec.postselected else 'false'}"]
        if rec.n_photons is not None:
            lines.append(f"# n_photons={rec.n_photons}")
        if rec.min_detected is not None:
            lines.append(f"# min_detected={rec.min_detected}")
        if rec.input_modes is not None:
            lines.append("# input_modes=" + ";".join(str(int(v)) for v in rec.input_modes))
        if rec.description:
            lines.append(f"# description={rec.description.splitlines()[0]}")
        lines.append(",".join(f"mode{i}" for i in range(rec.m)))
        body = "\n".join(",".join(map(str, row)) for row in rec.samples.tolist())
        payload = ("\n".join(lines) + "\n" + body + "\n").encode("utf-8")
    else:
        raise ValueError(f"write .npz or .csv, got {str(path)!r}")
    atomic_write_bytes(path, payload)
    return path


class RecordedBackend:
    """Replays recorded photon counts through the backend protocol.

    Parameters
    ----------
    path : str or Path
        A ``.npz``, ``.npy`` or ``.csv`` file (see the module notes).
    m, n_photons, input_modes, postselected, min_detected : optional
        Expected metadata: fills in what the file lacks, must agree with what it holds
        (``min_detected=k``: every row must hold at least k photons; rows may differ in photon number).
    max_bytes : int
        Largest decoded size of the file's arrays, checked before loading (default 1 GiB).
    cycle : bool
        Wrap around when more rows are asked for than the file holds (default: ``ValueError``).
    unitary_atol : float
        When the file records its unitary, the circuit passed to :meth:`sample` must match it entry-wise
        within this tolerance (``None`` skips the check).

    ``sample(circuit, input_modes, shots, seed, start=0)`` returns rows ``start .. start + shots - 1`` of
    the file, in file order when ``seed`` is None, else in the order of a permutation drawn from
    ``seed``; the same (seed, start) always gives the same rows.
    """

    name = "recorded"

    def __init__(self, path, *, m: Optional[int] = None, n_photons: Optional[int] = None,
                 input_modes: Optional[Sequence[int]] = None, postselected: Optional[bool] = None,
                 min_detected: Optional[int] = None, cycle: bool = False,
                 unitary_atol: Optional[float] = 1e-6, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.data = load_recorded(path, m=m, n_photons=n_photons, input_modes=input_modes,
                                  postselected=postselected, min_detected=min_detected, max_bytes=max_bytes)
        self.cycle = bool(cycle)
        self.unitary_atol = None if unitary_atol is None else float(unitary_atol)

    def __repr__(self) -> str:
        return f"RecordedBackend({self.data.path!r}, shots={self.data.shots}, m={self.data.m})"

    @property
    def shots_available(self) -> int:
        return self.data.shots

    def sample(self, unitary_or_circuit, input_modes: Sequence[int], shots: int, seed: SeedLike = None,
               *, start: int = 0) -> np.ndarray:
        """Recorded rows, shape (shots, m) (see the class notes for which rows)."""
        shots = as_int(shots, "shots", minimum=0)
        start = as_int(start, "start", minimum=0)
        d = self.data
        if unitary_or_circuit is not None:
            u = as_unitary(unitary_or_circuit)
            if u.shape[0] != d.m:
                raise ValueError(f"the circuit has {u.shape[0]} modes but {d.path!r} recorded {d.m}")
            if d.unitary is not None and self.unitary_atol is not None:
                err = float(np.max(np.abs(u - d.unitary)))
                if not err <= self.unitary_atol:  # nan-safe
                    raise ValueError(
                        f"{d.path!r} was recorded with a different interferometer (max entry difference {err:.3g})"
                    )
        modes = input_mode_array(input_modes, None, d.m)
        if d.input_modes is not None and not np.array_equal(modes, d.input_modes):
            raise ValueError(f"{d.path!r} was recorded with input modes {d.input_modes.tolist()}, not {modes.tolist()}")
        if d.input_modes is None and d.n_photons is not None and modes.size != d.n_photons:
            raise ValueError(f"{d.path!r} recorded {d.n_photons} photons, not {modes.size}")
        if not self.cycle and start + shots > d.shots:
            raise ValueError(
                f"{d.path!r} holds {d.shots} samples; rows {start}..{start + shots - 1} were asked for "
                "(pass cycle=True to wrap around)"
            )
        rows = np.arange(start, start + shots, dtype=np.int64) % d.shots
        if seed is not None:
            rows = generator(seed).permutation(d.shots)[rows]
        return d.samples[rows].copy()
