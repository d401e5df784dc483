"""The shared experiment pieces: records, tables, plots and the Accelerate training loop."""

from __future__ import annotations

import json
import os
from pathlib import Path

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
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
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
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=1e-6)


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
