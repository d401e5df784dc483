"""Per-image seeded random rotations and flips: the transformed test sets of the zero-shot experiment.

Every image gets its own group element, drawn from a seeded generator, and a whole batch is
transformed in one tensor operation (the group's :meth:`~multiequi.groups.Group.transform`).

- :data:`TRANSFORMS`: the kinds, ``"none"``, ``"rot90"``, ``"flip"`` and ``"d4"``.
- :func:`transform_group`: the :class:`~multiequi.groups.Group` of a kind.
- :func:`random_elements`: one seeded element per image.
- :func:`apply_elements`: the images transformed, each by its element.
- :func:`element_names`: readable names of the elements, for reports.

Conventions, on images ``(B, C, H, W)``: the flip is **left-right** (it reverses the width, the
last axis: a pixel in the top-left corner goes to the top-right corner); rotation element ``k``
is ``torch.rot90(x, k, (-2, -1))``, a rotation by ``k × 90°`` **counter-clockwise** as the image
is displayed (row 0 at the top: the top-right corner goes to the top-left). The ``"d4"`` element
``2 r + f`` is ``rot90^r ∘ flip^f`` (flip first, then rotate), as in
``Product(Rot90(), Flip())``.

Examples
--------
>>> import torch
>>> x = torch.zeros(64, 1, 4, 4)
>>> x[:, 0, 0, 0] = 1.0  # a bright pixel in the top-left corner of every image
>>> e = random_elements(64, "d4", seed=0)
>>> y = apply_elements(x, "d4", e)
>>> len(set(e.tolist())) > 1, tuple(y.shape)  # one element per image, not one per batch
(True, (64, 1, 4, 4))
>>> [(element_names("d4")[int(e[k])], torch.nonzero(y[k, 0]).tolist()) for k in range(3)]
[('rot90^2', [[3, 3]]), ('rot90^3 ∘ flip', [[3, 3]]), ('rot90^2 ∘ flip', [[3, 0]])]
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from multiequi.groups import Flip, Group, Product, Rot90, TrivialGroup

__all__ = ["TRANSFORMS", "apply_elements", "element_names", "random_elements", "transform_group"]

#: The kinds of random transforms: none, a rotation by a multiple of 90°, a left-right flip, or any
#: of the eight rotations and flips (the dihedral group D4).
TRANSFORMS = ("none", "rot90", "flip", "d4")

_NAMES = {
    "none": ["identity"],
    "rot90": ["identity", "rot90^1", "rot90^2", "rot90^3"],
    "flip": ["identity", "flip"],
    "d4": [
        "identity" if r == 0 and f == 0 else "flip" if r == 0 else f"rot90^{r}" + (" ∘ flip" if f else "")
        for r in range(4)
        for f in range(2)
    ],
}


def _check_kind(kind: str) -> str:
    if kind not in TRANSFORMS:
        raise ValueError(f"unknown transform {kind!r}: choose one of {', '.join(TRANSFORMS)}")
    return kind


@functools.cache
def _group(kind: str) -> Group:
    if kind == "none":
        return TrivialGroup()
    if kind == "rot90":
        return Rot90()
    if kind == "flip":
        return Flip(-1)
    return Product(Rot90(), Flip(-1))


def transform_group(kind: str) -> Group:
    """The group of a kind of transform, acting on images ``(..., H, W)``.

    ``"none"``: :class:`~multiequi.groups.TrivialGroup` (one element, the identity);
    ``"rot90"``: :class:`~multiequi.groups.Rot90` (C4, ``torch.rot90`` over ``(H, W)``);
    ``"flip"``: :class:`~multiequi.groups.Flip` of the last axis (left-right);
    ``"d4"``: ``Product(Rot90(), Flip())`` (eight elements, element ``2 r + f`` is
    ``rot90^r ∘ flip^f``). The same object is returned on every call, so its cached gather
    tables are built once per image size.

    Examples
    --------
    >>> [len(transform_group(k)) for k in TRANSFORMS]
    [1, 4, 2, 8]
    >>> transform_group("flip")
    Flip(dim=-1)
    """
    return _group(_check_kind(kind))


def random_elements(n: int, kind: str, seed: int) -> Tensor:
    """One uniformly random group element per image: ``int64`` ``(n,)``.

    Drawn by the group's :meth:`~multiequi.groups.Group.sample` from
    ``torch.Generator().manual_seed(seed)``: the same ``seed`` gives the same elements on every
    run and machine. The first ``k`` of ``n`` elements equal the ``k`` drawn alone: ``sample``
    is one ``torch.randint`` on the CPU generator, which draws its numbers one after the other
    (checked by the tests up to ``n = 100,000``; ``Group.sample`` itself does not promise it).

    Examples
    --------
    >>> random_elements(8, "rot90", seed=0).tolist()
    [0, 3, 1, 0, 3, 3, 3, 3]
    >>> torch.equal(random_elements(5, "rot90", seed=0), random_elements(8, "rot90", seed=0)[:5])
    True
    """
    group = transform_group(kind)
    return group.sample(n, torch.Generator().manual_seed(int(seed)))


def apply_elements(images: Tensor, kind: str, elements: Tensor) -> Tensor:
    """``elements[k]`` applied to ``images[k]`` for every ``k``, in one tensor operation.

    Parameters
    ----------
    images : Tensor
        Square images ``(B, C, S, S)`` (any dtype and device; ``uint8`` before
        :func:`~multiequi.lab.datasets.images.natural_images` is cheapest).
    kind : str
        One of :data:`TRANSFORMS`.
    elements : Tensor
        ``int64`` ``(B,)``, e.g. from :func:`random_elements` (a slice of it for a batch).

    Returns
    -------
    Tensor
        The transformed images, same shape, dtype and device (for ``"none"``, ``images`` itself).

    Examples
    --------
    >>> x = torch.arange(4).reshape(1, 1, 2, 2)
    >>> apply_elements(x, "flip", torch.tensor([1])).tolist()  # left-right
    [[[[1, 0], [3, 2]]]]
    >>> apply_elements(x, "rot90", torch.tensor([1])).tolist()  # counter-clockwise
    [[[[1, 3], [0, 2]]]]
    """
    if images.dim() < 3:
        raise ValueError(f"apply_elements takes a batch of images (B, C, H, W); got shape {tuple(images.shape)}")
    if elements.dim() != 1 or elements.shape[0] != images.shape[0]:
        raise ValueError(
            f"apply_elements needs one element per image: {images.shape[0]} images, elements of shape "
            f"{tuple(elements.shape)}"
        )
    return transform_group(kind).transform(images, elements.to(images.device))


def element_names(kind: str) -> list[str]:
    """Readable names of the elements of a kind, indexed by element.

    Examples
    --------
    >>> element_names("rot90")
    ['identity', 'rot90^1', 'rot90^2', 'rot90^3']
    >>> element_names("d4")[:4]
    ['identity', 'flip', 'rot90^1', 'rot90^1 ∘ flip']
    """
    return list(_NAMES[_check_kind(kind)])
