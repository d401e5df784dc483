"""Several inputs stacked on one axis, each with its own group: random elements and their action.

Design 1 gives every input ``x_i`` its own group ``G_i``. When the inputs share a shape they are
often stacked, ``(B, N, ...)`` (the views of a multi-view example). These helpers draw an
independent element of every input's group for every example and apply them, one tensor
operation per input, and name the one group that contains every input's group (for a baseline
that transforms all inputs together, such as DSS).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..groups import Group, Product

__all__ = ["joint_group", "sample_elements", "transform_inputs"]


def _check_groups(groups: Sequence[Group]) -> list[Group]:
    out = list(groups)
    for i, g in enumerate(out):
        if not isinstance(g, Group):
            raise TypeError(f"groups[{i}] must be a Group object, got {type(g).__name__}")
    return out


def sample_elements(groups: Sequence[Group], n: int, generator: torch.Generator | None = None) -> Tensor:
    """Independent uniform elements for ``n`` examples and every input: ``(n, N)`` int64.

    Column ``i`` holds elements of ``groups[i]`` (:meth:`Group.sample`), drawn from
    ``generator`` (default: torch's global generator) input by input.

    Examples
    --------
    >>> import torch
    >>> from multiequi.groups import Flip, Rot90
    >>> from multiequi.multi_input import sample_elements
    >>> e = sample_elements([Rot90(), Flip()], 1000, torch.Generator().manual_seed(0))
    >>> tuple(e.shape), e[:, 0].unique().tolist(), e[:, 1].unique().tolist()
    ((1000, 2), [0, 1, 2, 3], [0, 1])
    """
    cols = [g.sample(n, generator) for g in _check_groups(groups)]  # a loop over the N inputs
    return torch.stack(cols, 1) if cols else torch.zeros(n, 0, dtype=torch.long)


def transform_inputs(x: Tensor, groups: Sequence[Group], elements: Tensor) -> Tensor:
    """Apply ``elements[b, i]`` of ``groups[i]`` to input ``i`` of example ``b``: ``x`` is
    ``(B, N, ...)`` with the inputs stacked on axis 1; one :meth:`Group.transform` per input.

    Examples
    --------
    >>> import torch
    >>> from multiequi.groups import Rot90
    >>> from multiequi.multi_input import transform_inputs
    >>> x = torch.arange(2 * 2 * 4.0).reshape(2, 2, 1, 2, 2)
    >>> y = transform_inputs(x, [Rot90(), Rot90()], torch.tensor([[1, 0], [0, 2]]))
    >>> torch.equal(y[0, 0], torch.rot90(x[0, 0], 1, (-2, -1))), torch.equal(y[0, 1], x[0, 1])
    (True, True)
    """
    gs = _check_groups(groups)
    if x.dim() < 3 or x.shape[1] != len(gs):
        raise ValueError(f"expected inputs stacked as (batch, N={len(gs)}, ...); got shape {tuple(x.shape)}")
    if elements.shape != x.shape[:2]:
        raise ValueError(f"elements must have shape (batch, N) = {tuple(x.shape[:2])}, got {tuple(elements.shape)}")
    views = [x[:, i] if len(g) == 1 else g.transform(x[:, i], elements[:, i]) for i, g in enumerate(gs)]
    return torch.stack(views, 1)


def joint_group(groups: Sequence[Group]) -> Group:
    """The group of the transformations of all ``groups`` together, acting on every input at once.

    Equal groups count once (``Rot90() == Rot90()``): the common group when all inputs share
    one; otherwise the :class:`~multiequi.groups.Product` of the distinct groups, whose table is
    computed from the actions (C4 and C2 flips together give D4, 8 elements).

    Examples
    --------
    >>> from multiequi.groups import Flip, Rot90
    >>> from multiequi.multi_input import joint_group
    >>> joint_group([Rot90(), Rot90()]) == Rot90(), len(joint_group([Rot90(), Flip(), Rot90()]))
    (True, 8)
    """
    distinct = list(dict.fromkeys(_check_groups(groups)))
    if not distinct:
        raise ValueError("joint_group needs at least one group")
    return distinct[0] if len(distinct) == 1 else Product(*distinct)
