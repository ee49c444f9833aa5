"""The ``gpusim`` command line: one module per subcommand, each with ``add_parser`` and ``run``.

User errors (:class:`GpusimError`) print on one line and exit 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from gpusim import __version__
from gpusim.errors import GpusimError

# subcommand name -> module under gpusim.cli; a module that is absent is simply not offered
SUBCOMMANDS = ["run", "compare", "sweep", "collective", "replay", "fso", "calibrate", "validate", "presets"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpusim", description="Simulate GPU-cluster communication.")
    parser.add_argument("--version", action="version", version=f"gpusim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"gpusim.cli.{name}_cmd")
        except ModuleNotFoundError as exc:
            if exc.name == f"gpusim.cli.{name}_cmd":
                continue
            raise
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except GpusimError as exc:
        print(f"gpusim {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
