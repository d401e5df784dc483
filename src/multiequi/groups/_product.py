"""Products of groups that act on the same tensors."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from ._base import Group, as_elements

__all__ = ["Product"]

_MAX_NONCOMMUTING_ORDER = 512


def _stack_act(g: Group, x: Tensor, e: Tensor, vocab: bool) -> Tensor:
    return g.transform_vocab(x, e) if vocab else g.transform(x, e)


class Product(Group):
    """The product of groups acting on the same tensors; its order is the product of orders.

    Element ``(g_1, …, g_N)`` acts as ``g_1·(g_2·(…(g_N·x)))``; its index is the mixed-radix
    number with the first factor most significant, so ``0`` is the identity.

    When the factors' actions commute (word swaps on disjoint words, flips of different axes)
    this is the direct product ``G_1 × … × G_N``. When they do not, as for ``Rot90()`` and
    ``Flip()``, which generate the dihedral group D4 (``r f = f r⁻¹``), the same eight
    transformations still form a group and the composition table and inverses are those of
    the transformations themselves, computed on a probe; :attr:`factors_commute` is then ``False``
    (symmetrizers over this group stay exact; :class:`~multiequi.MultiEquitune` refuses
    non-invariant outputs for such factors).

    Examples
    --------
    >>> from multiequi.groups import Rot90, Flip, TokenCycles, Product
    >>> D4 = Product(Rot90(), Flip())
    >>> len(D4), D4.factors_commute, D4 == Product(Rot90(), Flip())
    (8, False, True)
    >>> G = Product(TokenCycles([[1, 2]], 10), TokenCycles([[3, 4, 5]], 10))
    >>> len(G), G.factors_commute
    (6, True)
    >>> G.embedding(1).tolist()            # the product's indices of the second factor's elements
    [0, 1, 2]
    """

    def __init__(self, *factors: Group) -> None:
        if len(factors) == 1 and isinstance(factors[0], (list, tuple)):
            factors = tuple(factors[0])
        if not factors:
            raise ValueError("Product needs at least one group")
        for f in factors:
            if not isinstance(f, Group):
                raise TypeError(f"Product factors must be Group objects, got {type(f).__name__}")
        self.factors: tuple[Group, ...] = tuple(factors)
        sizes = [len(f) for f in factors]
        self._sizes = sizes
        strides = [1] * len(sizes)
        for j in range(len(sizes) - 2, -1, -1):
            strides[j] = strides[j + 1] * sizes[j + 1]
        self._strides = strides
        n = strides[0] * sizes[0]
        names = [
            "·".join(f.names[i] for f, i in zip(factors, idx, strict=True) if i) or "e"
            for idx in itertools.product(*[range(s) for s in sizes])
        ]
        self._probe_tensor = self._combined_probe()
        self.factors_commute = self._factors_commute()
        if self.factors_commute:
            table = self._direct_table()
            self._check_distinct(n)
        else:
            if n > _MAX_NONCOMMUTING_ORDER:
                raise ValueError(
                    f"non-commuting product of order {n} is too large to tabulate (max {_MAX_NONCOMMUTING_ORDER})"
                )
            table = self._table_from_probe(n)
        super().__init__(table, names)
        self.canonicalization = "collapse" if all(f.canonicalization == "collapse" for f in factors) else "template"

    # ---------------------------------------------------------------- structure
    def decompose(self, elements: Tensor) -> list[Tensor]:
        """Factor indices of product elements: one tensor per factor."""
        return [(elements // s) % n for s, n in zip(self._strides, self._sizes, strict=True)]

    def embedding(self, i: int) -> Tensor:
        """The product's indices of the elements of factor ``i``: entry ``k`` is the index of
        ``(e, …, g_k, …, e)`` (the ``k``-th element of factor ``i``, identity elsewhere)."""
        if not -len(self.factors) <= i < len(self.factors):
            raise IndexError(f"factor index {i} out of range for a product of {len(self.factors)} factors")
        i %= len(self.factors)
        return torch.arange(self._sizes[i]) * self._strides[i]

    def signature(self) -> tuple:
        return tuple((type(f).__qualname__, f.signature()) for f in self.factors)

    def _direct_table(self) -> Tensor:
        n = self._strides[0] * self._sizes[0]
        ar = torch.arange(n)
        a, b = self.decompose(ar[:, None].expand(n, n)), self.decompose(ar[None, :].expand(n, n))
        table = torch.zeros(n, n, dtype=torch.long)
        for f, s, ia, ib in zip(self.factors, self._strides, a, b, strict=True):
            table += f.table[ia, ib] * s
        return table

    def _combined_probe(self) -> Tensor:
        probes = [f.probe() for f in self.factors]
        if all(not p.dtype.is_floating_point for p in probes):
            return torch.unique(torch.cat([p.reshape(-1) for p in probes]))
        rank = max(p.dim() for p in probes)
        shape = [1] * rank
        for p in probes:
            for k in range(1, p.dim() + 1):
                shape[-k] = max(shape[-k], p.shape[-k], 3)
        return torch.arange(int(torch.tensor(shape).prod()), dtype=torch.float64).reshape(shape)

    def _signature(self, elements: Tensor) -> Tensor:
        x = self._probe_tensor.unsqueeze(0).expand(elements.numel(), *self._probe_tensor.shape)
        try:
            return self.transform(x, elements).reshape(elements.numel(), -1)
        except (ValueError, TypeError) as err:
            raise ValueError(f"the factors {self.factors} do not act on the same tensors: {err}") from err

    def _factors_commute(self) -> bool:
        probe = self._probe_tensor
        for f, h in itertools.combinations(self.factors, 2):
            nf, nh = len(f), len(h)
            ef = torch.arange(nf).repeat_interleave(nh)
            eh = torch.arange(nh).repeat(nf)
            x = probe.unsqueeze(0).expand(nf * nh, *probe.shape)
            try:
                fh = f.transform(h.transform(x, eh), ef)
                hf = h.transform(f.transform(x, ef), eh)
            except (ValueError, TypeError) as err:
                raise ValueError(f"the factors {f!r} and {h!r} do not act on the same tensors: {err}") from err
            if not torch.equal(fh, hf):
                return False
        return True

    def _check_distinct(self, n: int) -> None:
        """Refuse factors that share transformations (``Product(Flip(), Flip())``, or ``Rot90()``
        with ``Rot90((-1, -2))``): their product would list one transformation several times."""
        distinct = torch.unique(self._signature(torch.arange(n)), dim=0).shape[0]
        if distinct != n:
            raise ValueError(
                f"the factors {self.factors} share transformations: their product has {distinct} distinct "
                f"elements, not {n}; keep one of the factors that act alike"
            )

    def _table_from_probe(self, n: int) -> Tensor:
        ar = torch.arange(n)
        sig = self._signature(ar)
        index = {tuple(row.tolist()): g for g, row in enumerate(sig)}
        if len(index) != n:
            raise ValueError(
                f"the factors {self.factors} share transformations: their product does not have {n} distinct elements"
            )
        a = ar.repeat_interleave(n)
        b = ar.repeat(n)
        x = self._probe_tensor.unsqueeze(0).expand(n * n, *self._probe_tensor.shape)
        ab = self.transform(self.transform(x, b), a).reshape(n * n, -1)
        table = torch.empty(n * n, dtype=torch.long)
        for k, row in enumerate(ab):
            g = index.get(tuple(row.tolist()))
            if g is None:
                raise ValueError(
                    f"the transformations of {self.factors} are not closed under composition: "
                    "their products generate a larger group"
                )
            table[k] = g
        return table.reshape(n, n)

    # ---------------------------------------------------------------- action
    def _apply(self, x: Tensor, elements: Tensor, vocab: bool) -> Tensor:
        e = as_elements(elements, len(self) if hasattr(self, "_table") else self._strides[0] * self._sizes[0], x.device)
        parts = self.decompose(e)
        for f, idx in zip(reversed(self.factors), reversed(parts), strict=True):
            x = _stack_act(f, x, idx, vocab)
        return x

    def transform(self, x: Tensor, elements: Tensor) -> Tensor:
        return self._apply(x, elements, vocab=False)

    @property
    def has_vocab_action(self) -> bool:
        return all(f.has_vocab_action for f in self.factors)

    @property
    def out_vocab_size(self) -> int | None:
        """The size of the output vocabulary the factors permute (``None`` if they have none or
        disagree)."""
        sizes = {getattr(f, "out_vocab_size", None) for f in self.factors}
        return sizes.pop() if len(sizes) == 1 else None

    def transform_vocab(self, y: Tensor, elements: Tensor) -> Tensor:
        if not self.has_vocab_action:
            return super().transform_vocab(y, elements)
        if not self.factors_commute:
            raise ValueError(f"output='vocab' needs commuting factors; {self.factors} do not commute")
        return self._apply(y, elements, vocab=True)

    def canonicalize(self, x: Tensor, symmetric_under: Group | None = None) -> Tensor:
        if self.canonicalization == "collapse":
            for f in self.factors:
                x = f.canonicalize(x, symmetric_under)
            return x
        return super().canonicalize(x, symmetric_under)

    def probe(self) -> Tensor:
        return self._probe_tensor.clone()

    def validate(self, x: Tensor) -> None:
        for f in self.factors:
            f.validate(x)

    def __repr__(self) -> str:
        return f"Product({', '.join(repr(f) for f in self.factors)})"
