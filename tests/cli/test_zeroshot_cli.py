"""``multiequi zeroshot`` from the command line: its help, one-line errors, and a small run with a
tiny local CLIP saved to disk over an image folder (the path for users with real CLIP weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import save_tiny_clip
from multiequi.cli import build_parser, main

pytest.importorskip("transformers")
pytest.importorskip("ttach")
pytest.importorskip("accelerate")


def test_help_names_the_presets_methods_and_the_stand_in() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["zeroshot"]
    text = sub.format_help()
    for word in ("quick:", "medium:", "paper:", "multi-equitune", "ttach", "stand-in for CLIP", "--data-dir"):
        assert word in text, word


def _one_line(capsys: pytest.CaptureFixture[str], *expected: str) -> None:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for text in expected:
        assert text in err, err


def test_missing_data_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zeroshot", "--data", "cifar100", "--out", str(tmp_path / "a"), "--no-progress"]) == 2
    _one_line(capsys, "multiequi zeroshot:", "needs --data-dir")
    argv = ["zeroshot", "--data", "cifar100", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")]
    assert main([*argv, "--no-progress"]) == 2
    _one_line(capsys, "multiequi zeroshot:", "nowhere")


def _image_folder(root: Path, classes: tuple[str, ...], per_class: int) -> Path:
    from PIL import Image

    g = __import__("numpy").random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(g.integers(0, 256, (20, 24, 3), dtype="uint8")).save(root / c / f"{i}.png")
    return root


def test_a_small_run_with_a_local_clip_over_an_image_folder(tmp_path: Path) -> None:
    clip = save_tiny_clip(tmp_path / "clip")
    data = _image_folder(tmp_path / "images", ("cat", "dog", "bus"), per_class=6)
    out = tmp_path / "run"
    argv = [
        "zeroshot", "--model", str(clip), "--data", "folder", "--data-dir", str(data), "--images", "6",
        "--seeds", "0", "--transforms", "none", "rot90", "--methods", "plain", "equitune", "multi-equitune",
        "--batch-size", "4", "--timing-rounds", "3", "--threads", "1", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["timing"] and all(len(r["ms_per_round"]) == r["repeats"] == 3 for r in summary["timing"])
    assert summary["model"] == str(clip) and summary["templates"] == "imagenet"
    assert summary["classes"] == ["bus", "cat", "dog"]
    assert {r["method"] for r in summary["rows"]} == {"plain", "equitune", "multi-equitune"}
    inv = {r["method"]: r for r in summary["invariance"]}
    assert inv["multi-equitune"]["agreement"] == 1.0 and inv["ttach"]["agreement"] == 1.0
    assert (out / "accuracy.png").is_file() and "Zero-shot" in (out / "report.md").read_text()
    assert main(["zeroshot", "report", "--out", str(out)]) == 0
