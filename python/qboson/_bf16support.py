"""Whether a device computes bfloat16 products in hardware, and a warning where it does not.

``--precision bf16`` pays only where the hardware has bfloat16 units: AMX or AVX512-BF16 on
x86 CPUs, and bf16 tensor cores on GPUs.  Elsewhere PyTorch emulates it through float32,
and it is slower than fp32, not faster.  On a 2-core AMD EPYC (Zen 3, AVX2 only), one torch
thread: a bf16 stack of 16 MolGAN runs took 900 ms per run and critic update against 120 ms in
fp32 (7.5x), and a stack of 8 of the paper's small GANs 6.6 s per run-iteration against 0.33 s
(20x; ``bench/bench_gan.py --members 8``).
"""

from __future__ import annotations

import platform
import warnings
from typing import Optional

import torch

__all__ = ["native_bf16", "warn_if_bf16_emulated"]

#: torch's private CPU probes of bfloat16 units (present in torch >= 2.1 on x86)
_CPU_PROBES = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")


def native_bf16(device: str | torch.device = "cpu") -> Optional[bool]:
    """``True`` if ``device`` has bfloat16 product units, ``False`` if it has none, ``None`` if unknown.

    x86 CPUs: AMX tiles or AVX512-BF16.  CUDA: bf16 without emulation.  Other CPUs (ARM,
    whose bf16 extensions torch does not report here), MPS, or a torch without the probes:
    unknown.
    """
    dev = torch.device(device)
    if dev.type == "cpu":
        if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
            return None
        probes = [getattr(torch.cpu, name, None) for name in _CPU_PROBES]
        if any(p is None for p in probes):
            return None
        try:
            return any(bool(p()) for p in probes)
        except (RuntimeError, AttributeError):
            return None
    if dev.type == "cuda":
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch < 2.3: no including_emulation
            return bool(torch.cuda.is_bf16_supported())
    return None


def warn_if_bf16_emulated(precision: str, device: str | torch.device = "cpu") -> bool:
    """Issue a ``RuntimeWarning`` if ``precision`` is ``"bf16"`` and ``device`` has no bfloat16 units.

    Returns whether it warned.  Nothing changes otherwise: bf16 still runs, as asked.
    """
    if precision != "bf16" or native_bf16(device) is not False:
        return False
    dev = torch.device(device)
    where = f"this CPU ({torch.backends.cpu.get_cpu_capability()}, no AMX or AVX512-BF16)" if dev.type == "cpu" \
        else f"device {dev} (no native bfloat16)"
    warnings.warn(f"precision 'bf16' on {where} is emulated by PyTorch and runs several times slower than "
                  "fp32 (measured on an AVX2 CPU: 7.5x for a MolGAN stack, 20x for the small GANs); "
                  "use precision 'fp32' here",
                  RuntimeWarning, stacklevel=3)
    return True
