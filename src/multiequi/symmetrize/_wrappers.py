"""The symmetrizers: equitune, λ-equitune, equizero and their multi-group (Design 2) versions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..groups import Group
from ._engine import Aggregate, Branch, ChunkSize, Output, Symmetrizer, sequential_sum, sorted_mean

__all__ = [
    "Equitune",
    "Equizero",
    "LambdaEquitune",
    "MultiEquitune",
    "MultiEquizero",
    "MultiLambdaEquitune",
]

ProxyLoss = Literal["entropy", "max_prob"] | Callable[[Tensor], Tensor]


def _single(group: Any, name: str) -> Group:
    if not isinstance(group, Group):
        raise TypeError(
            f"{name} takes one Group object; got {type(group).__name__}. For several groups use "
            f"Product(G1, G2, ...) (cost Π|G_i|) or the Multi- version (cost Σ|G_i|)"
        )
    return group


def _groups(groups: Any, name: str) -> list[Group]:
    if isinstance(groups, Group) or not isinstance(groups, Sequence) or not groups:
        raise TypeError(f"{name} takes a non-empty list of Group objects (the factors), got {groups!r}")
    return list(groups)


def _document(cls: type) -> type:
    """Fill the shared parameter descriptions into a class docstring."""
    if cls.__doc__:
        for key in ("common", "lambda", "equizero"):
            cls.__doc__ = cls.__doc__.replace(f"%({key})s", globals().get(f"_{key}_params", "").strip())
    return cls


_common_params = """
    output : {"invariant", "same", "vocab"} or Action
        How the model's output transforms: not at all (classifiers), like the input
        (image-to-image, token-to-token), by the token group's permutation of the last
        (vocabulary) axis, or by a custom :class:`~multiequi.groups.Action`.
    aggregate : {"raw", "probs", "log_probs"}
        The space in which copies are averaged. ``"raw"`` (default) averages the model's outputs
        as they are (logits for a classifier); ``"probs"`` applies a softmax over the last axis to
        each copy first and returns averaged *probabilities* (do not apply a softmax again; use
        ``log`` + NLL for a loss); ``"log_probs"`` averages log-softmax outputs (a normalised
        geometric mean after a final log-softmax).
    chunk_size : int, "auto" or None
        Rows per model call. Copies are folded into the batch and sent in calls of whole orbits
        (all copies of an example together), so ``chunk_size`` is rounded down to a multiple of
        the copies per example (at least one example). ``None``: one call for the whole batch.
        ``"auto"`` (default): in inference (``torch.no_grad`` and ``model.eval()``) the rows per
        call are measured once per input shape and the fastest is kept (on CPUs, per-image cost
        of convolutional nets grows with rows per call); the measurement costs at most about
        one batch of extra work on the first call. During training one call is made. For
        step-by-step generation use ``None`` (or an int): every new prefix length is a new
        shape to measure, and a per-row decoder cache passed to the model (``past_key_values``)
        must see the whole batch in one call.
    sorted_sum : bool
        Sum the copies in sorted order so the result is bitwise identical across an orbit
        (default ``True``; ``False`` saves a sort on very large outputs). λ-weighted and equizero
        reductions honour it too (their weights' normalisers and selected means).
    input_key : str or None
        The keyword argument the group acts on (``"input_ids"``, ``"pixel_values"``): the model
        is then called with the copies under that keyword, as Hugging Face models and pipelines
        call models. ``None`` (default): the first positional argument.
    output_key : str or None
        The field of the model's output that is symmetrized and returned (``"logits"``,
        ``"logits_per_image"``). ``None`` (default): the output itself when it is a tensor, else
        its ``logits``.
    per_example : sequence of str or int, optional
        The other arguments that hold one row per example (keyword names, or positions among the
        positional arguments after the group's input): they are sliced with the batch's chunks
        and repeated for every copy, and must have the batch's size first (else ``ValueError``).
        Every other argument goes to the model unchanged, whatever its shape: CLIP's ``input_ids``
        for C class prompts stay shared even when C equals the batch size. ``None`` (default):
        every tensor argument whose first dimension equals the batch size is treated as per
        example.

    Notes
    -----
    BatchNorm: in training mode the batch statistics are taken over whole orbits (a call never
    splits an example's copies), so they are invariant and the wrapper stays exactly
    equivariant; the running statistics then describe the transformed data. In eval mode the
    running statistics are used as usual.
"""


@_document
class Equitune(Symmetrizer):
    """Equitune: ``E_G[M](x) = 1/|G| Σ_g g⁻¹·M(g·x)``; equivariant, cost ``|G|`` copies.

    Parameters
    ----------
    model : nn.Module or callable
        Any model taking the batch first; other arguments pass through.
    group : Group
        The group acting on the first positional argument (a :class:`~multiequi.groups.Product`
        for several factors at the cost of ``Π |G_i|``).
    %(common)s
    Examples
    --------
    >>> import torch
    >>> from multiequi import Equitune
    >>> from multiequi.groups import Rot90
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    >>> f = Equitune(net, Rot90(), output="invariant")
    >>> x = torch.randn(2, 1, 4, 4)
    >>> torch.allclose(f(x), f(torch.rot90(x, 1, (-2, -1))), atol=1e-6)
    True
    """

    def __init__(
        self,
        model: nn.Module | Callable[..., Any],
        group: Group,
        *,
        output: Output = "invariant",
        aggregate: Aggregate = "raw",
        chunk_size: ChunkSize = "auto",
        sorted_sum: bool = True,
        input_key: str | None = None,
        output_key: str | None = None,
        per_example: Sequence[str | int] | None = None,
    ) -> None:
        super().__init__(
            model,
            _single(group, "Equitune"),
            output=output,
            aggregate=aggregate,
            chunk_size=chunk_size,
            sorted_sum=sorted_sum,
            input_key=input_key,
            output_key=output_key,
            per_example=per_example,
        )


@_document
class MultiEquitune(Symmetrizer):
    """Multi-equitune (Design 2): one branch per factor, ``Σ |G_i|`` copies instead of ``Π |G_i|``.

    Branch ``i`` makes the input invariant to the other factors (orbit collapse for word swaps,
    a fixed-template canonicaliser for images), equitunes over ``G_i`` and symmetrizes the
    output over the other factors; the output is the mean of the branches. With commuting
    factors the result is equivariant to the whole product. With ``Rot90`` and ``Flip`` (which
    generate D4) an invariant output is exactly invariant to all 8 elements with 4 + 2 = 6
    copies; non-invariant outputs are refused for non-commuting factors.

    Parameters
    ----------
    model : nn.Module or callable
        Any model taking the batch first.
    groups : list of Group
        The factors ``G_1, …, G_N``, all acting on the first positional argument.
    %(common)s
    Examples
    --------
    >>> import torch
    >>> from multiequi import MultiEquitune
    >>> from multiequi.groups import Rot90, Flip
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)).double()
    >>> f = MultiEquitune(net, [Rot90(), Flip()])
    >>> f.copies_per_example
    6
    >>> x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    >>> torch.allclose(f(x), f(torch.flip(torch.rot90(x, 1, (-2, -1)), (-1,))))
    True
    """

    def __init__(
        self,
        model: nn.Module | Callable[..., Any],
        groups: Sequence[Group],
        *,
        output: Output = "invariant",
        aggregate: Aggregate = "raw",
        chunk_size: ChunkSize = "auto",
        sorted_sum: bool = True,
        input_key: str | None = None,
        output_key: str | None = None,
        per_example: Sequence[str | int] | None = None,
    ) -> None:
        super().__init__(
            model,
            _groups(groups, "MultiEquitune"),
            output=output,
            aggregate=aggregate,
            chunk_size=chunk_size,
            sorted_sum=sorted_sum,
            input_key=input_key,
            output_key=output_key,
            per_example=per_example,
        )


class _LambdaMixin:
    """λ-weighted reduction: weights ``λ(g·x)`` from a network, normalised over each branch."""

    weight_net: nn.Module

    def _init_lambda(self, weight_net: nn.Module | Callable[[Tensor], Tensor], weights: str) -> None:
        if not callable(weight_net):
            raise TypeError("weight_net must be callable (an nn.Module mapping a batch to one score per row)")
        if weights not in ("softmax", "positive"):
            raise ValueError(f"weights must be 'softmax' or 'positive', got {weights!r}")
        self.weight_net = weight_net  # type: ignore[assignment]
        self.weights = weights

    def reduce(self, branch: Branch, aligned: Tensor, raw: Tensor, inputs: Tensor, elements: Tensor) -> Tensor:
        n, b = aligned.shape[:2]

        def one_score(out: Any) -> Tensor:
            t = out if isinstance(out, Tensor) else torch.as_tensor(out)
            if t.dim() == 2 and t.shape[1] == 1:
                t = t[:, 0]
            if t.dim() != 1:
                raise ValueError(
                    f"weight_net must return one score per row, shape (rows,) or (rows, 1); got {tuple(t.shape)}"
                )
            return t

        scores = self._call(self.weight_net, inputs, (0, b, b), (), {}, one_score)  # type: ignore[attr-defined]
        exact = self.sorted_sum  # type: ignore[attr-defined]
        if self.weights == "softmax":
            lam = torch.exp(scores - scores.amax(0, keepdim=True))  # λ = exp(score), rescaled per example
        else:
            if bool((scores < 0).any()):
                raise ValueError(
                    "weights='positive' needs weight_net outputs >= 0 (use a softplus or weights='softmax')"
                )
            lam = scores
        # sums over the copies in sorted order (sorted_sum): the same bits for every order of the copies
        total = sequential_sum(torch.sort(lam, dim=0).values) if exact else lam.sum(0)
        w = lam / total.clamp_min(torch.finfo(lam.dtype).tiny)
        w = w.to(aligned.dtype).reshape(n, b, *([1] * (aligned.dim() - 2)))
        weighted = w * aligned
        return sequential_sum(torch.sort(weighted, dim=0).values) if exact else weighted.sum(0)


_lambda_params = """
    weight_net : nn.Module
        A small trainable network mapping a batch of transformed inputs ``g·x`` to one score per
        row (shape ``(rows,)`` or ``(rows, 1)``). It sees the same copies as the model.
    weights : {"softmax", "positive"}
        ``"softmax"`` (default): ``λ = exp(score)``, normalised over the group; ``"positive"``:
        the scores are used as ``λ >= 0`` directly and divided by their sum.
"""


@_document
class LambdaEquitune(_LambdaMixin, Symmetrizer):
    """λ-equitune: ``Σ_g λ(g·x) g⁻¹·M(g·x) / Σ_g λ(g·x)`` with ``λ >= 0`` from a small network.

    Equivariant for any ``λ``; a constant ``λ`` gives equitune.

    Parameters
    ----------
    model : nn.Module or callable
    group : Group
    %(lambda)s
    %(common)s
    Examples
    --------
    >>> import torch
    >>> from multiequi import LambdaEquitune
    >>> from multiequi.groups import Flip
    >>> net = torch.nn.Linear(4, 2)
    >>> lam = torch.nn.Linear(4, 1)
    >>> f = LambdaEquitune(net, Flip(), weight_net=lam)
    >>> x = torch.randn(3, 4)
    >>> torch.allclose(f(x), f(x.flip(-1)), atol=1e-6)
    True
    """

    def __init__(
        self,
        model: nn.Module | Callable[..., Any],
        group: Group,
        *,
        weight_net: nn.Module | Callable[[Tensor], Tensor],
        weights: Literal["softmax", "positive"] = "softmax",
        output: Output = "invariant",
        aggregate: Aggregate = "raw",
        chunk_size: ChunkSize = "auto",
        sorted_sum: bool = True,
        input_key: str | None = None,
        output_key: str | None = None,
        per_example: Sequence[str | int] | None = None,
    ) -> None:
        super().__init__(
            model,
            _single(group, "LambdaEquitune"),
            output=output,
            aggregate=aggregate,
            chunk_size=chunk_size,
            sorted_sum=sorted_sum,
            input_key=input_key,
            output_key=output_key,
            per_example=per_example,
        )
        self._init_lambda(weight_net, weights)


@_document
class MultiLambdaEquitune(_LambdaMixin, Symmetrizer):
    """Multi-λ-equitune: :class:`MultiEquitune` with a λ-weighted mean in every branch."""

    def __init__(
        self,
        model: nn.Module | Callable[..., Any],
        groups: Sequence[Group],
        *,
        weight_net: nn.Module | Callable[[Tensor], Tensor],
        weights: Literal["softmax", "positive"] = "softmax",
        output: Output = "invariant",
        aggregate: Aggregate = "raw",
        chunk_size: ChunkSize = "auto",
        sorted_sum: bool = True,
        input_key: str | None = None,
        output_key: str | None = None,
        per_example: Sequence[str | int] | None = None,
    ) -> None:
        super().__init__(
            model,
            _groups(groups, "MultiLambdaEquitune"),
            output=output,
            aggregate=aggregate,
            chunk_size=chunk_size,
            sorted_sum=sorted_sum,
            input_key=input_key,
            output_key=output_key,
            per_example=per_example,
        )
        self._init_lambda(weight_net, weights)


def entropy_loss(y: Tensor) -> Tensor:
    """Per-row entropy of the softmax over the last axis, averaged over the other axes."""
    logp = torch.log_softmax(y.float() if y.dtype in (torch.float16, torch.bfloat16) else y, dim=-1)
    h = -(logp.exp() * logp).sum(-1)
    return h.reshape(h.shape[0], -1).mean(1) if h.dim() > 1 else h


def max_prob_loss(y: Tensor) -> Tensor:
    """Per-row ``−max softmax probability``, averaged over the other axes."""
    p = torch.softmax(y, dim=-1).amax(-1)
    return -(p.reshape(p.shape[0], -1).mean(1) if p.dim() > 1 else p)


class _EquizeroMixin:
    """Equizero reduction: the copy with the lowest proxy loss (ties averaged)."""

    def _init_equizero(self, loss: ProxyLoss, straight_through: bool, tie_tol: float | None) -> None:
        if loss == "entropy":
            self.loss_fn: Callable[[Tensor], Tensor] = entropy_loss
        elif loss == "max_prob":
            self.loss_fn = max_prob_loss
        elif callable(loss):
            self.loss_fn = loss
        else:
            raise ValueError(f"loss must be 'entropy', 'max_prob' or a callable, got {loss!r}")
        if tie_tol is not None and not tie_tol >= 0:
            raise ValueError(f"tie_tol must be >= 0 or None, got {tie_tol}")
        self.straight_through = straight_through
        self.tie_tol = tie_tol

    def reduce(self, branch: Branch, aligned: Tensor, raw: Tensor, inputs: Tensor, elements: Tensor) -> Tensor:
        n, b = aligned.shape[:2]
        losses = self.loss_fn(raw.reshape(n * b, *raw.shape[2:]))
        extra = tuple(losses.shape[1:])  # () one choice per example; else one per position
        if losses.shape[:1] != (n * b,) or extra != tuple(raw.shape[2 : 2 + len(extra)]) or len(extra) >= raw.dim() - 2:
            raise ValueError(
                f"the proxy loss must return one value per row, shape ({n * b},), or one per row and position, "
                f"a leading part of {(n * b, *raw.shape[2:-1])}; got {tuple(losses.shape)}"
            )
        losses = losses.detach().reshape(n, b, *extra)
        lo = losses.amin(0, keepdim=True)
        tol = self.tie_tol
        if tol is None:
            tol = 64 * torch.finfo(losses.dtype).eps
        tied = losses <= lo + tol * lo.abs().clamp_min(1.0)  # ties: averaged, keeps exactness
        pad = [1] * (aligned.dim() - 2 - len(extra))
        mask = tied.reshape(n, b, *extra, *pad)
        picked = torch.where(mask, aligned, torch.zeros((), dtype=aligned.dtype, device=aligned.device))
        count = tied.sum(0).reshape(b, *extra, *pad).to(aligned.dtype)
        exact = self.sorted_sum  # type: ignore[attr-defined]
        selected = (sequential_sum(torch.sort(picked, dim=0).values) if exact else picked.sum(0)) / count
        if not self.straight_through:
            return selected
        mean = sorted_mean(aligned) if exact else aligned.mean(0)
        return mean + (selected - mean).detach()


_equizero_params = """
    loss : {"entropy", "max_prob"} or callable
        Proxy loss per copy, computed on the raw output: entropy of the softmax over the last
        axis (default), minus the largest probability, or a function mapping outputs
        ``(rows, ...)`` to ``(rows,)`` (one choice per example) or to ``(rows, T)``, a leading part
        of the other axes (one choice per position: a language model's next-token choice at every
        position). It must be invariant to the output action (both built-in losses are, for
        invariant and vocabulary outputs).
    straight_through : bool
        Forward value of the selected copy, gradient of the equitune mean (default ``True``).
    tie_tol : float or None
        Relative tolerance under which copies count as tied at the lowest loss; tied copies
        are averaged, so inputs fixed by part of the group keep exact equivariance. ``None``:
        ``64 × eps`` of the dtype.
"""


@_document
class Equizero(_EquizeroMixin, Symmetrizer):
    """Equizero: ``g*⁻¹·M(g*·x)`` with ``g* = argmin_g ℓ(M(g·x))``.

    Parameters
    ----------
    model : nn.Module or callable
    group : Group
    %(equizero)s
    %(common)s
    Examples
    --------
    >>> import torch
    >>> from multiequi import Equizero
    >>> from multiequi.groups import Rot90
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(9, 5)).double()
    >>> f = Equizero(net, Rot90())
    >>> x = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    >>> torch.allclose(f(x), f(torch.rot90(x, 3, (-2, -1))))
    True
    """

    def __init__(
        self,
        model: nn.Module | Callable[..., Any],
        group: Group,
        *,
        loss: ProxyLoss = "entropy",
        straight_through: bool = True,
        tie_tol: float | None = None,
        output: Output = "invariant",
        aggregate: Aggregate = "raw",
        chunk_size: ChunkSize = "auto",
        sorted_sum: bool = True,
        input_key: str | None = None,
        output_key: str | None = None,
        per_example: Sequence[str | int] | None = None,
    ) -> None:
        super().__init__(
            model,
            _single(group, "Equizero"),
            output=output,
            aggregate=aggregate,
            chunk_size=chunk_size,
            sorted_sum=sorted_sum,
            input_key=input_key,
            output_key=output_key,
            per_example=per_example,
        )
        self._init_equizero(loss, straight_through, tie_tol)


@_document
class MultiEquizero(_EquizeroMixin, Symmetrizer):
    """Multi-equizero: :class:`MultiEquitune` with equizero selection inside every branch.

    Each branch picks its lowest-loss copy among its ``|G_i|`` copies (ties averaged), then is
    symmetrized over the other factors; the output is the mean of the branches.
    """

    def __init__(
        self,
        model: nn.Module | Callable[..., Any],
        groups: Sequence[Group],
        *,
        loss: ProxyLoss = "entropy",
        straight_through: bool = True,
        tie_tol: float | None = None,
        output: Output = "invariant",
        aggregate: Aggregate = "raw",
        chunk_size: ChunkSize = "auto",
        sorted_sum: bool = True,
        input_key: str | None = None,
        output_key: str | None = None,
        per_example: Sequence[str | int] | None = None,
    ) -> None:
        super().__init__(
            model,
            _groups(groups, "MultiEquizero"),
            output=output,
            aggregate=aggregate,
            chunk_size=chunk_size,
            sorted_sum=sorted_sum,
            input_key=input_key,
            output_key=output_key,
            per_example=per_example,
        )
        self._init_equizero(loss, straight_through, tie_tol)
