"""QM9 (and user molecule sets) as canonical SMILES and as cached dense graphs.

Sources, in :func:`load_qm9_graphs` and :func:`load_smiles`:

* ``None`` (default): the PyPI package ``qm9pack`` (130,831 molecules, no download).
  Its CSVs are read directly; ``import qm9pack`` itself fails with setuptools >= 82
  because it imports ``pkg_resources``.
* a local file: ``.smi``/``.txt`` (first token per line), ``.csv`` (the column named
  ``smiles``, any case, or the only column) or ``.sdf``; any of them may end in ``.gz``.
* a URL (``http(s)://``, ``file://``) with its SHA-256: downloaded once into
  ``<cache>/downloads/`` and checked before use.

Processed graphs are cached in ``<cache>/qm9/`` (default cache ``~/.cache/qboson``,
overridden by ``$QBOSON_CACHE`` or ``cache_dir=``) as a checksummed ``.npz`` written
atomically.  A damaged cache file is **rebuilt** (with a :class:`CacheRebuildWarning`);
the train/validation/test split is not cached: it is recomputed from the seed.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import io
import json
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Union

import numpy as np

from ._cache import CorruptCacheError, PathLike, atomic_write_bytes, read_npz, resolve_cache_dir, write_npz
from ._deps import quiet_rdkit, require_rdkit
from .graphs import MAX_ATOMS, featurise

__all__ = [
    "QM9Graphs",
    "CacheRebuildWarning",
    "qm9pack_csv_paths",
    "load_qm9_smiles",
    "load_smiles",
    "fetch_url",
    "load_qm9_graphs",
    "split_indices",
]

_GRAPH_FORMAT = 1  # bump when featurisation or the cache layout changes
_QM9_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_URL_SCHEMES = ("http", "https", "ftp", "file")
Source = Union[str, "PathLike", None]


class CacheRebuildWarning(RuntimeWarning):
    """A cache file was damaged or stale and has been rebuilt."""


@dataclass
class QM9Graphs:
    """Dense graphs of a molecule set with a deterministic split.

    Attributes:
        nodes: (N, 9) int64 atom classes (see :data:`qboson.chem.ATOM_TYPES`).
        adjacency: (N, 9, 9) int64 bond classes (see :data:`qboson.chem.BOND_TYPES`).
        smiles: N canonical SMILES (no stereo), row i is the molecule of graph i.
        train_idx, val_idx, test_idx: disjoint int64 index arrays covering 0..N-1.
        n_dropped: molecules of the source that are not in the set (unparsable or not
            representable), counted after removing duplicate canonical SMILES.
        drop_reasons: reason -> count, summing to ``n_dropped``.
        n_read: SMILES entries read from the source; n_duplicates: entries removed as duplicates.
        source: description of where the molecules came from.
    """

    nodes: np.ndarray
    adjacency: np.ndarray
    smiles: list[str]
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    n_dropped: int
    drop_reasons: dict[str, int] = field(default_factory=dict)
    n_read: int = 0
    n_duplicates: int = 0
    source: str = ""

    def __len__(self) -> int:
        return len(self.smiles)

    def split_smiles(self, split: str) -> list[str]:
        """SMILES of ``split`` ("train", "val" or "test"), in index order."""
        idx = {"train": self.train_idx, "val": self.val_idx, "test": self.test_idx}.get(split)
        if idx is None:
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        return [self.smiles[i] for i in idx]


# --------------------------------------------------------------------------- reading SMILES


def qm9pack_csv_paths() -> list[Path]:
    """Paths of the three QM9 CSV files shipped in the ``qm9pack`` package (without importing it)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("QM9 comes from the PyPI package qm9pack, which is not installed "
                          "(pip install 'qboson[chem]', or pass a SMILES/CSV/SDF file or URL)")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    paths = [data / name for name in _QM9_PARTS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"qm9pack is installed but its data files are missing: {missing}")
    return paths


def _read_csv_column(fh: IO[str], column: str | None, name: str) -> list[str]:
    csv.field_size_limit(1 << 30)  # qm9pack rows carry long coordinate/frequency fields
    reader = csv.reader(fh)
    try:
        header = next(reader)
    except StopIteration:
        return []
    lowered = [h.strip().lower() for h in header]
    if column is not None:
        if column not in header:
            raise ValueError(f"{name}: no column {column!r}; columns are {header}")
        index = header.index(column)
    elif "smiles" in lowered:
        index = lowered.index("smiles")
    elif len(header) == 1:
        index = 0
    else:
        raise ValueError(f"{name}: cannot tell which column holds SMILES (columns {header}); "
                         "name it 'smiles' or pass column=")
    return [row[index].strip() for row in reader if len(row) > index and row[index].strip()]


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _read_raw_smiles(path: Path, column: str | None = None) -> list[str]:
    """SMILES entries of a local file, as written (not canonicalised)."""
    if not path.is_file():
        raise FileNotFoundError(f"molecule file not found: {path}")
    suffixes = [s.lower() for s in path.suffixes]
    kind = suffixes[-2] if suffixes and suffixes[-1] == ".gz" and len(suffixes) > 1 else (
        suffixes[-1] if suffixes else "")
    if kind == ".csv":
        with _open_text(path) as fh:
            return _read_csv_column(fh, column, str(path))
    if kind == ".sdf":
        Chem = require_rdkit()
        opener = gzip.open if suffixes[-1] == ".gz" else open
        out = []
        with opener(path, "rb") as fh, quiet_rdkit():
            for mol in Chem.ForwardSDMolSupplier(fh):
                out.append("" if mol is None else Chem.MolToSmiles(mol))
        return out
    if kind in (".smi", ".smiles", ".txt", ""):
        out = []
        with _open_text(path) as fh:
            for line in fh:
                parts = line.split()
                if parts:
                    out.append(parts[0])
        if out and out[0].lower() == "smiles":
            out = out[1:]
        return out
    raise ValueError(f"{path}: unknown molecule file type {kind!r} (expected .smi, .txt, .csv or .sdf, "
                     "optionally .gz)")


def _read_qm9pack() -> list[str]:
    out: list[str] = []
    for path in qm9pack_csv_paths():
        with open(path, encoding="utf-8", newline="") as fh:
            out.extend(_read_csv_column(fh, "SMILES", str(path)))
    return out


def _canonical_unique(raw: Iterable[str]) -> tuple[list[str], int, int]:
    """(canonical unique SMILES in first-seen order, number unparsable, number of duplicates)."""
    Chem = require_rdkit()
    seen: set[str] = set()
    out: list[str] = []
    n_bad = n_dup = 0
    with quiet_rdkit():
        for s in raw:
            mol = Chem.MolFromSmiles(s) if s else None
            if mol is None or mol.GetNumAtoms() == 0:
                n_bad += 1
                continue
            can = Chem.MolToSmiles(mol, isomericSmiles=False)
            if can in seen:
                n_dup += 1
                continue
            seen.add(can)
            out.append(can)
    return out, n_bad, n_dup


def _is_url(source: object) -> bool:
    return isinstance(source, str) and urllib.parse.urlparse(source).scheme in _URL_SCHEMES


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_url(url: str, sha256: str, cache_dir: PathLike | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` once into ``<cache>/downloads/`` and return the local path.

    The file is kept only if its SHA-256 equals ``sha256`` (hex); a cached copy is re-checked on
    every call and downloaded again if it no longer matches.  Raises ValueError on a mismatch.
    """
    if not isinstance(sha256, str) or len(sha256) != 64 or any(c not in "0123456789abcdef"
                                                               for c in sha256.lower()):
        raise ValueError("a URL source needs its SHA-256 as 64 hex digits (sha256=...)")
    sha256 = sha256.lower()
    name = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name or "download"
    target = resolve_cache_dir(cache_dir) / "downloads" / f"{sha256[:16]}-{name}"
    if target.is_file() and _sha256_file(target) == sha256:
        return target
    digest = hashlib.sha256()

    def write(fh: IO[bytes]) -> None:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - user-supplied URL
            while True:
                block = response.read(1 << 20)
                if not block:
                    break
                digest.update(block)
                fh.write(block)
        if digest.hexdigest() != sha256:
            raise ValueError(f"download of {url} has SHA-256 {digest.hexdigest()}, expected {sha256}")

    atomic_write_bytes(target, write)
    return target


def _resolve_source(source: Source, sha256: str | None, cache_dir: PathLike | None) -> Path | None:
    if source is None:
        return None
    if _is_url(source):
        if sha256 is None:
            raise ValueError(f"a URL source needs sha256=...: {source}")
        return fetch_url(str(source), sha256, cache_dir)
    path = Path(source).expanduser()
    if sha256 is not None and _sha256_file(path) != sha256.lower():
        raise ValueError(f"{path} does not have the SHA-256 {sha256}")
    return path


def load_qm9_smiles() -> list[str]:
    """Canonical (no stereo), deduplicated QM9 SMILES from ``qm9pack``, in the package's order.

    qm9pack holds 130,831 entries; a few are the same molecule written as two Kekulé forms.
    Takes a few seconds (reading the CSVs and canonicalising with RDKit).
    """
    return _canonical_unique(_read_qm9pack())[0]


def load_smiles(source: PathLike, *, sha256: str | None = None, cache_dir: PathLike | None = None,
                column: str | None = None) -> list[str]:
    """Canonical, deduplicated SMILES from a SMILES/CSV/SDF file or a URL (with ``sha256``).

    Entries RDKit cannot parse are skipped with a warning that gives their number.
    """
    path = _resolve_source(source, sha256, cache_dir)
    assert path is not None
    smiles, n_bad, _ = _canonical_unique(_read_raw_smiles(path, column))
    if n_bad:
        warnings.warn(f"{path}: skipped {n_bad} entries that RDKit cannot parse", stacklevel=2)
    return smiles


# --------------------------------------------------------------------------- graphs and cache


def split_indices(n: int, seed: int, val_fraction: float, test_fraction: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic (train, val, test) index arrays of a permutation of ``range(n)``.

    Sizes: ``round(val_fraction * n)`` and ``round(test_fraction * n)``; the rest is training.
    Each array is sorted.  The permutation comes from ``numpy.random.default_rng(seed)``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not (isinstance(frac, (int, float)) and 0.0 <= frac < 1.0):
            raise ValueError(f"{name} must be a number in [0, 1), got {frac!r}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction}")
    perm = np.random.default_rng(np.random.SeedSequence(int(seed))).permutation(n)
    n_val = int(round(val_fraction * n))
    n_test = int(round(test_fraction * n))
    val = np.sort(perm[:n_val])
    test = np.sort(perm[n_val:n_val + n_test])
    train = np.sort(perm[n_val + n_test:])
    return train.astype(np.int64), val.astype(np.int64), test.astype(np.int64)


def _source_key(path: Path | None) -> tuple[str, str]:
    """(cache-key digest, human description) identifying the source's content."""
    if path is None:
        from importlib import metadata

        try:
            version = metadata.version("qm9pack")
        except metadata.PackageNotFoundError:
            version = "unknown"
        parts = [f"{p.name}:{p.stat().st_size}" for p in qm9pack_csv_paths()]
        ident = f"qm9pack-{version}|" + "|".join(parts)
        description = f"qm9pack {version}"
    else:
        ident = f"file|{_sha256_file(path)}"
        description = str(path)
    ident += f"|format{_GRAPH_FORMAT}|max{MAX_ATOMS}"
    return hashlib.sha256(ident.encode()).hexdigest()[:20], description


def _build_graphs(path: Path | None, column: str | None) -> dict[str, np.ndarray]:
    raw = _read_qm9pack() if path is None else _read_raw_smiles(path, column)
    smiles, n_bad, n_dup = _canonical_unique(raw)
    reasons: dict[str, int] = {"unparsable": n_bad} if n_bad else {}
    kept_nodes, kept_adj, kept_smiles = [], [], []
    for s in smiles:
        graph = featurise(s)
        if isinstance(graph, str):
            reasons[graph] = reasons.get(graph, 0) + 1
            continue
        kept_nodes.append(graph[0])
        kept_adj.append(graph[1])
        kept_smiles.append(s)
    n = len(kept_smiles)
    nodes = np.stack(kept_nodes).astype(np.uint8) if n else np.zeros((0, MAX_ATOMS), np.uint8)
    adjacency = (np.stack(kept_adj).astype(np.uint8) if n
                 else np.zeros((0, MAX_ATOMS, MAX_ATOMS), np.uint8))
    meta = {"n_read": len(raw), "n_duplicates": n_dup, "drop_reasons": reasons, "format": _GRAPH_FORMAT}
    return {"nodes": nodes, "adjacency": adjacency, "smiles": np.array(kept_smiles, dtype=str),
            "meta": np.array(json.dumps(meta, sort_keys=True))}


def load_qm9_graphs(cache_dir: PathLike | None = None, seed: int = 0, val_fraction: float = 0.1,
                    test_fraction: float = 0.1, *, source: Source = None, sha256: str | None = None,
                    column: str | None = None, use_cache: bool = True) -> QM9Graphs:
    """Dense graphs of QM9 (or ``source``) with a deterministic train/val/test split.

    Args:
        cache_dir: cache root (default ``$QBOSON_CACHE`` or ``~/.cache/qboson``).
        seed: non-negative int; the split depends only on it and the molecule set.
        val_fraction, test_fraction: split sizes (rounded); the rest is training.
        source: None for qm9pack, or a SMILES/CSV/SDF path, or a URL (needs ``sha256``).
        use_cache: False to neither read nor write the processed-graph cache.

    The first call for a source builds the graphs (about 20 s for full QM9) and caches them;
    later calls load the cache in well under a second.  A corrupt cache is rebuilt with a
    :class:`CacheRebuildWarning`.
    """
    split_indices(0, seed, val_fraction, test_fraction)  # validate the arguments before any work
    path = _resolve_source(source, sha256, cache_dir)
    key, description = _source_key(path)
    cache_file = resolve_cache_dir(cache_dir) / "qm9" / f"graphs-{key}.npz"
    arrays = None
    if use_cache and cache_file.exists():
        try:
            arrays = read_npz(cache_file)
            if set(arrays) != {"nodes", "adjacency", "smiles", "meta"}:
                raise CorruptCacheError(f"cache file {cache_file} has unexpected contents {sorted(arrays)}")
        except CorruptCacheError as exc:
            warnings.warn(f"{exc}; rebuilding it", CacheRebuildWarning, stacklevel=2)
            arrays = None
    if arrays is None:
        arrays = _build_graphs(path, column)
        if use_cache:
            write_npz(cache_file, arrays)
    meta = json.loads(str(arrays["meta"]))
    smiles = [str(s) for s in arrays["smiles"]]
    train, val, test = split_indices(len(smiles), seed, val_fraction, test_fraction)
    reasons = {str(k): int(v) for k, v in meta["drop_reasons"].items()}
    return QM9Graphs(
        nodes=arrays["nodes"].astype(np.int64),
        adjacency=arrays["adjacency"].astype(np.int64),
        smiles=smiles,
        train_idx=train,
        val_idx=val,
        test_idx=test,
        n_dropped=sum(reasons.values()),
        drop_reasons=reasons,
        n_read=int(meta["n_read"]),
        n_duplicates=int(meta["n_duplicates"]),
        source=description,
    )
