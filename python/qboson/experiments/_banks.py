"""Pre-drawn latent banks in the experiment grids: ``--latent-bank [LABEL=]DIR``.

A bank (``qboson sample ... --out DIR``) fixes one circuit for every seed of a grid, as in the
paper's size-48 runs and its hardware row, where the latent is a stream of recorded samples rather
than a fresh circuit per seed.  ``DIR`` is a bank directory, or a folder of bank directories (one
per latent name: ``DIR/quantum``, ``DIR/pt_series``, ...).  A bank serves the latent of its own name
(``bank.json``'s latent kind) or, with ``LABEL=DIR``, the latent named ``LABEL`` in ``--latents``
(so two banks of one kind, e.g. a noisy and an ideal quantum bank, can sit in one grid).

Each cell draws its training rows and its held-out evaluation rows from the bank without
replacement, disjoint from each other, in an order fixed by the cell's latent seed; rows are
normalised as the bank records (centred on its latent's own mean).  The banks' sha256 go into the
grid's settings, so results of different banks never mix in one output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

__all__ = ["add_argument", "find", "resolve", "BankLatent", "train_and_eval_rows", "check_latents"]


def add_argument(parser) -> None:
    parser.add_argument(
        "--latent-bank", metavar="[LABEL=]DIR", action="append", default=None,
        help="draw a latent's rows from a pre-drawn bank (one fixed circuit for every seed): a bank directory, "
        "or a folder with one bank per latent name; LABEL=DIR names the latent it serves (repeatable)",
    )


def _open(path: Path):
    from ..latent.bank import Bank, BankError

    try:
        return Bank(path)
    except BankError as exc:
        raise ValueError(f"--latent-bank {path}: {exc}") from None


def find(items: Optional[Sequence[str]]) -> dict:
    """``{(latent name, dim): bank path}`` for ``--latent-bank DIR`` arguments (no labels), e.g. for
    ``experiment qm9``, whose runs check the bank against their latent and dimension themselves."""
    out: dict = {}
    for item in items or []:
        root = Path(item)
        if not root.is_dir():
            raise ValueError(f"--latent-bank {item}: not a directory")
        found = [root] if (root / "bank.json").exists() else sorted(p for p in root.iterdir() if (p / "bank.json").exists())
        if not found:
            raise ValueError(f"--latent-bank {item}: neither a bank nor a folder of banks (no bank.json)")
        for path in found:
            bank = _open(path)
            key = (bank.name, bank.dim)
            if key in out:
                raise ValueError(f"two banks for latent {bank.name!r} of dim {bank.dim}: {out[key]} and {path}")
            out[key] = str(path.resolve())
    return out


def resolve(items: Optional[Sequence[str]], dim: int) -> dict:
    """``{label: {"path", "sha256", "rows", "latent"}}`` for the ``--latent-bank`` arguments.

    Raises ``ValueError`` for a missing folder, a folder without banks, a bank of another dimension or
    two banks for one label.
    """
    out: dict = {}
    for item in items or []:
        label, sep, where = str(item).partition("=")
        if not sep:
            label, where = "", str(item)
        root = Path(where)
        if not root.is_dir():
            raise ValueError(f"--latent-bank {where}: not a directory")
        if (root / "bank.json").exists():
            found = [root]
        else:
            found = sorted(p for p in root.iterdir() if (p / "bank.json").exists())
            if not found:
                raise ValueError(f"--latent-bank {where}: neither a bank nor a folder of banks (no bank.json)")
            if label and len(found) > 1:
                raise ValueError(f"--latent-bank {item}: LABEL= needs a single bank directory, {where} holds {len(found)}")
        for path in found:
            bank = _open(path)
            name = label or bank.name
            if name in out:
                raise ValueError(f"two banks for latent {name!r}: {out[name]['path']} and {path}")
            if bank.dim != dim:
                raise ValueError(f"--latent-bank {path}: the bank has dimension {bank.dim}, this experiment needs {dim}")
            out[name] = {"path": str(path.resolve()), "sha256": bank.sha256, "rows": len(bank), "latent": bank.name}
    return out


class BankLatent:
    """The slice of a bank that one cell uses: training rows, held-out rows and a description."""

    def __init__(self, entry: dict, seed: int) -> None:
        from .._seeding import generator

        self.bank = _open(Path(entry["path"]))
        if self.bank.sha256 != entry["sha256"]:
            raise ValueError(f"bank {entry['path']} changed since this grid started (sha256 differs); use a new --out")
        self._order = generator(int(seed)).permutation(len(self.bank))
        self._used = 0

    def take(self, k: int) -> np.ndarray:
        """The next ``k`` rows of the cell's order, normalised, float32, shape (k, dim)."""
        if self._used + k > len(self.bank):
            raise ValueError(
                f"bank {self.bank.path} holds {len(self.bank)} rows; a cell needs {self._used + k} "
                "(training plus evaluation rows): draw a larger bank or lower --n-latent/--n-gen"
            )
        idx = self._order[self._used : self._used + k]
        self._used += k
        return self.bank.take(idx)

    def describe(self) -> str:
        return self.bank.describe()


def train_and_eval_rows(latent, n_train: int, n_eval: int, eval_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows) of a cell's latent, normalised float32: from a bank slice, or
    drawn from a latent (training rows from its default stream, held-out rows from ``eval_seed``)."""
    if isinstance(latent, BankLatent):
        return latent.take(n_train), latent.take(n_eval)
    return latent.sample(n_train), latent.sample(n_eval, seed=eval_seed)


def check_latents(latents: Sequence[str], banks: dict) -> None:
    """ValueError for a latent that is neither a known kind nor served by a bank."""
    from .. import latent as latent_mod

    unknown = [x for x in latents if x not in latent_mod.KINDS and x not in banks]
    if unknown:
        raise ValueError(
            f"unknown latent(s) {unknown}; valid: {', '.join(latent_mod.KINDS)}"
            + (f", or a bank's label: {', '.join(banks)}" if banks else "")
        )
    unused = [name for name in banks if name not in latents]
    if unused:
        raise ValueError(f"--latent-bank serves latent(s) {unused} that --latents does not list")
