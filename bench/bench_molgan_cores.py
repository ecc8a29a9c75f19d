"""MolGAN throughput of the whole machine: one run on all cores against one process per core.

    python bench/bench_molgan_cores.py --trained runs/q16-s0/checkpoint.pt
    python bench/bench_molgan_cores.py --trained CKPT --steps 20 --rounds 3 --markdown table.md

The issue's target is counted on the machine, not on one thread: critic updates per second
summed over every run the machine trains at once, against "today's single run", which is
``qboson train`` with one torch thread per core on a trained checkpoint.  Each setting here
starts from copies of ``--trained`` (subnormal floats appear only once the generator is
sharp) and runs the same loops ``qboson train`` and ``qboson experiment qm9 --stack K`` run:

* ``train`` with ``--cores`` torch threads as it runs today, and as the issue timed it
  (torch's softmax, whose outputs go subnormal, no flush of subnormals, glibc's default heap
  and the critic's backward pass into every leaf): the baseline;
* ``--cores`` processes side by side, one torch thread each, each training one run
  (``train``) or a stack of K runs (``train_stack``), in fp32 or bf16.

Every process first takes ``--warmup`` critic updates, then all of them wait at one barrier
and time ``--steps`` critic updates together; the figure is ``runs x steps x processes``
divided by the wall time from the barrier to the last process's last update (checkpoint
writing excluded).  Settings are interleaved over ``--rounds`` rounds and the median is
reported, so a changing machine load hits every setting alike.  Read the ratio column.

``--work`` also counts, in the same run, the matrix-product arithmetic of each loop per run
and critic update and measures this machine's ceilings (``roofline.py``): the table then
gives the rate each setting reaches (GFLOP/s of the whole machine) and the least time per
critic update per run that the cores' FMA peak and PyTorch's own matrix product allow, beside
the 8x target.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time

import numpy as np

# this folder is on sys.path when run as a script
from bench_molgan import check_precisions, check_stack_sizes, parse_stacks  # noqa: E402
from host import describe_host, host_line  # noqa: E402
from result_files import check_new, write_new_text  # noqa: E402
import roofline  # noqa: E402
from workers import run_workers  # noqa: E402


def _worker(ckpt_path: str, root: str, loop: str, runs: int, threads: int, precision: str, flush: bool,
            legacy: bool, warmup: int, steps: int, barrier, queue) -> None:
    """One process of a setting: ``runs`` copies of the checkpoint, ``warmup`` updates, barrier, ``steps`` timed."""
    import torch

    from qboson import _heap as heap
    from qboson.molgan import model

    from bench_molgan import load_trained, train_copies  # this folder is on sys.path when run as a script

    if legacy:  # the loop as it was when the issue timed it: torch's softmax kernel, the default heap,
        model._softmax_last = lambda x: torch.softmax(x, -1)
        heap._glibc = lambda: None
        # and the critic's backward into every leaf, the penalty's interpolated graphs included
        backward = torch.Tensor.backward
        torch.Tensor.backward = lambda self, *args, inputs=None, **kwargs: backward(self, *args, **kwargs)
    torch.set_num_threads(threads)
    ckpt, bank = load_trained(ckpt_path)
    start = int(ckpt["critic_step"])
    first, last = start + warmup, start + warmup + steps
    marks: dict = {}

    def on_row(row: dict) -> None:  # a log row (and callback) comes after every critic update
        if row["critic_step"] == first:
            barrier.wait()
            marks["t0"] = time.perf_counter()
        elif row["critic_step"] == last:
            marks["t1"] = time.perf_counter()

    train_copies(ckpt, bank, root, loop, runs, last, on_row, threads=threads, precision=precision,
                 flush_denormal=flush)
    queue.put((marks["t0"], marks["t1"]))


def _settings(cores: int, ks: list[int], precisions: list[str], layouts: tuple[str, ...] = ("procs",)) -> list[dict]:
    out = [dict(name=f"`train`, {cores} threads, torch softmax, no denormal flush (the issue's baseline)",
                loop="train", procs=1, runs=1, threads=cores, precision="fp32", flush=False, legacy=True),
           dict(name=f"`train`, {cores} threads", loop="train", procs=1, runs=1, threads=cores, precision="fp32",
                flush=True, legacy=False),
           dict(name=f"{cores} x `train`, 1 thread each", loop="train", procs=cores, runs=1, threads=1,
                precision="fp32", flush=True, legacy=False)]
    for k in ks:
        for prec in precisions:
            if "procs" in layouts:
                out.append(dict(name=f"{cores} x `train_stack` K={k} {prec}, 1 thread each", loop="stack",
                                procs=cores, runs=k, threads=1, precision=prec, flush=True, legacy=False))
            if "threads" in layouts:  # the same runs in one process on all cores
                out.append(dict(name=f"`train_stack` K={k * cores} {prec}, {cores} threads", loop="stack", procs=1,
                                runs=k * cores, threads=cores, precision=prec, flush=True, legacy=False))
    return out


def run_setting(s: dict, ckpt: str, warmup: int, steps: int) -> float:
    """Wall seconds for ``steps`` critic updates of every run of setting ``s`` (all processes at once)."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(s["procs"]), ctx.Queue()
    root = tempfile.mkdtemp(prefix="qboson-bench-cores-")
    procs = [ctx.Process(target=_worker, args=(ckpt, os.path.join(root, f"p{i}"), s["loop"], s["runs"],
                                               s["threads"], s["precision"], s["flush"], s["legacy"], warmup, steps,
                                               barrier, queue), daemon=True) for i in range(s["procs"])]
    try:
        marks = run_workers(procs, queue, 3600)
        failed = [p.exitcode for p in procs if p.exitcode != 0]
        if failed:
            raise RuntimeError(f"a benchmark process failed (exit code {failed[0]})")
    except RuntimeError as exc:
        raise RuntimeError(f"{s['name']}: {exc}") from exc
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return max(t1 for _, t1 in marks) - min(t0 for t0, _ in marks)


def bench_cores(ckpt: str, cores: int, ks: list[int], precisions: list[str], warmup: int, steps: int,
                rounds: int, layouts: tuple[str, ...] = ("procs",)) -> dict:
    settings = _settings(cores, ks, precisions, layouts)
    walls: list[list[float]] = [[] for _ in settings]
    for r in range(rounds):
        for i, s in enumerate(settings):
            walls[i].append(run_setting(s, ckpt, warmup, steps))
            per = walls[i][-1] / (steps * s["runs"] * s["procs"])
            print(f"round {r + 1}/{rounds} {s['name']}: {1000 * per:.1f} ms per critic update per run (machine)",
                  file=sys.stderr, flush=True)
    rows = []
    for s, w in zip(settings, walls):
        wall = float(np.median(w))
        updates = steps * s["runs"] * s["procs"]
        rows.append({**s, "wall_s": wall, "walls": w, "updates_per_s": updates / wall,
                     "ms_per_update_per_run": 1000 * wall / updates})
    base = rows[0]["updates_per_s"]
    for row in rows:
        row["speedup"] = row["updates_per_s"] / base
    return {"checkpoint": ckpt, "critic_step": _critic_step(ckpt), "cores": cores, "warmup": warmup,
            "steps": steps, "rounds": rounds, "rows": rows}


def _critic_step(ckpt: str) -> int:
    import torch

    return int(torch.load(ckpt, map_location="cpu", weights_only=True)["critic_step"])


def add_work(result: dict, work: dict) -> None:
    """Attach a :func:`roofline.roofline` result: each row's machine rate in GFLOP/s, and the floors.

    The baseline's rate is left out: its backward pass also forms the gradients of the penalty's
    interpolated graphs, work that ``train`` (counted) no longer does."""
    result["work"] = work
    for row in result["rows"]:
        row["gflop_per_s"] = None if row["legacy"] else work["work"][row["loop"]]["gflop"] * row["updates_per_s"]


def _rate(gflops) -> str:
    return "-" if gflops is None else f"{gflops:.1f}"


def table(result: dict) -> str:
    work = "work" in result
    lines = ["| setting | runs at once | ms per critic update per run (machine) | critic updates/s (sum) | "
             "vs baseline |" + (" matrix GFLOP/s (machine) |" if work else ""),
             "|---|---|---|---|---|" + ("---|" if work else "")]
    for r in result["rows"]:
        rate = f" {_rate(r['gflop_per_s'])} |" if work else ""
        lines.append(f"| {r['name']} | {r['runs'] * r['procs']} | {r['ms_per_update_per_run']:.1f} | "
                     f"{r['updates_per_s']:.2f} | {r['speedup']:.2f}x |{rate}")
    text = "\n".join(lines) + "\n"
    if work:
        text += "\n" + roofline.report(result["work"], baseline_ms=result["rows"][0]["ms_per_update_per_run"])
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trained", required=True, help="a trained run's checkpoint.pt (its latent_bank.npy beside it)")
    p.add_argument("--cores", type=int, default=os.cpu_count(), help="processes / threads (default: all CPUs)")
    p.add_argument("--stacks", default="8", help="stack sizes K to time (default 8)")
    p.add_argument("--precisions", default="fp32,bf16", help="precisions of the stacks (default fp32,bf16)")
    p.add_argument("--layouts", default="procs",
                   help="how stacks use the cores: procs (one process per core, K runs each), threads (one "
                        "process of K x cores runs on all cores), or both comma-separated (default procs)")
    p.add_argument("--warmup", type=int, default=3, help="untimed critic updates per process (default 3)")
    p.add_argument("--steps", type=int, default=20, help="timed critic updates per round (default 20)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--work", action="store_true",
                   help="also count each loop's matrix-product work and measure this machine's ceilings "
                        "(roofline.py), after the timings")
    p.add_argument("--markdown", help="also write the table to this file")
    p.add_argument("--json", help="write the raw numbers here")
    args = p.parse_args(argv)
    if args.cores < 1 or args.steps < 1 or args.rounds < 1 or args.warmup < 1:
        p.error("--cores, --steps, --rounds and --warmup must be positive")
    layouts = tuple(x.strip() for x in args.layouts.split(","))
    if not layouts or set(layouts) - {"procs", "threads"}:
        p.error(f"--layouts takes procs and/or threads, got {args.layouts!r}")
    ks, precisions = parse_stacks(args.stacks), args.precisions.split(",")
    problems = [check_stack_sizes(ks), check_precisions(precisions), check_new(args.markdown, "--markdown"),
                check_new(args.json, "--json")]
    if not os.path.isfile(args.trained):
        problems.append(f"--trained {args.trained}: no such file")
    for problem in problems:
        if problem:
            p.error(problem)
    # a TERM (a job scheduler's, kill's) unwinds like Ctrl-C, so the running setting's workers are stopped
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    load0 = os.getloadavg()
    result = bench_cores(args.trained, args.cores, ks, precisions, args.warmup, args.steps, args.rounds, layouts)
    result["load_average"] = [load0, os.getloadavg()]
    if args.work:
        add_work(result, roofline.roofline(args.trained, args.cores, stack_runs=min(ks)))
    result["host"] = describe_host()
    text = table(result) + (
        f"\nfrom `{args.trained}` (critic step {result['critic_step']}), median of {args.rounds} rounds of "
        f"{args.steps} critic updates after {args.warmup} untimed ones; load average {load0[0]:.1f} at start, "
        f"{result['load_average'][1][0]:.1f} at end; {host_line(result['host'])}\n")
    print(text)
    if args.markdown:
        write_new_text(args.markdown, text)
    if args.json:
        write_new_text(args.json, json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
