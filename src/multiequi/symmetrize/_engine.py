"""The one engine behind every symmetrizer.

A symmetrizer is a list of *branches*. Branch ``i`` has a group ``G_i`` (a factor of the full
group ``G``) and the product ``G_-i`` of the other factors. For an input batch ``x`` it

1. makes ``x`` invariant to ``G_-i`` (``G_-i.canonicalize``: orbit collapse for word swaps, a
   template canonicaliser for images), keeping it ``G_i``-equivariant;
2. stacks the ``|G_i|`` transformed copies ``g·x``;

then the copies of *all* branches go through the model together, in batched calls of whole
orbits (``chunk_size`` bounds the rows per call). Each branch aligns its outputs with
``g⁻¹``, reduces them (mean, λ-weighted mean, or equizero selection), and symmetrizes the
result over ``G_-i``; the output is the mean of the branches. With one branch and no other
factors this is plain equitune over ``G``.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..groups import Group, Product
from ..groups._actions import Action, resolve_action
from ..groups._base import trusted

__all__ = ["TUNING", "Symmetrizer", "model_output_tensor"]

Output = Literal["invariant", "same", "vocab"] | Action
Aggregate = Literal["raw", "logits", "probs", "log_probs"]
ChunkSize = int | Literal["auto"] | None

#: ``True`` while the ``chunk_size="auto"`` tuner runs extra model calls (copy counters skip them).
TUNING: contextvars.ContextVar[bool] = contextvars.ContextVar("multiequi_tuning", default=False)


def model_output_tensor(out: Any) -> Tensor:
    """The tensor in a model's output: a Tensor, an object with ``.logits`` (Hugging Face
    ``ModelOutput``), or a mapping with a ``"logits"`` entry."""
    if isinstance(out, Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, Tensor):
        return logits
    if isinstance(out, Mapping) and isinstance(out.get("logits"), Tensor):
        return out["logits"]
    raise TypeError(
        f"the wrapped model returned {type(out).__name__}; expected a Tensor, an object with a "
        "`.logits` tensor (Hugging Face ModelOutput) or a mapping with a 'logits' tensor"
    )


def _aggregate_fn(aggregate: str) -> Callable[[Tensor], Tensor]:
    if aggregate in ("raw", "logits"):
        return lambda y: y
    if aggregate == "probs":
        return lambda y: torch.softmax(y, dim=-1)
    if aggregate == "log_probs":
        return lambda y: torch.log_softmax(y, dim=-1)
    raise ValueError(f"aggregate must be 'raw', 'probs' or 'log_probs', got {aggregate!r}")


class _Branch:
    """One factor ``G_i`` of the group, with the other factors ``G_-i`` and the output actions."""

    def __init__(self, group: Group, others: Group | None, action: Action, other_actions: list[Action]) -> None:
        self.group = group
        self.others = others
        self.action = action
        self.other_actions = other_actions

    def inputs(self, x: Tensor) -> Tensor:
        c = x if self.others is None else self.others.canonicalize(x, symmetric_under=self.group)
        return self.group.orbit(c)  # (|G_i|, B, ...)

    def align(self, y: Tensor) -> Tensor:
        """``g⁻¹·y_g`` for the stacked outputs ``y`` of this branch's copies."""
        return self.action.transform(y, self.group.inverse_elements(y.device))

    def symmetrize_others(self, y: Tensor, sorted_sum: bool) -> Tensor:
        """``S_{G_-i}[y]``: the mean of ``h·y`` over the other factors (one factor at a time;
        for commuting factors the projections compose)."""
        for act in self.other_actions:
            y = apply_symmetrizer(y, act, sorted_sum)
        return y


def sorted_mean(y: Tensor) -> Tensor:
    """Mean over dim 0 summed in sorted order, so the result does not depend on the order of
    the copies (bitwise identical across an orbit).

    Examples
    --------
    >>> import torch
    >>> from multiequi.symmetrize import sorted_mean
    >>> sorted_mean(torch.tensor([[3.0], [1.0], [2.0]]))
    tensor([2.])
    """
    if y.shape[0] == 1:
        return y[0]
    return torch.sort(y, dim=0).values.sum(0) / y.shape[0]


def apply_symmetrizer(y: Tensor, action: Action, sorted_sum: bool = True) -> Tensor:
    """``S[y] = 1/|H| Σ_h h·y`` for the group ``H`` of ``action``, all copies moved by one
    ``transform`` call on a stack."""
    n = len(action.group)
    if action.is_trivial or n == 1:
        return y
    stack = y.unsqueeze(0).expand(n, *y.shape)
    try:
        moved = action.transform(stack, torch.arange(n, device=y.device))
    except (ValueError, TypeError) as err:
        raise ValueError(f"{action!r} cannot act on an output of shape {tuple(y.shape)}: {err}") from err
    return sorted_mean(moved) if sorted_sum else moved.mean(0)


def symmetrize_output(y: Tensor, group: Group, output: Output = "same", *, sorted_sum: bool = True) -> Tensor:
    """The output symmetrizer ``S_G[y] = 1/|G| Σ_g g·y``: the projection onto ``G``-fixed outputs.

    All ``|G|`` transformed copies are produced by one ``transform`` call on a stack.

    Parameters
    ----------
    y : Tensor
        A batch of outputs (batch dimension first).
    group : Group
        The group ``G``.
    output : {"same", "vocab", "invariant"} or Action
        How ``G`` acts on ``y`` (``"same"``: like on its inputs).
    sorted_sum : bool
        Sum the copies in sorted order, so that ``g·S[y]`` equals ``S[y]`` bitwise for
        permutation actions (default ``True``).

    Returns
    -------
    Tensor
        ``S_G[y]``, same shape as ``y``; ``g·S_G[y] = S_G[y]`` for every ``g``.

    Examples
    --------
    >>> import torch
    >>> from multiequi.groups import Rot90
    >>> from multiequi.symmetrize import symmetrize_output
    >>> y = torch.arange(4.0).reshape(1, 2, 2)
    >>> symmetrize_output(y, Rot90())
    tensor([[[1.5000, 1.5000],
             [1.5000, 1.5000]]])
    """
    if not isinstance(group, Group):
        raise TypeError(
            f"group must be a Group object (e.g. Rot90(), PermutationGroup(...)), got {type(group).__name__}"
        )
    return apply_symmetrizer(y, resolve_action(group, output), sorted_sum)


class Symmetrizer(nn.Module):
    """Base class of the wrappers: holds the model, the branches and the batched call.

    Subclasses choose the branches and implement :meth:`reduce`, which turns one branch's
    aligned outputs ``(|G_i|, B, ...)`` into ``(B, ...)``.
    """

    def __init__(
        self,
        model: nn.Module | Callable[..., Any],
        groups: Group | Sequence[Group],
        output: Output = "invariant",
        aggregate: Aggregate = "raw",
        chunk_size: ChunkSize = "auto",
        sorted_sum: bool = True,
    ) -> None:
        super().__init__()
        if not callable(model):
            raise TypeError(f"model must be callable (an nn.Module or a function), got {type(model).__name__}")
        if isinstance(groups, Group):
            factors: list[Group] = [groups]
        else:
            factors = list(groups)
            if not factors or not all(isinstance(g, Group) for g in factors):
                raise TypeError(f"groups must be a Group or a non-empty list of Group objects, got {groups!r}")
        if chunk_size is not None and chunk_size != "auto" and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be a positive int, 'auto' or None, got {chunk_size!r}")
        self.model = model
        self.factors = factors
        self.group = factors[0] if len(factors) == 1 else Product(*factors)
        self.output = output
        self.action = resolve_action(self.group, output)
        self.aggregate = aggregate
        self._agg = _aggregate_fn(aggregate)
        self.chunk_size = chunk_size
        self.sorted_sum = sorted_sum
        self._tuned: dict[tuple, int] = {}
        if len(factors) > 1 and not self.group.is_direct and not self.action.is_trivial:
            raise ValueError(
                f"the factors {factors} do not commute (e.g. Rot90 and Flip generate D4, not C4×C2): "
                "Design 2 can only make an invariant output exact for them; use output='invariant', "
                "or Equitune over Product(...) for an equivariant output"
            )
        self.branches = self._make_branches()

    # ------------------------------------------------------------------ structure
    def _make_branches(self) -> list[_Branch]:
        """Design 2 branches: one per factor (a single branch for one group)."""
        g = self.group
        if len(self.factors) == 1:
            return [_Branch(g, None, self.action, [])]
        branches = []
        strides = g._strides  # type: ignore[attr-defined]
        embs = [torch.arange(len(f)) * s for f, s in zip(self.factors, strides, strict=True)]
        for i, f in enumerate(self.factors):
            rest = [h for j, h in enumerate(self.factors) if j != i]
            others = rest[0] if len(rest) == 1 else Product(*rest)
            other_actions = (
                []
                if self.action.is_trivial
                else [self.action.restrict(embs[j], h) for j, h in enumerate(self.factors) if j != i]
            )
            branches.append(_Branch(f, others, self.action.restrict(embs[i], f), other_actions))
        return branches

    @property
    def copies_per_input(self) -> int:
        """How many transformed copies of each input go through the model (``Σ |G_i|``)."""
        return sum(len(b.group) for b in self.branches)

    # ------------------------------------------------------------------ the batched call
    def _examples_per_call(self, x: Tensor, k: int, call: Callable[[int, int], Any]) -> int:
        b = x.shape[0]
        if self.chunk_size is None:
            return b
        if isinstance(self.chunk_size, int):
            return max(1, min(b, self.chunk_size // k))
        # "auto": measured once per input shape, only in inference (no grad, eval mode): 1, 2, 4, …
        # examples per call, the faster of two calls each, stopping when the cost per example
        # rose twice in a row or the tuning calls would exceed about one batch of work
        training = bool(getattr(self.model, "training", False))
        if torch.is_grad_enabled() or training or b * k <= 8:
            return b
        key = (tuple(x.shape[1:]), x.dtype, x.device.type, k)
        if key not in self._tuned:
            self._tuned[key] = self._tune(b, call, x.device)
        return min(b, self._tuned[key])

    def _tune(self, b: int, call: Callable[[int, int], Any], device: torch.device) -> int:
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        candidates = [c for c in (1, 2, 4, 8, 16, 32, 64) if c <= b]
        best, best_t, worse, spent = b, math.inf, 0, 0
        token = TUNING.set(True)
        try:
            call(0, 1)  # warm-up
            for c in candidates:
                if spent + 2 * c > max(b, 4):  # tuning costs at most about one batch
                    break
                spent += 2 * c
                t = math.inf
                for _ in range(2):  # the faster of two calls: robust to a busy machine
                    sync()
                    t0 = time.perf_counter()
                    call(0, c)
                    sync()
                    t = min(t, (time.perf_counter() - t0) / c)
                if t < best_t:
                    best, best_t, worse = c, t, 0
                else:
                    worse += 1
                    if worse == 2:  # per-example cost rose twice in a row: larger calls will not win
                        break
        finally:
            TUNING.reset(token)
        return best

    def _run(
        self, fn: Callable[..., Any], xs: Tensor, args: tuple, kwargs: dict, getter: Callable[[Any], Tensor]
    ) -> Tensor:
        """Call ``fn`` on the stacked copies ``xs`` of shape ``(K, B, ...)``; returns ``(K, B, ...)``."""
        k, b = xs.shape[:2]

        def repeat(v: Any, lo: int, hi: int) -> Any:
            if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == b:
                part = v[lo:hi]
                return part.unsqueeze(0).expand(k, *part.shape).reshape(k * (hi - lo), *part.shape[1:])
            return v

        def call(lo: int, hi: int) -> Tensor:
            rows = xs[:, lo:hi].reshape(k * (hi - lo), *xs.shape[2:])
            a = tuple(repeat(v, lo, hi) for v in args)
            kw = {n: repeat(v, lo, hi) for n, v in kwargs.items()}
            y = getter(fn(rows, *a, **kw))
            if y.dim() == 0 or y.shape[0] != rows.shape[0]:
                raise ValueError(
                    f"the wrapped model returned shape {tuple(y.shape)} for {rows.shape[0]} input rows; "
                    "its output must keep the batch dimension first"
                )
            return y.reshape(k, hi - lo, *y.shape[1:])

        per = self._examples_per_call(xs[0], k, call)
        if per >= b:
            return call(0, b)
        return torch.cat([call(lo, min(b, lo + per)) for lo in range(0, b, per)], dim=1)

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        """Symmetrized output for the batch ``x`` (batch dimension first); extra positional and
        keyword arguments are passed to the model, tensors sharing ``x``'s batch size repeated
        for every copy."""
        if not isinstance(x, Tensor):
            raise TypeError(
                f"the first argument must be a Tensor with the batch dimension first, got {type(x).__name__}"
            )
        if x.dim() == 0:
            raise ValueError("the first argument must have a batch dimension")
        self.group.validate(x)  # once; the orbits and canonical forms built from x are valid by construction
        with trusted():
            parts = [br.inputs(x) for br in self.branches]
        sizes = [p.shape[0] for p in parts]
        xs = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
        y = self._run(self.model, xs, args, kwargs, model_output_tensor)
        raw = y
        y = self._agg(y)
        outs = []
        for br, yi, ri, xi in zip(self.branches, y.split(sizes), raw.split(sizes), xs.split(sizes), strict=True):
            with trusted():
                aligned = br.align(yi)
            zi = self.reduce(br, aligned, ri, xi)
            with trusted():
                outs.append(br.symmetrize_others(zi, self.sorted_sum))
        if len(outs) == 1:
            return outs[0]
        return torch.stack(outs).mean(0)

    def reduce(self, branch: _Branch, aligned: Tensor, raw: Tensor, inputs: Tensor) -> Tensor:
        """Reduce a branch's aligned outputs ``(|G_i|, B, ...)`` to ``(B, ...)`` (equitune: mean)."""
        return sorted_mean(aligned) if self.sorted_sum else aligned.mean(0)

    def extra_repr(self) -> str:
        groups = ", ".join(repr(g) for g in self.factors)
        return (
            f"groups=[{groups}], output={self.output!r}, copies={self.copies_per_input}, chunk_size={self.chunk_size!r}"
        )
