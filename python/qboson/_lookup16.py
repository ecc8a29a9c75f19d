"""``tanh`` and ``sigmoid`` of CPU bfloat16 tensors by table lookup, bit-identical to PyTorch's.

PyTorch's CPU ``tanh`` on bfloat16 runs about 3x slower than its float ``tanh`` and several times
slower than a bfloat16 multiply; in a bf16 MolGAN critic step it was the largest elementwise cost.
A function of one bfloat16 value has only 65,536 inputs, so here it is tabulated once by PyTorch
itself and applied by :func:`qboson._core.lookup16` (one load per element, GIL released).  The
values are therefore PyTorch's bit for bit (a NaN stays NaN; its sign and payload bits are those
of PyTorch's vectorised path, which its scalar path does not always share), and so are the
gradients: the backward pass calls the same ``aten`` backward kernels on the same saved output as
PyTorch's own ``tanh`` / ``sigmoid``, and is itself differentiable (the gradient penalty
differentiates it again).

PyTorch's value for a subnormal input depends on the thread's subnormal mode
(``torch.set_flush_denormal``, :mod:`qboson._fpenv`), so there is one table per mode, chosen by the
calling thread's mode; torch's worker threads are assumed to be in the same mode (as
:func:`qboson._fpenv.flushed_subnormals` leaves them).  Anything else (float32, other devices,
small tensors, CPUs whose mode cannot be read) goes to ``torch.tanh`` / ``torch.sigmoid``.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from . import _core

__all__ = ["tanh", "sigmoid"]

#: tensors smaller than this go to PyTorch: the lookup's fixed cost is a few microseconds
MIN_ELEMENTS = 1 << 14

_FUNCTIONS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid}
_BACKWARDS = {"tanh": torch.ops.aten.tanh_backward, "sigmoid": torch.ops.aten.sigmoid_backward}


#: elements per call while tabulating: below PyTorch's parallel grain size, so that every value is
#: computed on the calling thread, under the subnormal mode read there
_TABULATE_CHUNK = 4096


@functools.lru_cache(maxsize=None)
def table(name: str, subnormal_mode: int = 0) -> np.ndarray:
    """PyTorch's ``name`` (``"tanh"`` or ``"sigmoid"``) of every bfloat16 value: ``(65537,)`` int16 bits,
    entry ``c`` for the value whose bits are ``c`` (read as unsigned), then one entry of padding
    (the kernel's vector gathers read 32-bit words).

    ``subnormal_mode`` is :func:`qboson._core.subnormal_mode` of the thread that computes it (PyTorch's
    result for a subnormal input depends on it: ``torch.set_flush_denormal``); the table is built on
    the calling thread, which must be in that mode.
    """
    if name not in _FUNCTIONS:
        raise ValueError(f"no table for {name!r}; known: {', '.join(_FUNCTIONS)}")
    if _core.subnormal_mode() != subnormal_mode:
        raise RuntimeError(f"the table for subnormal mode {subnormal_mode} must be built in that mode, "
                           f"but this thread is in mode {_core.subnormal_mode()}")
    codes = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    with torch.no_grad():
        values = torch.cat([_FUNCTIONS[name](part) for part in codes.split(_TABULATE_CHUNK)])
    out = np.concatenate([values.view(torch.int16).numpy(), np.zeros(1, np.int16)])
    out.setflags(write=False)
    return out


def _lookup(x: torch.Tensor, name: str, mode: int) -> torch.Tensor:
    x = x.detach().contiguous()
    y = torch.empty_like(x, memory_format=torch.contiguous_format)
    _core.lookup16(x.view(torch.int16).numpy(), y.view(torch.int16).numpy(), table(name, mode),
                   max(1, torch.get_num_threads()))
    return y


class _Tabulated(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, name: str, mode: int) -> torch.Tensor:  # type: ignore[override]
        y = _lookup(x, name, mode)
        ctx.save_for_backward(y)
        ctx.name = name
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return _BACKWARDS[ctx.name](grad, y), None, None


def _apply(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.dtype is torch.bfloat16 and x.device.type == "cpu" and x.numel() >= MIN_ELEMENTS:
        mode = _core.subnormal_mode()
        if mode >= 0:  # else the mode cannot be read (not x86-64), so neither can the right table be chosen
            return _Tabulated.apply(x, name, mode)
    return _FUNCTIONS[name](x)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``torch.tanh(x)``, the same values and gradients; faster for large CPU bfloat16 tensors."""
    return _apply(x, "tanh")


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``torch.sigmoid(x)``, the same values and gradients; faster for large CPU bfloat16 tensors."""
    return _apply(x, "sigmoid")
