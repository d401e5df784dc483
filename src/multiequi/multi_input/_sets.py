"""Baselines for N inputs sharing one group: DeepSets (Zaheer et al.) and DSS (Maron et al. 2020)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..groups import Group
from ..symmetrize import ChunkSize, Equitune, Output

__all__ = ["DSSLayer", "DeepSetsLayer"]

Model = nn.Module | Callable[..., Any]
Reduction = Literal["sum", "mean"]


class _SetLayer(nn.Module):
    """``y_j = L1(x_j) + L2(Σ_i x_i)`` over a set axis; ``L1`` and ``L2`` act on one element."""

    element_model: Model
    set_model: Model

    def _init_set(self, reduction: str, set_dim: int, sorted_sum: bool) -> None:
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        if not isinstance(set_dim, int) or isinstance(set_dim, bool) or set_dim == 0:
            raise ValueError(f"set_dim must be a non-zero int (the batch dimension comes first), got {set_dim!r}")
        self.reduction = reduction
        self.set_dim = set_dim
        self.sorted_sum = sorted_sum

    def _reduce(self, x: Tensor) -> Tensor:
        """Sum (or mean) over the set axis (axis 1 here), in sorted order when ``sorted_sum``."""
        s = (torch.sort(x, dim=1).values if self.sorted_sum and x.shape[1] > 1 else x).sum(1)
        return s / x.shape[1] if self.reduction == "mean" else s

    def forward(self, x: Tensor) -> Tensor:
        """``y[:, j] = L1(x[:, j]) + L2(Σ_i x[:, i])`` for a batch ``x`` of sets (set axis ``set_dim``)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"the input must be a Tensor of shape (batch, set, ...), got {type(x).__name__}")
        d = self.set_dim if self.set_dim > 0 else x.dim() + self.set_dim
        if x.dim() < 2 or not 0 < d < x.dim():
            raise ValueError(
                f"expected a batch of sets with the set axis at dim {self.set_dim} (e.g. shape (batch, set, ...)); "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[d] == 0:
            raise ValueError(f"the set axis (dim {self.set_dim}) is empty in an input of shape {tuple(x.shape)}")
        xm = x.movedim(d, 1)
        b, n = xm.shape[:2]
        per = self.element_model(xm.reshape(b * n, *xm.shape[2:]))
        per = per.reshape(b, n, *per.shape[1:])
        pooled = self.set_model(self._reduce(xm))
        if pooled.shape[0] != b or pooled.shape[1:] != per.shape[2:]:
            raise ValueError(
                f"the set term has shape {tuple(pooled.shape)} but the element term has per-element shape "
                f"{tuple(per.shape[2:])} for batch {b}: both models must map an element to the same output shape"
            )
        y = per + pooled.unsqueeze(1)
        return y.movedim(1, d)


class DeepSetsLayer(_SetLayer):
    """DeepSets equivariant layer (Zaheer et al. 2017): ``y_j = L1(x_j) + L2(Σ_i x_i)``.

    Equivariant to permutations of the set axis, for any element models ``L1`` and ``L2``
    (each applied to one element; all elements in one call).

    Parameters
    ----------
    element_model : nn.Module or callable
        ``L1``, applied to every element (a batch of elements, batch dimension first).
    set_model : nn.Module or callable
        ``L2``, applied to the pooled set; its output shape must be ``L1``'s.
    reduction : {"sum", "mean"}
        Pooling over the set axis (``"sum"`` is the formula above).
    set_dim : int
        The set axis of the input (default 1: inputs ``(batch, set, ...)``).
    sorted_sum : bool
        Pool in sorted order, so the pooled value is bitwise identical for every order of the
        set (default ``True``).

    Examples
    --------
    >>> import torch
    >>> from multiequi.multi_input import DeepSetsLayer
    >>> layer = DeepSetsLayer.linear(4, 2)
    >>> x = torch.randn(3, 5, 4)                                  # 3 sets of 5 elements in R^4
    >>> perm = torch.tensor([4, 0, 3, 1, 2])
    >>> torch.allclose(layer(x[:, perm]), layer(x)[:, perm], atol=1e-6)
    True
    """

    def __init__(
        self,
        element_model: Model,
        set_model: Model,
        *,
        reduction: Reduction = "sum",
        set_dim: int = 1,
        sorted_sum: bool = True,
    ) -> None:
        super().__init__()
        for name, m in (("element_model", element_model), ("set_model", set_model)):
            if not callable(m):
                raise TypeError(f"{name} must be callable (an nn.Module or a function), got {type(m).__name__}")
        self.element_model = element_model
        self.set_model = set_model
        self._init_set(reduction, set_dim, sorted_sum)

    @classmethod
    def linear(
        cls, in_features: int, out_features: int, bias: bool = True, reduction: Reduction = "sum"
    ) -> DeepSetsLayer:
        """The classic layer ``y_j = W1 x_j + W2 Σ_i x_i + b`` on elements in ``R^in_features``."""
        return cls(
            nn.Linear(in_features, out_features, bias=bias),
            nn.Linear(in_features, out_features, bias=False),
            reduction=reduction,
        )


class DSSLayer(_SetLayer):
    """DSS layer (Maron et al. 2020): ``y_j = L1(x_j) + L2(Σ_i x_i)`` with ``G``-equivariant ``L1``, ``L2``.

    For a set of inputs that share ONE group ``G`` acting on every element at once (a
    Siamese layer plus an equivariant aggregation): equivariant to permutations of the set axis
    and to ``G`` acting on all elements simultaneously. ``L1`` and ``L2`` are made equivariant by
    equitune over ``G`` around any models. Unlike :class:`MultiInputNetwork`, whose cross terms are
    invariant-symmetric, DSS is not equivariant to transforming one element alone.

    Parameters
    ----------
    element_model : nn.Module or callable
        The model inside ``L1 = E_G[element_model]``, applied to every element.
    set_model : nn.Module or callable
        The model inside ``L2 = E_G[set_model]``, applied to the pooled set.
    group : Group
        The shared group ``G``; it acts on each element (its action must not involve the set
        axis, e.g. ``Rot90()`` on the last two axes of ``(batch, set, C, H, W)``).
    output : {"same", "invariant", "vocab"} or Action
        How ``G`` acts on an element's output.
    reduction : {"sum", "mean"}
        Pooling over the set axis.
    set_dim : int
        The set axis of the input (default 1).
    chunk_size : int, "auto" or None
        Rows per model call inside the equitune wrappers.
    sorted_sum : bool
        Pool and average in sorted order (bitwise-exact symmetry, default ``True``).

    Examples
    --------
    >>> import torch
    >>> from multiequi.multi_input import DSSLayer
    >>> from multiequi.groups import Rot90
    >>> layer = DSSLayer(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Conv2d(1, 2, 3, padding=1), Rot90())
    >>> x = torch.randn(2, 3, 1, 5, 5)                           # 2 sets of 3 one-channel images
    >>> y = layer(x)
    >>> torch.allclose(layer(torch.rot90(x, 1, (-2, -1))), torch.rot90(y, 1, (-2, -1)), atol=1e-6)
    True
    >>> torch.allclose(layer(x[:, [2, 0, 1]]), y[:, [2, 0, 1]], atol=1e-6)
    True
    """

    def __init__(
        self,
        element_model: Model,
        set_model: Model,
        group: Group,
        *,
        output: Output = "same",
        reduction: Reduction = "sum",
        set_dim: int = 1,
        chunk_size: ChunkSize = "auto",
        sorted_sum: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(group, Group):
            raise TypeError(
                f"group must be a Group object (the group shared by every element), got {type(group).__name__}"
            )
        self.group = group
        self.element_model = Equitune(element_model, group, output=output, chunk_size=chunk_size, sorted_sum=sorted_sum)
        self.set_model = Equitune(set_model, group, output=output, chunk_size=chunk_size, sorted_sum=sorted_sum)
        self._init_set(reduction, set_dim, sorted_sum)
