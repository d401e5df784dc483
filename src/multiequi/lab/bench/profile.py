"""Where the time of one benchmark cell goes: torch.profiler's top operators, inside vs outside
the model (``multiequi bench profile``).

    multiequi bench profile --workload tokens --factors 3 --method multiequitune
    multiequi bench profile --workload images --batch 32 --method multiequitune --chunk-size 8

This is the evidence behind the causes given in docs/benchmarks.md for targets the benchmark
misses: it times the method and the plain model on the same rows (the benchmark's own methods and
timing helper), splits the method's time into "inside the model" (forward hooks) and "outside"
(orbit, canonicalisation, g⁻¹ alignment, sorted sums, output symmetrisation), and lists the
operators that take the most self CPU time.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any, cast

import torch

from multiequi.lab.reporting import interleaved_times
from multiequi.symmetrize import ChunkSize

from ._methods import build_methods
from ._workloads import gpt2_model, image_workload, token_workload

__all__ = ["profile_cell"]


def profile_cell(
    workload: str = "tokens",
    *,
    factors: int = 3,
    token_model: str = "124m",
    batch: int = 1,
    method: str = "multiequitune",
    chunk_size: ChunkSize = None,
    repeats: int = 3,
    top: int = 12,
) -> str:
    """Profile one method on one cell; return the breakdown as text.

    ``workload`` is ``"images"`` (EfficientNet-Lite0) or ``"tokens"`` (GPT-2 ``token_model`` with
    ``factors`` word-swap factors); ``method`` a method name of the benchmark (``plain``,
    ``tta-loop``, ``equitune-product``, ``multiequitune``), with ``chunk_size`` picking its chunk
    variant.
    """
    if workload == "images":
        w = image_workload()
    elif workload == "tokens":
        w = token_workload(gpt2_model(token_model), factors, label=f"GPT-2 {token_model}")
    else:
        raise ValueError(f"workload must be 'images' or 'tokens', got {workload!r}")
    methods, _ = build_methods(w, batch, (None, chunk_size) if chunk_size is not None else (None,), ttach=False)
    name = method if chunk_size is None else f"{method}[chunk={chunk_size}]"
    by = {m.name: m for m in methods}
    if name not in by:
        raise ValueError(f"no method {name!r} at this cell; choose from {sorted(by)}")
    m = by[name]
    ref = by.get(f"plain x{m.expected_copies}") or by["plain"]
    x = m.prepare(w.make_inputs(batch))
    xr = ref.prepare(w.make_inputs(batch * ref.rows_factor))
    with torch.inference_mode():
        m.fn(x)  # warm-up
        ref.fn(xr)
        calls = [cast(Callable[[], Any], lambda: m.fn(x)), cast(Callable[[], Any], lambda: ref.fn(xr))]
        wall, inside = interleaved_times(calls, repeats, clocks=[m.counted, None])
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            m.fn(x)
    total, model = 1e3 * statistics.median(wall[0]), 1e3 * statistics.median(inside[0])
    lines = [
        f"{w.label}, batch {batch}: {name} ({m.expected_copies} copies per example)",
        f"  {name}: {total:.1f} ms per batch, {model:.1f} ms inside the model, {total - model:.1f} ms outside",
        f"  {ref.name} (the same rows, one call): {1e3 * statistics.median(wall[1]):.1f} ms",
        f"  torch {torch.__version__}, {torch.get_num_threads()} threads",
        "",
        prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top),
    ]
    return "\n".join(lines)
