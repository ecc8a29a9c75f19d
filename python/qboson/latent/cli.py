"""``qboson sample`` (generate a sample bank) and ``qboson inspect`` (its statistics and plots)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["register", "run_sample", "run_inspect"]


def register(subparsers) -> None:
    """Add the ``sample`` and ``inspect`` sub-commands (skipping names already registered)."""
    existing = dict(getattr(subparsers, "choices", {}) or {})
    add_inspect = "inspect" not in existing
    if "sample" not in existing:
        p = subparsers.add_parser(
            "sample",
            help="generate a sample bank",
            description="Draw a latent's samples into a bank directory (resumable: rerun the same command "
            "after an interruption; a larger --shots grows an existing bank).",
        )
        _add_sample_arguments(p)
        p.set_defaults(func=run_sample)
    if add_inspect:
        p = subparsers.add_parser(
            "inspect",
            help="statistics and plots of a sample bank",
            description="Check banks (sha256), print their statistics beside the exact moments, and plot "
            "occupation histograms, correlations and bunching (several banks side by side).",
        )
        p.add_argument("banks", nargs="+", help="bank directories (e.g. a quantum and a photonic bank)")
        p.add_argument("--plot", metavar="FILE", help="write the figure here (PNG; needs matplotlib)")
        p.add_argument("--rows", type=int, default=200_000, help="rows used for statistics (default 200000)")
        p.add_argument("--no-verify", action="store_true", help="skip the sha256 check")
        p.add_argument("--json", action="store_true", help="print the statistics as JSON")
        p.add_argument(
            "--ideal", action="store_true",
            help="beside each noisy or recorded bank, draw its ideal (noiseless) latent and compare them: per-mode "
            "mean, photon-number histogram and bunching (printed, and plotted with --plot)",
        )
        p.add_argument("--ideal-rows", type=int, default=20_000, help="rows drawn from each ideal latent (default 20000)")
        p.set_defaults(func=run_inspect)


def _add_sample_arguments(p: argparse.ArgumentParser) -> None:
    from . import KINDS

    p.add_argument("--kind", default="quantum", choices=list(KINDS), help="latent kind (default quantum)")
    p.add_argument("--m", "--dim", dest="m", type=int, help="modes / latent dimension (default 16, or the unitary's)")
    p.add_argument("--n", type=int, help="photons (default m/2)")
    p.add_argument("--input-modes", help="occupied input modes, comma separated (default 0..n-1)")
    p.add_argument("--unitary", metavar="FILE.npy", help="interferometer as an (m, m) complex .npy (default Haar from --seed)")
    p.add_argument(
        "--delays", metavar="D1,D2,...",
        help="time-bin loop circuit with these delays, angles drawn from --seed (e.g. 1,1 for the paper's '1-1'; "
        "1,3,9 for '1-3-9'); default: Haar",
    )
    p.add_argument(
        "--noise", metavar="FILE.json",
        help="a noise model as JSON (keys of qboson.noise.NoiseModel, e.g. {\"transmission\": 0.5, "
        "\"postselect\": \">=8\"}); for --kind pt_series, the keys transmission, hom_visibility, detection, "
        "dark_count_probability, angle_noise and min_detected override the recipe's defaults",
    )
    p.add_argument("--backend", metavar="NAME", help="sample through this backend (local, perceval, recorded, ...)")
    p.add_argument(
        "--backend-option", metavar="KEY=VALUE", action="append", default=[],
        help="option of --backend (repeatable; VALUE parsed as JSON when it can be, e.g. path=run.npz, min_detected=16)",
    )
    p.add_argument("--shots", type=int, required=True, help="rows in the bank")
    p.add_argument("--seed", type=int, help="root seed (default: the bank's, when resuming; else fresh, printed)")
    p.add_argument("--out", required=True, help="bank directory")
    p.add_argument("--chunk-size", type=int, help="rows per chunk file (default: about 10 s of work)")
    p.add_argument("--threads", type=int, help="sampler threads (local: default all cores; Dask: per task, default 1)")
    p.add_argument("--method", default="cc2020", choices=["cc2020", "cc2017"], help="permanent scheme")
    p.add_argument("--match", choices=["quantum", "photonic"], help="matched controls: which latent to match")
    p.add_argument("--p", type=float, help="bernoulli probability (default 0.5)")
    p.add_argument("--scale", action="store_true", help="record unit-variance scaling with the bank")
    p.add_argument("--no-centre", action="store_true", help="record no centring with the bank")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("distributed (needs qboson[dist])")
    g.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786")
    g.add_argument("--dask-workers", type=int, metavar="N", help="start a local Dask cluster of N worker processes")


_PT_NOISE_KEYS = ("transmission", "hom_visibility", "detection", "dark_count_probability", "angle_noise", "min_detected")


def _backend_options(items) -> dict:
    options = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--backend-option must look like KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


def _delays(text: str) -> tuple:
    try:
        delays = tuple(int(d) for d in text.replace("-", ",").split(",") if d.strip())
    except ValueError:
        raise ValueError(f"--delays must be comma-separated integers, e.g. 1,1; got {text!r}") from None
    if not delays:
        raise ValueError("--delays names no loop")
    return delays


def _latent_from_args(args):
    from . import make
    from .base import as_seed_int

    kwargs = {}
    if getattr(args, "noise", None):
        from ..noise import NoiseModel

        try:
            noise_data = json.loads(Path(args.noise).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"cannot read --noise {args.noise}: {exc}") from None
        if not isinstance(noise_data, dict):
            raise ValueError(f"--noise {args.noise} must hold a JSON object")
        if args.kind == "pt_series":
            extra = sorted(set(noise_data) - set(_PT_NOISE_KEYS))
            if extra:
                raise ValueError(f"--noise for pt_series takes only {', '.join(_PT_NOISE_KEYS)}; got {extra}")
            kwargs.update(noise_data)
        elif args.kind in ("quantum", "photonic"):
            try:
                kwargs["noise"] = NoiseModel.from_dict(noise_data)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"--noise {args.noise}: {exc}") from None
        else:
            raise ValueError(f"--noise applies to photon latents, not {args.kind}")
    if getattr(args, "backend", None):
        from .. import backends

        options = _backend_options(args.backend_option)
        if "noise" in kwargs:
            options["noise"] = kwargs.pop("noise")
        kwargs["backend"] = backends.get(args.backend, **options)
    elif getattr(args, "backend_option", None):
        raise ValueError("--backend-option needs --backend")
    if args.unitary:
        try:
            kwargs["unitary"] = np.load(args.unitary, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"qboson sample: cannot read --unitary {args.unitary}: {exc}")
    if args.input_modes:
        try:
            kwargs["input_modes"] = [int(x) for x in args.input_modes.split(",") if x.strip()]
        except ValueError:
            raise SystemExit(f"qboson sample: --input-modes must be comma-separated integers, got {args.input_modes!r}")
    if args.n is not None:
        kwargs["n_photons"] = args.n
    if args.match:
        kwargs["match"] = args.match
    if args.p is not None:
        kwargs["p"] = args.p
    if args.kind in ("quantum", "photonic", "pt_series"):
        kwargs["method"] = args.method
        if args.threads is not None and not (args.scheduler or args.dask_workers):
            kwargs["threads"] = args.threads
    seed = args.seed
    meta_path = Path(args.out) / "bank.json"
    if seed is None and meta_path.exists():
        try:
            seed = int(json.loads(meta_path.read_text(encoding="utf-8"))["seed"])
            print(f"resuming {args.out} with its seed {seed}", file=sys.stderr)
        except (OSError, ValueError, KeyError, TypeError, OverflowError, RecursionError):
            seed = None  # not a readable bank: generation reports the problem
    delays = _delays(args.delays) if getattr(args, "delays", None) else None
    if delays is not None:
        if args.kind == "pt_series":
            kwargs["delays"] = delays
        elif args.kind in ("quantum", "photonic", "gaussian_matched", "counts_matched"):
            if "unitary" in kwargs:
                raise ValueError("give --unitary or --delays, not both")
            from .._seeding import split_seed
            from ..circuits import time_bin_interferometer

            seed = as_seed_int(seed)  # the angles come from the seed: fix it now
            m = args.m if args.m is not None else 16
            kwargs["unitary"] = time_bin_interferometer(m, delays, seed=split_seed(seed)[0])
        else:
            raise ValueError(f"--delays applies to circuit latents, not {args.kind}")
    dim = args.m if args.m is not None else (None if "unitary" in kwargs else (32 if args.kind == "pt_series" else 16))
    if dim is None:
        from .base import DEFAULT_DIM

        dim = DEFAULT_DIM
    return make(args.kind, dim, seed=seed, centre=not args.no_centre, scale=args.scale, **kwargs)


def run_sample(args) -> int:
    from .bank import BankError, generate_bank

    if args.shots is None or args.shots < 1:
        print(f"qboson sample: --shots must be >= 1, got {args.shots}", file=sys.stderr)
        return 2
    if args.scheduler and args.dask_workers:
        print("qboson sample: give --scheduler or --dask-workers, not both", file=sys.stderr)
        return 2
    try:
        latent = _latent_from_args(args)
    except (ValueError, TypeError, ImportError) as exc:
        print(f"qboson sample: {exc}", file=sys.stderr)
        return 2
    print(latent.describe(), file=sys.stderr)
    _print_acceptance(latent)
    t0 = time.perf_counter()
    try:
        if args.scheduler or args.dask_workers:
            from ..distributed import generate_bank as dask_generate

            bank = dask_generate(
                latent, args.shots, args.out, client=args.scheduler, n_workers=args.dask_workers,
                chunk_size=args.chunk_size, threads=args.threads, progress=not args.quiet, normalisation="error",
            )
        else:
            bank = generate_bank(
                latent, args.shots, args.out, chunk_size=args.chunk_size, threads=args.threads,
                progress=not args.quiet, normalisation="error",
            )
    except BankError as exc:
        print(f"qboson sample: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"qboson sample: {exc}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    rep = bank.generation or {}
    print(bank.describe())
    if rep:
        print(
            f"{rep['chunks_computed']} chunk(s) computed, {rep['chunks_reused']} reused, "
            f"{rep['target_shots'] - rep['existing_shots']} new shots in {dt:.1f} s",
            file=sys.stderr,
        )
    return 0


def ideal_counterpart(spec: dict):
    """The noiseless latent a noisy or recorded bank imitates, or None when the bank is already ideal.

    ``pt_series``: the same time-bin circuit with ``dim // 2`` photons in every other bin and no noise
    (the paper's "16 photons in 32 modes").  ``quantum``/``photonic`` with a noise model or a backend: the
    same circuit and inputs through the exact sampler.
    """
    from . import from_spec, make

    name = spec.get("name")
    if name == "pt_series":
        lat = from_spec(spec)
        return make("quantum", unitary=lat.circuit, input_modes=range(0, lat.dim, 2), seed=lat.seed)
    if name in ("quantum", "photonic") and (spec.get("noise") is not None or spec.get("backend") is not None):
        clean = {k: v for k, v in spec.items() if k not in ("noise", "backend", "mean_source", "calibration_shots")}
        return from_spec(clean)
    return None


def run_inspect(args) -> int:
    from . import from_spec
    from .bank import Bank, BankError
    from .stats import plot_comparison, plot_stats, summary

    datasets = []
    report = {}
    comparisons = []
    for path in args.banks:
        try:
            bank = Bank(path, verify=not args.no_verify)
        except BankError as exc:
            print(f"qboson inspect: {exc}", file=sys.stderr)
            return 1
        rows = np.asarray(bank.raw[: max(2, args.rows)])
        cov = None
        try:
            cov = from_spec(bank.spec).covariance
        except (ValueError, TypeError):
            pass  # e.g. a custom backend: no exact moments to compare with
        stats = summary(rows, mean=bank.mean, covariance=cov)
        report[str(path)] = {"bank": bank.describe(), **stats}
        label = f"{bank.name} ({Path(path).name})"
        datasets.append((label, rows))
        if getattr(args, "ideal", False):
            try:
                ideal = ideal_counterpart(bank.spec)
            except (ValueError, TypeError) as exc:
                print(f"qboson inspect: no ideal latent for {path}: {exc}", file=sys.stderr)
                ideal = None
            if ideal is not None:
                ideal_rows = ideal.raw(max(2, args.ideal_rows))
                ideal_stats = summary(ideal_rows, mean=ideal.mean, covariance=ideal.covariance)
                report[str(path)]["ideal"] = {"latent": ideal.describe(), **ideal_stats}
                comparisons += [(label, rows), (f"ideal {ideal.name}, {ideal.n_photons} photons", ideal_rows)]
                side_by_side = (label, rows, stats, ideal, ideal_rows, ideal_stats)
            else:
                side_by_side = None
        if not args.json:
            print(bank.describe())
            print(
                f"  rows used {stats['shots']}, photons/shot {stats['photons_per_shot']:.3f}, "
                f"Fano factor {stats['fano_total']:.4f}"
                + (f" (exact {stats['fano_total_exact']:.4f})" if stats.get("fano_total_exact") is not None else "")
            )
            if "max_abs_mean_error" in stats:
                print(
                    f"  mean vs exact: max |error| {stats['max_abs_mean_error']:.4f} "
                    f"(largest standard error {stats['mean_standard_error']:.4f})"
                )
            if "max_abs_cov_error" in stats:
                print(f"  covariance vs exact: max |error| {stats['max_abs_cov_error']:.4f}")
            print(
                f"  bunching: collision-free {stats['collision_free']:.4f}, P(max>=2) {stats['p_max_ge_2']:.4f}, "
                f"P(max>=3) {stats['p_max_ge_3']:.4f}, mean |corr| {stats['mean_abs_correlation']:.4f}"
            )
            if getattr(args, "ideal", False) and side_by_side is not None:
                _print_side_by_side(*side_by_side)
    if args.json:
        print(json.dumps(report, indent=1))
    if args.plot:
        try:
            if comparisons:
                out = plot_comparison(comparisons, args.plot, title="noisy or recorded latent vs its ideal latent")
            else:
                out = plot_stats(datasets, args.plot)
        except ImportError as exc:
            print(f"qboson inspect: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {out}", file=sys.stderr)
    return 0


def _print_side_by_side(label, rows, stats, ideal, ideal_rows, ideal_stats) -> None:
    noisy_mean = np.asarray(rows, dtype=np.float64).mean(axis=0)
    ideal_mean = np.asarray(ideal_rows, dtype=np.float64).mean(axis=0)
    print(f"  ideal latent: {ideal.describe()}")
    print(f"  {'statistic':<28}{'this bank':>14}{'ideal':>14}")
    lines = [
        ("photons per shot", stats["photons_per_shot"], ideal_stats["photons_per_shot"]),
        ("mean per mode (min)", noisy_mean.min(), ideal_mean.min()),
        ("mean per mode (max)", noisy_mean.max(), ideal_mean.max()),
        ("Fano factor", stats["fano_total"], ideal_stats["fano_total"]),
        ("collision-free shots", stats["collision_free"], ideal_stats["collision_free"]),
        ("P(max count >= 2)", stats["p_max_ge_2"], ideal_stats["p_max_ge_2"]),
        ("P(max count >= 3)", stats["p_max_ge_3"], ideal_stats["p_max_ge_3"]),
        ("mean |correlation|", stats["mean_abs_correlation"], ideal_stats["mean_abs_correlation"]),
    ]
    for name, a, b in lines:
        print(f"  {name:<28}{a:>14.4f}{b:>14.4f}")


def _print_acceptance(latent) -> None:
    """Say what fraction of raw shots a post-selecting noise model keeps (exact where computable)."""
    noise = getattr(latent, "noise", None)
    if noise is None or not getattr(noise, "postselects", False):
        return
    circuit = getattr(latent, "circuit", None) or latent.unitary
    try:
        rate = noise.acceptance_probability(circuit, latent.input_modes)
    except ValueError as exc:
        print(f"post-selection on {noise.postselection_rule}: no exact acceptance ({exc})", file=sys.stderr)
        return
    print(f"post-selection on {noise.postselection_rule}: exact acceptance {rate:.4g} "
          f"(about {1 / rate if rate > 0 else float('inf'):.3g} raw shots per kept row)", file=sys.stderr)
