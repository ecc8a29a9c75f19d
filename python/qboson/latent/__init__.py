"""Latent distributions for generative models: photon-count latents, classical baselines and
moment-matched controls, plus sample banks.

    >>> from qboson import latent
    >>> z = latent.make("quantum", dim=16, seed=0)     # 8 photons in 16 Haar-random modes
    >>> z.sample(256).shape                             # centred on the exact mean, float32
    (256, 16)

Kinds (:data:`KINDS`): ``quantum``, ``photonic``, ``gaussian``, ``bernoulli``,
``gaussian_matched``, ``counts_matched``, and ``pt_series`` (the paper's hardware recipe: a "1-1"
time-bin circuit, every input bin filled, loss, post-selection on >= dim/2 detected photons).  Every latent follows the :class:`Latent` protocol;
:class:`Bank` stores a pre-drawn stream on disk; :mod:`qboson.latent.moments` gives exact
moments of the photon latents.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .bank import Bank, BankError, generate_bank
from .base import DEFAULT_DIM, Latent
from .classical import BernoulliLatent, GaussianLatent, MatchedCountsLatent, MatchedGaussianLatent
from .photonic import PhotonicLatent, PTSeriesLatent, QuantumLatent

__all__ = ["make", "from_spec", "KINDS", "Latent", "Bank", "BankError", "generate_bank"]

#: name -> class of every latent kind.
KINDS = {
    "quantum": QuantumLatent,
    "photonic": PhotonicLatent,
    "gaussian": GaussianLatent,
    "bernoulli": BernoulliLatent,
    "gaussian_matched": MatchedGaussianLatent,
    "counts_matched": MatchedCountsLatent,
    "pt_series": PTSeriesLatent,
}

_PHOTON_KINDS = ("quantum", "photonic")
_CIRCUIT_KINDS = ("quantum", "photonic", "gaussian_matched", "counts_matched")
_EXTRA_KWARGS = {
    "quantum": {"threads", "method", "noise", "calibration_shots"},
    "photonic": {"threads", "method", "noise", "calibration_shots"},
    "gaussian": set(),
    "bernoulli": {"p"},
    "gaussian_matched": {"match"},
    "counts_matched": {"match"},
    "pt_series": {"threads", "method", "calibration_shots", "delays", "transmission", "hom_visibility", "detection",
                  "dark_count_probability", "angle_noise", "min_detected"},
}


def make(
    name: str,
    dim: int = DEFAULT_DIM,
    *,
    seed=None,
    n_photons: Optional[int] = None,
    unitary=None,
    input_modes: Optional[Sequence[int]] = None,
    backend: Any = None,
    centre: bool = True,
    scale: bool = False,
    **kwargs,
) -> Latent:
    """Construct a latent distribution by name.

    Parameters
    ----------
    name : str
        One of :data:`KINDS`.
    dim : int
        Latent dimension (number of modes for circuit-based kinds; default 16).  May be omitted
        when ``unitary`` is given.
    seed : int, SeedSequence, Generator or None
        Root seed: draws the default Haar interferometer and seeds the default sample stream.
        ``None`` draws fresh entropy (recorded in ``latent.seed``).
    n_photons, unitary, input_modes
        The circuit of ``quantum``, ``photonic`` and the matched controls: ``n_photons`` photons
        (default ``dim // 2``) in the first modes (or in ``input_modes``) of ``unitary``
        (default Haar-random from ``seed``; any m x m unitary, e.g. a time-bin loop circuit).
    backend : object, optional
        For ``quantum``/``photonic``: any object with ``sample(unitary, input_modes, shots,
        seed=None) -> (shots, m)``; default :func:`qboson.sample`.
    centre, scale : bool
        :meth:`Latent.sample` subtracts the mean of the latent's own distribution (the paper's
        centring; exact where a closed form exists, see ``latent.mean_source``) and, with
        ``scale``, divides by the standard deviation.
    **kwargs
        Kind-specific: ``threads``, ``method``, ``noise``, ``calibration_shots`` (photon kinds), ``p``
        (bernoulli), ``match`` ("quantum" or "photonic", matched controls); for ``pt_series``:
        ``delays``, ``transmission``, ``hom_visibility``, ``detection``, ``dark_count_probability``,
        ``angle_noise``, ``min_detected`` (see :class:`~qboson.latent.photonic.PTSeriesLatent`).

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the valid ones), bad dimension, or circuit
        arguments given to a kind without a circuit.
    """
    if not isinstance(name, str) or name not in KINDS:
        raise ValueError(f"unknown latent {name!r}; valid names: {', '.join(KINDS)}")
    extra = set(kwargs) - _EXTRA_KWARGS[name]
    if extra:
        raise TypeError(f"latent {name!r} does not take argument(s) {sorted(extra)}")
    if name == "pt_series":
        given = [k for k, v in (("n_photons", n_photons), ("unitary", unitary), ("input_modes", input_modes),
                                ("backend", backend)) if v is not None]
        if given:
            raise ValueError(f"latent 'pt_series' builds its own circuit and device; it does not take {', '.join(given)}")
        return PTSeriesLatent(dim, seed=seed, centre=centre, scale=scale, **kwargs)
    if name not in _CIRCUIT_KINDS:
        given = [k for k, v in (("n_photons", n_photons), ("unitary", unitary), ("input_modes", input_modes)) if v is not None]
        if given:
            raise ValueError(f"latent {name!r} has no circuit; it does not take {', '.join(given)}")
    if backend is not None and name not in _PHOTON_KINDS:
        raise ValueError(f"latent {name!r} is classical; backend= applies to {_PHOTON_KINDS} only")
    cls = KINDS[name]
    common = dict(seed=seed, centre=centre, scale=scale, **kwargs)
    if name in _PHOTON_KINDS:
        return cls(dim, n_photons=n_photons, unitary=unitary, input_modes=input_modes, backend=backend, **common)
    if name in _CIRCUIT_KINDS:
        return cls(dim, n_photons=n_photons, unitary=unitary, input_modes=input_modes, **common)
    return cls(dim, **common)


def from_spec(spec: dict, *, backend: Any = None, **overrides) -> Latent:
    """Rebuild a latent from :meth:`Latent.spec` (as stored in a bank's metadata).

    ``backend`` must be passed again if the latent used one (backends are not serialised);
    ``overrides`` replace spec entries that do not change the distribution (e.g. ``threads``).
    """
    import numpy as np

    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in KINDS:
        raise ValueError(f"spec names unknown latent {name!r}; valid names: {', '.join(KINDS)}")
    if spec.pop("backend", None) is not None and backend is None:
        raise ValueError(f"this {name} latent was sampled through a custom backend; pass backend= to rebuild it")
    noise = spec.pop("noise", None)
    if noise is not None and "noise" not in overrides:
        if not isinstance(noise, dict):
            raise ValueError(f"this {name} latent was sampled with a noise model; pass noise= to rebuild it")
        spec["noise"] = noise
    mean_source = spec.pop("mean_source", None)
    recorded_sha = spec.pop("unitary_sha256", None)
    if "unitary" in spec:
        from .photonic import unitary_sha256

        pairs = np.asarray(spec["unitary"], dtype=np.float64)
        m = int(round(np.sqrt(pairs.shape[0])))
        if pairs.shape != (m * m, 2):
            raise ValueError(f"spec has a malformed unitary (shape {pairs.shape})")
        spec["unitary"] = (pairs[:, 0] + 1j * pairs[:, 1]).reshape(m, m)
        if recorded_sha is not None and unitary_sha256(spec["unitary"]) != recorded_sha:
            raise ValueError("spec's unitary does not match its recorded sha256 (edited or corrupt metadata)")
        spec.pop("n_photons", None)  # implied by input_modes
    if backend is not None:
        spec["backend"] = backend
    spec.update(overrides)
    dim = spec.pop("dim")
    return make(name, dim, **spec)
