"""The invariant-symmetric (IS) layer ``S_out ∘ A_in`` (``symmetrize_output`` is re-exported from the core)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from ..groups import Action, Group, resolve_action
from ..symmetrize import ChunkSize, Equitune, Output, apply_symmetrizer, symmetrize_output

__all__ = ["ISLayer", "symmetrize_output"]


def _check_group(group: Any, name: str) -> Group:
    if not isinstance(group, Group):
        raise TypeError(
            f"{name} must be a Group object (e.g. Rot90(), PermutationGroup(...)), got {type(group).__name__}"
        )
    return group


class ISLayer(nn.Module):
    """Invariant-symmetric layer ``IS(x) = S_out[ 1/|G_in| Σ_g M(g·x) ]`` around any model ``M``.

    The input average ``A_{G_in}[M]`` makes the output exactly invariant to ``in_group`` acting on
    the input; the output symmetrizer ``S_out[y] = 1/|G_out| Σ_h h·y`` then projects it onto the
    outputs fixed by ``out_group``. These are the off-diagonal (cross-input) terms of a
    multi-input network (Design 1 of the paper): an input transformed by its own group must not
    move another input's output, which only its own group may move. ``S∘A`` is a norm-1
    projection, so IS layers are universal approximators of IS functions.

    Cost: ``|G_in|`` copies of each input through ``M``, in batched calls (:class:`~multiequi.Equitune`
    with ``output="invariant"``); ``S_out`` is one ``transform`` call on the stacked outputs.

    Parameters
    ----------
    model : nn.Module or callable
        Any model taking the batch first (extra arguments pass through, as in
        :class:`~multiequi.Equitune`).
    in_group : Group
        The group acting on the input; the layer is invariant to it.
    out_group : Group or None
        The group acting on the output; the output is fixed by it. ``None``: no output
        symmetrization (the layer is then the input average ``A_{G_in}[M]``).
    output : {"same", "vocab", "invariant"} or Action
        How ``out_group`` acts on the model's output (ignored when ``out_group`` is ``None``).
    chunk_size : int, "auto" or None
        Rows per model call, as in :class:`~multiequi.Equitune`.
    sorted_sum : bool
        Average copies in sorted order (bitwise-exact invariance, default ``True``).

    Examples
    --------
    >>> import torch
    >>> from multiequi import ISLayer
    >>> from multiequi.groups import PermutationGroup, Rot90
    >>> C3 = PermutationGroup([[0, 1, 2], [1, 2, 0], [2, 0, 1]])      # cyclic shifts of R^3
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Unflatten(1, (1, 4, 4))).double()
    >>> layer = ISLayer(net, in_group=C3, out_group=Rot90())           # R^3 -> 4x4 images
    >>> x = torch.randn(2, 3, dtype=torch.float64)
    >>> y = layer(x)
    >>> torch.allclose(y, layer(C3.act(x, 1)))                         # invariant to C3 on the input
    True
    >>> torch.allclose(y, torch.rot90(y, 1, (-2, -1)))                 # output fixed by C4
    True
    """

    def __init__(
        self,
        model: nn.Module | Callable[..., Any],
        in_group: Group,
        out_group: Group | None,
        *,
        output: Output = "same",
        chunk_size: ChunkSize = "auto",
        sorted_sum: bool = True,
    ) -> None:
        super().__init__()
        _check_group(in_group, "in_group")
        if out_group is not None:
            _check_group(out_group, "out_group")
        self.average = Equitune(model, in_group, output="invariant", chunk_size=chunk_size, sorted_sum=sorted_sum)
        self.in_group = in_group
        self.out_group = out_group
        self.output: Action | None = None if out_group is None else resolve_action(out_group, output)
        self.sorted_sum = sorted_sum

    @property
    def model(self) -> nn.Module | Callable[..., Any]:
        """The wrapped model ``M``."""
        return self.average.model

    @property
    def copies_per_example(self) -> int:
        """Transformed copies of each example that go through the model (``|G_in|``)."""
        return len(self.in_group)

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """``S_out[A_{G_in}[M](x)]`` for the batch ``x`` (batch dimension first)."""
        y = self.average(x, *args, **kwargs)
        if self.output is None:
            return y
        return apply_symmetrizer(y, self.output, self.sorted_sum)

    def extra_repr(self) -> str:
        return f"in_group={self.in_group!r}, out_group={self.out_group!r}, output={self.output!r}"
