"""Groups given by matrices acting linearly on the last dimension."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._base import Group, as_elements

__all__ = ["MatrixGroup", "TrivialGroup"]


class MatrixGroup(Group):
    """A finite group of ``d × d`` matrices acting on the last dimension: ``g·x = M_g x``.

    ``matrices[0]`` must be the identity and the set must be closed under multiplication (up to
    ``atol``); the composition table is computed from the products.

    Examples
    --------
    >>> import torch
    >>> from multiequi.groups import MatrixGroup
    >>> R = torch.tensor([[0.0, -1.0], [1.0, 0.0]])          # rotation by 90° of the plane
    >>> C4 = MatrixGroup([torch.linalg.matrix_power(R, k) for k in range(4)])
    >>> C4.act(torch.tensor([1.0, 0.0]), 1)
    tensor([0., 1.])
    """

    def __init__(
        self, matrices: Sequence[Tensor] | Tensor, names: Sequence[str] | None = None, atol: float = 1e-6
    ) -> None:
        m = torch.stack([torch.as_tensor(a, dtype=torch.float64) for a in matrices])
        if m.dim() != 3 or m.shape[1] != m.shape[2]:
            raise ValueError(f"matrices must be a stack of square matrices, got shape {tuple(m.shape)}")
        n, d, _ = m.shape
        if not torch.allclose(m[0], torch.eye(d, dtype=m.dtype), atol=atol):
            raise ValueError("matrices[0] must be the identity")
        prod = torch.einsum("aij,bjk->abik", m, m)
        diff = (prod[:, :, None] - m[None, None]).abs().flatten(3).amax(-1)  # (n, n, n)
        best = diff.argmin(-1)
        if bool((diff.amin(-1) > atol).any()):
            raise ValueError("matrices are not closed under multiplication")
        super().__init__(best, list(names) if names is not None else [f"g{g}" for g in range(n)])
        self.matrices_ = m
        #: Size ``d`` of the vectors the matrices act on (the last dimension of the input).
        self.size = d

    def transform(self, x: Tensor, elements: Tensor) -> Tensor:
        e = as_elements(elements, len(self), x.device)
        if x.shape[0] != e.numel() or x.shape[-1] != self.size:
            raise ValueError(f"{self!r} expects a stack of shape ({e.numel()}, ..., {self.size}), got {tuple(x.shape)}")
        mats = self.matrices_.to(device=x.device, dtype=x.dtype)[e]  # (m, d, d)
        flat = x.reshape(x.shape[0], -1, self.size)
        return torch.einsum("mij,mbj->mbi", mats, flat).reshape(x.shape)

    def probe(self) -> Tensor:
        return torch.eye(self.size, dtype=torch.float64)

    def signature(self) -> tuple:
        return (tuple(self.matrices_.shape), self.matrices_.numpy().tobytes())

    def __repr__(self) -> str:
        return f"MatrixGroup(order={len(self)}, size={self.size})"


class TrivialGroup(Group):
    """The group with one element, acting trivially. Useful as a neutral factor."""

    def __init__(self) -> None:
        super().__init__(torch.zeros(1, 1, dtype=torch.long), ["e"])

    def transform(self, x: Tensor, elements: Tensor) -> Tensor:
        as_elements(elements, 1, x.device)
        return x

    def transform_vocab(self, y: Tensor, elements: Tensor) -> Tensor:
        return y

    def canonicalize(self, x: Tensor, symmetric_under: Group | None = None) -> Tensor:
        return x

    def probe(self) -> Tensor:
        return torch.zeros(1, dtype=torch.float64)

    def signature(self) -> tuple:
        return ()

    def __repr__(self) -> str:
        return "TrivialGroup()"
