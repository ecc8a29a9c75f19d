"""Stacked small-GAN training (``qboson.experiments.gan``) in fp32 and bf16, side by side.

    python bench/bench_gan.py                     # paper-scale synthetic settings, members 1,8,24
    python bench/bench_gan.py --members 8 --iterations 4 --rounds 3

The paper-scale synthetic experiment (Table I) trains 16-wide data with two hidden layers of
512, batch 500, 5 critic steps per iteration, RMSProp and a gradient penalty; its cells are
trained ``R`` at a time with weights stacked.  This times one iteration (5 critic updates and
one generator update) per member with ``GanConfig.precision`` "fp32" and "bf16", the settings
interleaved over ``--rounds`` rounds (medians reported), in one process on one torch thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from host import describe_host, host_line  # this folder is on sys.path when run as a script


def bench(members: list[int], iterations: int, rounds: int, warmup: int = 1) -> list[dict]:
    import torch

    from qboson.experiments.gan import GanConfig, GanTrainer, StackedSampler

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((20_000, 16)).astype(np.float32)
    latents = rng.standard_normal((20_000, 16)).astype(np.float32)
    trainers, samplers, times = {}, {}, {}
    for r_ in members:
        for precision in ("fp32", "bf16"):
            cfg = GanConfig(latent_dim=16, data_dim=16, hidden=(512, 512), batch_size=500, critic_steps=5,
                            lr=5e-4, optimizer="rmsprop", objective="wgan-gp", gp_weight=10.0, precision=precision)
            seeds = list(range(r_))
            trainers[(r_, precision)] = GanTrainer(cfg, seeds)
            samplers[(r_, precision)] = (StackedSampler([data] * r_, seeds), StackedSampler([latents] * r_, seeds, 3))
            times[(r_, precision)] = []
    for round_ in range(rounds):
        for key, trainer in trainers.items():
            real, lat = samplers[key]
            if round_ == 0:
                trainer.train(warmup, real, lat)
            t0 = time.perf_counter()
            trainer.train(iterations, real, lat)
            times[key].append((time.perf_counter() - t0) / iterations)
            print(f"round {round_ + 1}/{rounds} R={key[0]} {key[1]}: {1000 * times[key][-1] / key[0]:.0f} ms per "
                  "run-iteration", file=sys.stderr, flush=True)
    rows = []
    for (r_, precision), t in times.items():
        per_it = float(np.median(t))
        rows.append({"members": r_, "precision": precision, "s_per_iteration": per_it,
                     "ms_per_run_iteration": 1000 * per_it / r_})
    for row in rows:
        ref = next(x for x in rows if x["members"] == row["members"] and x["precision"] == "fp32")
        row["speedup_vs_fp32"] = ref["ms_per_run_iteration"] / row["ms_per_run_iteration"]
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", default="1,8,24", help="stack sizes R (default 1,8,24)")
    p.add_argument("--iterations", type=int, default=3, help="timed iterations per round (default 3)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    load0 = os.getloadavg()[0]
    rows = bench([int(x) for x in args.members.split(",")], args.iterations, args.rounds)
    print("| members R | precision | ms per run-iteration | bf16 speed-up |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['members']} | {r['precision']} | {r['ms_per_run_iteration']:.0f} | {r['speedup_vs_fp32']:.2f}x |")
    print(f"\nhidden 512x512, batch 500, 5 critic steps + 1 generator step per iteration, 1 torch thread; median of "
          f"{args.rounds} rounds of {args.iterations}; load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} "
          f"at end; {host_line(describe_host())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
