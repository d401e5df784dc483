"""Only the main process writes results under `accelerate launch`; the others wait for them."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import accelerate_launch
from multiequi.lab.training import is_main_process, wait_for_everyone, wait_for_main

SRC = Path(__file__).resolve().parents[2] / "src"

# Run by `accelerate launch`: a tiny SCAN cell (argv: runs folder, output folder, label), twice (the
# second call finds every record and must return [] on every process), then one JSON file per rank.
SCAN_SCRIPT = """
import json, sys
from pathlib import Path

import torch

from multiequi.lab.training import make_accelerator
from multiequi.lab.experiments.scan.pipeline import Settings, run_cell

runs, out, label = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
tiny = Settings(hidden=8, batch_size=8, pretrain_steps=2, finetune_steps=1, val_size=4, evals_per_training=1,
                eval_samples=8, eval_batch_size=16)
before = torch.distributed.is_initialized()
first = run_cell("addprim_jump", "gru", 0, tiny, runs, show_progress=False)
after = torch.distributed.is_initialized()  # run_cell joins the group, even when nothing is trained
again = run_cell("addprim_jump", "gru", 0, tiny, runs, show_progress=False)
acc = make_accelerator()
out.mkdir(parents=True, exist_ok=True)
(out / f"{label}-rank{acc.process_index}.json").write_text(json.dumps({
    "processes": acc.num_processes,
    "group_before": before,
    "group_after": after,
    "first": sorted((r["method"], r["split"], r["accuracy"]) for r in first),
    "again": len(again),
}))
# Tear the process group down before exit (a gloo group left alive can abort at shutdown).
acc.wait_for_everyone()
acc.end_training()
"""

# Run by `accelerate launch`: a tiny multi-image grid (argv: output folder), then the same grid
# retrained (`rerun=True` removes each run's checkpoint first), then one JSON file per rank.
GRID_SCRIPT = """
import json, sys
from pathlib import Path

import torch

from multiequi.lab.training import make_accelerator
from multiequi.lab.datasets.images import ImageData
from multiequi.lab.experiments.multi_image.experiment import ExperimentConfig, run_grid

out = Path(sys.argv[1])
g = torch.Generator().manual_seed(0)
data = ImageData(torch.randint(0, 256, (60, 1, 8, 8), generator=g, dtype=torch.uint8), torch.arange(60) % 2,
                 ["a", "b"], {"train": torch.arange(40), "val": torch.arange(40, 50), "test": torch.arange(50, 60)},
                 "toy", "memory")
cfg = ExperimentConfig.from_preset("quick", ks=[2], models=["Multi-GCNN"], train_augs=["none"], seeds=[0],
                                   epochs=1, train_tuples=16, val_tuples=4, test_tuples=4, progress=False)
first = run_grid(data, cfg, out / "grid")
again = run_grid(data, cfg, out / "grid", rerun=True)
acc = make_accelerator()
(out / f"rank{acc.process_index}.json").write_text(json.dumps({
    "processes": acc.num_processes,
    "first": [(r["run_id"], r["test_aug"]) for r in first],
    "again": [(r["run_id"], r["test_aug"]) for r in again],
}))
acc.wait_for_everyone()
acc.end_training()
"""


def _launch(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return accelerate_launch(str(script), *args)


def test_scan_cell_under_two_processes_writes_each_result_once(tmp_path: Path) -> None:
    """Two processes train and evaluate one tiny SCAN cell; rank 0 alone writes records and stages."""
    pytest.importorskip("accelerate")
    pytest.importorskip("safetensors")
    script = tmp_path / "scan_cell.py"
    script.write_text(SCAN_SCRIPT)
    runs, out = tmp_path / "runs", tmp_path / "out"
    methods = ["equitune", "equitune-zs", "finetuned", "pretrained"]  # one factor: no multi-equitune

    _launch(script, str(runs), str(out), "train")
    ranks = [json.loads((out / f"train-rank{k}.json").read_text()) for k in range(2)]
    assert all(r["processes"] == 2 and not r["group_before"] and r["group_after"] for r in ranks)
    assert ranks[0]["first"] == ranks[1]["first"]  # same weights, same test examples: same accuracies
    assert [m for m, _, _ in ranks[0]["first"]] == methods
    assert all(r["again"] == 0 for r in ranks)  # every process sees the records written by rank 0
    records = [json.loads(line) for line in (runs / "records.jsonl").read_text().splitlines()]
    assert sorted((r["method"], r["split"]) for r in records) == [(m, "addprim_jump") for m in methods]
    base = runs / "addprim_jump" / "gru" / "seed0"
    for stage in ("pretrain", "finetuned", "equitune"):
        folders = list(base.glob(f"{stage}-*"))
        assert len(folders) == 1
        assert sorted(p.name for p in folders[0].iterdir()) == ["checkpoints", "model.safetensors", "train.json"]
        assert json.loads((folders[0] / "train.json").read_text())["processes"] == 2
    assert not list(runs.rglob("*.tmp"))  # no temporary file left behind

    # Records lost, stages kept: nothing is trained (train() never makes the group), every process
    # evaluates the loaded stages and returns the same records; rank 0 alone writes them.
    (runs / "records.jsonl").unlink()
    _launch(script, str(runs), str(out), "load")
    loaded = [json.loads((out / f"load-rank{k}.json").read_text()) for k in range(2)]
    assert all(r["processes"] == 2 and r["group_after"] and r["again"] == 0 for r in loaded)
    assert loaded[0]["first"] == loaded[1]["first"] == ranks[0]["first"]
    records = [json.loads(line) for line in (runs / "records.jsonl").read_text().splitlines()]
    assert sorted((r["method"], r["split"]) for r in records) == [(m, "addprim_jump") for m in methods]


# --------------------------------------------------------------------------- without a process group
@pytest.fixture
def launcher_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    return monkeypatch


def test_one_process_is_the_main_one_and_never_waits(launcher_env: pytest.MonkeyPatch) -> None:
    assert is_main_process()
    wait_for_everyone()
    wait_for_main(lambda: pytest.fail("one process does not poll"))  # type: ignore[arg-type,return-value]
    launcher_env.setenv("WORLD_SIZE", "1")
    launcher_env.setenv("RANK", "0")
    assert is_main_process()


@pytest.mark.parametrize(("rank", "world", "main"), [("0", "2", True), ("1", "2", False), ("3", "4", False)])
def test_rank_from_the_launcher_before_the_group_exists(
    launcher_env: pytest.MonkeyPatch, rank: str, world: str, main: bool
) -> None:
    launcher_env.setenv("RANK", rank)
    launcher_env.setenv("WORLD_SIZE", world)
    assert is_main_process() is main
    wait_for_everyone()  # no group: nothing to synchronise, returns at once


def test_rank_is_ignored_without_several_processes(launcher_env: pytest.MonkeyPatch) -> None:
    launcher_env.setenv("RANK", "1")
    assert is_main_process()  # no WORLD_SIZE: one process
    launcher_env.setenv("WORLD_SIZE", "not a number")
    assert is_main_process()


def test_the_main_process_does_not_wait(launcher_env: pytest.MonkeyPatch) -> None:
    launcher_env.setenv("RANK", "0")
    launcher_env.setenv("WORLD_SIZE", "2")
    wait_for_main(lambda: False, timeout=0.0)  # the writer itself returns at once


def test_another_process_polls_until_the_file_is_written(launcher_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    launcher_env.setenv("RANK", "1")
    launcher_env.setenv("WORLD_SIZE", "2")
    path = tmp_path / "stage" / "train.json"
    writer = threading.Timer(0.2, lambda: (path.parent.mkdir(), path.write_text("{}")))
    writer.start()
    t0 = time.monotonic()
    try:
        wait_for_main(path.is_file, what=f"'{path}'", timeout=30.0, interval=0.01)
    finally:
        writer.join()
    assert path.is_file() and time.monotonic() - t0 >= 0.15


def test_another_process_gives_up_with_a_clear_error(launcher_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    launcher_env.setenv("RANK", "1")
    launcher_env.setenv("WORLD_SIZE", "2")
    missing = tmp_path / "model.safetensors"
    with pytest.raises(TimeoutError, match=r"process 1 of 2 waited 0\.1 s for the main process .*model\.safetensors"):
        wait_for_main(missing.is_file, what=f"'{missing}'", timeout=0.1, interval=0.01)


def test_multi_image_grid_under_two_processes_writes_each_result_once(tmp_path: Path) -> None:
    """Two processes train one tiny grid run, then retrain it; rank 0 alone writes."""
    pytest.importorskip("accelerate")
    pytest.importorskip("safetensors")
    script = tmp_path / "grid.py"
    script.write_text(GRID_SCRIPT)
    _launch(script, str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(2)]
    assert all(r["processes"] == 2 for r in ranks)
    first = ranks[0]["first"]
    assert len(first) == 2 and {aug for _, aug in first} == {"none", "rot"}  # one run, two test settings
    assert ranks[1]["first"] == first
    # a rerun appends the run's records again (as in one process): each process returns both copies
    assert ranks[0]["again"] == ranks[1]["again"] and sorted(ranks[0]["again"]) == sorted(first * 2)
    grid = tmp_path / "grid"
    records = [json.loads(line) for line in (grid / "runs.jsonl").read_text().splitlines()]
    assert sorted((r["run_id"], r["test_aug"]) for r in records) == sorted(map(tuple, first * 2))
    run_id = first[0][0]
    assert sorted(p.name for p in (grid / "runs").iterdir()) == [f"{run_id}.json"]
    assert json.loads((grid / "grid.json").read_text())["runs_trained_now"] == 1
    assert sorted(p.name for p in (grid / "checkpoints" / run_id).iterdir()) == ["best"]  # last/ removed
    assert not list(grid.rglob("*.tmp"))


def test_scan_command_under_two_processes_reports_once(tmp_path: Path) -> None:
    """`multiequi scan` itself under `accelerate launch`: one record per method, one report, printed
    once, and the process group torn down before exit (the launch returns 0)."""
    pytest.importorskip("accelerate")
    pytest.importorskip("safetensors")
    script = tmp_path / "cli.py"
    script.write_text("import sys\nfrom multiequi.cli import main\nraise SystemExit(main(sys.argv[1:]))\n")
    runs, results = tmp_path / "runs", tmp_path / "results"
    done = _launch(
        script, "scan", "--tasks", "addprim_jump", "--cells", "gru", "--seeds", "0",
        "--methods", "pretrained,equitune-zs", "--pretrain-steps", "2", "--hidden", "8", "--batch-size", "8",
        "--val-size", "4", "--eval-samples", "8", "--runs", str(runs), "--results", str(results), "--no-progress",
    )  # fmt: skip
    assert done.stdout.count("Pipeline wall time this invocation") == 1
    records = [json.loads(line) for line in (runs / "records.jsonl").read_text().splitlines()]
    assert sorted(r["method"] for r in records) == ["equitune-zs", "pretrained"]
    assert (results / "scan_report.md").is_file()
    assert not list(tmp_path.rglob("*.tmp"))
