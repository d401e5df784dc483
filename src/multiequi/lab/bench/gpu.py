"""The benchmark on a CUDA GPU, after a reference check: ``multiequi bench gpu``.

    multiequi bench gpu --out results/bench-gpu

On a machine where multiequi is not installed, from the repository root:
``PYTHONPATH=src python -m multiequi.cli bench gpu``. It

1. checks every method on the GPU against a CPU float64 reference on small inputs (outputs,
   copies counted through the model, invariance/equivariance error on the device); it stops with
   exit status 1 if a check fails, before any timing;
2. runs the same benchmark as ``multiequi bench`` (:func:`~multiequi.lab.bench.run_bench`) on the
   GPU: EfficientNet-Lite0 (and ResNet50 when torchvision is installed) at batches 1 and 32 with
   Rot90 and Flip, GPT-2 124M with N = 1 … 6 word-swap factors, and the SCAN-II throughput;
   weights are random unless EfficientNet-Lite0's weight package is installed (timing does not
   depend on weight values);
3. writes ``report.md`` (the table, the GPU's name, the targets), ``records.json`` and plots to
   ``--out``, and prints the report.

The real ``ttach`` package is used when importable; GPU machines may have no network, so carry it
in (``mkdir -p runs/vendor && cp -r .venv/lib/python3*/site-packages/ttach runs/vendor/`` and add
``runs/vendor`` to ``PYTHONPATH``). Without it, ttach's D4 rows are skipped and the ``tta-loop``
rows (the same loop over the 8 transforms) stand in for it.

GPU targets (benchmark issue): at batch 1, MultiEquitune within 1.2x of the plain model's latency
and at least 6x faster than ttach's D4 loop; at batch 32, within 10% of the plain model on 6B rows.

``multiequi bench gpu --check-only --device cpu`` runs step 1 on the CPU (the tests do this).
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import nn

from multiequi import Equitune, MultiEquitune
from multiequi.groups import Group, Product
from multiequi.lab.reporting import markdown_table
from multiequi.symmetrize import model_output_tensor
from multiequi.testing import CopyCounter, equivariance_error

from ._methods import TTALoop
from ._report import format_report, targets_table, write_outputs
from ._runner import BenchConfig, Scenario, run_bench
from ._workloads import gpt2_model, image_workload, token_workload

__all__ = ["CHECK_TOL", "EQUIV_TOL", "gpu_targets", "reference_check", "run_gpu", "standard_methods"]

#: relative tolerance of the device-float32 vs CPU-float64 comparison (TF32 is off during the check)
CHECK_TOL = 1e-4
#: invariance / equivariance error allowed on the device in float32
EQUIV_TOL = 1e-5

MethodFactory = Callable[[nn.Module, Sequence[Group], str], Callable[[torch.Tensor], Any]]


def standard_methods() -> dict[str, tuple[MethodFactory, str]]:
    """Method factories checked against the reference: name → (factory, expected copies: 'prod', 'sum' or '1')."""
    return {
        "plain": (lambda m, fs, out: m, "1"),
        "tta-loop": (lambda m, fs, out: TTALoop(m, _product(fs), out), "prod"),
        "equitune-product": (lambda m, fs, out: Equitune(m, _product(fs), output=out, chunk_size=None), "prod"),
        "equitune-product[chunk=auto]": (
            lambda m, fs, out: Equitune(m, _product(fs), output=out, chunk_size="auto"),
            "prod",
        ),
        "multiequitune": (lambda m, fs, out: MultiEquitune(m, list(fs), output=out, chunk_size=None), "sum"),
        "multiequitune[chunk=8]": (lambda m, fs, out: MultiEquitune(m, list(fs), output=out, chunk_size=8), "sum"),
    }


def _product(factors: Sequence[Group]) -> Group:
    return factors[0] if len(factors) == 1 else Product(*factors)


def relative_difference(out: torch.Tensor, ref: torch.Tensor) -> float:
    """``max|out - ref| / max(1, max|ref|)``, computed in float64 on the CPU."""
    a, b = out.detach().double().cpu(), ref.detach().double().cpu()
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max()) / max(1.0, float(b.abs().max()))


def _check_workload(
    name: str,
    model: nn.Module,
    factors: Sequence[Group],
    output: str,
    x: torch.Tensor,
    device: torch.device,
    methods: dict[str, tuple[MethodFactory, str]],
) -> list[dict[str, Any]]:
    ref_model = copy.deepcopy(model).to("cpu", torch.float64).eval()
    dev_model = copy.deepcopy(model).to(device, torch.float32).eval()
    x_ref = x.to("cpu", torch.float64) if x.is_floating_point() else x.cpu()
    x_dev = x.to(device, torch.float32) if x.is_floating_point() else x.to(device)
    prod = _product(factors)
    sizes = {"1": 1, "prod": len(prod), "sum": sum(len(f) for f in factors)}
    rows = []
    for mname, (factory, copies_key) in methods.items():
        with torch.inference_mode():
            ref = model_output_tensor(factory(ref_model, factors, output)(x_ref))
            f_dev = factory(dev_model, factors, output)
            f_dev(x_dev)  # warm-up (and chunk tuning)
            with CopyCounter(dev_model) as counter:
                out = model_output_tensor(f_dev(x_dev))
            if mname == "plain":
                err = None
            else:
                err = float(cast(float, equivariance_error(f_dev, prod, x_dev, output)))
        diff = relative_difference(out, ref)
        copies = counter.rows / x.shape[0]
        ok = diff <= CHECK_TOL and copies == sizes[copies_key] and (err is None or err <= EQUIV_TOL)
        rows.append(
            {
                "workload": name,
                "method": mname,
                "rel_diff_vs_cpu_float64": diff,
                "copies": copies,
                "expected_copies": sizes[copies_key],
                "equivariance_error": err,
                "ok": ok,
            }
        )
    return rows


def reference_check(
    device: str | torch.device = "cuda",
    image_model: nn.Module | None = None,
    token_model: nn.Module | None = None,
    image_size: int = 64,
    methods: dict[str, tuple[MethodFactory, str]] | None = None,
) -> list[dict[str, Any]]:
    """Every method on ``device`` in float32 against the same method on the CPU in float64.

    Small inputs: 2 images of ``image_size`` px (EfficientNet-Lite0 by default, random weights)
    and 1 sequence of 16 tokens with 3 word-swap factors (a 2-layer GPT-2 by default). A row is
    ``ok`` when the outputs agree to :data:`CHECK_TOL`, the copies counted through the model are
    those of the method, and the device output's invariance/equivariance error is below
    :data:`EQUIV_TOL`. TF32 is switched off during the check and restored after.
    """
    device = torch.device(device)
    methods = methods or standard_methods()
    if image_model is None:
        from multiequi.models import efficientnet_lite0

        image_model = efficientnet_lite0(pretrained=False)
    if token_model is None:
        token_model = gpt2_model({"n_layer": 2, "n_embd": 64, "n_head": 2, "vocab_size": 512}, seq_len=16)
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        iw = image_workload(model=image_model, size=image_size, channels_last=False)
        rows = _check_workload("images", iw.model, iw.factors, iw.output, iw.make_inputs(2), device, methods)
        tw = token_workload(token_model, 3, seq_len=16)
        rows += _check_workload("tokens", tw.model, tw.factors, tw.output, tw.make_inputs(1), device, methods)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
    return rows


def gpu_targets(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The GPU targets: batch 1 within 1.2x of plain and >= 6x faster than ttach; batch 32 within 10% of plain x6."""
    ok = {
        (r["workload"], r["batch"], r["method"]): r
        for r in records
        if r.get("status") == "ok" and r.get("time_ms_median") is not None
    }
    out = []
    for wl, b, m in ok:
        if not wl.startswith("images") or wl.endswith("-rows") or m != "multiequitune":
            continue
        best = min(
            (v for (w2, b2, m2), v in ok.items() if w2 == wl and b2 == b and m2.startswith("multiequitune")),
            key=lambda v: v["time_ms_median"],
        )
        t = best["time_ms_median"]
        if b == 1:
            plain = ok.get((wl, b, "plain"))
            peer = ok.get((wl, b, "ttach-d4")) or ok.get((wl, b, "tta-loop"))
            if plain:
                ratio = t / plain["time_ms_median"]
                out.append(_gpu_row(wl, b, "within 1.2x of plain latency", ratio, ratio <= 1.2, best, plain))
            if peer:
                speed = peer["time_ms_median"] / t
                out.append(_gpu_row(wl, b, f"at least 6x faster than {peer['method']}", speed, speed >= 6, best, peer))
        elif b == 32:
            ref = ok.get((wl, b, "plain x6"))
            if ref:
                ratio = t / ref["time_ms_median"]
                out.append(_gpu_row(wl, b, "within 10% of plain on 6B rows", ratio, ratio <= 1.10, best, ref))
    return out


def _gpu_row(wl: str, b: int, goal: str, measured: float, met: bool, a: dict, ref: dict) -> dict[str, Any]:
    return {
        "target": f"GPU: {goal}",
        "cell": f"{wl} B={b}",
        "goal": goal,
        "measured": measured,
        "met": met,
        "detail": f"{a['method']} {a['time_ms_median']:.2f} ms vs {ref['method']} {ref['time_ms_median']:.2f} ms",
    }


def _scenarios(
    device: torch.device, batches: Sequence[int], factors: Sequence[int], cfg: BenchConfig
) -> list[Scenario]:
    out: list[Scenario] = []
    try:
        w = image_workload(size=224, channels_last=True, pretrained=True)
    except ImportError:
        w = image_workload(size=224, channels_last=True, pretrained=False)
    w.model.to(device)
    out += [Scenario(w, b) for b in batches]
    try:
        import torchvision

        r50 = torchvision.models.resnet50(weights=None)
        rw = image_workload(model=r50, size=224, channels_last=True, name="images-resnet50")
        rw.model.to(device)
        out += [Scenario(rw, b) for b in batches]
    except ImportError:
        print("torchvision not installed: ResNet50 skipped", file=sys.stderr)
    lm = gpt2_model("124m", cfg.seq_len).to(device)
    for n in factors:
        out.append(
            Scenario(
                token_workload(
                    lm, n, cfg.seq_len, error_elements=cfg.error_elements, label="GPT-2 124m (random weights)"
                ),
                cfg.token_batch,
            )
        )
    return out


def run_gpu(
    device: str = "cuda",
    out: str = "results/bench-gpu",
    *,
    check_only: bool = False,
    batches: Sequence[int] = (1, 32),
    factors: Sequence[int] = (1, 2, 3, 4, 5, 6),
    repeats: int = 10,
    cell_budget_s: float = 30.0,
    memory: bool = True,
    command: str | None = None,
) -> int:
    """Check, then benchmark; print the report and return the exit status (1: the check failed)."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device visible; use --device cpu --check-only to test the reference check", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"reference check on {name} (float32, TF32 off) against CPU float64 ...", flush=True)
    rows = reference_check(dev)
    print(markdown_table([{k: f"{v:.1e}" if isinstance(v, float) else v for k, v in r.items()} for r in rows]))
    if not all(r["ok"] for r in rows):
        print("reference check FAILED: no timing run", file=sys.stderr)
        return 1
    if check_only:
        return 0
    try:
        import ttach  # noqa: F401

        has_ttach = True
    except ImportError:
        has_ttach = False
        print("ttach not importable: ttach-d4 rows skipped, tta-loop stands in (see the module docstring)")
    cfg = BenchConfig(
        image_batches=tuple(batches),
        token_factors=tuple(factors),
        repeats=repeats,
        min_time_s=1.0,
        cell_budget_s=cell_budget_s,
        rows_profile=(1, 6, 8, 32, 48, 192, 256),
        ttach=has_ttach,
        device=str(dev),
        memory=memory,
        progress=False,
    )
    result = run_bench(cfg, _scenarios(dev, batches, factors, cfg), command=command)
    result.targets += gpu_targets(result.records)
    result.meta["reference_check"] = rows
    try:
        paths = write_outputs(result.records, result.meta, result.targets, out)
    except ImportError as err:  # no matplotlib on the GPU image: tables and JSON only
        print(f"plots skipped: {err}", file=sys.stderr)
        paths = write_outputs(result.records, result.meta, result.targets, out, plots=False)
    print(format_report(result.records, result.meta, result.targets))
    print("\n## GPU targets\n")
    print(targets_table([t for t in result.targets if t["target"].startswith("GPU")]))
    print(f"\nWrote {paths['report'].parent}/")
    return 0
