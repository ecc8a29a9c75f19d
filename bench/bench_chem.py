"""Time the chemistry layer: QM9 graphs, FCD reference, evaluation of 10k molecules.

    python bench/bench_chem.py [--n 10000] [--threads 1] [--cache-dir DIR] [--json out.json]

Prints a Markdown table.  Target (issue 6): evaluating 10,000 generated molecules,
FCD included, in <= 60 s on 2 CPU cores once the reference statistics are cached.

Cases:
* ``evaluate 10k distinct``: the worst case for FCD, 10k different valid molecules
  (QM9 training graphs decoded to SMILES, so decoding is timed too).
* ``evaluate 10k, 2.5k distinct``: closer to a trained MolGAN (the paper reports ~2.5k
  valid & unique of 10k); ChemNet runs once per distinct molecule.
Also reports FCD between two disjoint random QM9 samples of size n and against a trivial set.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from qboson import chem

from result_files import check_new, write_new_text  # this folder is on sys.path when run as a script


_cpu: list[float] = []  # process CPU seconds of the last _timed call


def _timed(fn, *args, **kwargs):
    """(value, wall seconds); CPU seconds go to _cpu[-1] (robust when other jobs load the machine)."""
    start, cpu = time.perf_counter(), time.process_time()
    value = fn(*args, **kwargs)
    _cpu.append(time.process_time() - cpu)
    return value, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="molecules per evaluated set")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for ChemNet")
    parser.add_argument("--cache-dir", default=None, help="cache root (default $QBOSON_CACHE or ~/.cache/qboson)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    problem = check_new(args.json, "--json")
    if problem:
        parser.error(problem)
    rows: list[tuple[str, ...]] = []

    def add(step: str, wall: float, result: str, cpu: float | None = None) -> None:
        rows.append((step, f"{wall:.2f} s", f"{_cpu[-1] if cpu is None else cpu:.2f} s", result))
    out: dict[str, float | int] = {}

    data, t = _timed(chem.load_qm9_graphs, cache_dir=args.cache_dir, seed=0)
    add("load QM9 graphs (cache hit if built before)", t,
        f"{len(data)} graphs, {data.n_dropped} dropped {data.drop_reasons}")
    out["load_graphs_s"] = t

    test = data.split_smiles("test")
    path = chem.reference_cache_path(test, args.cache_dir)
    was_cached = path.exists()
    ref, t = _timed(chem.FCDReference.from_smiles, test, cache_path=path, threads=args.threads)
    add(f"FCD reference of the test split ({'cached' if was_cached else 'computed and cached'})", t,
        f"{ref.n} molecules")
    _, t_cached = _timed(chem.FCDReference.from_smiles, test, cache_path=path, threads=args.threads)
    add("FCD reference, cached", t_cached, str(path))
    out["reference_s"], out["reference_cached_s"] = t, t_cached

    train_smiles = set(data.split_smiles("train"))
    rng = np.random.default_rng(0)
    pick = rng.choice(data.train_idx, size=args.n, replace=False)

    def evaluate(idx: np.ndarray) -> dict:
        smiles = chem.graphs_to_smiles(data.nodes[idx], data.adjacency[idx], strict=False)
        return chem.evaluate_molecules(smiles, train_smiles=train_smiles, fcd_reference=ref,
                                       threads=args.threads)

    result, t = _timed(evaluate, pick)
    add(f"evaluate {args.n} distinct (decode + metrics + FCD)", t,
        f"valid {result['valid']}, FCD {result['fcd']:.3f} (n_fcd {result['n_fcd']})")
    out["evaluate_distinct_s"], out["evaluate_distinct_cpu_s"] = t, _cpu[-1]
    out["evaluate_distinct_fcd"] = result["fcd"]

    few = rng.choice(pick, size=args.n // 4, replace=False)
    repeated = rng.choice(few, size=args.n, replace=True)
    result, t = _timed(evaluate, repeated)
    add(f"evaluate {args.n}, {len(np.unique(repeated))} distinct", t,
        f"valid & unique {result['valid_unique']}, FCD {result['fcd']:.3f}")
    out["evaluate_repeated_s"], out["evaluate_repeated_fcd"] = t, result["fcd"]

    order = rng.permutation(len(data))
    a = [data.smiles[i] for i in order[: args.n]]
    b = [data.smiles[i] for i in order[args.n: 2 * args.n]]
    ref_a, t_a = _timed(chem.FCDReference.from_smiles, a, threads=args.threads)
    cpu_a = _cpu[-1]
    value, t_b = _timed(chem.fcd, b, ref_a, threads=args.threads)
    add(f"FCD of two disjoint QM9 samples of {args.n}", t_a + t_b, f"FCD {value:.4f}", cpu_a + _cpu[-1])
    out["fcd_disjoint"] = value
    trivial, t = _timed(chem.fcd, ["C", "CC", "CCC", "CO", "CCO"] * (args.n // 5), ref_a, threads=args.threads)
    add("FCD of QM9 vs a trivial set (5 tiny molecules)", t, f"FCD {trivial:.2f}")
    out["fcd_trivial"] = trivial

    print(f"| step (ChemNet on {args.threads} torch thread(s)) | wall | CPU | result |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if args.json:
        write_new_text(args.json, json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
