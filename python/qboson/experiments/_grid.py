"""Resumable experiment grids: one result file per cell, atomic writes, summary tables.

A *cell* is a mapping of a few named coordinates (``{"dataset": "quantum",
"latent": "gaussian", "seed": 3}``).  A :class:`ResultStore` keeps one JSON file per
finished cell in an output folder, together with ``settings.json``, the settings that
produced them.  Re-running an experiment with the same folder skips finished cells;
running it with different settings raises instead of mixing results.  Every file is
written to a temporary name and moved into place with :func:`os.replace`, so an
interrupted run leaves either a whole file or none.

:func:`summarise` turns results into rows of mean ± standard error (sample standard
deviation over cells divided by √n), and :func:`write_table` writes them as Markdown
and CSV.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from .. import _atomic
from .._outdir import claim_output_dir

__all__ = [
    "ResultStore",
    "atomic_write_bytes",
    "atomic_write_text",
    "cell_name",
    "mean_sem",
    "summarise",
    "format_markdown",
    "write_table",
    "derive_seed",
    "chunks",
    "stack_id",
]

_SAFE = re.compile(r"^[A-Za-z0-9_.+-]+$")
# every name a ResultStore folder holds (before the output manifest existed)
_STORE_ENTRY = re.compile(r"^(settings\.json|cells|checkpoints|table(_iter\d+)?\.(md|csv)|scatter_iter\d+\.png|\..+\.tmp-.+)$")


def atomic_write_bytes(path: os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + os.replace; :mod:`qboson._atomic`)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    _atomic.atomic_write_bytes(path, bytes(data))


def atomic_write_text(path: os.PathLike, text: str) -> None:
    """Atomic UTF-8 text write, see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def add_training_arguments(parser, *, data_flag: str, data_help: str, stack_help: str,
                           optimizer: bool = False) -> None:
    """The GAN-training flags shared by ``qboson experiment synthetic`` and ``mog`` (all optional:
    an omitted flag keeps the profile's value)."""
    parser.add_argument("--latents", nargs="+", help="latent kinds (qboson.latent.KINDS)")
    parser.add_argument("--hidden", type=int, nargs="+", help="hidden widths of generator and critic")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--critic-steps", type=int)
    parser.add_argument("--lr", type=float)
    if optimizer:
        parser.add_argument("--optimizer", choices=["rmsprop", "adam"])
    parser.add_argument("--objective", choices=["wgan-gp", "nonsaturating"])
    parser.add_argument("--gp-weight", type=float)
    parser.add_argument(data_flag, type=int, help=data_help)
    parser.add_argument("--n-latent", type=int, help="latent bank rows per cell")
    parser.add_argument("--n-gen", type=int, help="generated points/vectors per evaluation")
    parser.add_argument("--stack", type=int, help=stack_help)
    parser.add_argument("--precision", choices=["fp32", "bf16"],
                        help="network products in fp32 (default) or bf16 (torch.autocast; faster on GPUs and CPUs with AMX or AVX512-BF16, several times slower on other CPUs)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def resolve_settings(profile: dict, args, *, flags: Sequence[str], counts: Sequence[str], dim: int) -> dict:
    """The settings of ``qboson experiment synthetic`` / ``mog``: ``profile`` overridden by the given
    ``flags`` (argument names), the ``counts`` checked >= 1, ``--seed``, ``--latent-bank``,
    ``--eval-at`` (kept inside the run) and ``--precision`` resolved.  ValueError names a bad flag."""
    from . import _banks

    s = dict(profile)
    for key in flags:
        v = getattr(args, key, None)
        if v is not None:
            s[key] = list(v) if isinstance(v, (list, tuple)) else v
    s["seed"] = int(args.seed)
    for key in counts:
        if int(s[key]) < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be >= 1, got {s[key]}")
    if s["seed"] < 0:
        raise ValueError(f"--seed must be >= 0, got {s['seed']}")
    banks = _banks.resolve(getattr(args, "latent_bank", None), dim)
    if banks:
        s["latent_banks"] = banks
    _banks.check_latents(s["latents"], banks)
    s["eval_at"] = sorted({int(i) for i in s["eval_at"] if 0 < int(i) < s["iterations"]})
    # --precision: recorded only for bf16, so grids made before the flag resume
    precision = getattr(args, "precision", None) or s.get("precision", "fp32")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"unknown precision {precision!r}; choose fp32 or bf16")
    s.pop("precision", None)
    if precision == "bf16":
        s["precision"] = "bf16"
    return s


def run_experiment(name: str, args, resolve_settings, run_grid, count_key: str) -> int:
    """The ``run(args)`` entry point shared by ``qboson experiment synthetic`` and ``mog``:
    resolve and check the settings, train the grid, print the table; returns the exit code
    (2 for bad settings, a settings mismatch or a corrupt result or checkpoint)."""
    import sys

    import torch

    try:
        settings = resolve_settings(args)
        torch.set_num_threads(max(1, int(args.threads)))
        out = Path(args.out)
        records = run_grid(settings, out, stack=args.stack, progress=not args.no_progress)
    except ValueError as exc:
        print(f"qboson experiment {name}: {exc}", file=sys.stderr)
        return 2
    print((out / "table.md").read_text(encoding="utf-8") if records else "(no results)\n")
    print(f"results in {out}/ (settings {json.dumps({k: settings[k] for k in (count_key, 'iterations')})})")
    return 0


def cell_name(cell: Mapping[str, Any]) -> str:
    """File-name stem of a cell: ``key=value`` pairs joined by ``__`` in the cell's order.

    Keys and values must be made of letters, digits and ``_ . + -`` (ValueError otherwise).
    """
    if not cell:
        raise ValueError("a cell needs at least one coordinate")
    parts = []
    for k, v in cell.items():
        k, v = str(k), str(v)
        if not _SAFE.match(k) or not _SAFE.match(v) or "__" in k or "__" in v:
            raise ValueError(f"cell coordinate {k}={v!r} must use letters, digits and _ . + - only (no '__')")
        parts.append(f"{k}={v}")
    return "__".join(parts)


def _canonical(obj: Any) -> Any:
    """JSON round trip, so tuples and lists compare equal."""
    return json.loads(json.dumps(obj, sort_keys=True))


def _looks_like_store(folder: Path) -> bool:
    """A result folder written before output manifests: settings.json and only names a store writes."""
    names = [p.name for p in folder.iterdir()]
    return "settings.json" in names and all(_STORE_ENTRY.match(n) for n in names)


class ResultStore:
    """One JSON file per finished cell in ``folder``, plus ``settings.json``.

    Args:
        folder: output folder (created if missing).  It must be missing, empty or an
            earlier output of the same ``kind`` (:func:`qboson._outdir.claim_output_dir`):
            a folder holding other files raises ValueError and is left untouched.
        settings: JSON-serialisable settings of the experiment.  If the folder already
            holds a ``settings.json`` that differs, ValueError names the differing keys.
        kind: what the folder holds, e.g. ``"experiment-mog"`` (recorded in its manifest).
    """

    SETTINGS = "settings.json"

    def __init__(self, folder: os.PathLike, settings: Mapping[str, Any], kind: str = "experiment") -> None:
        self.folder = claim_output_dir(folder, kind, manifest=_looks_like_store)
        self.cells_folder = self.folder / "cells"
        self.settings = _canonical(dict(settings))
        path = self.folder / self.SETTINGS
        if path.exists():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError) as exc:
                raise ValueError(f"{path} is unreadable or corrupt: {exc}") from exc
            if not isinstance(old, dict):
                raise ValueError(f"{path} is corrupt: not a JSON object of settings")
            if old != self.settings:
                keys = sorted(set(old) | set(self.settings))
                diff = [k for k in keys if old.get(k) != self.settings.get(k)]
                raise ValueError(
                    f"{self.folder} holds results made with different settings (differing: {', '.join(diff)}); "
                    "use another output folder or remove it"
                )
        else:
            atomic_write_text(path, json.dumps(self.settings, indent=2, sort_keys=True) + "\n")

    def path(self, cell: Mapping[str, Any], suffix: str = ".json") -> Path:
        return self.cells_folder / (cell_name(cell) + suffix)

    def load(self, cell: Mapping[str, Any]) -> Optional[dict]:
        """The stored result of ``cell``, or None if it has not finished.

        A file that is not valid JSON, or that belongs to another cell, raises ValueError.
        """
        path = self.path(cell)
        if not path.exists():
            return None
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise ValueError(f"result file {path} is corrupt ({exc}); delete it to recompute that cell") from exc
        if not isinstance(result, dict) or result.get("cell") != _canonical(dict(cell)):
            raise ValueError(f"result file {path} does not hold the result of cell {dict(cell)}; delete it")
        evals = result.get("evaluations", [])
        if not isinstance(evals, list) or not all(
            isinstance(e, dict) and isinstance(e.get("iteration"), int) and not isinstance(e.get("iteration"), bool)
            for e in evals
        ):
            raise ValueError(f"result file {path} is corrupt: 'evaluations' must be a list of objects with an "
                             "integer 'iteration'; delete it to recompute that cell")
        return result

    def save(self, cell: Mapping[str, Any], result: Mapping[str, Any]) -> Path:
        """Store ``result`` (a JSON-serialisable mapping) for ``cell``, atomically; returns the path."""
        record = dict(result)
        record["cell"] = dict(cell)
        text = json.dumps(_canonical(record), indent=1, sort_keys=True, allow_nan=True) + "\n"
        path = self.path(cell)
        atomic_write_text(path, text)
        return path

    def pending(self, cells: Iterable[Mapping[str, Any]]) -> list[dict]:
        """The cells without a stored result, in the given order."""
        return [dict(c) for c in cells if self.load(c) is None]

    def results(self, cells: Iterable[Mapping[str, Any]]) -> list[dict]:
        """Stored results of the finished cells among ``cells``, in the given order."""
        out = []
        for c in cells:
            r = self.load(c)
            if r is not None:
                out.append(r)
        return out


def mean_sem(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, standard error of the mean, n) of the finite values; sem is NaN when n < 2."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan"), 0
    mean = sum(xs) / n
    if n < 2:
        return mean, float("nan"), n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return mean, math.sqrt(var / n), n


def summarise(
    records: Iterable[Mapping[str, Any]], group_by: Sequence[str], metrics: Sequence[str]
) -> list[dict]:
    """Group flat records by the ``group_by`` keys and average each metric.

    Each output row holds the group keys, then ``<metric>`` (mean), ``<metric>_sem`` and
    ``n`` (records in the group), in first-seen group order.  Missing or non-finite
    metric values are left out of that metric's mean.
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in records:
        key = tuple(r[k] for k in group_by)
        groups.setdefault(key, []).append(r)
    rows = []
    for key, rs in groups.items():
        row: dict[str, Any] = dict(zip(group_by, key))
        row["n"] = len(rs)
        for m in metrics:
            mean, sem, _ = mean_sem([r.get(m) for r in rs if r.get(m) is not None])
            row[m] = mean
            row[m + "_sem"] = sem
        rows.append(row)
    return rows


def _fmt(mean: float, sem: float, digits: int) -> str:
    if not math.isfinite(mean):
        return "—"
    if not math.isfinite(sem):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sem:.{digits}f}"


def format_markdown(
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    metrics: Sequence[str],
    digits: Optional[Mapping[str, int]] = None,
    headers: Optional[Mapping[str, str]] = None,
) -> str:
    """A Markdown table: one column per key, one ``mean ± sem`` column per metric, then n."""
    digits = dict(digits or {})
    headers = dict(headers or {})
    cols = [headers.get(k, k) for k in keys] + [headers.get(m, m) for m in metrics] + ["n"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        cells = [str(r[k]) for k in keys]
        cells += [_fmt(r[m], r[m + "_sem"], digits.get(m, 3)) for m in metrics]
        cells.append(str(r["n"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(
    rows: Sequence[Mapping[str, Any]],
    stem: os.PathLike,
    keys: Sequence[str],
    metrics: Sequence[str],
    digits: Optional[Mapping[str, int]] = None,
    headers: Optional[Mapping[str, str]] = None,
    title: Optional[str] = None,
) -> tuple[Path, Path]:
    """Write ``<stem>.md`` (Markdown, mean ± sem) and ``<stem>.csv`` (full precision); returns both paths."""
    stem = Path(stem)
    md = format_markdown(rows, keys, metrics, digits, headers)
    if title:
        md = f"{title}\n\n{md}"
    buf = io.StringIO()
    fields = list(keys) + [x for m in metrics for x in (m, m + "_sem")] + ["n"]
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items() if k in fields})
    md_path, csv_path = stem.with_suffix(".md"), stem.with_suffix(".csv")
    atomic_write_text(md_path, md)
    atomic_write_text(csv_path, buf.getvalue())
    return md_path, csv_path


def derive_seed(*keys: int) -> int:
    """A 63-bit int seed that depends only on the non-negative int ``keys`` (numpy SeedSequence)."""
    import numpy as np

    if any(int(k) < 0 for k in keys):
        raise ValueError(f"seed keys must be non-negative, got {keys}")
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    """``items`` split into consecutive lists of at most ``size`` (size >= 1)."""
    size = int(size)
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def stack_id(cells: Sequence[Mapping[str, Any]]) -> str:
    """A short stable name (sha256 prefix) for a group of cells trained together."""
    import hashlib

    text = "\n".join(cell_name(c) for c in cells)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
