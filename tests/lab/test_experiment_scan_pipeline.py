"""The SCAN pipeline end to end on tiny settings: records, resume, report, command line."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("accelerate")
pytest.importorskip("safetensors")

from multiequi.cli import main
from multiequi.lab.experiments.scan.pipeline import PRESETS, Plan, Settings, load_task, run_cell
from multiequi.lab.experiments.scan.report import JSON_FIELDS, write_report
from multiequi.lab.reporting import read_jsonl

TINY = Settings(
    hidden=8,
    batch_size=8,
    pretrain_steps=4,
    finetune_steps=2,
    val_size=8,
    evals_per_training=1,
    eval_samples=12,
    eval_batch_size=16,
    checkpoint_every=2,
)


def test_validation_is_carved_from_training_and_test_samples_are_fixed() -> None:
    data = load_task("addprim_jump", TINY)
    rows = lambda d: {tuple(r) for r in d.src.tolist()}  # noqa: E731
    assert len(data.val) == 8 and not rows(data.val) & rows(data.train)
    jump = data.vocab.in_id["jump"]
    assert not (data.val.src == jump).any()  # the bare primitive stays in training
    assert len(data.train) == 14_670 - 8 and data.test_sizes == {"addprim_jump": 7_706}
    assert len(data.tests["addprim_jump"]) == 12
    again = load_task("addprim_jump", TINY)
    assert again.tests["addprim_jump"].src.equal(data.tests["addprim_jump"].src)
    other = load_task("addprim_jump", dataclasses.replace(TINY, data_seed=1))
    assert not other.val.src.equal(data.val.src)


def test_pipeline_records_resumes_and_reports(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    new = run_cell("addprim_jump", "gru", 0, TINY, runs, show_progress=False)
    by_method = {r["method"]: r for r in new}
    assert sorted(by_method) == ["equitune", "equitune-zs", "finetuned", "pretrained"]  # 1 factor: no multi
    assert {r["split"] for r in new} == {"addprim_jump"}
    assert [by_method[m]["copies"] for m in ("pretrained", "finetuned", "equitune-zs", "equitune")] == [1, 1, 2, 2]
    for r in new:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["n_eval"] == 12 and r["n_test"] == 7_706
        assert r["machine"]["torch"] and r["settings"]["pretrain_steps"] == 4 and r["seed"] == 0
    assert by_method["equitune"]["finetune_steps"] == 2 and by_method["equitune-zs"]["finetune_steps"] == 0
    base = runs / "addprim_jump" / "gru" / "seed0"
    assert len(list(base.glob("pretrain-*/model.safetensors"))) == 1
    assert len(list(base.glob("equitune-*/model.safetensors"))) == 1
    assert len(list(base.glob("finetuned-*/model.safetensors"))) == 1

    # everything recorded: nothing to do
    assert run_cell("addprim_jump", "gru", 0, TINY, runs, show_progress=False) == []
    # records lost, checkpoints kept: stages are loaded (not retrained) and give the same numbers
    (runs / "records.jsonl").unlink()
    for f in base.glob("pretrain-*/model.safetensors"):
        f.unlink()  # ... and an interrupted pretraining resumes from its last checkpoint (step 4 of 4)
    again = {r["method"]: r for r in run_cell("addprim_jump", "gru", 0, TINY, runs, show_progress=False)}
    for m, r in by_method.items():
        assert again[m]["accuracy"] == r["accuracy"]
    info = json.loads(next(base.glob("pretrain-*/train.json")).read_text())
    assert info["resumed_from"] == 4 and info["steps"] == 4

    paths = write_report(runs / "records.jsonl", tmp_path / "results", json_path=tmp_path / "table.json")
    table = json.loads((tmp_path / "table.json").read_text())
    assert len(table) == 4 and all(tuple(r) == JSON_FIELDS for r in table)
    assert {r["method"]: r["copies"] for r in table} == {
        "pretrained": 1,
        "finetuned": 1,
        "equitune-zs": 2,
        "equitune": 2,
    }
    assert all(r["dataset"] == "scan" and r["split"] == "addprim_jump" and r["seeds"] == 1 for r in table)
    assert paths["figure_scan_gru"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = paths["report"].read_text()
    assert "| equitune, zero-shot " in report and "| fine-tuned, no wrapper |" in report
    assert "12/7706" in report and "Machine:" in report
    assert paths["results_csv"].read_text().splitlines()[0].startswith("dataset,task,cell,method,split,accuracy_mean")


def test_scan2_pipeline_fine_tunes_multi_equitune(tmp_path: Path) -> None:
    methods = ("pretrained", "multi-equitune-zs", "multi-equitune")
    new = run_cell("scan2", "lstm", 1, TINY, tmp_path, methods=methods, show_progress=False)
    assert {r["split"] for r in new} == {"jump", "turn_left", "turn_up", "union"}
    assert {r["method"]: r["copies"] for r in new} == {"pretrained": 1, "multi-equitune-zs": 6, "multi-equitune": 6}
    assert len(read_jsonl(tmp_path / "records.jsonl")) == 12


def test_presets_match_the_documented_protocol() -> None:
    quick, paper = PRESETS["quick"], PRESETS["paper"]
    assert quick.tasks == ("scan2", "addprim_jump", "template_around_right")
    assert quick.cells == ("gru",) and quick.seeds == (0,)
    assert "equitune" in quick.methods and "multi-equitune" in quick.methods and "pretrained" in quick.methods
    assert (paper.settings.pretrain_steps, paper.settings.finetune_steps) == (200_000, 10_000)
    assert (paper.settings.pretrain_lr, paper.settings.finetune_lr) == (1e-4, 2e-5)
    assert paper.settings.finetune_weight_decay == 1e-4 and paper.settings.grad_clip == 5.0
    assert paper.cells == ("rnn", "gru", "lstm") and paper.seeds == (0, 1, 2) and paper.settings.eval_samples is None
    for s in (quick.settings, paper.settings):
        assert (s.hidden, s.layers, s.dropout, s.teacher_forcing) == (64, 1, 0.1, 0.5)
    with pytest.raises(ValueError, match="unknown task"):
        Plan(tasks=("cogs",))
    with pytest.raises(ValueError, match=r"invalid settings teacher_forcing=1\.5"):
        Settings(teacher_forcing=1.5)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["scan", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in [
        "--preset", "--tasks", "--cells", "--seeds", "--methods", "--pretrain-steps", "--finetune-steps",
        "--batch-size", "--pretrain-lr", "--finetune-lr", "--weight-decay", "--teacher-forcing", "--hidden",
        "--eval-samples", "--val-size", "--runs", "--results", "--data-dir", "--json", "--threads", "--no-progress",
        "generate", "report", "bench", "quick", "paper", "3000 steps", "seed 0", "6 copies",
    ]:  # fmt: skip
        assert option in text, option
    for sub, options in {
        "generate": ["--dataset", "--out", "--seed"],
        "report": ["--runs", "--out", "--json", "--no-plots"],
        "bench": ["--cell", "--batch-size", "--steps", "--repeats", "--device", "--threads", "--json"],
    }.items():
        with pytest.raises(SystemExit):
            main(["scan", sub, "--help"])
        sub_help = capsys.readouterr().out
        assert all(o in sub_help for o in options), sub

    assert main(["scan", "generate", "--dataset", "scan", "--out", str(tmp_path / "scan")]) == 0
    out = capsys.readouterr().out
    assert "tasks_train_addprim_jump.txt" in out and "14,670 lines" in out
    # the pipeline reads the written files as well as its in-memory data
    data = load_task("addprim_jump", TINY, data_dir=str(tmp_path / "scan"))
    assert data.test_sizes == {"addprim_jump": 7_706}

    runs = tmp_path / "runs"
    run_cell("template_around_right", "rnn", 0, dataclasses.replace(TINY, finetune_steps=1), runs, show_progress=False)
    table = tmp_path / "r.json"
    args = ["scan", "report", "--runs", str(runs), "--out", str(tmp_path / "res"), "--json", str(table), "--no-plots"]
    assert main(args) == 0
    assert "template_around_right" in capsys.readouterr().out
    methods = [r["method"] for r in json.loads(table.read_text())]
    assert methods == ["pretrained", "finetuned", "equitune-zs", "equitune"]
    with pytest.raises(SystemExit, match="unknown cell 'transformer'"):
        main(["scan", "--cells", "transformer", "--runs", str(tmp_path / "never")])
    with pytest.raises(SystemExit, match="no SCAN records"):
        main(["scan", "report", "--runs", str(tmp_path / "empty"), "--out", str(tmp_path / "never")])
    assert not (tmp_path / "never").exists()
    shutil.rmtree(tmp_path / "scan")
