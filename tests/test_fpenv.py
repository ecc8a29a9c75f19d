"""qboson._fpenv: float32 subnormals flushed on every torch CPU thread, and only inside the context."""

import pytest
import torch

from qboson._fpenv import flushed_subnormals

SUBNORMAL = 1e-40  # below float32's smallest normal, 1.18e-38


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _flushed_fraction() -> float:
    """Fraction of a product's outputs flushed to zero; the elementwise kernel splits 2**21
    elements over all torch threads, so a thread left out shows as a fraction below 1."""
    x = torch.full((1 << 21,), SUBNORMAL, dtype=torch.float32)
    return float(((x * 1.0) == 0).float().mean())


def test_flush_is_scoped_to_the_context(two_threads):
    with flushed_subnormals() as reached:
        assert reached >= 1
        assert float(torch.tensor([SUBNORMAL]) * 1.0) == 0.0
    assert float(torch.tensor([SUBNORMAL]) * 1.0) > 0.0
    with flushed_subnormals(False) as reached:
        assert reached == 0
        assert float(torch.tensor([SUBNORMAL]) * 1.0) > 0.0


@pytest.mark.skipif("parallel backend: OpenMP" not in torch.__config__.parallel_info(),
                    reason="the worker threads are OpenMP's")
def test_every_worker_thread_flushes(two_threads):
    # regression: torch.set_flush_denormal set the calling thread only, so with two threads
    # half of each product still ran on subnormals (qboson train --threads 2 was 3.5x slower)
    _flushed_fraction()  # the OpenMP team exists before the context, as in a training run
    with flushed_subnormals() as reached:
        assert reached == 2
        assert _flushed_fraction() == 1.0
    assert _flushed_fraction() == 0.0  # and every thread is back to gradual underflow
