"""MolGAN on QM9 with any latent distribution of :mod:`qboson.latent`.

* :mod:`qboson.molgan.model`: :class:`Generator` (widening MLP with ``invert``), the
  relational-GCN :class:`Discriminator`, weight initialisation and graph decoding.
* :mod:`qboson.molgan.config`: :class:`TrainConfig` and the ``quick`` / ``paper`` profiles.
* :mod:`qboson.molgan.batches`: training graphs, latent banks and their shuffled streams.
* :mod:`qboson.molgan.trainer`: the resumable WGAN-GP training loop (:func:`train`).
* :mod:`qboson.molgan.stacked`: several runs in one loop, weights stacked (:func:`train_stack`).
* :mod:`qboson.molgan.runfiles`: the files of a run folder, checkpoints (loaded with
  ``weights_only=True``) and logs.
* :mod:`qboson.molgan.evaluate`: generate molecules from a run and score them (:func:`evaluate_run`).

Needs PyTorch (``pip install qboson[torch]``); evaluation needs the ``chem`` extra.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by test_without_torch
    raise ImportError("qboson.molgan needs PyTorch: pip install qboson[torch] (torch==2.13.0 on CPU)") from exc

from .batches import GraphData
from .config import PROFILES, TrainConfig, profile_config
from .model import Discriminator, Generator
from .runfiles import load_checkpoint
from .stacked import train_stack
from .trainer import gradient_penalty, train

__all__ = ["Generator", "Discriminator", "TrainConfig", "PROFILES", "profile_config", "GraphData", "train",
           "train_stack", "gradient_penalty", "load_checkpoint"]
