"""Actions of a group on a model's outputs.

A symmetrizer needs to know how the output transforms when the input does. The ``output``
argument of every symmetrizer is one of

- ``"invariant"``: outputs do not move (classifiers);
- ``"same"``: outputs transform like the input (image-to-image, token-to-token models);
- ``"vocab"``: the token group's permutation of an output vocabulary axis (language models);
- an :class:`Action` object, for anything else (:class:`PermutationAction`,
  :class:`MatrixAction`, or a subclass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ._base import Group, as_elements, on_device

__all__ = [
    "Action",
    "AxisPermutation",
    "InputAction",
    "InvariantAction",
    "MatrixAction",
    "PermutationAction",
    "RestrictedAction",
    "VocabAction",
    "resolve_action",
]


@dataclass(frozen=True)
class AxisPermutation:
    """An action that permutes the entries of one axis, restricted to the entries it moves.

    ``(g·y)[..., moved[q]] = y[..., moved[src[g, q]]]`` along axis ``dim`` (negative), and every
    entry outside ``moved`` is fixed by every element. For a word swap on a 50,257-word
    vocabulary ``moved`` holds the few swapped words, so symmetrizers touch only those columns.
    """

    dim: int
    size: int
    moved: Tensor  # (m,) sorted indices along ``dim``
    src: Tensor  # (|G|, m) positions into ``moved``

    def to(self, device: torch.device | str) -> AxisPermutation:
        """The same permutation with its index tensors on ``device`` (cached by the caller)."""
        return AxisPermutation(self.dim, self.size, self.moved.to(device), self.src.to(device))


class Action:
    """How ``group`` acts on a space of tensors: subclasses implement :meth:`transform`.

    ``transform(y, elements)`` applies ``elements[k]`` to ``y[k]`` (a stack) in one tensor
    operation; it must be a group action: ``a·(b·y) = (a∘b)·y``.
    """

    #: ``True`` when every element acts as the identity.
    is_trivial: bool = False

    def __init__(self, group: Group) -> None:
        if not isinstance(group, Group):
            raise TypeError(f"an Action needs a Group object, got {type(group).__name__}")
        self.group = group

    def transform(self, y: Tensor, elements: Tensor) -> Tensor:
        raise NotImplementedError

    def permuted_axis(self) -> tuple[int, int] | None:
        """``(dim, size)`` when every element permutes the entries of one axis (``dim``
        negative, ``size`` entries), else ``None``. Subclasses that permute one axis say so."""
        return None

    def axis_permutation(self, device: torch.device | str = "cpu") -> AxisPermutation | None:
        """The permutation of :meth:`permuted_axis`, restricted to the entries some element
        moves (computed once by applying the action to an index probe, then cached)."""
        axis = self.permuted_axis()
        if axis is None:
            return None
        cache: dict = self.__dict__.setdefault("_axis_permutations", {})
        key = str(device)
        if key not in cache:
            base = cache.get("cpu") or _probe_permutation(self, *axis)
            cache["cpu"] = base
            cache[key] = base if key == "cpu" else base.to(device)
        return cache[key]

    def act(self, y: Tensor, g: int) -> Tensor:
        """Apply element ``g`` to a single tensor ``y``."""
        return self.transform(y.unsqueeze(0), as_elements(g, len(self.group), y.device))[0]

    def restrict(self, embedding: Tensor, group: Group) -> Action:
        """The action of a subgroup ``group`` whose element ``k`` is ``embedding[k]`` here."""
        return RestrictedAction(self, embedding, group)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.group!r})"


class InvariantAction(Action):
    """Every element acts as the identity (``output="invariant"``)."""

    is_trivial = True

    def transform(self, y: Tensor, elements: Tensor) -> Tensor:
        return y


class InputAction(Action):
    """The group's own action on its inputs (``output="same"``)."""

    def transform(self, y: Tensor, elements: Tensor) -> Tensor:
        return self.group.transform(y, elements)


class VocabAction(Action):
    """The token group's permutation of the last (vocabulary) axis (``output="vocab"``)."""

    def __init__(self, group: Group) -> None:
        super().__init__(group)
        if not group.has_vocab_action:
            raise ValueError(
                f"output='vocab' needs a group that permutes an output vocabulary (TokenCycles or a "
                f"Product of them); {group!r} has none"
            )

    def transform(self, y: Tensor, elements: Tensor) -> Tensor:
        return self.group.transform_vocab(y, elements)

    def permuted_axis(self) -> tuple[int, int] | None:
        size = getattr(self.group, "out_vocab_size", None)
        return None if size is None else (-1, int(size))


class RestrictedAction(Action):
    """An action restricted to a subgroup through an embedding of its elements."""

    def __init__(self, parent: Action, embedding: Tensor, group: Group) -> None:
        super().__init__(group)
        self.parent = parent
        self.embedding = torch.as_tensor(embedding, dtype=torch.long)
        self.is_trivial = parent.is_trivial

    def transform(self, y: Tensor, elements: Tensor) -> Tensor:
        e = as_elements(elements, len(self.group), y.device)
        return self.parent.transform(y, on_device(self, "embedding", self.embedding, y.device)[e])

    def permuted_axis(self) -> tuple[int, int] | None:
        return self.parent.permuted_axis()


class PermutationAction(Action):
    """A user-given permutation action on one dimension of the output.

    ``perms[g][p]`` is the position to which element ``g`` moves the entry at ``p``. The
    permutations must compose like the group's elements (checked). ``dim`` counts from the end
    (negative), so the same action applies to single outputs and to batches.

    Examples
    --------
    >>> import torch
    >>> from multiequi.groups import Flip
    >>> from multiequi.groups import PermutationAction
    >>> a = PermutationAction(Flip(), [[0, 1, 2], [2, 1, 0]])
    >>> a.act(torch.tensor([1.0, 2.0, 3.0]), 1)
    tensor([3., 2., 1.])
    """

    def __init__(self, group: Group, perms: Sequence[Sequence[int]] | Tensor, dim: int = -1) -> None:
        super().__init__(group)
        p = torch.as_tensor(perms, dtype=torch.long)
        if p.dim() != 2 or p.shape[0] != len(group):
            raise ValueError(f"perms must have one row per group element ({len(group)}), got shape {tuple(p.shape)}")
        size = p.shape[1]
        for g in range(len(group)):
            if not torch.equal(p[g].sort().values, torch.arange(size)):
                raise ValueError(f"perms[{g}] is not a permutation of 0..{size - 1}")
        t = group.table
        for a in range(len(group)):
            for b in range(len(group)):
                if not torch.equal(p[a][p[b]], p[int(t[a, b])]):
                    raise ValueError(
                        f"perms do not compose like the group: perms[{a}]∘perms[{b}] != perms[{int(t[a, b])}]"
                    )
        if int(dim) >= 0:
            raise ValueError(f"dim must be negative (counted from the end), got {dim}")
        self.src = p.argsort(dim=1)  # (g·y)[q] = y[src[g][q]]
        self.dim = int(dim)
        self.size = size

    def permuted_axis(self) -> tuple[int, int] | None:
        return (self.dim, self.size)

    def transform(self, y: Tensor, elements: Tensor) -> Tensor:
        e = as_elements(elements, len(self.group), y.device)
        if y.shape[0] != e.numel() or y.shape[self.dim] != self.size:
            raise ValueError(
                f"expected a stack of {e.numel()} tensors of size {self.size} at dim {self.dim}, got {tuple(y.shape)}"
            )
        yt = y.movedim(self.dim, -1)
        idx = on_device(self, "src", self.src, y.device)[e]
        flat = yt.reshape(yt.shape[0], -1, self.size)
        out = torch.gather(flat, 2, idx[:, None, :].expand(flat.shape[0], flat.shape[1], self.size))
        return out.reshape(yt.shape).movedim(-1, self.dim)


class MatrixAction(Action):
    """A user-given linear action ``g·y = M_g y`` on the last dimension of the output."""

    def __init__(self, group: Group, matrices: Sequence[Tensor] | Tensor, atol: float = 1e-6) -> None:
        super().__init__(group)
        m = torch.stack([torch.as_tensor(a, dtype=torch.float64) for a in matrices])
        if m.dim() != 3 or m.shape[0] != len(group) or m.shape[1] != m.shape[2]:
            raise ValueError(f"matrices must be ({len(group)}, d, d), got shape {tuple(m.shape)}")
        t = group.table
        prod = torch.einsum("aij,bjk->abik", m, m)
        if not torch.allclose(prod, m[t], atol=atol):
            raise ValueError("matrices do not compose like the group's elements")
        self.matrices = m

    def transform(self, y: Tensor, elements: Tensor) -> Tensor:
        e = as_elements(elements, len(self.group), y.device)
        d = self.matrices.shape[-1]
        if y.shape[0] != e.numel() or y.shape[-1] != d:
            raise ValueError(f"expected a stack of shape ({e.numel()}, ..., {d}), got {tuple(y.shape)}")
        mats = self.matrices.to(device=y.device, dtype=y.dtype)[e]
        flat = y.reshape(y.shape[0], -1, d)
        return torch.einsum("mij,mbj->mbi", mats, flat).reshape(y.shape)


def _probe_permutation(action: Action, dim: int, size: int, chunk: int = 32) -> AxisPermutation:
    """Apply ``action`` to the index probe ``0 .. size-1`` laid along ``dim``, ``chunk`` elements
    at a time (a 216-element product on a 50,257-word vocabulary stays small)."""
    n = len(action.group)
    shape = (1, size) + (1,) * (-dim - 1)
    probe = torch.arange(size).reshape(shape)
    ar = torch.arange(size)

    def rows(lo: int, hi: int) -> Tensor:
        e = torch.arange(lo, hi)
        out = action.transform(probe.unsqueeze(0).expand(hi - lo, *shape), e)
        return out.reshape(hi - lo, size)

    moved_mask = torch.zeros(size, dtype=torch.bool)
    for lo in range(0, n, chunk):
        moved_mask |= (rows(lo, min(n, lo + chunk)) != ar).any(0)
    moved = moved_mask.nonzero().flatten()
    pos = torch.full((size,), -1, dtype=torch.long)
    pos[moved] = torch.arange(moved.numel())
    src = torch.cat([pos[rows(lo, min(n, lo + chunk))[:, moved]] for lo in range(0, n, chunk)])
    if moved.numel() and int(src.min()) < 0:
        raise ValueError(f"{action!r} is not a permutation of axis {dim}")
    return AxisPermutation(dim, size, moved, src)


def resolve_action(group: Group, output: str | Action) -> Action:
    """Turn an ``output`` argument into an :class:`Action` of ``group``."""
    if isinstance(output, Action):
        if output.group is not group and (
            len(output.group) != len(group) or not torch.equal(output.group.table, group.table)
        ):
            raise ValueError(f"the output action belongs to {output.group!r}, not to {group!r}")
        return output
    if output == "invariant":
        return InvariantAction(group)
    if output == "same":
        return InputAction(group)
    if output == "vocab":
        return VocabAction(group)
    raise ValueError(f"output must be 'invariant', 'same', 'vocab' or an Action; got {output!r}")
