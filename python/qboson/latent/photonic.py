"""Photon-count latents: ``quantum`` (indistinguishable photons) and ``photonic`` (distinguishable).

Both send single photons into ``input_modes`` of the same m-mode interferometer (m = dim) and
count the photons in every output mode.  Only interference differs: the two share their mean
occupations but not their second moments (see :mod:`qboson.latent.moments`).

With the default sampler, the default stream of a latent with seed ``s`` equals
``qboson.sample(n, m, shots, seed=s)``: the unitary is the Haar matrix that call would draw,
and row ``i`` is its shot ``i``.

Centring.  Every photon latent is centred on the mean of its *own* distribution, and says which
(:attr:`PhotonLatent.mean_source`, also in its spec and so in a bank's metadata):

``exact``            ideal device: :mod:`qboson.latent.moments`;
``exact-noisy``      a noise model with closed-form moments (:mod:`qboson.noisy_moments`: loss,
                     partial distinguishability, dark counts, threshold detection, post-selection
                     after uniform loss);
``empirical-calibration``  other noise models (post-selection with dark counts or threshold
                     detection, angle noise): the mean and covariance of ``calibration_shots`` rows
                     pre-drawn from a separate stream of the same latent;
``empirical-recorded``     a ``recorded`` backend: the mean and covariance of every recorded row;
``exact-ideal-backend``    another backend without a qboson noise model: the ideal exact moments
                     (nothing better is known about the device).
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any, Optional, Sequence

import numpy as np

from .._seeding import split_seed
from .._validation import as_int, as_threads, check_unitary, count_dtype, input_mode_array
from ..unitary import haar_unitary
from . import moments
from .base import DEFAULT_DIM, Latent, SeedTemplate, default_dim

__all__ = ["PhotonLatent", "QuantumLatent", "PhotonicLatent", "PTSeriesLatent", "PT_SERIES_DEFAULTS",
           "resolve_circuit", "unitary_sha256"]


def unitary_sha256(u: np.ndarray) -> str:
    """sha256 of a unitary's complex128 little-endian C-order bytes."""
    return hashlib.sha256(np.ascontiguousarray(u, dtype="<c16").tobytes()).hexdigest()


def resolve_circuit(dim, seed: int, n_photons, unitary, input_modes) -> tuple[int, np.ndarray, np.ndarray]:
    """Validate the circuit arguments of a photon latent; returns ``(m, unitary, input_modes)``.

    The default unitary is the Haar matrix that ``qboson.sample(..., seed=seed)`` draws; the
    default input modes are the first ``n_photons`` (default ``m // 2``) modes.
    """
    if unitary is not None:
        if callable(getattr(unitary, "unitary", None)):  # a circuit object, e.g. qboson.circuits.TimeBinCircuit
            unitary = unitary.unitary()
        u = check_unitary(unitary)
        m = u.shape[0]
        if not default_dim(dim) and as_int(dim, "dim", minimum=1) != m:
            raise ValueError(f"dim={dim} does not match the unitary's {m} modes")
    else:
        m = as_int(dim, "dim", minimum=1)
        u = haar_unitary(m, split_seed(seed)[0])
    if n_photons is None and input_modes is None:
        n_photons = max(1, m // 2)
    if n_photons is not None:
        n_photons = as_int(n_photons, "n_photons", minimum=1)
        if n_photons > m:
            raise ValueError(f"more photons than modes: n_photons={n_photons} > dim={m}")
    modes = input_mode_array(input_modes, n_photons, m)
    return m, u, modes


def _accepts(func, name: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class PhotonLatent(Latent):
    """Photon counts of single photons through a fixed interferometer.

    Parameters
    ----------
    dim : int
        Number of modes m (ignored when ``unitary`` fixes it; must then agree if given).
    seed : int, SeedSequence, Generator or None
        Draws the default Haar unitary and seeds the default sample stream.
    n_photons : int, optional
        Photons, entering modes ``0..n-1``; default ``dim // 2`` (the paper's n = m/2).
    unitary : array_like (m, m), optional
        Any interferometer (Haar, a time-bin loop circuit, a Clements mesh ...).
    input_modes : sequence of int, optional
        Occupied input modes (one photon each); overrides ``n_photons``' default placement.
    backend : object, optional
        Anything with ``sample(unitary, input_modes, shots, seed=None) -> (shots, m)`` (e.g. a
        ``qboson.backends`` object).  If its ``sample`` also takes ``start``, rows stay
        index-deterministic; otherwise each call gets its own seed derived from (stream, start).
        ``None`` uses :func:`qboson.sample`.
    centre, scale : bool
        Subtract the exact mean occupation; divide by the exact standard deviation.
    threads : int, optional
        OpenMP threads of :func:`qboson.sample` (``None`` = all cores).
    method : str
        Permanent scheme of :func:`qboson.sample` (``"cc2020"`` or ``"cc2017"``).
    noise : qboson.noise.NoiseModel or dict, optional
        A noise model (or its :meth:`~qboson.noise.NoiseModel.to_dict` form) forwarded to
        :func:`qboson.sample`; ``mean``/``std``/``covariance`` then describe the noisy device (see
        the module notes for how they are obtained).
    calibration_shots : int
        Rows pre-drawn to estimate the moments when no closed form exists (default 20000).
    """

    distinguishable: bool = False

    def __init__(
        self,
        dim: int = DEFAULT_DIM,
        *,
        seed=None,
        n_photons: Optional[int] = None,
        unitary=None,
        input_modes: Optional[Sequence[int]] = None,
        backend: Any = None,
        centre: bool = True,
        scale: bool = False,
        threads: Optional[int] = None,
        method: str = "cc2020",
        noise: Any = None,
        calibration_shots: int = 20_000,
    ) -> None:
        from .base import as_seed_int

        seed = as_seed_int(seed)
        m, u, modes = resolve_circuit(dim, seed, n_photons, unitary, input_modes)
        super().__init__(m, seed=seed, centre=centre, scale=scale)
        self.unitary = u
        self.input_modes = modes
        self.n_photons = int(modes.size)
        self.threads = None if threads is None else as_threads(threads)
        from ..sampling import METHODS

        if not isinstance(method, str) or method not in METHODS:  # refused here, not at the first sample
            raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
        self.method = method
        if isinstance(noise, dict):
            from ..noise import NoiseModel

            noise = NoiseModel.from_dict(noise)
        self.noise = noise
        self.calibration_shots = as_int(calibration_shots, "calibration_shots", minimum=2)
        self.backend = backend
        if backend is not None:
            sample_fn = getattr(backend, "sample", None)
            if not callable(sample_fn):
                raise TypeError(
                    f"backend must have a sample(unitary, input_modes, shots, seed=None) method, got {type(backend).__name__}"
                )
            self._backend_start = _accepts(sample_fn, "start")
            self._backend_dist = _accepts(sample_fn, "distinguishable")
            if self.distinguishable and not self._backend_dist:
                raise ValueError(
                    f"backend {type(backend).__name__} cannot sample distinguishable photons "
                    "(its sample() has no 'distinguishable' argument); use the default backend"
                )
            if noise is not None:
                raise ValueError("noise= applies to the default qboson sampler, not to a backend")
            self.index_deterministic = bool(self._backend_start)
        self._mean, self._cov, self.mean_source = self._moments()

    # -- moments of the latent's own distribution ------------------------------------------------
    #: Stream (child of the root seed) of the rows drawn to estimate moments without a closed form.
    _CALIBRATION_STREAM = 0xCA1B

    def _moments(self) -> tuple[np.ndarray, np.ndarray, str]:
        from ..noise import NoiseModel
        from .. import noisy_moments

        u, modes = self.unitary, self.input_modes
        recorded = getattr(self.backend, "data", None)
        if self.backend is not None and hasattr(recorded, "samples") and hasattr(recorded, "path"):
            rows = np.asarray(recorded.samples, dtype=np.float64)
            if rows.shape[1] != self.dim or rows.shape[0] < 2:
                raise ValueError(f"recorded backend holds rows of shape {rows.shape}; cannot estimate the latent's moments")
            return rows.mean(axis=0), np.cov(rows, rowvar=False).reshape(self.dim, self.dim), "empirical-recorded"
        noise = self.noise
        if self.backend is not None:
            noise = getattr(self.backend, "noise", None)
            if not isinstance(noise, NoiseModel):
                return (moments.mean_counts(u, modes),
                        moments.covariance(u, modes, distinguishable=self.distinguishable), "exact-ideal-backend")
        if noise is None:
            return moments.mean_counts(u, modes), moments.covariance(u, modes, distinguishable=self.distinguishable), "exact"
        if not isinstance(noise, NoiseModel):
            return (moments.mean_counts(u, modes),
                    moments.covariance(u, modes, distinguishable=self.distinguishable), "exact-ideal-backend")
        try:
            st = noisy_moments.statistics(self._circuit_for_noise(noise), modes, noise, distinguishable=self.distinguishable)
            return st.mean, st.covariance, "exact-noisy"
        except ValueError:
            pass  # no closed form: estimate from a separate pre-drawn stream
        rows = self.raw_at(0, self.calibration_shots, SeedTemplate(self.seed).child(self._CALIBRATION_STREAM)).astype(np.float64)
        return rows.mean(axis=0), np.cov(rows, rowvar=False), "empirical-calibration"

    def _circuit_for_noise(self, noise):
        return self.unitary

    # -- protocol ----------------------------------------------------------------------------
    @property
    def mean(self) -> np.ndarray:
        return self._mean

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self._cov), 0.0, None))

    @property
    def covariance(self) -> np.ndarray:
        return self._cov

    @property
    def fano_factor(self) -> float:
        """Exact photon-weighted Fano factor ``sum Var[s_j] / n``."""
        return float(np.trace(self._cov) / self.n_photons)

    @property
    def raw_dtype(self) -> np.dtype:
        return count_dtype(self.n_photons)

    def _draw(self, start: int, stop: int, seed: SeedTemplate, threads: Optional[int]) -> np.ndarray:
        shots = stop - start
        if self.backend is None:
            from ..sampling import sample

            if threads is None:
                threads = self.threads if self.threads is not None else self._auto_threads(shots)
            out = sample(
                unitary=self.unitary,
                input_modes=self.input_modes,
                shots=shots,
                seed=seed.sequence(),
                start=start,
                distinguishable=self.distinguishable,
                threads=threads,
                progress=False,
                method=self.method,
                noise=self.noise,
            )
        else:
            kwargs = {}
            if self._backend_start:
                kwargs["start"] = start
                call_seed = seed.sequence()
            else:
                call_seed = seed.sequence(start, stop)
            if self._backend_dist:
                kwargs["distinguishable"] = self.distinguishable
            out = self.backend.sample(self.unitary, self.input_modes.copy(), shots, seed=call_seed, **kwargs)
            out = np.asarray(out)
            if out.shape != (shots, self.dim):
                raise ValueError(
                    f"backend {type(self.backend).__name__} returned shape {out.shape}, expected {(shots, self.dim)}"
                )
        return np.ascontiguousarray(out, dtype=self.raw_dtype)

    def _auto_threads(self, shots: int) -> Optional[int]:
        """One thread for calls expected to take under ~20 ms (waking OpenMP threads costs more)."""
        from ..cost import estimate_cost

        est = estimate_cost(self.n_photons, self.dim, shots, distinguishable=self.distinguishable, threads=1, method=self.method)
        return 1 if est < 0.02 else None

    def _spec(self) -> dict:
        spec = {
            "n_photons": self.n_photons,
            "input_modes": self.input_modes.tolist(),
            "unitary": [[float(z.real), float(z.imag)] for z in self.unitary.ravel()],
            "unitary_sha256": unitary_sha256(self.unitary),
            "method": self.method,
        }
        if self.backend is not None:
            spec["backend"] = f"{type(self.backend).__module__}.{type(self.backend).__qualname__}"
        if self.noise is not None:
            to_dict = getattr(self.noise, "to_dict", None)
            spec["noise"] = to_dict() if callable(to_dict) else repr(self.noise)
        spec["mean_source"] = self.mean_source
        if self.mean_source == "empirical-calibration":
            spec["calibration_shots"] = self.calibration_shots
        return spec

    def describe(self) -> str:
        kind = "distinguishable" if self.distinguishable else "indistinguishable"
        text = (
            f"{self.name} latent: {self.n_photons} {kind} photons in {self.dim} modes "
            f"(inputs {self.input_modes.tolist()}, unitary sha256 {unitary_sha256(self.unitary)[:12]}), "
            f"seed={self.seed}, Fano factor {self.fano_factor:.3f}"
        )
        norm = [s for s, on in ((f"centred on its own mean ({self.mean_source})", self.centre), ("unit variance", self.scale)) if on]
        return text + (f"; {', '.join(norm)}" if norm else "; raw counts")


class QuantumLatent(PhotonLatent):
    """Indistinguishable photons (boson sampling): the paper's ``quantum`` latent."""

    name = "quantum"
    distinguishable = False


class PhotonicLatent(PhotonLatent):
    """Distinguishable photons through the same interferometer: the interference-off control."""

    name = "photonic"
    distinguishable = True


#: Documented defaults of the ``pt_series`` recipe.  They are ASSUMPTIONS chosen to mimic the
#: paper's description ("roughly 16 photons in 32 modes"), not ORCA's measured figures.
PT_SERIES_DEFAULTS = {
    "delays": (1, 1),
    "transmission": 0.5,
    "hom_visibility": 0.95,
    "detection": "pnr",
    "dark_count_probability": 0.0,
    "angle_noise": 0.0,
}


class PTSeriesLatent(QuantumLatent):
    """A PT-Series-like latent: the recipe of the paper's hardware run (arXiv 2508.19857).

    A time-bin loop interferometer (default "1-1": two loops of delay 1) with random angles drawn
    from ``seed``; a single photon in *every* input bin; a lossy, partially distinguishable device;
    and post-selection on at least ``min_detected`` (default ``dim // 2``) detected photons.  With
    the defaults this mimics roughly ``dim / 2`` photons in ``dim`` modes with randomised input
    positions, bunching included.

    Parameters
    ----------
    dim : int
        Number of time bins (modes) = latent dimension (the paper: 32).
    delays : sequence of int
        Loop delays in bins (default ``(1, 1)``).
    transmission : float
        Probability that a photon survives source, loops and detection (default 0.5, an assumption).
    hom_visibility : float
        Two-photon Hong-Ou-Mandel visibility (default 0.95, an assumption).
    detection : {"pnr", "threshold"}
        Detector type (default ``"pnr"``, an assumption).
    dark_count_probability, angle_noise : float
        Further noise (default 0; see :class:`qboson.noise.NoiseModel`).
    min_detected : int, optional
        Keep shots with at least this many detected photons (default ``dim // 2``).
    Other arguments as :class:`PhotonLatent`.  The circuit is ``self.circuit``.
    """

    name = "pt_series"

    def __init__(
        self,
        dim: int = 32,
        *,
        seed=None,
        delays=PT_SERIES_DEFAULTS["delays"],
        transmission: float = PT_SERIES_DEFAULTS["transmission"],
        hom_visibility: float = PT_SERIES_DEFAULTS["hom_visibility"],
        detection: str = PT_SERIES_DEFAULTS["detection"],
        dark_count_probability: float = PT_SERIES_DEFAULTS["dark_count_probability"],
        angle_noise: float = PT_SERIES_DEFAULTS["angle_noise"],
        min_detected: Optional[int] = None,
        centre: bool = True,
        scale: bool = False,
        threads: Optional[int] = None,
        method: str = "cc2020",
        calibration_shots: int = 20_000,
    ) -> None:
        from ..circuits import time_bin_interferometer
        from ..noise import NoiseModel
        from .base import as_seed_int

        seed = as_seed_int(seed)
        m = as_int(dim, "dim", minimum=2)
        if isinstance(delays, str):
            delays = [d for d in delays.replace("-", ",").split(",") if d.strip()]
            try:
                delays = [int(d) for d in delays]
            except ValueError:
                raise ValueError("delays must be integers, e.g. (1, 1) or '1-1'") from None
        self.circuit = time_bin_interferometer(m, tuple(delays), seed=split_seed(seed)[0])
        if min_detected is None:
            min_detected = m // 2
        noise = NoiseModel(
            transmission=transmission, hom_visibility=hom_visibility, detection=detection,
            dark_count_probability=dark_count_probability, angle_noise=angle_noise,
            min_detected=min_detected, circuit=self.circuit if angle_noise else None,
        )
        if noise.min_detected > m:
            raise ValueError(f"min_detected={noise.min_detected} exceeds the {m} photons of a {m}-bin PT-series latent")
        super().__init__(
            m, seed=seed, unitary=self.circuit.unitary(), input_modes=range(m), centre=centre, scale=scale,
            threads=threads, method=method, noise=noise, calibration_shots=calibration_shots,
        )

    def _circuit_for_noise(self, noise):
        return self.circuit

    def acceptance_probability(self) -> float:
        """Exact probability that a raw shot passes post-selection (see :mod:`qboson.noisy_moments`)."""
        return self.noise.acceptance_probability(self.circuit, self.input_modes)

    def _spec(self) -> dict:
        n = self.noise
        spec = {
            "delays": [int(d) for d in self.circuit.delays],
            "transmission": n.transmission,
            "hom_visibility": n.visibility,
            "detection": n.detection,
            "dark_count_probability": (float(n.dark_count_probability) if np.ndim(n.dark_count_probability) == 0
                                       else [float(v) for v in n.dark_count_probability]),
            "angle_noise": n.angle_noise,
            "min_detected": n.min_detected,
            "method": self.method,
            "unitary_sha256": unitary_sha256(self.unitary),
            "mean_source": self.mean_source,
        }
        if self.mean_source == "empirical-calibration":
            spec["calibration_shots"] = self.calibration_shots
        return spec

    def describe(self) -> str:
        n = self.noise
        text = (
            f"pt_series latent: {self.dim} time bins, loops {'-'.join(map(str, self.circuit.delays))}, a photon in "
            f"every bin, transmission {n.transmission:g}, HOM visibility {n.visibility:g}, {n.detection} detectors"
            + (f", dark counts up to {float(np.max(n.dark_count_probability)):g}" if np.any(n.dark_count_probability) else "")
            + (f", angle noise {n.angle_noise:g} rad" if n.angle_noise else "")
            + f", kept when {n.postselection_rule}; seed={self.seed}"
        )
        norm = [s for s, on in ((f"centred on its own mean ({self.mean_source})", self.centre), ("unit variance", self.scale)) if on]
        return text + (f"; {', '.join(norm)}" if norm else "; raw counts")
