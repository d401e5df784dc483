"""How the lab reports: one results writer, one table builder, one plotter, one progress bar,
one timing helper. Experiments and benchmarks call these instead of writing their own.

- :mod:`.records`: atomic JSON / JSON-lines writes, run records stamped with the machine.
- :mod:`.tables`: mean ± std over seeds, markdown / CSV / JSON tables.
- :mod:`.plots`: grouped bar charts and line plots as PNG (matplotlib, headless; imported on use).
- :mod:`.progress`: a tqdm progress bar, or a silent stand-in.
- :mod:`.timing`: wall-clock timing of calls (synchronising CUDA), repeats interleaved across
  methods, medians, and the time spent inside a module.
"""

from .progress import progress as progress
from .records import DamagedFileError as DamagedFileError
from .records import append_jsonl as append_jsonl
from .records import atomic_write_json as atomic_write_json
from .records import atomic_write_text as atomic_write_text
from .records import machine_info as machine_info
from .records import read_json as read_json
from .records import read_jsonl as read_jsonl
from .tables import markdown_table as markdown_table
from .tables import summarize as summarize
from .tables import write_tables as write_tables
from .timing import ModelClock as ModelClock
from .timing import interleaved_times as interleaved_times
from .timing import summarize_times as summarize_times
from .timing import timed_call as timed_call

__all__ = [
    "DamagedFileError",
    "ModelClock",
    "append_jsonl",
    "atomic_write_json",
    "atomic_write_text",
    "interleaved_times",
    "machine_info",
    "markdown_table",
    "progress",
    "read_json",
    "read_jsonl",
    "summarize",
    "summarize_times",
    "timed_call",
    "write_tables",
]
