"""Batches, the teacher-forcing loss and exact-match evaluation for the SCAN models.

Everything is batched: examples are padded id tensors gathered by index (``__getitems__``), the
loss is one call of the (wrapped) model per batch, decoding runs all rows of a batch together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..common import progress
from .data import PAD, Example, Vocab, encode
from .model import exact_match, greedy_decode, pack

__all__ = ["PairData", "accuracy", "make_loader", "seq2seq_loss"]


class PairData(Dataset):
    """Encoded examples as two padded tensors; a batch is gathered in one indexing operation
    and trimmed to its longest source and target.

    Examples
    --------
    >>> from multiequi.experiments.scan.data import Vocab
    >>> d = PairData([("jump", "I_JUMP"), ("walk twice", "I_WALK I_WALK")], Vocab.of("scan"))
    >>> src, tgt = d.__getitems__([0])
    >>> src.tolist(), tgt.tolist()
    ([[4]], [[1, 6, 2]])
    """

    def __init__(self, examples: Sequence[Example], vocab: Vocab) -> None:
        self.vocab = vocab
        self.src, self.tgt = encode(examples, vocab)
        self.src_lengths = (self.src != PAD).sum(1)
        self.tgt_lengths = (self.tgt != PAD).sum(1)

    def __len__(self) -> int:
        return self.src.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.__getitems__([i])

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        s, t = int(self.src_lengths[idx].max()), int(self.tgt_lengths[idx].max())
        return self.src[idx, :s], self.tgt[idx, :t]

    def subset(self, indices: Tensor) -> PairData:
        """The examples at ``indices`` (a view on the same vocabulary)."""
        out = PairData.__new__(PairData)
        out.vocab = self.vocab
        out.src, out.tgt = self.src[indices], self.tgt[indices]
        out.src_lengths, out.tgt_lengths = self.src_lengths[indices], self.tgt_lengths[indices]
        return out


def _batch_as_is(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return batch


def make_loader(data: PairData, batch_size: int, shuffle: bool = True) -> DataLoader:
    """A loader of ``(src, tgt)`` batches (reshuffled each epoch with the training seed).

    Examples
    --------
    >>> from multiequi.experiments.scan.data import Vocab
    >>> loader = make_loader(PairData([("jump", "I_JUMP"), ("walk", "I_WALK")], Vocab.of("scan")), 2)
    >>> [tuple(t.shape) for t in next(iter(loader))]
    [(2, 1), (2, 3)]
    """
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle,
        # torch's stubs expect Callable[[list[T]], Any]; with __getitems__ collate_fn gets the whole batch
        collate_fn=_batch_as_is,  # type: ignore[arg-type]
        drop_last=False,
    )


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
    >>> from multiequi.experiments.scan.data import Vocab
    >>> from multiequi.experiments.scan.model import Seq2Seq
    >>> batch = PairData([("jump twice", "I_JUMP I_JUMP")], Vocab.of("scan")).__getitems__([0])
    >>> loss = seq2seq_loss(Seq2Seq(14, 9, hidden=8), batch, in_vocab=14, teacher_forcing=1.0)
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


@torch.no_grad()
def accuracy(
    model: Callable[..., Tensor],
    data: PairData,
    batch_size: int = 256,
    *,
    device: torch.device | str | None = None,
    show: bool = False,
    desc: str = "eval",
) -> tuple[int, int]:
    """Exact-match ``(correct, total)`` of greedy decoding over ``data``.

    Examples are batched by target length; each batch decodes at most as many tokens as its
    longest target has (a longer prediction is wrong anyway), so the result equals decoding to
    the full length.

    Examples
    --------
    >>> from multiequi.experiments.scan.data import Vocab
    >>> from multiequi.experiments.scan.model import Seq2Seq
    >>> data = PairData([("jump", "I_JUMP"), ("walk twice", "I_WALK I_WALK")], Vocab.of("scan"))
    >>> correct, total = accuracy(Seq2Seq(14, 9, hidden=8).eval(), data)
    >>> total
    2
    """
    order = torch.argsort(data.tgt_lengths, stable=True)
    correct = 0
    bar = progress(total=len(order), desc=desc, enabled=show, unit="ex")
    for lo in range(0, len(order), batch_size):
        src, tgt = data.__getitems__(order[lo : lo + batch_size].tolist())
        if device is not None:
            src, tgt = src.to(device), tgt.to(device)
        pred = greedy_decode(model, src, tgt.shape[1] - 1, len(data.vocab.inputs))
        correct += int(exact_match(pred, tgt).sum())
        bar.update(src.shape[0])
    bar.close()
    return correct, len(order)
