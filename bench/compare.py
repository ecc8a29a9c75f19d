"""Side-by-side speed of qboson, its numpy reference and peer simulators; prints Markdown tables.

    python bench/compare.py                 # permanents and per-sample times (a few minutes)
    python bench/compare.py --headline      # also qboson.sample(n=24, m=48, shots=10000) on all cores
    python bench/compare.py --plot out.png  # seconds per sample vs n, log scale

Everything runs in this one process on the same Haar matrices, so ratios are measured side by side.
Single-thread figures come first; the 2-thread column shows the scaling actually obtained.

Fairness rules: at each size every sampler is timed on the *same* number of shots per call, with
its set-up (object construction, validation) inside the call; a second table splits each call
into set-up and per-sample cost by timing k and 4k shots.  Every timed call also records CPU
time / wall time, so a peer that quietly used more than one thread shows up (ratio > 1).  Before
any timing, each sampler's samples are checked against the exact distribution at one small size.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from peers import (  # noqa: E402  (importing peers first sets the one-thread environment)
    limit_native_pools,
    perceval_permanent,
    perceval_sampler,
    piquasso_sampler,
    thewalrus_permanent,
)

import numpy as np  # noqa: E402

import qboson  # noqa: E402
from qboson import reference  # noqa: E402


#: Largest CPU/wall ratio accepted from a "one thread" measurement (timer noise, interpreter threads).
ONE_THREAD_CPU_RATIO = 1.3
#: CPU time / wall time of every single-thread measurement, by label (filled by timeit).
CPU_RATIOS: dict = {}


def timeit(fn, min_time: float = 0.5, max_reps: int = 50, budget: float = 60.0, label: str = "") -> float:
    """Best seconds per call: repeat until min_time has passed (at most max_reps calls or budget).

    With a ``label``, the process CPU time / wall time over the timed calls is kept in CPU_RATIOS:
    about 1 for a single-threaded call, about k for k busy threads.
    """
    fn()  # warm-up (JIT compilation, allocation)
    best, total, reps, cpu = float("inf"), 0.0, 0, 0.0
    while reps < max_reps and (total < min_time or reps < 3) and total < budget:
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        cpu += time.process_time() - c0
        best, total, reps = min(best, dt), total + dt, reps + 1
    if label:
        CPU_RATIOS[label] = max(CPU_RATIOS.get(label, 0.0), cpu / total)
    return best


def shots_per_call(n: int) -> int:
    """Shots in every timed sampling call at n photons, the same for all samplers."""
    return 200 if n <= 8 else 100 if n <= 12 else 20 if n <= 16 else 3 if n <= 20 else 1


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
        q1 = timeit(lambda: qboson.permanent(a, threads=1), label=f"qboson 1 thread, permanent n={n}")
        q2 = timeit(lambda: qboson.permanent(a, threads=2))
        ref = timeit(lambda: reference.glynn_permanent(a), max_reps=3, budget=20) if n <= 22 else None
        peer_t = {k: (timeit(lambda f=f: f(a), max_reps=5, budget=30, label=f"{k}, permanent n={n}") if f else None)
                  for k, f in peers.items()}
        best_peer = min((t for t in peer_t.values() if t), default=None)
        rows.append(f"| {n} | {fmt(q1)} | {fmt(q2)} | {fmt(ref)} | "
                    + " | ".join(fmt(t) for t in peer_t.values()) + f" | {ratio(best_peer, q1)} |")
    return "\n".join(rows)


def sampling(sizes, results: dict) -> tuple[str, str]:
    """Seconds per sample with the same shots per call for everyone, and a set-up/per-sample split."""
    samplers = _samplers()
    names = list(samplers)
    rows = ["| (n, m) | shots per call | " + " | ".join(f"{k} (s/sample)" for k in names)
            + " | Perceval / qboson | piquasso / qboson | numpy / qboson |",
            "|---|---|" + "---|" * len(names) + "---|---|---|"]
    split = ["| (n, m) | k | " + " | ".join(f"{k}: set-up (s) / per sample (s)" for k in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for n, m in sizes:
        u = qboson.haar_unitary(m, seed=n)
        k = shots_per_call(n)
        per_sample = {}
        for name, (fn, limit) in samplers.items():
            if fn is None or n > limit:
                per_sample[name] = None
                continue
            label = f"{name}, sample n={n}" if "2 threads" not in name else ""
            t_k = timeit(lambda: fn(u, n, k), max_reps=3, budget=60, label=label)
            per_sample[name] = t_k / k
        results[(n, m)] = dict(per_sample)
        q1 = per_sample["qboson 1 thread"]
        rows.append(f"| ({n}, {m}) | {k} | " + " | ".join(fmt(per_sample[x]) for x in names)
                    + f" | {ratio(per_sample['Perceval CC2017'], q1)} | {ratio(per_sample['piquasso 8'], q1)}"
                    + f" | {ratio(per_sample['numpy reference'], q1)} |")
        if k >= 20:  # split set-up from per-sample cost: t(k) = setup + k * c, t(4k) = setup + 4k * c
            cells = []
            for name, (fn, limit) in samplers.items():
                if fn is None or n > limit or per_sample[name] is None:
                    cells.append("—")
                    continue
                t1 = per_sample[name] * k
                t4 = timeit(lambda: fn(u, n, 4 * k), max_reps=3, budget=60)
                c = max((t4 - t1) / (3 * k), 0.0)
                cells.append(f"{fmt(max(t1 - k * c, 0.0))} / {fmt(c)}")
            split.append(f"| ({n}, {m}) | {k} | " + " | ".join(cells) + " |")
    return "\n".join(rows), "\n".join(split)


def _samplers() -> dict:
    """name -> (fn(u, n, shots), largest n to time it at)."""
    pcvl, pqs = perceval_sampler(), piquasso_sampler()
    q = lambda threads, method="cc2020": (  # noqa: E731
        lambda u, n, k: qboson.sample(unitary=u, n=n, shots=k, seed=1, threads=threads, method=method, progress=False))
    return {
        "qboson 1 thread": (q(1), 99),
        "qboson 2 threads": (q(2), 99),
        "qboson cc2017 1 thread": (q(1, "cc2017"), 99),
        "numpy reference": (lambda u, n, k: reference.clifford_sample(u, range(n), k, np.random.default_rng(0)), 24),
        "Perceval CC2017": (pcvl, 24),
        "piquasso 8": (pqs, 24),
    }


def agreement(n: int = 3, m: int = 6, shots: int = 20_000) -> str:
    """Chi-square p-values of every sampler's output against the exact distribution at (n, m)."""
    from scipy import stats

    u = qboson.haar_unitary(m, seed=123)
    patterns, probs = qboson.probabilities(u, range(n))
    index = {tuple(int(v) for v in p): i for i, p in enumerate(patterns)}
    rows = [f"| sampler | shots | chi-square p-value vs exact ({n} photons, {m} modes) | outside support |",
            "|---|---|---|---|"]
    for name, (fn, _) in _samplers().items():
        if fn is None or "2 threads" in name or "cc2017" in name:
            continue
        k = shots if name != "numpy reference" else 2_000
        counts = np.zeros(len(probs))
        outside = 0
        for row in fn(u, n, k):
            i = index.get(tuple(int(v) for v in row))
            if i is None:
                outside += 1
            else:
                counts[i] += 1
        expected = probs * counts.sum()
        keep = expected >= 5  # pool the small bins so the chi-square approximation holds
        obs = np.append(counts[keep], counts[~keep].sum())
        exp = np.append(expected[keep], expected[~keep].sum())
        obs, exp = (obs[:-1], exp[:-1]) if exp[-1] == 0 else (obs, exp)
        p = stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue
        rows.append(f"| {name} | {k:,} | {p:.3g} | {outside} |")
    return "\n".join(rows)


def thread_report() -> str:
    """What the peers' thread pools say, and the CPU/wall ratios measured in the one-thread runs."""
    lines = []
    try:
        from threadpoolctl import threadpool_info

        pools = [f"{p.get('internal_api')} ({os.path.basename(p.get('filepath', ''))}): {p.get('num_threads')}"
                 for p in threadpool_info()]
        lines.append("threadpoolctl: " + ("; ".join(pools) if pools else "no native thread pools loaded"))
    except ImportError:
        lines.append("threadpoolctl not installed: pools not listed")
    if "numba" in sys.modules:
        lines.append(f"numba threads: {sys.modules['numba'].get_num_threads()}")
    over = {k: v for k, v in CPU_RATIOS.items() if v > ONE_THREAD_CPU_RATIO}
    worst = max(CPU_RATIOS.items(), key=lambda kv: kv[1], default=("—", 0.0))
    lines.append(f"CPU/wall over {len(CPU_RATIOS)} single-thread measurements: max {worst[1]:.2f} ({worst[0]})")
    if over:
        lines.append("**WARNING: more than one busy thread in:** " + ", ".join(f"{k} ({v:.2f})" for k, v in over.items()))
    return "\n\n".join(lines)


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
    # Load the peers now, then cap every native pool they brought at one thread.
    perceval_sampler(), piquasso_sampler(), thewalrus_permanent()
    limit_native_pools()
    info = qboson.build_info()
    print(f"# qboson {qboson.__version__} benchmark\n")
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"SIMD {info['simd']}, kernel {info['kernel']}, OpenMP {info['openmp']}; "
          f"load average {os.getloadavg()[0]:.1f} at start; {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("## Permanents (seconds per permanent, Haar-random complex matrix)\n")
    print(permanents([int(s) for s in args.perm_sizes.split(",")]), "\n", flush=True)
    print("## Do the samplers agree with the exact distribution?\n")
    print(agreement(), "\n", flush=True)
    print("## Exact sampling, m = 2n (seconds per sample, same shots per call for every sampler)\n")
    results: dict = {}
    table, split = sampling([(int(s), 2 * int(s)) for s in args.sample_sizes.split(",")], results)
    print(table, "\n", flush=True)
    print("### Set-up and per-sample cost (from calls of k and 4k shots)\n")
    print(split, "\n", flush=True)
    print("## Distinguishable photons\n")
    print(distinguishable(), "\n", flush=True)
    if args.headline:
        print("## Headline\n")
        print(headline(), "\n")
    print("## Threads actually used\n")
    print(thread_report(), "\n", flush=True)
    if args.plot:
        plot(results, args.plot)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
