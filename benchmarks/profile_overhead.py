"""Where the time of one benchmark cell goes: torch.profiler's top operators, inside vs outside the model.

    python benchmarks/profile_overhead.py --workload tokens --factors 3 --method multiequitune
    python benchmarks/profile_overhead.py --workload images --batch 32 --method multiequitune --chunk-size 8

This is the evidence behind the causes given in docs/benchmarks.md for targets the benchmark misses:
it times the method and the plain model on the same rows, splits the method's time into "inside the
model" (forward hooks) and "outside" (orbit, canonicalisation, g⁻¹ alignment, sorted sums, output
symmetrisation), and prints the operators that take the most self CPU time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "src").is_dir() and str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from multiequi.bench import ModelClock, build_methods, gpt2_model, image_workload, token_workload  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Profile one method on one cell and print the breakdown."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=["images", "tokens"], default="tokens")
    p.add_argument("--factors", type=int, default=3, help="token workload: number of factors N (default 3)")
    p.add_argument("--token-model", choices=["124m", "tiny"], default="124m")
    p.add_argument("--batch", type=int, default=1, help="examples per batch (default 1)")
    p.add_argument(
        "--method", default="multiequitune", help="a method name of the benchmark, e.g. equitune-product, tta-loop"
    )
    p.add_argument("--chunk-size", default=None, help="pick the method's chunk variant: 'auto' or an integer")
    p.add_argument("--repeats", type=int, default=3, help="profiled calls after one warm-up (default 3)")
    p.add_argument("--top", type=int, default=12, help="operators to list (default 12)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.workload == "images":
        w = image_workload()
    else:
        w = token_workload(gpt2_model(args.token_model), args.factors, label=f"GPT-2 {args.token_model}")
    chunk = None if args.chunk_size is None else ("auto" if args.chunk_size == "auto" else int(args.chunk_size))
    methods, _ = build_methods(w, args.batch, (None, chunk) if chunk is not None else (None,), ttach=False)
    name = args.method if chunk is None else f"{args.method}[chunk={chunk}]"
    by = {m.name: m for m in methods}
    if name not in by:
        raise SystemExit(f"no method {name!r} at this cell; choose from {sorted(by)}")
    m = by[name]
    ref = by.get(f"plain x{m.expected_copies}") or by["plain"]
    x = m.prepare(w.make_inputs(args.batch))
    xr = ref.prepare(w.make_inputs(args.batch * ref.rows_factor))
    with torch.inference_mode():
        m.fn(x)
        ref.fn(xr)
        times, inside, ref_times = [], [], []
        for _ in range(args.repeats):
            with ModelClock(m.counted) as clock:
                t0 = time.perf_counter()
                m.fn(x)
                times.append(time.perf_counter() - t0)
            inside.append(clock.seconds or 0.0)
            t0 = time.perf_counter()
            ref.fn(xr)
            ref_times.append(time.perf_counter() - t0)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            m.fn(x)
    total, model = 1e3 * statistics.median(times), 1e3 * statistics.median(inside)
    print(f"{w.label}, batch {args.batch}: {name} ({m.expected_copies} copies per example)")
    print(f"  {name}: {total:.1f} ms per batch, {model:.1f} ms inside the model, {total - model:.1f} ms outside")
    print(f"  {ref.name} (the same rows, one call): {1e3 * statistics.median(ref_times):.1f} ms")
    print(f"  torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
