"""Evaluation of the zero-shot methods on transformed test images, in resumable units.

For each seed the test images are a seeded random subset of the test split; for each transform
each image gets its own seeded random element (:func:`multiequi.lab.datasets.transforms.random_elements`).
The work is a fixed list of units (seed, transform, a slice of the subset), shared by the
processes of ``accelerate launch`` and resumed unit by unit (:mod:`multiequi.lab.training.units`).
Each unit runs every method on its images in batches of ``batch_size`` and records, per image,
the label, the element and each method's top-5 classes, and per method the seconds spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from multiequi.lab.datasets.transforms import apply_elements, random_elements

from .presets import TRANSFORMS

__all__ = ["Unit", "evaluate_unit", "plan_units", "seeded_subset", "transform_seed", "unit_elements"]


@dataclass(frozen=True)
class Unit:
    """Images ``start:stop`` of seed ``seed``'s test subset, under ``transform``."""

    seed: int
    transform: str
    start: int
    stop: int

    def key(self) -> dict[str, Any]:
        """What fixes the unit's result (with the run's evaluation settings)."""
        return asdict(self)


def plan_units(seeds: Sequence[int], transforms: Sequence[str], images: int, per_unit: int) -> list[Unit]:
    """Seed-major, then transform, then slices of ``per_unit`` images.

    Examples
    --------
    >>> [(u.seed, u.transform, u.start, u.stop) for u in plan_units([0], ["none", "d4"], 5, 3)]
    [(0, 'none', 0, 3), (0, 'none', 3, 5), (0, 'd4', 0, 3), (0, 'd4', 3, 5)]
    """
    if images < 1 or per_unit < 1:
        raise ValueError("images and per_unit must be at least 1")
    for t in transforms:
        if t not in TRANSFORMS:
            raise ValueError(f"unknown transform {t!r}; expected one of {', '.join(TRANSFORMS)}")
    return [
        Unit(s, t, a, min(a + per_unit, images)) for s in seeds for t in transforms for a in range(0, images, per_unit)
    ]


def seeded_subset(test_indices: Tensor, n: int, seed: int) -> Tensor:
    """``n`` of ``test_indices``, a seeded random choice (all of them, shuffled, when ``n`` is larger).

    Examples
    --------
    >>> seeded_subset(torch.arange(10, 20), 3, seed=0).tolist() == seeded_subset(torch.arange(10, 20), 3, 0).tolist()
    True
    """
    g = torch.Generator().manual_seed(10_007 * seed + 1)
    return test_indices[torch.randperm(test_indices.numel(), generator=g)[:n]]


def transform_seed(seed: int, transform: str) -> int:
    """The seed of the per-image elements of ``transform`` under run seed ``seed``."""
    return 1000 * seed + TRANSFORMS.index(transform)


def unit_elements(unit: Unit, images: int) -> Tensor:
    """The elements of the unit's images: the slice of the seed's draw for all ``images``."""
    return random_elements(images, unit.transform, transform_seed(unit.seed, unit.transform))[unit.start : unit.stop]


def evaluate_unit(
    unit: Unit,
    classifiers: Mapping[str, Callable[[Tensor], Tensor]],
    raw: Tensor,
    labels: Tensor,
    elements: Tensor,
    prepare: Callable[[Tensor], Tensor],
    batch_size: int,
) -> dict[str, Any]:
    """Run every classifier on the unit's images ``raw`` (``uint8``, untransformed) with their
    elements applied; return the unit's record (labels, elements, top-5 per method, seconds)."""
    top5: dict[str, list[list[int]]] = {m: [] for m in classifiers}
    seconds = dict.fromkeys(classifiers, 0.0)
    for a in range(0, raw.shape[0], batch_size):
        x = prepare(apply_elements(raw[a : a + batch_size], unit.transform, elements[a : a + batch_size]))
        for name, fn in classifiers.items():
            start = time.perf_counter()
            with torch.no_grad():
                logits = fn(x)
            if logits.is_cuda:
                torch.cuda.synchronize(logits.device)  # the time of the work, not of its launch
            seconds[name] += time.perf_counter() - start
            k = min(5, logits.shape[-1])
            top5[name].extend(logits.topk(k, dim=-1).indices.tolist())
    return {
        "labels": labels.tolist(),
        "elements": elements.tolist(),
        "top5": top5,
        "seconds": seconds,
        "images": int(raw.shape[0]),
        "batch_size": batch_size,
    }
