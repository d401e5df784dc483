"""The ``multiequi`` command line: a registry of subcommands and nothing else.

Each subcommand is a module here (:mod:`.demo`, :mod:`.scan`, :mod:`.multi_image`, :mod:`.bench`)
defining ``DESCRIPTION``, ``add_arguments(parser)`` and ``run(args) -> int``: a thin layer that
parses options and calls lab functions the tests call directly. A module is imported to build the
parser, so heavy imports (transformers, matplotlib, data) stay inside ``run``. A new subcommand
is a module here and one line in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "build_parser", "main"]

#: Subcommands: (name, module, one-line help).
COMMANDS: list[tuple[str, str, str]] = [
    (
        "demo",
        "multiequi.cli.demo",
        "classify real photos under all 8 rotations/flips with a real pretrained model, plain and wrapped",
    ),
    (
        "multi-image",
        "multiequi.cli.multi_image",
        "classify K-tuples of independently rotated images: Siamese CNN vs Multi-GCNN (Σ|G_i| copies), IS fusion, DSS",
    ),
    (
        "scan",
        "multiequi.cli.scan",
        "SCAN / SCAN-II compositional generalisation: generate data, pretrain, fine-tune through equitune (8 copies) "
        "and multi-equitune (6), report",
    ),
    (
        "bench",
        "multiequi.cli.bench",
        "cost benchmarks: copies, time, memory and error of Σ|G_i| vs Π|G_i| vs ttach; SCAN throughput; GPU check; "
        "profiler",
    ),
]


def build_parser() -> argparse.ArgumentParser:
    """The ``multiequi`` parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="multiequi",
        description="Make pretrained models equivariant to several groups at once (cost Σ|G_i|, not Π|G_i|).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=help_text, description=mod.DESCRIPTION)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``multiequi`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args._run(args))
    except ImportError as err:
        print(f"multiequi {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
