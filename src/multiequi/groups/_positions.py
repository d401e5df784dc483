"""Groups that permute the positions of the trailing dimensions of a tensor: the base class of
the image groups (:mod:`._images`) and of user-given permutation groups (:mod:`._permutations`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._base import Group, as_elements

__all__ = ["PositionGroup", "cyclic_table"]


def cyclic_table(n: int) -> Tensor:
    """Composition table of the cyclic group of order ``n``: ``a ∘ b = (a + b) mod n``."""
    ar = torch.arange(n)
    return (ar[:, None] + ar[None, :]) % n


class PositionGroup(Group):
    """A group acting by permuting the positions of the last ``rank`` dimensions.

    Subclasses implement :meth:`_positions` which, for a trailing shape, returns a
    ``(len(G), P)`` index table with ``(g·x).flatten()[p] = x.flatten()[table[g, p]]``
    (``P`` the number of positions). Tables are built once per shape and device and cached;
    :meth:`transform` is then a single ``torch.gather``.
    """

    rank: int = 1

    def __init__(self, table: Tensor, names: Sequence[str]) -> None:
        super().__init__(table, names)
        self._cache: dict[tuple, Tensor] = {}

    def _positions(self, shape: tuple[int, ...]) -> Tensor:
        raise NotImplementedError

    def position_table(self, shape: Sequence[int], device: torch.device | str = "cpu") -> Tensor:
        """Cached ``(len(G), P)`` gather indices for tensors whose trailing shape is ``shape``."""
        key = (tuple(int(s) for s in shape), str(device))
        t = self._cache.get(key)
        if t is None:
            t = self._positions(key[0]).to(device)
            self._cache[key] = t
        return t

    def transform(self, x: Tensor, elements: Tensor) -> Tensor:
        e = as_elements(elements, len(self), x.device)
        if x.dim() < self.rank + 1 or x.shape[0] != e.numel():
            raise ValueError(
                f"{self!r} expects a stack of shape (len(elements)={e.numel()}, ..., "
                f"{', '.join('*' * self.rank)}) with at least {self.rank} trailing dimensions; "
                f"got {tuple(x.shape)}"
            )
        trailing = tuple(x.shape[x.dim() - self.rank :])
        idx = self.position_table(trailing, x.device)[e]  # (m, P)
        m, p = idx.shape
        flat = x.reshape(m, -1, p)
        out = torch.gather(flat, 2, idx[:, None, :].expand(m, flat.shape[1], p))
        return out.reshape(x.shape)

    def probe(self) -> Tensor:
        return torch.arange(3**self.rank, dtype=torch.float64).reshape((3,) * self.rank)
