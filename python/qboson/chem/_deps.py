"""Lazy imports of the optional chemistry dependencies (the ``chem`` extra)."""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Iterator

__all__ = ["require_rdkit", "quiet_rdkit", "require_fcd_torch", "require_torch"]

_EXTRA_HINT = "install the chemistry extra: pip install 'qboson[chem]'"


def require_rdkit() -> ModuleType:
    """Return ``rdkit.Chem``; raise ImportError naming the extra when RDKit is missing."""
    try:
        from rdkit import Chem
    except ImportError as exc:  # pragma: no cover - exercised by test_without_rdkit
        raise ImportError(f"qboson.chem needs RDKit, which is not installed ({_EXTRA_HINT})") from exc
    return Chem


@contextlib.contextmanager
def quiet_rdkit() -> Iterator[None]:
    """Silence RDKit's parse/sanitisation messages on stderr inside the block."""
    require_rdkit()
    from rdkit import rdBase

    blocker = rdBase.BlockLogs()
    try:
        yield
    finally:
        del blocker


def require_torch() -> ModuleType:
    try:
        import torch
    except ImportError as exc:
        raise ImportError(f"FCD needs PyTorch, which is not installed ({_EXTRA_HINT})") from exc
    return torch


def require_fcd_torch() -> ModuleType:
    """Return the ``fcd_torch`` module (ChemNet weights ship inside it; nothing is downloaded)."""
    require_torch()
    try:
        import fcd_torch
    except ImportError as exc:
        raise ImportError(f"FCD needs fcd_torch, which is not installed ({_EXTRA_HINT})") from exc
    return fcd_torch
