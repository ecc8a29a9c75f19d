"""MolGAN on QM9 with any latent distribution of :mod:`qboson.latent`.

* :mod:`qboson.molgan.model`: :class:`Generator` (widening MLP with ``invert``) and the
  relational-GCN :class:`Discriminator`.
* :mod:`qboson.molgan.config`: :class:`TrainConfig` and the ``quick`` / ``paper`` profiles.
* :mod:`qboson.molgan.train`: the resumable WGAN-GP training loop (:func:`train`).
* :mod:`qboson.molgan.evaluate`: generate molecules from a run and score them (:func:`evaluate_run`).

Needs PyTorch (``pip install qboson[torch]``); evaluation needs the ``chem`` extra.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by test_without_torch
    raise ImportError("qboson.molgan needs PyTorch: pip install qboson[torch] (torch==2.13.0 on CPU)") from exc

from .config import PROFILES, TrainConfig, profile_config
from .model import Discriminator, Generator
from .train import GraphData, gradient_penalty, load_checkpoint, train

__all__ = ["Generator", "Discriminator", "TrainConfig", "PROFILES", "profile_config", "GraphData", "train",
           "gradient_penalty", "load_checkpoint"]
