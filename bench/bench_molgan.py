"""MolGAN speed: training throughput at batch 256 and the time to evaluate 10,000 molecules.

    python bench/bench_molgan.py                    # both parts, Markdown table on stdout
    python bench/bench_molgan.py --threads 1,2 --iterations 60 --json out.json
    python bench/bench_molgan.py --run runs/q16-s0  # evaluation of a trained run as well

Targets (issue "MolGAN on QM9"): a paper-length run (20,000 iterations = critic updates,
batch 256, generator updated every 5th) in <= 30 minutes on this 2-core machine, and the
evaluation of 10,000 molecules including FCD in <= 60 s with the cached reference.

Training is timed on random dense graphs with the paper's networks (the data does not
change the cost).  Evaluation is timed in parts: latent sampling + generator + argmax
decoding + SMILES for 10,000 latents, the metrics without FCD, and FCD of 10,000 valid
QM9 molecules (the worst case: FCD cost grows with the number of valid molecules) against
the cached test-split reference.  The machine is shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np


def bench_training(threads: int, iterations: int, warmup: int, batch_size: int = 256) -> dict:
    import torch

    from qboson.molgan.config import profile_config
    from qboson.molgan import GraphData, train

    rng = np.random.default_rng(0)
    adj = np.triu(rng.integers(0, 4, (4096, 9, 9)), 1)
    data = GraphData(rng.integers(0, 5, (4096, 9)), adj + adj.transpose(0, 2, 1))
    bank = rng.standard_normal((20_000, 16)).astype(np.float32)
    tmp = tempfile.mkdtemp(prefix="qboson-bench-molgan-")
    try:
        cfg = profile_config("paper", latent="gaussian", dim=16, threads=threads, batch_size=batch_size,
                             iterations=warmup + iterations, checkpoint_every=10**9, log_every=10**9)
        # the run's own timer counts only the training steps (no set-up, no checkpoint writing)
        from qboson.molgan import load_checkpoint

        train(cfg, tmp, data=data, latent_bank=bank, progress=False, stop_after=warmup)
        after_warmup = load_checkpoint(tmp)["elapsed_s"]
        t0 = time.perf_counter()
        summary = train(cfg, tmp, data=data, progress=False, resume=True)
        wall = time.perf_counter() - t0
        seconds = summary["train_seconds"] - after_warmup
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_it = seconds / iterations
    return {"threads": threads, "batch_size": batch_size, "iterations": iterations, "seconds": seconds,
            "wall_seconds_with_setup": wall,
            "iterations_per_s": 1 / per_it, "ms_per_iteration": 1000 * per_it,
            "projected_20k_minutes": 20_000 * per_it / 60, "torch_threads": torch.get_num_threads()}


def bench_evaluation(n: int, run: str | None, threads: int) -> dict:
    import torch

    from qboson import chem
    from qboson import latent as latents
    from qboson.molgan.evaluate import evaluate_run, fcd_reference_path, generate_graphs
    from qboson.molgan.model import Generator

    torch.set_num_threads(threads)
    out: dict = {"n": n, "threads": threads}
    data = chem.load_qm9_graphs(seed=0)
    t = time.perf_counter()
    ref = chem.FCDReference.from_smiles(data.split_smiles("test"), cache_path=fcd_reference_path(0), threads=threads)
    out["reference_load_s"] = time.perf_counter() - t  # first call ever: computes and caches it

    t = time.perf_counter()
    z = latents.make("quantum", 16, seed=0).sample(n, seed=1)
    torch.manual_seed(0)
    nodes, adj = generate_graphs(Generator(16).eval(), z)
    smiles = chem.graphs_to_smiles(nodes, adj, strict=False)
    out["generate_decode_s"] = time.perf_counter() - t

    t = time.perf_counter()
    chem.evaluate_molecules(smiles, train_smiles=frozenset(data.split_smiles("train")), fcd_reference=None)
    out["metrics_no_fcd_s"] = time.perf_counter() - t

    valid_qm9 = data.split_smiles("val")[:n]
    t = time.perf_counter()
    out["fcd_value_val_vs_test"] = chem.fcd(valid_qm9, ref, threads=threads)
    out["fcd_of_n_valid_s"] = time.perf_counter() - t
    out["worst_case_total_s"] = out["generate_decode_s"] + out["metrics_no_fcd_s"] + out["fcd_of_n_valid_s"]
    if run:
        t = time.perf_counter()
        r = evaluate_run(run, n_samples=n, threads=threads, write=False)
        out["run"] = {"path": run, "seconds": time.perf_counter() - t, "valid": r["valid"], "n_fcd": r["n_fcd"],
                      "fcd": r["fcd"]}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2", help="torch thread counts to time training with (default 1,2)")
    p.add_argument("--iterations", type=int, default=60, help="timed training iterations per setting (default 60)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--eval-samples", type=int, default=10_000)
    p.add_argument("--eval-threads", type=int, default=1)
    p.add_argument("--run", help="also time `evaluate_run` on this trained run directory")
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--skip-evaluation", action="store_true")
    p.add_argument("--json", help="write the raw numbers here")
    args = p.parse_args(argv)

    result: dict = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count(), "training": []}
    if not args.skip_training:
        for threads in (int(x) for x in args.threads.split(",")):
            r = bench_training(threads, args.iterations, args.warmup)
            result["training"].append(r)
            print(f"training, {threads} thread(s): {r['ms_per_iteration']:.1f} ms/iteration", file=sys.stderr)
    if not args.skip_evaluation:
        result["evaluation"] = bench_evaluation(args.eval_samples, args.run, args.eval_threads)
    result["load_average_end"] = os.getloadavg()

    print(f"load average at start {result['load_average_start'][0]:.2f}, at end {result['load_average_end'][0]:.2f} "
          f"({result['cpus']} CPUs)\n")
    if result["training"]:
        print("| training (batch 256, 1 iteration = 1 critic update) | ms/iteration | iterations/s | "
              "20k iterations | target |")
        print("|---|---|---|---|---|")
        for r in result["training"]:
            ok = "met" if r["projected_20k_minutes"] <= 30 else "missed"
            print(f"| {r['threads']} thread(s) | {r['ms_per_iteration']:.1f} | {r['iterations_per_s']:.2f} | "
                  f"{r['projected_20k_minutes']:.1f} min | <= 30 min: {ok} |")
        print()
    ev = result.get("evaluation")
    if ev:
        print(f"| evaluation of {ev['n']} molecules ({ev['threads']} thread) | seconds |")
        print("|---|---|")
        print(f"| latent sampling + generator + decoding to SMILES | {ev['generate_decode_s']:.1f} |")
        print(f"| validity / uniqueness / novelty | {ev['metrics_no_fcd_s']:.1f} |")
        print(f"| FCD of {ev['n']} valid molecules (cached reference) | {ev['fcd_of_n_valid_s']:.1f} |")
        ok = "met" if ev["worst_case_total_s"] <= 60 else "missed"
        print(f"| **total, worst case** (target <= 60 s: {ok}) | {ev['worst_case_total_s']:.1f} |")
        print(f"| (reference statistics: first computation or cache load) | {ev['reference_load_s']:.1f} |")
        if "run" in ev:
            print(f"| `evaluate_run` on {ev['run']['path']} ({ev['run']['valid']} valid) | {ev['run']['seconds']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
