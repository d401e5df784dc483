"""PNG plots for results: grouped bars (the paper's figures), lines (cost against N), stacked bars
(label distributions) and labelled scatter plots with error bars (a metric against a cost)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["grouped_bars", "line_plot", "scatter_plot", "stacked_bars"]


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


def _finish(plt: Any, fig: Any, path: str | os.PathLike[str], note: str, note_y: float = -0.02) -> Path:
    """Stamp ``note`` under the figure, save it atomically, close it."""
    if note:
        fig.text(0.01, note_y, note, fontsize=7, ha="left", va="top")
    out = _save(fig, path)
    plt.close(fig)
    return out


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
    return _finish(plt, fig, path, note)


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
    return _finish(plt, fig, path, note)


def stacked_bars(
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    parts: Sequence[str],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    ylabel: str = "fraction",
    note: str = "",
    colors: Sequence[str] | None = None,
) -> Path:
    """One panel per key of ``panels`` (stacked vertically); in each, one stacked bar per bar name
    whose segments are the values of ``parts`` (e.g. negative / neutral / positive fractions).

    ``panels = {"plain": {"The man": [0.2, 0.3, 0.5], ...}, ...}``.
    """
    plt = _pyplot()
    names = list(panels)
    bars = _ordered([b for p in panels.values() for b in p], None)
    fig, axes = plt.subplots(
        len(names), 1, figsize=(max(6.0, 0.45 * len(bars) + 1.5), 1.7 * len(names) + 0.8), sharex=True, squeeze=False
    )
    for ax, name in zip(axes[:, 0], names, strict=True):
        bottom = [0.0] * len(bars)
        for k, part in enumerate(parts):
            vals = [float(panels[name][b][k]) if b in panels[name] else 0.0 for b in bars]
            color = colors[k] if colors is not None else None
            ax.bar(range(len(bars)), vals, bottom=bottom, color=color, label=part, width=0.8)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_ylabel(name, fontsize=8)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, ncol=len(parts), loc="lower left", bbox_to_anchor=(0, 1.0))
    axes[-1, 0].set_xticks(range(len(bars)))
    axes[-1, 0].set_xticklabels(bars, rotation=60, ha="right", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.supylabel(ylabel, fontsize=8)
    return _finish(plt, fig, path, note)


def scatter_plot(
    rows: Sequence[Mapping[str, Any]],
    xs: Sequence[str],
    y: str,
    label: str,
    path: str | os.PathLike[str],
    *,
    y_low: str | None = None,
    y_high: str | None = None,
    hline: float | None = None,
    hline_label: str = "",
    title: str = "",
    xlabels: Sequence[str] | None = None,
    ylabel: str = "",
    note: str = "",
) -> Path:
    """One panel per x field of ``xs``: a labelled point per row at ``(row[x], row[y])``, with a
    vertical interval from ``row[y_low]`` to ``row[y_high]`` and an optional horizontal reference line."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(xs), figsize=(4.6 * len(xs), 3.6), squeeze=False, sharey=True)
    for i, (ax, x) in enumerate(zip(axes[0], xs, strict=True)):
        shown = [r for r in rows if r.get(x) is not None and r.get(y) is not None]
        values = [float(r[x]) for r in shown]
        span = (max(values) - min(values)) if values else 0.0
        for r in shown:
            # rows at the same x side by side, so that their intervals do not hide each other
            same = [q for q in shown if float(q[x]) == float(r[x])]
            shift = (same.index(r) - (len(same) - 1) / 2) * 0.02 * (span or 1.0)
            px = float(r[x]) + shift
            points = ax.plot([px], [r[y]], "o", label=str(r[label]))
            if y_low is not None and y_high is not None and r.get(y_low) is not None:
                # an interval need not contain the point (a percentile bootstrap of a biased statistic)
                ax.vlines(px, r[y_low], r[y_high], color=points[0].get_color(), linewidth=1.5)
            ax.annotate(str(r[label]), (px, r[y]), fontsize=7, xytext=(4, 4), textcoords="offset points")
        if hline is not None:
            ax.axhline(hline, color="grey", linestyle="--", linewidth=1, label=hline_label or None)
        ax.set_xlabel(xlabels[i] if xlabels else x)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel or y)
    handles, names = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, fontsize=7, loc="upper center", ncol=min(len(names), 4), bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(title, fontsize=9)
    return _finish(plt, fig, path, note, note_y=-0.12)
