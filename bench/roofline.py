"""The arithmetic of one MolGAN critic update, and the least time this machine can do it in.

    python bench/roofline.py --trained runs/q16-s0/checkpoint.pt
    python bench/roofline.py --trained CKPT --baseline-ms 133.5 --json roofline.json

A throughput target is only reachable if the machine can do the update's arithmetic in the
time it allows.  This script measures both sides, on the loops ``qboson train`` and
``qboson experiment qm9 --stack K`` run:

* **the work**: floating-point operations of the matrix products (``mm``, ``addmm``, ``bmm``,
  ``baddbmm``; PyTorch's profiler counts each as ``2 x`` its multiply-adds) per run and critic
  update, the generator's share included, counted over whole critic and generator updates
  from copies of ``--trained`` (shapes, not weights, set the count);
* **the ceilings**: the float32 FMA peak of the cores (``fma_peak.c``, compiled here with the
  system C compiler, one copy per core at once) and the rate PyTorch's own matrix product
  reaches on a large square product (one thread in each of ``--cores`` processes at once), in
  float32 and, where the CPU has bf16 units, bfloat16.

The least time per run and critic update on the machine is the work divided by a ceiling:
no implementation of these networks at this batch size does better on this machine in that
precision, and elementwise work, memory traffic and small products only add to it.  With
``--baseline-ms`` (the issue's baseline from ``bench_molgan_cores.py``) it prints the
target ``baseline / 8`` beside these floors.  ``bench_molgan_cores.py --work`` runs the same
counts in the same run as its timings.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Optional, Sequence

# this folder is on sys.path when run as a script
from host import describe_host, host_line  # noqa: E402
from result_files import check_new, write_new_text  # noqa: E402
from workers import run_workers  # noqa: E402

#: the matrix products PyTorch's profiler counts flops for
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def generator_forward_flops(dim: int, widths: Sequence[int], n_nodes: int = 9, n_atom_types: int = 5,
                            n_bond_types: int = 4) -> int:
    """Flops (2 per multiply-add) of one generator forward pass for one latent vector: every
    layer's ``A_k z``, the ``W_k h_k`` between layers and the two heads."""
    widths = [int(w) for w in widths]
    macs = dim * sum(widths)
    macs += sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    macs += widths[-1] * (n_nodes * n_nodes * n_bond_types + n_nodes * n_atom_types)
    return 2 * macs


def critic_forward_flops(conv_dims: Sequence[int], aggregation_dim: int, mlp_dims: Sequence[int],
                         n_nodes: int = 9, n_atom_types: int = 5, n_bond_types: int = 4,
                         neighbours_first_when_narrow: bool = False) -> int:
    """Flops of one R-GCN critic forward pass for one graph of ``n_nodes`` dense nodes.

    A graph convolution from ``d_in`` features (the previous layer's and the atom one-hots) to
    ``d_out`` either maps first (``n x d_in x (R-1) d_out`` for the bond types, ``n x d_in x
    d_out`` for the self map) and then sums over neighbours (``n x n (R-1) x d_out``), as the
    single-run critic always does, or, with ``neighbours_first_when_narrow`` where ``d_in <
    d_out`` (the stacked critic's choice), sums first (``n (R-1) x n x d_in``) and maps once
    (``n x R d_in x d_out``).  Then the gated sum (two ``n x d x aggregation_dim`` maps) and
    the MLP.
    """
    n, rel = n_nodes, n_bond_types - 1
    macs, d_prev = 0, 0
    for d_out in conv_dims:
        d_in = d_prev + n_atom_types
        if neighbours_first_when_narrow and d_in < d_out:
            macs += n * rel * n * d_in + n * (rel + 1) * d_in * d_out
        else:
            macs += n * d_in * rel * d_out + n * d_in * d_out + n * n * rel * d_out
        d_prev = d_out
    macs += 2 * n * (d_prev + n_atom_types) * aggregation_dim
    d = aggregation_dim
    for width in list(mlp_dims) + [1]:
        macs += d * width
        d = width
    return 2 * macs


def count_flops(ckpt_path: str, loop: str = "stack", runs: int = 2, steps: Optional[int] = None,
                data=None) -> dict:
    """Matrix-product flops per run and critic update of ``loop`` (``"train"`` or ``"stack"``), in
    this process, on one torch thread (see :func:`update_flops`); ``data`` as for
    ``qboson.molgan.train`` (default QM9)."""
    from torch.profiler import ProfilerActivity, profile

    from bench_molgan import load_trained, train_copies  # this folder is on sys.path when run as a script

    if loop not in ("train", "stack"):
        raise ValueError(f"loop must be 'train' or 'stack', got {loop!r}")
    runs = 1 if loop == "train" else int(runs)
    ckpt, bank = load_trained(ckpt_path)
    n_critic, start = int(ckpt["config"]["n_critic"]), int(ckpt["critic_step"])
    steps = n_critic if steps is None else int(steps)
    if steps < 1 or steps % n_critic:
        raise ValueError(f"steps={steps} is not a whole number of generator cycles ({n_critic} critic updates)")
    # after one untimed cycle, from a generator update's boundary: the window holds whole cycles of
    # n_critic critic updates (a log row comes after its step's generator update)
    first = start + (-start) % n_critic + n_critic
    last = first + steps
    prof = profile(activities=[ProfilerActivity.CPU], with_flops=True)

    def on_row(row: dict) -> None:
        if row["critic_step"] == first:
            prof.start()
        elif row["critic_step"] == last:
            prof.stop()

    with tempfile.TemporaryDirectory(prefix="qboson-roofline-") as root:
        train_copies(ckpt, bank, root, loop, runs, last, on_row, data=data, threads=1)
    per = runs * steps * 1e9
    by_op = {e.key: float(e.flops) / per for e in prof.key_averages() if e.key in MATMUL_OPS and e.flops}
    return {"gflop": sum(by_op.values()), "by_op": by_op, "runs": runs, "steps": steps,
            "batch_size": int(ckpt["config"]["batch_size"])}


def _count_worker(args: tuple, queue) -> None:
    queue.put(count_flops(*args))


def update_flops(ckpt_path: str, loop: str = "stack", runs: int = 2, steps: Optional[int] = None) -> dict:
    """Matrix-product flops per run and critic update of ``loop`` (``"train"`` or ``"stack"``).

    Counted with PyTorch's profiler over ``steps`` critic updates (default: one generator cycle,
    ``n_critic``) of ``runs`` runs (``loop="stack"``) from copies of the checkpoint, in a fresh
    process on one thread, after one untimed cycle.  Returns ``{"gflop": ..., "by_op": {op:
    gflop}, "runs": ..., "steps": ..., "batch_size": ...}``, all per run and critic update.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_count_worker, args=((ckpt_path, loop, runs, steps), queue), daemon=True)
    return run_workers([proc], queue, 3600)[0]


def _matmul_worker(dtype_name: str, size: int, seconds: float, barrier, queue) -> None:
    import torch

    torch.set_num_threads(1)
    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)
    barrier.wait()
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        n += 1
    queue.put(2.0 * size**3 * n / (time.perf_counter() - t0) / 1e9)


def torch_matmul_rate(cores: int, dtype: str = "float32", size: int = 2048, seconds: float = 2.0,
                      repeats: int = 3) -> float:
    """GFLOP/s of PyTorch's ``mm`` on ``size x size`` operands, summed over ``cores`` one-thread
    processes running at once; the best of ``repeats`` tries (a ceiling: a busy neighbour on a
    virtual machine only lowers it)."""
    return max(_torch_matmul_rate_once(cores, dtype, size, seconds) for _ in range(repeats))


def _torch_matmul_rate_once(cores: int, dtype: str, size: int, seconds: float) -> float:
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(cores), ctx.Queue()
    procs = [ctx.Process(target=_matmul_worker, args=(dtype, size, seconds, barrier, queue), daemon=True)
             for _ in range(cores)]
    return float(sum(run_workers(procs, queue, 600)))


def _compiler() -> Optional[str]:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def fma_peak(cores: int, seconds: float = 1.0, repeats: int = 3) -> dict:
    """The float32 FMA peak, GFLOP/s summed over ``cores`` copies of ``fma_peak.c`` at once, the
    best of ``repeats`` tries.

    Returns ``{"gflops": ..., "lanes": 8 or 16}``, or ``{"gflops": None, "why": ...}`` where it
    cannot be measured (not x86-64, no C compiler, or the CPU lacks AVX2 with FMA).
    """
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return {"gflops": None, "why": f"fma_peak.c is x86-64 code; this is {platform.machine()}"}
    cc = _compiler()
    if cc is None:
        return {"gflops": None, "why": "no C compiler (set CC)"}
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fma_peak.c")
    with tempfile.TemporaryDirectory(prefix="qboson-fma-") as tmp:
        exe = os.path.join(tmp, "fma_peak")
        build = subprocess.run([cc, "-O2", "-march=native", src, "-o", exe], capture_output=True, text=True)
        if build.returncode != 0:
            lines = build.stderr.strip().splitlines() or [""]
            error = next((line for line in lines if "error" in line), lines[-1]).strip()
            return {"gflops": None, "why": f"{os.path.basename(cc)} could not build fma_peak.c: {error}"}
        best, lanes = 0.0, 0
        for _ in range(repeats):
            procs = [subprocess.Popen([exe, str(seconds)], stdout=subprocess.PIPE, text=True) for _ in range(cores)]
            outs = [p.communicate(timeout=60 + 10 * seconds)[0].split() for p in procs]
            if any(p.returncode != 0 for p in procs):
                return {"gflops": None, "why": "fma_peak failed"}
            best, lanes = max(best, sum(float(o[0]) for o in outs)), int(outs[0][1])
    return {"gflops": best, "lanes": lanes}


def roofline(ckpt_path: str, cores: int, stack_runs: int = 2, seconds: float = 2.0) -> dict:
    """Work per run and critic update of both loops, and this machine's ceilings (see the module doc)."""
    from qboson._bf16support import native_bf16

    work = {loop: update_flops(ckpt_path, loop, runs=stack_runs) for loop in ("train", "stack")}
    rates = {"fma_peak_fp32": fma_peak(cores, seconds), "torch_mm_fp32": torch_matmul_rate(cores, "float32",
                                                                                           seconds=seconds)}
    import torch

    if native_bf16(torch.device("cpu")):
        rates["torch_mm_bf16"] = torch_matmul_rate(cores, "bfloat16", seconds=seconds)
    return {"checkpoint": ckpt_path, "cores": cores, "work": work, "rates": rates}


def floors(result: dict) -> dict[str, dict[str, float]]:
    """``{ceiling: {loop: least ms per run and critic update on the machine}}``."""
    out: dict[str, dict[str, float]] = {}
    for name, rate in result["rates"].items():
        gflops = rate["gflops"] if isinstance(rate, dict) else rate
        if gflops:
            out[name] = {loop: 1000.0 * w["gflop"] / gflops for loop, w in result["work"].items()}
    return out


_CEILINGS = {"fma_peak_fp32": "the cores' float32 FMA peak", "torch_mm_fp32": "PyTorch's float32 `mm` (2048^3)",
             "torch_mm_bf16": "PyTorch's bfloat16 `mm` (2048^3)"}


def report(result: dict, baseline_ms: Optional[float] = None) -> str:
    """Markdown: the work of each loop, the ceilings and the floors they set."""
    w = result["work"]
    lines = [f"Matrix-product work per run and critic update (batch {w['stack']['batch_size']}, generator's share "
             f"included): `train` {w['train']['gflop']:.3f} GFLOP, `train_stack` {w['stack']['gflop']:.3f} GFLOP.",
             "", "| ceiling (whole machine) | GFLOP/s | least ms per critic update per run: `train` | `train_stack` |",
             "|---|---|---|---|"]
    fl = floors(result)
    for name, rate in result["rates"].items():
        gflops = rate["gflops"] if isinstance(rate, dict) else rate
        if not gflops:
            lines.append(f"| {_CEILINGS[name]} | not measured: {rate.get('why', '')} | | |")
            continue
        lines.append(f"| {_CEILINGS[name]} | {gflops:.1f} | {fl[name]['train']:.1f} | {fl[name]['stack']:.1f} |")
    if baseline_ms:
        lines += ["", f"Target (8x the baseline's {baseline_ms:.1f} ms): {baseline_ms / 8:.1f} ms per critic update "
                  "per run."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trained", required=True, help="a trained run's checkpoint.pt (its latent_bank.npy beside it)")
    p.add_argument("--cores", type=int, default=os.cpu_count(), help="processes for the ceilings (default: all CPUs)")
    p.add_argument("--stack", type=int, default=2, help="runs in the counted stack (default 2; work is per run)")
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per ceiling measurement (default 2)")
    p.add_argument("--baseline-ms", type=float, help="the issue's baseline, to print the 8x target beside the floors")
    p.add_argument("--json", help="write the raw numbers here")
    args = p.parse_args(argv)
    if args.cores < 1 or args.stack < 1 or args.seconds <= 0:
        p.error("--cores and --stack must be >= 1 and --seconds > 0")
    if args.baseline_ms is not None and args.baseline_ms <= 0:
        p.error("--baseline-ms must be > 0")
    problem = check_new(args.json, "--json")
    if problem:
        p.error(problem)
    if not os.path.isfile(args.trained):
        p.error(f"--trained: no file {args.trained}")
    result = roofline(args.trained, args.cores, args.stack, args.seconds)
    result["host"] = describe_host()
    text = report(result, args.baseline_ms) + "\n" + host_line(result["host"]) + "\n"
    print(text, end="")
    if args.json:
        write_new_text(args.json, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
