"""``multiequi reproduce``: every experiment and the benchmarks at one budget, one report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from multiequi.lab.reproduce.parts import PARTS, PRESETS

from ._argtypes import add_action_argument, int_arg

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "Run every experiment (SCAN-II, multi-image, fairness, zero-shot) and the benchmarks at one budget, each as "
    "its own multiequi command in its own folder under --out, then write one report.md: the commit, machine, "
    "library versions and wall time of each part, then each part's tables and figures. Resumable: rerun the same "
    "command after an interruption; finished parts are kept, an unfinished part resumes from its own checkpoints. "
    "'report' rebuilds report.md from --out's records alone.\n\nPresets:\n"
    "  quick   every part's quick preset (a smoke test)\n"
    "  medium  3 seeds everywhere: SCAN-II with GRU and LSTM, multi-image with K = 2, 3, 4, fairness and "
    "zero-shot medium, the benchmarks\n"
    "  paper   every part's paper preset (a GPU and days)\n\n"
    "Parts and their commands (at the quick preset):\n"
    + "\n".join(f"  {p.name:<12} multiequi {' '.join(p.options('quick'))}" for p in PARTS.values())
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``multiequi reproduce``."""
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    add_action_argument(p, "run what --out lacks, then write report.md", "rebuild report.md from --out's records")
    p.add_argument("--preset", choices=PRESETS, default="quick", help="the budget (default quick; see Presets)")
    p.add_argument(
        "--only",
        metavar="PARTS",
        default=None,
        help=f"comma-separated parts to run, among {', '.join(PARTS)} (default: all, in that order)",
    )
    p.add_argument("--out", metavar="DIR", default=None, help="reproduction folder (default results/<preset>)")
    p.add_argument(
        "--threads", type=int_arg(1), default=None, help="torch threads of every part (use 1 on shared machines)"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars in the parts")


def run(args: argparse.Namespace) -> int:
    """Run ``multiequi reproduce``."""
    from multiequi.lab.reproduce import PartFailedError, rebuild_report, run_reproduction, select_parts

    out = Path(args.out) if args.out else Path("results") / args.preset
    if args.action == "report":
        path = rebuild_report(out)
        print(path.read_text())
        return 0
    select_parts(args.only)  # a misspelt part fails here, before anything runs
    try:
        run_reproduction(args.preset, out, only=args.only, threads=args.threads, progress=args.progress)
    except PartFailedError as err:
        print(f"multiequi reproduce: {err}", file=sys.stderr)
        return err.returncode if err.returncode > 0 else 1
    print(f"Written to {out}/report.md (records in {out}/records/, each part's files in {out}/<part>/)")
    return 0
