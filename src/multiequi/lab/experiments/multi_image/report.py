"""The paper-style table, the drop table, the plot and the JSON summary of the multi-image grid."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from multiequi.lab.reporting import atomic_write_json, markdown_table, read_json, read_jsonl, summarize, write_tables
from multiequi.lab.reporting.plots import grouped_bars

from .data import AUGMENTATIONS
from .models import COLUMNS, model_label

__all__ = ["SUMMARY_FIELDS", "accuracy_plot", "compile_report", "drop_table", "paper_table", "summary_rows"]

#: The fields of every record of ``report --json``.
SUMMARY_FIELDS = ("dataset", "model", "fusion", "k", "train_aug", "test_aug", "accuracy_mean", "accuracy_std", "seeds")
_TEST_NAMES = {"none": "no test transform", "rot": "test rot", "mixed": "test mixed"}


def summary_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample std of the test accuracy over seeds, one row per setting, in table order.

    Each row has exactly :data:`SUMMARY_FIELDS`. The last record of a seed counts (a rerun
    replaces an older result).

    Examples
    --------
    >>> recs = [{"dataset": "d", "model": "CNN", "fusion": False, "k": 2, "train_aug": "none",
    ...          "test_aug": "rot", "seed": s, "accuracy": a} for s, a in ((0, 0.5), (1, 0.7))]
    >>> row = summary_rows(recs)[0]
    >>> round(row["accuracy_mean"], 3), row["seeds"]
    (0.6, 2)
    """
    by = ["dataset", "model", "fusion", "k", "train_aug", "test_aug"]
    rows = summarize(records, by, "accuracy")

    def order(r: Mapping[str, Any]) -> tuple:
        label = model_label(r["model"], r["fusion"])
        return (
            r["dataset"],
            r["k"],
            AUGMENTATIONS.index(r["train_aug"]),
            COLUMNS.index(label) if label in COLUMNS else len(COLUMNS),
            AUGMENTATIONS.index(r["test_aug"]),
        )

    return [{f: r[f] for f in SUMMARY_FIELDS} for r in sorted(rows, key=order)]


def _cell(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return ""
    return f"{100 * row['accuracy_mean']:.1f} ± {100 * row['accuracy_std']:.1f}"


def _index(summary: Sequence[Mapping[str, Any]]) -> dict[tuple, Mapping[str, Any]]:
    return {(r["k"], r["train_aug"], model_label(r["model"], r["fusion"]), r["test_aug"]): r for r in summary}


def paper_table(summary: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, str]], list[str]]:
    """Rows: K and training transforms; columns: each model without and with test transforms.

    Cells are test accuracy in % as ``mean ± std`` over seeds.

    Returns
    -------
    rows, columns

    Examples
    --------
    >>> row = {"dataset": "d", "model": "CNN", "fusion": False, "k": 2, "train_aug": "none", "seeds": 3}
    >>> summary = [{**row, "test_aug": "none", "accuracy_mean": 0.9, "accuracy_std": 0.01},
    ...            {**row, "test_aug": "rot", "accuracy_mean": 0.4, "accuracy_std": 0.02}]
    >>> rows, columns = paper_table(summary)
    >>> columns
    ['K', 'train aug', 'CNN (no test transform)', 'CNN (test rot)']
    >>> rows[0]["CNN (test rot)"]
    '40.0 ± 2.0'
    >>> drop_table(summary)[0][0]["CNN"]
    '+50.0'
    """
    idx = _index(summary)
    labels = [c for c in COLUMNS if any(key[2] == c for key in idx)]
    tests = [a for a in AUGMENTATIONS if any(key[3] == a for key in idx)]
    columns = ["K", "train aug"] + [f"{m} ({_TEST_NAMES[t]})" for m in labels for t in tests]
    rows = []
    for k, aug in dict.fromkeys(
        (key[0], key[1]) for key in sorted(idx, key=lambda t: (t[0], AUGMENTATIONS.index(t[1])))
    ):
        row = {"K": str(k), "train aug": aug}
        for m in labels:
            for t in tests:
                row[f"{m} ({_TEST_NAMES[t]})"] = _cell(idx.get((k, aug, m, t)))
        rows.append(row)
    return rows, columns


def drop_table(summary: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, str]], list[str]]:
    """Accuracy lost under test transforms, in points: ``acc(no test transform) − acc(test transform)``."""
    idx = _index(summary)
    labels = [c for c in COLUMNS if any(key[2] == c for key in idx)]
    tests = [a for a in AUGMENTATIONS if a != "none" and any(key[3] == a for key in idx)]
    columns = ["K", "train aug", "test aug", *labels]
    rows = []
    keys = dict.fromkeys((key[0], key[1]) for key in sorted(idx, key=lambda t: (t[0], AUGMENTATIONS.index(t[1]))))
    for k, aug in keys:
        for t in tests:
            row = {"K": str(k), "train aug": aug, "test aug": t}
            for m in labels:
                a, b = idx.get((k, aug, m, "none")), idx.get((k, aug, m, t))
                row[m] = "" if a is None or b is None else f"{100 * (a['accuracy_mean'] - b['accuracy_mean']):+.1f}"
            rows.append(row)
    return rows, columns


def accuracy_plot(
    summary: Sequence[Mapping[str, Any]], k: int, path: str | os.PathLike[str], dataset: str, note: str = ""
) -> Path:
    """Bars of test accuracy per model for one K: one colour per (training, test) transform setting.

    Without versus with test transforms side by side: a model that loses nothing has equal bars.
    """
    rows = [
        {
            "model": model_label(r["model"], r["fusion"]),
            "setting": f"train {r['train_aug']} / test {r['test_aug']}",
            "accuracy": 100 * r["accuracy_mean"],
            "std": 100 * r["accuracy_std"],
        }
        for r in summary
        if r["k"] == k
    ]
    low = min((r["accuracy"] - r["std"] for r in rows), default=0.0)
    return grouped_bars(
        rows,
        "model",
        "setting",
        "accuracy",
        path,
        err="std",
        title=f"{dataset}, K={k}: test accuracy without vs with test transforms",
        ylabel="test accuracy (%), mean ± std over seeds",
        note=note,
        x_order=COLUMNS,
        ylim=(max(0.0, 10 * int(low // 10) - 10), 100.0),
    )


def _dataset_name(summary: Sequence[Mapping[str, Any]]) -> str:
    names = sorted({r["dataset"] for r in summary})
    if len(names) != 1:
        raise ValueError(f"one report covers one data set; the records hold {names}")
    return names[0]


def compile_report(
    out: str | os.PathLike[str],
    json_path: str | os.PathLike[str] | None = None,
    figure_dir: str | os.PathLike[str] | None = None,
    figure_prefix: str = "multi_image",
) -> dict[str, Any]:
    """Read ``<out>/runs.jsonl`` and write the tables, the plots and the JSON summary.

    Writes ``<out>/table.{md,csv,json}`` (the paper-style table), ``<out>/drop.{md,csv,json}``
    (accuracy lost under test transforms), ``<out>/summary.json`` (and ``json_path`` if given: a
    list of records with :data:`SUMMARY_FIELDS`), and one PNG per K,
    ``<figure_dir>/<figure_prefix>_k<K>.png`` (default folder: ``out``).

    Returns
    -------
    dict
        ``markdown`` (both tables as text), ``summary`` (rows) and the written ``paths``.
    """
    out = Path(out)
    records = read_jsonl(out / "runs.jsonl")
    if not records:
        raise FileNotFoundError(f"no results in '{out / 'runs.jsonl'}': run 'multiequi multi-image --out {out}' first")
    summary = summary_rows(records)
    name = _dataset_name(summary)
    grid: dict[str, Any] = {}
    if (out / "grid.json").is_file():
        grid = read_json(out / "grid.json", "grid summary")
    seeds = sorted({r["seed"] for r in records})
    groups = sorted({r.get("groups", "") for r in records})
    title = (
        f"Test accuracy (%), mean ± std over seeds {seeds}, on {name}; rows: K and training transforms; "
        f"per-view groups (Multi-GCNN, test transforms): {' / '.join(groups)}"
    )
    rows, columns = paper_table(summary)
    paths: dict[str, Any] = {"table": write_tables(rows, out / "table", columns, title=f"### {title}")}
    drows, dcols = drop_table(summary)
    dtitle = f"Accuracy lost under test transforms (points; no test transform minus with), {name}"
    paths["drop"] = write_tables(drows, out / "drop", dcols, title=f"### {dtitle}")
    paths["summary"] = atomic_write_json(out / "summary.json", summary)
    if json_path is not None:
        paths["json"] = atomic_write_json(json_path, summary)
    machine = grid.get("machine") or records[-1].get("machine", {})
    note = (
        f"{grid.get('command') or 'multiequi multi-image'}  |  {machine.get('processor', '?')}, "
        f"{machine.get('cpu_count', '?')} cores, torch {machine.get('torch', '?')}"
    )
    fig_dir = Path(figure_dir) if figure_dir is not None else out
    paths["plots"] = [
        accuracy_plot(summary, k, fig_dir / f"{figure_prefix}_k{k}.png", name, note)
        for k in sorted({r["k"] for r in summary})
    ]
    markdown = f"### {title}\n\n{markdown_table(rows, columns)}\n\n### {dtitle}\n\n{markdown_table(drows, dcols)}\n"
    return {"markdown": markdown, "summary": summary, "paths": paths, "grid": grid}
