"""The one training loop of multiequi's experiments, through Hugging Face Accelerate.

:func:`train` runs a fixed number of optimizer steps over a ``DataLoader`` with gradient
clipping, periodic evaluation on a *validation* score (model selection never looks at a test
set), checkpoints in safetensors written atomically, and exact resumption (model, optimizer,
RNG, position in the epoch). The same code runs on one CPU, one GPU, or several processes with
``accelerate launch --num_processes N``: Accelerate shards the batches and averages gradients.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from multiequi.lab.reporting import progress

__all__ = ["TrainConfig", "TrainResult", "load_weights", "make_accelerator", "save_weights", "train"]


@dataclass
class TrainConfig:
    """Settings of one training run.

    ``steps`` optimizer steps in all (a resumed run continues up to it); ``eval_every`` steps
    between validation scores (0: only at the end); ``checkpoint_every`` steps between
    checkpoints (0: at each evaluation and at the end).
    """

    steps: int
    lr: float
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    momentum: float = 0.0
    weight_decay: float = 0.0
    grad_clip: float | None = None
    eval_every: int = 0
    checkpoint_every: int = 0
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
        raise ImportError(
            "training needs Hugging Face Accelerate: pip install accelerate (or the [experiments] extra)"
        ) from err
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
    """Load safetensors weights saved by :func:`save_weights` into ``model`` (strict)."""
    from safetensors.torch import load_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: '{path}'")
    missing, unexpected = load_model(model, str(path), strict=False)
    # A module registered under two names (one branch inside two wrappers) is saved once; on load,
    # safetensors lists the second name of BatchNorm's num_batches_tracked as "unexpected" although
    # torch filled it in: only names the model does not have are unexpected.
    known = set(model.state_dict())
    unexpected = [k for k in unexpected if k not in known]
    if missing or unexpected:
        raise RuntimeError(f"weights in '{path}' do not match the model: missing {missing}, unexpected {unexpected}")
    return model


def _make_optimizer(params: Iterable[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be 'adam', 'adamw' or 'sgd', got {cfg.optimizer!r}")


def _write_checkpoint(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Write ``folder`` atomically: build it beside, then swap it in."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_weights(model, tmp / "model.safetensors")
    torch.save({"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=2))
    old = folder.with_name(f".{folder.name}.old")
    if folder.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(folder, old)
    os.replace(tmp, folder)
    if old.exists():
        shutil.rmtree(old)


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
        Where ``last/`` and ``best/`` checkpoints go (safetensors weights, optimizer and RNG
        state, position in the data). If ``last/`` exists the run resumes from it.
    accelerator : accelerate.Accelerator, optional
        Default: :func:`make_accelerator` with ``config.seed``.
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
    }
    if ckpt is not None and (ckpt / "last" / "state.json").is_file():
        state = json.loads((ckpt / "last" / "state.json").read_text())
        load_weights(model, ckpt / "last" / "model.safetensors")
        extra = torch.load(ckpt / "last" / "optimizer.pt", map_location="cpu", weights_only=True)
        optimizer.load_state_dict(extra["optimizer"])
        torch.set_rng_state(extra["torch_rng"])
    resumed_from = int(state["step"])
    pmodel, optimizer, loader = acc.prepare(model, optimizer, data)
    if len(loader) == 0:
        raise ValueError("the training DataLoader is empty")
    best_path = ckpt / "best" / "model.safetensors" if ckpt is not None else None
    best_in_memory: dict[str, torch.Tensor] | None = None
    step, epoch, in_epoch = int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
    history: list[dict[str, float]] = list(state["history"])
    best_step, best_score = state["best_step"], state["best_score"]
    bar = progress(
        total=config.steps, initial=step, desc=config.desc, enabled=config.progress and acc.is_main_process, unit="step"
    )
    t0 = time.perf_counter()
    running, count = 0.0, 0

    def snapshot() -> dict[str, Any]:
        return {
            "step": step,
            "epoch": epoch,
            "batch_in_epoch": in_epoch,
            "best_step": best_step,
            "best_score": best_score,
            "history": history,
            "config": asdict(config),
        }

    def run_eval() -> None:
        nonlocal best_step, best_score, best_in_memory
        inner = acc.unwrap_model(pmodel)
        was_training = inner.training
        inner.eval()
        with torch.no_grad():
            score = float(evaluate(inner))  # type: ignore[misc]
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
        if ckpt is None:
            return
        acc.wait_for_everyone()
        if acc.is_main_process:
            _write_checkpoint(ckpt / "last", acc.unwrap_model(pmodel), optimizer, snapshot())
        acc.wait_for_everyone()

    pmodel.train()
    while step < config.steps:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        batches = acc.skip_first_batches(loader, in_epoch) if in_epoch else loader
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
            if step % max(1, min(100, config.steps // 20 or 1)) == 0 or step == config.steps:
                history.append({"step": step, "train_loss": running / count})
                bar.set_postfix(loss=f"{running / count:.4f}")
                running, count = 0.0, 0
            evaluated = False
            if evaluate is not None and config.eval_every and step % config.eval_every == 0:
                run_eval()
                evaluated = True
            if (config.checkpoint_every and step % config.checkpoint_every == 0) or (
                evaluated and not config.checkpoint_every
            ):
                checkpoint()
            if step >= config.steps:
                break
        else:
            epoch += 1
            in_epoch = 0
            continue
        break
    bar.close()
    if evaluate is not None and (not history or history[-1].get("step") != step or "val_score" not in history[-1]):
        run_eval()
    checkpoint()
    inner = acc.unwrap_model(pmodel)
    if evaluate is not None:
        if best_path is not None and best_path.is_file():
            load_weights(inner, best_path)
        elif best_in_memory is not None:
            inner.load_state_dict(best_in_memory)
    return TrainResult(
        steps=step,
        best_step=best_step,
        best_score=best_score,
        history=history,
        wall_time_s=time.perf_counter() - t0,
        resumed_from=resumed_from,
        processes=acc.num_processes,
    )
