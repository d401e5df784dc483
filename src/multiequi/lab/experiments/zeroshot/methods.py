"""The zero-shot experiment's methods: one pretrained classifier, nine ways of running it.

Every method maps pixel values ``(B, 3, S, S)`` to class logits ``(B, C)``. The symmetrized ones
are the library's public wrappers over D4 = rot90 × left-right flip (8 elements): equitune,
equizero and λ-equitune over the product (8 copies per image), multi-equitune, multi-equizero and
multi-λ-equitune over the factors (4 + 2 = 6 copies). ``canonical`` maps each image to one member
of its D4 orbit (the library's fixed-template canonicalizer) and runs the model once; ``ttach`` is
the real ``ttach`` package's D4 test-time augmentation (8 model calls of ``B`` rows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from multiequi import Equitune, Equizero, LambdaEquitune, MultiEquitune, MultiEquizero, MultiLambdaEquitune
from multiequi.groups import Flip, Group, Rot90

from .presets import METHODS

__all__ = ["Canonicalized", "LambdaNet", "build_method", "d4", "invariance_error", "needs_lambda"]


def d4() -> Group:
    """D4 as the product rot90 × left-right flip (8 elements)."""
    return Rot90() * Flip()


def needs_lambda(method: str) -> bool:
    """Whether ``method`` has a λ network to train."""
    return method in ("lambda-equitune", "multi-lambda-equitune")


class LambdaNet(nn.Module):
    """The λ network of λ-equitune: a small CNN scoring each transformed copy (one score per row).

    It sees the copy shrunk to 28×28 (area average), two strided convolutions and a linear layer.
    It is not invariant (it must tell orientations apart); its last layer starts at zero, so an
    untrained λ gives every copy the same weight (equitune).

    Examples
    --------
    >>> net = LambdaNet()
    >>> net(torch.randn(5, 3, 64, 64)).shape
    torch.Size([5])
    """

    def __init__(self, channels: int = 3, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.AdaptiveAvgPool2d(28),
            nn.Conv2d(channels, width, 5, stride=2),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.score = nn.Linear(2 * width * 5 * 5, 1)
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.score(self.features(x))[:, 0]


class Canonicalized(nn.Module):
    """``M(c(x))``: the model on one member of each image's orbit, chosen by ``group.canonicalize``
    (a fixed random template), one pass. Invariant; the member it picks has no reason to be upright.

    Examples
    --------
    >>> f = Canonicalized(nn.Flatten(), d4())
    >>> x = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    >>> torch.equal(f(x), f(torch.rot90(x, 1, (-2, -1))))
    True
    """

    def __init__(self, model: nn.Module, group: Group) -> None:
        super().__init__()
        self.model = model
        self.group = group

    def forward(self, x: Tensor) -> Tensor:
        return self.model(self.group.canonicalize(x))


def build_method(
    method: str, model: nn.Module, *, weight_net: nn.Module | None = None, chunk_size: Any = "auto"
) -> Callable[[Tensor], Tensor]:
    """The classifier ``method`` runs: ``model`` itself, wrapped, canonicalized or under ttach.

    Examples
    --------
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    >>> f = build_method("multi-equitune", net)
    >>> f(torch.randn(2, 3, 4, 4)).shape
    torch.Size([2, 5])
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    factors = [Rot90(), Flip()]
    if method == "plain":
        return model
    if method == "canonical":
        return Canonicalized(model, d4())
    if method == "equitune":
        return Equitune(model, d4(), chunk_size=chunk_size)
    if method == "equizero":
        return Equizero(model, d4(), chunk_size=chunk_size)
    if method == "multi-equitune":
        return MultiEquitune(model, factors, chunk_size=chunk_size)
    if method == "multi-equizero":
        return MultiEquizero(model, factors, chunk_size=chunk_size)
    if method == "ttach":
        try:
            import ttach as tta
        except ImportError as err:
            raise ImportError("the ttach method needs the ttach package: pip install 'multiequi[zeroshot]'") from err
        return tta.ClassificationTTAWrapper(model, tta.aliases.d4_transform(), merge_mode="mean")
    if weight_net is None:
        raise ValueError(f"{method} needs a trained weight_net (a LambdaNet)")
    if method == "lambda-equitune":
        return LambdaEquitune(model, d4(), weight_net=weight_net, chunk_size=chunk_size)
    return MultiLambdaEquitune(model, factors, weight_net=weight_net, chunk_size=chunk_size)


def invariance_error(fn: Callable[[Tensor], Tensor], x: Tensor) -> dict[str, float]:
    """How far ``fn``'s logits move over the 8 D4 images of each image of ``x``, in one call.

    Returns ``max_abs`` (largest ``|f(g·x) − f(x)|`` over elements, images and classes),
    ``relative`` (that over the largest ``|f(x)|``) and ``agreement`` (the share of transformed
    images whose top-1 class is the untransformed image's).

    Examples
    --------
    >>> f = Canonicalized(nn.Flatten(), d4())
    >>> invariance_error(f, torch.randn(3, 1, 4, 4))["max_abs"]
    0.0
    """
    group = d4()
    n, b = len(group), x.shape[0]
    elements = torch.arange(n).repeat_interleave(b)
    stack = group.transform(x.repeat(n, *[1] * (x.dim() - 1)), elements)  # element-major: (n·B, ...)
    with torch.no_grad():
        y = fn(stack).reshape(n, b, -1)
    diff = (y - y[:1]).abs()
    scale = y[0].abs().max().clamp_min(torch.finfo(y.dtype).tiny)
    agree = (y.argmax(-1) == y[0].argmax(-1)).to(torch.float64).mean()
    return {"max_abs": float(diff.max()), "relative": float(diff.max() / scale), "agreement": float(agree)}
