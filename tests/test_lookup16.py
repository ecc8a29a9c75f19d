"""bfloat16 tanh and sigmoid by table lookup: PyTorch's values and gradients, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qboson import _core, _lookup16  # noqa: E402
from qboson._fpenv import flushed_subnormals  # noqa: E402

NAMES = ("tanh", "sigmoid")
TORCH = {"tanh": torch.tanh, "sigmoid": torch.sigmoid}


def _every_bf16() -> torch.Tensor:
    """All 65,536 bfloat16 bit patterns: zeros, subnormals, normals, infinities and NaNs of both signs."""
    return torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int16)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit for bit, except that any NaN equals any NaN: torch's own sigmoid gives NaNs other sign and
    payload bits in its scalar tail than in its vector body."""
    nan = torch.isnan(a)
    return torch.equal(nan, torch.isnan(b)) and torch.equal(_bits(a)[~nan], _bits(b)[~nan])


@pytest.fixture
def lookup_everything(monkeypatch):
    monkeypatch.setattr(_lookup16, "MIN_ELEMENTS", 0)


@pytest.mark.parametrize("name", NAMES)
def test_every_bfloat16_value_matches_torch(name, lookup_everything):
    x = _every_bf16()
    f = getattr(_lookup16, name)
    assert torch.equal(_bits(f(x)), _bits(TORCH[name](x)))  # NaNs included
    # every offset exercises the kernel's tail (and torch's), threads split the work
    for start in range(17):
        assert _same(f(x[start:]), TORCH[name](x[start:])), start
    with_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert _same(f(x), TORCH[name](x))
    finally:
        torch.set_num_threads(with_threads)


@pytest.mark.parametrize("name", NAMES)
def test_every_value_matches_torch_with_subnormals_flushed(name, lookup_everything):
    # with flush-to-zero and denormals-are-zero torch maps subnormal inputs otherwise: its own table
    x = _every_bf16()
    f = getattr(_lookup16, name)
    plain = f(x)
    with flushed_subnormals(True):
        assert _core.subnormal_mode() == 3
        flushed = f(x)
        assert torch.equal(_bits(flushed), _bits(TORCH[name](x)))
    assert _core.subnormal_mode() == 0
    if name == "tanh":  # tanh(x) = x for a subnormal x, unless flushed
        assert not torch.equal(_bits(plain), _bits(flushed))
    assert torch.equal(_bits(f(x)), _bits(plain))


def test_a_table_is_built_in_its_own_mode():
    with pytest.raises(RuntimeError, match="must be built in that mode"):
        _lookup16.table.__wrapped__("sigmoid", 3)  # past the cache, which may hold it from another test


@pytest.mark.parametrize("name", NAMES)
def test_strided_and_shaped_inputs(name, lookup_everything):
    g = torch.Generator().manual_seed(0)
    x = (4 * torch.randn(7, 33, 20, generator=g)).bfloat16()
    f = getattr(_lookup16, name)
    for view in (x, x.transpose(0, 2), x[:, ::3], x[..., 0]):
        y = f(view)
        assert y.shape == view.shape and y.dtype == torch.bfloat16
        assert _same(y, TORCH[name](view))
    assert f(torch.empty(0, 3, dtype=torch.bfloat16)).shape == (0, 3)


@pytest.mark.parametrize("name", NAMES)
def test_first_and_second_derivatives_match_torch(name, lookup_everything):
    g = torch.Generator().manual_seed(1)
    x0 = (3 * torch.randn(64, 40, generator=g)).bfloat16()
    w = torch.randn(64, 40, generator=g).bfloat16()

    def grads(fn):
        x = x0.clone().requires_grad_(True)
        y = fn(x)
        (gx,) = torch.autograd.grad((y * w).sum(), x, create_graph=True)
        (ggx,) = torch.autograd.grad((gx.float() ** 2).sum(), x)  # as a gradient penalty differentiates
        return y, gx, ggx

    ours, theirs = grads(getattr(_lookup16, name)), grads(TORCH[name])
    for a, b in zip(ours, theirs):
        assert torch.equal(_bits(a), _bits(b))


def test_other_dtypes_devices_and_small_tensors_go_to_torch(monkeypatch):
    calls = []
    monkeypatch.setattr(_lookup16._core, "lookup16", lambda *a: calls.append(a))
    monkeypatch.setattr(_lookup16, "table", lambda name, mode: None)
    x32 = torch.randn(1 << 15)
    assert torch.equal(_lookup16.tanh(x32), torch.tanh(x32))
    small = torch.randn(_lookup16.MIN_ELEMENTS - 1).bfloat16()
    assert torch.equal(_bits(_lookup16.sigmoid(small)), _bits(torch.sigmoid(small)))
    assert not calls
    _lookup16.tanh(torch.randn(_lookup16.MIN_ELEMENTS).bfloat16())
    assert len(calls) == 1
    # where the subnormal mode cannot be read, neither can the table be chosen
    monkeypatch.setattr(_lookup16._core, "subnormal_mode", lambda: -1)
    big = torch.randn(_lookup16.MIN_ELEMENTS).bfloat16()
    assert torch.equal(_bits(_lookup16.tanh(big)), _bits(torch.tanh(big)))
    assert len(calls) == 1


def test_table_is_read_only_and_names_are_checked():
    t = _lookup16.table("tanh")
    assert t.shape == (65537,) and t.dtype == np.int16 and not t.flags.writeable
    with pytest.raises(ValueError, match="no table for 'relu'"):
        _lookup16.table("relu")


def test_kernel_refuses_mismatched_arrays():
    table = _lookup16.table("tanh")
    x = np.zeros(10, np.int16)
    with pytest.raises(ValueError, match="differ in size"):
        _core.lookup16(x, np.zeros(9, np.int16), table)
    with pytest.raises(ValueError, match="65536 entries and one of padding"):
        _core.lookup16(x, np.zeros(10, np.int16), table[:65536])
    with pytest.raises(ValueError, match="threads"):
        _core.lookup16(x, np.zeros(10, np.int16), table, 0)
    with pytest.raises(TypeError):
        _core.lookup16(x, np.zeros(10, np.float32), table)  # no silent conversion of the output
    with pytest.raises(TypeError):  # nor a contiguous copy of a strided one, whose result would be lost
        _core.lookup16(x, np.zeros((2, 10), np.int16)[:, ::2], table)
    out = np.zeros(10, np.int16)
    _core.lookup16(np.arange(10, dtype=np.int16), out, table)
    assert np.array_equal(out, table[:10])
