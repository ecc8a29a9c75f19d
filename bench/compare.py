"""Side-by-side speed of qboson, its numpy reference and peer simulators; prints Markdown tables.

    python bench/compare.py                 # permanents and per-sample times (a few minutes)
    python bench/compare.py --headline      # also qboson.sample(n=24, m=48, shots=10000) on all cores
    python bench/compare.py --plot out.png  # seconds per sample vs n, log scale

Everything runs in this one process on the same Haar matrices, so ratios are measured side by side.
Single-thread figures come first; the 2-thread column shows the scaling actually obtained.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from peers import (  # noqa: E402
    perceval_permanent,
    perceval_sampler,
    piquasso_sampler,
    single_thread_env,
    thewalrus_permanent,
)

single_thread_env()

import numpy as np  # noqa: E402

import qboson  # noqa: E402
from qboson import reference  # noqa: E402


def timeit(fn, min_time: float = 0.5, max_reps: int = 50, budget: float = 60.0) -> float:
    """Best seconds per call: repeat until min_time has passed (at most max_reps calls or budget)."""
    fn()  # warm-up (JIT compilation, allocation)
    best, total, reps = float("inf"), 0.0, 0
    while reps < max_reps and (total < min_time or reps < 3) and total < budget:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, total, reps = min(best, dt), total + dt, reps + 1
    return best


def fmt(x) -> str:
    if x is None:
        return "—"
    return f"{x:.3g}"


def ratio(a, b) -> str:
    return "—" if a is None or b is None else f"{a / b:.0f}×"


def permanents(sizes) -> str:
    peers = {"thewalrus (bbfg)": thewalrus_permanent(), "Perceval/exqalibur (glynn)": perceval_permanent()}
    rows = ["| n | qboson 1 thread (s) | qboson 2 threads (s) | numpy reference (s) | "
            + " | ".join(f"{k} (s)" for k in peers) + " | fastest peer / qboson |",
            "|---|---|---|---|" + "---|" * len(peers) + "---|"]
    rng = np.random.default_rng(0)
    for n in sizes:
        a = qboson.haar_unitary(n, seed=rng)
        q1 = timeit(lambda: qboson.permanent(a, threads=1))
        q2 = timeit(lambda: qboson.permanent(a, threads=2))
        ref = timeit(lambda: reference.glynn_permanent(a), max_reps=3, budget=20) if n <= 22 else None
        peer_t = {k: (timeit(lambda f=f: f(a), max_reps=5, budget=30) if f else None) for k, f in peers.items()}
        best_peer = min((t for t in peer_t.values() if t), default=None)
        rows.append(f"| {n} | {fmt(q1)} | {fmt(q2)} | {fmt(ref)} | "
                    + " | ".join(fmt(t) for t in peer_t.values()) + f" | {ratio(best_peer, q1)} |")
    return "\n".join(rows)


def sampling(sizes, results: dict) -> str:
    pcvl, pqs = perceval_sampler(), piquasso_sampler()
    rows = ["| (n, m) | qboson 1 thread (s/sample) | qboson 2 threads | cc2017 path 1 thread | numpy reference | "
            "Perceval CC2017 | piquasso | Perceval / qboson | piquasso / qboson | numpy / qboson |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for n, m in sizes:
        u = qboson.haar_unitary(m, seed=n)
        shots = max(1, int(1.0 / max(qboson.estimate_cost(n, m, 1, threads=1), 1e-7)))
        shots = min(shots, 200_000)
        per = lambda f, k: timeit(f, max_reps=3, budget=60) / k  # noqa: E731
        q1 = per(lambda: qboson.sample(unitary=u, n=n, shots=shots, seed=1, threads=1, progress=False), shots)
        q2 = per(lambda: qboson.sample(unitary=u, n=n, shots=2 * shots, seed=1, threads=2, progress=False), 2 * shots)
        q17 = per(lambda: qboson.sample(unitary=u, n=n, shots=shots, seed=1, threads=1, method="cc2017", progress=False), shots)
        k_ref = 1 if n >= 20 else max(1, min(50, int(0.5 / (4e-4 * 2 ** (n - 8)))))
        ref = per(lambda: reference.clifford_sample(u, range(n), k_ref, np.random.default_rng(0)), k_ref) \
            if n <= 24 else None
        k_peer = 1 if n >= 20 else 20
        tp = per(lambda: pcvl(u, n, k_peer), k_peer) if pcvl else None
        tq = per(lambda: pqs(u, n, k_peer), k_peer) if pqs else None
        results[(n, m)] = {"qboson (1 thread)": q1, "qboson (2 threads)": q2, "numpy reference": ref,
                           "Perceval CC2017": tp, "piquasso 8": tq}
        rows.append(f"| ({n}, {m}) | {fmt(q1)} | {fmt(q2)} | {fmt(q17)} | {fmt(ref)} | {fmt(tp)} | {fmt(tq)} | "
                    f"{ratio(tp, q1)} | {ratio(tq, q1)} | {ratio(ref, q1)} |")
    return "\n".join(rows)


def distinguishable() -> str:
    rows = ["| (n, m) | threads | samples/s |", "|---|---|---|"]
    for threads in (1, 2):
        shots = 2_000_000
        t = timeit(lambda: qboson.sample(n=24, m=48, shots=shots, seed=0, distinguishable=True, threads=threads),
                   max_reps=3)
        rows.append(f"| (24, 48) | {threads} | {shots / t:,.0f} |")
    return "\n".join(rows)


def headline() -> str:
    t0 = time.perf_counter()
    qboson.sample(n=24, m=48, shots=10_000, seed=0, progress=True)
    wall = time.perf_counter() - t0
    return f"`qboson.sample(n=24, m=48, shots=10000)` on {os.cpu_count()} threads: **{wall:.0f} s** wall"


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    names = list(next(iter(results.values())).keys())
    for name in names:
        pts = [(n, r[name]) for (n, _), r in sorted(results.items()) if r.get(name)]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("photons n (m = 2n modes)")
    ax.set_ylabel("seconds per exact sample")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--perm-sizes", default="12,16,20,22,24,26")
    parser.add_argument("--sample-sizes", default="8,12,16,20,24")
    parser.add_argument("--headline", action="store_true")
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()
    info = qboson.build_info()
    print(f"# qboson {qboson.__version__} benchmark\n")
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"SIMD {info['simd']}, OpenMP {info['openmp']}; {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("## Permanents (seconds per permanent, Haar-random complex matrix)\n")
    print(permanents([int(s) for s in args.perm_sizes.split(",")]), "\n", flush=True)
    print("## Exact sampling, m = 2n (seconds per sample)\n")
    results: dict = {}
    print(sampling([(int(s), 2 * int(s)) for s in args.sample_sizes.split(",")], results), "\n", flush=True)
    print("## Distinguishable photons\n")
    print(distinguishable(), "\n", flush=True)
    if args.headline:
        print("## Headline\n")
        print(headline(), "\n")
    if args.plot:
        plot(results, args.plot)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
