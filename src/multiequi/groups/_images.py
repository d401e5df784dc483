"""Rotations by 90° and reflections of image axes."""

from __future__ import annotations

import torch
from torch import Tensor

from ._positions import PositionGroup, cyclic_table

__all__ = ["Flip", "Rot90"]


class Rot90(PositionGroup):
    """C4: rotations by multiples of 90° of two trailing dimensions (``torch.rot90`` convention).

    Element ``k`` is ``torch.rot90(x, k, dims)``. The dimensions count from the end so the same
    group acts on single images ``(C, H, W)`` and on batches ``(B, C, H, W)``. A non-square input
    raises ``ValueError``.

    Examples
    --------
    >>> import torch
    >>> from multiequi.groups import Rot90
    >>> x = torch.arange(4.0).reshape(2, 2)
    >>> torch.equal(Rot90().act(x, 1), torch.rot90(x, 1, (-2, -1)))
    True
    """

    def __init__(self, dims: tuple[int, int] = (-2, -1)) -> None:
        d = tuple(int(v) for v in dims)
        if len(d) != 2 or d[0] == d[1] or any(v >= 0 for v in d):
            raise ValueError(f"Rot90 dims must be two different negative dimensions such as (-2, -1), got {dims}")
        super().__init__(cyclic_table(4), ["e", "rot90", "rot180", "rot270"])
        self.dims = d
        self.rank = -min(d)

    def _positions(self, shape: tuple[int, ...]) -> Tensor:
        a, b = (shape[len(shape) + d] for d in self.dims)
        if a != b:
            raise ValueError(
                f"Rot90 needs equal sizes along dims {self.dims}; got a tensor whose trailing shape is {shape}"
            )
        ar = torch.arange(int(torch.tensor(shape).prod())).reshape(shape)
        return torch.stack([torch.rot90(ar, k, self.dims).reshape(-1) for k in range(4)])

    def signature(self) -> tuple:
        return self.dims

    def __repr__(self) -> str:
        return f"Rot90(dims={self.dims})"


class Flip(PositionGroup):
    """C2: reversal of one dimension (``dim=-1`` is a left-right flip of images).

    Examples
    --------
    >>> import torch
    >>> from multiequi.groups import Flip
    >>> Flip().act(torch.tensor([1.0, 2.0, 3.0]), 1)
    tensor([3., 2., 1.])
    """

    def __init__(self, dim: int = -1) -> None:
        if int(dim) >= 0:
            raise ValueError(f"Flip dim must be negative (counted from the end), got {dim}")
        super().__init__(cyclic_table(2), ["e", f"flip{dim}"])
        self.dim = int(dim)
        self.rank = -self.dim

    def _positions(self, shape: tuple[int, ...]) -> Tensor:
        ar = torch.arange(int(torch.tensor(shape).prod())).reshape(shape)
        return torch.stack([ar.reshape(-1), torch.flip(ar, (self.dim,)).reshape(-1)])

    def signature(self) -> tuple:
        return (self.dim,)

    def __repr__(self) -> str:
        return f"Flip(dim={self.dim})"
