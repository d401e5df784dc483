"""Compile the SCAN records into mean ± std tables (markdown, CSV, JSON) and grouped bar charts."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from multiequi.lab.reporting import (
    atomic_write_json,
    atomic_write_text,
    markdown_table,
    read_jsonl,
    summarize,
    write_tables,
)

from .pipeline import METHOD_LABELS, METHODS, TASKS, wall_clock

__all__ = ["JSON_FIELDS", "cost_rows", "latest_settings", "pivot_markdown", "summary_rows", "write_report"]

#: Fields of every row of ``multiequi scan report --json PATH``.
JSON_FIELDS = ("dataset", "cell", "method", "split", "accuracy_mean", "accuracy_std", "seeds", "copies")

_SPLIT_ORDER = [s for t in TASKS.values() for s in t.tests]
_CELL_ORDER = ["rnn", "gru", "lstm"]


def latest_settings(records: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], int]:
    """Keep, for each (task, cell), only the records made with the settings of its newest record.

    Returns the kept records and how many were dropped (runs with older settings in the same
    folder).
    """
    newest: dict[tuple[str, str], tuple[str, str]] = {}
    for r in records:
        key = (r["task"], r["cell"])
        if key not in newest or r["time"] >= newest[key][0]:
            newest[key] = (r["time"], r["settings_hash"])
    kept = [r for r in records if r["settings_hash"] == newest[(r["task"], r["cell"])][1]]
    return kept, len(records) - len(kept)


def _order(row: Mapping[str, Any]) -> tuple:
    def pos(seq: Sequence[Any], v: Any) -> int:
        return seq.index(v) if v in seq else len(seq)

    return (
        row["dataset"],
        pos(list(TASKS), row["task"]),
        pos(_CELL_ORDER, row["cell"]),
        pos(METHODS, row["method"]),
        pos(_SPLIT_ORDER, row["split"]),
    )


def summary_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Accuracy mean ± std over seeds per (dataset, task, cell, method, split)."""
    rows = summarize(
        records, ["dataset", "task", "cell", "method", "split"], "accuracy", extra=["copies", "n_eval", "n_test"]
    )
    return sorted(rows, key=_order)


def cost_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies, fine-tuning throughput and evaluation cost per (dataset, task, cell, method)."""
    first_split: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for r in records:
        first_split.setdefault((r["task"], r["cell"], r["method"], r["seed"]), r)
    recs = list(first_split.values())
    by = ["dataset", "task", "cell", "method"]
    evals = {tuple(r[k] for k in by): r for r in summarize(records, by, "eval_ms_per_example", extra=["copies"])}
    tuned = [r for r in recs if r.get("finetune_examples_per_s")]
    speed = {tuple(r[k] for k in by): r for r in summarize(tuned, by, "finetune_examples_per_s")} if tuned else {}
    walls = {tuple(r[k] for k in by): r for r in summarize(tuned, by, "finetune_wall_s")} if tuned else {}
    out = []
    for key, ev in evals.items():
        row = dict(zip(by, key, strict=True))
        row["copies"] = ev["copies"]
        row["finetune_examples_per_s"] = speed[key]["finetune_examples_per_s_mean"] if key in speed else None
        row["finetune_wall_s"] = walls[key]["finetune_wall_s_mean"] if key in walls else None
        row["eval_ms_per_example"] = ev["eval_ms_per_example_mean"]
        out.append(row)
    return sorted(out, key=lambda r: _order({**r, "split": ""}))


def _pct(mean: float, std: float, seeds: int) -> str:
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if seeds > 1 else "")


def pivot_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """One markdown table per (dataset, cell): methods down, test splits across, accuracy in %."""
    blocks = []
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["cell"]), []).append(r)
    for (dataset, cell), rs in groups.items():
        splits = list(dict.fromkeys(r["split"] for r in rs))
        methods = list(dict.fromkeys(r["method"] for r in rs))
        cells = {(r["method"], r["split"]): r for r in rs}
        table = []
        for m in methods:
            row: dict[str, Any] = {"method": METHOD_LABELS.get(m, m)}
            copies = None
            for s in splits:
                rec = cells.get((m, s))
                row[s] = _pct(rec["accuracy_mean"], rec["accuracy_std"], rec["seeds"]) if rec else ""
                copies = rec["copies"] if rec else copies
            row["copies"] = copies
            table.append(row)
        seeds = sorted({r["seeds"] for r in rs})
        n_eval = ", ".join(f"{s} {cells[(methods[0], s)]['n_eval']}/{cells[(methods[0], s)]['n_test']}" for s in splits)
        title = (
            f"**{dataset}, {cell.upper()}**: exact-match accuracy (%), mean ± std over {'/'.join(map(str, seeds))} "
            f"seed(s); examples evaluated / in the test split: {n_eval}"
        )
        blocks.append(title + "\n\n" + markdown_table(table, ["method", *splits, "copies"]))
    return "\n\n".join(blocks)


def write_report(
    records_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    json_path: str | os.PathLike[str] | None = None,
    plots: bool = True,
) -> dict[str, Path]:
    """Write the tables (``scan_results.{md,csv,json}``, ``scan_cost.{md,csv,json}``), a summary
    ``scan_report.md`` and one bar chart per (dataset, cell) ``scan_<dataset>_<cell>.png`` to
    ``out_dir``; optionally the table as a JSON list of :data:`JSON_FIELDS` records at ``json_path``.
    """
    records: Sequence[Mapping[str, Any]] = read_jsonl(records_path)
    if not records:
        raise FileNotFoundError(f"no SCAN records in '{records_path}': run `multiequi scan` first")
    records, dropped = latest_settings(records)
    out = Path(out_dir)
    rows = summary_rows(records)
    cost = cost_rows(records)
    columns = [
        "dataset",
        "task",
        "cell",
        "method",
        "split",
        "accuracy_mean",
        "accuracy_std",
        "seeds",
        "copies",
        "n_eval",
        "n_test",
    ]
    paths: dict[str, Path] = {}
    for k, p in write_tables(rows, out / "scan_results", columns, title="SCAN exact-match accuracy", digits=4).items():
        paths[f"results_{k}"] = p
    for k, p in write_tables(cost, out / "scan_cost", title="SCAN cost per method", digits=1).items():
        paths[f"cost_{k}"] = p
    if json_path is not None:
        paths["json"] = atomic_write_json(json_path, [{f: r[f] for f in JSON_FIELDS} for r in rows])
    machine = records[-1].get("machine", {})
    settings = records[-1].get("settings", {})
    lines = [
        "# SCAN results",
        "",
        pivot_markdown(rows),
        "",
        "## Cost",
        "",
        markdown_table(
            [
                {
                    "task": r["task"],
                    "cell": r["cell"],
                    "method": METHOD_LABELS.get(r["method"], r["method"]),
                    "copies": r["copies"],
                    "fine-tune examples/s": r["finetune_examples_per_s"],
                    "fine-tune s (with validation)": r["finetune_wall_s"],
                    "eval ms/example": r["eval_ms_per_example"],
                }
                for r in cost
            ],
            digits=1,
        ),
        "",
        f"Recorded training + evaluation time: {wall_clock(records) / 60:.1f} min.",
        f"Machine: {machine.get('processor')}, {machine.get('cpu_count')} cores, torch {machine.get('torch')} "
        f"({machine.get('torch_threads')} threads), device {machine.get('device')}.",
        f"Settings: {settings}.",
    ]
    if dropped:
        lines.append(f"({dropped} records made with older settings in the same folder were left out.)")
    paths["report"] = atomic_write_text(out / "scan_report.md", "\n".join(lines) + "\n")
    if plots:
        from multiequi.lab.reporting.plots import grouped_bars

        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault((r["dataset"], r["cell"]), []).append(
                {
                    "split": r["split"],
                    "method": METHOD_LABELS.get(r["method"], r["method"]),
                    "accuracy (%)": 100 * r["accuracy_mean"],
                    "std": 100 * r["accuracy_std"],
                }
            )
        for (dataset, cell), prs in groups.items():
            mine = [r for r in rows if (r["dataset"], r["cell"]) == (dataset, cell)]
            seeds = sorted({r["seeds"] for r in mine})
            n_eval = ", ".join(f"{s} {n}" for s, n in dict((r["split"], r["n_eval"]) for r in mine).items())
            paths[f"figure_{dataset}_{cell}"] = grouped_bars(
                prs,
                "split",
                "method",
                "accuracy (%)",
                out / f"scan_{dataset}_{cell}.png",
                err="std",
                title=f"{'SCAN-II' if dataset == 'scan2' else 'SCAN'}, {cell.upper()}: held-out compositions",
                ylabel="exact-match accuracy (%)",
                note=f"mean ± std over {'/'.join(map(str, seeds))} seed(s); examples evaluated: {n_eval}",
                hue_order=[METHOD_LABELS[m] for m in METHODS],
                ylim=(0, 105),
                legend_kwargs={"loc": "upper left", "bbox_to_anchor": (1.0, 1.0)},
            )
    return paths
