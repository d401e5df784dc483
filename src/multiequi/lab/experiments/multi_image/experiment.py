"""Training and testing of the multi-image grid through the shared Accelerate loop.

One *run* is (K, model, training transforms, seed): the model is trained with SGD through
:func:`multiequi.lab.training.train`, the epoch with the best *validation*
accuracy is kept (the test split is never looked at during training), and the kept model is
tested once per test transform setting on the same test tuples with the same fixed transforms.
Each (run, test setting) gives one JSON record in ``<out>/runs.jsonl``; each run also writes
``<out>/runs/<run_id>.json`` with its loss and validation curves.

Under ``accelerate launch --num_processes N`` every process trains and tests, but only the main
one writes (records, per-run files, ``grid.json``, checkpoint clean-up); the others wait for it
(:mod:`multiequi.lab.training.distributed`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multiequi.groups import Group
from multiequi.lab.datasets.images import ImageData, to_float
from multiequi.lab.reporting import append_jsonl, atomic_write_json, machine_info, progress, read_jsonl
from multiequi.lab.training import is_main_process, join_process_group, wait_for_everyone, wait_for_main
from multiequi.multi_input import sample_elements, transform_inputs

from .data import (
    AUGMENTATIONS,
    TupleDataset,
    group_label,
    make_tuples,
    view_groups,
)
from .models import TupleClassifier, build_model, parse_label
from .presets import PRESETS

__all__ = [
    "ExperimentConfig",
    "TupleSplits",
    "build_splits",
    "fixed_elements",
    "predict",
    "run_grid",
    "symmetry_of",
    "train_and_test",
]


@dataclass
class ExperimentConfig:
    """Everything that defines a grid of runs (a preset plus overrides).

    ``None`` tuple counts mean one partition of every image of the split into tuples.
    """

    ks: Sequence[int]
    models: Sequence[str]
    train_augs: Sequence[str]
    test_augs: Sequence[str]
    seeds: Sequence[int]
    epochs: int
    train_tuples: int | None
    val_tuples: int | None
    test_tuples: int | None
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-3
    data_seed: int = 0
    eval_batch_size: int = 256
    channels_last: bool = True
    checkpoint_every: int = 0
    checkpoint_seconds: float | None = 60.0
    progress: bool = True
    preset: str | None = None
    command: str = ""

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ExperimentConfig:
        """The preset ``name`` (``"quick"`` or ``"paper"``) with ``overrides`` (``None`` values ignored).

        Examples
        --------
        >>> ExperimentConfig.from_preset("quick", epochs=1).epochs
        1
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
        p = PRESETS[name]
        base: dict[str, Any] = {
            "ks": p.ks,
            "models": p.models,
            "train_augs": p.train_augs,
            "test_augs": p.test_augs,
            "seeds": p.seeds,
            "epochs": p.epochs,
            "train_tuples": p.train_tuples,
            "val_tuples": p.val_tuples,
            "test_tuples": p.test_tuples,
            "preset": name,
        }
        base.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**base)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        for k in self.ks:
            if k < 1:
                raise ValueError(f"K (images per tuple) must be >= 1, got {k}")
        for m in self.models:
            parse_label(m)
        for a in (*self.train_augs, *self.test_augs):
            if a not in AUGMENTATIONS:
                raise ValueError(f"unknown transform setting {a!r}; expected one of {', '.join(AUGMENTATIONS)}")
        symmetry_of(self.train_augs, self.test_augs)
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("batch sizes must be >= 1")
        for name in ("train_tuples", "val_tuples", "test_tuples"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1 (or all), got {v}")
        if not (self.ks and self.models and self.train_augs and self.test_augs and self.seeds):
            raise ValueError("K, models, train and test transforms and seeds must each list at least one value")

    @property
    def symmetry(self) -> str:
        """The per-view groups of the equivariant models: ``"rot"`` or ``"mixed"``."""
        return symmetry_of(self.train_augs, self.test_augs)

    def run_key(self) -> dict[str, Any]:
        """The settings a run's result depends on (hashed into its id)."""
        keys = (
            "epochs",
            "train_tuples",
            "val_tuples",
            "test_tuples",
            "batch_size",
            "lr",
            "momentum",
            "weight_decay",
            "data_seed",
        )
        return {k: getattr(self, k) for k in keys} | {"symmetry": self.symmetry}


def symmetry_of(train_augs: Sequence[str], test_augs: Sequence[str]) -> str:
    """The group setting of a grid: the one transform setting other than ``"none"`` (default ``"rot"``).

    Examples
    --------
    >>> symmetry_of(["none", "mixed"], ["none", "mixed"])
    'mixed'
    """
    used = {a for a in (*train_augs, *test_augs) if a != "none"}
    if len(used) > 1:
        raise ValueError(
            f"one grid uses one group setting; got transforms {sorted(used)}: run 'rot' and 'mixed' "
            "separately (with different --out folders)"
        )
    return used.pop() if used else "rot"


@dataclass
class TupleSplits:
    """Tuples of one K for the three splits: ``{split: (tuples (T, K), labels (T,))}``."""

    k: int
    tuples: dict[str, tuple[Tensor, Tensor]]

    def sizes(self) -> dict[str, int]:
        """Tuples per split."""
        return {s: int(t.shape[0]) for s, (t, _) in self.tuples.items()}


def build_splits(data: ImageData, k: int, cfg: ExperimentConfig) -> TupleSplits:
    """Tuples of ``k`` images per split, fixed by ``cfg.data_seed`` (the same for every model and seed)."""
    sizes = {"train": cfg.train_tuples, "val": cfg.val_tuples, "test": cfg.test_tuples}
    out = {}
    for i, split in enumerate(("train", "val", "test")):
        out[split] = make_tuples(
            data.labels, data.splits[split], k, seed=cfg.data_seed * 1000 + 10 * k + i, n_tuples=sizes[split]
        )
    return TupleSplits(k, out)


def fixed_elements(groups: Sequence[Group], n: int, data_seed: int, k: int, aug: str, split: str) -> Tensor:
    """Transforms drawn once per example with a fixed seed: every model sees the same set.

    Examples
    --------
    >>> g = view_groups("rot", 2)
    >>> torch.equal(fixed_elements(g, 5, 0, 2, "rot", "test"), fixed_elements(g, 5, 0, 2, "rot", "test"))
    True
    """
    seed = data_seed * 1000 + 100 * (1 + AUGMENTATIONS.index(aug)) + 10 * k + (0 if split == "val" else 1)
    return sample_elements(groups, n, torch.Generator().manual_seed(seed))


def predict(
    model: nn.Module,
    images: Tensor,
    tuples: Tensor,
    groups: Sequence[Group],
    elements: Tensor | None,
    batch_size: int = 256,
) -> Tensor:
    """Logits of ``model`` (in its current mode) for tuples transformed by fixed ``elements``.

    Batches are gathered, converted and transformed in one tensor operation per view.
    """
    device = next(model.parameters()).device
    outs = []
    for start in range(0, tuples.shape[0], batch_size):  # a loop over batches
        t = tuples[start : start + batch_size]
        x = to_float(images[t])
        if elements is not None:
            x = transform_inputs(x, groups, elements[start : start + batch_size])
        outs.append(model(x.to(device)).float().cpu())
    return torch.cat(outs)


def _no_aliases(model: nn.Module) -> bool:
    """Whether no tensor of ``model`` is registered under two names.

    The grid's own models register every module once (``MultiInputNetwork`` registers a branch
    shared by two groups once); a model that does alias a tensor keeps the default layout, since
    safetensors (0.8) cannot checkpoint aliased tensors in channels-last layout (its shared-tensor
    check views them flat).
    """
    every = dict(model.named_parameters(remove_duplicate=False)) | dict(model.named_buffers(remove_duplicate=False))
    return len(every) == len(dict(model.named_parameters())) + len(dict(model.named_buffers()))


def _accuracy(logits: Tensor, labels: Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean())


def _run_id(k: int, label: str, train_aug: str, seed: int, cfg: ExperimentConfig) -> str:
    digest = hashlib.sha1(json.dumps(cfg.run_key(), sort_keys=True).encode()).hexdigest()[:8]
    return f"k{k}_{label}_train-{train_aug}_seed{seed}_{digest}"


def train_and_test(
    data: ImageData,
    splits: TupleSplits,
    label: str,
    train_aug: str,
    seed: int,
    cfg: ExperimentConfig,
    checkpoint_dir: str | Path | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train one model and test it under every test setting of ``cfg``.

    Returns
    -------
    records : list of dict
        One per test setting (the fields of ``runs.jsonl``).
    details : dict
        The training history and timings (``runs/<run_id>.json``).
    """
    from torch.utils.data import DataLoader

    from multiequi.lab.training import TrainConfig, train

    k = splits.k
    sym = cfg.symmetry
    groups = view_groups(sym, k)
    train_groups = view_groups(train_aug, k)
    torch.manual_seed(seed)
    model: TupleClassifier = build_model(label, k, groups, len(data.classes), data.channels, data.size)
    if cfg.channels_last and _no_aliases(model):
        # nn.Module.to(memory_format=...) is valid at runtime; torch's stubs lack it
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    tr_t, tr_y = splits.tuples["train"]
    loader = DataLoader(
        TupleDataset(data.images, tr_t, tr_y),
        batch_size=cfg.batch_size,
        shuffle=True,
        # torch's stubs expect Callable[[list[T]], Any]; with __getitems__ collate_fn gets the whole batch
        collate_fn=TupleDataset.collate,  # type: ignore[arg-type]
    )
    steps_per_epoch = len(loader)
    va_t, va_y = splits.tuples["val"]
    va_e = (
        None if train_aug == "none" else fixed_elements(train_groups, va_t.shape[0], cfg.data_seed, k, train_aug, "val")
    )

    def loss_fn(m: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, y = batch
        if train_aug != "none":  # fresh independent transforms for every view of every example
            x = transform_inputs(x, train_groups, sample_elements(train_groups, x.shape[0]).to(x.device))
        return F.cross_entropy(m(x), y)

    def evaluate(m: nn.Module) -> float:
        logits = predict(m, data.images, va_t, train_groups, va_e, cfg.eval_batch_size)
        return _accuracy(logits, va_y)

    run_id = _run_id(k, label, train_aug, seed, cfg)
    tcfg = TrainConfig(
        steps=cfg.epochs * steps_per_epoch,
        lr=cfg.lr,
        optimizer="sgd",
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        eval_every=steps_per_epoch,
        checkpoint_every=cfg.checkpoint_every,
        checkpoint_seconds=cfg.checkpoint_seconds,
        seed=seed,
        progress=cfg.progress,
        desc=f"K={k} {label} train-aug={train_aug} seed={seed}",
    )
    result = train(model, loader, loss_fn, tcfg, evaluate=evaluate, checkpoint_dir=checkpoint_dir)

    te_t, te_y = splits.tuples["test"]
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        reference = predict(model, data.images, te_t, groups, None, cfg.eval_batch_size)
        logits = {}
        for aug in cfg.test_augs:
            g = view_groups(aug, k)
            e = None if aug == "none" else fixed_elements(g, te_t.shape[0], cfg.data_seed, k, aug, "test")
            logits[aug] = reference if e is None else predict(model, data.images, te_t, g, e, cfg.eval_batch_size)
    test_time = time.perf_counter() - t0
    base, fusion = parse_label(label)
    n_params = sum(p.numel() for p in model.parameters())
    records = []
    for aug, lg in logits.items():
        records.append(
            {
                "run_id": run_id,
                "dataset": data.name,
                "model": base,
                "fusion": fusion,
                "label": label,
                "k": k,
                "groups": group_label(groups),
                "train_aug": train_aug,
                "test_aug": aug,
                "seed": seed,
                "accuracy": _accuracy(lg, te_y),
                "val_accuracy": result.best_score,
                "best_epoch": None if result.best_step is None else result.best_step // steps_per_epoch,
                "epochs": cfg.epochs,
                "tuples": splits.sizes(),
                "copies_per_example": model.copies_per_example,
                "parameters": n_params,
                "order_invariant": model.order_invariant,
                "max_logit_change": float((lg - reference).abs().max()),
                "prediction_agreement": float((lg.argmax(1) == reference.argmax(1)).float().mean()),
                "train_time_s": result.wall_time_s,
                "test_time_s": test_time,
                "config": cfg.run_key(),
            }
        )
    details = {
        "run_id": run_id,
        "history": result.history,
        "steps": result.steps,
        "steps_per_epoch": steps_per_epoch,
        "best_step": result.best_step,
        "resumed_from": result.resumed_from,
        "records": records,
    }
    return records, details


def _check_homogeneous(existing: list[dict[str, Any]], dataset: str, symmetry: str, out: Path) -> None:
    for r in existing:
        other = r.get("config", {}).get("symmetry")
        if r.get("dataset") != dataset or other != symmetry:
            raise ValueError(
                f"'{out / 'runs.jsonl'}' holds results of another setting ({r.get('dataset')}, groups {other!r}); "
                f"this grid is {dataset} with groups {symmetry!r}: choose another --out folder"
            )


def run_grid(data: ImageData, cfg: ExperimentConfig, out: str | Path, rerun: bool = False) -> list[dict[str, Any]]:
    """Run every (K, seed, training transforms, model) of ``cfg`` not yet recorded in ``out``.

    Runs already in ``<out>/runs.jsonl`` with the same settings are skipped (``rerun=True``
    retrains them); an interrupted run resumes from its checkpoint in ``<out>/checkpoints``.
    Returns every record of the grid (old and new). Under ``accelerate launch`` every process
    trains and returns the records; only the main one writes.

    Examples
    --------
    A tiny synthetic data set (use :func:`~.data.load_fashion_mnist` for the real one):

    >>> import tempfile
    >>> from multiequi.lab.datasets.images import ImageData
    >>> g = torch.Generator().manual_seed(0)
    >>> data = ImageData(torch.randint(0, 256, (60, 1, 8, 8), generator=g, dtype=torch.uint8),
    ...                  torch.arange(60) % 2, ["a", "b"],
    ...                  {"train": torch.arange(40), "val": torch.arange(40, 50), "test": torch.arange(50, 60)},
    ...                  "toy", "memory")
    >>> cfg = ExperimentConfig.from_preset("quick", models=["Multi-GCNN"], train_augs=["none"], seeds=[0],
    ...                                    epochs=1, train_tuples=20, val_tuples=4, test_tuples=4, progress=False)
    >>> records = run_grid(data, cfg, tempfile.mkdtemp())
    >>> [(r["test_aug"], r["copies_per_example"], r["prediction_agreement"]) for r in records]
    [('none', 8, 1.0), ('rot', 8, 1.0)]
    """
    cfg.validate()
    join_process_group()  # under `accelerate launch`: connect the processes before any file is read
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records_path = out / "runs.jsonl"
    existing = read_jsonl(records_path)
    wait_for_everyone()  # every process has read the records before the main one adds any
    _check_homogeneous(existing, data.name, cfg.symmetry, out)
    done = {r["run_id"] for r in existing}
    machine = machine_info()
    plan = [
        (k, seed, aug, label) for k in cfg.ks for seed in cfg.seeds for aug in cfg.train_augs for label in cfg.models
    ]
    ids = [_run_id(k, label, aug, seed, cfg) for k, seed, aug, label in plan]
    todo = [(p, i) for p, i in zip(plan, ids, strict=True) if rerun or i not in done]
    t0 = time.perf_counter()
    splits: dict[int, TupleSplits] = {}
    bar = progress(total=len(todo), desc="multi-image runs", enabled=cfg.progress and is_main_process(), unit="run")
    for (k, seed, aug, label), run_id in todo:
        if k not in splits:
            splits[k] = build_splits(data, k, cfg)
        ckpt = out / "checkpoints" / run_id
        if rerun:  # every process waits here (no process may resume from the old checkpoint)
            if is_main_process() and ckpt.exists():
                shutil.rmtree(ckpt)
            wait_for_main(
                cast(Callable[[], bool], lambda ckpt=ckpt: not ckpt.exists()), what=f"the removal of '{ckpt}'"
            )
        records, details = train_and_test(data, splits[k], label, aug, seed, cfg, checkpoint_dir=ckpt)
        for r in records:
            r["machine"] = machine
        details_path = out / "runs" / f"{run_id}.json"
        if is_main_process():
            append_jsonl(records_path, records)
            atomic_write_json(details_path, details)
            for name in ("last", "previous"):  # resumption state; best/ stays
                shutil.rmtree(ckpt / name, ignore_errors=True)
        wait_for_main(
            cast(
                Callable[[], bool],
                lambda run_id=run_id, details_path=details_path: (
                    details_path.is_file() and any(r["run_id"] == run_id for r in read_jsonl(records_path))
                ),
            ),
            what=f"the records of run {run_id} in '{out}'",
        )
        bar.update()
        bar.set_postfix(last=f"{label} {records[0]['accuracy']:.3f}")
    bar.close()
    wall = time.perf_counter() - t0
    grid = {
        "command": cfg.command,
        "config": {k: v for k, v in asdict(cfg).items() if k != "progress"},
        "data": data.summary(),
        "machine": machine,
        "runs_total": len(plan),
        "runs_trained_now": len(todo),
        "wall_time_s": wall,
        "note": "wall time of the runs trained by this call; the CPU may have been shared",
    }
    if is_main_process():
        atomic_write_json(out / "grid.json", grid)
    wait_for_main((out / "grid.json").is_file, what=f"'{out / 'grid.json'}'")
    wanted = set(ids)
    return [r for r in read_jsonl(records_path) if r["run_id"] in wanted and r["test_aug"] in cfg.test_augs]
