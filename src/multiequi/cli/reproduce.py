"""``multiequi reproduce``: every experiment and the benchmarks at one budget, one report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from multiequi.lab.reproduce.parts import PARTS, PRESETS

from ._argtypes import int_arg

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "Run every experiment (SCAN-II, multi-image, fairness, zero-shot) and the benchmarks at one budget, each as "
    "its own multiequi command in its own folder under --out, then write one report.md: the commit, machine, "
    "library versions and wall time of each part, then each part's tables and figures. Resumable: rerun the same "
    "command after an interruption; finished parts are kept, an unfinished part resumes from its own checkpoints. "
    "'report' rebuilds report.md from --out's records alone. 'pages' fills the marked blocks of README.md and "
    "docs/*.md (lines '<!-- reproduce medium: zeroshot/accuracy.md -->' ... '<!-- /reproduce -->', the file "
    "named relative to --out, or 'claims' / 'parts') from the reproduction in --out, which must have run at one "
    "commit without uncommitted changes; blocks of other presets are left alone.\n\nPresets:\n"
    "  quick   every part's quick preset (a smoke test)\n"
    "  medium  3 seeds everywhere: SCAN-II with GRU and LSTM, multi-image with K = 2, 3, 4, fairness and "
    "zero-shot medium (3 seeds each), the quick benchmarks at image batches 1 and 32, with SCAN, multi-image "
    "and zero-shot trimmed to fit about two hours on 2 cores (see docs/reproduce.md)\n"
    "  paper   every part's paper preset (a GPU and days)\n\n"
    "Parts and their commands (at the quick preset):\n"
    + "\n".join(f"  {p.name:<12} multiequi {' '.join(p.options('quick'))}" for p in PARTS.values())
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``multiequi reproduce``."""
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument(
        "action",
        nargs="?",
        choices=("run", "report", "pages"),
        default="run",
        help="'run' (default): run what --out lacks, then write report.md; 'report': rebuild report.md from "
        "--out's records; 'pages': fill the documentation's marked blocks from --out",
    )
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
    p.add_argument(
        "--pages",
        metavar="FILE",
        nargs="+",
        default=None,
        help="'pages': the pages to fill (default README.md and docs/*.md of the current folder)",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="'pages': write nothing; exit 1 when a page's blocks (or their figures) differ from --out",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``multiequi reproduce``."""
    from multiequi.lab.reproduce import PartFailedError, rebuild_report, run_reproduction, select_parts, update_pages
    from multiequi.lab.reproduce.pages import default_pages

    out = Path(args.out) if args.out else Path("results") / args.preset
    if args.action == "report":
        path = rebuild_report(out)
        print(path.read_text())
        return 0
    if args.action == "pages":
        updates = update_pages(out, args.pages or default_pages(), check=args.check)
        for u in updates:
            if u.blocks:
                state = ("differs" if args.check else "updated") if u.changed else "up to date"
                print(f"{u.page}: {len(u.blocks)} block(s) {state} ({', '.join(u.blocks)})")
        if not any(u.blocks for u in updates):
            print(f"no block for {out}'s preset in {len(updates)} page(s)")
        return 1 if args.check and any(u.changed for u in updates) else 0
    select_parts(args.only)  # a misspelt part fails here, before anything runs
    try:
        run_reproduction(args.preset, out, only=args.only, threads=args.threads, progress=args.progress)
    except PartFailedError as err:
        print(f"multiequi reproduce: {err}", file=sys.stderr)
        return err.returncode if err.returncode > 0 else 1
    print(f"Written to {out}/report.md (records in {out}/records/, each part's files in {out}/<part>/)")
    return 0
