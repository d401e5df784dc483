"""``multiequi reproduce``: every experiment and the benchmarks at one budget, one report.

A reproduction runs each *part* (an experiment or the benchmarks) as its own ``multiequi``
command in a subprocess, in order, each in its own folder under ``results/<preset>/``; the parts
resume themselves, and a part whose record says it finished with the same command is skipped,
so an interrupted reproduction picks up where it stopped. Each finished part leaves one record
(``records/<part>.json``: the command, the commit, the machine, the library versions, the wall
time of every attempt). ``report.md`` is rebuilt from the records and the parts' own reports
alone (:func:`rebuild_report`).

- :mod:`.parts`: the parts and the command of each at each preset (:data:`PARTS`, :data:`PRESETS`);
- :mod:`.runner`: :func:`run_reproduction`, the records;
- :mod:`.claims`: :func:`claims_table`, the paper's claims judged from the parts' files;
- :mod:`.report`: :func:`rebuild_report`;
- :mod:`.pages`: :func:`update_pages`, the marked blocks of README.md and docs/ filled from one
  reproduction at one commit.

The reproduction imports no experiment: it runs their commands, so this room sits above them.
"""

from __future__ import annotations

from .claims import claims_table as claims_table
from .pages import PageError as PageError
from .pages import update_pages as update_pages
from .parts import PARTS as PARTS
from .parts import PRESETS as PRESETS
from .parts import Part as Part
from .parts import select_parts as select_parts
from .report import rebuild_report as rebuild_report
from .runner import PartFailedError as PartFailedError
from .runner import run_reproduction as run_reproduction

__all__ = [
    "PARTS",
    "PRESETS",
    "PageError",
    "Part",
    "PartFailedError",
    "claims_table",
    "rebuild_report",
    "run_reproduction",
    "select_parts",
    "update_pages",
]
