"""Word swaps from a tokenizer: cycles of words as :class:`~multiequi.groups.TokenCycles`."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from multiequi.groups import TokenCycles

__all__ = ["WordSwap", "word_forms", "word_swap"]


class WordSwap(TokenCycles):
    """A :class:`~multiequi.groups.TokenCycles` made from words (:func:`word_swap`): the cycles of
    token ids, and the cycles of words they came from (:attr:`words`), so that a wrapped model
    can be saved and reported by its words."""

    def __init__(
        self,
        cycles: Sequence[Sequence[int]],
        vocab_size: int,
        words: Sequence[Sequence[str]],
        names: Sequence[str] | None = None,
    ) -> None:
        super().__init__(cycles, vocab_size, names=names)
        #: The cycles of words, as given to :func:`word_swap`.
        self.words = [list(c) for c in words]

    def __repr__(self) -> str:
        return f"WordSwap({self.words}, {len(self.cycles)} token cycles, vocab_size={self.vocab_size})"


def word_forms(word: str) -> list[str]:
    """The surface forms of ``word`` that a word swap covers: as written, with a leading space,
    capitalised, capitalised with a leading space (duplicates dropped, order kept).

    Examples
    --------
    >>> word_forms("woman")
    ['woman', ' woman', 'Woman', ' Woman']
    >>> word_forms("Black")
    ['Black', ' Black']
    """
    cap = word[:1].upper() + word[1:]
    return list(dict.fromkeys([word, " " + word, cap, " " + cap]))


def _single_token(tokenizer: Any, text: str) -> list[int]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [int(i) for i in ids]


def word_swap(
    tokenizer: Any,
    words: Sequence[Sequence[str]],
    *,
    vocab_size: int | None = None,
    skip_multi_token: bool = False,
    name: str | None = None,
) -> WordSwap:
    """One word-swap factor: each inner list of ``words`` is one cycle of words.

    ``[["man", "woman"], ["he", "she"]]`` swaps both pairs together (C2); ``[["Black", "White",
    "Asian"]]`` is a 3-cycle (C3). Every surface form of a word (:func:`word_forms`: with and
    without a leading space, capitalised) that the tokenizer encodes as one token joins the
    cycle of the same form of the other words, on the input ids and on the output vocabulary.

    Parameters
    ----------
    tokenizer : transformers tokenizer
        Any callable returning ``{"input_ids": [...]}`` for a text (``add_special_tokens=False``).
    words : list of list of str
        The cycles of words; all cycles have the same length (the order of the group).
    vocab_size : int, optional
        Size of the model's vocabulary, the last axis of its logits, which may exceed the
        tokenizer's (``model.config.vocab_size``). Default: ``len(tokenizer)``.
    skip_multi_token : bool
        A form that some word of its cycle splits into several tokens raises ``ValueError``
        naming the word, the form and its tokens (swapping only the first token would change
        the meaning, as the predecessor's code did). ``True``: leave that form out of the
        factor, with a warning listing it.
    name : str, optional
        The element's name (default ``"man<->woman"``-style from the first cycle).

    Examples
    --------
    >>> from transformers import GPT2TokenizerFast          # doctest: +SKIP
    >>> tok = GPT2TokenizerFast.from_pretrained("gpt2")     # doctest: +SKIP
    >>> gender = word_swap(tok, [["man", "woman"], ["he", "she"]])   # doctest: +SKIP
    >>> len(gender), gender.cycles[:2]                      # doctest: +SKIP
    (2, [[805, 2415], [582, 1640]])
    """
    cycles_in = [[str(w) for w in cycle] for cycle in words]
    if not cycles_in or any(len(c) < 2 for c in cycles_in):
        raise ValueError(f"words must be a non-empty list of cycles of at least 2 words each, got {words!r}")
    if len({len(c) for c in cycles_in}) != 1:
        raise ValueError(f"every cycle of words must have the same length (the group's order), got {cycles_in}")
    size = int(vocab_size) if vocab_size is not None else len(tokenizer)
    cycles: list[list[int]] = []
    skipped: list[str] = []
    for cycle in cycles_in:
        forms = [word_forms(w) for w in cycle]
        for j in range(max(len(f) for f in forms)):
            texts = [f[min(j, len(f) - 1)] for f in forms]
            ids = [_single_token(tokenizer, t) for t in texts]
            multi = [(w, t, i) for w, t, i in zip(cycle, texts, ids, strict=True) if len(i) != 1]
            if multi:
                word, text, toks = multi[0]
                if not skip_multi_token:
                    raise ValueError(
                        f"the word {word!r} in the form {text!r} is {len(toks)} tokens {toks}, not one: a word swap "
                        "must map whole words (pass skip_multi_token=True to leave such forms out, with a warning)"
                    )
                skipped.append(f"{text!r} ({len(toks)} tokens)")
                continue
            cycle_ids = [i[0] for i in ids]
            if len(set(cycle_ids)) != len(cycle_ids):
                raise ValueError(f"the forms {texts} are the same token for this tokenizer: they cannot be swapped")
            if cycle_ids not in cycles:
                cycles.append(cycle_ids)
    if skipped:
        warnings.warn(f"word_swap: left out forms that are not one token: {', '.join(skipped)}", stacklevel=2)
    if not cycles:
        raise ValueError(f"no form of the words {cycles_in} is a single token for this tokenizer")
    used = [t for c in cycles for t in c]
    bad = [t for t in used if not 0 <= t < size]
    if bad:
        raise ValueError(f"token ids {bad} of {cycles_in} lie outside the vocabulary of size {size}")
    label = name or "<->".join(cycles_in[0])
    n = len(cycles_in[0])
    names = ["e", label] + [f"({label})^{k}" for k in range(2, n)]
    return WordSwap(cycles, size, cycles_in, names=names)
