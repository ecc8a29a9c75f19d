"""Result files of the benchmarks: new files only, each written whole.

A benchmark may run for an hour, so the paths it will write are checked before it starts
(:func:`check_new`), and a file that exists is never replaced: it may be an earlier result,
or not a benchmark's file at all.  The text goes to a temporary file beside the target and is
then hard-linked into place, which fails, instead of overwriting, if the name appeared meanwhile.
Where the file system has no hard links, the name is first claimed by creating an empty file
exclusively, and the temporary file then replaces that claim (still a whole file, never another's).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Optional

from qboson._atomic import fsync_dir, temp_path


def check_new(path: Optional[str], flag: str) -> Optional[str]:
    """``None`` if ``path`` can be written as a new file, else why not (naming ``flag``)."""
    if path is None:
        return None
    target = Path(path)
    if target.exists() or target.is_symlink():
        return f"{flag} {path}: the file exists; a benchmark writes new files only (choose another name)"
    if not target.parent.is_dir():
        return f"{flag} {path}: no folder {target.parent}"
    return None


def write_new_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to the new file ``path``; ``FileExistsError`` if it exists."""
    target = Path(path)
    tmp = temp_path(target)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, target)  # no-clobber: raises FileExistsError where os.replace would overwrite
        except FileExistsError:
            raise
        except OSError:  # no hard links here (some network and FAT-like file systems)
            with open(target, "x", encoding="utf-8"):
                pass  # our claim on the name; FileExistsError if it exists
            os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsync_dir(target.parent)
