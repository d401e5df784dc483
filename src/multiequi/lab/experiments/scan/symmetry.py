"""The SCAN experiment's two wrappers over the task's word-swap factors
(:func:`multiequi.lab.datasets.scan.factors_for`): equitune over their product and multi-equitune
over them, with the vocabulary output action."""

from __future__ import annotations

from collections.abc import Sequence

from multiequi import Equitune, MultiEquitune
from multiequi.groups import Product, TokenCycles

__all__ = ["wrap"]


def wrap(model: object, factors: Sequence[TokenCycles], method: str) -> Equitune | MultiEquitune:
    """``Equitune`` over the product of ``factors`` (``Π|G_i|`` copies) or ``MultiEquitune`` over
    them (``Σ|G_i|`` copies), with the vocabulary output action; one model call per batch.

    ``method``: ``"equitune"`` or ``"multi-equitune"`` (a ``-zs`` suffix is accepted and ignored).

    Examples
    --------
    >>> from multiequi.lab.datasets.scan import Vocab, factors_for
    >>> from multiequi.models import Seq2Seq
    >>> v = Vocab.of("scan2")
    >>> model = Seq2Seq(len(v.inputs), len(v.outputs), hidden=8)
    >>> factors = factors_for(v, ["verb", "lr", "ud"])
    >>> wrap(model, factors, "equitune").copies_per_example, wrap(model, factors, "multi-equitune").copies_per_example
    (8, 6)
    """
    base = method.removesuffix("-zs")
    if base == "equitune":
        group = factors[0] if len(factors) == 1 else Product(*factors)
        return Equitune(model, group, output="vocab", chunk_size=None)  # type: ignore[arg-type]
    if base == "multi-equitune":
        return MultiEquitune(model, list(factors), output="vocab", chunk_size=None)  # type: ignore[arg-type]
    raise ValueError(f"method must be 'equitune' or 'multi-equitune' (optionally with '-zs'), got {method!r}")
