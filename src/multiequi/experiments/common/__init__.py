"""Shared pieces of every experiment: one results writer, one table builder, one plotter, one
training loop (through Hugging Face Accelerate), one progress bar. Experiments call these
instead of writing their own.

- :mod:`.records`: atomic JSON / JSON-lines writes, run records stamped with the machine.
- :mod:`.tables`: mean ± std over seeds, markdown / CSV / JSON tables.
- :mod:`.plots`: grouped bar charts and line plots as PNG (matplotlib, headless).
- :mod:`.training`: :func:`train` with checkpoints in safetensors, resume, model selection on a
  validation score, gradient clipping, progress bar; runs unchanged under ``accelerate launch``.
- :mod:`.distributed`: :func:`is_main_process`, :func:`join_process_group`,
  :func:`wait_for_everyone`, :func:`wait_for_main`, :func:`leave_process_group`: under
  ``accelerate launch`` only the main process writes results, the others wait for them.
"""

from .distributed import is_main_process as is_main_process
from .distributed import join_process_group as join_process_group
from .distributed import leave_process_group as leave_process_group
from .distributed import wait_for_everyone as wait_for_everyone
from .distributed import wait_for_main as wait_for_main
from .progress import progress as progress
from .records import append_jsonl as append_jsonl
from .records import atomic_write_json as atomic_write_json
from .records import atomic_write_text as atomic_write_text
from .records import machine_info as machine_info
from .records import read_jsonl as read_jsonl
from .tables import markdown_table as markdown_table
from .tables import summarize as summarize
from .tables import write_tables as write_tables

__all__ = [
    "append_jsonl",
    "atomic_write_json",
    "atomic_write_text",
    "is_main_process",
    "join_process_group",
    "leave_process_group",
    "machine_info",
    "markdown_table",
    "progress",
    "read_jsonl",
    "summarize",
    "wait_for_everyone",
    "wait_for_main",
    "write_tables",
]
