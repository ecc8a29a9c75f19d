"""Adapter for Quandela's Perceval: local simulators and remote processors on Quandela's cloud.

This module is also the worked example of the backend protocol: a class whose ``sample(unitary_or_circuit,
input_modes, shots, seed=None)`` returns photon counts of shape (shots, m).  It needs the optional extra
``pip install qboson[hardware]`` (``perceval-quandela``), imported only when a backend is built.

Local simulation (``platform=None``): ``simulator`` names a Perceval back-end (``"SLOS"``,
``"CliffordClifford2017"``, ``"Naive"``, ...).  Remote (``platform="sim:..."`` or ``"qpu:..."``): a
Quandela cloud platform, authenticated by ``token=`` or the environment variable
``QBOSON_PERCEVAL_TOKEN``.  Construction only validates its arguments (no network); every request
to the cloud is bounded by ``timeout`` seconds and network or credential failures surface as
``ConnectionError`` naming the platform.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Optional, Sequence

import numpy as np

from .._seeding import SeedLike, generator, seed_sequence
from .._validation import UNITARY_ATOL, as_int, check_unitary, count_dtype, input_mode_array
from ..circuits import as_unitary

__all__ = ["PercevalBackend", "TOKEN_ENV"]

#: Environment variable read for the Quandela cloud token when ``token`` is not given.
TOKEN_ENV = "QBOSON_PERCEVAL_TOKEN"
_PLATFORM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")
_SIMULATORS = ("SLOS", "CliffordClifford2017", "Naive", "SLAP", "MPS")


def _import_perceval():
    try:
        import perceval
    except ImportError as exc:
        raise ImportError(
            "the 'perceval' backend needs Quandela's Perceval: pip install qboson[hardware] "
            f"(perceval-quandela) ({exc})"
        ) from None
    return perceval


def _translate_noise(noise, pcvl):
    """A qboson NoiseModel as (perceval NoiseModel, threshold detectors?, min detected photons)."""
    from ..noise import NoiseModel

    if noise is None:
        return None, False, None
    if isinstance(noise, pcvl.NoiseModel):
        return noise, False, None
    if not isinstance(noise, NoiseModel):
        raise TypeError(f"noise must be a qboson.noise.NoiseModel or a perceval.NoiseModel, got {type(noise).__name__}")
    unsupported = []
    if noise.input_transmission is not None or noise.output_transmission is not None:
        unsupported.append("per-mode loss")
    if np.ndim(noise.detector_efficiency) != 0:
        unsupported.append("per-mode detector efficiency")
    if np.any(np.asarray(noise.dark_count_probability) > 0):
        unsupported.append("dark counts")
    if noise.angle_noise > 0:
        unsupported.append("angle noise")
    if unsupported:
        raise ValueError(
            f"Perceval's noise model has no {', '.join(unsupported)}; use the 'local' backend for these"
        )
    min_detected = noise.min_detected
    if noise.postselect is not None:
        lo = min(noise.postselect)
        if list(noise.postselect) != list(range(lo, lo + len(noise.postselect))):
            raise ValueError("Perceval post-selects on a minimum number of detected photons: use postselect='>=k'")
        min_detected = lo  # an upper end below n is refused in sample(), where n is known
    model = pcvl.NoiseModel(
        indistinguishability=noise.visibility,  # Perceval's parameter is the HOM visibility V = x^2
        transmittance=noise.transmission * float(noise.detector_efficiency),
    )
    return model, noise.detection == "threshold", min_detected


class PercevalBackend:
    """Samples from Perceval's simulators or from a Quandela cloud platform.

    Parameters
    ----------
    simulator : str
        Local Perceval back-end, one of ``"SLOS"`` (strong simulation, then sampling),
        ``"CliffordClifford2017"``, ``"Naive"``, ``"SLAP"``, ``"MPS"``.  Ignored when ``platform`` is given.
    platform : str, optional
        Name of a Quandela cloud platform (e.g. ``"sim:altair"``, ``"qpu:belenos"``) to run remotely.
    token : str, optional
        Cloud token; default: the environment variable ``QBOSON_PERCEVAL_TOKEN``.
    url : str, optional
        Cloud API address (default: Perceval's).
    noise : qboson.noise.NoiseModel or perceval.NoiseModel, optional
        Noise simulated by Perceval.  A qboson model is translated where the two coincide (uniform loss,
        detector efficiency, visibility, threshold detectors, post-selection on at least k photons).
    timeout : float
        Seconds allowed for each request to the cloud.
    job_timeout : float
        Seconds to wait for a remote job to finish before giving up (``TimeoutError``).
    """

    name = "perceval"

    def __init__(
        self,
        simulator: str = "SLOS",
        *,
        platform: Optional[str] = None,
        token: Optional[str] = None,
        url: Optional[str] = None,
        noise: Any = None,
        timeout: float = 10.0,
        job_timeout: float = 3600.0,
    ) -> None:
        self._pcvl = _import_perceval()
        if platform is None:
            if simulator not in _SIMULATORS:
                raise ValueError(f"unknown Perceval simulator {simulator!r}; choose one of {_SIMULATORS}")
        else:
            if not isinstance(platform, str) or not _PLATFORM_RE.match(platform):
                raise ValueError(f"platform must be a Quandela platform name such as 'sim:altair', got {platform!r}")
            token = token if token is not None else os.environ.get(TOKEN_ENV)
            if not token or not isinstance(token, str):
                raise ValueError(
                    f"remote platform {platform!r} needs a Quandela cloud token: pass token=... or set {TOKEN_ENV}"
                )
            if url is not None and not re.match(r"^https?://", str(url)):
                raise ValueError(f"url must start with http:// or https://, got {url!r}")
        for name, value in (("timeout", timeout), ("job_timeout", job_timeout)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        self.simulator = simulator
        self.platform = platform
        self._token = token
        self.url = url
        self.timeout = float(timeout)
        self.job_timeout = float(job_timeout)
        self.noise = noise
        self._pcvl_noise, self._threshold, self._min_detected = _translate_noise(noise, self._pcvl)

    def __repr__(self) -> str:
        where = f"platform={self.platform!r}" if self.platform else f"simulator={self.simulator!r}"
        return f"PercevalBackend({where}, noise={self.noise!r})"

    # ------------------------------------------------------------------------------------------
    def _processor(self, u: np.ndarray, modes: np.ndarray, remote=None):
        pcvl = self._pcvl
        m = u.shape[0]
        circuit = pcvl.Unitary(pcvl.Matrix(u))
        if remote is None:
            proc = pcvl.Processor(self.simulator, circuit, noise=self._pcvl_noise)
        else:
            proc = remote
            proc.add(0, circuit)
            if self._pcvl_noise is not None:
                proc.noise = self._pcvl_noise
        if self._threshold:
            for i in range(m):
                proc.add(i, pcvl.Detector.threshold())
        proc.with_input(pcvl.BasicState([1 if i in set(modes.tolist()) else 0 for i in range(m)]))
        proc.min_detected_photons_filter(0 if self._min_detected is None else self._min_detected)
        return proc

    def _connect(self):
        """A RemoteProcessor, or ConnectionError naming the platform (bounded by ``timeout``)."""
        from perceval.providers.quandela.rpc_handler import RPCHandler

        handler = RPCHandler(self.platform, self.url or "https://api.cloud.quandela.com", self._token, {})
        handler.request_timeout = self.timeout
        try:
            return self._pcvl.RemoteProcessor(rpc_handler=handler)
        except Exception as exc:  # requests' ConnectionError/Timeout/HTTPError, DNS failures, bad tokens
            raise ConnectionError(
                f"could not reach Quandela cloud platform {self.platform!r} at {handler.url} within "
                f"{self.timeout:g} s ({type(exc).__name__}: {exc}); check network access and the token"
            ) from exc

    def sample(self, unitary_or_circuit, input_modes: Sequence[int], shots: int, seed: SeedLike = None) -> np.ndarray:
        """Photon counts, shape (shots, m), from Perceval (rows in the order Perceval produced them).

        ``seed`` seeds Perceval's global random generator (local simulators; remote results are shuffled
        with it).  Perceval's multi-threaded samplers do not always reproduce long runs bit for bit from
        one seed (observed with perceval-quandela 1.3.1); use the ``local`` backend where that matters.  Lost photons simply do not appear; with noise post-selection, every row is accepted.
        """
        shots = as_int(shots, "shots", minimum=0)
        u = check_unitary(as_unitary(unitary_or_circuit), atol=UNITARY_ATOL)
        m = u.shape[0]
        modes = input_mode_array(input_modes, None, m)
        ps = getattr(self.noise, "postselect", None)
        if ps is not None and max(ps) < modes.size:
            # Perceval keeps every shot with >= k detections: a rule with an upper end below n differs.
            raise ValueError(
                f"Perceval cannot post-select on {list(ps)} detected photons with {modes.size} photons "
                f"(it keeps every shot with at least {min(ps)}); use the 'local' backend"
            )
        if shots == 0:
            return np.zeros((0, m), dtype=count_dtype(modes.size))
        seed_int = int(seed_sequence(seed).generate_state(1, dtype=np.uint32)[0])
        if self.platform is None:
            self._pcvl.random_seed(seed_int)
            proc = self._processor(u, modes)
            result = self._pcvl.algorithm.Sampler(proc).samples(shots)
            rows = [list(state) for state in result["results"]]
        else:
            rows = self._remote_rows(u, modes, shots, seed_int)
        out = np.array(rows, dtype=np.int64).reshape(-1, m)
        if out.shape[0] != shots:
            raise RuntimeError(f"Perceval returned {out.shape[0]} samples instead of {shots}")
        return np.ascontiguousarray(out, dtype=count_dtype(max(int(out.max(initial=0)), modes.size)))

    def _remote_rows(self, u, modes, shots, seed_int):
        proc = self._processor(u, modes, remote=self._connect())
        sampler = self._pcvl.algorithm.Sampler(proc, max_shots_per_call=shots)
        try:
            job = sampler.sample_count
            job.execute_async(shots)
            deadline = time.monotonic() + self.job_timeout
            while not job.is_complete:
                if time.monotonic() > deadline:
                    job.cancel()
                    raise TimeoutError(f"remote job on {self.platform!r} did not finish within {self.job_timeout:g} s")
                time.sleep(1.0)
            counts = job.get_results()["results"]
        except (TimeoutError, ValueError):
            raise
        except Exception as exc:
            raise ConnectionError(f"remote job on {self.platform!r} failed ({type(exc).__name__}: {exc})") from exc
        rows = [list(state) for state, count in counts.items() for _ in range(int(count))]
        order = generator(seed_int).permutation(len(rows))
        return [rows[i] for i in order[:shots]]
