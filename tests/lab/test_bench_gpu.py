"""``multiequi bench gpu`` (:mod:`multiequi.lab.bench.gpu`): its reference check (device float32 vs
CPU float64) works, on the CPU.

The GPU run itself needs a CUDA device; what can be tested anywhere is the logic that decides
whether the device's results are right before any timing.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from conftest import SmallCNN


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: avoids OpenMP barrier stalls on a busy machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def gpu_bench():
    from multiequi.lab.bench import gpu

    return gpu


def _tiny(gpu_bench, **kw):
    torch.manual_seed(0)
    lm = gpu_bench.gpt2_model({"n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 64}, seq_len=16)
    return gpu_bench.reference_check("cpu", image_model=SmallCNN(size=8), token_model=lm, image_size=8, **kw)


def test_reference_check_passes_on_cpu(gpu_bench) -> None:
    rows = _tiny(gpu_bench)
    assert {r["workload"] for r in rows} == {"images", "tokens"}
    assert all(r["ok"] for r in rows), rows
    by = {(r["workload"], r["method"]): r for r in rows}
    assert by[("tokens", "multiequitune")]["copies"] == 7  # C2, C3, C2: 2 + 3 + 2
    assert by[("tokens", "equitune-product")]["copies"] == 12
    assert by[("images", "multiequitune")]["copies"] == 6


def test_reference_check_catches_a_wrong_method(gpu_bench) -> None:
    methods = gpu_bench.standard_methods()
    # claims to be multi-equitune but is the plain model: wrong copies and not invariant
    methods["multiequitune"] = (lambda m, fs, out: m, "sum")
    rows = _tiny(gpu_bench, methods=methods)
    bad = [r for r in rows if not r["ok"]]
    assert {r["method"] for r in bad} == {"multiequitune"}


def test_relative_difference(gpu_bench) -> None:
    ref = torch.tensor([10.0, -2.0], dtype=torch.float64)
    assert gpu_bench.relative_difference(ref.float(), ref) == 0.0
    assert gpu_bench.relative_difference(ref + 1e-2, ref) == pytest.approx(1e-3)
    assert gpu_bench.relative_difference(ref[:1], ref) == float("inf")


def test_gpu_targets(gpu_bench) -> None:
    def rec(b: int, m: str, t: float) -> dict:
        return {"workload": "images", "batch": b, "method": m, "status": "ok", "time_ms_median": t}

    records = [
        rec(1, "plain", 4.0),
        rec(1, "ttach-d4", 32.0),
        rec(1, "multiequitune", 4.5),
        rec(32, "plain x6", 100.0),
        rec(32, "multiequitune", 120.0),
        rec(32, "multiequitune[chunk=auto]", 105.0),
    ]
    t = {row["goal"]: row for row in gpu_bench.gpu_targets(records)}
    assert t["within 1.2x of plain latency"]["met"] is True
    assert t["at least 6x faster than ttach-d4"]["met"] is True
    assert t["within 10% of plain on 6B rows"]["met"] is True  # the best multiequitune variant counts
    assert t["within 10% of plain on 6B rows"]["measured"] == pytest.approx(1.05)
