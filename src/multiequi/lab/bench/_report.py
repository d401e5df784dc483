"""What a benchmark run shows: the issue's targets checked on the records, tables and plots."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from multiequi.lab.reporting import atomic_write_json, atomic_write_text, markdown_table, write_tables
from multiequi.lab.reporting.plots import grouped_bars, line_plot

__all__ = ["evaluate_generation_targets", "evaluate_targets", "format_report", "stamp", "write_outputs"]

#: (batch, minimum speed-up over ttach's D4 loop) on the image workload, CPU.
TTACH_GOALS = {1: 1.8, 32: 2.5}
OVERHEAD_GOAL = 1.15
RATIO_TOLERANCE = 0.15
CHUNK_MEMORY_GOAL = 1.25
INVARIANCE_GOAL = 1e-6
#: Generation: multi-equitune's ms per new token at most this times the plain model's on the same rows.
GEN_FLOOR_GOAL = 1.15
#: Generation: at least this many times faster per new token than the predecessor's loop, at N = 3.
GEN_PEER_GOAL = 8.0
GEN_PEER_FACTORS = 3
#: Generation: the wrapper's own cost per decoding step, SmolLM2 at batch 1 on a CPU, below this share.
GEN_OWN_COST_GOAL = 0.10
#: Generation: the wrappers' error of the generated distributions that still counts as equivariant.
GEN_ERROR_GOAL = 1e-5

Rec = Mapping[str, Any]


def _ok(r: Rec) -> bool:
    return r.get("status") == "ok" and r.get("time_ms_median") is not None


def _index(records: Sequence[Rec]) -> dict[tuple, Rec]:
    return {(r["workload"], r["n_factors"], r["batch"], r["method"]): r for r in records if _ok(r)}


def _same_as_unchunked(r: Rec) -> bool:
    return r.get("status") == "skipped" and str(r.get("note", "")).startswith("runs exactly like chunk_size=None")


def _cell(r: Rec) -> str:
    return f"{r['workload']} N={r['n_factors']} B={r['batch']}"


def _target(name: str, cell: str, goal: str, measured: float | None, met: bool | None, detail: str) -> dict[str, Any]:
    return {"target": name, "cell": cell, "goal": goal, "measured": measured, "met": met, "detail": detail}


def _plain_peaks(records: Sequence[Rec]) -> dict[tuple[str, int], float]:
    """Peak memory of the plain model by (workload, rows per call)."""
    out: dict[tuple[str, int], float] = {}
    for r in records:
        if not _ok(r) or r.get("peak_mem_mb") is None:
            continue
        if r["workload"].endswith("-rows"):
            if r["method"] == "plain[contiguous]" and (r["workload"][:-5], r["batch"]) in out:
                continue  # the channels-last profile is the reference when there is one
            out[(r["workload"][:-5], int(r["batch"]))] = float(r["peak_mem_mb"])
        elif r.get("kind") in ("plain", "reference"):
            out.setdefault((r["workload"], round(r["copies"] * r["batch"])), float(r["peak_mem_mb"]))
    return out


def evaluate_targets(records: Sequence[Rec], generation: Sequence[Rec] = ()) -> list[dict[str, Any]]:
    """Check the issue's performance targets on measured records (ratios within one run).

    Each entry: ``target``, ``cell``, ``goal``, ``measured``, ``met`` (``None``: reported for
    information only, no goal applies to that cell) and a ``detail`` sentence with the numbers.
    ``generation``: the generation workload's records (:func:`evaluate_generation_targets`).
    """
    idx = _index(records)
    out: list[dict[str, Any]] = []
    ok = [r for r in records if _ok(r)]
    # 1. batched overhead: Equitune over |G| copies of B vs the plain model on |G|·B rows
    for r in ok:
        if r.get("kind") not in ("equitune", "multiequitune") or r.get("chunk_size") != "none":
            continue
        k = r["product_order"] if r["kind"] == "equitune" else r["sum_order"]
        ref = idx.get((r["workload"], r["n_factors"], r["batch"], f"plain x{k}"))
        if ref is None:
            continue
        ratio = r["time_ms_median"] / ref["time_ms_median"]
        inside = f"; {r['model_ms_median']:.1f} ms of it inside the model" if r.get("model_ms_median") else ""
        out.append(
            _target(
                "batched overhead" if r["kind"] == "equitune" else "batched overhead (multiequitune, information)",
                _cell(r),
                f"<= {OVERHEAD_GOAL}x plain on {k}B rows" if r["kind"] == "equitune" else "-",
                ratio,
                ratio <= OVERHEAD_GOAL if r["kind"] == "equitune" else None,
                f"{r['method']} {r['time_ms_median']:.1f} ms{inside}; plain on {k}x{r['batch']} rows "
                f"{ref['time_ms_median']:.1f} ms",
            )
        )
    # 2. MultiEquitune / Equitune-on-the-product against Σ|G_i| / Π|G_i|
    for r in ok:
        if r["method"] != "multiequitune":
            continue
        eq = idx.get((r["workload"], r["n_factors"], r["batch"], "equitune-product"))
        if eq is None:
            continue
        ideal = r["sum_order"] / r["product_order"]
        ratio = r["time_ms_median"] / eq["time_ms_median"]
        rel = ratio / ideal - 1
        applies = r["workload"] == "tokens" and r["n_factors"] >= 3
        # the plain model's own cost on Σ and Π rows: below Σ/Π when large calls cost more per row
        p_sum = idx.get((r["workload"], r["n_factors"], r["batch"], f"plain x{r['sum_order']}"))
        p_prod = idx.get((r["workload"], r["n_factors"], r["batch"], f"plain x{r['product_order']}"))
        rows = (
            f"; the plain model on {r['sum_order']}B / {r['product_order']}B rows: "
            f"{p_sum['time_ms_median'] / p_prod['time_ms_median']:.3f}"
            if p_sum and p_prod
            else ""
        )
        out.append(
            _target(
                "multi / product time vs sum / product",
                _cell(r),
                # one-sided: cheaper than the copy count predicts is not a miss (the product's
                # larger calls can cost more per row); the goal is that overheads do not eat the saving
                f"<= {r['sum_order']}/{r['product_order']} = {ideal:.3f} + {RATIO_TOLERANCE:.0%}" if applies else "-",
                ratio,
                rel <= RATIO_TOLERANCE if applies else None,
                f"multiequitune {r['time_ms_median']:.1f} ms / equitune-product {eq['time_ms_median']:.1f} ms "
                f"= {ratio:.3f} ({rel:+.0%} from {ideal:.3f}){rows}",
            )
        )
    # 3. against the real ttach D4 loop on the image workload
    for r in ok:
        if not r["workload"].startswith("images") or r["method"] != "ttach-d4":
            continue
        b, n, wl = r["batch"], r["n_factors"], r["workload"]
        multi = idx.get((wl, n, b, "multiequitune[chunk=auto]")) or idx.get((wl, n, b, "multiequitune"))
        if multi is None:
            continue
        speed = r["time_ms_median"] / multi["time_ms_median"]
        err = multi.get("error")
        err_ok = err is not None and err <= INVARIANCE_GOAL
        err_text = _fmt(err, ".1e") or "not measured"
        goal = TTACH_GOALS.get(b)
        peer_cl = idx.get((wl, n, b, "ttach-d4[channels_last]"))
        extra = (
            f"; vs ttach on the same channels-last model {peer_cl['time_ms_median'] / multi['time_ms_median']:.2f}x"
            if peer_cl
            else ""
        )
        out.append(
            _target(
                "faster than ttach D4",
                _cell(r),
                f">= {goal}x, error <= {INVARIANCE_GOAL:g}" if goal else "-",
                speed,
                (speed >= goal and err_ok) if goal else None,
                f"ttach-d4 {r['time_ms_median']:.1f} ms (error {_fmt(r.get('error'), '.1e') or 'not measured'}) vs "
                f"{multi['method']} {multi['time_ms_median']:.1f} ms (error {err_text})" + extra,
            )
        )
    # 4. chunk_size bounds peak memory near the plain model's on the same rows per call
    peaks = _plain_peaks(records)
    for r in ok:
        if r.get("kind") not in ("equitune", "multiequitune") or r.get("chunk_size") in (None, "none"):
            continue
        if r.get("peak_mem_mb") is None or r.get("rows_per_call") is None:
            continue
        rows = round(r["rows_per_call"])
        ref_mb = peaks.get((r["workload"], rows))
        if ref_mb is None or ref_mb <= 0:
            continue
        ratio = r["peak_mem_mb"] / ref_mb
        fixed = r["chunk_size"] != "auto"
        out.append(
            _target(
                "chunk_size bounds peak memory",
                _cell(r),
                f"<= {CHUNK_MEMORY_GOAL}x plain on {rows} rows" if fixed else "-",
                ratio,
                ratio <= CHUNK_MEMORY_GOAL if fixed else None,
                f"{r['method']} peak {r['peak_mem_mb']:.0f} MB at {rows} rows per call; plain model on {rows} rows "
                f"{ref_mb:.0f} MB; unchunked: " + _unchunked_peak(idx, r),
            )
        )
    return out + evaluate_generation_targets(generation)


def _gen_cell(r: Rec) -> str:
    return f"generation {str(r['model']).split(' (')[0]} N={r['n_factors']} B={r['batch']}"


def _is_smollm2(r: Rec) -> bool:
    from multiequi.hf import SMOLLM2_NAME

    return str(r.get("model")) == SMOLLM2_NAME


def evaluate_generation_targets(records: Sequence[Rec]) -> list[dict[str, Any]]:
    """The generation workload's targets, each one-sided (faster than needed is met).

    1. Multi-equitune's ms per new token within :data:`GEN_FLOOR_GOAL` x the plain model generating
       on the same ``Σ|G_i|·B`` rows with a cache (every batch; equitune against ``Π|G_i|·B`` rows
       for information).
    2. At least :data:`GEN_PEER_GOAL` x faster per new token than the predecessor's loop at
       ``N = 3`` (other ``N`` for information), with the wrapper's error at most :data:`GEN_ERROR_GOAL`.
    3. The wrapper's own cost per decoding step below :data:`GEN_OWN_COST_GOAL` of a step of the
       SmolLM2 stand-in at batch 1 (other models for information).
    """
    ok = [r for r in records if r.get("status") == "ok" and r.get("ms_per_token") is not None]
    idx = {(r["model"], r["n_factors"], r["batch"], r["method"]): r for r in ok}
    out: list[dict[str, Any]] = []
    for r in ok:  # 1. against the plain model on the same rows
        if r.get("kind") not in ("multiequitune", "equitune"):
            continue
        k = r["sum_order"] if r["kind"] == "multiequitune" else r["product_order"]
        ref = idx.get((r["model"], r["n_factors"], r["batch"], f"plain x{k}"))
        if ref is None or not ref["ms_per_token"] or ref["ms_per_token"] <= 0:
            continue
        ratio = r["ms_per_token"] / ref["ms_per_token"]
        goal = r["kind"] == "multiequitune"
        first = (
            f"; first token {r['ttft_ms']:.1f} vs {ref['ttft_ms']:.1f} ms"
            if r.get("ttft_ms") is not None and ref.get("ttft_ms") is not None
            else ""
        )
        out.append(
            _target(
                "generation: ms/token vs plain on the same rows" + ("" if goal else " (equitune, information)"),
                _gen_cell(r),
                f"<= {GEN_FLOOR_GOAL}x plain on {k}B rows" if goal else "-",
                ratio,
                ratio <= GEN_FLOOR_GOAL if goal else None,
                f"{r['method']} {r['ms_per_token']:.1f} ms/token; plain x{k} (cache) {ref['ms_per_token']:.1f} "
                f"ms/token{first}",
            )
        )
    for r in ok:  # 2. against the predecessor's loop
        if r.get("kind") != "peer":
            continue
        multi = idx.get((r["model"], r["n_factors"], r["batch"], "multiequitune"))
        if multi is None or multi["ms_per_token"] <= 0:
            continue
        speed = r["ms_per_token"] / multi["ms_per_token"]
        applies = r["n_factors"] == GEN_PEER_FACTORS
        err = multi.get("error")
        err_ok = err is not None and err <= GEN_ERROR_GOAL
        out.append(
            _target(
                "generation: faster than the predecessor's loop",
                _gen_cell(r),
                f">= {GEN_PEER_GOAL:g}x, error <= {GEN_ERROR_GOAL:g}" if applies else "-",
                speed,
                (speed >= GEN_PEER_GOAL and err_ok) if applies else None,
                f"equigpt2-loop {r['ms_per_token']:.1f} ms/token "
                f"(error {_fmt(r.get('error'), '.1e') or 'not measured'}) vs multiequitune "
                f"{multi['ms_per_token']:.1f} ms/token (error {_fmt(err, '.1e') or 'not measured'})",
            )
        )
    for r in ok:  # 3. the wrapper's own cost per decoding step
        if r.get("kind") not in ("multiequitune", "equitune") or r["batch"] != 1 or r.get("wrapper_overhead") is None:
            continue
        applies = _is_smollm2(r) and str(r.get("device", "cpu")).startswith("cpu")
        step, model = r["ms_per_token"], r.get("model_ms_per_token")
        out.append(
            _target(
                "generation: wrapper's own cost per step",
                _gen_cell(r) + f" {r['method']}",
                f"< {GEN_OWN_COST_GOAL:.0%} of a step" if applies else "-",
                r["wrapper_overhead"],
                r["wrapper_overhead"] < GEN_OWN_COST_GOAL if applies else None,
                f"{r['method']} {step:.2f} ms/token, {model:.2f} of it inside the model: "
                f"{step - model:.2f} ms outside ({100 * r['wrapper_overhead']:.1f}%)",
            )
        )
    return out


def _unchunked_peak(idx: Mapping[tuple, Rec], r: Rec) -> str:
    base = "equitune-product" if r["kind"] == "equitune" else "multiequitune"
    u = idx.get((r["workload"], r["n_factors"], r["batch"], base))
    return f"{u['peak_mem_mb']:.0f} MB" if u and u.get("peak_mem_mb") is not None else "not measured"


def stamp(meta: Mapping[str, Any]) -> str:
    """One line naming the machine, torch, the device and the load average of a run."""
    m = meta.get("machine", {})
    dev = m.get("gpu") or m.get("device", "cpu")
    return (
        f"{m.get('processor', '?')}, {m.get('cpu_count', '?')} cores, torch {m.get('torch', '?')} "
        f"({m.get('torch_threads', '?')} threads), device {dev}; load average before/after "
        f"{meta.get('load_average_before')} / {meta.get('load_average_after')}"
    )


def _fmt(v: Any, spec: str) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v != v:  # NaN
        return "nan"
    return format(v, spec)


def display_rows(records: Sequence[Rec]) -> list[dict[str, str]]:
    """Records as table rows with readable numbers (skipped and failed cells keep their reason)."""
    rows = []
    for r in records:
        status = r.get("status", "ok")
        rows.append(
            {
                "workload": r["workload"],
                "N": str(r["n_factors"]),
                "B": str(r["batch"]),
                "method": r["method"],
                "copies": _fmt(r.get("copies"), "g"),
                "calls": _fmt(r.get("calls"), "d"),
                "rows/call": _fmt(r.get("rows_per_call"), ".0f"),
                "ms median": _fmt(r.get("time_ms_median"), ".1f"),
                "ms min-max": "" if r.get("time_ms_min") is None else f"{r['time_ms_min']:.1f}-{r['time_ms_max']:.1f}",
                "model ms": _fmt(r.get("model_ms_median"), ".1f"),
                "peak MB": _fmt(r.get("peak_mem_mb"), ".0f"),
                "error": _fmt(r.get("error"), ".1e"),
                "n": str(r.get("repeats", "")),
                "status": status if not r.get("note") else f"{status}: {r['note']}",
            }
        )
    return rows


TABLE_COLUMNS = [
    "workload",
    "N",
    "B",
    "method",
    "copies",
    "calls",
    "rows/call",
    "ms median",
    "ms min-max",
    "model ms",
    "peak MB",
    "error",
    "n",
    "status",
]


def targets_table(targets: Sequence[Mapping[str, Any]]) -> str:
    """The targets' verdicts as a markdown table."""
    rows = [
        {
            "target": t["target"],
            "cell": t["cell"],
            "goal": t["goal"],
            "measured": _fmt(t["measured"], ".3f"),
            "met": {True: "yes", False: "NO", None: "info"}[t["met"]],
            "detail": t["detail"],
        }
        for t in targets
    ]
    return markdown_table(rows, ["target", "cell", "goal", "measured", "met", "detail"])


def format_report(records: Sequence[Rec], meta: Mapping[str, Any], targets: Sequence[Mapping[str, Any]]) -> str:
    """The run as markdown: one table per workload, then the targets."""
    out = [f"# multiequi bench ({'quick' if meta.get('config', {}).get('quick') else 'full'})", ""]
    out.append(f"Machine: {stamp(meta)}.")
    if meta.get("command"):
        out.append(f"Command: `{meta['command']}`")
    out.append(f"Peak memory: {meta.get('peak_memory_method')}. Wall time {meta.get('wall_time_s')} s.")
    out.append("")
    same = 0
    for wl in dict.fromkeys(r["workload"] for r in records):
        sub = [r for r in records if r["workload"] == wl]
        labels = sorted({str(r.get("model")) for r in sub})
        shown = [r for r in sub if not _same_as_unchunked(r)]
        same += len(sub) - len(shown)
        out += [f"## {wl}: {'; '.join(labels)}", "", markdown_table(display_rows(shown), TABLE_COLUMNS), ""]
    if same:
        out += [
            f"({same} chunk_size variants would run exactly like chunk_size=None at their cell, one call holding the "
            "whole batch; records.json lists them as skipped with that reason.)",
            "",
        ]
    scan = meta.get("scan_throughput")
    if scan:
        from ._scan import format_scan_throughput

        out += ["## scan: SCAN-II fine-tuning and decoding throughput", "", format_scan_throughput(scan), ""]
    gen = meta.get("generation")
    if gen:
        from ._generation import format_generation

        out += ["## generation: greedy decoding through EquivariantLM", "", format_generation(gen), ""]
    out += ["## Targets", "", targets_table(targets) if targets else "(no target applies to these cells)", ""]
    out.append(
        "copies: rows through the model per example (CopyCounter); calls: model calls per batch; model ms: time "
        "inside the model's forward; error: max relative deviation from invariance (images, all 8 elements of D4) "
        "or equivariance of the vocabulary logits (tokens, sampled product elements) on the first examples of the "
        "batch; n: timed repeats after warm-up."
    )
    return "\n".join(out)


def write_outputs(
    records: Sequence[Rec],
    meta: Mapping[str, Any],
    targets: Sequence[Mapping[str, Any]],
    out_dir: str | os.PathLike[str],
    plots: bool = True,
) -> dict[str, Path]:
    """Write ``records.json``, ``table.{md,csv,json}``, ``targets.json``, ``meta.json``, ``report.md``, the
    plots and, when the SCAN workload ran, ``scan.json``; when the generation workload ran, ``generation.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    paths["records"] = atomic_write_json(out / "records.json", [dict(r) for r in records])
    paths.update(
        {f"table_{k}": v for k, v in write_tables(display_rows(records), out / "table", TABLE_COLUMNS).items()}
    )
    paths["targets"] = atomic_write_json(out / "targets.json", [dict(t) for t in targets])
    paths["meta"] = atomic_write_json(out / "meta.json", dict(meta))
    if meta.get("scan_throughput"):
        paths["scan"] = atomic_write_json(out / "scan.json", meta["scan_throughput"])
    if meta.get("generation"):
        paths["generation"] = atomic_write_json(out / "generation.json", meta["generation"])
    paths["report"] = atomic_write_text(out / "report.md", format_report(records, meta, targets) + "\n")
    if plots:
        paths.update(make_plots(records, meta, out))
    return paths


_CURVES = ["plain", "tta-loop", "equitune-product", "multiequitune"]


def make_plots(records: Sequence[Rec], meta: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """PNG plots: time and copies against N (tokens), time per image (images), cost per row against rows."""
    note = stamp(meta)
    paths: dict[str, Path] = {}
    tok = [dict(r) for r in records if r["workload"] == "tokens" and _ok(r) and r["method"] in _CURVES]
    if tok:
        label = str(tok[0].get("model", "")).split(",")[0]
        paths["plot_tokens_time"] = line_plot(
            tok,
            "n_factors",
            "time_ms_median",
            "method",
            out / "bench_tokens_time.png",
            title=f"{label}: time per batch against N factors (C2, C3, ...)",
            xlabel="N factors",
            ylabel="ms per batch (median)",
            note=note + "\nmissing points: skipped cells (time budget or memory cap), see the table",
            logy=True,
            hue_order=_CURVES,
        )
        paths["plot_tokens_copies"] = line_plot(
            tok,
            "n_factors",
            "copies",
            "method",
            out / "bench_tokens_copies.png",
            title="copies through the model per example: product vs sum",
            xlabel="N factors",
            ylabel="copies per example",
            note=note,
            logy=True,
            hue_order=_CURVES,
        )
    image_names = [n for n in dict.fromkeys(r["workload"] for r in records) if n.startswith("images")]
    for name in (n for n in image_names if not n.endswith("-rows")):
        img = [dict(r) for r in records if r["workload"] == name and _ok(r) and r.get("kind") != "reference"]
        for r in img:
            r["ms_per_image"] = r["time_ms_median"] / r["batch"]
            r["batch_label"] = f"batch {r['batch']}"
        if img:
            paths[f"plot_{name}_time"] = grouped_bars(
                img,
                "batch_label",
                "method",
                "ms_per_image",
                out / f"bench_{name}_time.png",
                title=str(img[0].get("model", "")),
                ylabel="ms per image (median)",
                note=note,
            )
    rows = [dict(r) for r in records if r["workload"].endswith("-rows") and _ok(r)]
    for r in rows:
        r["ms_per_row"] = r["time_ms_median"] / r["batch"]
    if rows:
        paths["plot_rows"] = line_plot(
            rows,
            "batch",
            "ms_per_row",
            "method",
            out / "bench_images_rows.png",
            title="plain model: cost per image against rows per call",
            xlabel="rows per call",
            ylabel="ms per image (median)",
            note=note,
        )
    return paths
