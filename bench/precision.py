"""Relative error of double-precision permanents against the extended-precision path.

    python bench/precision.py --sizes 20,22,24,26,28

Matrices are Haar-random unitaries (the sampler's case) and i.i.d. complex Gaussian matrices
scaled by 1/sqrt(n).  Prints a Markdown table; the extended path (x87 long double, 64-bit
mantissa) costs about 50x the double one, so n = 30 takes minutes on one core.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import qboson


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20,22,24,26,28")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    print("| n | matrix | relative error (double vs extended) | double (s) | extended (s) |")
    print("|---|---|---|---|---|")
    for n in [int(s) for s in args.sizes.split(",")]:
        rng = np.random.default_rng(n)
        cases = {
            "Haar unitary": qboson.haar_unitary(n, seed=rng),
            "Gaussian/sqrt(n)": (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) / np.sqrt(2 * n),
        }
        for name, a in cases.items():
            t0 = time.perf_counter()
            d = qboson.permanent(a, threads=args.threads, max_seconds=None)
            t1 = time.perf_counter()
            e = qboson.permanent(a, threads=args.threads, extended=True, max_seconds=None)
            t2 = time.perf_counter()
            print(f"| {n} | {name} | {abs(d - e) / abs(e):.2e} | {t1 - t0:.3g} | {t2 - t1:.3g} |", flush=True)


if __name__ == "__main__":
    main()
