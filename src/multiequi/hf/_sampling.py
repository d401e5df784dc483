"""Sampling with one seed per row: a sample depends on its own seed, never on its batch.

torch's ``multinomial`` draws every row of a batch from one generator, so a row's tokens depend on
which rows came before it in the batch (and on how many processes shared the work). Here the
uniform number that chooses row ``i``'s token at step ``t`` is a hash of ``(seed_i, t)``
(SplitMix64, computed for all rows at once in int64 arithmetic), and the token is drawn by
inverse transform sampling over the row's probabilities. Split a set of prompts over any number of
processes or batches: each sample is the same, as long as its logits are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["SeededSampler", "seeded_sample", "seeded_uniforms"]

_MASK64 = (1 << 64) - 1


def _signed(x: int) -> int:
    """An unsigned 64-bit constant as the int64 with the same bits."""
    x &= _MASK64
    return x - (1 << 64) if x >= 1 << 63 else x


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _shift_right(z: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 bit patterns (torch's ``>>`` is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def seeded_uniforms(seeds: Tensor, step: int) -> Tensor:
    """One uniform number in ``[0, 1)`` per seed for ``step``: SplitMix64 of ``(seed, step)``, float64.

    The same ``(seed, step)`` gives the same number on every machine and in every batch.

    Examples
    --------
    >>> import torch
    >>> u = seeded_uniforms(torch.tensor([0, 1, 2]), step=0)
    >>> bool(((u >= 0) & (u < 1)).all()), u.dtype
    (True, torch.float64)
    >>> torch.equal(seeded_uniforms(torch.tensor([2]), 0), u[2:])
    True
    """
    s = torch.as_tensor(seeds, dtype=torch.int64)
    # Two rounds: the seed, then the step, each mixed in (a seed and step never collide with
    # (seed + 1, step - 1), as a sum would).
    z = s
    for extra in (None, int(step)):
        if extra is not None:
            z = z ^ extra
        z = z + _GOLDEN
        z = (z ^ _shift_right(z, 30)) * _MIX1
        z = (z ^ _shift_right(z, 27)) * _MIX2
        z = z ^ _shift_right(z, 31)
    return _shift_right(z, 11).to(torch.float64) * (2.0**-53)


def seeded_sample(scores: Tensor, seeds: Tensor, step: int) -> Tensor:
    """Draw one token per row from ``softmax(scores)`` with the row's own seed.

    Inverse transform sampling: the first token whose cumulative probability (float64, in
    vocabulary order) exceeds the row's uniform :func:`seeded_uniforms`. Tokens whose score is
    ``-inf`` (cut by top-k or top-p) are never drawn.

    Parameters
    ----------
    scores : Tensor
        ``(rows, vocab)`` logits, already warped (temperature, top-k, top-p).
    seeds : Tensor
        ``(rows,)`` integer seeds.
    step : int
        The index of the new token (0 for the first), mixed into the hash.

    Examples
    --------
    >>> import torch
    >>> scores = torch.tensor([[0.0, float("-inf"), 0.0], [float("-inf"), 5.0, float("-inf")]])
    >>> seeded_sample(scores, torch.tensor([7, 7]), step=3)[1].item()
    1
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be (rows, vocab), got shape {tuple(scores.shape)}")
    s = torch.as_tensor(seeds, dtype=torch.int64).reshape(-1)
    if s.numel() != scores.shape[0]:
        raise ValueError(f"one seed per row: {scores.shape[0]} rows but {s.numel()} seeds")
    probs = torch.softmax(scores.double(), dim=-1)
    cdf = probs.cumsum(-1)
    u = seeded_uniforms(s, step).to(cdf.device)[:, None] * cdf[:, -1:]
    chosen = torch.searchsorted(cdf, u, right=True)[:, 0]
    return chosen.clamp_(max=scores.shape[-1] - 1)


class SeededSampler:
    """A transformers logits processor that makes the plain ``model.generate`` sample per-row seeded.

    Give it to ``generate(..., do_sample=False, logits_processor=[SeededSampler(seeds,
    prompt_length, top_k=40)])``: at every step it applies temperature, top-k and top-p itself,
    draws each row's token with :func:`seeded_sample`, and leaves that token the only finite
    score, which greedy decoding then picks. The draws are those of
    :meth:`~multiequi.hf.EquivariantLM.generate` with ``sample_seeds=``: the same warping, the
    same uniforms.

    Parameters
    ----------
    seeds : sequence of int or Tensor
        One seed per row of the batch (after ``num_return_sequences``).
    prompt_length : int
        The prompts' (padded) length: step ``t`` is the ``t``-th new token.
    temperature, top_k, top_p : float, int, float
        The warping, as transformers applies it when sampling.

    Examples
    --------
    >>> import torch
    >>> sampler = SeededSampler([3, 4], prompt_length=2, top_k=1)
    >>> out = sampler(torch.zeros(2, 2, dtype=torch.long), torch.tensor([[0.0, 1.0, 0.5], [2.0, 1.0, 0.0]]))
    >>> out.argmax(-1).tolist()
    [1, 0]
    """

    def __init__(
        self,
        seeds: Sequence[int] | Tensor,
        prompt_length: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> None:
        self.seeds = torch.as_tensor(seeds, dtype=torch.int64).reshape(-1)
        self.prompt_length = int(prompt_length)
        self.warpers = _warpers(temperature, top_k, top_p)

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        step = input_ids.shape[1] - self.prompt_length
        if step < 0:
            raise ValueError(f"the sequences ({input_ids.shape[1]} tokens) are shorter than the prompt length")
        for warp in self.warpers:
            scores = warp(input_ids, scores)
        chosen = seeded_sample(scores, self.seeds.to(scores.device), step)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen[:, None], 0.0)


def _warpers(temperature: float | None, top_k: int | None, top_p: float | None) -> list[Any]:
    """transformers' sampling warpers, in transformers' order (temperature, top-k, top-p)."""
    from transformers.generation import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warpers: list[Any] = []
    if temperature is not None and float(temperature) != 1.0:
        warpers.append(TemperatureLogitsWarper(float(temperature)))
    if top_k is not None and int(top_k) > 0:
        warpers.append(TopKLogitsWarper(int(top_k)))
    if top_p is not None and float(top_p) < 1.0:
        warpers.append(TopPLogitsWarper(float(top_p)))
    return warpers
