"""Adapters that run peer simulators on the same matrices, for the comparison benchmarks.

Each adapter returns None when its package is missing (install the ``bench`` extra).
All are asked for one thread where the peer lets us choose.
"""

from __future__ import annotations

import os
import warnings


def single_thread_env() -> None:
    """Ask the peers' thread pools for one thread (must run before numpy or a peer is imported)."""
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


# At import, before numpy below: numpy's BLAS reads its thread count once, when it loads.
single_thread_env()

import numpy as np  # noqa: E402


def thewalrus_permanent():
    try:
        from thewalrus import perm
    except ImportError:
        return None
    return lambda a: perm(a, method="bbfg")


def perceval_permanent():
    try:
        import exqalibur as xq
    except ImportError:
        return None
    return lambda a: xq.permanent_cx(np.ascontiguousarray(a), "glynn")


def perceval_sampler():
    """Perceval's Clifford & Clifford 2017 backend: (unitary, n, shots) -> samples."""
    try:
        import perceval as pcvl
    except ImportError:
        return None

    def run(u, n, shots):
        backend = pcvl.Clifford2017Backend()
        backend.set_circuit(pcvl.Unitary(pcvl.Matrix(u)))
        m = u.shape[0]
        backend.set_input_state(pcvl.BasicState([1] * n + [0] * (m - n)))
        return backend.samples(shots)

    return run


def piquasso_sampler():
    try:
        import piquasso as pq
    except ImportError:
        return None

    def run(u, n, shots):
        m = u.shape[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with pq.Program() as program:
                pq.Q() | pq.StateVector([1] * n + [0] * (m - n))
                pq.Q() | pq.Interferometer(u)
                pq.Q() | pq.ParticleNumberMeasurement()
            return pq.SamplingSimulator(d=m).execute(program, shots=shots).samples

    return run


def limit_native_pools() -> None:
    """Also cap already-loaded BLAS/OpenMP pools at one thread (threadpoolctl, when installed).

    qboson passes its thread count explicitly to every OpenMP region, so it is not affected.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=1)
