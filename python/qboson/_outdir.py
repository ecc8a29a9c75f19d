"""Output folders: qboson writes only into a folder that is missing, empty, or already its own.

A command given ``--out DIR`` must never overwrite or delete files a user keeps there.  Before
writing, it calls :func:`claim_output_dir`: a missing or empty folder is created and marked
with a small manifest, ``.qboson-output.json`` (``{"format": "qboson-output", "kind": ...}``);
a folder carrying the manifest of the same kind is reused (resumed); anything else is refused
with :class:`OutputDirError` naming the folder.

Folders written before the manifest existed are recognised by a ``manifest`` callback
(e.g. "its ``bank.json`` validates" or "every entry is a file this experiment writes").
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

from ._atomic import atomic_write_text

__all__ = ["MARKER", "OutputDirError", "check_output_dir", "claim_output_dir"]

MARKER = ".qboson-output.json"
_FORMAT = "qboson-output"
_MAX_MARKER_BYTES = 1 << 16

PathLike = Union[str, "os.PathLike[str]"]


class OutputDirError(ValueError):
    """An output folder holds files qboson did not write (or another command's output)."""


def _marker_kind(folder: Path) -> Optional[str]:
    """The kind recorded in ``folder``'s manifest, or None if there is none; OutputDirError if unreadable."""
    path = folder / MARKER
    if not path.exists():
        return None
    try:
        if path.stat().st_size > _MAX_MARKER_BYTES:
            raise ValueError("too large")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise OutputDirError(f"{folder}: its {MARKER} is unreadable ({exc}); choose another output folder") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("kind"), str):
        raise OutputDirError(f"{folder}: its {MARKER} is not a qboson output manifest; choose another output folder")
    return data["kind"]


def check_output_dir(
    path: PathLike,
    kind: str,
    *,
    manifest: Optional[Callable[[Path], bool]] = None,
    ignore: Iterable[str] = (),
) -> str:
    """Whether qboson may write ``kind`` output into ``path``, without changing anything.

    Parameters
    ----------
    path : path
        The output folder.
    kind : str
        What is written there, e.g. ``"bank"``, ``"experiment-mog"``, ``"molgan-run"``.
    manifest : callable, optional
        ``manifest(folder) -> bool``: True when the folder is recognisably this kind's output
        by its own files (for folders written before the manifest file existed).
    ignore : names
        Entries that do not make a folder non-empty (e.g. an empty lock file).

    Returns
    -------
    str
        ``"missing"``, ``"empty"`` or ``"ours"``.

    Raises
    ------
    OutputDirError
        ``path`` is a file, holds another kind's output, or holds other files.
    """
    folder = Path(path)
    if not folder.exists():
        return "missing"
    if not folder.is_dir():
        raise OutputDirError(f"output folder {str(folder)!r} exists and is not a directory")
    marked = _marker_kind(folder)
    if marked is not None:
        if marked != kind:
            raise OutputDirError(
                f"output folder {str(folder)!r} holds qboson {marked} output, not {kind}; choose another folder"
            )
        return "ours"
    skip = set(ignore)
    entries = [p for p in folder.iterdir() if p.name not in skip]
    if not entries:
        return "empty"
    if manifest is not None and manifest(folder):
        return "ours"
    shown = ", ".join(sorted(p.name for p in entries)[:5]) + (", ..." if len(entries) > 5 else "")
    raise OutputDirError(
        f"output folder {str(folder)!r} is not empty and was not written by qboson {kind} (it holds {shown}); "
        "qboson writes only into a new or empty folder or its own output: choose another folder"
    )


def claim_output_dir(
    path: PathLike,
    kind: str,
    *,
    manifest: Optional[Callable[[Path], bool]] = None,
    ignore: Iterable[str] = (),
    mark: bool = True,
) -> Path:
    """Check ``path`` with :func:`check_output_dir`, create it if needed and (``mark``) write the
    manifest there.  Returns the folder.  Raises :class:`OutputDirError` if it is not ours to use."""
    folder = Path(path)
    check_output_dir(folder, kind, manifest=manifest, ignore=ignore)
    folder.mkdir(parents=True, exist_ok=True)
    if mark and not (folder / MARKER).exists():
        from . import __version__

        record = {
            "format": _FORMAT,
            "kind": kind,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "qboson_version": __version__,
        }
        atomic_write_text(folder / MARKER, json.dumps(record, indent=1) + "\n")
    return folder
