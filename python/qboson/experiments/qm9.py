"""``qboson experiment qm9``: the paper's Table II grid (MolGAN on QM9, one run per latent x seed).

Each run lives in ``<out>/<latent>-d<dim>-s<seed>/`` (a ``qboson train`` run directory
plus ``eval.json`` from ``qboson evaluate``).  The grid is resumable: a run with an
``eval.json`` is skipped, an interrupted one resumes from its checkpoint.  Then::

    <out>/runs.csv              one row per finished run (all metrics)
    <out>/table.csv, table.md   mean ± standard error over seeds, per latent and dim
    <out>/fcd.png               FCD per latent, mean ± s.e. with the single runs
    <out>/training_curves.png   critic Wasserstein estimate and generator loss vs iteration
    <out>/quality_curves.png    FCD and valid & unique during training (each run's curve.csv)
    <out>/molecules-<latent>-d<dim>.png   distinct valid molecules of the lowest seed's run
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Optional, Sequence

from .._outdir import check_output_dir, claim_output_dir
from ..molgan.cli import add_training_flags, training_overrides
from ._dask_runner import TasksFailed

__all__ = ["add_arguments", "run", "parse_seeds", "run_grid", "summarise", "METRICS"]

#: (eval.json key, column title, decimals) of the table
METRICS = (
    ("fcd", "FCD", 3),
    ("fcd_unique", "FCD (unique)", 3),
    ("valid", "valid", 0),
    ("valid_loose", "valid (loose)", 0),
    ("valid_unique", "valid & unique", 0),
    ("novel", "novel", 0),
)
#: the grid of each profile when --latents / --seeds are not given: the quick profile trades the
#: photonic and Bernoulli runs and all seeds but 0 for a schedule long enough to leave collapse in
#: about 15 minutes on 2 cores (docs/qm9.md); the paper profile is Table II's grid
GRID_DEFAULTS = {"quick": {"latents": "quantum,gaussian", "seeds": "0"},
                 "paper": {"latents": "quantum,photonic,gaussian,bernoulli", "seeds": "0-19"}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latents", default=None,
                        help=f"comma-separated latents (default: {GRID_DEFAULTS['quick']['latents']} quick, "
                             f"{GRID_DEFAULTS['paper']['latents']} paper)")
    parser.add_argument("--dim", default="16", help="latent dimension(s), comma-separated (default 16)")
    parser.add_argument("--seeds", default=None,
                        help=f"seeds, e.g. 0-4 or 0,2,5 (default: {GRID_DEFAULTS['quick']['seeds']} quick, "
                             f"{GRID_DEFAULTS['paper']['seeds']} paper)")
    parser.add_argument("--profile", choices=("quick", "paper"), default="quick", help="training settings (default quick)")
    parser.add_argument("--out", default="runs/qm9", help="grid directory (default runs/qm9)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel, one process each (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--stack", type=int, default=1, metavar="K",
                        help="train K runs of equal architecture in one process, weights stacked (default 1)")
    parser.add_argument("--iterations", type=int, help="override the profile's iterations")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    add_training_flags(parser)
    parser.add_argument("--eval-samples", type=int, help="override the molecules generated per run (default 10000)")
    parser.add_argument("--summary-only", action="store_true", help="only write tables and plots of finished runs")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.add_argument("--latent-bank", metavar="DIR", action="append",
                        help="train a latent from a pre-drawn bank (every seed; one fixed circuit): a bank directory or "
                             "a folder with one bank per latent name (repeatable)")
    g = parser.add_argument_group("Dask cluster (needs qboson[dist]; see docs/qm9-cluster.md)")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="run each run as a task on this Dask scheduler (tcp://host:8786); --out on shared storage")
    g.add_argument("--dask-workers", type=int, metavar="N", help="run the runs on a local Dask cluster of N processes")


def _latent_names(args: argparse.Namespace) -> list[str]:
    """The grid's latents in table order: ``--latents``, else the profile's default."""
    text = args.latents if args.latents is not None else GRID_DEFAULTS[args.profile]["latents"]
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,5"`` -> [0, 2, 5]; ranges and lists mix (``"0-2,7"``)."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"bad seed list {text!r}: use e.g. 0-4 or 0,2,5") from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f"bad seed list {text!r}: seeds must be non-negative integers")
    return sorted(set(seeds))


def run_dir_name(latent: str, dim: int, seed: int) -> str:
    return f"{latent}-d{dim}-s{seed}"


def _run_one(config_dict: dict[str, Any], run_dir: str, progress: bool, device: str = "cpu") -> dict[str, Any]:
    """Train (or resume) and evaluate one run; executed in a worker process."""
    from ..molgan import evaluate as evaluation, trainer
    from ..molgan.config import TrainConfig

    config = TrainConfig.from_dict(config_dict)
    t0 = time.perf_counter()
    eval_path = Path(run_dir) / "eval.json"
    if eval_path.exists():  # finished by another copy of this task (a resumed grid on a cluster)
        return json.loads(eval_path.read_text())
    summary_path = Path(run_dir) / "train_summary.json"
    if not summary_path.exists():
        evaluator = evaluation.curve_evaluator(config, threads=config.threads) if config.curve_points else None
        summary = trainer.train(config, run_dir, resume=True, progress=progress, evaluator=evaluator, device=device)
        if not summary["finished"]:
            raise KeyboardInterrupt
    result = evaluation.evaluate_run(run_dir, threads=config.threads, device=device)
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    return result


def _grid_configs(args: argparse.Namespace) -> list[tuple[Any, Path]]:
    from ..latent import KINDS
    from ..molgan.config import profile_config

    latents = _latent_names(args)
    unknown = [x for x in latents if x not in KINDS]
    if not latents or unknown:
        raise ValueError(f"unknown latent(s) {unknown}; valid names: {', '.join(KINDS)}")
    try:
        dims = [int(x) for x in str(args.dim).split(",")]
    except ValueError:
        raise ValueError(f"bad --dim {args.dim!r}: use e.g. 16 or 16,32") from None
    seeds = parse_seeds(args.seeds or GRID_DEFAULTS[args.profile]["seeds"])
    if args.jobs < 1 or args.threads < 1 or getattr(args, "stack", 1) < 1:
        raise ValueError("--jobs, --threads and --stack must be >= 1")
    scheduler, dask_workers = getattr(args, "scheduler", None), getattr(args, "dask_workers", None)
    if scheduler and dask_workers is not None:
        raise ValueError("give --scheduler or --dask-workers, not both")
    if dask_workers is not None and dask_workers < 1:
        raise ValueError(f"--dask-workers must be >= 1, got {dask_workers}")
    if (scheduler or dask_workers) and args.jobs > 1:
        raise ValueError("--jobs runs processes on this machine; with --scheduler or --dask-workers leave it at 1")
    out = Path(args.out)
    from ._banks import find

    banks = find(getattr(args, "latent_bank", None))
    grid = []
    for dim in dims:  # seed-major: an interrupted grid has all latents at the lowest seeds
        for seed in seeds:
            for latent in latents:
                config = profile_config(args.profile, latent=latent, dim=dim, seed=seed, threads=args.threads,
                                        iterations=args.iterations, eval_samples=args.eval_samples,
                                        latent_bank_path=banks.get((latent, dim)), **training_overrides(args))
                grid.append((config, out / run_dir_name(latent, dim, seed)))
    return grid


def _check_existing(config, run_dir: Path) -> None:
    """Refuse to mix a run made with other settings into this grid."""
    from ..molgan.config import EXECUTION_FIELDS, TrainConfig

    path = run_dir / "config.json"
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is unreadable ({exc}); use another --out") from None
        if not isinstance(saved, dict):
            raise ValueError(f"{path} is not a run configuration; use another --out")
        try:  # settings added since the run was made count with their defaults
            saved = TrainConfig.from_dict(saved).to_dict()
        except (ValueError, TypeError):
            pass
        mine = config.to_dict()
        # how a run is executed (its thread count) is not what it is: a grid may go on with another
        diff = sorted(k for k in mine if saved.get(k) != mine[k] and k not in EXECUTION_FIELDS)
        if diff:
            said = ", ".join(f"{k} {saved.get(k)!r} there, {mine[k]!r} asked" for k in diff)
            raise ValueError(f"{run_dir} holds a run with other settings ({said}); give the flags that "
                             f"match it (docs/qm9.md: the open choices), or use another --out")


OUT_KIND = "experiment-qm9"
# every name a grid folder holds (before output manifests existed): run folders and summaries
_GRID_ENTRY = re.compile(r"^([A-Za-z0-9_]+-d\d+-s\d+|runs\.csv|table\.(md|csv)|fcd\.png|(training|quality)_curves\.png|"
                         r"molecules-.+\.png|\..+\.tmp.*)$")


def _looks_like_grid(folder: Path) -> bool:
    names = [p.name for p in folder.iterdir()]
    return any(_GRID_ENTRY.match(n) and (folder / n / "config.json").exists() for n in names) and \
        all(_GRID_ENTRY.match(n) for n in names)


def run_grid(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train and evaluate every missing run of the grid; returns the list of all eval results."""
    grid = _grid_configs(args)
    claim_output_dir(args.out, OUT_KIND, manifest=_looks_like_grid)
    for config, run_dir in grid:
        _check_existing(config, run_dir)
    todo = [(c, d) for c, d in grid if not (d / "eval.json").exists()]
    done = len(grid) - len(todo)
    scheduler, dask_workers = getattr(args, "scheduler", None), getattr(args, "dask_workers", None)
    dask = bool(scheduler or dask_workers)
    where = (f"Dask {scheduler}" if scheduler else f"{dask_workers} Dask worker(s)") if dask else f"{args.jobs} job(s)"
    print(f"qm9 grid: {len(grid)} runs ({done} finished, {len(todo)} to do), profile {args.profile}, "
          f"{where} x {args.threads} thread(s), in {args.out}", file=sys.stderr)
    if todo:
        _prepare_shared_caches(todo[0][0])
    order = list(dict.fromkeys(c.latent for c, _ in grid))

    def finished() -> list[dict[str, Any]]:
        return [json.loads((d / "eval.json").read_text()) for _, d in grid if (d / "eval.json").exists()]

    def progress_table() -> None:  # the table so far, after every run (plots at the end)
        write_outputs(Path(args.out), finished(), order, args.profile, plots=False)

    if dask and todo:
        from ._dask_runner import GridTask, run_tasks

        def lock(d: Path) -> str:  # absolute paths: the workers' working folders differ from ours
            return str(d.resolve().parent / f".{d.name}.lock")

        stacked = getattr(args, "stack", 1) > 1
        if stacked:  # one task per stack, holding the locks of all its runs
            groups = _stack_groups(todo, args.stack)
            tasks = [GridTask(f"stack-{g[0][1].name}-{len(g)}",
                              ([c.to_dict() for c, _ in g], [str(d.resolve()) for _, d in g], False, args.device),
                              locks=tuple(lock(d) for _, d in g)) for g in groups]
            fn = _run_stack
        else:
            tasks = [GridTask(d.name, (c.to_dict(), str(d.resolve()), False, args.device), locks=(lock(d),))
                     for c, d in todo]
            fn = _run_one
        count = iter(range(1, len(todo) + 1))

        def on_result(task, result) -> None:
            dirs, results = (task.args[1], result) if stacked else ([task.args[1]], [result])
            for run_dir, r in zip(dirs, results):
                _report(next(count), len(todo), Path(run_dir), r)
            progress_table()

        run_tasks(fn, tasks, client=scheduler, n_workers=dask_workers, on_result=on_result)
    elif getattr(args, "stack", 1) > 1:
        i = 0
        for group, results in _run_stacks(todo, args):
            for (_, run_dir), result in zip(group, results):
                i += 1
                _report(i, len(todo), run_dir, result)
            progress_table()
    elif args.jobs == 1:
        for i, (config, run_dir) in enumerate(todo, 1):
            result = _run_one(config.to_dict(), str(run_dir), progress=True, device=args.device)
            _report(i, len(todo), run_dir, result)
            progress_table()
    elif todo:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_run_one, c.to_dict(), str(d), False, args.device): d for c, d in todo}
            for i, fut in enumerate(as_completed(futures), 1):
                _report(i, len(todo), futures[fut], fut.result())
                progress_table()
    return finished()


def _stack_groups(todo: list[tuple[Any, Path]], k: int) -> list[list[tuple[Any, Path]]]:
    """``todo`` in groups of at most ``k`` runs that may share a stack (equal but for seed and latent)."""
    from ..molgan.stacked import STACKABLE_FIELDS

    buckets: dict[str, list[tuple[Any, Path]]] = {}
    for config, run_dir in todo:
        key = json.dumps({f: v for f, v in config.to_dict().items() if f not in STACKABLE_FIELDS}, sort_keys=True)
        buckets.setdefault(key, []).append((config, run_dir))
    return [runs[i:i + k] for runs in buckets.values() for i in range(0, len(runs), k)]


def _run_stack(config_dicts: list[dict[str, Any]], run_dirs: list[str], progress: bool,
               device: str = "cpu") -> list[dict[str, Any]]:
    """Train (or resume) a group of runs as one stack, then evaluate each; executed in a worker process."""
    from ..molgan import evaluate as evaluation
    from ..molgan.config import TrainConfig
    from ..molgan.stacked import train_stack

    configs = [TrainConfig.from_dict(c) for c in config_dicts]
    t0 = time.perf_counter()
    pending = [k for k, d in enumerate(run_dirs) if not (Path(d) / "train_summary.json").exists()]
    if pending:
        evaluators = [evaluation.curve_evaluator(configs[k], threads=configs[k].threads)
                      if configs[k].curve_points else None for k in pending]
        summaries = train_stack([configs[k] for k in pending], [run_dirs[k] for k in pending], resume=True,
                                progress=progress, evaluators=evaluators, device=device)
        if not all(s["finished"] for s in summaries):
            raise KeyboardInterrupt
    results = []
    for config, run_dir in zip(configs, run_dirs):
        result = evaluation.evaluate_run(run_dir, threads=config.threads, device=device)
        result["wall_seconds"] = round(time.perf_counter() - t0, 1)
        results.append(result)
    return results


def _run_stacks(todo: list[tuple[Any, Path]], args: argparse.Namespace):
    """Yield ``(group, results)`` for each stack of ``args.stack`` runs, ``args.jobs`` stacks at a time."""
    groups = _stack_groups(todo, args.stack)
    work = [([c.to_dict() for c, _ in g], [str(d) for _, d in g]) for g in groups]
    if args.jobs == 1:
        for g, (configs, dirs) in zip(groups, work):
            yield g, _run_stack(configs, dirs, True, args.device)
        return
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_run_stack, configs, dirs, False, args.device): g
                   for g, (configs, dirs) in zip(groups, work)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()


def _prepare_shared_caches(config) -> None:
    """Build the QM9 graph cache and the FCD reference once, before workers need them."""
    from .. import chem
    from ..molgan.evaluate import fcd_reference_path

    data = chem.load_qm9_graphs(seed=config.data_seed)
    chem.FCDReference.from_smiles(data.split_smiles("test"), cache_path=fcd_reference_path(config.data_seed))


def _report(i: int, n: int, run_dir: Path, r: dict[str, Any]) -> None:
    fcd = r.get("fcd")
    fcd_text = "n/a" if fcd is None or (isinstance(fcd, float) and math.isnan(fcd)) else f"{fcd:.3f}"
    print(f"[{i}/{n}] {run_dir.name}: FCD {fcd_text}, valid {r['valid']}, valid&unique {r['valid_unique']}, "
          f"novel {r['novel']} ({r.get('wall_seconds', 0):.0f} s)", file=sys.stderr, flush=True)


def _mean_se(values: Sequence[float]) -> tuple[float, float, int]:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(vals)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(vals) / n
    if n < 2:
        return mean, math.nan, n
    var = sum((v - mean) ** 2 for v in vals) / (n - 1)
    return mean, math.sqrt(var / n), n


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (latent, dim): ``runs`` and ``<metric>_mean``, ``<metric>_se``, ``<metric>_n`` for each metric.

    The standard error is ``std(ddof=1) / sqrt(n)`` over seeds; FCD is averaged over the
    runs where it is defined (at least 2 valid molecules), ``fcd_n`` says how many.
    """
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["latent"], int(r["dim"])), []).append(r)
    rows = []
    for (latent, dim), rs in groups.items():
        row: dict[str, Any] = {"latent": latent, "dim": dim, "runs": len(rs),
                               "seeds": " ".join(str(r["seed"]) for r in sorted(rs, key=lambda r: r["seed"]))}
        for key, _, _ in METRICS:
            mean, se, n = _mean_se([r.get(key) for r in rs])
            row[f"{key}_mean"], row[f"{key}_se"], row[f"{key}_n"] = mean, se, n
        rows.append(row)
    return rows


def _fmt(mean: float, se: float, decimals: int) -> str:
    if math.isnan(mean):
        return "n/a"
    text = f"{mean:.{decimals}f}"
    return text if math.isnan(se) else f"{text} ± {se:.{decimals if decimals else 0}f}"


def markdown_table(rows: list[dict[str, Any]], order: Sequence[str]) -> str:
    """Table II layout: one line per latent (and dim), mean ± standard error over seeds."""
    head = ["latent", "d_z", "runs"] + [title for _, title, _ in METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rank = {name: i for i, name in enumerate(order)}
    for row in sorted(rows, key=lambda r: (r["dim"], rank.get(r["latent"], 99), r["latent"])):
        cells = [row["latent"], str(row["dim"]), str(row["runs"])]
        for key, _, dec in METRICS:
            cell = _fmt(row[f"{key}_mean"], row[f"{key}_se"], dec)
            if key == "fcd" and 0 < row["fcd_n"] < row["runs"]:
                cell += f" ({row['fcd_n']} runs)"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        fields = list(rows[0].keys())
        for r in rows[1:]:
            fields += [k for k in r if k not in fields]
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def write_outputs(out: Path, results: list[dict[str, Any]], order: Sequence[str], profile: str,
                  plots: bool = True) -> str:
    """Write runs.csv, table.csv, table.md (and the plots); returns the Markdown table."""
    from .._atomic import atomic_write_text

    rows = summarise(results)
    table = markdown_table(rows, order)
    n_samples = sorted({r["n"] for r in results})
    decodes = sorted({r.get("decode", "argmax") for r in results})
    note = (f"\nMolGAN on QM9, profile `{profile}`; per run {', '.join(map(str, n_samples))} generated molecules, "
            f"decoded by {' and '.join(decodes)}; mean ± standard error over seeds. FCD: of all strictly valid "
            "molecules (duplicates included); FCD (unique): of the distinct valid ones; both against the QM9 "
            "test split.\n")
    atomic_write_text(out / "table.md", table + note)
    atomic_write_text(out / "table.csv", _csv_text(rows))
    atomic_write_text(out / "runs.csv", _csv_text(sorted(results, key=lambda r: (r["dim"], r["latent"], r["seed"]))))
    if plots and results:
        plot_fcd(out, results, order)
        plot_training_curves(out, results, order)
        runs = {f"{r['latent']} d={r['dim']} s={r['seed']}": out / run_dir_name(r["latent"], r["dim"], r["seed"])
                for r in sorted(results, key=lambda r: (r["dim"], r["latent"], r["seed"]))}
        plot_quality_curves(runs, out / "quality_curves.png")
        for (latent, dim) in sorted({(r["latent"], r["dim"]) for r in results}):
            seed = min(r["seed"] for r in results if r["latent"] == latent and r["dim"] == dim)
            molecule_grid(out / run_dir_name(latent, dim, seed), out / f"molecules-{latent}-d{dim}.png",
                          title=f"{latent} d={dim} seed {seed}")
    return table


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install 'qboson[plot]' (or pass --no-plots)") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_fcd(out: Path, results: list[dict[str, Any]], order: Sequence[str]) -> Path:
    """FCD per latent: mean ± s.e. (error bars) and the single runs (dots); one series per dim."""
    plt = _pyplot()
    rank = {name: i for i, name in enumerate(order)}
    latents = sorted({r["latent"] for r in results}, key=lambda x: (rank.get(x, 99), x))
    dims = sorted({r["dim"] for r in results})
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(latents), 3.6))
    for j, dim in enumerate(dims):
        shift = (j - (len(dims) - 1) / 2) * 0.15
        for i, latent in enumerate(latents):
            vals = [r["fcd"] for r in results if r["latent"] == latent and r["dim"] == dim
                    and r.get("fcd") is not None and not math.isnan(r["fcd"])]
            if not vals:
                continue
            mean, se, _ = _mean_se(vals)
            ax.errorbar(i + shift, mean, yerr=0 if math.isnan(se) else se, fmt="o", capsize=4, color=f"C{j}",
                        label=f"d_z={dim}" if i == 0 else None)
            ax.plot([i + shift + 0.06] * len(vals), vals, ".", color=f"C{j}", alpha=0.4)
    ax.set_xticks(range(len(latents)), latents)
    ax.set_ylabel("FCD (lower is better)")
    ax.set_title("MolGAN on QM9: FCD per latent (mean ± s.e.)")
    if len(dims) > 1:
        ax.legend()
    fig.tight_layout()
    path = out / "fcd.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _read_curve(run_dir: Path) -> dict[str, list[float]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in ("iteration", "wasserstein", "generator_loss")}


def plot_training_curves(out: Path, results: list[dict[str, Any]], order: Sequence[str]) -> Path:
    """Critic Wasserstein estimate and generator loss vs iteration: mean over seeds per latent (and dim)."""
    import numpy as np

    plt = _pyplot()
    rank = {name: i for i, name in enumerate(order)}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    keys = sorted({(r["latent"], r["dim"]) for r in results}, key=lambda k: (k[1], rank.get(k[0], 99), k[0]))
    for c, (latent, dim) in enumerate(keys):
        curves = []
        for r in results:
            if r["latent"] == latent and r["dim"] == dim and (out / run_dir_name(latent, dim, r["seed"]) / "metrics.csv").exists():
                curves.append(_read_curve(out / run_dir_name(latent, dim, r["seed"])))
        if not curves:
            continue
        n = min(len(cv["iteration"]) for cv in curves)
        x = curves[0]["iteration"][:n]
        for ax, key in zip(axes, ("wasserstein", "generator_loss")):
            with warnings.catch_warnings():  # windows without a generator update are NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                y = np.nanmean(np.array([cv[key][:n] for cv in curves]), axis=0)
            ax.plot(x, y, color=f"C{c}", label=f"{latent} d={dim}" if len(keys) > len(order) else latent)
    axes[0].set_title("critic: Wasserstein estimate E[D(real)] - E[D(fake)]")
    axes[1].set_title("generator loss -E[D(fake)]")
    for ax in axes:
        ax.set_xlabel("iteration")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = out / "training_curves.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def read_quality_curve(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of a run's ``curve.csv`` with numbers parsed (empty if the run has none)."""
    path = Path(run_dir) / "curve.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        out.append({k: (v if k == "decode" else float(v) if v not in ("", "None") else math.nan)
                    for k, v in r.items()})
    return out


def plot_quality_curves(runs: dict[str, Path], path: Path, title: str = "") -> Optional[Path]:
    """FCD (all valid and unique valid) and valid & unique vs training iteration, one line per run and decoding.

    ``runs`` maps a label to a run folder; runs without ``curve.csv`` are skipped; returns None if none has one.
    """
    curves = {label: read_quality_curve(d) for label, d in runs.items()}
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    styles = {"argmax": "-", "sample": "--"}
    for c, (label, rows) in enumerate(curves.items()):
        for decode in sorted({r["decode"] for r in rows}):
            sel = [r for r in rows if r["decode"] == decode]
            x = [r["iteration"] for r in sel]
            kw = dict(color=f"C{c % 10}", linestyle=styles.get(decode, ":"), marker="o", markersize=3,
                      label=f"{label} ({decode})")
            axes[0].plot(x, [r["fcd"] for r in sel], **kw)
            axes[1].plot(x, [r["fcd_unique"] for r in sel], **kw)
            axes[2].plot(x, [r["valid_unique"] / r["n"] for r in sel], **kw)
    n = int(next(iter(curves.values()))[0]["n"])
    axes[0].set_title(f"FCD, all valid ({n} generated)")
    axes[1].set_title("FCD, unique valid")
    axes[2].set_title("valid & unique / generated")
    for ax in axes:
        ax.set_xlabel("iteration")
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[2].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def molecule_grid(run_dir: Path, path: Path, title: str = "", n: int = 16) -> Optional[Path]:
    """A PNG grid of up to ``n`` distinct strictly valid molecules from ``run_dir/samples.smi`` (RDKit)."""
    from ..chem import validity
    from ..molgan.evaluate import SAMPLES_FILE

    samples = run_dir / SAMPLES_FILE
    if not samples.exists():
        return None
    chosen: list[str] = []
    for line in samples.read_text().splitlines():
        strict, _, canonical = validity(line.strip() or None)
        if strict and canonical not in chosen:
            chosen.append(canonical)
            if len(chosen) == n:
                break
    from rdkit import Chem
    from rdkit.Chem import Draw

    if not chosen:  # still write an image, saying so
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{title}: no valid molecules", ha="center", va="center")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path
    image = Draw.MolsToGridImage([Chem.MolFromSmiles(s) for s in chosen], molsPerRow=4, subImgSize=(200, 160),
                                 legends=chosen)
    tmp = path.with_name(f".{path.name}.tmp.png")
    image.save(tmp)
    tmp.replace(path)
    return path


def run(args: argparse.Namespace) -> int:
    """Entry point of ``qboson experiment qm9``."""
    try:
        grid = _grid_configs(args)
        if args.summary_only:
            check_output_dir(args.out, OUT_KIND, manifest=_looks_like_grid)
            results = [json.loads((d / "eval.json").read_text()) for _, d in grid if (d / "eval.json").exists()]
        else:
            results = run_grid(args)
    except (ValueError, FileExistsError, ImportError) as exc:
        print(f"qboson experiment qm9: {exc}", file=sys.stderr)
        return 2
    except (TasksFailed, ConnectionError) as exc:
        print(f"qboson experiment qm9: {exc}", file=sys.stderr)
        return 1
    if not results:
        print("qboson experiment qm9: no finished runs to summarise", file=sys.stderr)
        return 1
    order = _latent_names(args)
    table = write_outputs(Path(args.out), results, order, args.profile, plots=not args.no_plots)
    print(table)
    return 0
