"""``multiequi demo``: a real pretrained classifier made rotation- and flip-invariant
(a thin layer over :func:`multiequi.lab.experiments.demo.run_demo`)."""

from __future__ import annotations

import argparse

from ._argtypes import int_arg

__all__ = ["DESCRIPTION", "add_arguments", "run"]

_chunk = int_arg(1, {"auto": "auto", "none": None})

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


def run(args: argparse.Namespace) -> int:
    """Run ``multiequi demo``."""
    import torch

    from multiequi.lab.experiments.demo import format_report, run_demo, write_json

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
