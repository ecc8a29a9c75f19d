"""The machine a benchmark ran on, for its result files.

Figures from different CPUs differ by more than the changes they measure: the same MolGAN
baseline took 225 ms per critic update on a 2-core Intel Sapphire Rapids and 114-134 ms on a
2-core AMD EPYC (Zen 3), which does not slow down on subnormals, and bf16 stacks that were 1.6x
faster than fp32 ones on AMX were 7.5x slower where bf16 is emulated.  So every result records
the CPU, torch's instruction set and whether bf16 runs on hardware units.
"""

from __future__ import annotations

import os
import platform
from typing import Any


def _cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def describe_host() -> dict[str, Any]:
    """``cpu`` (model name), ``cpus``, ``arch``, ``python``, ``torch``, ``torch_cpu_capability``
    (the kernels torch dispatches to: AVX2, AVX512, ...) and ``native_bf16`` (``True``, ``False`` or
    ``None`` if unknown; see :func:`qboson._bf16support.native_bf16`)."""
    host: dict[str, Any] = {"cpu": _cpu_model(), "cpus": os.cpu_count(), "arch": platform.machine(),
                            "python": platform.python_version()}
    try:
        import torch

        from qboson._bf16support import native_bf16
    except ImportError:
        return host
    host.update(torch=torch.__version__, torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
                native_bf16=native_bf16("cpu"))
    return host


def host_line(host: dict[str, Any]) -> str:
    """One line for a result table's footnote."""
    bf16 = {True: "bf16 units", False: "no bf16 units", None: "bf16 units unknown"}[host.get("native_bf16")]
    return (f"{host['cpu']}, {host['cpus']} CPUs, torch {host.get('torch', '-')} "
            f"({host.get('torch_cpu_capability', '-')}, {bf16})")
