"""Argument types shared by every ``multiequi`` subcommand (one parser for integers with words)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CHECKPOINT_HELP",
    "add_action_argument",
    "add_process_options",
    "checkpoint_every",
    "int_arg",
    "start_experiment",
]


def int_arg(minimum: int = 1, words: Mapping[str, Any] | None = None) -> Callable[[str], Any]:
    """An argparse ``type`` accepting integers ``>= minimum`` or one of ``words`` (mapped to values).

    Examples
    --------
    >>> chunk = int_arg(1, {"auto": "auto", "none": None})
    >>> chunk("8"), chunk("auto"), chunk("none")
    (8, 'auto', None)
    """
    words = dict(words or {})
    allowed = f"an integer >= {minimum}" + (f" or {', '.join(repr(w) for w in words)}" if words else "")

    def parse(value: str) -> Any:
        if value in words:
            return words[value]
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {value!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {n}")
        return n

    return parse


#: The help of ``--checkpoint-every`` (scan, multi-image).
CHECKPOINT_HELP = (
    "how often training writes a checkpoint to resume from: every N optimizer steps ('500') or every T "
    "seconds or minutes of training ('60s', '5m'; default 60s, so an interrupted run loses at most about a "
    "minute). Checkpoints are also written at every validation, at the end and on Ctrl-C / SIGTERM; how often "
    "does not change any result"
)


def checkpoint_every(value: str) -> tuple[int, float | None]:
    """``--checkpoint-every``: ``"500"`` (steps) or ``"60s"`` / ``"5m"`` (time) as
    ``(steps, seconds)`` for :class:`~multiequi.lab.training.TrainConfig`.

    Examples
    --------
    >>> checkpoint_every("500"), checkpoint_every("90s"), checkpoint_every("5m")
    ((500, None), (0, 90.0), (0, 300.0))
    """
    text = value.strip().lower()
    try:
        if text.endswith(("s", "m")):
            seconds = float(text[:-1]) * (60.0 if text.endswith("m") else 1.0)
            if seconds > 0:
                return 0, seconds
        elif int(text) >= 1:
            return int(text), None
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"expected a number of steps (e.g. 500) or a time such as 60s or 5m, got {value!r}"
    )


def add_action_argument(p: argparse.ArgumentParser, run_help: str, report_help: str) -> None:
    """The optional positional ``run`` (default) / ``report`` of an experiment command."""
    p.add_argument(
        "action",
        nargs="?",
        choices=("run", "report"),
        default="run",
        help=f"'run' (default): {run_help}; 'report': {report_help}",
    )


def add_process_options(p: argparse.ArgumentParser) -> None:
    """``--threads`` and ``--no-progress`` of an experiment command whose work ``accelerate launch``
    can split across processes."""
    p.add_argument(
        "--threads", type=int_arg(1), default=None, help="torch threads per process (use 1 on shared machines)"
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def start_experiment(args: argparse.Namespace, name: str, rebuild_report: Callable[[Path], Any]) -> Path | None:
    """Apply ``--threads``; return the run folder (``--out``, default ``results/<name>/<preset>``), or
    ``None`` after printing the report rebuilt from it when the action is ``report``."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path("results") / name / args.preset
    if args.action == "report":
        paths = rebuild_report(out)
        print(paths["report"].read_text())
        return None
    return out
