"""The one engine behind every symmetrizer.

A symmetrizer is a list of *branches*. Branch ``i`` has a group ``G_i`` (a factor of the full
group ``G``) and the product ``G_-i`` of the other factors. For an input batch ``x`` it

1. makes ``x`` invariant to ``G_-i`` (``G_-i.canonicalize``: orbit collapse for word swaps, a
   template canonicaliser for images), keeping it ``G_i``-equivariant;
2. stacks the ``|G_i|`` transformed copies ``g·x``;

then the copies of *all* branches go through the model together, in batched calls of whole
orbits (``chunk_size`` bounds the examples per call: each chunk's copies are built, run and
reduced before the next, so memory follows the chunk, not the batch). Each branch aligns its
outputs with ``g⁻¹``, reduces them (mean, λ-weighted mean, or equizero selection), and
symmetrizes the result over ``G_-i``; the output is the mean of the branches. With one branch
and no other factors this is plain equitune over ``G``.

Exactness in floating point. A mean over copies summed in a fixed order would change in its
last bits when the input is transformed (the copies come in another order). Two ways keep
``f(g·x) = g·f(x)`` bitwise: summing each entry's copies in sorted order (for invariant outputs
and general actions), or, when the output action permutes only a few entries of one axis (word
swaps on a vocabulary: :class:`~multiequi.groups.AxisPermutation`), ordering each example's
copies by their *inputs* (lexicographically) before the model: ``g·x`` has the same copies as
``x``, so they come in the same order, and only the moved entries need sorting. The order is
prefix-stable, so a decoder's per-row cache stays valid from one generation step to the next. For a
50,257-word vocabulary this replaces a sort of every logit by a plain sum (measured 314 ms
against 6 ms for 12 copies of 64 × 50,257 logits on a 2-core CPU).
"""

from __future__ import annotations

import contextvars
import math
import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..groups import Action, AxisPermutation, Group, Product, resolve_action, trusted

__all__ = [
    "Branch",
    "Copies",
    "Symmetrizer",
    "apply_symmetrizer",
    "examples_per_call",
    "is_tuning",
    "model_output_tensor",
    "sequential_sum",
    "sorted_mean",
    "symmetrize_output",
]

Output = Literal["invariant", "same", "vocab"] | Action
Aggregate = Literal["raw", "logits", "probs", "log_probs"]
ChunkSize = int | Literal["auto"] | None

# ``True`` while the ``chunk_size="auto"`` tuner runs extra model calls (copy counters skip them)
_TUNING: contextvars.ContextVar[bool] = contextvars.ContextVar("multiequi_tuning", default=False)

#: Below this many rows (examples × copies) a batch goes in one call: measuring is not worth it.
AUTO_MIN_ROWS = 8


def is_tuning() -> bool:
    """``True`` while a wrapper's ``chunk_size="auto"`` tuner makes its extra timing calls, so
    that hooks counting the calls that reach a model (:class:`~multiequi.testing.CopyCounter`)
    can leave them out."""
    return _TUNING.get()


def examples_per_call(chunk_size: ChunkSize, batch: int, copies: int, *, measure: bool = True) -> int | None:
    """How many examples (each with all its ``copies``) a wrapper sends to the model per call.

    The one chunking rule of every symmetrizer (and of the benchmarks that predict it):

    - ``None``: the whole batch in one call;
    - an int: ``chunk_size // copies`` examples (at least one, at most the batch): calls hold
      whole orbits;
    - ``"auto"``: the whole batch when measuring is pointless (one example, at most
      :data:`AUTO_MIN_ROWS` rows) or not allowed (``measure=False``: gradients enabled or the model
      in training mode, where one call keeps BatchNorm statistics over whole orbits); otherwise
      ``None``, meaning "measured on the first call for this input shape".

    Examples
    --------
    >>> from multiequi.symmetrize import examples_per_call
    >>> examples_per_call(None, 32, 6), examples_per_call(48, 32, 6), examples_per_call(4, 32, 6)
    (32, 8, 1)
    >>> examples_per_call("auto", 1, 8), examples_per_call("auto", 32, 6)
    (1, None)
    >>> examples_per_call("auto", 32, 6, measure=False)
    32
    """
    if chunk_size is None:
        return batch
    if chunk_size == "auto":
        return batch if batch <= 1 or batch * copies <= AUTO_MIN_ROWS or not measure else None
    return max(1, min(batch, int(chunk_size) // copies))


def _check_chunk_size(chunk_size: Any) -> ChunkSize:
    if chunk_size is None:
        return None
    if isinstance(chunk_size, str) and chunk_size == "auto":
        return "auto"
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, 'auto' or None, got {chunk_size!r}")
    return int(chunk_size)  # numpy integers too


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


def _lexicographic_ranks(rows: Tensor) -> Tensor:
    """The rank of every row ``rows[k, b]`` (shape ``(K, B)``) in the lexicographic order of the
    rows' bit patterns (``torch.unique(dim=0)``): equal rows get equal ranks, and the order is
    exact (no hashing) and *prefix-stable*: rows that extend earlier rows by new trailing entries
    keep their order unless they were equal. So an autoregressive decoder's cached state (one
    entry per row, as in Hugging Face ``past_key_values``) stays aligned with the rows from one
    step to the next."""
    k, b = rows.shape[:2]
    if k * b == 0:  # an empty batch: nothing to rank (reshape(0, -1) is ambiguous)
        return torch.zeros(k, b, dtype=torch.long, device=rows.device)
    flat = rows.reshape(k * b, -1)
    if flat.is_complex():
        flat = torch.view_as_real(flat).reshape(k * b, -1)
    if flat.dtype.is_floating_point:  # bit patterns: any fixed total order works, NaNs included
        flat = flat.contiguous().view({2: torch.int16, 4: torch.int32, 8: torch.int64}[flat.element_size()])
    elif flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    d = flat.shape[-1]
    if d == 0:
        return torch.zeros(k, b, dtype=torch.long, device=rows.device)
    if k * k * b * d <= 1 << 22:  # few copies (the usual case): compare them pairwise, a few fused ops
        pairs = flat.reshape(k, b, d)
        diff = pairs[:, None] != pairs[None, :]  # (k, k, B, d)
        first = diff.to(torch.uint8).argmax(-1, keepdim=True)  # first differing entry of rows i and j
        vi = torch.gather(pairs[:, None].expand(diff.shape), -1, first)[..., 0]
        vj = torch.gather(pairs[None, :].expand(diff.shape), -1, first)[..., 0]
        less = diff.any(-1) & (vi < vj)  # row i < row j, lexicographically
        return less.sum(0)  # rows smaller than row j: the same order as the ranks below
    _, ranks = torch.unique(flat, dim=0, sorted=True, return_inverse=True)
    return ranks.reshape(k, b)


class Branch:
    """One branch of a symmetrizer: a factor ``G_i``, the product ``G_-i`` of the other factors
    and their output actions (what :meth:`Symmetrizer.reduce` receives).

    Attributes
    ----------
    group : Group
        The factor ``G_i`` whose ``|G_i|`` copies this branch sends through the model.
    others : Group or None
        ``G_-i``, to which the branch's input is made invariant (``None`` for one group).
    action : Action
        How ``G_i`` acts on the output.
    other_actions : list of Action
        How each other factor acts on the output (empty for invariant outputs).
    """

    def __init__(
        self, group: Group, others: Group | None, action: Action, other_actions: list[Action], sorted_sum: bool
    ) -> None:
        self.group = group
        self.others = others
        self.action = action
        self.other_actions = other_actions
        perm = None if action.is_trivial else action.axis_permutation()
        #: the output action permutes few entries of one axis: reduce only those entries
        self.sparse = perm is not None and 2 * perm.moved.numel() <= perm.size
        #: order each example's copies by their inputs (see the module docstring)
        self.keyed = self.sparse and sorted_sum

    def _perm(self, device: torch.device) -> AxisPermutation:
        perm = self.action.axis_permutation(device)
        assert perm is not None
        return perm

    def inputs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The copies ``(|G_i|, B, ...)`` of the batch ``x`` and the element of each copy
        ``(|G_i|, B)``."""
        c = x if self.others is None else self.others.canonicalize(x, symmetric_under=self.group)
        rows = self.group.orbit(c)  # (|G_i|, B, ...): row k is element k
        n, b = rows.shape[:2]
        if not self.keyed:
            return rows, torch.arange(n, device=x.device)[:, None].expand(n, b)
        order = torch.argsort(_lexicographic_ranks(rows), dim=0, stable=True)  # (n, B)
        index = order.reshape(n, b, *([1] * (rows.dim() - 2))).expand(rows.shape)
        return torch.take_along_dim(rows, index, dim=0), order

    def align(self, y: Tensor, elements: Tensor) -> Tensor:
        """``g⁻¹·y_g`` for the stacked outputs ``y`` ``(|G_i|, B, ...)`` of copies of elements
        ``elements`` ``(|G_i|, B)``."""
        inv = self.group.inverse_elements(y.device)
        if not self.keyed:  # elements[k, b] = k: one element per stacked row
            return self.action.transform(y, inv)
        n, b = y.shape[:2]
        flat = self.action.transform(y.reshape(n * b, *y.shape[2:]), inv[elements.reshape(-1)])
        return flat.reshape(y.shape)

    def mean(self, y: Tensor, elements: Tensor, sorted_sum: bool) -> Tensor:
        """The equitune mean ``1/|G_i| Σ_g g⁻¹·y_g`` of the outputs ``y`` ``(|G_i|, B, ...)``."""
        if not self.sparse:
            aligned = self.align(y, elements)
            return sorted_mean(aligned) if sorted_sum else aligned.mean(0)
        # entries no element moves: the plain mean (in key order: bitwise equivariant);
        # the few moved entries: aligned with g⁻¹ and summed in sorted order
        perm = self._perm(y.device)
        if y.dim() < 2 - perm.dim or y.shape[perm.dim] != perm.size:
            raise ValueError(
                f"{getattr(self.action, 'parent', self.action)!r} permutes {perm.size} "
                f"entries along dim {perm.dim} of the model's output; the model returned shape "
                f"{tuple(y.shape[1:])} for a batch of {y.shape[1]}"
            )
        out = y.mean(0)
        sub = y.index_select(perm.dim, perm.moved).movedim(perm.dim, -1)  # (n, B, ..., m)
        inv = self.group.inverse_elements(y.device)
        idx = perm.src[inv[elements]]  # (n, B, m)
        idx = idx.reshape(*idx.shape[:2], *([1] * (sub.dim() - 3)), idx.shape[-1]).expand(sub.shape)
        aligned = torch.gather(sub, -1, idx)
        moved = sorted_mean(aligned) if sorted_sum else aligned.mean(0)
        return out.index_copy(perm.dim, perm.moved, moved.movedim(-1, perm.dim))

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
    if y.shape[0] == 2:  # IEEE addition is commutative: a + b == b + a bitwise, no sort needed
        return (y[0] + y[1]) / 2
    return sequential_sum(torch.sort(y, dim=0).values) / y.shape[0]


def sequential_sum(y: Tensor | Sequence[Tensor]) -> Tensor:
    """``y[0] + y[1] + …`` over dim 0, added left to right, one elementwise add per copy.

    Every entry is summed in the same order, wherever it sits in the tensor. ``torch.sum`` over
    dim 0 does not promise that: measured on a ``(6, 80)`` float32 tensor whose columns are all
    equal, 16 of the 80 sums differed in the last bit (vectorized and tail lanes accumulate
    differently), which breaks bitwise equivariance when the output action moves entries.
    """
    acc = y[0].clone()
    for k in range(1, len(y)):
        acc.add_(y[k])
    return acc


def apply_symmetrizer(y: Tensor, action: Action, sorted_sum: bool = True) -> Tensor:
    """``S[y] = 1/|H| Σ_h h·y`` for the group ``H`` of ``action``, all copies moved by one
    ``transform`` call on a stack."""
    n = len(action.group)
    if action.is_trivial or n == 1:
        return y
    perm = action.axis_permutation(y.device)
    if perm is not None:  # only the entries the group moves change; the others are fixed
        if y.dim() < -perm.dim or y.shape[perm.dim] != perm.size:
            raise ValueError(
                f"{action!r} permutes {perm.size} entries along dim {perm.dim}; got an output of shape {tuple(y.shape)}"
            )
        sub = y.index_select(perm.dim, perm.moved).movedim(perm.dim, -1)  # (..., m)
        moved = sub[..., perm.src].movedim(-2, 0)  # (n, ..., m): copy h is h·sub
        mean = sorted_mean(moved) if sorted_sum else moved.mean(0)
        return y.index_copy(perm.dim, perm.moved, mean.movedim(-1, perm.dim))
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


@dataclass
class Copies:
    """The transformed copies of a batch ``x`` of ``B`` examples (:meth:`Symmetrizer.copies`).

    Attributes
    ----------
    rows : Tensor
        ``(K, B, ...)``: every branch's copies stacked, branch after branch (``K = Σ |G_i|``); one
        model call takes ``rows.reshape(K * B, ...)``.
    elements : list of Tensor
        Per branch, ``(|G_i|, B)``: the element of ``G_i`` that made each copy (the copies of an
        example may be ordered by their inputs, see the module docstring).
    """

    rows: Tensor
    elements: list[Tensor]

    @property
    def sizes(self) -> list[int]:
        """Copies per example of each branch (``|G_i|``)."""
        return [int(e.shape[0]) for e in self.elements]


def _check_per_example(per_example: Sequence[str | int] | None, input_key: str | None) -> tuple[str | int, ...] | None:
    """The ``per_example`` option as a tuple of keyword names and positions (``None`` kept)."""
    if per_example is None:
        return None
    if isinstance(per_example, (str, int)):
        raise TypeError(f"per_example must be a list of argument names or positions, got {per_example!r}")
    names = tuple(per_example)
    for name in names:
        ok = (isinstance(name, str) and name != "") or (
            isinstance(name, int) and not isinstance(name, bool) and name >= 0
        )
        if not ok:
            raise TypeError(f"per_example entries must be keyword names or positions >= 0, got {name!r}")
    if input_key is not None and input_key in names:
        raise ValueError(f"per_example names {input_key!r}, the group's input (input_key): it is always per example")
    return names


class Symmetrizer(nn.Module):
    """Base class of the six wrappers: the model, the branches and the batched call.

    ``Symmetrizer(model, G)`` is equitune over ``G``; ``Symmetrizer(model, [G1, G2, ...])`` is
    multi-equitune over the factors (one branch per factor, ``Σ |G_i|`` copies). Every wrapper
    takes the same arguments: the model, the group or groups, then keyword-only ``output``,
    ``aggregate``, ``chunk_size``, ``sorted_sum``, ``input_key``, ``output_key`` and
    ``per_example`` (see :class:`~multiequi.Equitune`).

    A step at a time (generation with a cache): :meth:`copies` builds the copies of a batch,
    :meth:`combine` turns the model's outputs on them into the symmetrized output, and
    :meth:`extend` gives each copy its next token in its own frame.

    New reductions (the public extension point): subclass and override :meth:`reduce`, which
    turns one branch's outputs, aligned with ``g⁻¹``, from ``(|G_i|, B, ...)`` into ``(B, ...)``.
    The result stays equivariant when the reduction does not depend on the order of the copies
    (a mean, a weighted mean with weights computed from the copies, a selection).

    Examples
    --------
    A wrapper that keeps the largest score of every class over the rotations:

    >>> import torch
    >>> from multiequi import Symmetrizer
    >>> from multiequi.groups import Rot90
    >>> class MaxOverRotations(Symmetrizer):
    ...     def reduce(self, branch, aligned, raw, inputs, elements):
    ...         return aligned.amax(0)
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(9, 3))
    >>> f = MaxOverRotations(net, Rot90())
    >>> x = torch.randn(2, 1, 3, 3)
    >>> torch.allclose(f(x), f(torch.rot90(x, 1, (-2, -1))), atol=1e-6), f.copies_per_example
    (True, 4)
    """

    def __init__(
        self,
        model: nn.Module | Callable[..., Any],
        groups: Group | Sequence[Group],
        *,
        output: Output = "invariant",
        aggregate: Aggregate = "raw",
        chunk_size: ChunkSize = "auto",
        sorted_sum: bool = True,
        input_key: str | None = None,
        output_key: str | None = None,
        per_example: Sequence[str | int] | None = None,
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
        if not isinstance(sorted_sum, bool):
            raise TypeError(f"sorted_sum must be True or False, got {sorted_sum!r}")
        for name, key in (("input_key", input_key), ("output_key", output_key)):
            if key is not None and (not isinstance(key, str) or not key):
                raise TypeError(f"{name} must be a keyword name such as 'input_ids' or None, got {key!r}")
        self.input_key = input_key
        self.output_key = output_key
        self.per_example = _check_per_example(per_example, input_key)
        self.model = model
        self.factors = factors
        self.group = factors[0] if len(factors) == 1 else Product(*factors)
        self.output = output
        self.action = resolve_action(self.group, output)
        self.aggregate = aggregate
        self._agg = _aggregate_fn(aggregate)
        self._tuned: dict[tuple, int] = {}
        self.chunk_size = chunk_size
        self.sorted_sum = sorted_sum
        if len(factors) > 1 and not self.group.factors_commute and not self.action.is_trivial:
            raise ValueError(
                f"the factors {factors} do not commute (e.g. Rot90 and Flip generate D4, not C4×C2): "
                "Design 2 can only make an invariant output exact for them; use output='invariant', "
                "or Equitune over Product(...) for an equivariant output"
            )
        self.branches = self._make_branches()

    # ------------------------------------------------------------------ structure
    @property
    def chunk_size(self) -> ChunkSize:
        """Rows per model call: a positive int, ``"auto"`` or ``None`` (checked when set)."""
        return self._chunk_size

    @chunk_size.setter
    def chunk_size(self, value: ChunkSize) -> None:
        self._chunk_size = _check_chunk_size(value)
        self._tuned.clear()

    def _make_branches(self) -> list[Branch]:
        """Design 2 branches: one per factor (a single branch for one group)."""
        g = self.group
        if len(self.factors) == 1:
            return [Branch(g, None, self.action, [], self.sorted_sum)]
        assert isinstance(g, Product)
        branches = []
        embs = [g.embedding(i) for i in range(len(self.factors))]
        for i, f in enumerate(self.factors):
            rest = [h for j, h in enumerate(self.factors) if j != i]
            others = rest[0] if len(rest) == 1 else Product(*rest)
            other_actions = (
                []
                if self.action.is_trivial
                else [self.action.restrict(embs[j], h) for j, h in enumerate(self.factors) if j != i]
            )
            branches.append(Branch(f, others, self.action.restrict(embs[i], f), other_actions, self.sorted_sum))
        return branches

    @property
    def copies_per_example(self) -> int:
        """How many transformed copies of each example go through the model (``Σ |G_i|``)."""
        return sum(len(b.group) for b in self.branches)

    # ------------------------------------------------------------------ the batched call
    def _examples_per_call(self, x: Tensor, k: int, process: Callable[[int, int], Tensor]) -> int:
        b = x.shape[0]
        measure = not (torch.is_grad_enabled() or bool(getattr(self.model, "training", False)))
        per = examples_per_call(self.chunk_size, b, k, measure=measure)
        if per is not None:
            return per
        # "auto": measured once per input shape, only in inference (no grad, eval mode): 1, 2, 4, …
        # examples per call, the faster of two calls each, stopping when the cost per example
        # rose twice in a row or the tuning calls would exceed about one batch of work
        key = (tuple(x.shape[1:]), x.dtype, x.device.type, k)
        if key not in self._tuned:
            self._tuned[key] = self._tune(b, process, x.device)
        return min(b, self._tuned[key])

    def _tune(self, b: int, process: Callable[[int, int], Tensor], device: torch.device) -> int:
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        candidates = [c for c in (1, 2, 4, 8, 16, 32, 64) if c <= b]
        best, best_t, worse, spent = b, math.inf, 0, 0
        token = _TUNING.set(True)
        try:
            process(0, 1)  # warm-up
            for c in candidates:
                if spent + 2 * c > max(b, 4):  # tuning costs at most about one batch
                    break
                spent += 2 * c
                t = math.inf
                for _ in range(2):  # the faster of two calls: robust to a busy machine
                    sync()
                    t0 = time.perf_counter()
                    process(0, c)
                    sync()
                    t = min(t, (time.perf_counter() - t0) / c)
                if t < best_t:
                    best, best_t, worse = c, t, 0
                else:
                    worse += 1
                    if worse == 2:  # per-example cost rose twice in a row: larger calls will not win
                        break
        finally:
            _TUNING.reset(token)
        return best

    def _call(
        self,
        fn: Callable[..., Any],
        xs: Tensor,
        span: tuple[int, int, int],
        args: tuple,
        kwargs: dict,
        getter: Callable[[Any], Tensor],
        key: str | None = None,
    ) -> Tensor:
        """One call of ``fn`` on the stacked copies ``xs`` ``(K, b, ...)`` of examples ``lo..hi``
        of a batch of ``B`` (``span = (lo, hi, B)``); returns ``(K, b, ...)``. The copies go in as
        the first positional argument, or as the keyword ``key``. Tensor arguments with ``B`` rows
        are sliced to the chunk and repeated for every copy: those named by ``per_example`` when
        it is set (others pass unchanged), else every tensor whose first dimension is ``B``."""
        k, n = xs.shape[:2]
        lo, hi, b = span
        explicit = getattr(self, "per_example", None)

        def repeat(v: Any, name: str | int) -> Any:
            if explicit is not None:
                if name not in explicit:
                    return v  # shared by every example and copy, whatever its shape
                if not isinstance(v, Tensor) or v.dim() == 0 or v.shape[0] != b:
                    got = f"shape {tuple(v.shape)}" if isinstance(v, Tensor) else type(v).__name__
                    where = f"argument {name!r}" if isinstance(name, str) else f"positional argument {name}"
                    raise ValueError(f"per_example {where} must be a tensor with the batch's {b} rows first, got {got}")
            elif not (isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == b):
                return v
            part = v[lo:hi]
            return part.unsqueeze(0).expand(k, *part.shape).reshape(k * n, *part.shape[1:])

        rows = xs.reshape(k * n, *xs.shape[2:])
        other = {name: repeat(v, name) for name, v in kwargs.items()}
        positional = [repeat(v, i) for i, v in enumerate(args)]
        if key is None:
            out = fn(rows, *positional, **other)
        else:
            out = fn(*positional, **{key: rows}, **other)
        y = getter(out)
        if y.dim() == 0 or y.shape[0] != rows.shape[0]:
            raise ValueError(
                f"the wrapped model returned shape {tuple(y.shape)} for {rows.shape[0]} input rows; "
                "its output must keep the batch dimension first"
            )
        return y.reshape(k, n, *y.shape[1:])

    def _read_output(self, out: Any) -> Tensor:
        """The tensor of the model's output that is symmetrized (``output_key``, else the output
        itself or its ``logits``)."""
        if self.output_key is None:
            return model_output_tensor(out)
        key = self.output_key
        value = out.get(key) if isinstance(out, Mapping) else getattr(out, key, None)
        if not isinstance(value, Tensor):
            fields = list(out.keys()) if isinstance(out, Mapping) else [k for k in vars(out) if not k.startswith("_")]
            raise TypeError(
                f"output_key={key!r}: the wrapped model's output ({type(out).__name__}) has no tensor {key!r}; "
                f"its fields are {fields}"
            )
        return value

    def copies(self, x: Tensor) -> Copies:
        """The transformed copies of the batch ``x`` that go through the model: every branch's,
        made invariant to its other factors (no model call)."""
        with trusted():
            parts = [br.inputs(x) for br in self.branches]
        rows = parts[0][0] if len(parts) == 1 else torch.cat([r for r, _ in parts], dim=0)
        return Copies(rows, [e for _, e in parts])

    def combine(self, raw: Tensor, copies: Copies) -> Tensor:
        """The symmetrized output from the model's outputs ``raw`` ``(K, B, ...)`` on ``copies``:
        each branch aligned with ``g⁻¹`` and reduced, symmetrized over its other factors, and the
        branches averaged."""
        if raw.shape[0] != copies.rows.shape[0] or raw.shape[1] != copies.rows.shape[1]:
            raise ValueError(
                f"expected the model's outputs on the copies, shape ({copies.rows.shape[0]}, "
                f"{copies.rows.shape[1]}, ...); got {tuple(raw.shape)}"
            )
        y = self._agg(raw)
        sizes = copies.sizes
        rows = copies.rows.split(sizes)
        outs = []
        plain_mean = type(self).reduce is Symmetrizer.reduce
        for br, elements, xi, yi, ri in zip(
            self.branches, copies.elements, rows, y.split(sizes), raw.split(sizes), strict=True
        ):
            with trusted():
                if plain_mean:
                    zi = br.mean(yi, elements, self.sorted_sum)
                else:
                    zi = self.reduce(br, br.align(yi, elements), ri, xi, elements)
                outs.append(br.symmetrize_others(zi, self.sorted_sum))
        if len(outs) == 1:
            return outs[0]
        return sequential_sum(outs) / len(outs)  # type: ignore[arg-type]

    def extend(self, copies: Copies, tokens: Tensor) -> Tensor:
        """The next input of every copy when the example's sequence grows by ``tokens``.

        For groups that act on each position of a sequence on its own (word swaps): copy ``g`` of
        branch ``i`` was made from ``canon_{-i}(x)``, so it continues with
        ``g·canon_{-i}(tokens)``. ``tokens`` is ``(B,)`` or ``(B, T)``; returns ``(K, B)`` or
        ``(K, B, T)``, in the order of ``copies.rows``. Used to decode with a cache: the copies
        keep their rows from step to step.
        """
        b = copies.rows.shape[1]
        t = tokens if tokens.dim() > 1 else tokens.unsqueeze(-1)
        if t.shape[0] != b:
            raise ValueError(f"tokens must have one row per example ({b}), got shape {tuple(tokens.shape)}")
        self.group.validate(t)
        parts = []
        with trusted():
            for br, elements in zip(self.branches, copies.elements, strict=True):
                c = t if br.others is None else br.others.canonicalize(t, symmetric_under=br.group)
                n = elements.shape[0]
                stack = c.unsqueeze(0).expand(n, *c.shape).reshape(n * b, *c.shape[1:])
                moved = br.group.transform(stack, elements.reshape(-1))
                parts.append(moved.reshape(n, b, *c.shape[1:]))
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
        return out if tokens.dim() > 1 else out[..., 0]

    def _process(self, x: Tensor, lo: int, hi: int, args: tuple, kwargs: dict) -> Tensor:
        """The symmetrized output of examples ``lo..hi``: their copies (all branches) in one
        model call, each branch reduced and symmetrized over its other factors."""
        copies = self.copies(x[lo:hi])
        raw = self._call(self.model, copies.rows, (lo, hi, x.shape[0]), args, kwargs, self._read_output, self.input_key)
        return self.combine(raw, copies)

    # ------------------------------------------------------------------ forward
    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        """Symmetrized output for a batch (batch dimension first): the first positional argument,
        or the keyword ``input_key``. Other positional and keyword arguments are passed to the
        model: those of ``per_example`` (by default every tensor with the batch's size first)
        sliced and repeated for every copy, the others unchanged."""
        if self.input_key is None:
            if not args:
                raise TypeError("the wrapped model's input must be the first positional argument (or set input_key=)")
            x, args = args[0], args[1:]
            where = "the first argument"
        else:
            if self.input_key not in kwargs:
                raise TypeError(
                    f"input_key={self.input_key!r}: pass the batch as {self.input_key}=...; "
                    f"got the keywords {sorted(kwargs)}"
                )
            x = kwargs.pop(self.input_key)
            where = f"{self.input_key}"
        if not isinstance(x, Tensor):
            raise TypeError(f"{where} must be a Tensor with the batch dimension first, got {type(x).__name__}")
        if x.dim() == 0:
            raise ValueError(f"{where} must have a batch dimension")
        self.group.validate(x)  # once; the orbits and canonical forms built from x are valid by construction
        b = x.shape[0]

        def process(lo: int, hi: int) -> Tensor:
            return self._process(x, lo, hi, args, kwargs)

        per = self._examples_per_call(x, self.copies_per_example, process)
        if per >= b:
            return process(0, b)
        return torch.cat([process(lo, min(b, lo + per)) for lo in range(0, b, per)])

    def reduce(self, branch: Branch, aligned: Tensor, raw: Tensor, inputs: Tensor, elements: Tensor) -> Tensor:
        """Reduce a branch's aligned outputs ``(|G_i|, B, ...)`` to ``(B, ...)`` (equitune: the
        mean). ``raw`` are the outputs before alignment, ``inputs`` the copies and ``elements``
        ``(|G_i|, B)`` the element of ``branch.group`` that made each copy, all in the same order.
        Subclasses override this; the plain mean takes a faster path that never builds
        ``aligned`` when the output action moves few entries."""
        return sorted_mean(aligned) if self.sorted_sum else aligned.mean(0)

    def extra_repr(self) -> str:
        groups = ", ".join(repr(g) for g in self.factors)
        return (
            f"groups=[{groups}], output={self.output!r}, copies={self.copies_per_example}, "
            f"chunk_size={self.chunk_size!r}"
        )
