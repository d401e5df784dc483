"""PNG plots for results: grouped bars (the paper's figures) and lines (cost against N)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["grouped_bars", "line_plot"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install 'multiequi[experiments]'") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=130, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def _ordered(values: Sequence[Any], order: Sequence[Any] | None) -> list[Any]:
    seen = list(dict.fromkeys(values))
    if order is None:
        return seen
    return [v for v in order if v in seen] + [v for v in seen if v not in order]


def grouped_bars(
    rows: Sequence[Mapping[str, Any]],
    x: str,
    hue: str,
    value: str,
    path: str | os.PathLike[str],
    *,
    err: str | None = None,
    title: str = "",
    ylabel: str = "",
    note: str = "",
    x_order: Sequence[Any] | None = None,
    hue_order: Sequence[Any] | None = None,
    ylim: tuple[float, float] | None = None,
    legend_kwargs: Mapping[str, Any] | None = None,
) -> Path:
    """Bars of ``value`` grouped by ``x`` with one colour per ``hue`` (error bars from ``err``).

    ``legend_kwargs`` go to matplotlib's ``legend`` (e.g. ``{"loc": "upper left", "bbox_to_anchor":
    (1, 1)}`` puts the legend outside, right of the bars, where it cannot hide one).
    """
    plt = _pyplot()
    xs = _ordered([r[x] for r in rows], x_order)
    hues = _ordered([r[hue] for r in rows], hue_order)
    table = {(r[x], r[hue]): r for r in rows}
    width = 0.8 / max(len(hues), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(xs) * max(1, len(hues)) / 2), 3.6))
    for k, h in enumerate(hues):
        pos = [i + (k - (len(hues) - 1) / 2) * width for i in range(len(xs))]
        vals = [float(table[(v, h)][value]) if (v, h) in table else float("nan") for v in xs]
        errs = [float(table[(v, h)][err]) if err and (v, h) in table else 0.0 for v in xs] if err else None
        ax.bar(pos, vals, width, yerr=errs, capsize=3 if err else 0, label=str(h))
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_ylabel(ylabel or value)
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.legend(fontsize=8, **dict(legend_kwargs or {}))
    ax.grid(axis="y", alpha=0.3)
    if note:
        fig.text(0.01, -0.02, note, fontsize=7, ha="left", va="top")
    out = _save(fig, path)
    plt.close(fig)
    return out


def line_plot(
    rows: Sequence[Mapping[str, Any]],
    x: str,
    y: str,
    hue: str,
    path: str | os.PathLike[str],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    note: str = "",
    logy: bool = False,
    hue_order: Sequence[Any] | None = None,
) -> Path:
    """One line of ``y`` against ``x`` per ``hue`` value."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for h in _ordered([r[hue] for r in rows], hue_order):
        pts = sorted((r[x], r[y]) for r in rows if r[hue] == h)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=str(h))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if note:
        fig.text(0.01, -0.02, note, fontsize=7, ha="left", va="top")
    out = _save(fig, path)
    plt.close(fig)
    return out
