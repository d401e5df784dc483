"""Groups that permute positions of the trailing dimensions of a tensor (images, grids, sets)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._base import Group, as_elements

__all__ = ["Flip", "PermutationGroup", "PositionGroup", "Rot90", "cyclic_table"]


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

    def __repr__(self) -> str:
        return f"Flip(dim={self.dim})"


class PermutationGroup(PositionGroup):
    """A user-defined group of permutations of one tensor dimension.

    ``perms[g][p]`` is the position to which element ``g`` moves the entry at position ``p``
    (so ``(g·x)[perms[g][p]] = x[p]``). The list must start with the identity and be closed
    under composition; the composition table is computed from the permutations.

    Examples
    --------
    >>> import torch
    >>> from multiequi.groups import PermutationGroup
    >>> C3 = PermutationGroup([[0, 1, 2], [1, 2, 0], [2, 0, 1]])   # cyclic shifts of R^3
    >>> C3.act(torch.tensor([10.0, 20.0, 30.0]), 1)
    tensor([30., 10., 20.])
    >>> C3.inverse(1)
    2
    """

    def __init__(
        self, perms: Sequence[Sequence[int]] | Tensor, dim: int = -1, names: Sequence[str] | None = None
    ) -> None:
        p = torch.as_tensor(perms, dtype=torch.long)
        if p.dim() != 2:
            raise ValueError(f"perms must be a (n_elements, size) table, got shape {tuple(p.shape)}")
        n, size = p.shape
        ar = torch.arange(size)
        for g in range(n):
            if not torch.equal(p[g].sort().values, ar):
                raise ValueError(f"perms[{g}] = {p[g].tolist()} is not a permutation of 0..{size - 1}")
        if not torch.equal(p[0], ar):
            raise ValueError("perms[0] must be the identity permutation")
        if int(dim) >= 0:
            raise ValueError(f"dim must be negative (counted from the end), got {dim}")
        index = {tuple(row.tolist()): g for g, row in enumerate(p)}
        if len(index) != n:
            raise ValueError("perms lists the same permutation twice")
        table = torch.empty(n, n, dtype=torch.long)
        for a in range(n):
            for b in range(n):
                key = tuple(p[a][p[b]].tolist())  # (a∘b)(i) = a(b(i))
                if key not in index:
                    raise ValueError(f"perms is not closed under composition: perms[{a}]∘perms[{b}] is missing")
                table[a, b] = index[key]
        super().__init__(table, list(names) if names is not None else [f"g{g}" for g in range(n)])
        self.perms = p
        self.dim = int(dim)
        self.rank = -self.dim
        self.size = size

    @classmethod
    def from_generators(
        cls, generators: Sequence[Sequence[int]] | Tensor, dim: int = -1, max_order: int = 100_000
    ) -> PermutationGroup:
        """The group generated by the given permutations (closure by breadth-first search).

        Examples
        --------
        >>> from multiequi.groups import PermutationGroup
        >>> len(PermutationGroup.from_generators([[1, 2, 3, 0]]))            # C4 on 4 points
        4
        >>> len(PermutationGroup.from_generators([[1, 0, 2], [0, 2, 1]]))    # S3
        6
        """
        gens = [
            tuple(int(v) for v in g)
            for g in torch.as_tensor(generators, dtype=torch.long).reshape(-1, len(generators[0]))
        ]
        size = len(gens[0])
        identity = tuple(range(size))
        elements, frontier, seen = [identity], [identity], {identity}
        while frontier:
            nxt = []
            for p in frontier:
                for g in gens:
                    q = tuple(g[i] for i in p)  # g ∘ p
                    if q not in seen:
                        if len(seen) >= max_order:
                            raise ValueError(f"the generated group has more than {max_order} elements")
                        seen.add(q)
                        elements.append(q)
                        nxt.append(q)
            frontier = nxt
        return cls(elements, dim=dim)

    def _positions(self, shape: tuple[int, ...]) -> Tensor:
        size = shape[0]
        if size != self.size:
            raise ValueError(f"{self!r} permutes a dimension of size {self.size}; got size {size} at dim {self.dim}")
        rest = 1
        for s in shape[1:]:
            rest *= s
        # (g·x)[q] = x[perm⁻¹(q)]
        src = self.perms.argsort(dim=1)  # inverse permutations
        ar = torch.arange(size * rest).reshape(size, rest)
        return torch.stack([ar[src[g]].reshape(-1) for g in range(len(self))])

    def probe(self) -> Tensor:
        shape = (self.size,) + (1,) * (self.rank - 1)
        return torch.arange(self.size, dtype=torch.float64).reshape(shape)

    def __repr__(self) -> str:
        return f"PermutationGroup(order={len(self)}, size={self.size}, dim={self.dim})"
