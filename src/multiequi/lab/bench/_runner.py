"""The benchmark runner: time, count, check and measure every method on every workload cell.

A *scenario* is one workload at one batch size (for tokens, one number of factors ``N``). Its
methods are timed side by side: after their warm-up calls, repeat ``r`` times each method once,
in a rotating order, so that a change in the machine's load hits every method alike. Then each
method's invariance/equivariance error is measured on (the first examples of) the same batch.
Peak memory is measured last, in a separate pass (see :mod:`multiequi.lab.bench._memory`).

Cells that would exceed the time budget (predicted from the plain model's cost per row, then
from the warm-up) or the memory cap (predicted from the size of the model's output) are
recorded as ``skipped`` with the reason, never dropped.
"""

from __future__ import annotations

import copy
import gc
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import torch
from torch import Tensor

from multiequi.lab.reporting import interleaved_times, machine_info, summarize_times, timed_call
from multiequi.lab.reporting import progress as common_progress
from multiequi.symmetrize import model_output_tensor
from multiequi.testing import CopyCounter, equivariance_error

from ._memory import cpu_peak_supported, exact_cpu_accounting
from ._methods import ChunkSize, Method, build_methods, chunk_label
from ._workloads import Workload

__all__ = ["BenchConfig", "BenchResult", "Scenario", "default_scenarios", "load_average", "run_bench"]

#: Fields every record has (the ``--json`` contract).
RECORD_FIELDS = (
    "workload",
    "method",
    "n_factors",
    "batch",
    "copies",
    "time_ms_median",
    "time_ms_min",
    "time_ms_max",
    "peak_mem_mb",
    "error",
    "device",
)


_MAX_REPEATS = 100


@dataclass
class BenchConfig:
    """Settings of one benchmark run (``multiequi bench --help`` documents each).

    ``workloads`` may also name ``"generation"`` (:func:`~multiequi.lab.bench.generation_bench`, the
    ``gen_*`` fields); the ``multiequi bench`` command runs it by default, this class's default
    leaves it out for programmatic runs (``multiequi bench gpu``).
    """

    workloads: tuple[str, ...] = ("images", "tokens", "scan")
    image_batches: tuple[int, ...] = (1, 32)
    image_size: int = 224
    channels_last: bool = True
    pretrained: bool = True
    token_model: str = "124m"
    token_factors: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    token_batch: int = 1
    seq_len: int = 64
    chunk_sizes: tuple[ChunkSize, ...] = (None, "auto", 8)
    repeats: int = 5
    min_time_s: float = 2.0
    warmup: int = 1
    cell_budget_s: float = 120.0
    max_mem_gb: float | None = None
    error_examples: int = 4
    error_elements: int = 3
    memory: bool = True
    rows_profile: tuple[int, ...] = (1, 2, 4, 6, 8, 16, 32, 64)
    ttach: bool = True
    scan_cell: str = "gru"
    scan_batch: int = 64
    scan_steps: int = 10
    scan_repeats: int = 5
    gen_models: tuple[str, ...] = ("gpt2", "smollm2")
    gen_factors: tuple[int, ...] = (1, 2, 3, 4)
    gen_batches: tuple[int, ...] = (1, 16)
    gen_new_tokens: int = 15
    gen_prompt_len: int = 8
    device: str = "cpu"
    progress: bool = True
    quick: bool = False

    @classmethod
    def quick_preset(cls, **overrides: Any) -> BenchConfig:
        """The ``--quick`` settings: small batches, a tiny GPT-2, 3 repeats, a 20 s cell budget; generation
        with the tiny GPT-2 only, N = 1, 2, batches 1 and 4, 4 new tokens."""
        base: dict[str, Any] = {
            "image_batches": (1, 4),
            "token_model": "tiny",
            "repeats": 3,
            "min_time_s": 1.0,
            "cell_budget_s": 20.0,
            "rows_profile": (1, 6, 32),
            "error_examples": 2,
            "scan_steps": 3,
            "scan_repeats": 2,
            "gen_models": ("gpt2",),
            "gen_factors": (1, 2),
            "gen_batches": (1, 4),
            "gen_new_tokens": 4,
            "quick": True,
        }
        base.update(overrides)
        return cls(**base)


@dataclass
class Scenario:
    """One workload at one batch size."""

    workload: Workload
    batch: int


@dataclass
class BenchResult:
    """Records (one per method and cell), the targets' verdicts, and how the run was made."""

    records: list[dict[str, Any]]
    meta: dict[str, Any]
    targets: list[dict[str, Any]] = field(default_factory=list)


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (``None`` where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _available_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def default_scenarios(cfg: BenchConfig) -> list[Scenario]:
    """The scenarios of ``cfg``: EfficientNet-Lite0 at each image batch, GPT-2 at each ``N``."""
    from ._workloads import gpt2_model, image_workload, token_workload

    out: list[Scenario] = []
    device = torch.device(cfg.device)
    if "images" in cfg.workloads:
        w = image_workload(size=cfg.image_size, channels_last=cfg.channels_last, pretrained=cfg.pretrained)
        w.model.to(device)
        out += [Scenario(w, b) for b in cfg.image_batches]
    if "tokens" in cfg.workloads:
        model = gpt2_model(cfg.token_model, cfg.seq_len).to(device)
        label = f"GPT-2 {cfg.token_model} (random weights)"
        for n in cfg.token_factors:
            tw = token_workload(model, n, cfg.seq_len, error_elements=cfg.error_elements, label=label)
            out.append(Scenario(tw, cfg.token_batch))
    return out


def _record(w: Workload, m: Method | None, name: str, batch: int, device: str, **values: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "workload": w.name,
        "method": name,
        "n_factors": w.n_factors,
        "batch": batch,
        "copies": None,
        "time_ms_median": None,
        "time_ms_min": None,
        "time_ms_max": None,
        "peak_mem_mb": None,
        "error": None,
        "device": device,
        "status": "ok",
        "note": "",
        "kind": m.kind if m else None,
        "expected_copies": m.expected_copies if m else None,
        "chunk_size": chunk_label(m.chunk_size) if m and m.kind in ("equitune", "multiequitune") else None,
        "calls": None,
        "rows_per_call": None,
        "model_ms_median": None,
        "repeats": 0,
        "sum_order": w.sum_order,
        "product_order": w.product_order,
        "model": w.label,
    }
    rec.update(values)
    return rec


@dataclass
class _Cell:
    """Timing state of one method in one scenario."""

    method: Method
    x: Tensor
    record: dict[str, Any]
    times: list[float] = field(default_factory=list)
    model_times: list[float] = field(default_factory=list)
    est: float = 0.0
    reps: int = 0
    spent: float = 0.0
    spec: dict[str, Any] = field(default_factory=dict)


def _time_fields(times: Sequence[float]) -> dict[str, Any]:
    """A cell's timing fields: median, min and max in ms, the repeats and every repeat's time."""
    s = summarize_times(times)
    return {
        "time_ms_median": s["median"],
        "time_ms_min": s["min"],
        "time_ms_max": s["max"],
        "repeats": len(times),
        "times_ms": [round(1e3 * t, 3) for t in times],
    }


def _describe_error(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".replace("\n", " ")
    return text[:200]


def _prediction(m: Method, batch: int, per_row_s: float, out_bytes_per_row: float) -> tuple[float, float]:
    """(seconds, bytes) one call of ``m`` is predicted to need, from the plain model's costs.

    Memory counts the stacked outputs only: once for references, five times for the wrappers
    (outputs, aligned copies, sorted values, int64 sort indices), three batches for the loops.
    """
    rows = m.expected_copies * batch
    mem_factor = {"reference": 1.0, "equitune": 5.0, "multiequitune": 5.0}.get(m.kind)
    mem = rows * out_bytes_per_row * mem_factor if mem_factor else 3 * batch * out_bytes_per_row
    return rows * per_row_s, mem


def _time_scenario(
    sc: Scenario, cfg: BenchConfig, device: torch.device, bar: Any, max_mem_bytes: float
) -> list[tuple[_Cell | None, dict[str, Any]]]:
    w, batch = sc.workload, sc.batch
    methods, pre_skipped = build_methods(w, batch, cfg.chunk_sizes, ttach=cfg.ttach)
    dev = str(device)
    out: list[tuple[_Cell | None, dict[str, Any]]] = []
    for name, reason in pre_skipped:
        out.append((None, _record(w, None, name, batch, dev, status="skipped", note=reason)))
    base = w.make_inputs(batch).to(device)
    cells: list[_Cell] = []
    per_row_s, out_bytes = 0.0, 0.0
    skip_units = 3 if cfg.memory else 2  # progress units of a cell: warm-up, error, memory
    for m in methods:
        rec = _record(w, m, m.name, batch, dev)
        bar.set_description(f"{w.name} N={w.n_factors} B={batch} {m.name}")
        raw = base if m.rows_factor == 1 else w.make_inputs(batch * m.rows_factor).to(device)
        x = m.prepare(raw)
        if m.kind != "plain":
            est_t, est_mem = _prediction(m, batch, per_row_s, out_bytes)
            skip_note: str | None = None
            if est_t * (1 + cfg.warmup) > cfg.cell_budget_s:
                skip_note = (
                    f"predicted {est_t:.1f} s per call (plain model's cost per row x rows) "
                    f"x {1 + cfg.warmup} calls > cell budget {cfg.cell_budget_s:g} s"
                )
            elif est_mem > max_mem_bytes:
                skip_note = (
                    f"predicted {est_mem / 2**30:.1f} GiB of stacked outputs > memory cap "
                    f"{max_mem_bytes / 2**30:.1f} GiB"
                )
            if skip_note is not None:  # recorded with the prediction, never dropped
                rec.update(status="skipped", note=skip_note)
                out.append((None, rec))
                bar.update(skip_units)
                continue
        cell = _Cell(m, x, rec)
        try:
            n_warm = cfg.warmup + (1 if m.chunk_size == "auto" or m.kind == "plain" else 0)  # "auto" tunes first
            for i in range(max(1, n_warm)):
                with CopyCounter(m.counted) as counter:
                    dt, y = timed_call(cast(Callable[[], Any], lambda m=m, x=x: m.fn(x)), device)
                cell.spent += dt
                cell.est = dt
                if i == 0 and m.kind == "plain":
                    t = model_output_tensor(y)
                    out_bytes = t.numel() * t.element_size() / batch
                del y
            rec.update(
                copies=counter.rows / batch,
                calls=counter.calls,
                rows_per_call=counter.rows / max(counter.calls, 1),
            )
            if m.kind == "plain":
                per_row_s = cell.est / batch
        except (RuntimeError, MemoryError) as err:
            rec.update(status="failed", note=_describe_error(err))
            out.append((None, rec))
            bar.update(skip_units)
            continue
        if cell.est > cfg.cell_budget_s and m.kind != "plain":  # the plain model is always measured
            rec.update(
                status="skipped",
                note=f"one call took {cell.est:.1f} s > cell budget {cfg.cell_budget_s:g} s (warm-up, not timed)",
            )
            out.append((None, rec))
            bar.update(skip_units)
            continue
        cells.append(cell)
        out.append((cell, rec))
        bar.update()

    # the repeats each cell can afford within its budget (warm-up included; the error check is extra)
    err_rows = min(batch, cfg.error_examples)
    for c in cells:
        left = cfg.cell_budget_s - c.spent
        est = max(c.est, 1e-9)
        want = max(cfg.repeats, min(_MAX_REPEATS, math.ceil(cfg.min_time_s / est)))
        c.reps = max(1, min(want, math.floor(left / est)))

    # timed repeats, interleaved: round r runs every cell once, in an order rotated by r
    wall, inside = interleaved_times(
        [cast(Callable[[], Any], lambda c=c: c.method.fn(c.x)) for c in cells],
        [c.reps for c in cells],
        device,
        clocks=[c.method.counted for c in cells],
    )
    for c, times, model_times in zip(cells, wall, inside, strict=True):
        c.times, c.model_times = times, model_times

    # invariance / equivariance error on the first examples of the same batch
    elements = w.error_element_list()
    for c in cells:
        m = c.method
        c.record.update(
            _time_fields(c.times),
            model_ms_median=summarize_times(c.model_times)["median"] if c.model_times else None,
        )
        if m.kind != "reference":
            bar.set_description(f"{w.name} N={w.n_factors} B={batch} error {m.name}")

            def f(z: Tensor, m: Method = m) -> Any:
                return m.fn(m.prepare(z))

            try:
                # one group (the product): equivariance_error returns a float, not a list
                eq_err = cast(float, equivariance_error(f, w.product, base[:err_rows], w.output, elements=elements))
                c.record.update(error=float(eq_err), error_examples=err_rows, error_elements=elements or "all")
            except (RuntimeError, MemoryError) as exc:
                c.record.update(note=(c.record["note"] + f" error not measured: {_describe_error(exc)}").strip())
        bar.update()
    return out


def _rows_profile(w: Workload, rows: Sequence[int], cfg: BenchConfig, device: torch.device, bar: Any) -> list[Any]:
    """The plain model at ``R`` rows per call, channels-last and contiguous: cost per row against R."""
    variants = [("channels_last", w.model, torch.channels_last)] if w.extra.get("channels_last") else []
    # nn.Module.to(memory_format=...) is valid at runtime; torch's stubs lack it
    plain = copy.deepcopy(w.model).to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    variants.append(("contiguous", plain, torch.contiguous_format))
    cells: list[tuple[_Cell, Any]] = []
    dev = str(device)
    for fmt, model, mf in variants:
        for r in rows:
            x = w.make_inputs(r).to(device).contiguous(memory_format=mf)
            m = Method(
                f"plain[{fmt}]",
                "rows",
                model,
                model,
                cast(Callable[[Tensor], Tensor], lambda z, mf=mf: z.contiguous(memory_format=mf)),
                1,
            )
            rec = _record(w, m, m.name, r, dev, workload=f"{w.name}-rows", n_factors=0, copies=1.0, calls=1)
            rec["rows_per_call"] = r
            cell = _Cell(m, x, rec, spec={"kind": "rows", "workload": w.name, "format": fmt, "rows": r})
            for _ in range(max(1, cfg.warmup)):
                dt, y = timed_call(cast(Callable[[], Any], lambda m=model, x=x: m(x)), device)
                del y
                cell.est = dt
            est = max(dt, 1e-9)
            want = max(cfg.repeats, min(_MAX_REPEATS, math.ceil(cfg.min_time_s / est)))
            cell.reps = max(1, min(want, math.floor(cfg.cell_budget_s / 4 / est)))
            cells.append((cell, model))
            bar.update()
    wall, _ = interleaved_times(
        [cast(Callable[[], Any], lambda model=model, c=c: model(c.x)) for c, model in cells],
        [c.reps for c, _ in cells],
        device,
    )
    for (c, _), times in zip(cells, wall, strict=True):
        c.times = times
    out = []
    for c, _ in cells:
        c.record.update(_time_fields(c.times))
        out.append((c, c.record))
    return out


def _memory_in_process(cells: Sequence[_Cell], device: torch.device, bar: Any) -> str:
    from ._memprobe import measure_call

    method = "none"
    if device.type == "cpu":
        exact_cpu_accounting()
    gc.collect()  # once: tensors are freed by reference counting, a collection per cell costs seconds
    for c in cells:
        bar.set_description(f"memory {c.record['workload']} B={c.record['batch']} {c.method.name}")
        try:
            mb, how = measure_call(cast(Callable[[], Any], lambda c=c: c.method.fn(c.x)), str(device))
            method = how if device.type == "cuda" else how + ", in-process"
            c.record.update(peak_mem_mb=mb, peak_mem_method=method)
        except (RuntimeError, MemoryError) as err:
            c.record["note"] = (c.record["note"] + f" memory not measured: {_describe_error(err)}").strip()
        bar.update()
    return method


def _memory_fresh_process(cells: Sequence[_Cell], cfg: BenchConfig, bar: Any, say: Callable[[str], None]) -> str:
    """The CPU memory pass in a fresh process (see :mod:`multiequi.lab.bench._memprobe`)."""
    import json
    import subprocess
    import tempfile

    bar.set_description(f"memory pass: {len(cells)} cells in a fresh process")
    spec = {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "threads": torch.get_num_threads(),
        "cells": [c.spec for c in cells],
    }
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    with tempfile.TemporaryDirectory(prefix="multiequi-mem-") as tmp:
        src, dst = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        with open(src, "w", encoding="utf-8") as handle:
            json.dump(spec, handle)
        proc = subprocess.run(
            [sys.executable, "-m", "multiequi.lab.bench._memprobe", src, dst], env=env, capture_output=True, text=True
        )
        if proc.returncode != 0 or not os.path.exists(dst):
            reason = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1][:200]
            say(f"memory pass failed: {reason}")
            for c in cells:
                c.record["note"] = (c.record["note"] + f" memory not measured: {reason}").strip()
            bar.update(len(cells))
            return f"failed: {reason}"
        with open(dst, encoding="utf-8") as handle:
            results = json.load(handle)
    method = "none"
    for c, res in zip(cells, results, strict=True):
        c.record.update(peak_mem_mb=res["peak_mem_mb"], peak_mem_method=res["peak_mem_method"])
        method = res["peak_mem_method"]
    bar.update(len(cells))
    return method


def run_bench(
    cfg: BenchConfig,
    scenarios: Sequence[Scenario] | None = None,
    log: Callable[[str], None] | None = None,
    command: str | None = None,
) -> BenchResult:
    """Run the benchmark; return every record, the targets' verdicts and the run's metadata.

    Parameters
    ----------
    cfg : BenchConfig
    scenarios : list of Scenario, optional
        Default: :func:`default_scenarios` (builds EfficientNet-Lite0 and GPT-2).
    log : callable, optional
        Receives one-line messages (default: stderr).
    command : str, optional
        The command line that made the run, stored with the results so it can be rerun.
    """
    from ._report import evaluate_targets

    say = log or (lambda s: print(s, file=sys.stderr))
    device = torch.device(cfg.device)
    load_before = load_average()
    started = time.time()
    fresh_process = scenarios is None  # the default scenarios can be rebuilt in a fresh process
    scenarios = list(scenarios) if scenarios is not None else default_scenarios(cfg)
    avail = _available_gb()
    max_mem = cfg.max_mem_gb if cfg.max_mem_gb is not None else (0.5 * avail if avail else 8.0)
    if device.type == "cuda":
        max_mem = cfg.max_mem_gb or 0.5 * torch.cuda.get_device_properties(device).total_memory / 2**30
    say(
        f"multiequi bench: {len(scenarios)} scenarios on {device}, {torch.get_num_threads()} threads, "
        f"load average {load_before}, memory cap {max_mem:.1f} GiB"
    )
    per_scenario = [len(build_methods(s.workload, s.batch, cfg.chunk_sizes, cfg.ttach)[0]) for s in scenarios]
    image_w = next((s.workload for s in scenarios if s.workload.name == "images"), None)
    n_rows = len(cfg.rows_profile) * (2 if image_w is not None and image_w.extra.get("channels_last") else 1)
    n_rows = n_rows if image_w is not None else 0
    total = sum(per_scenario) * (3 if cfg.memory else 2) + n_rows * (2 if cfg.memory else 1)
    bar = common_progress(total=total, desc="bench", enabled=cfg.progress, unit="cell")
    pairs: list[tuple[_Cell | None, dict[str, Any]]] = []
    with torch.inference_mode():
        for i, sc in enumerate(scenarios):
            for cell, rec in _time_scenario(sc, cfg, device, bar, max_mem * 2**30):
                if cell is not None:
                    cell.spec = {"kind": "method", "scenario": i, "method": cell.method.name}
                    if cell.method.chunk_size == "auto" and rec.get("calls"):
                        # the fresh process reuses the examples per call "auto" chose here
                        per = math.ceil(sc.batch / rec["calls"])
                        cell.spec["chunk_rows"] = per * cell.method.expected_copies
                pairs.append((cell, rec))
        if image_w is not None and cfg.rows_profile:
            pairs += _rows_profile(image_w, cfg.rows_profile, cfg, device, bar)
        mem_method = "not measured"
        cells = [c for c, _ in pairs if c is not None]
        if cfg.memory and device.type == "cpu" and not cpu_peak_supported():
            say("peak memory: this OS offers no resettable high-water mark; reported as null")
        elif cfg.memory and device.type == "cpu" and fresh_process and cells:
            mem_method = _memory_fresh_process(cells, cfg, bar, say)
        elif cfg.memory and cells:
            mem_method = _memory_in_process(cells, device, bar)
    bar.close()
    scan = None
    if "scan" in cfg.workloads:  # training steps need gradients: outside inference mode
        from ._scan import scan_throughput

        say("multiequi bench: SCAN-II fine-tuning and decoding throughput")
        scan = scan_throughput(
            cfg.scan_cell,
            cfg.scan_batch,
            cfg.scan_steps,
            cfg.scan_repeats,
            device=cfg.device,
            show_progress=cfg.progress,
        )
    generation: dict[str, Any] | None = None
    if "generation" in cfg.workloads:  # last: its memory pass may fix glibc's mmap threshold for the process
        from ._generation import generation_bench

        say("multiequi bench: generation (greedy decoding with a cache, against its floors and the predecessor's loop)")
        generation = generation_bench(
            cfg.gen_models,
            cfg.token_model,
            cfg.gen_factors,
            cfg.gen_batches,
            prompt_len=cfg.gen_prompt_len,
            new_tokens=cfg.gen_new_tokens,
            repeats=cfg.repeats,
            min_time_s=cfg.min_time_s,
            warmup=cfg.warmup,
            cell_budget_s=cfg.cell_budget_s,
            error_examples=cfg.error_examples,
            error_elements=cfg.error_elements,
            memory=cfg.memory,
            exact_memory=fresh_process,
            device=cfg.device,
            show_progress=cfg.progress,
            log=say,
        )
    records = [rec for _, rec in pairs]
    meta = {
        "command": command,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "machine": machine_info(str(device)),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "wall_time_s": round(time.time() - started, 1),
        "peak_memory_method": mem_method,
        "memory_cap_gb": round(max_mem, 2),
        "scenarios": sorted({f"{s.workload.name}: {s.workload.label.split(', ')[0]}" for s in scenarios}),
        "scan_throughput": scan,
        "generation": generation,
    }
    if device.type == "cuda":
        meta["cuda"] = {
            "tf32_conv": torch.backends.cudnn.allow_tf32,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
        }
    result = BenchResult(records, meta)
    result.targets = evaluate_targets(records, generation=generation["records"] if generation else ())
    return result
