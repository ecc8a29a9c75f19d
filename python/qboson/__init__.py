"""qboson: fast exact boson sampling and quantum latent distributions.

The public API::

    qboson.sample(n, m, shots, ...)       exact photon-count samples, shape (shots, m)
    qboson.permanent(a)                   matrix permanent (Glynn, vectorised C++)
    qboson.probability(U, inputs, s)      exact probability of one output pattern
    qboson.probabilities(U, inputs)       the whole output distribution of a small instance
    qboson.haar_unitary(m, seed)          Haar-random interferometer
    qboson.estimate_cost(n, m, shots)     expected run time of a sampling call, in seconds
"""

from ._version import __version__
from .cost import estimate_cost
from .permanent import permanent
from .probability import probabilities, probability
from .sampling import sample
from .unitary import check_unitary, haar_unitary

__all__ = [
    "__version__",
    "sample",
    "permanent",
    "probability",
    "probabilities",
    "haar_unitary",
    "check_unitary",
    "estimate_cost",
    "build_info",
]


_SUBMODULES = ("latent", "circuits", "noise", "backends", "chem", "molgan", "experiments", "distributed", "torch")


def __getattr__(name: str):
    # Submodules load on first use, so `import qboson` stays light (no torch, RDKit or Dask).
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"qboson.{name}")
    raise AttributeError(f"module 'qboson' has no attribute {name!r}")


def build_info() -> dict:
    """How the compiled core was built and what it runs.

    Keys: ``version``; ``openmp`` (bool); ``simd``, the CPU's highest x86-64 level; ``kernel``, the
    compiled variant of the double-precision kernels in use (``"avx512"``, ``"avx2"`` or
    ``"baseline"``, forced with the environment variable ``QBOSON_KERNEL``); ``kernels``, the
    variants this CPU can run; ``lanes``, Gray-code chains per block.
    """
    from . import _core

    return dict(_core.build_info())
