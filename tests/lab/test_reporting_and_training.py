"""The shared experiment pieces: records, tables, plots and the Accelerate training loop."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from conftest import accelerate_launch

pytest.importorskip("accelerate")
pytest.importorskip("safetensors")

from multiequi import Equitune
from multiequi.groups import Flip
from multiequi.lab.reporting import (
    append_jsonl,
    atomic_write_json,
    machine_info,
    markdown_table,
    read_jsonl,
    summarize,
    write_tables,
)
from multiequi.lab.training import TrainConfig, load_weights, train


def test_summarize_mean_std_and_last_record_per_seed() -> None:
    recs = [
        {"method": "a", "seed": 0, "acc": 0.2},
        {"method": "a", "seed": 0, "acc": 0.5},  # a resumed run re-appends: the last one counts
        {"method": "a", "seed": 1, "acc": 0.7},
        {"method": "b", "seed": 0, "acc": 1.0, "copies": 6},
    ]
    rows = summarize(recs, ["method"], "acc", extra=["copies"])
    a, b = rows
    assert a["acc_mean"] == pytest.approx(0.6) and a["seeds"] == 2 and a["acc_std"] == pytest.approx(0.1414, abs=1e-4)
    assert b["acc_std"] == 0.0 and b["seeds"] == 1 and b["copies"] == 6
    with pytest.raises(ValueError, match="lacks"):
        summarize([{"method": "a"}], ["method"], "acc")


def test_records_are_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r.jsonl"
    append_jsonl(path, {"a": 1})
    append_jsonl(path, [{"a": 2}, {"a": torch.tensor(3.0)}])
    assert [r["a"] for r in read_jsonl(path)] == [1, 2, 3.0]
    atomic_write_json(tmp_path / "x.json", {"k": [1, 2]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"k": [1, 2]}
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl. line 2 is not a valid record .*fix or delete that line"):
        read_jsonl(tmp_path / "bad.jsonl")
    assert machine_info()["torch"] == torch.__version__


def test_tables_in_three_formats(tmp_path: Path) -> None:
    rows = [{"split": "jump", "acc_mean": 0.5, "acc_std": 0.01}]
    out = write_tables(rows, tmp_path / "t", title="Title")
    assert out["md"].read_text().startswith("Title") and "0.500" in out["md"].read_text()
    assert out["csv"].read_text().splitlines()[0] == "split,acc_mean,acc_std"
    assert json.loads(out["json"].read_text()) == rows
    assert markdown_table([]) == "(no results)"


def test_plots_are_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from multiequi.lab.reporting.plots import grouped_bars, line_plot

    rows = [{"x": s, "h": m, "v": i + j, "e": 0.1} for i, s in enumerate("ab") for j, m in enumerate("pq")]
    bars = grouped_bars(rows, "x", "h", "v", tmp_path / "b.png", err="e", note="machine: test")
    lines = line_plot(
        [{"n": n, "t": 2**n, "m": "prod"} for n in range(1, 4)], "n", "t", "m", tmp_path / "l.png", logy=True
    )
    for p in (bars, lines):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _problem() -> tuple[nn.Module, DataLoader, DataLoader]:
    torch.manual_seed(0)
    x = torch.randn(96, 6)
    y = (x[:, 0] - x[:, -1] > 0).long()
    model = Equitune(nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2)), Flip(), chunk_size=None)
    train_loader = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=8, shuffle=True)
    val_loader = DataLoader(TensorDataset(x[64:], y[64:]), batch_size=32)
    return model, train_loader, val_loader


def _loss(m: nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return nn.functional.cross_entropy(m(b[0]), b[1])


def test_resumed_training_equals_uninterrupted_training(tmp_path: Path) -> None:
    """A run extended from 13 to 20 steps ends where a 20-step run ends."""
    model, loader, _ = _problem()
    train(model, loader, _loss, TrainConfig(steps=20, lr=0.05, progress=False, seed=3))
    straight = [p.detach().clone() for p in model.parameters()]

    model, loader, _ = _problem()
    train(
        model,
        loader,
        _loss,
        TrainConfig(steps=13, lr=0.05, progress=False, seed=3, checkpoint_every=13),
        checkpoint_dir=tmp_path,
    )
    assert (tmp_path / "last" / "model.safetensors").is_file()
    model, loader, _ = _problem()  # a fresh process would start from scratch weights
    result = train(
        model, loader, _loss, TrainConfig(steps=20, lr=0.05, progress=False, seed=3), checkpoint_dir=tmp_path
    )
    assert result.resumed_from == 13 and result.steps == 20
    for a, b in zip(straight, model.parameters(), strict=True):
        assert torch.equal(a, b.detach())


def _noisy_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """A loss that draws from every random stream a training step may use: torch (dropout-like
    noise, a teacher-forcing coin), numpy and Python."""
    x, y = batch
    noise = 0.1 * torch.randn_like(x)
    coin = float(torch.rand(())) < 0.5
    scale = 1.0 + 0.01 * float(np.random.rand()) + 0.01 * random.random()
    out = model(x + noise if coin else x)
    return scale * nn.functional.cross_entropy(out, y)


@pytest.mark.parametrize("stop_at", [3, 7, 8, 16])  # inside an epoch, at an epoch's last batch, at the end
def test_a_run_stopped_at_any_step_resumes_bitwise(tmp_path: Path, stop_at: int) -> None:
    """SIGINT in the middle of a step: the step finishes, a checkpoint is written, the rerun ends
    with bitwise the same weights and history as a run that never stopped (every random stream,
    the data order and the running loss restored). 8 batches per epoch, 16 steps."""
    import signal

    from multiequi.lab.training import TrainingInterrupted

    config = TrainConfig(steps=16, lr=0.05, progress=False, seed=3, eval_every=5, checkpoint_seconds=None)

    def evaluate(m: nn.Module) -> float:
        return -float(sum(p.sum() for p in m.parameters()))

    model, loader, _ = _problem()
    straight = train(model, loader, _noisy_loss, config, evaluate=evaluate, checkpoint_dir=tmp_path / "straight")
    weights = [p.detach().clone() for p in model.parameters()]

    calls = {"n": 0}

    def interrupting_loss(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == stop_at:
            os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the step
        return _noisy_loss(m, batch)

    model, loader, _ = _problem()
    with pytest.raises(TrainingInterrupted) as info:
        train(model, loader, interrupting_loss, config, evaluate=evaluate, checkpoint_dir=tmp_path / "stopped")
    assert (info.value.step, info.value.resume_step, info.value.exit_code) == (stop_at, stop_at, 130)
    assert str(info.value) == f"interrupted at step {stop_at}; rerun the same command to resume from step {stop_at}"
    torch.manual_seed(1234)  # a new process: other global random states
    np.random.seed(1234)
    random.seed(1234)
    model, loader, _ = _problem()
    resumed = train(model, loader, _noisy_loss, config, evaluate=evaluate, checkpoint_dir=tmp_path / "stopped")
    assert resumed.resumed_from == stop_at
    for a, b in zip(weights, model.parameters(), strict=True):
        assert torch.equal(a, b.detach())
    assert resumed.history == straight.history
    assert (resumed.best_step, resumed.best_score) == (straight.best_step, straight.best_score)


def test_model_selection_uses_the_validation_score(tmp_path: Path) -> None:
    model, loader, _ = _problem()
    scores = iter([0.1, 0.9, 0.3, 0.2])  # best at the second evaluation

    def evaluate(m: nn.Module) -> float:
        assert not m.training and not torch.is_grad_enabled()
        return next(scores)

    result = train(
        model,
        loader,
        _loss,
        TrainConfig(steps=16, lr=0.05, eval_every=4, progress=False),
        evaluate=evaluate,
        checkpoint_dir=tmp_path,
    )
    assert (result.best_step, result.best_score) == (8, 0.9)
    fresh, _, _ = _problem()
    load_weights(fresh, tmp_path / "best" / "model.safetensors")
    for a, b in zip(fresh.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)  # the model ends with the selected weights
    with pytest.raises(FileNotFoundError, match=r"missing\.safetensors"):
        load_weights(fresh, tmp_path / "missing.safetensors")


def test_accelerate_launch_runs_two_cpu_processes(tmp_path: Path) -> None:
    """`accelerate launch` scales the same loop to several processes (here 2 on the CPU)."""
    accelerate_launch("-m", "multiequi.lab.training._smoke", "--out", str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(2)]
    assert all(r["processes"] == 2 and r["steps"] == 6 for r in ranks)
    assert ranks[0]["checksum"] == ranks[1]["checksum"]  # gradients were averaged across processes


# ------------------------------------------------------------------ damaged and foreign checkpoints
def _two_checkpoints(folder: Path) -> TrainConfig:
    """A 16-step run checkpointed every 5 steps: last/ at step 16, previous/ at step 15."""
    config = TrainConfig(steps=16, lr=0.05, progress=False, seed=3, checkpoint_every=5, checkpoint_seconds=None)
    model, loader, _ = _problem()
    train(model, loader, _noisy_loss, config, checkpoint_dir=folder)
    assert json.loads((folder / "previous" / "state.json").read_text())["step"] == 15
    return config


@pytest.mark.parametrize("damage", ["truncated weights", "broken state", "missing random streams"])
def test_a_damaged_last_checkpoint_falls_back_to_the_previous_one_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    config = _two_checkpoints(tmp_path / "ckpt")
    model, loader, _ = _problem()
    reference = train(model, loader, _noisy_loss, config, checkpoint_dir=tmp_path / "ckpt")  # resumes at 16
    weights = [p.detach().clone() for p in model.parameters()]
    config = _two_checkpoints(tmp_path / "damaged")
    last = tmp_path / "damaged" / "last"
    if damage == "truncated weights":
        data = (last / "model.safetensors").read_bytes()
        (last / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "broken state":
        (last / "state.json").write_text('{"step": 16, "epo')
    else:
        (last / "rng0.pt").unlink()
    model, loader, _ = _problem()
    result = train(model, loader, _noisy_loss, config, checkpoint_dir=tmp_path / "damaged")
    err = capsys.readouterr().err
    assert "resuming from the previous checkpoint" in err and str(tmp_path / "damaged" / "previous") in err
    assert result.resumed_from == 15  # one step redone, the same result
    assert result.history == reference.history
    for a, b in zip(weights, model.parameters(), strict=True):
        assert torch.equal(a, b.detach())


def test_no_usable_checkpoint_left_is_a_clear_error(tmp_path: Path) -> None:
    from multiequi.lab.training import CheckpointError

    config = _two_checkpoints(tmp_path)
    for name in ("last", "previous"):
        (tmp_path / name / "state.json").write_text("not json")
    model, loader, _ = _problem()
    with pytest.raises(CheckpointError, match=r"state\.json' is damaged .*delete '.*' to start this training over"):
        train(model, loader, _noisy_loss, config, checkpoint_dir=tmp_path)


def test_a_checkpoint_of_another_configuration_or_process_count_is_refused(tmp_path: Path) -> None:
    from multiequi.lab.training import CheckpointError

    config = _two_checkpoints(tmp_path)
    model, loader, _ = _problem()
    other = TrainConfig(steps=16, lr=0.01, progress=False, seed=3)
    with pytest.raises(CheckpointError, match=r"another configuration \(lr: 0\.05 there, 0\.01 now\)"):
        train(model, loader, _noisy_loss, other, checkpoint_dir=tmp_path)
    for name in ("last", "previous"):
        state = json.loads((tmp_path / name / "state.json").read_text())
        (tmp_path / name / "state.json").write_text(json.dumps({**state, "processes": 2}))
    with pytest.raises(CheckpointError, match=r"written by 2 processes.*--num_processes 2"):
        train(model, loader, _noisy_loss, config, checkpoint_dir=tmp_path)


def test_a_record_write_killed_half_way_leaves_the_old_file_whole(tmp_path: Path, monkeypatch) -> None:
    """Records are rewritten whole through a temporary file and a rename: a process that dies
    before the rename leaves the old file (and a stray temporary file nobody reads)."""
    from multiequi.lab.reporting import records

    path = tmp_path / "records.jsonl"
    append_jsonl(path, {"cell": 1})

    def die(*args: object) -> None:
        raise KeyboardInterrupt  # the process is stopped between the write and the rename

    monkeypatch.setattr(records.os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        append_jsonl(path, {"cell": 2})
    monkeypatch.undo()
    assert read_jsonl(path) == [{"cell": 1}] and not list(tmp_path.glob(".*.tmp"))
    (tmp_path / ".records.jsonl.x1.tmp").write_text('{"cell": 2')  # what SIGKILL at that moment leaves
    append_jsonl(path, {"cell": 2})
    assert read_jsonl(path) == [{"cell": 1}, {"cell": 2}]
