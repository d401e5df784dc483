"""The zero-shot report, rebuilt from ``summary.json`` alone: accuracy per method and transform
(mean ± std over seeds), time per image, invariance, the timing at one batch size with the
ratios the issue targets, a grouped-bar PNG and an accuracy-against-time PNG."""

from __future__ import annotations

import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from multiequi.lab.reporting import atomic_write_text, markdown_table, read_json, summarize, write_tables

from .presets import METHODS, TRANSFORMS

__all__ = ["PUBLISHED", "accuracy_rows", "published_for", "rebuild_report", "timing_ratios", "write_report"]

#: The paper's vanilla-CLIP top-1 (%) on CIFAR-100 (experiments.md), by model and setting.
PUBLISHED: dict[str, dict[str, float]] = {
    "RN50": {"none": 41.77, "rot90": 24.33, "rot90 equitune": 28.35, "rot90 equizero": 38.87},
    "RN101": {"none": 48.83, "rot90": 28.26, "rot90 equitune": 34.02, "rot90 equizero": 45.96},
    "ViT-B/32": {"none": 65.02, "rot90": 43.91, "rot90 equitune": 54.88, "rot90 equizero": 63.03},
    "ViT-B/16": {"none": 68.25, "rot90": 46.49, "rot90 equitune": 57.35, "rot90 equizero": 66.44},
}
_PATTERNS = {
    "RN50": ("rn50", "resnet50", "resnet-50"),
    "RN101": ("rn101", "resnet101", "resnet-101"),
    "ViT-B/32": ("vit-b-32", "vit-base-patch32", "vit-b/32"),
    "ViT-B/16": ("vit-b-16", "vit-base-patch16", "vit-b/16"),
}


def published_for(model: str, data: str) -> tuple[str, dict[str, float]] | None:
    """The paper's numbers for a CLIP model name on CIFAR-100, or None (another model or data).

    Examples
    --------
    >>> published_for("openai/clip-vit-base-patch32", "CIFAR-100")[0]
    'ViT-B/32'
    >>> published_for("EfficientNet-Lite0 + all-MiniLM-L6-v2 (stand-in for CLIP)", "CIFAR-100") is None
    True
    """
    if "cifar" not in data.lower() or "100" not in data:
        return None
    low = model.lower()
    for arch, patterns in _PATTERNS.items():
        if any(p in low for p in patterns):
            return arch, PUBLISHED[arch]
    return None


def accuracy_rows(rows: Sequence[Mapping[str, Any]], model: str) -> list[dict[str, Any]]:
    """Mean ± std over seeds per (transform, method), in table order."""
    top1 = summarize(rows, ["transform", "method"], "top1", extra=["copies"])
    top5 = {(r["transform"], r["method"]): r for r in summarize(rows, ["transform", "method"], "top5")}
    time = {(r["transform"], r["method"]): r for r in summarize(rows, ["transform", "method"], "ms_per_image")}
    images = {}
    for r in rows:
        images[(r["transform"], r["method"])] = images.get((r["transform"], r["method"]), 0) + r["images"]
    out = []
    for r in top1:
        k = (r["transform"], r["method"])
        out.append(
            {
                "transform": r["transform"],
                "method": r["method"],
                "copies": r["copies"],
                "top1": r["top1_mean"],
                "top1_std": r["top1_std"],
                "top5": top5[k]["top5_mean"],
                "top5_std": top5[k]["top5_std"],
                "ms_per_image": time[k]["ms_per_image_mean"],
                "seeds": r["seeds"],
                "images": images[k],
                "model": model,
            }
        )
    order_t = {t: i for i, t in enumerate(TRANSFORMS)}
    order_m = {m: i for i, m in enumerate(METHODS)}
    return sorted(out, key=lambda r: (order_t.get(r["transform"], 99), order_m.get(r["method"], 99)))


#: the issue's timing targets: (ratio, its numerator and denominator, the bound, "max" or "min")
TARGETS = (
    ("multi-equitune / equitune", ("multi-equitune", "auto"), ("equitune", "auto"), 0.8, "max"),
    ("multi-equitune / equitune", ("multi-equitune", "one call"), ("equitune", "one call"), 0.8, "max"),
    ("ttach / multi-equitune", ("ttach", "8"), ("multi-equitune", "auto"), 2.0, "min"),
    ("ttach / multi-equitune", ("ttach", "8"), ("multi-equitune", "one call"), 2.0, "min"),
)


def timing_ratios(timing: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per timed model, the ratios of :data:`TARGETS`, paired by round: the median, smallest and
    largest of ``t_num[r] / t_den[r]`` over the rounds ``r`` (the methods of a round ran one after
    the other, so a change in the machine's load hits both), and whether the median meets the
    target. Rows without per-round times (``ms_per_round``) give the ratio of the medians.

    Examples
    --------
    >>> rows = [{"model": "m", "method": "equitune", "calls": "auto", "batch": 32, "ms_per_round": [8.0, 10.0]},
    ...         {"model": "m", "method": "multi-equitune", "calls": "auto", "batch": 32, "ms_per_round": [6.0, 6.0]}]
    >>> [(r["ratio"], r["median"], r["met"]) for r in timing_ratios(rows)]
    [('multi-equitune / equitune', 0.675, 'yes')]
    """
    out = []
    for model in dict.fromkeys(r["model"] for r in timing):
        mine = {(r["method"], str(r.get("calls", "auto"))): r for r in timing if r["model"] == model}
        for ratio, num, den, bound, kind in TARGETS:
            if num not in mine or den not in mine:
                continue
            a, b = mine[num], mine[den]
            pairs = list(zip(a.get("ms_per_round") or [], b.get("ms_per_round") or [], strict=False))
            if pairs:
                each = sorted(x / y for x, y in pairs)
                med, lo, hi = statistics.median(each), each[0], each[-1]
            else:
                med = lo = hi = a["ms_per_image"] / b["ms_per_image"]
            met = med <= bound if kind == "max" else med >= bound
            out.append(
                {
                    "model": model,
                    "batch": a["batch"],
                    "ratio": ratio,
                    "calls": f"{num[1]} / {den[1]}",
                    "median": med,
                    "smallest": lo,
                    "largest": hi,
                    "rounds": len(pairs),
                    "target": f"{'≤' if kind == 'max' else '≥'} {bound:g}",
                    "met": "yes" if met else "no",
                }
            )
    return out


def _pm(mean: float, std: float, seeds: int) -> str:
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if seeds > 1 else f"{100 * mean:.1f}"


def write_report(summary: Mapping[str, Any], out: str | os.PathLike[str]) -> dict[str, Path]:
    """Tables, figures and ``report.md`` in ``out`` from the summary; returns their paths."""
    from multiequi.lab.reporting import plots

    out = Path(out)
    model, data = summary["model"], summary["data"]
    acc = accuracy_rows(summary["rows"], model)
    paths = {f"accuracy.{k}": v for k, v in write_tables(acc, out / "accuracy", title=f"{model} on {data}").items()}
    shown = [
        {
            "transform": r["transform"],
            "method": r["method"],
            "copies": r["copies"],
            "top-1 %": _pm(r["top1"], r["top1_std"], r["seeds"]),
            "top-5 %": _pm(r["top5"], r["top5_std"], r["seeds"]),
            "ms/image": r["ms_per_image"],
            "seeds × images": f"{r['seeds']} × {r['images'] // max(r['seeds'], 1)}",
        }
        for r in acc
    ]
    timing = list(summary.get("timing", []))
    ratios = timing_ratios(timing)
    shown_timing = [{k: v for k, v in r.items() if k != "ms_per_round"} for r in timing]
    invariance = list(summary.get("invariance", []))
    cfg = summary["config"]
    machine = summary.get("machine", {})
    lines = [
        f"# Zero-shot classification under rotations and flips: {model}",
        "",
        f"Data: {data}; {summary['images_per_seed']} test images per seed, seeds {cfg['seeds']}; each image gets "
        "its own seeded random element of the transform (rot90: 4 rotations; flip: left-right; d4: rot90 × "
        f"flip, 8 elements). Prompts: {summary.get('templates', cfg['templates'])} templates. Preset {cfg['preset']}.",
        f"Machine: {machine.get('processor', '?')}, {machine.get('torch_threads', '?')} torch threads, "
        f"torch {machine.get('torch', '?')}; {summary.get('processes', 1)} process(es); evaluation batch "
        f"{cfg['batch_size']}.",
        "",
        "## Accuracy (mean ± std over seeds)",
        "",
        markdown_table(shown, digits=1),
    ]
    pub = published_for(model, data)
    if pub:
        arch, nums = pub
        lines += ["", f"Published vanilla-CLIP {arch} top-1 on CIFAR-100 (the paper): {nums}"]
    fit = summary.get("model_notes", {}).get("fit")
    if fit:
        lines += [
            "",
            "## The stand-in",
            "",
            f"{fit['model']}: EfficientNet-Lite0's ImageNet classifier rows regressed (ridge, alpha {fit['alpha']:g}) "
            f"on {fit['text_encoder']} embeddings of the {fit['classes']} ImageNet class names; for new classes the "
            f"map turns their names into classifier rows. {fit['summary']}. Prompt names: "
            f"{', '.join(summary['model_notes'].get('prompt_names', []))}.",
        ]
    if invariance:
        lines += [
            "",
            "## Invariance (logits over the 8 D4 images of a few test images)",
            "",
            markdown_table(
                [
                    {
                        "method": r["method"],
                        "largest logit change": f"{r['max_abs']:.2g}",
                        "relative": f"{r['relative']:.2g}",
                        "top-1 unchanged": f"{r['agreement']:.3f}",
                    }
                    for r in invariance
                ]
            ),
        ]
    if timing:
        lines += [
            "",
            "## Time per image at one batch size (methods interleaved)",
            "",
            "calls: the model calls per batch; the library's wrappers chunk the copies by their "
            "default (`auto`: the call size measured fastest on the first batch) and again with "
            "every copy in one call (`one call`). ttach runs the batch once per D4 element.",
            "",
            markdown_table(shown_timing, digits=2),
            "",
            "Ratios of times per image, paired by round (median, smallest and largest over the rounds):",
            "",
            markdown_table(ratios, digits=3),
        ]
    lines += ["", "Figures: accuracy.png (top-1 per method and transform), accuracy_vs_time.png."]
    text = "\n".join(lines) + "\n"
    paths["report"] = atomic_write_text(out / "report.md", text)
    if timing:
        paths.update({f"timing.{k}": v for k, v in write_tables(shown_timing, out / "timing").items()})
        paths.update({f"timing_ratios.{k}": v for k, v in write_tables(ratios, out / "timing_ratios").items()})
    plot_rows = [{**r, "top1_pct": 100 * r["top1"], "top1_std_pct": 100 * r["top1_std"]} for r in acc]
    paths["accuracy.png"] = plots.grouped_bars(
        plot_rows,
        x="method",
        hue="transform",
        value="top1_pct",
        path=out / "accuracy.png",
        err="top1_std_pct",
        title=f"{model} on {data}",
        ylabel="top-1 accuracy (%)",
        x_order=list(METHODS),
        hue_order=list(TRANSFORMS),
        note=f"mean ± std over {len(cfg['seeds'])} seeds, {summary['images_per_seed']} images each",
        legend_kwargs={"loc": "upper left", "bbox_to_anchor": (1, 1)},
    )
    hardest = "d4" if any(r["transform"] == "d4" for r in acc) else acc[-1]["transform"]
    scatter = [
        {
            "method": r["method"],
            "ms_per_image": r["ms_per_image"],
            "top1_pct": 100 * r["top1"],
            "low": 100 * (r["top1"] - r["top1_std"]),
            "high": 100 * (r["top1"] + r["top1_std"]),
        }
        for r in acc
        if r["transform"] == hardest
    ]
    paths["accuracy_vs_time.png"] = plots.scatter_plot(
        scatter,
        xs=["ms_per_image"],
        y="top1_pct",
        label="method",
        path=out / "accuracy_vs_time.png",
        y_low="low",
        y_high="high",
        title=f"{model}: top-1 under random {hardest} against time per image",
        xlabels=[f"ms per image (batch {cfg['batch_size']})"],
        ylabel="top-1 accuracy (%)",
        note="bars: ± one std over seeds",
    )
    return paths


def rebuild_report(out: str | os.PathLike[str]) -> dict[str, Path]:
    """Rebuild every table and figure from ``out/summary.json`` alone."""
    out = Path(out)
    return write_report(read_json(out / "summary.json", "zero-shot summary"), out)
