"""User errors, damaged files and missing extras: one clear line on stderr, exit status 2, no
traceback (docs/reliability.md)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from multiequi.cli import main

pytest.importorskip("accelerate")
pytest.importorskip("safetensors")

SRC = Path(__file__).resolve().parents[2] / "src"
TINY_SCAN = [
    "scan",
    *("--tasks", "scan2", "--cells", "gru", "--seeds", "0", "--methods", "pretrained"),
    *("--pretrain-steps", "4", "--batch-size", "8", "--hidden", "8", "--val-size", "8", "--eval-samples", "8"),
    *("--threads", "1", "--no-progress"),
]


def _one_line_error(capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for text in expected:
        assert text in err, err
    return err


@pytest.fixture(scope="module")
def finished_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("scan")
    assert main([*TINY_SCAN, "--runs", str(runs), "--results", str(runs / "results")]) == 0
    return runs


def test_missing_data_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["scan", "--data-dir", str(tmp_path / "nowhere"), "--runs", str(tmp_path / "r"), "--no-progress"]
    assert main(argv) == 2
    _one_line_error(capsys, "multiequi scan: SCAN file not found", "multiequi scan generate")
    assert main(["multi-image", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "multiequi multi-image: Fashion-MNIST folder", "apt-get install dataset-fashion-mnist")


def test_a_damaged_records_line_is_named(
    finished_scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    subprocess.run(["cp", "-r", str(finished_scan), str(runs)], check=True)
    with (runs / "records.jsonl").open("a") as handle:
        handle.write('{"method": "pretrained", "spl\n')
    assert main([*TINY_SCAN, "--runs", str(runs), "--results", str(runs / "results")]) == 2
    n = len((runs / "records.jsonl").read_text().splitlines())
    _one_line_error(capsys, f"records.jsonl' line {n} is not a valid record", "fix or delete that line")


def test_a_truncated_stage_weights_file_is_named(
    finished_scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    subprocess.run(["cp", "-r", str(finished_scan), str(runs)], check=True)
    (runs / "records.jsonl").unlink()  # the records are gone: the finished stage is loaded again
    weights = next(p for p in runs.rglob("model.safetensors") if "checkpoints" not in p.parts)
    weights.write_bytes(weights.read_bytes()[:100])
    assert main([*TINY_SCAN, "--runs", str(runs), "--results", str(runs / "results")]) == 2
    _one_line_error(capsys, f"weights file '{weights}' is damaged", "delete it")


def test_debug_mode_shows_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIEQUI_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(["scan", "--data-dir", str(tmp_path / "nowhere"), "--runs", str(tmp_path / "r"), "--no-progress"])


# An environment without the [experiments] extra: its packages cannot be imported.
WITHOUT_EXPERIMENTS = textwrap.dedent(
    """
    import importlib.abc, sys
    ABSENT = {"accelerate", "safetensors", "matplotlib"}

    class Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ABSENT:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Absent())
    from multiequi.cli import main
    raise SystemExit(main(sys.argv[1:]))
    """
)


@pytest.mark.parametrize("command", ["scan", "multi-image"])
def test_a_missing_extra_names_the_pip_install(tmp_path: Path, command: str) -> None:
    from conftest import make_fashion_files

    if command == "scan":
        argv = [*TINY_SCAN, "--runs", str(tmp_path / "r"), "--results", str(tmp_path / "s")]
    else:
        data = make_fashion_files(tmp_path / "f", per_class_train=20)
        argv = ["multi-image", "--data-dir", str(data), "--out", str(tmp_path / "o"), "--epochs", "1"]
        argv += ["--models", "CNN", "--train-tuples", "16", "--val-tuples", "8", "--test-tuples", "8", "--no-progress"]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXPERIMENTS, *argv],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    err = done.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "pip install 'multiequi[experiments]'" in err, err


@pytest.mark.parametrize(("how", "code"), [("ctrl-c", 130), ("sigterm", 143)])
def test_an_interruption_outside_training_says_how_to_resume(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], how: str, code: int
) -> None:
    """Ctrl-C or SIGTERM while evaluating or loading data: finished work is kept on disk; one line."""
    import os
    import signal

    import multiequi.cli.scan as scan_command

    def stopped(args: object) -> int:
        if how == "ctrl-c":
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)  # the command's handler turns it into an exit, not a kill
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(scan_command, "run", stopped)
    assert main(["scan", "--no-progress"]) == code
    err = capsys.readouterr().err.strip()
    assert err == "multiequi scan: interrupted; rerun the same command to resume (finished work is kept)"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored after the command


def test_fairness_errors_are_one_line(tmp_path, capsys) -> None:
    from multiequi.cli import main

    assert main(["fairness", "--regard-data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--regard-data" in err[0] and "not a folder" in err[0]
    assert main(["fairness", "report", "--out", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "summary.json" in err[0]


def test_fairness_help_names_the_stand_in_and_every_option(capsys) -> None:
    import pytest

    from multiequi.cli import main

    with pytest.raises(SystemExit):
        main(["fairness", "--help"])
    text = capsys.readouterr().out
    assert "stand-in for GPT-2" in text and "quick:" in text and "paper:" in text
    for option in ("--model", "--race", "--contexts", "--samples", "--methods", "--regard-data", "--out", "--threads"):
        assert option in text
