"""Cost of drawing latent vectors: every kind live, a bank read, and the Torch dataset.

    python bench/bench_latent.py [--dim 16 --k 20000]

Prints a Markdown table of microseconds per latent vector (one core unless stated).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _per_row(fn, rows: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best / rows * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--k", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()

    from qboson.latent import KINDS, generate_bank, make

    rows = []
    for name in KINDS:
        extra = {"threads": 1} if name in ("quantum", "photonic") else {}
        z = make(name, args.dim, seed=0, **extra)
        rows.append((f"{name}.sample({args.k})", _per_row(lambda: z.sample(args.k), args.k)))
    with tempfile.TemporaryDirectory() as tmp:
        z = make("quantum", args.dim, seed=0)
        t0 = time.perf_counter()
        bank = generate_bank(z, args.k, Path(tmp) / "bank", progress=False)
        rows.append((f"generate_bank quantum {args.k} (all cores, incl. merge + sha256)", (time.perf_counter() - t0) / args.k * 1e6))
        rows.append((f"bank.rows (contiguous, {args.batch})", _per_row(lambda: [bank.rows(a, a + args.batch) for a in range(0, args.k, args.batch)], args.k)))
        import numpy as np

        idx = np.random.default_rng(0).permutation(args.k)
        rows.append((f"bank.take (shuffled, {args.batch})", _per_row(lambda: [bank.take(idx[a:a + args.batch]) for a in range(0, args.k, args.batch)], args.k)))
        try:
            from qboson.torch import LatentDataset

            ds = LatentDataset(bank, batch_size=args.batch, shuffle=True)
            rows.append((f"LatentDataset(bank, batch {args.batch}, shuffle)", _per_row(lambda: list(ds), args.k)))
            live = LatentDataset(make("quantum", args.dim, seed=0, threads=1), batch_size=args.batch, length=args.k)
            rows.append((f"LatentDataset(live quantum, batch {args.batch})", _per_row(lambda: list(live), args.k, repeat=1)))
        except ImportError:
            pass
    print(f"dim={args.dim} (photon kinds: {args.dim // 2} photons in {args.dim} modes)\n")
    print("| operation | us per vector |")
    print("|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.2f} |")


if __name__ == "__main__":
    main()
