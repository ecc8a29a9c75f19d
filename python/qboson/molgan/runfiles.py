"""The files of a MolGAN run directory, and the rules for writing them.

::

    .qboson-output.json  manifest: this folder was created by qboson (see :mod:`qboson._outdir`)
    config.json          the TrainConfig (also inside every checkpoint)
    latent_bank.npy      (M, dim) float32 latent vectors drawn once for the run
    checkpoint.pt        weights, optimisers, RNG states, stream positions: plain tensors and
                         Python data, loaded with ``torch.load(weights_only=True)``
    metrics.csv          one row per ``log_every`` iterations (window means of the losses)
    curve.csv            evaluations during training (validity, uniqueness, fast FCD)
    train_summary.json   written when training finishes

Order of writes at a checkpoint: the CSV logs first, then the checkpoint.  A kill
between the two leaves log rows past the checkpoint, which resume drops; the
opposite order would lose rows.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from .._atomic import atomic_path, atomic_write_text
from .._outdir import claim_output_dir

__all__ = ["CHECKPOINT", "OUT_KIND", "METRIC_FIELDS", "CURVE_FIELDS", "load_checkpoint", "save_checkpoint",
           "prepare_run_dir", "read_rows", "write_rows", "LossWindow", "stop_on_sigint"]

CHECKPOINT = "checkpoint.pt"
OUT_KIND = "molgan-run"
METRIC_FIELDS = ["iteration", "critic_step", "critic_loss", "wasserstein", "gradient_penalty",
                 "generator_loss", "elapsed_s"]
CURVE_FIELDS = ["iteration", "critic_step", "fraction", "decode", "n", "valid", "valid_unique", "novel",
                "fcd", "fcd_unique", "seconds"]
#: files a run writes; a folder holding only these (or nothing) may be used as a run folder
RUN_FILES = frozenset({"config.json", "latent_bank.npy", CHECKPOINT, "metrics.csv", "curve.csv",
                       "train_summary.json", "eval.json", "samples.smi"})


def prepare_run_dir(out: Path, *, resume: bool) -> None:
    """Create ``out`` or check that qboson may write a run into it.

    Allowed: a missing or empty folder, a qboson run folder (its manifest, or only run files and
    a ``config.json`` that parses, as written before manifests existed); anything else raises
    :class:`qboson._outdir.OutputDirError` (a ``ValueError``) and nothing in it is touched.
    Without ``resume`` a folder that already holds a checkpoint raises ``FileExistsError``.
    """
    claim_output_dir(out, OUT_KIND, manifest=_is_unmarked_run)
    if not resume and (out / CHECKPOINT).exists():
        raise FileExistsError(f"{out} already holds a run; pass resume=True (--resume) or use a new folder")


def _is_unmarked_run(out: Path) -> bool:
    """A run written before the marker existed: only run files, and a config.json that parses."""
    import json

    from .config import TrainConfig

    if any(p.name not in RUN_FILES for p in out.iterdir()) or not (out / "config.json").is_file():
        return False
    try:
        TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    except (ValueError, TypeError, OSError):
        return False
    return True


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` (tensors, numbers, strings, lists, dicts only) atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict of a run.

    Loaded with ``weights_only=True``: a file holding anything but tensors and plain
    Python data (a pickled callable, say) is refused with ``ValueError`` and nothing in
    it runs.
    """
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint in {run_dir} (expected {path})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure of the strict unpickler on a hostile file (struct.error, ...)
        reason = next((line for line in str(exc).splitlines() if "WeightsUnpickler error" in line
                       or "Unsupported" in line), str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise ValueError(f"corrupt checkpoint {path}: not a plain-data qboson checkpoint, refused without "
                         f"running any of it ({reason.strip()})") from exc
    if not isinstance(ckpt, dict) or "config" not in ckpt or "generator" not in ckpt:
        raise ValueError(f"{path} is not a qboson MolGAN checkpoint")
    return ckpt


def read_rows(path: Path, upto_step: int) -> list[dict[str, str]]:
    """Rows of a log CSV with ``critic_step <= upto_step`` (those a resumed run keeps)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if int(row["critic_step"]) <= upto_step]


def write_rows(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


@dataclass
class LossWindow:
    """Running sums of the losses since the last log row."""

    n_critic: int = 0
    critic_loss: float = 0.0
    wasserstein: float = 0.0
    gp: float = 0.0
    n_gen: int = 0
    generator_loss: float = 0.0

    def add_critic(self, loss: float, w: float, gp: float) -> None:
        self.n_critic += 1
        self.critic_loss += loss
        self.wasserstein += w
        self.gp += gp

    def add_generator(self, loss: float) -> None:
        self.n_gen += 1
        self.generator_loss += loss

    def row(self, iteration: int, step: int, elapsed: float) -> dict[str, Any]:
        n, g = max(self.n_critic, 1), self.n_gen
        return {"iteration": iteration, "critic_step": step, "critic_loss": self.critic_loss / n,
                "wasserstein": self.wasserstein / n, "gradient_penalty": self.gp / n,
                "generator_loss": self.generator_loss / g if g else math.nan, "elapsed_s": round(elapsed, 3)}


@contextlib.contextmanager
def stop_on_sigint() -> Iterator[dict[str, bool]]:
    """First Ctrl-C sets ``flag["stop"]`` (checked between steps); a second one interrupts at once."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():  # handlers only from the main thread
        yield flag
        return

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
