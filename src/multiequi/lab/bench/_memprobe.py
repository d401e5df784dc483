"""The CPU memory pass in a fresh process: ``python -m multiequi.lab.bench._memprobe SPEC.json OUT.json``.

Peak resident memory is only honest in a process whose allocator has not yet kept freed blocks
on its heap: glibc serves new blocks from freed ones before it maps fresh memory, and those
freed-but-resident pages are not counted again, or counted in pieces, depending on what ran
before. This child fixes glibc's ``mmap`` threshold *before* anything is allocated (see
:mod:`multiequi.lab.bench._memory`), rebuilds the benchmark's default scenarios from the same
configuration (deterministic seeds), and measures each requested cell: one warm-up call, then
one call inside :class:`~multiequi.lab.bench.PeakMemory`.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

__all__ = ["main", "measure_call"]


def measure_call(fn: Callable[[], Any], device: str = "cpu") -> tuple[float | None, str]:
    """Peak memory (MiB) of ``fn()`` after one warm-up call, and how it was measured."""
    from ._memory import PeakMemory

    y = fn()
    del y
    with PeakMemory(device) as peak:
        y = fn()
    del y
    return peak.mb, peak.method


def _cells(cfg: Any, specs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    import torch

    from ._methods import build_methods
    from ._runner import default_scenarios

    scenarios = default_scenarios(cfg)
    out = []
    built: dict[int, dict[str, Any]] = {}
    rows_models: dict[str, Any] = {}
    with torch.inference_mode():
        for spec in specs:
            if spec["kind"] == "rows":
                w = next(s.workload for s in scenarios if s.workload.name == spec["workload"])
                fmt = torch.channels_last if spec["format"] == "channels_last" else torch.contiguous_format
                if spec["format"] not in rows_models:
                    rows_models[spec["format"]] = (
                        w.model
                        if spec["format"] == "channels_last"
                        # nn.Module.to(memory_format=...) is valid at runtime; torch's stubs lack it
                        else copy.deepcopy(w.model).to(memory_format=fmt)  # type: ignore[call-overload]
                    )
                model = rows_models[spec["format"]]
                x = w.make_inputs(spec["rows"]).contiguous(memory_format=fmt)
                mb, how = measure_call(cast(Callable[[], Any], lambda model=model, x=x: model(x)))
            else:
                sc = scenarios[spec["scenario"]]
                if spec["scenario"] not in built:
                    methods, _ = build_methods(sc.workload, sc.batch, cfg.chunk_sizes, ttach=cfg.ttach)
                    built[spec["scenario"]] = {m.name: m for m in methods}
                m = built[spec["scenario"]][spec["method"]]
                if spec.get("chunk_rows"):  # "auto": the rows per call the timed run chose
                    m.fn.chunk_size = int(spec["chunk_rows"])
                x = m.prepare(sc.workload.make_inputs(sc.batch * m.rows_factor))
                mb, how = measure_call(cast(Callable[[], Any], lambda m=m, x=x: m.fn(x)))
            out.append({**spec, "peak_mem_mb": mb, "peak_mem_method": how + ", fresh process"})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Read the spec, measure every cell, write the results."""
    from ._memory import exact_cpu_accounting

    exact_cpu_accounting()  # first, before anything is allocated
    import torch

    from ._runner import BenchConfig

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m multiequi.lab.bench._memprobe SPEC.json OUT.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as handle:
        spec = json.load(handle)
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    fields = dict(spec["config"])
    fields["chunk_sizes"] = tuple(fields["chunk_sizes"])
    for key in ("workloads", "image_batches", "token_factors", "rows_profile"):
        fields[key] = tuple(fields[key])
    cfg = BenchConfig(**fields)
    results = _cells(cfg, spec["cells"])
    with open(args[1], "w", encoding="utf-8") as handle:
        json.dump(results, handle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
