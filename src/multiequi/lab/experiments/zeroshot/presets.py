"""The presets of ``multiequi zeroshot`` (plain data, no heavy imports: ``--help`` prints them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["DATA", "METHODS", "PRESETS", "TEMPLATE_SETS", "TRANSFORMS", "ZeroShotConfig", "describe_presets"]

#: The methods, in table order, and the copies per image each sends through the model.
#: ``canonical``: the input mapped to one member of its D4 orbit (a fixed template), one pass;
#: ``ttach``: the real ``ttach`` package's D4 test-time augmentation (8 calls of ``B`` rows).
METHODS: dict[str, int] = {
    "plain": 1,
    "canonical": 1,
    "equitune": 8,
    "equizero": 8,
    "lambda-equitune": 8,
    "multi-equitune": 6,
    "multi-equizero": 6,
    "multi-lambda-equitune": 6,
    "ttach": 8,
}
#: The transforms of the test images: each image gets its own seeded random element.
TRANSFORMS = ("none", "rot90", "flip", "d4")
#: Data sets: Fashion-MNIST (Debian's package, fetched on first use), CIFAR-100 and ImageNet-V2
#: (for users who have them), or a folder of class sub-folders (``data_dir``).
DATA = ("fashion-mnist", "cifar100", "imagenet-v2", "folder")
#: Prompt template sets: the 80 ImageNet and 18 CIFAR-100 templates of CLIP's notebook, one
#: ("a photo of a {c}."), or ``auto``: CLIP gets the data set's ensemble (CIFAR-100's 18 on
#: CIFAR-100, ImageNet's 80 otherwise), the stand-in one template (its 80-template map costs
#: 80,000 MiniLM sentences once and did not help on Fashion-MNIST: see standin.py).
TEMPLATE_SETS = ("auto", "imagenet", "cifar100", "simple")


@dataclass(frozen=True)
class ZeroShotConfig:
    """Every setting of a zero-shot run. The evaluation settings (model, data, templates, images,
    transforms, seeds, λ training, batch) fix the predictions; a run folder refuses to resume
    under others."""

    preset: str = "quick"
    model: str | None = None  # None: the EfficientNet-Lite0 + MiniLM stand-in; else a CLIP id or folder
    data: str = "fashion-mnist"
    data_dir: str | None = None
    templates: str = "auto"
    images: int = 100  # test images per seed (a seeded random subset of the test split)
    transforms: tuple[str, ...] = ("none", "d4")
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = tuple(METHODS)
    batch_size: int = 32
    images_per_unit: int = 64
    lambda_images: int = 128  # training images for λ (seeded subset of the training split)
    lambda_epochs: int = 40  # cheap: the classifier's outputs on their D4 images are computed once
    lambda_lr: float = 3e-3
    invariance_images: int = 4
    timing_batch: int = 32
    timing_repeats: int = 2
    timing_clip: bool = False  # also time a random-weight CLIP ViT-B/32
    notes: str = field(default="", compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain data (for records)."""
        return asdict(self)

    def evaluation_key(self) -> dict[str, Any]:
        """The settings that fix the predictions (a resumed run must match them)."""
        keys = (
            "model",
            "data",
            "data_dir",
            "templates",
            "images",
            "images_per_unit",
            "lambda_images",
            "lambda_epochs",
            "lambda_lr",
        )
        d = self.as_dict()
        return {k: d[k] for k in keys}

    def with_options(self, **options: Any) -> ZeroShotConfig:
        """A copy with the options that are not None replaced."""
        return replace(self, **{k: v for k, v in options.items() if v is not None})


#: The methods of the accuracy runs of the medium preset: every method but ttach, whose predictions
#: are equitune's (the same mean over D4, in 8 calls); ttach is still timed and checked for invariance.
_ALL_BUT_TTACH = tuple(m for m in METHODS if m != "ttach")

PRESETS: dict[str, ZeroShotConfig] = {
    "quick": ZeroShotConfig(
        preset="quick",
        images=32,
        transforms=("none", "d4"),
        seeds=(0, 1, 2),
        lambda_images=32,
        lambda_epochs=20,
        timing_repeats=2,
        notes="32 images per seed, untransformed and random D4, 3 seeds: about 11 minutes on 2 cores",
    ),
    "medium": ZeroShotConfig(
        preset="medium",
        images=100,
        transforms=TRANSFORMS,
        seeds=(0, 1, 2),
        methods=_ALL_BUT_TTACH,
        lambda_images=128,
        lambda_epochs=40,
        timing_repeats=5,
        timing_clip=True,
        notes="100 images per seed, every transform, 3 seeds, ttach timed only, CLIP ViT-B/32 timings: "
        "about an hour on 2 cores",
    ),
    "paper": ZeroShotConfig(
        preset="paper",
        images=10000,
        transforms=TRANSFORMS,
        seeds=(0, 1, 2),
        lambda_images=1000,
        lambda_epochs=20,
        timing_repeats=5,
        timing_clip=True,
        notes="the whole test set (10,000 for Fashion-MNIST and CIFAR-100), every transform, 3 seeds (use a GPU)",
    ),
}


def describe_presets() -> str:
    """One line per preset with its settings (shown by ``--help`` and in the docs).

    Examples
    --------
    >>> "quick:" in describe_presets()
    True
    """
    return "\n".join(
        f"{name}: {p.images} test images per seed; transforms {', '.join(p.transforms)}; seeds "
        f"{', '.join(map(str, p.seeds))}; λ trained on {p.lambda_images} images for {p.lambda_epochs} epochs; "
        f"timing at batch {p.timing_batch}{' + random CLIP ViT-B/32' if p.timing_clip else ''} ({p.notes})"
        for name, p in PRESETS.items()
    )
