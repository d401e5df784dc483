"""SCAN and SCAN-II compositional generalisation with multi-equitune (Design 2 on tokens).

The task's pieces are shared with the benchmarks: the grammar, splits, encoding and word-swap
groups in :mod:`multiequi.lab.datasets.scan`; the seq2seq model, greedy decoding and its loss in
:mod:`multiequi.models.seq2seq`. Here:

- :mod:`.symmetry`: the two wrappers (equitune over the product, multi-equitune over the factors).
- :mod:`.training`: batches and exact-match accuracy.
- :mod:`.pipeline`: pretrain → fine-tune through the wrappers → evaluate → records; presets.
- :mod:`.report`: mean ± std tables and bar charts.

Command line: ``multiequi scan --help`` (its ``bench`` subcommand runs the SCAN throughput
workload of :mod:`multiequi.lab.bench`). Documentation: ``docs/scan.md``.
"""

from .pipeline import PRESETS as PRESETS
from .pipeline import Plan as Plan
from .pipeline import Settings as Settings
from .pipeline import run_cell as run_cell
from .pipeline import run_plan as run_plan
from .report import write_report as write_report
from .symmetry import wrap as wrap

__all__ = ["PRESETS", "Plan", "Settings", "run_cell", "run_plan", "wrap", "write_report"]
