"""The zero-shot experiment's methods: one pretrained classifier, nine ways of running it.

Every method maps pixel values ``(B, 3, S, S)`` to class logits ``(B, C)``. The symmetrized ones
are the library's public wrappers over D4 = rot90 × left-right flip (8 elements): equitune,
equizero and λ-equitune over the product (8 copies per image), multi-equitune, multi-equizero and
multi-λ-equitune over the factors (4 + 2 = 6 copies). ``canonical`` maps each image to one member
of its D4 orbit (the library's fixed-template canonicalizer) and runs the model once; ``ttach`` is
the real ``ttach`` package's D4 test-time augmentation (8 model calls of ``B`` rows).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from multiequi import Equitune, Equizero, LambdaEquitune, MultiEquitune, MultiEquizero, MultiLambdaEquitune
from multiequi.groups import Flip, Group, Rot90

from .presets import METHODS

__all__ = ["Canonicalized", "LambdaNet", "OrbitMemo", "build_method", "d4", "invariance_error", "needs_lambda"]


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


def _row_keys(x: Tensor) -> list[bytes]:
    """A digest of each row's bytes (BLAKE2b, 128 bits): equal only for bitwise equal rows."""
    rows = x.detach().to("cpu").contiguous().reshape(x.shape[0], -1).numpy()
    return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in rows]


class OrbitMemo(nn.Module):
    """A frozen model's outputs on every D4 image of a fixed set of images, looked up by bits.

    Training λ sends the same few training images through the frozen classifier epoch after epoch,
    each time as some of its 8 D4 images (the copies of every method are exact pixel permutations
    of the prepared image, and the preparation commutes bitwise with D4). The memo runs the model
    once on all ``8 N`` images; afterwards a batch of rows costs a digest per row. A row not in the
    memo goes through the model (``misses`` counts them), so results never depend on the memo.

    Parameters
    ----------
    model : nn.Module
        The frozen classifier (called without gradients).
    images : Tensor
        ``(N, ...)``: the prepared images (the model's input) whose D4 images are memorized.
    batch_size : int
        Images per model call while filling the memo (each call has ``8 × batch_size`` rows).

    Examples
    --------
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    >>> x = torch.randn(2, 3, 4, 4)
    >>> memo = OrbitMemo(net, x)
    >>> g_x = torch.rot90(x, 1, (-2, -1))
    >>> torch.allclose(memo(g_x), net(g_x)), memo.misses
    (True, 0)
    """

    def __init__(self, model: nn.Module, images: Tensor, batch_size: int = 8) -> None:
        super().__init__()
        self._model = [model]  # not a submodule: the memo holds no parameters of its own
        group = d4()
        keys: list[bytes] = []
        outputs: list[Tensor] = []
        with torch.no_grad():
            for lo in range(0, images.shape[0], batch_size):
                rows = group.orbit(images[lo : lo + batch_size]).flatten(0, 1)
                outputs.append(model(rows))
                keys += _row_keys(rows)
        self.outputs = torch.cat(outputs)
        self.index = {k: i for i, k in enumerate(keys)}
        self.misses = 0

    def forward(self, x: Tensor) -> Tensor:
        idx = [self.index.get(k, -1) for k in _row_keys(x)]
        pos = torch.tensor(idx, dtype=torch.long, device=self.outputs.device)
        hit = pos >= 0
        if bool(hit.all()):
            return self.outputs[pos]
        out = self.outputs.new_empty((x.shape[0], *self.outputs.shape[1:]))
        out[hit] = self.outputs[pos[hit]]
        with torch.no_grad():
            out[~hit] = self._model[0](x[~hit.to(x.device)]).to(out.device)
        self.misses += int((~hit).sum())
        return out


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
    elements = torch.arange(n, device=x.device).repeat_interleave(b)
    stack = group.transform(x.repeat(n, *[1] * (x.dim() - 1)), elements)  # element-major: (n·B, ...)
    with torch.no_grad():
        y = fn(stack).reshape(n, b, -1)
    diff = (y - y[:1]).abs()
    scale = y[0].abs().max().clamp_min(torch.finfo(y.dtype).tiny)
    agree = (y.argmax(-1) == y[0].argmax(-1)).to(torch.float64).mean()
    return {"max_abs": float(diff.max()), "relative": float(diff.max() / scale), "agreement": float(agree)}
