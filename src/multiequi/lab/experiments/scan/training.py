"""Batches and exact-match evaluation for the SCAN models (the loss is
:func:`multiequi.models.seq2seq_loss`).

Everything is batched: examples are padded id tensors gathered by index (``__getitems__``), the
loss is one call of the (wrapped) model per batch, decoding runs all rows of a batch together.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from multiequi.lab.datasets.scan import PairData
from multiequi.lab.reporting import progress
from multiequi.models.seq2seq import exact_match, greedy_decode

__all__ = ["accuracy", "make_loader"]


def _batch_as_is(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    return batch


def make_loader(data: PairData, batch_size: int, shuffle: bool = True) -> DataLoader:
    """A loader of ``(src, tgt)`` batches (reshuffled each epoch with the training seed).

    Examples
    --------
    >>> from multiequi.lab.datasets.scan import Vocab
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
    >>> from multiequi.lab.datasets.scan import Vocab
    >>> from multiequi.models import Seq2Seq
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
