"""The SCAN / SCAN-II pipeline: pretrain -> fine-tune through the wrappers -> evaluate -> records.

For every (task, cell, seed):

1. **pretrain** the plain seq2seq model on the task's training data (the checkpoint is shared by
   every method and reused when it exists);
2. **fine-tune** copies of it through :class:`~multiequi.Equitune` over the product of the
   word-swap factors (``Π|G_i|`` copies) and through :class:`~multiequi.MultiEquitune` over the
   factors (``Σ|G_i|`` copies), and, as a control, without a wrapper (same steps and settings);
3. **evaluate** exact-match accuracy on (a fixed sample of) each test split for the pretrained
   model, the pretrained model wrapped without fine-tuning (zero-shot), the control and the
   fine-tuned wrapped models; each result is appended to ``records.jsonl``.

Model selection (the checkpoint kept at the end of each training) uses the exact-match accuracy
on a validation split carved from the *training* data, never a test split. Training goes through
:func:`multiequi.lab.training.train` (Accelerate, safetensors checkpoints,
resume). Every stage is skipped when its output exists, so an interrupted run resumes.

Under ``accelerate launch --num_processes N`` every process trains and evaluates, but only the
main one writes the stage files and the records; the others wait for them
(:mod:`multiequi.lab.training.distributed`).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from multiequi.lab.datasets.scan import (
    REPRESENTATIVES,
    SPLITS,
    Example,
    PairData,
    Vocab,
    factors_for,
    generate,
    read_examples,
)
from multiequi.lab.reporting import append_jsonl, atomic_write_json, machine_info, read_json, read_jsonl
from multiequi.lab.training import (
    TrainConfig,
    is_main_process,
    join_process_group,
    load_weights,
    save_weights,
    train,
    wait_for_everyone,
    wait_for_main,
)
from multiequi.models import Seq2Seq, seq2seq_loss

from .symmetry import wrap
from .training import accuracy, make_loader

__all__ = [
    "METHODS",
    "METHOD_LABELS",
    "PRESETS",
    "TASKS",
    "Plan",
    "Settings",
    "Task",
    "TaskData",
    "build_model",
    "load_task",
    "run_cell",
    "run_plan",
    "wall_clock",
]


@dataclass(frozen=True)
class Task:
    """A training set, its test splits and the word-swap factors that relate them."""

    name: str
    dataset: str
    factors: tuple[str, ...]
    tests: tuple[str, ...]


#: The tasks: SCAN-II with three factors; plain SCAN splits with one factor (the equitune setting).
TASKS: dict[str, Task] = {
    "scan2": Task("scan2", "scan2", ("verb", "lr", "ud"), ("jump", "turn_left", "turn_up", "union")),
    "addprim_jump": Task("addprim_jump", "scan", ("verb",), ("addprim_jump",)),
    "addprim_turn_left": Task("addprim_turn_left", "scan", ("lr",), ("addprim_turn_left",)),
    "template_around_right": Task("template_around_right", "scan", ("lr",), ("template_around_right",)),
}

#: Methods, in table order; ``-zs``: the pretrained model wrapped without fine-tuning; ``finetuned``:
#: the control, the pretrained model fine-tuned with the same settings but without a wrapper.
METHODS = ("pretrained", "finetuned", "equitune-zs", "multi-equitune-zs", "equitune", "multi-equitune")
METHOD_LABELS = {
    "pretrained": "pretrained",
    "finetuned": "fine-tuned, no wrapper",
    "equitune-zs": "equitune, zero-shot",
    "multi-equitune-zs": "multi-equitune, zero-shot",
    "equitune": "equitune",
    "multi-equitune": "multi-equitune",
}


@dataclass
class Settings:
    """Hyperparameters of one pipeline run (the same for every task, cell and seed)."""

    hidden: int = 64
    layers: int = 1
    dropout: float = 0.1
    teacher_forcing: float = 0.5
    batch_size: int = 64
    pretrain_steps: int = 3000
    pretrain_lr: float = 1e-3
    grad_clip: float = 5.0
    finetune_steps: int = 300
    finetune_lr: float = 2e-4
    finetune_weight_decay: float = 1e-4
    val_size: int = 500
    evals_per_training: int = 5
    eval_samples: int | None = 1000
    eval_batch_size: int = 256
    data_seed: int = 0
    checkpoint_every: int = 0
    checkpoint_seconds: float | None = 60.0
    representative: str = "trained"

    def __post_init__(self) -> None:
        checks = {
            "hidden": self.hidden >= 1,
            "layers": self.layers >= 1,
            "dropout": 0.0 <= self.dropout < 1.0,
            "teacher_forcing": 0.0 <= self.teacher_forcing <= 1.0,
            "batch_size": self.batch_size >= 1,
            "pretrain_steps": self.pretrain_steps >= 1,
            "finetune_steps": self.finetune_steps >= 0,
            "val_size": self.val_size >= 1,
            "evals_per_training": self.evals_per_training >= 1,
            "eval_samples": self.eval_samples is None or self.eval_samples >= 1,
            "eval_batch_size": self.eval_batch_size >= 1,
            "checkpoint_every": self.checkpoint_every >= 0,
            "checkpoint_seconds": self.checkpoint_seconds is None or self.checkpoint_seconds > 0,
            "representative": self.representative in REPRESENTATIVES,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid settings {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)}")

    def identity(self) -> dict[str, Any]:
        """The settings that determine the results (how often checkpoints are written does not)."""
        return {k: v for k, v in asdict(self).items() if k not in ("checkpoint_every", "checkpoint_seconds")}

    def pretrain_part(self) -> dict[str, Any]:
        """The settings that determine the pretrained checkpoint."""
        keys = (
            "hidden layers dropout teacher_forcing batch_size pretrain_steps pretrain_lr grad_clip val_size "
            "evals_per_training data_seed"
        ).split()
        return {k: getattr(self, k) for k in keys}

    def finetune_part(self) -> dict[str, Any]:
        """The settings that determine a fine-tuned checkpoint (on top of :meth:`pretrain_part`)."""
        keys = "finetune_steps finetune_lr finetune_weight_decay representative".split()
        return {**self.pretrain_part(), **{k: getattr(self, k) for k in keys}}


def _digest(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class Plan:
    """What to run: tasks × cells × seeds, the methods and the settings."""

    tasks: tuple[str, ...] = ("scan2",)
    cells: tuple[str, ...] = ("gru",)
    seeds: tuple[int, ...] = (0,)
    methods: tuple[str, ...] = METHODS
    settings: Settings = field(default_factory=Settings)
    name: str = "custom"

    def __post_init__(self) -> None:
        for t in self.tasks:
            if t not in TASKS:
                raise ValueError(f"unknown task {t!r}; expected one of {sorted(TASKS)}")
        for c in self.cells:
            if c not in ("rnn", "gru", "lstm"):
                raise ValueError(f"unknown cell {c!r}; expected 'rnn', 'gru' or 'lstm'")
        for m in self.methods:
            if m not in METHODS:
                raise ValueError(f"unknown method {m!r}; expected some of {METHODS}")


#: ``quick``: SCAN-II and the SCAN Add-Jump and Around-Right splits, GRU, one seed; CPU, about 15
#: minutes on 2 cores. ``paper``: the paper's iteration counts and learning
#: rates, 3 seeds, 3 cells, full test sets (about a day on 2 CPU cores).
PRESETS: dict[str, Plan] = {
    "quick": Plan(
        tasks=("scan2", "addprim_jump", "template_around_right"),
        cells=("gru",),
        seeds=(0,),
        settings=Settings(
            batch_size=64,
            pretrain_steps=3000,
            pretrain_lr=1e-3,
            finetune_steps=300,
            finetune_lr=2e-4,
            val_size=500,
            eval_samples=2000,
        ),
        name="quick",
    ),
    "paper": Plan(
        tasks=("scan2",),
        cells=("rnn", "gru", "lstm"),
        seeds=(0, 1, 2),
        settings=Settings(
            batch_size=32,
            pretrain_steps=200_000,
            pretrain_lr=1e-4,
            finetune_steps=10_000,
            finetune_lr=2e-5,
            val_size=1000,
            eval_samples=None,
            checkpoint_every=5000,
        ),
        name="paper",
    ),
}


# --------------------------------------------------------------------------- data
@dataclass
class TaskData:
    """A task's encoded data: training (validation removed), validation, test samples."""

    task: Task
    vocab: Vocab
    train: PairData
    val: PairData
    tests: dict[str, PairData]
    test_sizes: dict[str, int]


@functools.lru_cache(maxsize=4)
def _generated(dataset: str) -> dict[str, dict[str, list[Example]]]:
    return generate(dataset, seed=0)


def _split_examples(task: Task, data_dir: str | None) -> tuple[list[Example], dict[str, list[Example]]]:
    split = SPLITS[task.name]
    if data_dir is None:
        parts = _generated(task.dataset)[task.name]
        return parts["train"], {t: parts[t] for t in task.tests}
    folder = Path(data_dir)
    train = read_examples(folder / split.train_name)
    return train, {t: read_examples(folder / split.test_names[t]) for t in task.tests}


def load_task(task: Task | str, settings: Settings, data_dir: str | None = None) -> TaskData:
    """Encode a task: carve the validation split from its training data, sample its test sets.

    The ``val_size`` validation commands are drawn (seed ``settings.data_seed``) among the
    distinct training commands other than the repeated bare primitives, and every line of them is
    removed from training. Each test split is sampled to ``eval_samples`` examples (all when
    ``None``) with the same seed, so every method and seed sees the same examples.

    Parameters
    ----------
    task : Task or str
        A key of :data:`TASKS` (``"scan2"``, ``"addprim_jump"``, …).
    settings : Settings
        Uses ``val_size``, ``eval_samples`` and ``data_seed``.
    data_dir : str, optional
        Read the split files from this folder (:func:`~.data.write_dataset`'s names, also the
        official SCAN names) instead of generating them.

    Examples
    --------
    >>> data = load_task("addprim_jump", Settings(val_size=100, eval_samples=500))
    >>> len(data.train), len(data.val), len(data.tests["addprim_jump"]), data.test_sizes
    (14570, 100, 500, {'addprim_jump': 7706})
    """
    task = TASKS[task] if isinstance(task, str) else task
    vocab = Vocab.of(task.dataset)
    train_ex, test_ex = _split_examples(task, data_dir)
    prims = set(SPLITS[task.name].primitives)
    commands = sorted({c for c, _ in train_ex if c not in prims})
    if settings.val_size >= len(commands):
        raise ValueError(f"val_size={settings.val_size} leaves no training data ({len(commands)} commands)")
    gen = torch.Generator().manual_seed(settings.data_seed)
    val_cmds = {commands[i] for i in torch.randperm(len(commands), generator=gen)[: settings.val_size].tolist()}
    val = sorted({e for e in train_ex if e[0] in val_cmds})
    train = [e for e in train_ex if e[0] not in val_cmds]
    tests, sizes = {}, {}
    for name, ex in test_ex.items():
        sizes[name] = len(ex)
        if settings.eval_samples is not None and settings.eval_samples < len(ex):
            idx = torch.randperm(len(ex), generator=torch.Generator().manual_seed(settings.data_seed))
            ex = [ex[i] for i in sorted(idx[: settings.eval_samples].tolist())]
        tests[name] = PairData(ex, vocab)
    return TaskData(task, vocab, PairData(train, vocab), PairData(val, vocab), tests, sizes)


# --------------------------------------------------------------------------- stages
def build_model(vocab: Vocab, cell: str, settings: Settings, seed: int) -> Seq2Seq:
    """A freshly initialised model (seeded)."""
    torch.manual_seed(seed)
    return Seq2Seq(len(vocab.inputs), len(vocab.outputs), cell, settings.hidden, settings.layers, settings.dropout)  # type: ignore[arg-type]


def _default_device() -> torch.device:
    """Where training puts the model (Accelerate's choice): the GPU when one is visible."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _evaluator(data: PairData, batch_size: int) -> Callable[[nn.Module], float]:
    def evaluate(model: nn.Module) -> float:
        correct, total = accuracy(model, data, batch_size, device=_device_of(model))
        return correct / total

    return evaluate


def _train(
    model: nn.Module,
    data: TaskData,
    settings: Settings,
    *,
    steps: int,
    lr: float,
    weight_decay: float,
    seed: int,
    folder: Path,
    desc: str,
    show: bool,
) -> dict[str, Any]:
    in_vocab = len(data.vocab.inputs)
    loss = functools.partial(_loss, in_vocab=in_vocab, teacher_forcing=settings.teacher_forcing)
    config = TrainConfig(
        steps=steps,
        lr=lr,
        weight_decay=weight_decay,
        grad_clip=settings.grad_clip,
        eval_every=max(1, steps // settings.evals_per_training),
        checkpoint_every=settings.checkpoint_every,
        checkpoint_seconds=settings.checkpoint_seconds,
        seed=seed,
        progress=show,
        desc=desc,
    )
    result = train(
        model,
        make_loader(data.train, settings.batch_size),
        loss,
        config,
        evaluate=_evaluator(data.val, settings.eval_batch_size),
        checkpoint_dir=folder / "checkpoints",
    )
    info = dataclasses.asdict(result)
    # wall and validation times are summed over every invocation that trained this stage
    info["validation_s"] = result.eval_time_s
    train_s = result.wall_time_s - result.eval_time_s
    info["examples_per_s"] = result.steps * settings.batch_size / train_s if result.steps and train_s > 0 else None
    return info


def _loss(model: nn.Module, batch: Any, *, in_vocab: int, teacher_forcing: float) -> torch.Tensor:
    return seq2seq_loss(model, batch, in_vocab, teacher_forcing)


def _stage(
    folder: Path,
    build: Callable[[], nn.Module],
    fit: Callable[[nn.Module], dict[str, Any]],
    inner: Callable[[Any], nn.Module],
) -> tuple[nn.Module, dict[str, Any]]:
    """Build a model; load its final weights if this stage is done, else fit and save them.

    Every process fits (that is distributed training); the main one saves, and the others wait
    until the files are there, so no process ever sees a half-done stage.
    """
    weights, info_path = folder / "model.safetensors", folder / "train.json"
    model = build()
    if weights.is_file() and info_path.is_file():
        load_weights(inner(model), weights)
        return model.to(_default_device()), read_json(info_path, "stage record")
    info = fit(model)
    if is_main_process():
        save_weights(inner(model), weights)
        atomic_write_json(info_path, info)
    wait_for_main(lambda: weights.is_file() and info_path.is_file(), what=f"the stage files in '{folder}'")
    return model, info


def run_cell(
    task: Task | str,
    cell: str,
    seed: int,
    settings: Settings,
    runs_dir: str | os.PathLike[str],
    *,
    methods: Sequence[str] = METHODS,
    data: TaskData | None = None,
    data_dir: str | None = None,
    preset: str = "custom",
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Pretrain, fine-tune and evaluate one (task, cell, seed); returns the new records.

    Outputs go to ``runs_dir``: ``records.jsonl`` (one record per method and test split) and
    ``<task>/<cell>/seed<k>/…`` (checkpoints). Stages whose outputs exist are skipped; records
    already present (same task, cell, seed, method, split and settings) are not recomputed.
    Under ``accelerate launch`` every process trains and evaluates and returns the records, but
    only the main one writes them (and the stage files); every process returns once they are
    on disk.

    Parameters
    ----------
    task : Task or str
        A key of :data:`TASKS`.
    cell : {"rnn", "gru", "lstm"}
    seed : int
        Seeds the model's initialisation, the data order, dropout and teacher forcing.
    settings : Settings
    runs_dir : path
    methods : sequence of str
        Some of :data:`METHODS` (multi-equitune methods are dropped for one-factor tasks).
    data : TaskData, optional
        Already loaded data (else :func:`load_task`).
    data_dir : str, optional
        See :func:`load_task`.
    preset : str
        Name stored in the records.
    show_progress : bool
        Progress bars for training and evaluation.

    Returns
    -------
    list of dict
        The records appended to ``runs_dir/records.jsonl`` by this call.

    Examples
    --------
    >>> tiny = Settings(hidden=8, pretrain_steps=2, finetune_steps=1, val_size=4, eval_samples=8)
    >>> records = run_cell("addprim_jump", "gru", 0, tiny, "runs/scan/doc")  # doctest: +SKIP
    >>> [(r["method"], r["copies"]) for r in records]  # doctest: +SKIP
    [('pretrained', 1), ('finetuned', 1), ('equitune-zs', 2), ('equitune', 2)]
    """
    task = TASKS[task] if isinstance(task, str) else task
    if len(task.factors) == 1:
        methods = [m for m in methods if not m.startswith("multi-")]  # one factor: multi-equitune = equitune
    data = data or load_task(task, settings, data_dir)
    join_process_group()  # under `accelerate launch`: connect the processes before any file is read
    runs = Path(runs_dir)
    records_path = runs / "records.jsonl"
    pre_hash, ft_hash = _digest(settings.pretrain_part()), _digest(settings.finetune_part())
    settings_hash = _digest(settings.identity())
    base = runs / task.name / cell / f"seed{seed}"

    def recorded() -> set[tuple[str, str]]:
        return {
            (r["method"], r["split"])
            for r in read_jsonl(records_path)
            if (r["task"], r["cell"], r["seed"], r["settings_hash"]) == (task.name, cell, seed, settings_hash)
        }

    done = recorded()
    wait_for_everyone()  # every process has read the records before the main one adds any
    todo = [(m, s) for m in methods for s in task.tests if (m, s) not in done]
    if not todo:
        return []
    factors = factors_for(data.vocab, task.factors, settings.representative)
    tag = f"{task.name}/{cell}/seed{seed}"

    def fresh() -> Seq2Seq:
        return build_model(data.vocab, cell, settings, seed)

    pretrained, pre_info = _stage(
        base / f"pretrain-{pre_hash}",
        fresh,
        lambda m: _train(
            m,
            data,
            settings,
            steps=settings.pretrain_steps,
            lr=settings.pretrain_lr,
            weight_decay=0.0,
            seed=seed,
            folder=base / f"pretrain-{pre_hash}",
            desc=f"pretrain {tag}",
            show=show_progress,
        ),
        lambda m: m,
    )
    pre_state = {k: v.detach().clone() for k, v in pretrained.state_dict().items()}
    machine = machine_info(str(_device_of(pretrained)))
    new: list[dict[str, Any]] = []
    for method in dict.fromkeys(m for m, _ in todo):
        if method == "pretrained":
            model: nn.Module = pretrained
            info: dict[str, Any] = {}
        elif method.endswith("-zs"):
            model, info = wrap(pretrained, factors, method), {}
        else:

            def build_wrapped(method: str = method) -> nn.Module:
                m = fresh()
                m.load_state_dict(pre_state)
                return m if method == "finetuned" else wrap(m, factors, method)

            folder = base / f"{method}-{ft_hash}"
            model, info = _stage(
                folder,
                build_wrapped,
                cast(
                    Callable[[nn.Module], dict[str, Any]],
                    lambda w, folder=folder, method=method: _train(
                        w,
                        data,
                        settings,
                        steps=settings.finetune_steps,
                        lr=settings.finetune_lr,
                        weight_decay=settings.finetune_weight_decay,
                        seed=seed,
                        folder=folder,
                        desc=f"{method} {tag}",
                        show=show_progress,
                    ),
                ),
                lambda w: getattr(w, "model", w),
            )
        model.eval()
        copies = int(getattr(model, "copies_per_example", 1))
        for split in task.tests:
            if (method, split) in done:
                continue
            t0 = time.perf_counter()
            correct, total = accuracy(
                model,
                data.tests[split],
                settings.eval_batch_size,
                device=_device_of(model),
                show=show_progress and is_main_process(),
                desc=f"eval {method} {split}",
            )
            wall = time.perf_counter() - t0
            record = {
                "experiment": "scan",
                "preset": preset,
                "dataset": task.dataset,
                "task": task.name,
                "cell": cell,
                "method": method,
                "split": split,
                "seed": seed,
                "accuracy": correct / total,
                "correct": correct,
                "n_eval": total,
                "n_test": data.test_sizes[split],
                "copies": copies,
                "factors": list(task.factors),
                "pretrain_wall_s": pre_info.get("wall_time_s"),
                "pretrain_val_accuracy": pre_info.get("best_score"),
                "finetune_steps": settings.finetune_steps if info else 0,
                "finetune_wall_s": info.get("wall_time_s", 0.0),
                "finetune_examples_per_s": info.get("examples_per_s"),
                "finetune_val_accuracy": info.get("best_score"),
                "finetune_best_step": info.get("best_step"),
                "eval_wall_s": wall,
                "eval_ms_per_example": 1000 * wall / total,
                "settings": settings.identity(),
                "settings_hash": settings_hash,
                "machine": machine,
                "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            }
            if is_main_process():
                append_jsonl(records_path, record)
            new.append(record)
    wanted = {(r["method"], r["split"]) for r in new}
    wait_for_main(lambda: wanted <= recorded(), what=f"the records of {tag} in '{records_path}'")
    return new


def run_plan(
    plan: Plan, runs_dir: str | os.PathLike[str], *, data_dir: str | None = None, show_progress: bool = True
) -> list[dict[str, Any]]:
    """Run every (task, cell, seed) of ``plan`` (e.g. ``PRESETS["quick"]``) into ``runs_dir``;
    returns the new records (see :func:`run_cell`)."""
    out: list[dict[str, Any]] = []
    for task in plan.tasks:
        data = load_task(task, plan.settings, data_dir)
        for cell in plan.cells:
            for seed in plan.seeds:
                out += run_cell(
                    task,
                    cell,
                    seed,
                    plan.settings,
                    runs_dir,
                    methods=plan.methods,
                    data=data,
                    preset=plan.name,
                    show_progress=show_progress,
                )
    return out


def wall_clock(records: Sequence[Mapping[str, Any]]) -> float:
    """Seconds of training and evaluation recorded (pretraining counted once per task, cell, seed)."""
    pre = {(r["task"], r["cell"], r["seed"]): r.get("pretrain_wall_s") or 0.0 for r in records}
    ft = {(r["task"], r["cell"], r["seed"], r["method"]): r.get("finetune_wall_s") or 0.0 for r in records}
    return sum(pre.values()) + sum(ft.values()) + sum(r.get("eval_wall_s") or 0.0 for r in records)
