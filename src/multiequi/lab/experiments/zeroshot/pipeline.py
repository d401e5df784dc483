"""The zero-shot experiment end to end: train λ, evaluate (every process), measure and report (main).

Stages, each cached in the run folder so an interrupted run resumes where it stopped:

1. ``config.json``: the settings that fix the predictions (a folder refuses other settings).
2. ``lambda/<method>-seed<s>/``: the λ network of λ-equitune and multi-λ-equitune for each seed,
   trained through the lab's one training loop (Accelerate; exact resumption from checkpoints)
   on a small seeded subset of the training split, each training image under a fresh random
   D4 element, the pretrained classifier frozen.
3. ``units/unit-*.json``: every method's top-5 classes on every test image of every seed and
   transform, split across processes (:mod:`.evaluation`).
4. ``measured/invariance.json``: each method's logits over the 8 D4 images of a few test images;
   ``measured/timing.json``: time per image at one batch size, methods interleaved, on the run's model
   and (option) a random-weight CLIP ViT-B/32.
5. ``summary.json`` and the report (:mod:`.report`), rebuilt from the files above alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiequi.lab.datasets.images import ImageData, natural_images
from multiequi.lab.datasets.transforms import apply_elements, transform_group
from multiequi.lab.reporting import atomic_write_json, interleaved_times, machine_info, read_json, summarize_times
from multiequi.lab.training import TrainConfig, join_process_group, train
from multiequi.lab.training.units import check_run_key, process_state, read_units, run_units

from .evaluation import Unit, evaluate_unit, plan_units, seeded_subset, unit_elements
from .methods import LambdaNet, OrbitMemo, build_method, invariance_error, needs_lambda
from .presets import METHODS, ZeroShotConfig

__all__ = ["load_classifier", "load_data", "run_zeroshot", "summarize_units", "train_lambda"]

#: Fashion-MNIST's name in this experiment's outputs: here it stands in for the paper's zero-shot data sets.
FASHION_MNIST_NAME = "Fashion-MNIST (stand-in for CIFAR-100 / ImageNet-V2)"


def load_data(config: ZeroShotConfig) -> tuple[ImageData, bool]:
    """The data set and whether its images are inverted for a natural-image encoder (Fashion-MNIST:
    light clothes on black become dark on white)."""
    from multiequi.lab.datasets import images

    if config.data == "fashion-mnist":
        data = images.load_fashion_mnist(config.data_dir, size=28)
        return replace(data, name=FASHION_MNIST_NAME), True
    if config.data_dir is None:
        raise ValueError(f"--data {config.data} needs --data-dir (the folder holding it)")
    if config.data == "cifar100":
        return images.load_cifar100(config.data_dir), False
    if config.data == "imagenet-v2":
        return images.load_imagenet_v2(config.data_dir), False
    if config.data == "folder":
        return images.load_image_folder(config.data_dir, size=224, channels=3), False
    raise ValueError(f"unknown data set {config.data!r}; expected fashion-mnist, cifar100, imagenet-v2 or folder")


def template_set(config: ZeroShotConfig) -> str:
    """The template set a run uses: ``config.templates``, with ``auto`` resolved (see
    :data:`~.presets.TEMPLATE_SETS`)."""
    if config.templates != "auto":
        return config.templates
    if config.model is None:
        return "simple"
    return "cifar100" if config.data == "cifar100" else "imagenet"


def _templates(name: str) -> tuple[str, ...]:
    from multiequi.hf import TEMPLATES

    if name == "simple":
        return ("a photo of a {c}.",)
    return tuple(TEMPLATES[name])


def load_classifier(config: ZeroShotConfig, data: ImageData) -> tuple[nn.Module, str, dict[str, Any]]:
    """The zero-shot classifier over ``data``'s classes, its name in the outputs and notes on it:
    the EfficientNet-Lite0 + MiniLM stand-in (its fit report), or a CLIP model from an id or folder."""
    templates = _templates(template_set(config))
    if config.model is None:
        from .standin import (
            FASHION_MNIST_PROMPT_NAMES,
            STANDIN_NAME,
            classifier_rows,
            fit_report,
            imagenet_text_embeddings,
            standin_zeroshot,
        )

        names = list(FASHION_MNIST_PROMPT_NAMES) if config.data == "fashion-mnist" else list(data.classes)
        model = standin_zeroshot(names, templates=templates)
        fit = fit_report(imagenet_text_embeddings(templates), classifier_rows(model.backbone), templates=templates)
        return model.eval(), STANDIN_NAME, {"prompt_names": names, "fit": fit}
    from multiequi.hf import ZeroShotCLIP

    model = ZeroShotCLIP.from_pretrained(config.model, list(data.classes), templates=templates)
    return model.eval(), str(config.model), {"prompt_names": list(data.classes)}


def _device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return torch.device("cpu") if p is None else p.device


def make_prepare(model: nn.Module, invert: bool) -> Callable[[Tensor], Tensor]:
    """``uint8`` images → the model's pixel values (natural-image RGB at its size, normalized) on
    the model's device. The resize runs on the CPU, where it is exact (float64 integer sums), then
    the images move; the normalization is elementwise: both commute bitwise with D4."""
    size = int(getattr(model, "image_size", 224))
    device = _device(model)

    def prepare(x: Tensor) -> Tensor:
        images = natural_images(x.cpu(), size=size, invert=invert).to(device)
        return model.preprocess(images)  # type: ignore[operator]

    return prepare


class _LambdaTrainer(nn.Module):
    """Holds only the λ network (what is trained and checkpointed); calls the wrapper around it."""

    def __init__(self, net: nn.Module, wrapper: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.net = net
        self._wrapper = [wrapper]  # not a submodule: the frozen classifier stays out of checkpoints

    def forward(self, x: Tensor) -> Tensor:
        return self._wrapper[0](x)


def train_lambda(
    method: str,
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    prepare: Callable[[Tensor], Tensor],
    *,
    seed: int,
    epochs: int,
    lr: float,
    batch_size: int = 16,
    checkpoint_dir: str | Path | None = None,
    show_progress: bool = True,
    memo: nn.Module | None = None,
) -> LambdaNet:
    """Train the λ network of ``method`` on ``images`` (``uint8``), the classifier frozen; each
    training image gets a fresh random D4 element every time it is drawn. The classifier's outputs
    on the 8 D4 images of every training image are computed once (:class:`OrbitMemo`, or ``memo``
    when given), so an epoch costs λ's network and the copies, not the classifier. Returns the
    network."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    net = LambdaNet()
    for p in model.parameters():
        p.requires_grad_(False)
    if memo is None:
        memo = OrbitMemo(model, prepare(images))
    trainer = _LambdaTrainer(net, build_method(method, memo, weight_net=net))
    loader = DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=True)
    group = transform_group("d4")

    def loss_fn(m: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        x = apply_elements(x, "d4", group.sample(x.shape[0]))  # torch's stream: restored on resumption
        return F.cross_entropy(m(prepare(x)), y)

    config = TrainConfig(
        steps=epochs * len(loader),
        lr=lr,
        seed=seed,
        progress=show_progress,
        checkpoint_seconds=60.0,
        desc=f"λ of {method}, seed {seed}",
    )
    train(trainer, loader, loss_fn, config, checkpoint_dir=checkpoint_dir)
    return net.eval()


def _training_pool(data: ImageData) -> Tensor:
    for split in ("train", "val"):
        if split in data.splits and data.splits[split].numel():
            return data.splits[split]
    raise ValueError(f"{data.name} has no training split: λ-equitune needs one (drop the λ methods with --methods)")


def _classifiers(
    methods: Sequence[str], model: nn.Module, nets: Mapping[str, nn.Module]
) -> dict[str, Callable[[Tensor], Tensor]]:
    return {m: build_method(m, model, weight_net=nets.get(m)) for m in methods}


#: model calls per batch of the methods that are not the library's wrappers (those chunk: "auto")
_CALLS = {"plain": "1", "canonical": "1", "ttach": "8"}

#: the wrappers timed a second time with every copy of the batch in one model call
ONE_CALL_METHODS = ("equitune", "multi-equitune")


def _timing(
    classifiers: Mapping[str, Callable[[Tensor], Tensor]],
    x: Tensor,
    repeats: int,
    label: str,
    one_call: Mapping[str, Callable[[Tensor], Tensor]] | None = None,
) -> list[dict[str, Any]]:
    """Time every classifier on the batch ``x``, interleaved (round ``r`` runs each once), after
    one warm-up call each (where a wrapper's ``chunk_size="auto"`` measures its call size).
    ``one_call``: wrappers built with ``chunk_size=None`` (all copies of the batch in one call),
    timed in the same rounds. Each row keeps its per-round times, so ratios can be paired."""
    timed = [(name, "auto", fn) for name, fn in classifiers.items()]
    timed += [(name, "one call", fn) for name, fn in (one_call or {}).items()]
    with torch.no_grad():
        for _, _, fn in timed:
            fn(x)
        wall, _ = interleaved_times([lambda fn=fn: fn(x) for _, _, fn in timed], repeats, x.device)
    rows = []
    for (name, calls, _), seconds in zip(timed, wall, strict=True):
        t = summarize_times(seconds)
        rows.append(
            {
                "model": label,
                "method": name,
                "calls": _CALLS.get(name, calls),
                "batch": int(x.shape[0]),
                "copies": METHODS[name],
                "ms_per_batch": t["median"],
                "ms_per_image": None if t["median"] is None else t["median"] / x.shape[0],
                "repeats": len(seconds),
                "ms_per_round": [1e3 * s for s in seconds],
            }
        )
    return rows


def random_clip_vit_b32(classes: int = 10, seed: int = 0) -> nn.Module:
    """A randomly initialised CLIP ViT-B/32 (transformers' default ``CLIPConfig``: patch 32,
    width 768, 12 layers; text width 512) as a zero-shot classifier over ``classes`` random class
    embeddings: timing does not depend on the weights' values."""
    from transformers import CLIPConfig, CLIPModel

    from multiequi.hf import ZeroShotCLIP

    torch.manual_seed(seed)
    clip = CLIPModel(CLIPConfig()).eval()
    return ZeroShotCLIP(clip, class_embeddings=torch.randn(classes, clip.config.projection_dim)).eval()


def summarize_units(records: Sequence[Mapping[str, Any]], units: Sequence[Unit]) -> list[dict[str, Any]]:
    """One row per (seed, transform, method): top-1, top-5 and seconds per image over its units."""
    acc: dict[tuple[int, str, str], dict[str, float]] = {}
    for unit, rec in zip(units, records, strict=True):
        for method, tops in rec["top5"].items():
            a = acc.setdefault((unit.seed, unit.transform, method), {"n": 0, "top1": 0, "top5": 0, "seconds": 0.0})
            for label, top in zip(rec["labels"], tops, strict=True):
                a["n"] += 1
                a["top1"] += label == top[0]
                a["top5"] += label in top[:5]
            a["seconds"] += rec["seconds"][method]
    return [
        {
            "seed": s,
            "transform": t,
            "method": m,
            "images": int(a["n"]),
            "top1": a["top1"] / a["n"],
            "top5": a["top5"] / a["n"],
            "ms_per_image": 1e3 * a["seconds"] / a["n"],
            "copies": METHODS[m],
        }
        for (s, t, m), a in acc.items()
    ]


def run_zeroshot(
    config: ZeroShotConfig,
    out: str | Path,
    *,
    show_progress: bool = True,
    model: nn.Module | None = None,
    data: tuple[ImageData, bool] | None = None,
    model_name: str | None = None,
) -> dict[str, Any] | None:
    """Run (or resume) the experiment in ``out``; return the summary on the main process, ``None``
    on the others. ``model`` / ``data`` / ``model_name`` replace what ``config`` would load (tests)."""
    from .report import write_report

    out = Path(out)
    for m in config.methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; expected one of {', '.join(METHODS)}")
    join_process_group()
    state = process_state()
    check_run_key(out, "evaluation", config.evaluation_key(), state=state)
    data_set, invert = data if data is not None else load_data(config)
    notes: dict[str, Any] = {}
    if model is None:
        model, name, notes = load_classifier(config, data_set)
    else:
        name = model_name or type(model).__name__
    model.eval().to(state.device)  # a GPU when one is visible (accelerate's device), else the CPU
    prepare = make_prepare(model, invert)
    test_idx = data_set.splits["test"]
    n_images = min(config.images, int(test_idx.numel()))

    nets: dict[tuple[str, int], nn.Module] = {}
    lambda_methods = [m for m in config.methods if needs_lambda(m)]
    if lambda_methods:
        pool = _training_pool(data_set)
        for seed in config.seeds:
            chosen = seeded_subset(pool, config.lambda_images, seed)
            memo = OrbitMemo(model, prepare(data_set.images[chosen]))  # shared by the λ methods
            for m in lambda_methods:
                nets[(m, seed)] = train_lambda(
                    m,
                    model,
                    data_set.images[chosen],
                    data_set.labels[chosen],
                    prepare,
                    seed=seed,
                    epochs=config.lambda_epochs,
                    lr=config.lambda_lr,
                    checkpoint_dir=out / "lambda" / f"{m}-seed{seed}",
                    show_progress=show_progress,
                    memo=memo,
                )
            notes["lambda_memo_misses"] = notes.get("lambda_memo_misses", 0) + memo.misses

    units = plan_units(config.seeds, config.transforms, n_images, config.images_per_unit)
    per_seed: dict[int, dict[str, Callable[[Tensor], Tensor]]] = {}

    def classifiers_for(seed: int, with_ttach: bool = False) -> dict[str, Callable[[Tensor], Tensor]]:
        """The methods of the run (timing and invariance: with ttach, which medium does not evaluate)."""
        if seed not in per_seed:
            lam = {m: nets[(m, seed)] for m in lambda_methods}
            per_seed[seed] = _classifiers(config.methods, model, lam)
        chosen = dict(per_seed[seed])
        if with_ttach and "ttach" not in chosen:
            chosen["ttach"] = build_method("ttach", model)
        return chosen

    def work(unit: Unit) -> dict[str, Any]:
        idx = seeded_subset(test_idx, n_images, unit.seed)[unit.start : unit.stop]
        return evaluate_unit(
            unit,
            classifiers_for(unit.seed),
            data_set.images[idx],
            data_set.labels[idx],
            unit_elements(unit, n_images),
            prepare,
            config.batch_size,
        )

    key = {"settings": config.evaluation_key(), "methods": list(config.methods)}
    run_units(
        units,
        out / "units",
        work,
        key=lambda u: {**u.key(), **key, "batch_size": config.batch_size},
        desc="evaluating",
        show_progress=show_progress,
        state=state,
    )
    if not state.is_main_process:
        return None
    records = read_units(units, out / "units", key=lambda u: {**u.key(), **key, "batch_size": config.batch_size})
    rows = summarize_units(records, units)

    first_seed = config.seeds[0]
    probe_idx = seeded_subset(test_idx, n_images, first_seed)
    inv_path = out / "measured" / "invariance.json"
    if inv_path.is_file() and read_json(inv_path, "invariance file").get("methods") == list(config.methods):
        invariance = read_json(inv_path, "invariance file")["rows"]
    else:
        x = prepare(data_set.images[probe_idx[: config.invariance_images]])
        measured = classifiers_for(first_seed, with_ttach=True)
        invariance = [{"method": m, **invariance_error(fn, x)} for m, fn in measured.items()]
        atomic_write_json(inv_path, {"methods": list(config.methods), "rows": invariance})

    timing_path = out / "measured" / "timing.json"
    timing_key = {
        "batch": config.timing_batch,
        "repeats": config.timing_repeats,
        "clip": config.timing_clip,
        "one_call": list(ONE_CALL_METHODS),
    }
    if timing_path.is_file() and read_json(timing_path, "timing file").get("key") == timing_key:
        timing = read_json(timing_path, "timing file")["rows"]
    else:
        x = prepare(data_set.images[probe_idx[: config.timing_batch]])
        one_call = {m: build_method(m, model, chunk_size=None) for m in ONE_CALL_METHODS if m in config.methods}
        timing = _timing(classifiers_for(first_seed, with_ttach=True), x, config.timing_repeats, name, one_call)
        if config.timing_clip:
            clip = random_clip_vit_b32(len(data_set.classes)).to(state.device)
            chosen = ["plain", "equitune", "multi-equitune", "ttach"]
            xc = torch.randn(config.timing_batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
            xc = xc.to(state.device)
            one_call = {m: build_method(m, clip, chunk_size=None) for m in ONE_CALL_METHODS}
            timing += _timing(
                _classifiers(chosen, clip, {}), xc, config.timing_repeats, "CLIP ViT-B/32 (random weights)", one_call
            )
        atomic_write_json(timing_path, {"key": timing_key, "machine": machine_info(), "rows": timing})

    summary = {
        "config": config.as_dict(),
        "model": name,
        "model_notes": notes,
        "data": data_set.name,
        "templates": template_set(config),
        "classes": list(data_set.classes),
        "images_per_seed": n_images,
        "rows": rows,
        "invariance": invariance,
        "timing": timing,
        "machine": machine_info(),
        "processes": state.num_processes,
    }
    atomic_write_json(out / "summary.json", summary)
    write_report(summary, out)
    return summary
