"""The word-swap groups of SCAN / SCAN-II on the packed ids of :mod:`.model`, and the wrappers.

Each factor is a :class:`~multiequi.groups.TokenCycles` C2 over the joint vocabulary of the
packed tensor (input words, then output tokens shifted by ``in_vocab``). Its generator swaps the
input pair and, at the same time, the matching output pair *in the decoder's input*; on the
model's output (logits over the output vocabulary) it swaps the output pair::

    verb:  jump <-> run     and  I_JUMP <-> I_RUN
    lr:    left <-> right   and  I_TURN_LEFT <-> I_TURN_RIGHT
    ud:    up <-> down      and  I_TURN_UP <-> I_TURN_DOWN      (SCAN-II only)

Every word of a pair is listed in a fixed order, the *representative* first: multi-equitune's
orbit collapse (:meth:`TokenCycles.canonicalize`) replaces each word of another factor's pair by
the first one. The first word is the one that appears in compositions in the training data
(``run``, ``right``, ``down``), so that the branches of the other factors see words the model was
trained on; the held-out primitives (``jump``, ``turn left``, ``turn up``) are never the
representative.
"""

from __future__ import annotations

from collections.abc import Sequence

from ... import Equitune, MultiEquitune
from ...groups import Product, TokenCycles
from .data import Vocab

__all__ = ["FACTORS", "REPRESENTATIVES", "factors_for", "word_swap", "wrap"]

#: Which word of each pair multi-equitune's orbit collapse keeps (see :func:`word_swap`).
REPRESENTATIVES = ("trained", "held-out")

#: name -> (input pair, output pair), the word seen in compositions in training first.
FACTORS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "verb": (("run", "jump"), ("I_RUN", "I_JUMP")),
    "lr": (("right", "left"), ("I_TURN_RIGHT", "I_TURN_LEFT")),
    "ud": (("down", "up"), ("I_TURN_DOWN", "I_TURN_UP")),
}


def word_swap(vocab: Vocab, factor: str, representative: str = "trained") -> TokenCycles:
    """The C2 of ``factor`` (``"verb"``, ``"lr"`` or ``"ud"``) acting on packed ids of ``vocab``.

    ``representative``: which word of the pair comes first, i.e. what multi-equitune's orbit
    collapse maps the pair to in the other factors' branches: ``"trained"`` (default: run, right,
    down, the words seen in compositions in training) or ``"held-out"`` (jump, left, up).

    Examples
    --------
    >>> import torch
    >>> from multiequi.experiments.scan.data import Vocab
    >>> from multiequi.experiments.scan.model import pack
    >>> v = Vocab.of("scan2")
    >>> g = word_swap(v, "verb")
    >>> x = pack(torch.tensor([[v.in_id["jump"]]]), torch.tensor([[1, v.out_id["I_JUMP"]]]), len(v.inputs))
    >>> g.act(x, 1) - x            # jump -> run in the source, I_JUMP -> I_RUN in the decoder input
    tensor([[-1,  0, -1]])
    """
    if factor not in FACTORS:
        raise ValueError(f"factor must be one of {sorted(FACTORS)}, got {factor!r}")
    if representative not in REPRESENTATIVES:
        raise ValueError(f"representative must be one of {REPRESENTATIVES}, got {representative!r}")
    (a, b), (oa, ob) = FACTORS[factor]
    if representative == "held-out":
        (a, b), (oa, ob) = (b, a), (ob, oa)
    if a not in vocab.in_id or b not in vocab.in_id:
        raise ValueError(
            f"factor {factor!r} needs the words {a!r} and {b!r}, absent from the {vocab.dataset} vocabulary"
        )
    n_in, n_out = len(vocab.inputs), len(vocab.outputs)
    return TokenCycles(
        [[vocab.in_id[a], vocab.in_id[b]], [n_in + vocab.out_id[oa], n_in + vocab.out_id[ob]]],
        n_in + n_out,
        out_cycles=[[vocab.out_id[oa], vocab.out_id[ob]]],
        out_vocab_size=n_out,
        names=["e", f"{b}<->{a}"],
    )


def factors_for(vocab: Vocab, names: Sequence[str], representative: str = "trained") -> list[TokenCycles]:
    """The factors ``names`` (e.g. ``["verb", "lr", "ud"]``) for ``vocab`` (see :func:`word_swap`)."""
    if not names:
        raise ValueError("name at least one factor ('verb', 'lr', 'ud')")
    return [word_swap(vocab, n, representative) for n in names]


def wrap(model: object, factors: Sequence[TokenCycles], method: str) -> Equitune | MultiEquitune:
    """``Equitune`` over the product of ``factors`` (``Π|G_i|`` copies) or ``MultiEquitune`` over
    them (``Σ|G_i|`` copies), with the vocabulary output action; one model call per batch.

    ``method``: ``"equitune"`` or ``"multi-equitune"`` (a ``-zs`` suffix is accepted and ignored).

    Examples
    --------
    >>> from multiequi.experiments.scan.data import Vocab
    >>> from multiequi.experiments.scan.model import Seq2Seq
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
