"""The ``gpusim`` command line: one module per subcommand, each with ``add_parser`` and ``run``.

User errors (:class:`GpusimError`) print on one line and exit 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import re
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


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--sensitivity -30dBm`` as ``--sensitivity=-30dBm``: argparse takes a value that starts with '-' and is not
    a bare number (``-30dBm``, ``-1e3``) for an option and refuses the call; no option of gpusim starts with '-' and
    a digit, so such a value is always the option's."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and re.match(r"-\.?\d", token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
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
