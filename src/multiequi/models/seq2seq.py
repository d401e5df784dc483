"""A seq2seq model (bidirectional RNN/GRU/LSTM encoder, attention decoder), greedy decoding and
its teacher-forcing loss: the SCAN model of the multi-equitune paper (torch only).

The model reads ONE packed tensor of token ids per example: the source words followed by the
decoder's input tokens (``<sos>`` and the actions so far), both in a *joint* vocabulary where
output token ``t`` has id ``in_vocab + t``::

    packed = [src_1 … src_S | in_vocab + <sos>, in_vocab + y_1, …, in_vocab + y_{T-1}]

and returns next-token logits over the output vocabulary for every decoder position,
``(N, T, out_vocab)``. A word swap that acts on the packed ids (input words *and* the decoder's
output tokens together, as SCAN's do: :func:`multiequi.lab.datasets.scan.word_swap`) and permutes
the last axis of the logits makes the teacher-forced model exactly equivariant under
:class:`~multiequi.Equitune` / :class:`~multiequi.MultiEquitune`, because the wrappers transform
the first positional argument.

Greedy decoding (:func:`greedy_decode`) calls the same model (plain or wrapped) once per step on
the source and the prefix decoded so far; a :class:`DecodeCache` passed as a keyword (wrappers
pass non-tensor arguments through unchanged) lets the model compute only the new step. The cache
checks that the new call extends the previous one (same rows, one more token) and otherwise
recomputes from scratch, so it never changes a result, only its cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

__all__ = [
    "CELLS",
    "EOS",
    "PAD",
    "SOS",
    "DecodeCache",
    "Seq2Seq",
    "exact_match",
    "greedy_decode",
    "pack",
    "seq2seq_loss",
    "unpack",
]

#: Special output ids: padding, start and end of sequence (``<pad>`` is 0 in the inputs too).
PAD, SOS, EOS = 0, 1, 2

Cell = Literal["rnn", "gru", "lstm"]
#: The recurrent cells: name -> torch module.
CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def pack(src: Tensor, tgt_in: Tensor, in_vocab: int) -> Tensor:
    """Join source ids ``(N, S)`` and decoder input ids ``(N, T)`` into one ``(N, S + T)`` tensor.

    Output token ``t`` becomes ``in_vocab + t`` (the joint vocabulary).

    Examples
    --------
    >>> import torch
    >>> pack(torch.tensor([[4, 13]]), torch.tensor([[1, 6]]), in_vocab=16)
    tensor([[ 4, 13, 17, 22]])
    """
    if src.shape[0] != tgt_in.shape[0]:
        raise ValueError(f"src and tgt_in must have the same batch size, got {src.shape[0]} and {tgt_in.shape[0]}")
    return torch.cat([src, tgt_in + in_vocab], dim=1)


def unpack(packed: Tensor, src_len: int, in_vocab: int) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`pack`: ``(src, tgt_in)``."""
    return packed[:, :src_len], packed[:, src_len:] - in_vocab


@dataclass
class DecodeCache:
    """State kept between the steps of one greedy decoding: what the model saw last and its
    encoder outputs and decoder state. Create one per decoding; :class:`Seq2Seq` fills it."""

    rows: Tensor | None = None
    src_len: int = -1
    memory: tuple[Tensor, Tensor, Tensor] | None = None  # encoder values, attention keys, source mask
    state: Any = None  # decoder hidden state after the last token of ``rows``
    hits: int = 0
    misses: int = 0


class Seq2Seq(nn.Module):
    """Bidirectional RNN / GRU / LSTM encoder and an attention decoder (Luong "general" scores).

    Parameters
    ----------
    in_vocab, out_vocab : int
        Sizes of the input-word and output-token vocabularies (``<pad>`` = 0 in both).
    cell : {"rnn", "gru", "lstm"}
        Recurrent cell of the encoder and the decoder.
    hidden : int
        Hidden size (per direction in the encoder).
    layers : int
        Recurrent layers of the encoder and the decoder.
    dropout : float
        Dropout on embeddings and before the output layer.

    Examples
    --------
    >>> import torch
    >>> m = Seq2Seq(16, 11, "gru", hidden=8)
    >>> x = pack(torch.tensor([[4, 13, 0]]), torch.tensor([[1, 6, 6]]), in_vocab=16)
    >>> m(x, src_len=3).shape
    torch.Size([1, 3, 11])
    """

    def __init__(
        self, in_vocab: int, out_vocab: int, cell: Cell = "gru", hidden: int = 64, layers: int = 1, dropout: float = 0.1
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        if in_vocab < 2 or out_vocab < 4:
            raise ValueError(f"vocabularies too small: in_vocab={in_vocab}, out_vocab={out_vocab}")
        self.in_vocab, self.out_vocab, self.cell, self.hidden, self.layers = in_vocab, out_vocab, cell, hidden, layers
        # nn.GRU / nn.LSTM / nn.RNN take (input_size, hidden_size, ...), unlike RNNBase(mode, input_size, ...)
        rnn: Callable[..., nn.RNNBase] = CELLS[cell]
        inner = dropout if layers > 1 else 0.0
        self.enc_emb = nn.Embedding(in_vocab, hidden, padding_idx=PAD)
        self.dec_emb = nn.Embedding(out_vocab, hidden, padding_idx=PAD)
        self.encoder = rnn(hidden, hidden, num_layers=layers, batch_first=True, bidirectional=True, dropout=inner)
        self.decoder = rnn(hidden, hidden, num_layers=layers, batch_first=True, dropout=inner)
        self.bridge = nn.Linear(2 * hidden, hidden)  # encoder's final states -> decoder's initial state
        self.bridge_c = nn.Linear(2 * hidden, hidden) if cell == "lstm" else None
        self.key = nn.Linear(2 * hidden, hidden, bias=False)
        self.combine = nn.Linear(3 * hidden, hidden)
        self.out = nn.Linear(hidden, out_vocab)
        self.drop = nn.Dropout(dropout)

    # ------------------------------------------------------------------ pieces
    def _check(self, packed: Tensor, src_len: int) -> None:
        if packed.dim() != 2 or packed.dtype.is_floating_point:
            raise ValueError(f"expected packed token ids of shape (N, S + T), got {packed.dtype} {tuple(packed.shape)}")
        if not 0 < src_len < packed.shape[1]:
            raise ValueError(f"src_len must lie in [1, {packed.shape[1] - 1}] for packed ids {tuple(packed.shape)}")
        src, tgt = packed[:, :src_len], packed[:, src_len:]
        if src.numel() and (int(src.min()) < 0 or int(src.max()) >= self.in_vocab):
            raise ValueError(f"source ids must lie in [0, {self.in_vocab}); pack() the source and target first")
        if tgt.numel() and (int(tgt.min()) < self.in_vocab or int(tgt.max()) >= self.in_vocab + self.out_vocab):
            raise ValueError(
                f"decoder input ids must lie in [{self.in_vocab}, {self.in_vocab + self.out_vocab}) "
                "(output token + in_vocab); pack() the source and target first"
            )

    def encode(self, src: Tensor) -> tuple[tuple[Tensor, Tensor, Tensor], Any]:
        """Encoder memory (values ``(N, S, 2H)``, keys ``(N, S, H)``, mask ``(N, S)``) and the
        decoder's initial state."""
        mask = src != PAD
        lengths = mask.sum(1)
        if bool((lengths == 0).any()):
            raise ValueError("every source must have at least one word")
        emb = self.drop(self.enc_emb(src))
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.encoder(packed)
        values, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])

        def bridge(h: Tensor, layer: nn.Linear) -> Tensor:  # (2L, N, H) -> (L, N, H)
            h = h.view(self.layers, 2, h.shape[1], self.hidden)
            return torch.tanh(layer(torch.cat([h[:, 0], h[:, 1]], dim=-1)))

        if self.cell == "lstm":
            h, c = final
            state: Any = (bridge(h, self.bridge), bridge(c, self.bridge_c))  # type: ignore[arg-type]
        else:
            state = bridge(final, self.bridge)
        return (values, self.key(values), mask), state

    def _attend(self, dec: Tensor, memory: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        values, keys, mask = memory
        scores = torch.bmm(dec, keys.transpose(1, 2)).masked_fill(~mask[:, None, :], float("-inf"))
        context = torch.bmm(torch.softmax(scores, dim=-1), values)
        h = torch.tanh(self.combine(torch.cat([dec, context], dim=-1)))
        return self.out(self.drop(h))

    # ------------------------------------------------------------------ forward
    def forward(self, packed: Tensor, src_len: int, cache: DecodeCache | None = None) -> Tensor:
        """Next-token logits for every decoder position, ``(N, T, out_vocab)``.

        Parameters
        ----------
        packed : Tensor
            ``(N, S + T)`` ids from :func:`pack`: source words (padded with 0) then the decoder
            inputs (``<sos>`` and the tokens so far, shifted by ``in_vocab``).
        src_len : int
            ``S``, the width of the source part.
        cache : DecodeCache, optional
            For step-by-step decoding: only the logits of the LAST position are returned,
            ``(N, 1, out_vocab)``, and a call that extends the previous one by one token costs
            one decoder step.
        """
        self._check(packed, src_len)
        src, tgt = packed[:, :src_len], packed[:, src_len:] - self.in_vocab
        if cache is not None and self._extends(cache, packed, src_len):
            cache.hits += 1
            memory = cache.memory
            dec, cache.state = self.decoder(self.drop(self.dec_emb(tgt[:, -1:])), cache.state)
            cache.rows = packed
            return self._attend(dec, memory)  # type: ignore[arg-type]
        memory, state = self.encode(src)
        dec, state = self.decoder(self.drop(self.dec_emb(tgt)), state)
        if cache is None:
            return self._attend(dec, memory)
        cache.misses += 1
        cache.rows, cache.src_len, cache.memory, cache.state = packed, src_len, memory, state
        return self._attend(dec[:, -1:], memory)

    @staticmethod
    def _extends(cache: DecodeCache, packed: Tensor, src_len: int) -> bool:
        prev = cache.rows
        return (
            prev is not None
            and cache.src_len == src_len
            and prev.shape[0] == packed.shape[0]
            and prev.shape[1] + 1 == packed.shape[1]
            and prev.device == packed.device
            and torch.equal(prev, packed[:, :-1])
        )


def greedy_decode(
    model: Callable[..., Tensor],
    src: Tensor,
    max_len: int,
    in_vocab: int,
    *,
    stop_at_eos: bool = True,
    cache: bool = True,
) -> Tensor:
    """Greedy decoding of ``model`` (a :class:`Seq2Seq` or a wrapper around one) for ``src``.

    Every step calls ``model(pack(src, prefix), src_len=S, cache=...)`` and appends the argmax of
    the last position's logits, so with a symmetrized model each step's logits are the
    symmetrized ones and the decoded sequence is equivariant (up to exact ties of the argmax).

    Parameters
    ----------
    model : callable
        The model or wrapped model.
    src : Tensor
        Source ids ``(N, S)``, padded with 0.
    max_len : int
        Tokens to decode at most (``<eos>`` included).
    in_vocab : int
        Size of the input vocabulary (for :func:`pack`).
    stop_at_eos : bool
        Stop once every row has produced ``<eos>`` (default); rows that are done get ``<pad>``.
    cache : bool
        Use a :class:`DecodeCache` (one decoder step per token instead of re-running the prefix).

    Returns
    -------
    Tensor
        ``(N, L)`` output token ids, ``L <= max_len``, ``<pad>`` after each row's ``<eos>``.

    Examples
    --------
    >>> import torch
    >>> m = Seq2Seq(16, 11, "gru", hidden=8).eval()
    >>> greedy_decode(m, torch.tensor([[4, 13]]), max_len=5, in_vocab=16).shape[0]
    1
    """
    n, s = src.shape
    prefix = torch.full((n, 1), SOS, dtype=torch.long, device=src.device)
    done = torch.zeros(n, dtype=torch.bool, device=src.device)
    state = DecodeCache() if cache else None
    steps = []
    for _ in range(max_len):
        kwargs = {"cache": state} if state is not None else {}
        logits = model(pack(src, prefix, in_vocab), src_len=s, **kwargs)[:, -1]
        nxt = logits.argmax(-1).masked_fill(done, PAD)
        steps.append(nxt)
        done = done | (nxt == EOS)
        if stop_at_eos and bool(done.all()):
            break
        prefix = torch.cat([prefix, nxt[:, None]], dim=1)
    return torch.stack(steps, dim=1)


def exact_match(pred: Tensor, tgt: Tensor) -> Tensor:
    """Per-row exact match of decoded ids ``pred`` ``(N, L)`` against targets ``(N, T)`` =
    ``<sos> actions <eos> <pad>…``: everything up to and including ``<eos>`` must agree.

    Examples
    --------
    >>> import torch
    >>> exact_match(torch.tensor([[6, 2, 0], [6, 6, 2]]), torch.tensor([[1, 6, 2, 0], [1, 6, 2, 0]])).tolist()
    [True, False]
    """
    gold = tgt[:, 1:]
    width = max(gold.shape[1], pred.shape[1])
    g = torch.nn.functional.pad(gold, (0, width - gold.shape[1]), value=PAD)
    p = torch.nn.functional.pad(pred, (0, width - pred.shape[1]), value=PAD)
    # positions after the gold <eos> are padding in both (pred is padded after its own <eos>)
    return (g == p).all(1)


def seq2seq_loss(
    model: Callable[..., Tensor], batch: tuple[Tensor, Tensor], in_vocab: int, teacher_forcing: float = 0.5
) -> Tensor:
    """Token cross-entropy of one batch, with teacher forcing on a random half of the batches.

    With probability ``teacher_forcing`` (drawn from torch's global generator, which the training
    loop seeds and checkpoints) the decoder reads the gold prefix; otherwise it reads its own
    greedy predictions (decoded without gradient, then re-read with gradient in one call, which
    gives the same logits as feeding them step by step). The loss covers every gold position.
    ``model`` may be a wrapper: then the predictions and the logits are the symmetrized ones.

    Examples
    --------
    >>> import torch
    >>> src, tgt = torch.tensor([[4, 10]]), torch.tensor([[1, 6, 6, 2]])      # "jump twice" -> <sos> JUMP JUMP <eos>
    >>> loss = seq2seq_loss(Seq2Seq(14, 9, hidden=8), (src, tgt), in_vocab=14, teacher_forcing=1.0)
    >>> loss.shape, bool(loss > 0)
    (torch.Size([]), True)
    """
    src, tgt = batch
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
    if teacher_forcing < 1.0 and float(torch.rand(())) >= teacher_forcing:
        with torch.no_grad():
            pred = greedy_decode(model, src, tgt_out.shape[1], in_vocab)
        pred = nn.functional.pad(pred, (0, tgt_out.shape[1] - pred.shape[1]), value=PAD)
        tgt_in = torch.cat([tgt[:, :1], pred[:, :-1]], dim=1)
    logits = model(pack(src, tgt_in, in_vocab), src_len=src.shape[1])
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1), ignore_index=PAD)
