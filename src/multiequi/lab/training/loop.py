"""The one training loop of multiequi's experiments, through Hugging Face Accelerate.

:func:`train` runs a fixed number of optimizer steps over a ``DataLoader`` with gradient
clipping, periodic evaluation on a *validation* score (model selection never looks at a test
set), checkpoints in safetensors written atomically, and exact resumption. The same code runs on
one CPU, one GPU, or several processes with ``accelerate launch --num_processes N``: Accelerate
shards the batches and averages gradients.

Exact resumption: a run stopped at any checkpoint and rerun ends with the same weights, history
and selected step, bit for bit, as one that never stopped. A checkpoint holds the weights, the
optimizer, every random stream of every process (torch CPU and CUDA, numpy, Python), the position
in the data (epoch and batch; Accelerate's seedable sampler reshuffles each epoch from the seed),
the running loss of the current logging window, the best validation score and the wall time so
far. The data loader's iterator draws seeds from torch's generator when it starts; the streams
are restored after those draws when a run resumes inside an epoch, so they are not taken twice.
Random data augmentation belongs in the loss function (as the experiments do it) or must use a
generator of its own: the loader fetches one batch ahead, so draws made while fetching would not
line up on resumption.

Checkpoints are written every ``checkpoint_every`` steps, at every evaluation, at least every
``checkpoint_seconds`` of training, at the end, and when the process is asked to stop (Ctrl-C or
SIGTERM): the step in progress finishes, a checkpoint is written, and :class:`TrainingInterrupted`
says where to resume. The two newest checkpoints are kept (``last/`` and ``previous/``); a
damaged ``last/`` falls back to ``previous/`` with a message, and a checkpoint written for another
configuration is refused (:class:`CheckpointError`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from multiequi.lab.reporting import progress

__all__ = [
    "CheckpointError",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "load_weights",
    "make_accelerator",
    "save_weights",
    "train",
]


@dataclass
class TrainConfig:
    """Settings of one training run.

    ``steps`` optimizer steps in all (a resumed run continues up to it); ``eval_every`` steps
    between validation scores (0: only at the end); ``checkpoint_every`` steps between
    checkpoints (0: none besides the others); ``checkpoint_seconds``: a checkpoint at least this
    often (``None``: no time-based checkpoints). Checkpoints are also written at every evaluation,
    at the end and on interruption. Neither option changes the result: checkpoints take no random
    draw.
    """

    steps: int
    lr: float
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0
    grad_clip: float | None = None
    eval_every: int = 0
    checkpoint_every: int = 0
    checkpoint_seconds: float | None = 60.0
    seed: int = 0
    progress: bool = True
    desc: str = "train"


@dataclass
class TrainResult:
    """What :func:`train` did: steps, the selected step and its validation score, the loss curve."""

    steps: int
    best_step: int | None
    best_score: float | None
    history: list[dict[str, float]] = field(default_factory=list)
    wall_time_s: float = 0.0
    resumed_from: int = 0
    processes: int = 1
    eval_time_s: float = 0.0


class CheckpointError(RuntimeError):
    """A checkpoint or weights file that cannot be used: damaged, or from another configuration.
    The message names the file, what is wrong and what to do."""


class TrainingInterrupted(Exception):
    """Training was asked to stop (SIGINT or SIGTERM) and stopped after a step.

    Attributes
    ----------
    step : int
        The optimizer steps done when it stopped.
    resume_step : int
        The step a rerun resumes from (the checkpoint just written, else the last one, else 0).
    signal_number : int
        ``signal.SIGINT`` or ``signal.SIGTERM``.
    exit_code : int
        ``128 + signal_number``: 130 for Ctrl-C, 143 for SIGTERM.
    """

    def __init__(self, step: int, resume_step: int, signal_number: int) -> None:
        self.step = step
        self.resume_step = resume_step
        self.signal_number = signal_number
        self.exit_code = 128 + int(signal_number)
        super().__init__(f"interrupted at step {step}; rerun the same command to resume from step {resume_step}")


def make_accelerator(seed: int = 0, cpu: bool | None = None) -> Any:
    """An ``Accelerator`` whose data order is seeded, so runs are reproducible and resumable.

    ``cpu=None`` (default) uses the CPU when no GPU is visible; several CPU processes started by
    ``accelerate launch --multi_gpu --num_processes N`` (torchrun underneath) then train together
    over gloo, which is how the tests prove the loop scales without a GPU.
    """
    if cpu is None:
        cpu = not torch.cuda.is_available()
    try:
        from accelerate import Accelerator
        from accelerate.utils import DataLoaderConfiguration
    except ImportError as err:
        raise ImportError("training needs Hugging Face Accelerate: pip install 'multiequi[experiments]'") from err
    kwargs: dict[str, Any] = {"dataloader_config": DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed)}
    if cpu:
        kwargs["cpu"] = True
    return Accelerator(**kwargs)


def save_weights(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Save a model's weights as safetensors, atomically (tied weights handled)."""
    from safetensors.torch import save_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_model(model, str(tmp))
    os.replace(tmp, path)
    return path


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load safetensors weights saved by :func:`save_weights` into ``model`` (strict).

    A missing file raises ``FileNotFoundError``; a damaged one (truncated, not safetensors) or one
    whose tensors do not fit the model raises :class:`CheckpointError` naming the file.
    """
    from safetensors.torch import load_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: '{path}'")
    try:
        missing, unexpected = load_model(model, str(path), strict=False)
    except Exception as err:  # safetensors' own error types differ between versions
        raise CheckpointError(
            f"weights file '{path}' is damaged or not a safetensors file ({type(err).__name__}: {err}); "
            "delete it (or its run folder) to compute it again"
        ) from err
    # A module registered under two names (one branch inside two wrappers) is saved once; on load,
    # safetensors lists the second name of BatchNorm's num_batches_tracked as "unexpected" although
    # torch filled it in: only names the model does not have are unexpected.
    known = set(model.state_dict())
    unexpected = [k for k in unexpected if k not in known]
    if missing or unexpected:
        raise CheckpointError(
            f"weights in '{path}' do not match the model (missing {missing}, unexpected {unexpected}): "
            "they were written for another model; delete the file or use another run folder"
        )
    return model


def _make_optimizer(params: Iterable[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be 'adam', 'adamw' or 'sgd', got {cfg.optimizer!r}")


# ----------------------------------------------------------------------------- random streams
def _rng_state() -> dict[str, Any]:
    """Every random stream of this process, in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # type: ignore[misc]
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(gauss)],
        "python": [int(version), list(internal), gauss_next],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- checkpoints
#: What may differ between the configuration a checkpoint was written with and the one resuming it
#: (``steps``: a finished or interrupted run may be extended by more steps).
_RESUMABLE_CHANGES = {"steps", "progress", "desc", "checkpoint_every", "checkpoint_seconds"}


def _checkpoint_key(config: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in asdict(config).items() if k not in _RESUMABLE_CHANGES}


def _write_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    acc: Any,
) -> None:
    """Write ``folder / "last"`` atomically (built beside, then swapped in); the checkpoint it
    replaces becomes ``previous/``. Every process writes its own random streams into it."""
    tmp, last, previous = folder / ".last.tmp", folder / "last", folder / "previous"
    if acc.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    torch.save(_rng_state(), tmp / f"rng{acc.process_index}.pt")
    acc.wait_for_everyone()
    if acc.is_main_process:
        save_weights(model, tmp / "model.safetensors")
        torch.save({"optimizer": optimizer.state_dict()}, tmp / "optimizer.pt")
        # state.json last: a folder whose state.json is complete has every other file complete
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        stale = folder / ".previous.old"
        if stale.exists():
            shutil.rmtree(stale)
        if previous.exists():
            os.replace(previous, stale)
        if last.exists():
            os.replace(last, previous)
        os.replace(tmp, last)
        if stale.exists():
            shutil.rmtree(stale)
    acc.wait_for_everyone()


def _read_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    process: int,
    processes: int,
) -> dict[str, Any]:
    """Load one checkpoint folder into ``model`` and ``optimizer``; return its state (with this
    process's random streams under ``"rng"``). Raises :class:`CheckpointError` naming the file."""
    state_path = folder / "state.json"
    try:
        state = json.loads(state_path.read_text())
        if not isinstance(state, dict) or "step" not in state:
            raise ValueError("no training state in it")
    except (OSError, ValueError) as err:
        raise CheckpointError(f"'{state_path}' is damaged ({err})") from err
    written, wanted = state.get("config_key"), _checkpoint_key(config)
    if written is None:
        raise CheckpointError(
            f"'{state_path}' was written by an earlier version of multiequi, whose checkpoints cannot be "
            "resumed exactly; delete the folder to start this training over"
        )
    if state.get("processes", processes) != processes:
        raise CheckpointError(
            f"the checkpoint in '{folder}' was written by {state['processes']} processes and this run has "
            f"{processes}: resume it with `accelerate launch --num_processes {state['processes']}` (another "
            "configuration), or delete the folder to start over"
        )
    if written != wanted:
        diff = {k: (written.get(k) if isinstance(written, dict) else None, v) for k, v in wanted.items()}
        diff = {k: v for k, v in diff.items() if v[0] != v[1]}
        changes = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
        raise CheckpointError(
            f"the checkpoint in '{folder}' was written for another configuration ({changes}); rerun with the "
            "configuration it was written with, or delete the folder to start over"
        )
    load_weights(model, folder / "model.safetensors")
    blob = _load_tensors(folder / "optimizer.pt")
    try:
        optimizer.load_state_dict(blob["optimizer"])
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"'{folder / 'optimizer.pt'}' does not fit this optimizer ({err})") from err
    state["rng"] = _load_tensors(folder / f"rng{process}.pt")
    return state


def _load_tensors(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged or missing file: torch raises several types
        raise CheckpointError(f"'{path}' is damaged or missing ({type(err).__name__}: {err})") from err


def _resume(
    ckpt: Path, model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig, acc: Any
) -> dict[str, Any] | None:
    """The state of the newest usable checkpoint in ``ckpt`` (``last/``, else ``previous/``, saying
    so), ``None`` when there is none. A checkpoint for another configuration is never skipped."""
    errors = []
    for name in ("last", "previous"):
        folder = ckpt / name
        if not (folder / "state.json").exists() and not folder.exists():
            continue
        try:
            state = _read_checkpoint(folder, model, optimizer, config, acc.process_index, acc.num_processes)
        except CheckpointError as err:
            if "another configuration" in str(err):
                raise
            errors.append(str(err))
            continue
        if errors and acc.is_main_process:
            print(
                f"warning: {errors[0]}; resuming from the previous checkpoint '{folder}' (step {state['step']})",
                file=sys.stderr,
            )
        return state
    if errors:
        raise CheckpointError(
            "; ".join(errors) + f"; no usable checkpoint is left: delete '{ckpt}' to start this training over"
        )
    return None


# ----------------------------------------------------------------------------- interruption
class _StopRequests:
    """SIGINT and SIGTERM, while installed, set :attr:`signal_number` instead of killing the
    process; the loop stops after the step in progress. A second Ctrl-C stops at once."""

    def __init__(self) -> None:
        self.signal_number = 0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal_number and signum == signal.SIGINT:  # asked twice: stop now
            raise KeyboardInterrupt
        self.signal_number = signum

    @contextlib.contextmanager
    def installed(self) -> Iterator[_StopRequests]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[int(signum)] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for number, handler in self._previous.items():
                signal.signal(number, handler)


def _agree(acc: Any, *flags: float) -> list[float]:
    """The maximum of each flag over every process (one small all-reduce; local with one process),
    so that every process checkpoints and stops at the same step."""
    if acc.num_processes == 1:
        return list(flags)
    t = torch.tensor(flags, dtype=torch.float64, device=acc.device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return [float(v) for v in t.tolist()]


_END = object()


def _fault(config: TrainConfig, process: int) -> tuple[int, signal.Signals] | None:
    """Fault injection for the reliability tests (docs/reliability.md): the environment variable
    ``MULTIEQUI_FAULT="SIGNAL@STEP[:TEXT]"`` makes a training whose ``desc`` contains ``TEXT``
    send ``SIGNAL`` (``KILL``, ``INT`` or ``TERM``) to its own process right after step ``STEP``
    (``KILL`` on the main process only, as when one process of a launch dies)."""
    spec = os.environ.get("MULTIEQUI_FAULT", "")
    match = re.fullmatch(r"(KILL|INT|TERM)@(\d+)(?::(.*))?", spec.strip())
    if not match or (match.group(3) and match.group(3) not in config.desc):
        return None
    if match.group(1) == "KILL" and process != 0:
        return None
    return int(match.group(2)), getattr(signal, "SIG" + match.group(1))


def _signal_number(value: float) -> int:
    number = int(value)
    return number if number in (signal.SIGINT, signal.SIGTERM) else int(signal.SIGINT)


def train(
    model: nn.Module,
    data: Any,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    config: TrainConfig,
    *,
    evaluate: Callable[[nn.Module], float] | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    accelerator: Any = None,
) -> TrainResult:
    """Train ``model`` for ``config.steps`` optimizer steps; return what happened.

    Parameters
    ----------
    model : nn.Module
        What is trained: a plain model, or a symmetrizer wrapping a pretrained one (fine-tuning
        "through the wrapper").
    data : torch.utils.data.DataLoader
        Training batches; reshuffled every epoch with a seed (Accelerate's seedable sampler).
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar loss``.
    config : TrainConfig
    evaluate : callable, optional
        ``evaluate(model) -> score`` on a validation set, higher is better; called every
        ``config.eval_every`` steps and at the end, under ``torch.no_grad`` in eval mode. The
        weights with the best score are kept and loaded into ``model`` at the end.
    checkpoint_dir : path, optional
        Where ``last/``, ``previous/`` and ``best/`` checkpoints go. If one exists the run resumes
        from it, exactly (see the module docstring).
    accelerator : accelerate.Accelerator, optional
        Default: :func:`make_accelerator` with ``config.seed``.

    Raises
    ------
    TrainingInterrupted
        After SIGINT or SIGTERM: the step in progress finished and a checkpoint was written (with
        a ``checkpoint_dir``); the exception says which step a rerun resumes from.
    CheckpointError
        A checkpoint that cannot be used and has no usable predecessor, or one written for
        another configuration.
    """
    from accelerate.utils import set_seed

    if config.steps < 0:
        raise ValueError(f"steps must be >= 0, got {config.steps}")
    acc = accelerator or make_accelerator(config.seed)
    set_seed(config.seed)
    optimizer = _make_optimizer([p for p in model.parameters() if p.requires_grad], config)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    state: dict[str, Any] = {
        "step": 0,
        "epoch": 0,
        "batch_in_epoch": 0,
        "best_step": None,
        "best_score": None,
        "history": [],
        "running_loss": 0.0,
        "running_count": 0,
        "wall_time_s": 0.0,
        "eval_time_s": 0.0,
    }
    resumed = _resume(ckpt, model, optimizer, config, acc) if ckpt is not None else None
    if resumed is not None:
        state.update(resumed)
    resumed_from = int(state["step"])
    pmodel, optimizer, loader = acc.prepare(model, optimizer, data)
    if len(loader) == 0:
        raise ValueError("the training DataLoader is empty")
    best_path = ckpt / "best" / "model.safetensors" if ckpt is not None else None
    best_in_memory: dict[str, torch.Tensor] | None = None
    step, epoch, in_epoch = int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
    history: list[dict[str, float]] = list(state["history"])
    best_step, best_score = state["best_step"], state["best_score"]
    running, count = float(state["running_loss"]), int(state["running_count"])
    wall_before, eval_time = float(state["wall_time_s"]), float(state["eval_time_s"])
    rng_to_restore = state.get("rng")
    last_checkpoint_step = resumed_from if resumed is not None else None
    bar = progress(
        total=config.steps, initial=step, desc=config.desc, enabled=config.progress and acc.is_main_process, unit="step"
    )
    t0 = time.perf_counter()
    last_checkpoint_time = t0

    def snapshot() -> dict[str, Any]:
        done_epoch = in_epoch >= len(loader)  # the epoch's last batch: resume at the next epoch's start
        return {
            "step": step,
            "epoch": epoch + 1 if done_epoch else epoch,
            "batch_in_epoch": 0 if done_epoch else in_epoch,
            "best_step": best_step,
            "best_score": best_score,
            "history": history,
            "running_loss": running,
            "running_count": count,
            "wall_time_s": wall_before + time.perf_counter() - t0,
            "eval_time_s": eval_time,
            "processes": acc.num_processes,
            "config_key": _checkpoint_key(config),
        }

    def run_eval() -> None:
        nonlocal best_step, best_score, best_in_memory, eval_time
        inner = acc.unwrap_model(pmodel)
        was_training = inner.training
        inner.eval()
        e0 = time.perf_counter()
        with torch.no_grad():
            score = float(evaluate(inner))  # type: ignore[misc]
        eval_time += time.perf_counter() - e0
        inner.train(was_training)
        history.append({"step": step, "val_score": score})
        if best_score is None or score > best_score:
            best_step, best_score = step, score
            if best_path is not None:
                if acc.is_main_process:
                    save_weights(inner, best_path)
                acc.wait_for_everyone()
            else:
                best_in_memory = {k: v.detach().clone() for k, v in inner.state_dict().items()}

    def checkpoint() -> None:
        nonlocal last_checkpoint_step, last_checkpoint_time
        if ckpt is None:
            return
        _write_checkpoint(ckpt, acc.unwrap_model(pmodel), optimizer, snapshot(), acc)
        last_checkpoint_step, last_checkpoint_time = step, time.perf_counter()

    stops = _StopRequests()
    fault = _fault(config, acc.process_index)
    pmodel.train()
    with stops.installed():
        while step < config.steps:
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(epoch)
            if rng_to_restore is not None and in_epoch == 0:
                # resumed at an epoch boundary: the uninterrupted run created this epoch's iterator
                # after the checkpoint, so the streams are restored before it is created
                _set_rng_state(rng_to_restore)
                rng_to_restore = None
            batches: Iterator[Any] = iter(acc.skip_first_batches(loader, in_epoch) if in_epoch else loader)
            if rng_to_restore is not None:
                # resumed inside an epoch: the uninterrupted run started this epoch's iterator (which
                # draws the loader's seeds from torch's generator on its first batch) before the
                # checkpoint, so the first batch is fetched before the streams are restored
                first = next(batches, _END)
                _set_rng_state(rng_to_restore)
                rng_to_restore = None
                batches = itertools.chain([first], batches) if first is not _END else iter(())
            finished_epoch = True
            for batch in batches:
                loss = loss_fn(pmodel, batch)
                acc.backward(loss)
                if config.grad_clip:
                    acc.clip_grad_norm_(pmodel.parameters(), config.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                in_epoch += 1
                running += float(loss.detach())
                count += 1
                bar.update()
                if fault is not None and step == fault[0]:
                    os.kill(os.getpid(), fault[1])
                if step % max(1, min(100, config.steps // 20 or 1)) == 0 or step == config.steps:
                    history.append({"step": step, "train_loss": running / count})
                    bar.set_postfix(loss=f"{running / count:.4f}")
                    running, count = 0.0, 0
                evaluated = False
                if evaluate is not None and config.eval_every and step % config.eval_every == 0:
                    run_eval()
                    evaluated = True
                due_time = (
                    config.checkpoint_seconds is not None
                    and time.perf_counter() - last_checkpoint_time >= config.checkpoint_seconds
                )
                stop, due_time_all = _agree(acc, float(stops.signal_number), float(due_time))
                scheduled = evaluated or (config.checkpoint_every and step % config.checkpoint_every == 0)
                if stop or ((scheduled or due_time_all) and step < config.steps):
                    checkpoint()  # the last step's checkpoint comes after the final evaluation
                if stop:
                    bar.close()
                    raise TrainingInterrupted(step, last_checkpoint_step or 0, _signal_number(stop))
                if step >= config.steps:
                    finished_epoch = in_epoch >= len(loader)
                    break
            if finished_epoch:
                epoch += 1
                in_epoch = 0
        if stops.signal_number:  # asked to stop during the last step: the same answer
            checkpoint()
            bar.close()
            raise TrainingInterrupted(step, last_checkpoint_step or 0, stops.signal_number)
    bar.close()
    if evaluate is not None and (not history or history[-1].get("step") != step or "val_score" not in history[-1]):
        run_eval()
    checkpoint()
    inner = acc.unwrap_model(pmodel)
    if evaluate is not None:
        if best_path is not None and best_step is not None:
            if not best_path.is_file():
                raise CheckpointError(
                    f"the weights of the selected step {best_step} ('{best_path}') are missing; delete "
                    f"'{ckpt}' to train this run again"
                )
            load_weights(inner, best_path)
        elif best_in_memory is not None:
            inner.load_state_dict(best_in_memory)
    return TrainResult(
        steps=step,
        best_step=best_step,
        best_score=best_score,
        history=history,
        wall_time_s=wall_before + time.perf_counter() - t0,
        resumed_from=resumed_from,
        processes=acc.num_processes,
        eval_time_s=eval_time,
    )
