"""Backends: one small protocol for every source of photon-count samples.

A backend is any object with ::

    sample(unitary_or_circuit, input_modes, shots, seed=None) -> ndarray, shape (shots, m)

``unitary_or_circuit`` is an (m, m) complex matrix (``U[i, j]`` = amplitude from input j to output i)
or a circuit object with a ``unitary()`` method (e.g. :class:`qboson.circuits.TimeBinCircuit`);
``input_modes`` are the distinct occupied inputs, one photon each; the result holds photon counts
(unsigned integers), one row per shot.  A backend whose ``sample`` also accepts ``start=`` (index of
the first shot) promises that shot ``i`` depends only on ``(seed, start + i)``; one that accepts
``distinguishable=`` can sample distinguishable photons.  :mod:`qboson.latent` and the Torch dataset
use these optional arguments when present.

Built-in backends, by name:

``local``     the C++ exact sampler (:func:`qboson.sample`), noise models included (the default);
``perceval``  Quandela's Perceval: local simulators (SLOS, CliffordClifford2017, ...) or a remote
              processor on Quandela's cloud (``pip install qboson[hardware]``);
``recorded``  replays photon counts captured on hardware from ``.npz``/``.npy``/``.csv`` files.

Third-party adapters register themselves through the entry-point group ``qboson.backends`` (the entry
point names a class or factory called with the keyword options of :func:`get`) or at run time with
:func:`register`.  See ``docs/noise_and_backends.md`` for a worked example.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, Protocol, runtime_checkable

import numpy as np

__all__ = ["Backend", "ENTRY_POINT_GROUP", "available", "get", "register", "resolve"]

#: Entry-point group scanned by :func:`get` and :func:`available`.
ENTRY_POINT_GROUP = "qboson.backends"

_BUILTIN: Dict[str, str] = {
    "local": "qboson.backends.local:LocalBackend",
    "perceval": "qboson.backends.perceval:PercevalBackend",
    "recorded": "qboson.backends.recorded:RecordedBackend",
}
_REGISTERED: Dict[str, Callable[..., Any]] = {}


@runtime_checkable
class Backend(Protocol):
    """The backend protocol (see the module notes)."""

    def sample(self, unitary_or_circuit, input_modes, shots: int, seed=None) -> np.ndarray:
        """Photon counts, shape (shots, m), unsigned integers."""
        ...


def _entry_points() -> dict:
    from importlib.metadata import entry_points

    try:
        eps = entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # Python < 3.10 style
        eps = entry_points().get(ENTRY_POINT_GROUP, [])
    return {ep.name: ep for ep in eps}


def register(name: str, factory: Callable[..., Any], *, overwrite: bool = False) -> None:
    """Make ``get(name, **options)`` call ``factory(**options)``.

    Raises ``ValueError`` if the name is taken (a built-in, an entry point or an earlier registration)
    unless ``overwrite=True``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"backend name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise TypeError(f"backend factory for {name!r} must be callable, got {type(factory).__name__}")
    if not overwrite and (name in _BUILTIN or name in _REGISTERED or name in _entry_points()):
        raise ValueError(f"backend {name!r} is already defined; pass overwrite=True to replace it")
    _REGISTERED[name] = factory


def available() -> list:
    """Names :func:`get` accepts: built-ins, run-time registrations and installed entry points (sorted)."""
    return sorted(set(_BUILTIN) | set(_REGISTERED) | set(_entry_points()))


def _factory(name: str) -> Callable[..., Any]:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN:
        module, attr = _BUILTIN[name].split(":")
        return getattr(importlib.import_module(module), attr)
    eps = _entry_points()
    if name in eps:
        try:
            return eps[name].load()
        except Exception as exc:
            raise ImportError(
                f"backend {name!r} (entry point {eps[name].value!r} in group {ENTRY_POINT_GROUP!r}) failed to load: {exc}"
            ) from exc
    raise ValueError(f"unknown backend {name!r}; available: {', '.join(available())}")


def get(name: str = "local", **options) -> Any:
    """A backend by name, constructed with ``options`` (e.g. ``get("local", noise=model)``).

    Raises
    ------
    ValueError
        For an unknown name (the message lists the available ones) or invalid options.
    TypeError
        If the factory does not return an object with a ``sample`` method.
    """
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a string, got {type(name).__name__}")
    backend = _factory(name)(**options)
    if not callable(getattr(backend, "sample", None)):
        raise TypeError(f"backend {name!r} returned {type(backend).__name__}, which has no sample() method")
    return backend


def resolve(backend: Any = None, **options) -> Any:
    """``None`` -> the local backend, a name -> :func:`get`, an object with ``sample`` -> itself."""
    if backend is None:
        return get("local", **options)
    if isinstance(backend, str):
        return get(backend, **options)
    if options:
        raise ValueError("options are only accepted together with a backend name")
    if not callable(getattr(backend, "sample", None)):
        raise TypeError(f"{type(backend).__name__} is not a backend: it has no sample() method")
    return backend
