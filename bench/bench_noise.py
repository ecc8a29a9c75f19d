"""Cost of exact noisy sampling compared with the ideal sampler, on time-bin loop circuits.

    python bench/bench_noise.py [--sizes 8x16 12x24 --shots 2000 --threads 1]

Each row samples n photons in m modes of a "1-1" time-bin loop circuit (photons in every other bin)
and prints a Markdown table of microseconds per returned sample and the post-selection acceptance.
Noise settings are illustrative, not measured hardware figures.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _scenarios(m: int, n: int):
    from qboson.noise import NoiseModel

    out_t = np.linspace(0.85, 0.95, m)
    return [
        ("ideal", None, False),
        ("uniform loss 0.9, V=0.9", NoiseModel(transmission=0.9, hom_visibility=0.9), False),
        ("per-mode output loss (dilation)", NoiseModel(output_transmission=out_t), False),
        ("loss 0.9 + post-select n (PNR)", NoiseModel(transmission=0.9, postselect=n), False),
        ("loss 0.97 + dark 1e-3 + threshold + post-select n",
         NoiseModel(transmission=0.97, dark_count_probability=1e-3, detection="threshold", postselect=n), False),
        ("angle noise 0.01 rad (per-shot unitary)", NoiseModel(angle_noise=0.01), True),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["8x16", "12x24"], help="n x m pairs")
    ap.add_argument("--shots", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from qboson.backends import get
    from qboson.circuits import time_bin_interferometer

    print(f"| n x m | model | us / sample | acceptance | threads={args.threads}, {args.shots} samples |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        n, m = (int(v) for v in size.lower().split("x"))
        tbi = time_bin_interferometer(m, (1, 1), seed=0)
        modes = list(range(0, 2 * n, 2)) if 2 * n <= m else list(range(n))
        for label, model, needs_circuit in _scenarios(m, n):
            backend = get("local", noise=model, threads=args.threads, progress=False)
            target = tbi if needs_circuit or model is None else tbi.unitary()
            backend.sample(target, modes, 20, seed=0)  # warm-up (imports, first kernel call)
            t0 = time.perf_counter()
            samples = backend.sample(target, modes, args.shots, seed=1)
            dt = time.perf_counter() - t0
            acc = "1" if model is None or model.last_run is None else f"{model.last_run.acceptance_rate:.3f}"
            assert samples.shape == (args.shots, m)
            print(f"| {n}x{m} | {label} | {dt / args.shots * 1e6:.1f} | {acc} | |")


if __name__ == "__main__":
    main()
