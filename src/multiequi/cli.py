"""The `multiequi` command line: a thin layer over functions that tests call directly."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ._argtypes import int_arg

__all__ = ["build_parser", "main"]


_chunk = int_arg(1, {"auto": "auto", "none": None})

#: Subcommands: (name, module, one-line help). Each module defines ``DESCRIPTION``,
#: ``add_arguments(parser)`` and ``run(args) -> int``; it is imported only to build the parser,
#: and must keep heavy imports (transformers, matplotlib, data) inside ``run``.
COMMANDS: list[tuple[str, str, str]] = [
    (
        "demo",
        "multiequi.cli",
        "classify real photos under all 8 rotations/flips with a real pretrained model, plain and wrapped",
    ),
    (
        "multi-image",
        "multiequi.experiments.multi_image.cli",
        "classify K-tuples of independently rotated images: Siamese CNN vs Multi-GCNN (Σ|G_i| copies), IS fusion, DSS",
    ),
    (
        "scan",
        "multiequi.experiments.scan.cli",
        "SCAN / SCAN-II compositional generalisation: generate data, pretrain, fine-tune through equitune (8 copies) "
        "and multi-equitune (6), report",
    ),
    ("bench", "multiequi.bench.cli", "cost benchmarks: copies, time, memory and error of Σ|G_i| vs Π|G_i| vs ttach"),
]

DESCRIPTION = (
    "Wrap the real pretrained ImageNet classifier EfficientNet-Lite0 with Equitune over Rot90 x Flip "
    "(8 copies per image) and MultiEquitune over [Rot90, Flip] (4 + 2 = 6 copies), classify the sample "
    "photos shipped with scikit-image and scikit-learn under all 8 rotations and flips (the dihedral "
    "group D4), and print a table: the plain model's top-1 label changes with the transform, the wrapped "
    "models' labels do not. Needs the demo extra: pip install -e '.[demo]'."
)


def add_arguments(demo: argparse.ArgumentParser) -> None:
    """Options of ``multiequi demo``."""
    demo.add_argument(
        "--chunk-size",
        type=_chunk,
        default="auto",
        metavar="N|auto|none",
        help="rows per model call for the wrapped models: an integer, 'auto' (measure once and keep the fastest; "
        "default) or 'none' (all copies of the batch in one call)",
    )
    demo.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        help="keep the default contiguous memory format (channels-last is faster for convolutions on CPUs)",
    )
    demo.add_argument(
        "--repeats", type=int, default=1, help="timing repeats per photo; the median is reported (default 1)"
    )
    demo.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    demo.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON to PATH")
    demo.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


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


def run(args: argparse.Namespace) -> int:
    """Run ``multiequi demo``."""
    import torch

    from .experiments.demo import format_report, run_demo, write_json

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats < 1:
        raise SystemExit("multiequi demo: --repeats must be >= 1")
    result = run_demo(
        chunk_size=args.chunk_size, channels_last=args.channels_last, repeats=args.repeats, progress=args.progress
    )
    print(format_report(result))
    if args.json:
        write_json(result, args.json)
        print(f"\nWrote {args.json}")
    return 0


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
