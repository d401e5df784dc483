"""Interrupted runs resume exactly (docs/reliability.md).

Real pipelines run in subprocesses through the ``multiequi`` command: a small SCAN-II pipeline
(pretraining, then fine-tuning through multi-equitune) and a multi-image cell. Each is run once
uninterrupted, then again stopped at a seeded random step after its first checkpoint (SIGKILL,
SIGTERM or Ctrl-C) and rerun with the same command. The final weights must be the same bytes and
every record value the same, except the fields that measure time.

Faults are injected with ``MULTIEQUI_FAULT="SIGNAL@STEP:TEXT"`` (the training loop sends the signal
to its own process after that step; see ``multiequi.lab.training.loop``); Ctrl-C is also sent for
real, to the whole process group, once the first checkpoint is on disk.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import accelerate_launch, make_fashion_files

pytest.importorskip("accelerate")
pytest.importorskip("safetensors")
pytest.importorskip("matplotlib")

SRC = Path(__file__).resolve().parents[2] / "src"

#: Record fields that measure time (they differ between any two runs, interrupted or not).
TIMING = {
    "pretrain_wall_s",
    "finetune_wall_s",
    "finetune_examples_per_s",
    "eval_wall_s",
    "eval_ms_per_example",
    "time",
    "train_time_s",
    "test_time_s",
}

PRETRAIN, FINETUNE, CHECKPOINT_EVERY = 200, 30, 25
SCAN = [
    "scan",
    *("--tasks", "scan2", "--cells", "gru", "--seeds", "0", "--methods", "pretrained,multi-equitune"),
    *("--pretrain-steps", str(PRETRAIN), "--finetune-steps", str(FINETUNE), "--batch-size", "8", "--hidden", "8"),
    *("--val-size", "20", "--eval-samples", "40", "--threads", "1", "--no-progress"),
    *("--checkpoint-every", str(CHECKPOINT_EVERY)),
]


def _env(fault: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    env.pop("MULTIEQUI_FAULT", None)
    if fault:
        env["MULTIEQUI_FAULT"] = fault
    return env


def _run(args: list[str], fault: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "multiequi.cli", *args]
    return subprocess.run(cmd, env=_env(fault), capture_output=True, text=True, timeout=600)


def _scan_args(runs: Path) -> list[str]:
    return [*SCAN, "--runs", str(runs), "--results", str(runs / "results")]


def _records(path: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in path.read_text().splitlines()]


def _final_weights(runs: Path) -> dict[str, bytes]:
    """Every weights file that is a result (stage weights, selected weights), not resumption state."""
    found = {
        str(p.relative_to(runs)): p.read_bytes()
        for p in runs.rglob("*.safetensors")
        if not {"last", "previous", ".last.tmp"} & set(p.parts)
    }
    assert found
    return found


def _seeded_step(seed: int, lo: int, hi: int) -> int:
    return random.Random(seed).randint(lo, hi)


@pytest.fixture(scope="module")
def scan_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    runs = tmp_path_factory.mktemp("scan") / "uninterrupted"
    done = _run(_scan_args(runs))
    assert done.returncode == 0, done.stderr[-3000:]
    return _records(runs / "records.jsonl"), _final_weights(runs)


@pytest.mark.parametrize(
    ("signal_name", "where", "hi", "code"),
    [("KILL", "pretrain", PRETRAIN - 1, -signal.SIGKILL), ("TERM", "multi-equitune", FINETUNE - 1, 143)],
)
def test_scan_stopped_at_a_random_step_resumes_bitwise(
    tmp_path: Path, scan_reference: tuple, signal_name: str, where: str, hi: int, code: int
) -> None:
    step = _seeded_step(len(signal_name + where), CHECKPOINT_EVERY + 1, hi)  # after the first checkpoint
    runs = tmp_path / "runs"
    stopped = _run(_scan_args(runs), fault=f"{signal_name}@{step}:{where}")
    assert stopped.returncode == code, stopped.stderr[-3000:]
    if signal_name == "TERM":
        resume = step  # SIGTERM: the step finishes and a checkpoint is written
        assert f"interrupted at step {step}; rerun the same command to resume from step {resume}" in stopped.stderr
        assert "Traceback" not in stopped.stderr
    assert not (runs / "records.jsonl").exists() or len(_records(runs / "records.jsonl")) < len(scan_reference[0])
    checkpoint = json.loads(next(runs.rglob(f"{where}-*/checkpoints/last/state.json")).read_text())
    rerun = _run(_scan_args(runs))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    records, weights = scan_reference
    assert _records(runs / "records.jsonl") == records
    assert _final_weights(runs) == weights
    info = json.loads(next(runs.rglob(f"{where}-*/train.json")).read_text())
    assert 0 < info["resumed_from"] == checkpoint["step"] <= step
    assert info["wall_time_s"] > checkpoint["wall_time_s"] > 0  # wall time summed over both invocations


def test_scan_ctrl_c_writes_a_checkpoint_says_where_to_resume_and_resumes_bitwise(
    tmp_path: Path, scan_reference: tuple
) -> None:
    """A real Ctrl-C (SIGINT to the whole process group) at whatever step the run has reached."""
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "multiequi.cli", *_scan_args(runs)]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(runs.rglob("last/state.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    line = [x for x in err.splitlines() if x.startswith("multiequi scan: interrupted")]
    assert len(line) == 1 and "rerun the same command to resume" in line[0], err[-3000:]
    match = re.search(r"interrupted at step (\d+); rerun the same command to resume from step (\d+)", line[0])
    if match:  # stopped inside a training loop: it finished the step and checkpointed it
        assert match.group(1) == match.group(2)
    assert "Traceback" not in err
    rerun = _run(_scan_args(runs))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert _records(runs / "records.jsonl") == scan_reference[0]
    assert _final_weights(runs) == scan_reference[1]


# ---------------------------------------------------------------------------------- multi-image
def _multi_image_args(data: Path, out: Path) -> list[str]:
    return [
        "multi-image",
        *("--data-dir", str(data), "--out", str(out), "--k", "2", "--models", "Multi-GCNN-Fusion"),
        *("--train-aug", "rot", "--test-aug", "none", "rot", "--seeds", "0", "--epochs", "3"),
        *("--train-tuples", "64", "--val-tuples", "16", "--test-tuples", "16", "--batch-size", "8"),
        *("--threads", "1", "--no-progress", "--checkpoint-every", "5"),
    ]


@pytest.fixture(scope="module")
def fashion_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fashion_files(tmp_path_factory.mktemp("fmnist"), per_class_train=40, per_class_test=8)


@pytest.fixture(scope="module")
def multi_image_reference(tmp_path_factory: pytest.TempPathFactory, fashion_files: Path) -> Path:
    out = tmp_path_factory.mktemp("multi_image") / "uninterrupted"
    straight = _run(_multi_image_args(fashion_files, out))
    assert straight.returncode == 0, straight.stderr[-3000:]
    return out


def _same_multi_image_results(out: Path, reference: Path, step: int) -> None:
    assert _records(out / "runs.jsonl") == _records(reference / "runs.jsonl")
    assert _final_weights(out / "checkpoints") == _final_weights(reference / "checkpoints")
    detail = json.loads(next((out / "runs").glob("*.json")).read_text())
    expected = json.loads(next((reference / "runs").glob("*.json")).read_text())
    assert detail["history"] == expected["history"] and 0 < detail["resumed_from"] <= step


@pytest.mark.parametrize(("signal_name", "code"), [("KILL", -signal.SIGKILL), ("INT", 130)])
def test_multi_image_cell_stopped_at_a_random_step_resumes_bitwise(
    tmp_path: Path, fashion_files: Path, multi_image_reference: Path, signal_name: str, code: int
) -> None:
    step = _seeded_step(7 + len(signal_name), 6, 23)  # 8 steps per epoch, 24 in all; first checkpoint at 5
    out = tmp_path / "b"
    stopped = _run(_multi_image_args(fashion_files, out), fault=f"{signal_name}@{step}:K=2")
    assert stopped.returncode == code, stopped.stderr[-3000:]
    if signal_name == "INT":
        expected = (
            f"multiequi multi-image: interrupted at step {step}; rerun the same command to resume from step {step}"
        )
        assert stopped.stderr.strip().splitlines()[-1] == expected
    assert not (out / "runs.jsonl").exists()
    rerun = _run(_multi_image_args(fashion_files, out))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    _same_multi_image_results(out, multi_image_reference, step)


# -------------------------------------------------------------------------------- two processes
def _launch(runs: Path, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"MULTIEQUI_FAULT": fault or ""}
    return accelerate_launch("-m", "multiequi.cli", *_scan_args(runs), env=env, expect_failure=fault is not None)


def test_two_processes_stopped_by_ctrl_c_and_by_a_killed_process_resume_bitwise(tmp_path: Path) -> None:
    """Under ``accelerate launch`` with two CPU processes: both processes stop at the same step on
    SIGINT (one message), a SIGKILL of the main process stops the launch; reruns end bitwise like
    an uninterrupted two-process run."""
    straight = _launch(tmp_path / "a")
    assert straight.returncode == 0
    reference = _records(tmp_path / "a" / "records.jsonl"), _final_weights(tmp_path / "a")

    step = _seeded_step(11, CHECKPOINT_EVERY + 1, PRETRAIN - 1)
    stopped = _launch(tmp_path / "b", fault=f"INT@{step}:pretrain")
    assert stopped.returncode != 0
    assert stopped.stderr.count(f"interrupted at step {step}; rerun the same command to resume from step {step}") == 1
    assert "exitcode  : 130" in stopped.stderr  # both processes exited with 130
    assert _launch(tmp_path / "b").returncode == 0
    assert (_records(tmp_path / "b" / "records.jsonl"), _final_weights(tmp_path / "b")) == reference

    step = _seeded_step(12, 9, FINETUNE - 1)  # fine-tuning evaluates (and checkpoints) every 6 steps
    killed = _launch(tmp_path / "c", fault=f"KILL@{step}:multi-equitune")
    assert killed.returncode != 0
    assert _launch(tmp_path / "c").returncode == 0
    assert (_records(tmp_path / "c" / "records.jsonl"), _final_weights(tmp_path / "c")) == reference


def test_two_processes_multi_image_cell_killed_resumes_bitwise(tmp_path: Path, fashion_files: Path) -> None:
    straight = accelerate_launch("-m", "multiequi.cli", *_multi_image_args(fashion_files, tmp_path / "a"))
    assert straight.returncode == 0
    step = _seeded_step(13, 6, 11)  # 4 steps per epoch per process: 12 in all
    killed = accelerate_launch(
        "-m",
        "multiequi.cli",
        *_multi_image_args(fashion_files, tmp_path / "b"),
        env={"MULTIEQUI_FAULT": f"KILL@{step}:K=2"},
        expect_failure=True,
    )
    assert killed.returncode != 0 and not (tmp_path / "b" / "runs.jsonl").exists()
    assert accelerate_launch("-m", "multiequi.cli", *_multi_image_args(fashion_files, tmp_path / "b")).returncode == 0
    _same_multi_image_results(tmp_path / "b", tmp_path / "a", step)
