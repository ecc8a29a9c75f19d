"""Throughput of Dask bank generation on 1 vs 2 local workers, against local generation.

    python bench/bench_distributed.py [--n 16 --m 32 --shots 8000 --chunk-size 250]

Prints a Markdown table (wall time, shots/s, speed-up over 1 worker) and checks that every
bank is byte-identical to the first local one (the first row compares with itself).  Cluster start-up is not timed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--shots", type=int, default=8000)
    ap.add_argument("--chunk-size", type=int, default=250)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()

    from dask.distributed import Client, LocalCluster

    from qboson.distributed import generate_bank
    from qboson.latent import generate_bank as local_generate_bank
    from qboson.latent import make

    latent = make("quantum", args.m, n_photons=args.n, seed=0)
    rows = []
    ref = None

    def identical(bank) -> bool:
        """Same bytes as the first local bank (data file and recorded checksum), checked, not assumed."""
        data = bank.path / bank.metadata["data_file"]
        ref_data = ref.path / ref.metadata["data_file"]
        return bank.sha256 == ref.sha256 and data.read_bytes() == ref_data.read_bytes()

    with tempfile.TemporaryDirectory() as tmp:
        for threads in (1, 2):
            t0, c0 = time.perf_counter(), time.process_time()
            bank = local_generate_bank(latent, args.shots, Path(tmp) / f"local{threads}", chunk_size=args.chunk_size,
                                       threads=threads, progress=False)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            ref = ref or bank
            rows.append((f"local, {threads} OpenMP thread(s)", threads, dt, cpu, identical(bank)))
        for workers in args.workers:
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=None) as cluster, Client(cluster) as client:
                client.wait_for_workers(workers)
                cpu0 = sum(client.run(time.process_time).values())
                t0 = time.perf_counter()
                bank = generate_bank(latent, args.shots, Path(tmp) / f"dask{workers}", client, args.chunk_size,
                                     threads=1, progress=False)
                dt = time.perf_counter() - t0
                cpu = sum(client.run(time.process_time).values()) - cpu0
            rows.append((f"dask LocalCluster, {workers} worker(s) x 1 thread", workers, dt, cpu, identical(bank)))
    base = next(r[2] for r in rows if r[0].startswith("dask"))
    import os

    print(f"load average before the table: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"quantum latent, n={args.n}, m={args.m}, {args.shots} shots, chunk size {args.chunk_size}\n")
    print("| generation | cores | wall s | shots/s | vs 1 dask worker | sampler CPU s | shots per CPU s | bank identical |")
    print("|---|---|---|---|---|---|---|---|")
    for name, cores, dt, cpu, same in rows:
        print(f"| {name} | {cores} | {dt:.2f} | {args.shots / dt:.0f} | {base / dt:.2f}x | {cpu:.2f} | "
              f"{args.shots / cpu:.0f} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
