"""``qboson experiment <name>``: each experiment module provides ``add_arguments(parser)`` and ``run(args)``."""

from __future__ import annotations

import importlib

EXPERIMENTS = {
    "qm9": ("qboson.experiments.qm9", "MolGAN on QM9 with each latent (paper Table II)"),
    "synthetic": ("qboson.experiments.synthetic", "synthetic quantum dataset (paper Table I)"),
    "mog": ("qboson.experiments.mog", "2-D mixture of Gaussians (paper Fig. 1)"),
}


def register(subparsers) -> None:
    parser = subparsers.add_parser("experiment", help="run a paper experiment grid")
    sub = parser.add_subparsers(dest="experiment", metavar="name", required=True)
    for name, (module, help_line) in EXPERIMENTS.items():
        p = sub.add_parser(name, help=help_line)
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            p.set_defaults(func=lambda args, exc=exc: _missing(exc))
            continue
        mod.add_arguments(p)
        p.set_defaults(func=mod.run)


def _missing(exc) -> int:
    import sys

    print(f"qboson experiment: needs an optional dependency: {exc}", file=sys.stderr)
    return 2
