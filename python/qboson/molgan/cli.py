"""``qboson train`` and ``qboson evaluate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = ["register"]


def add_training_flags(p: argparse.ArgumentParser) -> None:
    """The TrainConfig settings that the paper leaves open, as flags (shared with ``experiment qm9``)."""
    from .config import DECODES, INITS, ITERATION_UNITS, PRECISIONS
    from .model import OUTPUT_MODES

    p.add_argument("--iteration-unit", choices=ITERATION_UNITS,
                   help="what an iteration counts: critic updates or generator updates (5 critic each) "
                        "(profile paper: generator, 100,000 critic updates; quick: critic)")
    p.add_argument("--batch-size", type=int, help="graphs per batch (profile paper: 256; quick: 128)")
    p.add_argument("--lr", type=float, help="learning rate of both networks (profile paper: 1e-4; quick: 2e-4)")
    p.add_argument("--betas", type=_betas, metavar="B1,B2", help="Adam betas (both profiles: 0,0.9)")
    p.add_argument("--critic-input", dest="output_mode", choices=OUTPUT_MODES,
                   help="what the critic sees of a generated graph: softmax, gumbel, gumbel_hard "
                        "(both profiles: gumbel)")
    p.add_argument("--init", choices=INITS, help="weight initialisation: default (PyTorch's) or xavier (both profiles: xavier)")
    p.add_argument("--decode", dest="train_decode", choices=DECODES,
                   help="decoding at evaluation: argmax or sample (seeded categorical draws; both profiles)")
    p.add_argument("--curve-points", type=int, help="evaluations during training (default 10; 0 = none)")
    p.add_argument("--curve-samples", type=int, help="molecules per curve evaluation (default 2000)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="network products in fp32 (default) or bf16 (torch.autocast; faster on GPUs and CPUs with AMX or AVX512-BF16, several times slower on other CPUs)")


def training_overrides(args: argparse.Namespace) -> dict:
    """TrainConfig fields set by :func:`add_training_flags` (None = keep the profile's)."""
    out = dict(iteration_unit=args.iteration_unit, batch_size=args.batch_size, betas=args.betas,
               output_mode=args.output_mode, init=args.init, decode=args.train_decode,
               curve_points=args.curve_points, curve_samples=args.curve_samples,
               precision=getattr(args, "precision", None))
    if args.lr is not None:
        out.update(lr_generator=args.lr, lr_critic=args.lr)
    return out


def _resumed_config(saved: TrainConfig, given: dict, args: argparse.Namespace) -> TrainConfig:
    """The config a resumed run continues with: its own, with ``--iterations`` (to extend it) and
    the execution settings given (``--threads``, ``--checkpoint-every``) applied.  Any other
    setting given (flag or ``--config`` file) must agree with the run's: ``ValueError`` naming
    each one that does not, rather than silently ignoring it."""
    from .config import EXECUTION_FIELDS

    given = {k: v for k, v in given.items() if k != "iterations" and k not in EXECUTION_FIELDS}
    if args.profile is not None:
        given["profile"] = args.profile
    have, wanted = saved.to_dict(), saved.replace(**given).to_dict()
    clash = [f"{k} {wanted[k]!r} (the run has {have[k]!r})" for k in wanted if wanted[k] != have[k]]
    if clash:
        raise ValueError(f"cannot resume {args.out} with other settings: {'; '.join(clash)}; "
                         "only --iterations, --threads and --checkpoint-every may change")
    execution = {k: getattr(args, k) for k in EXECUTION_FIELDS if getattr(args, k, None) is not None}
    return saved.replace(iterations=args.iterations or saved.iterations, **execution)


def _betas(text: str) -> tuple[float, float]:
    try:
        b1, b2 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers B1,B2, got {text!r}") from None
    return b1, b2


def register(subparsers) -> None:
    """Add the ``train`` and ``evaluate`` sub-commands."""
    from .config import DECODES, FCD_REFERENCES, PROFILES

    p = subparsers.add_parser("train", help="train MolGAN on QM9 with a latent",
                              description="Train MolGAN (WGAN-GP, R-GCN critic) on QM9 with a latent distribution.")
    p.add_argument("--latent", required=True, help="latent name: quantum, photonic, gaussian, bernoulli, ...")
    p.add_argument("--dim", type=int, help="latent dimension (default: the --config file's, else 16)")
    p.add_argument("--seed", type=int,
                   help="run seed: circuit, weights, data order (default: the --config file's, else 0)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--profile", choices=sorted(PROFILES),
                   help="settings profile (default: the --config file's, else paper)")
    p.add_argument("--iterations", type=int, help="override the profile's iteration count")
    add_training_flags(p)
    p.add_argument("--threads", type=int, help="torch threads (default 1)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    p.add_argument("--checkpoint-every", type=int, help="iterations between checkpoints")
    p.add_argument("--latent-bank", metavar="DIR",
                   help="train from a pre-generated bank (`qboson sample ... --out DIR`) of the same latent and dim")
    p.add_argument("--config", help="JSON file with TrainConfig fields (overrides the profile)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    e = subparsers.add_parser("evaluate", help="evaluate a trained MolGAN run",
                              description="Generate molecules from a run and report validity, uniqueness, "
                                          "novelty and FCD against the QM9 test split.")
    e.add_argument("run", help="run directory (holds checkpoint.pt)")
    e.add_argument("-n", "--samples", type=int, help="molecules to generate (default: the run's eval_samples, 10000)")
    e.add_argument("--decode", choices=DECODES, help="argmax or sample (default: the run's config.decode)")
    e.add_argument("--draw", type=int, default=0, metavar="K",
                   help="independent draw of latents and decoding randomness (default 0, the run's standard "
                        "evaluation, written to eval.json; K > 0 writes eval-drawK.json)")
    e.add_argument("--no-fcd", action="store_true", help="skip FCD")
    e.add_argument("--fcd-reference", choices=FCD_REFERENCES, default="test",
                   help="compare with the QM9 test split (default) or with as many training molecules as are "
                        "scored, a seeded draw (train-sample; written to eval-train-sample.json)")
    e.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    e.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.set_defaults(func=_evaluate)


def _train(args: argparse.Namespace) -> int:
    from .config import TrainConfig, profile_config
    from .evaluate import curve_evaluator
    from .runfiles import CHECKPOINT, load_checkpoint
    from .trainer import train

    overrides = {}
    try:
        if args.config:
            overrides.update(_read_config_file(args.config))
        # a run's own config.json names its profile: it applies unless --profile says otherwise
        file_profile = overrides.pop("profile", None)
        profile = args.profile or file_profile or "paper"
        flags = dict(latent=args.latent, dim=args.dim, seed=args.seed, iterations=args.iterations,
                     threads=args.threads, checkpoint_every=args.checkpoint_every, **training_overrides(args))
        # a flag not given must not undo the --config file's value
        overrides.update({k: v for k, v in flags.items() if v is not None})
        if args.latent_bank:
            overrides.update(latent_bank_path=str(Path(args.latent_bank).resolve()))
        config = profile_config(profile, **overrides)
        if args.resume and (Path(args.out) / CHECKPOINT).exists():
            saved = TrainConfig.from_dict(load_checkpoint(args.out)["config"])
            config = _resumed_config(saved, overrides, args)
        evaluator = curve_evaluator(config, threads=config.threads) if config.curve_points else None
        summary = train(config, args.out, resume=args.resume, progress=not args.no_progress,
                        evaluator=evaluator, device=args.device)
    except (ValueError, TypeError, FileExistsError, FileNotFoundError) as exc:
        print(f"qboson train: {exc}", file=sys.stderr)
        return 2
    if not summary["finished"]:
        print(f"stopped at iteration {summary['iteration']}; continue with --resume", file=sys.stderr)
        return 130
    print(f"done: {summary['iteration']} iterations in {summary['train_seconds']:.0f} s "
          f"({summary['iterations_per_second']:.2f} it/s); run `qboson evaluate {args.out}`")
    return 0


def _read_config_file(path: str) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a JSON object of TrainConfig fields")
    return data


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_run

    try:
        result = evaluate_run(args.run, n_samples=args.samples, decode=args.decode, fcd=not args.no_fcd,
                              threads=args.threads, device=args.device, draw=args.draw,
                              fcd_reference=args.fcd_reference)
    except (ValueError, FileNotFoundError) as exc:
        print(f"qboson evaluate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    n = result["n"]
    print(f"{result['latent']} d={result['dim']} seed={result['seed']} iteration {result['iteration']}: "
          f"{n} molecules generated")
    print(f"  valid (strict)   {result['valid']:6d}  ({result['valid'] / n:.1%})")
    print(f"  valid (loose)    {result['valid_loose']:6d}  ({result['valid_loose'] / n:.1%})")
    print(f"  valid & unique   {result['valid_unique']:6d}")
    print(f"  novel            {result['novel']:6d}")
    fcd = result["fcd"]
    against = ("the QM9 test split" if result["fcd_reference"] == "qm9-test"
               else "as many QM9 training molecules, each")
    print(f"  FCD              {'skipped' if fcd is None else f'{fcd:.3f}'}  (of {result['n_fcd']} valid molecules "
          f"vs {against})")
    if fcd is not None:
        print(f"  FCD (unique)     {result['fcd_unique']:.3f}  (of the {result['n_fcd_unique']} unique valid ones)")
    print(f"  decoding         {result['decode']}" + (f" (draw {result['draw']})" if result["draw"] else ""))
    print(f"  time             {result['seconds']:.1f} s")
    return 0
