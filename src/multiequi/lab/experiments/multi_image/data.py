"""Data of the multi-image experiment: images, splits, same-class K-tuples and per-view transforms.

- the images: :mod:`multiequi.lab.datasets.images` (Fashion-MNIST, a user's image folder).
- :func:`make_tuples`: K-tuples of images of one class, formed per class inside one split,
  deterministic per seed.
- :func:`view_groups`: the group of each view for a transform setting; the elements are drawn
  and applied by :func:`multiequi.multi_input.sample_elements` and
  :func:`multiequi.multi_input.transform_inputs` (independently for every view and example).
- :class:`TupleDataset`: batches of K-tuples for a ``DataLoader``, gathered in one indexing call.

Images are kept as ``uint8`` tensors ``(N, C, S, S)``; tuples are ``(T, K)`` tensors of indices
into them, so a split never copies images and a batch is one gather.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from multiequi.groups import Flip, Group, Rot90, TrivialGroup
from multiequi.lab.datasets.images import to_float

__all__ = [
    "AUGMENTATIONS",
    "TupleDataset",
    "group_label",
    "make_tuples",
    "view_groups",
]

#: Per-view transform distributions: none; a random multiple of 90° per view; C4 on odd views and
#: a left-right flip (C2) on even views (views 1, 3 rotated, views 2, 4 flipped).
AUGMENTATIONS = ("none", "rot", "mixed")


# -------------------------------------------------------------------------------------- tuples
def make_tuples(
    labels: Tensor, indices: Tensor, k: int, seed: int, n_tuples: int | None = None
) -> tuple[Tensor, Tensor]:
    """K-tuples of images of one class, formed per class inside one split; label = the class.

    Each class's images in ``indices`` are shuffled and cut into groups of ``k`` (one partition:
    every image at most once, never twice in a tuple). When ``n_tuples`` asks for more tuples
    than one partition gives, further independent partitions are drawn; when it asks for fewer,
    a random subset is kept. The tuples come out shuffled. Deterministic per ``seed``.

    Parameters
    ----------
    labels : Tensor
        The label of every image of the data set.
    indices : Tensor
        The images of one split (indices into ``labels``).
    k : int
        Images per tuple (the paper: 2, 3, 4).
    seed : int
    n_tuples : int, optional
        How many tuples (default: one partition, ``Σ_c ⌊n_c / k⌋``).

    Returns
    -------
    tuples : Tensor
        ``(T, k)`` indices into the data set.
    tuple_labels : Tensor
        ``(T,)`` the class shared by each tuple's images.

    Examples
    --------
    >>> labels = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    >>> t, y = make_tuples(labels, torch.arange(8), k=2, seed=0)
    >>> t.shape, bool((labels[t] == y[:, None]).all())
    (torch.Size([4, 2]), True)
    """
    if k < 1:
        raise ValueError(f"k (images per tuple) must be >= 1, got {k}")
    if n_tuples is not None and n_tuples < 1:
        raise ValueError(f"n_tuples must be >= 1 (or None for one partition), got {n_tuples}")
    gen = torch.Generator().manual_seed(seed)
    split_labels = labels[indices]
    classes = torch.unique(split_labels).tolist()
    per_class = {c: indices[split_labels == c] for c in classes}
    one_pass = sum(v.numel() // k for v in per_class.values())
    if one_pass == 0:
        raise ValueError(
            f"no class of this split ({indices.numel()} images) has {k} images: cannot form {k}-tuples of one class"
        )
    passes = 1 if n_tuples is None else -(-n_tuples // one_pass)
    tuples, tuple_labels = [], []
    for _ in range(passes):
        for c in classes:  # loops over partitions and classes; the images are cut by reshape
            idx = per_class[c]
            m = idx.numel() // k
            if m == 0:
                continue
            t = idx[torch.randperm(idx.numel(), generator=gen)[: m * k]].reshape(m, k)
            tuples.append(t)
            tuple_labels.append(torch.full((m,), int(c), dtype=torch.long))
    t, y = torch.cat(tuples), torch.cat(tuple_labels)
    order = torch.randperm(t.shape[0], generator=gen)
    if n_tuples is not None:
        order = order[:n_tuples]
    return t[order], y[order]


# ---------------------------------------------------------------------------------- transforms
def view_groups(aug: str, k: int) -> list[Group]:
    """The group of each of ``k`` views for a transform setting.

    ``"none"``: the trivial group; ``"rot"``: C4 (rotations by multiples of 90°) on every view;
    ``"mixed"``: C4 on views 1 and 3, C2 (left-right flip) on views 2 and 4. Groups compare by
    structure, so views with equal groups go through a shared model in one batched call.

    Examples
    --------
    >>> [len(g) for g in view_groups("mixed", 3)]
    [4, 2, 4]
    """
    if aug == "none":
        return [TrivialGroup()] * k
    if aug == "rot":
        return [Rot90()] * k
    if aug == "mixed":
        return [Rot90() if i % 2 == 0 else Flip() for i in range(k)]
    raise ValueError(f"unknown transform setting {aug!r}; expected one of {AUGMENTATIONS}")


def group_label(groups: Sequence[Group]) -> str:
    """A short label of the per-view groups, e.g. ``"C4,C2"``.

    Examples
    --------
    >>> group_label(view_groups("mixed", 2))
    'C4,C2'
    """
    return ",".join("C1" if len(g) == 1 else f"C{len(g)}" for g in groups)


class TupleDataset(Dataset):
    """K-tuples as a map-style data set whose batches are gathered in one indexing call.

    ``__getitems__`` (used by ``DataLoader`` for a whole batch of indices) returns
    ``(x, y)`` with ``x`` of shape ``(B, K, C, S, S)`` in ``[0, 1]`` and ``y`` ``(B,)``; pass
    :meth:`collate` as the loader's ``collate_fn``.

    Examples
    --------
    >>> from torch.utils.data import DataLoader
    >>> images = torch.zeros(6, 1, 4, 4, dtype=torch.uint8)
    >>> ds = TupleDataset(images, torch.tensor([[0, 1], [2, 3], [4, 5]]), torch.tensor([0, 1, 2]))
    >>> x, y = next(iter(DataLoader(ds, batch_size=2, collate_fn=TupleDataset.collate)))
    >>> tuple(x.shape), y.tolist()
    ((2, 2, 1, 4, 4), [0, 1])
    """

    def __init__(self, images: Tensor, tuples: Tensor, labels: Tensor) -> None:
        if tuples.dim() != 2 or labels.shape != tuples.shape[:1]:
            raise ValueError(
                f"tuples must be (T, K) and labels (T,); got {tuple(tuples.shape)} and {tuple(labels.shape)}"
            )
        self.images = images
        self.tuples = tuples
        self.labels = labels

    def __len__(self) -> int:
        return int(self.tuples.shape[0])

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return to_float(self.images[self.tuples[idx]]), self.labels[idx]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]

    @staticmethod
    def collate(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """The batch is already collated by ``__getitems__``."""
        return batch
