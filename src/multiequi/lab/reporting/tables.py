"""Mean ± std over seeds, rendered as markdown, CSV and JSON."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .records import atomic_write_json, atomic_write_text

__all__ = ["markdown_table", "summarize", "write_tables"]


def summarize(
    records: Sequence[Mapping[str, Any]],
    by: Sequence[str],
    value: str,
    *,
    seed_key: str = "seed",
    extra: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Group ``records`` by the fields ``by`` and report ``value`` as mean and sample std.

    Each row has the ``by`` fields, ``<value>_mean``, ``<value>_std`` (0 for one seed), ``seeds``
    (how many distinct seeds) and, for each name in ``extra``, the value of the first record.
    When one seed was run several times (a resumed run appends again), the last record counts.

    Examples
    --------
    >>> rows = summarize([{"m": "a", "seed": 0, "acc": 0.5}, {"m": "a", "seed": 1, "acc": 0.7}], ["m"], "acc")
    >>> rows[0]["acc_mean"], round(rows[0]["acc_std"], 4), rows[0]["seeds"]
    (0.6, 0.1414, 2)
    """
    groups: dict[tuple, dict[Any, Mapping[str, Any]]] = {}
    for r in records:
        missing = [k for k in (*by, value) if k not in r]
        if missing:
            raise ValueError(f"record {dict(r)} lacks the fields {missing}")
        key = tuple(r[k] for k in by)
        groups.setdefault(key, {})[r.get(seed_key)] = r  # the last record of a seed wins
    rows = []
    for key, per_seed in groups.items():
        vals = [float(r[value]) for r in per_seed.values()]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        row = dict(zip(by, key, strict=True))
        row[f"{value}_mean"] = mean
        row[f"{value}_std"] = std
        row["seeds"] = len(vals)
        first = next(iter(per_seed.values()))
        for name in extra:
            row[name] = first.get(name)
        rows.append(row)
    return rows


def _cell(v: Any, digits: int) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return "" if v is None else str(v)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """A markdown table of ``rows`` (dicts); floats rounded to ``digits``.

    Examples
    --------
    >>> print(markdown_table([{"a": 1, "b": 0.5}]))
    | a | b     |
    |---|-------|
    | 1 | 0.500 |
    """
    if not rows:
        return "(no results)"
    columns = list(columns or rows[0].keys())
    cells = [[_cell(r.get(c), digits) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(columns), sep, *(line(r) for r in cells)])


def write_tables(
    rows: Sequence[Mapping[str, Any]],
    stem: str | os.PathLike[str],
    columns: Sequence[str] | None = None,
    *,
    title: str | None = None,
    digits: int = 3,
) -> dict[str, Path]:
    """Write ``rows`` as ``<stem>.md``, ``<stem>.csv`` and ``<stem>.json`` (atomically)."""
    stem = Path(stem)
    columns = list(columns or (rows[0].keys() if rows else []))
    md = (f"{title}\n\n" if title else "") + markdown_table(rows, columns, digits) + "\n"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow(r)
    return {
        "md": atomic_write_text(stem.with_suffix(".md"), md),
        "csv": atomic_write_text(stem.with_suffix(".csv"), buf.getvalue()),
        "json": atomic_write_json(stem.with_suffix(".json"), [dict(r) for r in rows]),
    }
