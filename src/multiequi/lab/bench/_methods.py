"""The methods the benchmark compares, each a callable on one prepared batch.

- ``plain``: the model on the batch (1 copy).
- ``plain xK``: a reference, the model on one batch of ``K·B`` rows (what equitune's batched call
  costs without the orbit, the inverse and the mean).
- ``tta-loop``: test-time augmentation over the whole product, one transform per model call, as
  the ``ttach`` package does (``Π |G_i|`` calls of ``B`` rows), mean in loop order.
- ``ttach-d4``: the real ``ttach`` package's D4 wrapper (images only), as shipped: the model and
  its input in the default contiguous memory format. ``ttach-d4[channels_last]`` gives it the
  same channels-last model and input as multiequi's methods.
- ``equitune-product``: :class:`~multiequi.Equitune` over the product (``Π |G_i|`` copies, batched).
- ``multiequitune``: :class:`~multiequi.MultiEquitune` over the factors (``Σ |G_i|`` copies, batched).

Each of the last two also with ``chunk_size`` (``[chunk=auto]``, ``[chunk=8]``: rows per call).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from multiequi import Equitune, MultiEquitune
from multiequi.groups import Group, resolve_action
from multiequi.symmetrize import ChunkSize, examples_per_call, model_output_tensor

from ._workloads import Workload

__all__ = ["Method", "TTALoop", "build_methods", "chunk_label"]


def chunk_label(chunk: ChunkSize) -> str:
    """``None`` → ``"none"``, otherwise the value as text."""
    return "none" if chunk is None else str(chunk)


class TTALoop(nn.Module):
    """Test-time augmentation over every element of ``group``, one model call per element.

    ``y = 1/|G| Σ_g g⁻¹·M(g·x)``, summed in the loop's order, as ``ttach`` does: the same
    average as equitune, but ``|G|`` calls of ``B`` rows instead of one call of ``|G|·B`` rows.

    Examples
    --------
    >>> import torch
    >>> from multiequi.lab.bench import TTALoop
    >>> from multiequi.groups import Flip
    >>> f = TTALoop(torch.nn.Linear(3, 2), Flip())
    >>> f(torch.randn(4, 3)).shape
    torch.Size([4, 2])
    """

    def __init__(
        self,
        model: nn.Module,
        group: Group,
        output: str = "invariant",
        prepare: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.group = group
        self.action = resolve_action(group, output)
        self.prepare = prepare
        self._inverses = [group.inverse(g) for g in group.elements]

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        total: Tensor | None = None
        for g in self.group.elements:
            xg = self.group.act(x, g)
            if self.prepare is not None:
                xg = self.prepare(xg)
            y = model_output_tensor(self.model(xg, *args, **kwargs))
            if not self.action.is_trivial:
                y = self.action.act(y, self._inverses[g])
            total = y if total is None else total + y
        assert total is not None
        return total / len(self.group)


@dataclass
class Method:
    """One way of computing the workload's output on a batch of ``B`` examples.

    Attributes
    ----------
    name : str
        The ``method`` field of the records.
    kind : str
        ``"plain"``, ``"reference"``, ``"tta-loop"``, ``"ttach"``, ``"equitune"`` or ``"multiequitune"``.
    fn : callable
        Called on the prepared input.
    counted : nn.Module
        The module whose input rows are counted as copies (the model inside).
    prepare : callable
        Turns a raw batch into this method's input (memory format).
    expected_copies : int
        Copies per example the method should send through the model.
    rows_factor : int
        The input holds ``rows_factor · B`` rows (references); 1 otherwise.
    chunk_size : int, "auto" or None
        The wrappers' ``chunk_size`` (``None`` for the others).
    symmetrized : bool
        Whether the output should be invariant/equivariant (its error is then expected small).
    """

    name: str
    kind: str
    fn: Callable[[Tensor], Any]
    counted: nn.Module
    prepare: Callable[[Tensor], Tensor]
    expected_copies: int
    rows_factor: int = 1
    chunk_size: ChunkSize = None
    symmetrized: bool = False


def _contiguous_copy(model: nn.Module) -> nn.Module:
    # nn.Module.to(memory_format=...) is valid at runtime; torch's stubs lack it
    return copy.deepcopy(model).to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


def build_methods(
    w: Workload,
    batch: int,
    chunk_sizes: tuple[ChunkSize, ...] = (None, "auto", 8),
    ttach: bool = True,
) -> tuple[list[Method], list[tuple[str, str]]]:
    """The methods to time on workload ``w`` at batch ``batch``.

    Returns the methods and, for chunk variants that would run exactly like ``chunk_size=None``
    (one call already holds the whole batch), ``(name, reason)`` pairs to record as skipped.
    """
    model = w.model
    prod = w.product
    n_prod, n_sum = w.product_order, w.sum_order
    methods: list[Method] = [Method("plain", "plain", model, model, w.prepare, 1)]
    for k in sorted({n_sum, n_prod}):
        methods.append(Method(f"plain x{k}", "reference", model, model, w.prepare, k, rows_factor=k))
    methods.append(
        Method(
            "tta-loop",
            "tta-loop",
            TTALoop(model, prod, w.output, w.prepare),
            model,
            w.prepare,
            n_prod,
            symmetrized=True,
        )
    )
    if ttach and w.name.startswith("images"):
        try:
            import ttach as tta
        except ImportError as err:
            raise ImportError("the ttach peer needs the ttach package: pip install 'multiequi[bench]'") from err
        plain = _contiguous_copy(model)
        methods.append(
            Method(
                "ttach-d4",
                "ttach",
                tta.ClassificationTTAWrapper(plain, tta.aliases.d4_transform(), merge_mode="mean"),
                plain,
                lambda x: x.contiguous(),
                8,
                symmetrized=True,
            )
        )
        if w.extra.get("channels_last"):
            methods.append(
                Method(
                    "ttach-d4[channels_last]",
                    "ttach",
                    tta.ClassificationTTAWrapper(model, tta.aliases.d4_transform(), merge_mode="mean"),
                    model,
                    w.prepare,
                    8,
                    symmetrized=True,
                )
            )
    skipped: list[tuple[str, str]] = []
    for kind, copies, make in (
        ("equitune", n_prod, lambda c: Equitune(model, prod, output=w.output, chunk_size=c)),  # type: ignore[arg-type]
        ("multiequitune", n_sum, lambda c: MultiEquitune(model, w.factors, output=w.output, chunk_size=c)),  # type: ignore[arg-type]
    ):
        base = "equitune-product" if kind == "equitune" else "multiequitune"
        for chunk in chunk_sizes:
            name = base if chunk is None else f"{base}[chunk={chunk_label(chunk)}]"
            if chunk is not None and examples_per_call(chunk, batch, copies) == batch:
                skipped.append(
                    (name, f"runs exactly like chunk_size=None here: one call holds the batch ({batch}x{copies} rows)")
                )
                continue
            methods.append(
                Method(name, kind, make(chunk), model, w.prepare, copies, chunk_size=chunk, symmetrized=True)
            )
    return methods, skipped
