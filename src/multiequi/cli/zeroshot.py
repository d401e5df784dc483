"""``multiequi zeroshot``: zero-shot image classification under rotations and flips.

This module is imported to build the parser: models, data and plotting load inside :func:`run`.
"""

from __future__ import annotations

import argparse

from multiequi.lab.experiments.zeroshot.presets import (
    DATA,
    METHODS,
    PRESETS,
    TEMPLATE_SETS,
    TRANSFORMS,
    describe_presets,
)

from ._argtypes import add_action_argument, add_process_options, int_arg, start_experiment

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "Robust zero-shot image classification (Design 2 on a pretrained image-text model). Each test image gets its "
    "own seeded random element of rot90, of the left-right flip, or of D4 = rot90 × flip (8 elements). Methods: "
    "plain; canonical (one pass on a fixed-template canonical orbit member); equitune, equizero and λ-equitune over "
    "D4 (8 copies); multi-equitune, multi-equizero and multi-λ-equitune over rot90 and flip (4 + 2 = 6 copies); "
    "ttach's D4 test-time augmentation (8 calls). λ is trained on a small training split, the classifier frozen. "
    "Reports top-1 / top-5 (mean ± std over seeds), copies, time per image, invariance error, and the time per image "
    "of each method at one batch size (methods interleaved). Default model: EfficientNet-Lite0 image features and "
    "all-MiniLM-L6-v2 text embeddings joined by a linear map fitted on ImageNet's class names, a stand-in for CLIP "
    "(no CLIP weights ship offline); --model takes any transformers CLIP id or folder. Default data: Fashion-MNIST "
    "(Debian's dataset-fashion-mnist, fetched on first use), a stand-in for CIFAR-100 / ImageNet-V2, which --data "
    "reads from --data-dir. Resumable: rerun the same command. Under 'accelerate launch --num_processes N' the "
    "processes share the evaluation.\n\nPresets:\n" + describe_presets()
)

_positive = int_arg(1)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``multiequi zeroshot``."""
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    add_action_argument(
        p, "train λ, evaluate what --out lacks, time, report", "rebuild the report from --out's summary.json"
    )
    p.add_argument("--preset", choices=tuple(PRESETS), default="quick", help="the budget (default quick; see Presets)")
    p.add_argument(
        "--model",
        metavar="ID_OR_DIR",
        default=None,
        help="a transformers CLIP id or local folder (e.g. openai/clip-vit-base-patch32 where the hub is reachable); "
        "default: the offline EfficientNet-Lite0 + all-MiniLM-L6-v2 stand-in",
    )
    p.add_argument("--data", choices=DATA, default=None, help="the data set (default fashion-mnist)")
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="where the data set is: Fashion-MNIST's IDX files (default: Debian's package, fetched into "
        "~/.cache/multiequi), CIFAR-100's cifar-100-python folder, ImageNet-V2's class folders 0..999, or a folder "
        "of class sub-folders (--data folder)",
    )
    p.add_argument("--templates", choices=TEMPLATE_SETS, default=None, help="prompt templates (default imagenet: 80)")
    p.add_argument("--images", type=_positive, metavar="N", default=None, help="test images per seed")
    p.add_argument(
        "--transforms", nargs="+", choices=TRANSFORMS, default=None, metavar="T", help=f"among {', '.join(TRANSFORMS)}"
    )
    p.add_argument("--seeds", nargs="+", type=int_arg(0), default=None, metavar="S", help="seeds (default 0 1 2)")
    p.add_argument(
        "--methods", nargs="+", choices=tuple(METHODS), default=None, metavar="M", help=f"among {', '.join(METHODS)}"
    )
    p.add_argument("--batch-size", type=_positive, default=None, help="evaluation batch (default 32)")
    p.add_argument("--timing-clip", action="store_true", default=None, help="also time a random-weight CLIP ViT-B/32")
    p.add_argument(
        "--timing-rounds",
        type=_positive,
        metavar="N",
        default=None,
        help="timing rounds, each method once per round; the report gives medians (quick 2, medium and paper 5)",
    )
    p.add_argument("--out", metavar="DIR", default=None, help="run folder (default results/zeroshot/<preset>)")
    add_process_options(p)


def run(args: argparse.Namespace) -> int:
    """Run ``multiequi zeroshot``."""
    from multiequi.lab.experiments.zeroshot.pipeline import run_zeroshot
    from multiequi.lab.experiments.zeroshot.report import rebuild_report

    out = start_experiment(args, "zeroshot", rebuild_report)
    if out is None:
        return 0
    config = PRESETS[args.preset].with_options(
        model=args.model,
        data=args.data,
        data_dir=args.data_dir,
        templates=args.templates,
        images=args.images,
        transforms=tuple(args.transforms) if args.transforms else None,
        seeds=tuple(args.seeds) if args.seeds else None,
        methods=tuple(args.methods) if args.methods else None,
        batch_size=args.batch_size,
        timing_clip=args.timing_clip,
        timing_repeats=args.timing_rounds,
    )
    summary = run_zeroshot(config, out, show_progress=args.progress)
    if summary is None:  # another process of `accelerate launch`: the main one reports
        return 0
    print((out / "report.md").read_text())
    print(
        f"Written to {out}/: report.md, accuracy.md/.csv/.json, timing.*, accuracy.png, accuracy_vs_time.png, "
        "summary.json"
    )
    return 0
