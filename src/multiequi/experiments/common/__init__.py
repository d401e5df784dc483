"""Shared pieces of every experiment: one results writer, one table builder, one plotter, one
training loop (through Hugging Face Accelerate), one progress bar. Experiments call these
instead of writing their own.

- :mod:`.records`: atomic JSON / JSON-lines writes, run records stamped with the machine.
- :mod:`.tables`: mean ± std over seeds, markdown / CSV / JSON tables.
- :mod:`.plots`: grouped bar charts and line plots as PNG (matplotlib, headless).
- :mod:`.training`: :func:`train` with checkpoints in safetensors, resume, model selection on a
  validation score, gradient clipping, progress bar; runs unchanged under ``accelerate launch``.
"""

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
    "machine_info",
    "markdown_table",
    "progress",
    "read_jsonl",
    "summarize",
    "write_tables",
]
