"""``multiequi multi-image`` end to end on small IDX files and image folders made in ``tmp_path``:
records, resumption, the paper-style table, the plot, the JSON summary, the help text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("accelerate")
pytest.importorskip("safetensors")
pytest.importorskip("matplotlib")

from conftest import make_fashion_files, make_folder
from multiequi.cli import build_parser, main
from multiequi.lab.experiments.multi_image.experiment import ExperimentConfig
from multiequi.lab.experiments.multi_image.report import SUMMARY_FIELDS, drop_table, paper_table, summary_rows
from multiequi.lab.reporting import read_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


def _tiny(out: Path, *extra: str) -> list[str]:
    return [
        "multi-image",
        "--k",
        "2",
        "--seeds",
        "0",
        "1",
        "--epochs",
        "2",
        "--train-tuples",
        "24",
        "--val-tuples",
        "10",
        "--test-tuples",
        "20",
        "--batch-size",
        "8",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_quick_grid_end_to_end_on_small_idx_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_fashion_files(tmp_path / "fm", per_class_train=20, per_class_test=4)
    out, summary_json = tmp_path / "out", tmp_path / "summary.json"
    args = _tiny(out, "--data-dir", str(data), "--models", "CNN", "Multi-GCNN", "--json", str(summary_json))
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Fashion-MNIST (stand-in for Caltech101/15-Scene)" in printed and "Multi-GCNN (test rot)" in printed

    records = read_jsonl(out / "runs.jsonl")
    assert len(records) == 2 * 2 * 2 * 2  # models x seeds x train augs x test augs
    for r in records:
        assert r["dataset"].startswith("Fashion-MNIST") and r["k"] == 2 and r["tuples"]["test"] == 20
        assert r["best_epoch"] in (1, 2) and 0.0 <= r["val_accuracy"] <= 1.0
        assert (out / "runs" / f"{r['run_id']}.json").is_file()
        assert (out / "checkpoints" / r["run_id"] / "best" / "model.safetensors").is_file()
    for r in records:
        if r["model"] == "Multi-GCNN" and r["test_aug"] == "rot":  # invariant to the rotations, in float32 too
            assert r["prediction_agreement"] == 1.0 and r["max_logit_change"] < 1e-4
            twin = next(
                s
                for s in records
                if s["run_id"] == r["run_id"] and s["test_aug"] == "none"  # same model, same tuples
            )
            assert r["accuracy"] == twin["accuracy"]
        assert r["copies_per_example"] == {"CNN": 2, "Multi-GCNN": 8}[r["model"]]

    summary = json.loads(summary_json.read_text())
    assert len(summary) == 8 and all(tuple(row) == SUMMARY_FIELDS for row in summary)
    assert all(row["seeds"] == 2 for row in summary)
    table = (out / "table.md").read_text()
    assert "Fashion-MNIST" in table and "stand-in" in table and "| K | train aug |" in table
    with (out / "table.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["K"], r["train aug"]) for r in rows] == [("2", "none"), ("2", "rot")]
    png = out / "multi_image_k2.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size < 200_000
    grid = json.loads((out / "grid.json").read_text())
    assert grid["runs_trained_now"] == 8 and grid["machine"]["torch"] == torch.__version__

    # a second call trains nothing (every run is recorded) and 'report' only compiles
    assert main(args) == 0
    assert len(read_jsonl(out / "runs.jsonl")) == 16
    assert json.loads((out / "grid.json").read_text())["runs_trained_now"] == 0
    figs = tmp_path / "figs"
    assert main(["multi-image", "report", "--out", str(out), "--figure-dir", str(figs), "--figure-prefix", "x"]) == 0
    assert (figs / "x_k2.png").is_file()


def test_training_is_deterministic_per_seed(tmp_path: Path) -> None:
    data = make_fashion_files(tmp_path / "fm", per_class_train=20, per_class_test=2)
    accs = []
    for name in ("a", "b"):
        args = _tiny(tmp_path / name, "--data-dir", str(data), "--models", "DSS", "--seeds", "3", "--train-aug", "rot")
        assert main(args) == 0
        accs.append([(r["val_accuracy"], r["accuracy"]) for r in read_jsonl(tmp_path / name / "runs.jsonl")])
    assert accs[0] == accs[1]


def test_image_folder_mixed_groups_end_to_end(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "scenes", {"a": 25, "b": 25, "c": 25})
    out = tmp_path / "out"
    args = [
        *_tiny(out, "--image-folder", str(folder), "--size", "16", "--models", "Multi-GCNN-Fusion", "DeepSets"),
        "--train-aug",
        "mixed",
        "--test-aug",
        "none",
        "mixed",
        "--seeds",
        "0",
        "--train-tuples",
        "12",
        "--val-tuples",
        "4",
        "--test-tuples",
        "6",
    ]
    assert main(args) == 0
    records = read_jsonl(out / "runs.jsonl")
    assert {r["dataset"] for r in records} == {"folder:scenes"} and {r["groups"] for r in records} == {"C4,C2"}
    mg = [r for r in records if r["model"] == "Multi-GCNN" and r["test_aug"] == "mixed"]
    assert mg and mg[0]["fusion"] is True and mg[0]["prediction_agreement"] == 1.0
    assert mg[0]["copies_per_example"] == 2 * (4 + 2)
    # a grid with another group setting may not share the folder
    assert main([*_tiny(out, "--image-folder", str(folder), "--size", "16", "--models", "CNN")]) == 2


def test_missing_data_and_bad_settings_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["multi-image", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err
    data = make_fashion_files(tmp_path / "fm", per_class_train=2, per_class_test=2)
    bad = ["multi-image", "--data-dir", str(data), "--train-aug", "rot", "--test-aug", "mixed", "--out", str(tmp_path)]
    assert main(bad) == 2
    assert "one grid uses one group setting" in capsys.readouterr().err
    assert main(["multi-image", "report", "--out", str(tmp_path / "empty")]) == 2
    assert "no results" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown preset"):
        ExperimentConfig.from_preset("huge")


def test_help_explains_every_option_and_the_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "multi-image" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["multi-image", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    sub = build_parser()._subparsers._group_actions[0].choices["multi-image"]  # type: ignore[union-attr]
    for action in sub._actions:
        assert action.help, f"{action.option_strings or action.dest} has no help"
        for opt in action.option_strings:
            assert opt in text
    for needle in ("quick: K=2", "paper: K=2,3,4", "100 epochs", "stand-in", "dataset-fashion-mnist", "Σ|G_i|"):
        assert needle in text


def _records() -> list[dict]:
    recs = []
    for label, fusion in (("CNN", False), ("Multi-GCNN", True), ("DSS", False)):
        for train_aug in ("none", "rot"):
            for test_aug in ("none", "rot"):
                for seed, acc in ((0, 0.8), (1, 0.9)):
                    drop = 0.3 if (label == "CNN" and train_aug == "none" and test_aug == "rot") else 0.0
                    recs.append(
                        {
                            "dataset": "Fashion-MNIST (stand-in for Caltech101/15-Scene)",
                            "model": label,
                            "fusion": fusion,
                            "k": 2,
                            "train_aug": train_aug,
                            "test_aug": test_aug,
                            "seed": seed,
                            "accuracy": acc - drop,
                        }
                    )
    return recs


def test_paper_table_layout_and_drop_table() -> None:
    summary = summary_rows(_records())
    assert [tuple(r) for r in summary] == [SUMMARY_FIELDS] * len(summary)
    rows, columns = paper_table(summary)
    assert columns[:4] == ["K", "train aug", "CNN (no test transform)", "CNN (test rot)"]
    assert "Multi-GCNN-Fusion (test rot)" in columns and columns[-1] == "DSS (test rot)"
    assert [(r["K"], r["train aug"]) for r in rows] == [("2", "none"), ("2", "rot")]
    assert rows[0]["CNN (test rot)"] == "55.0 ± 7.1" and rows[0]["CNN (no test transform)"] == "85.0 ± 7.1"
    drops, dcols = drop_table(summary)
    assert dcols == ["K", "train aug", "test aug", "CNN", "Multi-GCNN-Fusion", "DSS"]
    assert drops[0]["CNN"] == "+30.0" and drops[0]["Multi-GCNN-Fusion"] == "+0.0" and drops[1]["CNN"] == "+0.0"
