"""The ``qboson`` command line: ``qboson <command> --help`` for each command.

Each command lives in the module that owns its feature; this file only maps
names to ``module:register`` functions, imported lazily so that ``qboson demo``
does not import torch or RDKit.  A ``register(subparsers)`` function adds its
sub-parser and sets ``func`` (called with the parsed arguments, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

#: command name -> (module, help line)
COMMANDS = {
    "demo": ("qboson.demo", "short end-to-end demo: quantum vs photonic latents"),
    "sample": ("qboson.latent.cli", "generate a sample bank"),
    "inspect": ("qboson.latent.cli", "statistics and plots of a sample bank"),
    "train": ("qboson.molgan.cli", "train MolGAN on QM9 with a latent"),
    "evaluate": ("qboson.molgan.cli", "evaluate a trained MolGAN run"),
    "experiment": ("qboson.experiments.cli", "run a paper experiment grid (qm9, synthetic, mog)"),
}


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qboson", description="Fast exact boson sampling and quantum latents.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"qboson {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command")
    registered = set()
    for name, (module, help_line) in COMMANDS.items():
        if module in registered or name in sub.choices:
            continue
        if command is not None and name != command:
            # Only the requested command's module is imported; the others get a placeholder.
            if not any(other == command and mod == module for other, (mod, _) in COMMANDS.items()):
                sub.add_parser(name, help=help_line)
                continue
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:  # an optional extra is missing: say which
            p = sub.add_parser(name, help=help_line)
            p.set_defaults(func=lambda args, exc=exc: _missing(exc))
            continue
        mod.register(sub)
        registered.add(module)
    return parser


def _missing(exc: ImportError) -> int:
    print(f"qboson: this command needs an optional dependency: {exc}", file=sys.stderr)
    return 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
