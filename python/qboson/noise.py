"""Exact sampling of noisy boson-sampling devices: loss, partial distinguishability, detectors.

A :class:`NoiseModel` is passed to :func:`qboson.sample` (``noise=model``) or to the ``local``
backend.  Every noise source is sampled exactly (no truncation, no approximation), and every
shot stays reproducible: shot ``i`` depends only on the seed and ``start + i``, whatever the
number of threads or the split of a run into calls.

The model of one shot, in the order a photon meets it
-----------------------------------------------------
1. **Input loss.**  Photon j (entering mode ``input_modes[j]``) survives with probability
   ``transmission * input_transmission[input_modes[j]] * detector_efficiency`` (all probabilities,
   dimensionless, in [0, 1]; the scalar detector efficiency is folded in here because uniform loss
   commutes with any interferometer).  Losses are independent per photon (binomial thinning).
2. **Interferometer.**  The (possibly sub-unitary) matrix ``U`` passed to :meth:`NoiseModel.sample`,
   followed by per-output-mode loss ``output_transmission[i] * detector_efficiency[i]`` (when the
   detector efficiency is given per mode).  A lossy ``A = diag(sqrt(t_out)) U`` is sampled exactly by
   dilation: its occupied columns ``A_T`` (m x n) are completed to orthonormal columns of m + n modes,
   ``[A_T; sqrt(1 - A_T^dagger A_T)]``, the n extra (environment) modes are sampled like any other and
   dropped.  A uniform factor (largest singular value of ``A_T``) is moved into the input loss first.
3. **Partial distinguishability.**  Each surviving photon is, independently, indistinguishable with
   probability ``x`` (the *overlap*: the wave-packet overlap ``<psi_i|psi_j>`` of two photons) and
   otherwise fully distinguishable.  The indistinguishable ones are sampled by Clifford & Clifford,
   the others routed classically by ``|A_ij|^2``, and the counts added.  This is exact for a uniform
   overlap: permutation cycles of length l carry weight ``x^l`` in both pictures.  The two-photon
   Hong-Ou-Mandel visibility is ``V = x^2``; give either ``indistinguishability=x`` or
   ``hom_visibility=V`` (Perceval's ``indistinguishability`` parameter is V).
4. **Angle noise** (time-bin loop circuits only).  Each beam-splitter angle gets independent Gaussian
   noise of standard deviation ``angle_noise`` radians, redrawn for every shot (and every
   post-selection attempt); the shot is sampled exactly through its own unitary.
5. **Detection.**  Dark counts: each output mode independently gets one extra count with probability
   ``dark_count_probability`` (per mode, per shot, i.e. per detection window; not a rate).  Then
   ``detection="pnr"`` keeps photon numbers and ``"threshold"`` clips every count at 1 (a click).
6. **Post-selection.**  With ``postselect`` given, a shot is kept only when its number of detected
   photons (clicks for threshold detectors, dark counts included) is one of the allowed values
   (``postselect=16``, ``[15, 16]``, ``"14..16"``) or, with ``postselect=">=16"``, at least 16 (the
   paper's hardware run: every input time bin filled, shots with fewer than 16 detections discarded);
   otherwise it is redrawn.  Attempt ``a`` of shot ``i`` uses the stream ``(seed, a, start + i)``, so
   shot ``i`` of the output still depends only on the seed and ``start + i``.  The number of raw
   attempts and the acceptance rate are reported by :meth:`NoiseModel.run` (and in
   ``model.last_run`` after every call).
"""

from __future__ import annotations

import concurrent.futures
import math
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

from ._progress import progress_bar
from ._validation import as_int, as_threads, check_unitary, input_mode_array
from .circuits import TimeBinCircuit
from .cost import estimate_cost
from .sampling import METHODS, run_sampler

__all__ = ["NoiseModel", "NoisyRun", "transmission_from_db", "parse_postselect"]

ArrayLike = Union[float, Sequence[float], np.ndarray]

#: Singular values of the occupied columns closer than this count as one uniform transmission.
_UNIFORM_TOL = 1e-10
#: Extra seconds a one-shot kernel call costs compared with a shot inside a long call (Python overhead).
_CALL_OVERHEAD_S = 6e-5
#: Retry a of shot g (post-selection) is raw shot g * _RETRY_STRIDE + a - 1 of the retry stream.
_RETRY_STRIDE = 1 << 22
_MAX_SHOT_INDEX = 1 << 40
#: Largest photon number a post-selection rule may name (far above any device; bounds its lookup table).
_MAX_POSTSELECT = 1 << 20
#: Largest block of retries drawn for one shot in one kernel call.
_MAX_RETRY_BLOCK = 4096
#: Kernel calls expected to take less than this many seconds run on one thread.
_PARALLEL_AFTER_S = 0.02
#: Tags separating the streams of post-selection attempts and angle noise from the shot streams.
_ATTEMPT_TAG = 0x5053_454C  # "PSEL"
_ANGLE_TAG = 0x414E_474C  # "ANGL"


@dataclass(frozen=True)
class NoisyRun:
    """What one noisy sampling call did.

    Attributes
    ----------
    samples : ndarray, shape (shots, m), unsigned integers
        The returned (accepted) photon counts.
    attempts : int
        Raw shots drawn, including the ones post-selection rejected (equals ``shots`` without it).
    """

    samples: np.ndarray
    attempts: int

    @property
    def accepted(self) -> int:
        """Number of accepted shots."""
        return int(self.samples.shape[0])

    @property
    def acceptance_rate(self) -> float:
        """accepted / attempts (1.0 without post-selection, nan when nothing was drawn)."""
        return self.accepted / self.attempts if self.attempts else float("nan")


def _probability(value, name: str) -> float:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return v


def _probability_or_array(value, name: str) -> Union[float, np.ndarray]:
    if np.ndim(value) == 0:
        return _probability(value, name)
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"{name} must be a number or a 1-D array of numbers in [0, 1]") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a number or a 1-D array (one value per mode), got shape {arr.shape}")
    if not np.all((arr >= 0) & (arr <= 1)):
        raise ValueError(f"{name} must lie in [0, 1] for every mode")
    arr.setflags(write=False)
    return arr


def _counter_normals(key: int, attempt: int, indices: np.ndarray, count: int) -> np.ndarray:
    """Standard normals, shape (len(indices), count), a pure function of (key, attempt, index, column).

    Counter-based (SplitMix64 finaliser on a hash of the four words, then Box-Muller), so any shot's
    values can be computed without the others, vectorised.
    """
    with np.errstate(over="ignore"):
        base = np.uint64(_derived_key(key, _ANGLE_TAG, attempt))
        g = np.asarray(indices, dtype=np.uint64)[:, None] * np.uint64(0x9E3779B97F4A7C15)
        c = (np.arange(2 * count, dtype=np.uint64) + np.uint64(1)) * np.uint64(0xD1B54A32D192ED03)
        z = (base ^ g) + c
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    u = ((z >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53  # uniform in (0, 1)
    u1, u2 = u[:, :count], u[:, count:]
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def transmission_from_db(loss_db: float) -> float:
    """Survival probability of a loss given in decibels: ``10 ** (-loss_db / 10)`` (3 dB -> ~0.501)."""
    loss_db = float(loss_db)
    if not (loss_db >= 0 and math.isfinite(loss_db)):
        raise ValueError(f"loss in dB must be finite and >= 0, got {loss_db!r}")
    return 10.0 ** (-loss_db / 10.0)


def parse_postselect(value) -> tuple[Optional[tuple], Optional[int]]:
    """Normalise a post-selection rule to ``(allowed values or None, at-least bound or None)``.

    Accepted forms: an int (exactly k detected photons), a sequence of ints (any of them), and strings
    ``">=k"`` (at least k), ``"a..b"`` (a to b inclusive) or ``"k"``.  Raises ``ValueError``/``TypeError``
    naming the problem.
    """
    if isinstance(value, str):
        text = value.replace(" ", "")
        try:
            if text.startswith(">="):
                return None, _photon_number(int(text[2:]), "postselect")
            if ".." in text:
                lo, hi = (_photon_number(int(t), "postselect") for t in text.split("..", 1))
                if hi < lo:
                    raise ValueError(f"postselect range {value!r} is empty")
                return tuple(range(lo, hi + 1)), None
            return (_photon_number(int(text), "postselect"),), None
        except ValueError as exc:
            if "postselect" in str(exc):
                raise
            raise ValueError(f"postselect must look like 16, '>=16' or '14..16', got {value!r}") from None
    if isinstance(value, (set, frozenset, dict)):
        raise TypeError(f"postselect must be an int, a sequence of ints or a string like '>=16', got {type(value).__name__}")
    try:
        values = [value] if np.ndim(value) == 0 else list(value)
    except (TypeError, ValueError):
        raise TypeError(f"postselect must be an int, a sequence of ints or a string like '>=16', got {value!r}") from None
    if not values:
        raise ValueError("postselect must name at least one number of detected photons")
    values = tuple(sorted({_photon_number(v, "postselect") for v in values}))
    return values, None


def _photon_number(value, name: str) -> int:
    k = as_int(value, name, minimum=0)
    if k > _MAX_POSTSELECT:
        raise ValueError(f"{name}={k} is more detected photons than any device holds (limit {_MAX_POSTSELECT})")
    return k


def _derived_key(key: int, *words: int) -> int:
    seq = np.random.SeedSequence([int(key) & (2**64 - 1), *words])
    return int(seq.generate_state(1, dtype=np.uint64)[0])


@dataclass(frozen=True, eq=False)
class NoiseModel:
    """A noisy photonic device, sampled exactly (see the module notes for the model and its units).

    Parameters
    ----------
    transmission : float
        Probability that a photon survives the whole setup (uniform loss), in [0, 1].
    input_transmission : array_like, shape (m,), optional
        Survival probability per *input* mode (source and coupling losses), in [0, 1].
    output_transmission : array_like, shape (m,), optional
        Survival probability per *output* mode (losses after the interferometer), in [0, 1].
    detector_efficiency : float or array_like, shape (m,)
        Detection probability; a scalar is folded into the uniform loss, an array into the output loss.
    indistinguishability : float, optional
        The overlap x in [0, 1]: probability that a photon is indistinguishable (default 1).
    hom_visibility : float, optional
        The Hong-Ou-Mandel visibility V = x^2 in [0, 1], instead of ``indistinguishability``.
    dark_count_probability : float or array_like, shape (m,)
        Probability of one dark count per output mode per shot, in [0, 1].
    detection : {"pnr", "threshold"}
        Photon-number-resolving detectors, or threshold (click) detectors that report min(count, 1).
    postselect : int, sequence of int or str, optional
        Keep only shots whose number of detected photons (clicks for threshold detection) is one of
        these: ``16``, ``[15, 16]``, ``"14..16"``, or ``">=16"`` for at least 16 (as in the paper's
        hardware run, which filled all 32 input bins and kept shots with at least 16 detections).
        After construction this attribute is a sorted tuple, or None for an at-least rule (whose bound
        is then in ``min_detected``).
    min_detected : int, optional
        Keep only shots with at least this many detected photons (the same as ``postselect=">=k"``).
    angle_noise : float
        Standard deviation, in radians, of independent Gaussian errors on every beam-splitter angle of a
        :class:`qboson.circuits.TimeBinCircuit`, redrawn per shot.
    circuit : TimeBinCircuit, optional
        The circuit to perturb when ``angle_noise > 0`` and the model is given a plain matrix (as
        :func:`qboson.sample` does); not needed when the circuit itself is passed to :meth:`sample`.
    max_attempts : int
        Give up (``RuntimeError``) when post-selection has rejected one shot this many times.
    """

    transmission: float = 1.0
    input_transmission: Optional[ArrayLike] = None
    output_transmission: Optional[ArrayLike] = None
    detector_efficiency: ArrayLike = 1.0
    indistinguishability: Optional[float] = None
    hom_visibility: Optional[float] = None
    dark_count_probability: ArrayLike = 0.0
    detection: str = "pnr"
    postselect: Optional[Union[int, Sequence[int], str]] = None
    min_detected: Optional[int] = None
    angle_noise: float = 0.0
    circuit: Optional[TimeBinCircuit] = None
    max_attempts: int = 100_000
    last_run: Optional[NoisyRun] = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        put("transmission", _probability(self.transmission, "transmission"))
        for name in ("input_transmission", "output_transmission"):
            value = getattr(self, name)
            if value is not None:
                arr = _probability_or_array(value, name)
                if np.ndim(arr) == 0:
                    raise ValueError(f"{name} is per mode (an array); use transmission= for a uniform value")
                put(name, arr)
        put("detector_efficiency", _probability_or_array(self.detector_efficiency, "detector_efficiency"))
        put("dark_count_probability", _probability_or_array(self.dark_count_probability, "dark_count_probability"))
        if self.indistinguishability is not None and self.hom_visibility is not None:
            raise ValueError("give indistinguishability (the overlap x) or hom_visibility (V = x^2), not both")
        if self.indistinguishability is not None:
            put("indistinguishability", _probability(self.indistinguishability, "indistinguishability"))
        if self.hom_visibility is not None:
            put("hom_visibility", _probability(self.hom_visibility, "hom_visibility"))
        if not isinstance(self.detection, str) or self.detection not in ("pnr", "threshold"):
            raise ValueError(f"detection must be 'pnr' or 'threshold', got {self.detection!r}")
        at_least = None
        if self.min_detected is not None:
            at_least = _photon_number(self.min_detected, "min_detected")
        if self.postselect is not None:
            values, bound = parse_postselect(self.postselect)
            if bound is not None and at_least is not None and bound != at_least:
                raise ValueError(f"postselect={self.postselect!r} contradicts min_detected={at_least}")
            if values is not None and at_least is not None:
                raise ValueError("give postselect (allowed photon numbers) or min_detected (at least k), not both")
            at_least = bound if bound is not None else at_least
            put("postselect", values)
        put("min_detected", at_least)
        try:
            if isinstance(self.angle_noise, (str, bytes)):
                raise TypeError
            angle_noise = float(self.angle_noise)
        except (TypeError, ValueError, OverflowError):
            raise TypeError(f"angle_noise must be a number of radians, got {self.angle_noise!r}") from None
        if not (angle_noise >= 0 and math.isfinite(angle_noise)):
            raise ValueError(f"angle_noise must be a finite standard deviation >= 0 (radians), got {self.angle_noise!r}")
        put("angle_noise", angle_noise)
        if self.circuit is not None and not isinstance(self.circuit, TimeBinCircuit):
            raise TypeError("circuit must be a qboson.circuits.TimeBinCircuit")
        put("max_attempts", as_int(self.max_attempts, "max_attempts", minimum=1))
        if self.max_attempts > _RETRY_STRIDE:
            raise ValueError(f"max_attempts must be <= {_RETRY_STRIDE}, got {self.max_attempts}")

    # ------------------------------------------------------------------------------------------
    _JSON_FIELDS = (
        "transmission", "input_transmission", "output_transmission", "detector_efficiency",
        "indistinguishability", "hom_visibility", "dark_count_probability", "detection", "postselect",
        "min_detected", "angle_noise", "max_attempts",
    )

    def to_dict(self) -> dict:
        """The model as JSON-safe values (arrays as lists); :meth:`from_dict` rebuilds it.

        The circuit of an angle-noise model is stored as ``{"delays": [...], "angles": [...]}``.
        """
        out = {}
        for name in self._JSON_FIELDS:
            value = getattr(self, name)
            if isinstance(value, np.ndarray):
                value = [float(v) for v in value]
            elif isinstance(value, tuple):
                value = [int(v) for v in value]
            out[name] = value
        if self.circuit is not None:
            out["circuit"] = {"delays": [int(d) for d in self.circuit.delays],
                              "angles": [float(a) for a in self.circuit.angles]}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "NoiseModel":
        """Rebuild a model from :meth:`to_dict` output (or a hand-written JSON object of the same keys).

        Unknown keys raise ``ValueError`` naming them; bad values raise as the constructor does.
        """
        if not isinstance(data, dict):
            raise TypeError(f"a noise model must be a JSON object (dict), got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls._JSON_FIELDS) - {"circuit"})
        if unknown:
            raise ValueError(f"unknown noise model key(s) {unknown}; valid keys: {', '.join(cls._JSON_FIELDS)}, circuit")
        kwargs = dict(data)
        circuit = kwargs.pop("circuit", None)
        if circuit is not None:
            if not isinstance(circuit, dict) or set(circuit) != {"delays", "angles"}:
                raise ValueError("noise model 'circuit' must be an object with keys 'delays' and 'angles'")
            from .circuits import time_bin_interferometer

            delays = circuit["delays"]
            angles = np.asarray(circuit["angles"], dtype=np.float64)
            m = (angles.size + sum(int(d) for d in delays)) // max(1, len(delays))
            kwargs["circuit"] = time_bin_interferometer(m, delays, angles=angles)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, path) -> "NoiseModel":
        """Read a model from a JSON file (an object of :meth:`to_dict` keys); errors name the file."""
        import json
        from pathlib import Path

        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"cannot read noise model {str(path)!r}: {exc}") from None
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"noise model {str(path)!r}: {exc}") from None

    # ------------------------------------------------------------------------------------------
    @property
    def overlap(self) -> float:
        """The overlap x: probability that a photon is indistinguishable (from either parameter)."""
        if self.indistinguishability is not None:
            return self.indistinguishability
        if self.hom_visibility is not None:
            return math.sqrt(self.hom_visibility)
        return 1.0

    @property
    def visibility(self) -> float:
        """The two-photon Hong-Ou-Mandel visibility V = x^2."""
        return self.overlap**2

    # ------------------------------------------------------------------------------------------
    def sample(
        self,
        circuit_or_unitary,
        input_modes: Sequence[int],
        shots: int,
        *,
        key: int,
        start: int = 0,
        threads: Optional[int] = 1,
        progress: Optional[bool] = None,
        method: str = "cc2020",
        distinguishable: bool = False,
    ) -> np.ndarray:
        """Noisy photon counts, shape (shots, m), unsigned integers (as :func:`qboson.sample`).

        ``circuit_or_unitary`` is an (m, m) unitary or sub-unitary matrix, or a
        :class:`~qboson.circuits.TimeBinCircuit` (needed for angle noise).  ``key`` is the 64-bit shot
        key (``qboson._seeding.split_seed(seed)[1]``); the other arguments are those of
        :func:`qboson.sample`.  ``distinguishable=True`` makes every photon distinguishable.
        The report of the call (attempts, acceptance rate) is left in ``self.last_run``.
        """
        return self.run(
            circuit_or_unitary, input_modes, shots, key=key, start=start, threads=threads,
            progress=progress, method=method, distinguishable=distinguishable,
        ).samples

    def run(
        self,
        circuit_or_unitary,
        input_modes: Sequence[int],
        shots: int,
        *,
        key: int,
        start: int = 0,
        threads: Optional[int] = 1,
        progress: Optional[bool] = None,
        method: str = "cc2020",
        distinguishable: bool = False,
    ) -> NoisyRun:
        """Like :meth:`sample`, returning a :class:`NoisyRun` (samples, attempts, acceptance rate)."""
        shots = as_int(shots, "shots", minimum=0)
        start = as_int(start, "start", minimum=0)
        threads = as_threads(threads)
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
        key = as_int(key, "key", minimum=0)
        circuit, u = self._resolve_circuit(circuit_or_unitary)
        m = u.shape[0]
        modes = input_mode_array(input_modes, None, m)
        plan = _Plan(self, circuit, u, modes, key, threads, method, bool(distinguishable))
        self._check_postselect(plan)
        if shots == 0:
            out, attempts = np.empty((0, m), dtype=plan.dtype), 0
        elif not self.postselects and plan.angle_noise == 0:
            # One pass, no redraws: the kernel's own progress bar (with ETA) and chunking apply.
            out = plan.raw(np.arange(start, start + shots, dtype=np.int64), 0, progress=progress)
            attempts = shots
        else:
            out, attempts = self._redraw_until_accepted(plan, shots, start, progress)
        result = NoisyRun(out, attempts)
        object.__setattr__(self, "last_run", result)
        return result

    @property
    def postselects(self) -> bool:
        """True when some shots may be rejected (an exact or at-least post-selection rule)."""
        return self.postselect is not None or bool(self.min_detected)

    @property
    def postselection_rule(self) -> str:
        """The post-selection rule in words, e.g. ``"at least 16 detected photons"`` (``"none"``)."""
        if self.min_detected is not None:
            return f"at least {self.min_detected} detected photons"
        if self.postselect is None:
            return "none"
        vals = list(self.postselect)
        if len(vals) == 1:
            return f"exactly {vals[0]} detected photons"
        if vals == list(range(vals[0], vals[-1] + 1)):
            return f"{vals[0]} to {vals[-1]} detected photons"
        return f"one of {vals} detected photons"

    def accepts(self, totals) -> np.ndarray:
        """Whether shots with these numbers of detected photons pass post-selection (bool array)."""
        totals = np.asarray(totals, dtype=np.int64)
        if self.min_detected is not None:
            return totals >= self.min_detected
        if self.postselect is None:
            return np.ones(totals.shape, dtype=bool)
        table = self._accept_table
        return table[np.minimum(totals, table.size - 1)]

    def acceptance_probability(self, circuit_or_unitary, input_modes: Sequence[int]) -> float:
        """Exact probability that a raw shot passes post-selection (1.0 without it).

        Exact for PNR detection (any size when all loss acts before the interferometer, up to 20
        photons with per-mode output loss) and threshold detection (up to 16 modes); other cases and
        angle noise raise ``ValueError``.  See :mod:`qboson.noisy_moments`.
        """
        from .noisy_moments import acceptance_probability

        return acceptance_probability(circuit_or_unitary, input_modes, self)

    def _accepted(self, raw: np.ndarray) -> np.ndarray:
        if not self.postselects:
            return np.ones(raw.shape[0], dtype=bool)
        return self.accepts(raw.sum(axis=1, dtype=np.int64))

    @property
    def _accept_table(self) -> np.ndarray:
        """Boolean lookup: ``table[k]`` says whether k detected photons pass post-selection."""
        table = self.__dict__.get("_table")
        if table is None:
            table = np.zeros(self.postselect[-1] + 2, dtype=bool)  # postselect is sorted
            table[list(self.postselect)] = True
            object.__setattr__(self, "_table", table)
        return table

    def _give_up(self, accepted: int, attempts: int) -> RuntimeError:
        rate = accepted / attempts if attempts else 0.0
        return RuntimeError(
            f"post-selection on {self.postselection_rule} rejected a shot {self.max_attempts} "
            f"times (acceptance so far {accepted}/{attempts} = {rate:.3g}); relax postselect, reduce the loss "
            "or raise max_attempts"
        )

    def _redraw_until_accepted(self, plan: "_Plan", shots: int, start: int, progress):
        """Attempt 0 of every shot in one pass, then retries of the rejected shots.

        Without angle noise, retry a >= 1 of shot g is raw shot ``g * 2**22 + a - 1`` of a second stream,
        so a shot's retries are contiguous: one kernel call draws a block of them.  With angle noise every
        attempt has its own unitary anyway, and retries go in rounds.
        """
        if start + shots > _MAX_SHOT_INDEX:
            raise ValueError(f"with post-selection, start + shots must stay below 2**40, got {start + shots}")
        needed = np.arange(start, start + shots, dtype=np.int64)
        with progress_bar(
            total=shots, enabled=plan.show_progress(shots, progress), unit="shot",
            desc=f"noisy n={plan.n} m={plan.m}",
        ) as bar:
            out = plan.raw(needed, 0, progress=False)
            keep = self._accepted(out)
            attempts = shots
            bar.update(int(keep.sum()))
            needed = needed[~keep]
            if plan.angle_noise > 0:
                attempt = 1
                while needed.size:
                    if attempt >= self.max_attempts:
                        raise self._give_up(shots - needed.size, attempts)
                    raw = plan.raw(needed, attempt, progress=False)
                    attempts += needed.size
                    keep = self._accepted(raw)
                    out[needed[keep] - start] = raw[keep]
                    bar.update(int(keep.sum()))
                    needed = needed[~keep]
                    attempt += 1
                return out, attempts
            rate = (shots - needed.size) / shots
            # Retries per kernel call: about 1/acceptance for cheap shots (amortises the call overhead),
            # fewer for expensive ones (drawing past the first accepted retry is wasted work).
            expected = math.ceil(1.0 / max(rate, 1.0 / (10 * shots)))
            amortise = math.ceil(4 * _CALL_OVERHEAD_S / max(plan.per_shot_s, 1e-12))
            block = int(min(_MAX_RETRY_BLOCK, max(1, min(expected, amortise))))
            retry_key = _derived_key(plan.key, _ATTEMPT_TAG)

            def retry(g: int):
                first = 1  # attempt number of the block's first row
                while first < self.max_attempts:
                    size = min(block, self.max_attempts - first)
                    raw = plan.retry_block(retry_key, int(g) * _RETRY_STRIDE + first - 1, size)
                    ok = np.flatnonzero(self._accepted(raw))
                    if ok.size:
                        return raw[ok[0]], first - 1 + int(ok[0]) + 1
                    first += size
                return None, first - 1

            workers = plan.threads if needed.size * block * plan.per_shot_s > _PARALLEL_AFTER_S else 1
            pool = concurrent.futures.ThreadPoolExecutor(workers) if workers > 1 else None
            try:
                results = pool.map(retry, needed) if pool is not None else map(retry, needed)
                for g, (row, used) in zip(needed, results):
                    attempts += used
                    if row is None:
                        raise self._give_up(shots - needed.size + int(np.searchsorted(needed, g)), attempts)
                    out[g - start] = row
                    bar.update(1)
            finally:
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
        return out, attempts

    # ------------------------------------------------------------------------------------------
    def _resolve_circuit(self, circuit_or_unitary):
        if isinstance(circuit_or_unitary, TimeBinCircuit):
            return circuit_or_unitary, circuit_or_unitary.unitary()
        if hasattr(circuit_or_unitary, "unitary") and callable(circuit_or_unitary.unitary):
            circuit_or_unitary = circuit_or_unitary.unitary()
        u = check_unitary(circuit_or_unitary, allow_subunitary=True)
        if self.angle_noise > 0:
            if self.circuit is None:
                raise ValueError(
                    "angle_noise needs the time-bin circuit: pass the TimeBinCircuit itself (e.g. to the "
                    "'local' backend) or build the model with circuit=..."
                )
            if self.circuit.m != u.shape[0] or np.max(np.abs(self.circuit.unitary() - u)) > 1e-8:
                raise ValueError("the matrix to sample is not the unitary of the model's circuit")
            return self.circuit, u
        return None, u

    def _check_postselect(self, plan: "_Plan") -> None:
        if not self.postselects:
            return
        most = plan.n + int(np.count_nonzero(plan.dark[: plan.m]))
        if self.detection == "threshold":
            most = min(most, plan.m)
        least = self.min_detected if self.min_detected is not None else min(self.postselect)
        if least > most:
            raise ValueError(
                f"post-selection on {self.postselection_rule} can never be met: at most {most} photons can be detected "
                f"({plan.n} photons, {plan.m} modes, dark counts on {int(np.count_nonzero(plan.dark[: plan.m]))} modes)"
            )


class _Plan:
    """Everything fixed for one call: columns to sample, per-photon transmissions, dark counts."""

    def __init__(self, model: NoiseModel, circuit, u, modes, key, threads, method, distinguishable):
        self.model = model
        self.circuit = circuit
        self.modes = modes
        self.key = key
        self.threads = threads
        self.method = method
        self.distinguishable = distinguishable
        m = u.shape[0]
        n = modes.size
        self.m, self.n = m, n
        for name in ("input_transmission", "output_transmission", "detector_efficiency", "dark_count_probability"):
            value = getattr(model, name)
            if value is not None and np.ndim(value) == 1 and np.shape(value)[0] != m:
                raise ValueError(f"{name} has {np.shape(value)[0]} entries but the circuit has {m} modes")
        t_in = np.full(n, model.transmission)
        if model.input_transmission is not None:
            t_in = t_in * model.input_transmission[modes]
        if np.ndim(model.detector_efficiency) == 0:
            t_in = t_in * model.detector_efficiency
            out_t = None
        else:
            out_t = np.asarray(model.detector_efficiency)
        if model.output_transmission is not None:
            out_t = model.output_transmission if out_t is None else out_t * model.output_transmission
        self.t_in = t_in
        self.out_amp = None if out_t is None else np.sqrt(out_t)
        dark = np.broadcast_to(np.asarray(model.dark_count_probability, dtype=np.float64), (m,))
        self.dark_m = np.ascontiguousarray(dark)
        self.x = model.overlap
        self.angle_noise = model.angle_noise if circuit is not None else 0.0
        if self.angle_noise > 0:
            self.columns = None
            self.transmission = None
        else:
            self.columns, self.transmission = self.effective(u[:, modes])
        # Dark counts only on the detected modes, never on the environment modes of a dilation.
        if self.columns is not None:
            rows = self.columns.shape[0]
        else:  # a time-bin circuit is unitary: only output losses need environment modes
            rows = m if self.out_amp is None else m + n
        self.dark = np.zeros(rows)
        self.dark[:m] = self.dark_m
        self.dtype = run_sampler(np.eye(rows, n, dtype=np.complex128), 0, key=0, dark_counts=self.dark).dtype
        self.per_shot_s = estimate_cost(n, rows, 1, distinguishable=distinguishable, threads=1, method=method)

    def effective(self, a: np.ndarray):
        """Orthonormal columns to sample and per-photon transmissions for the occupied columns ``a``."""
        if self.out_amp is not None:
            a = self.out_amp[:, None] * a
        s = np.linalg.svd(a, compute_uv=False)
        smax = float(s.max())
        if smax <= 0:
            # Everything is lost: any orthonormal columns with zero transmission.
            return np.eye(a.shape[0], a.shape[1], dtype=np.complex128), np.zeros(a.shape[1])
        t = self.t_in
        if abs(smax - 1.0) > _UNIFORM_TOL:
            a = a / smax
            t = t * min(smax, 1.0) ** 2
            s = s / smax
        if s.min() >= 1.0 - _UNIFORM_TOL:
            return np.ascontiguousarray(a), t
        # Dilation: complete the columns with sqrt(1 - a^dagger a) on n environment modes.
        _, sv, wh = np.linalg.svd(a, full_matrices=False)
        env = (wh.conj().T * np.sqrt(np.clip(1.0 - sv**2, 0.0, 1.0))) @ wh
        return np.ascontiguousarray(np.vstack([a, env])), t

    def effective_batch(self, a: np.ndarray):
        """:meth:`effective` for a batch (S, m, n) of occupied columns: always dilated to m + n modes."""
        a = self.out_amp[None, :, None] * a
        _, sv, wh = np.linalg.svd(a, full_matrices=False)
        smax = np.maximum(sv[:, :1], 1e-300)  # (S, 1), singular values sorted descending
        t = self.t_in[None, :] * np.minimum(smax, 1.0) ** 2
        a = a / smax[:, :, None]
        sv = sv / smax
        env = np.einsum("sji,sj,sjk->sik", wh.conj(), np.sqrt(np.clip(1.0 - sv**2, 0.0, 1.0)), wh)
        return np.ascontiguousarray(np.concatenate([a, env], axis=1)), t

    def show_progress(self, shots: int, progress: Optional[bool]) -> bool:
        if progress is not None:
            return bool(progress)
        return self.per_shot_s * shots / self.threads > 3.0

    # ------------------------------------------------------------------------------------------
    def raw(self, indices: np.ndarray, attempt: int, progress: Optional[bool] = False) -> np.ndarray:
        """Detected counts (before post-selection) of attempt ``attempt`` of the global shots ``indices``.

        Attempt 0 uses the shot stream itself; with angle noise, attempt a >= 1 uses a stream derived from
        (key, a).  Without angle noise only attempt 0 comes here, for a contiguous range of shots (retries
        go through :meth:`retry_block`).
        """
        key = self.key if attempt == 0 else _derived_key(self.key, _ATTEMPT_TAG, attempt)
        if self.angle_noise > 0:
            return self._raw_angle_noise(indices, attempt, key)
        lo = int(indices[0])
        if attempt != 0 or int(indices[-1]) + 1 - lo != indices.size:
            raise AssertionError("fixed-circuit attempts must be 0 and contiguous")  # internal invariant
        raw = self._kernel(self.columns, self.transmission, key, lo, indices.size, progress=progress)
        return self._detect(raw)

    def retry_block(self, key: int, first: int, size: int) -> np.ndarray:
        """Detected counts of raw shots first .. first + size - 1 of the stream ``key`` (fixed circuit)."""
        return self._detect(self._kernel(self.columns, self.transmission, key, first, size, progress=False))

    def _kernel(self, columns, transmission, key, start, shots, progress):
        # Small calls run on one thread: starting an OpenMP team costs more than it saves there.
        threads = self.threads if shots * self.per_shot_s > _PARALLEL_AFTER_S else 1
        return run_sampler(
            columns, shots, key=key, start=start, threads=threads, method=self.method,
            distinguishable=self.distinguishable, transmission=transmission, indistinguishability=self.x,
            dark_counts=self.dark, progress=progress if shots > 1 else False,
            estimate=self.per_shot_s * shots / max(1, min(self.threads, shots)),
        )

    def _detect(self, raw: np.ndarray) -> np.ndarray:
        if raw.shape[1] == self.m and self.model.detection == "pnr":
            return raw
        counts = raw[:, : self.m]
        if self.model.detection == "threshold":
            counts = np.minimum(counts, 1)
        return np.ascontiguousarray(counts, dtype=self.dtype)

    def _angles(self, indices: np.ndarray, attempt: int) -> np.ndarray:
        """Perturbed angles, shape (len(indices), n_beam_splitters): row r from (key, attempt, indices[r]) only."""
        k = self.circuit.n_beam_splitters
        normals = _counter_normals(self.key, attempt, indices, k)
        return self.circuit.angles[None, :] + self.angle_noise * normals

    def _raw_angle_noise(self, indices: np.ndarray, attempt: int, key: int) -> np.ndarray:
        """One unitary per shot: angles perturbed from the stream (key, attempt, shot)."""
        out = np.empty((indices.size, self.m), dtype=self.dtype)
        block = 256

        def work(lo: int) -> None:
            idx = indices[lo : lo + block]
            cols = self.circuit.unitaries(self._angles(idx, attempt), columns=self.modes)
            if self.out_amp is not None:
                cols, transmissions = self.effective_batch(cols)
            else:  # a time-bin circuit is unitary: its columns are orthonormal as they are
                transmissions = np.broadcast_to(self.t_in, (idx.size, self.n))
            for r, g in enumerate(idx):
                raw = self._kernel(cols[r], transmissions[r], key, int(g), 1, progress=False)
                out[lo + r] = self._detect(raw)[0]

        starts = range(0, indices.size, block)
        if self.threads > 1 and indices.size > block:
            with concurrent.futures.ThreadPoolExecutor(self.threads) as pool:
                list(pool.map(work, starts))
        else:
            for lo in starts:
                work(lo)
        return out
