"""``multiequi reproduce``: parts run once, resume after a failure or a SIGKILL, and the report is
rebuilt from the records alone. The parts here are a small script standing in for the experiments'
commands (the real commands are checked against the real parser)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from multiequi.cli import build_parser, main
from multiequi.lab.reproduce import PARTS, PRESETS, Part, PartFailedError, rebuild_report, run_reproduction
from multiequi.lab.reproduce.runner import record_path

_PART_SCRIPT = """
import os, pathlib, sys, time
argv = sys.argv[1:]
name = argv[0]
out = pathlib.Path(argv[argv.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
with open(out / "runs.txt", "a") as f:
    f.write(" ".join(argv) + "\\n")
if os.environ.get("FAKE_FAIL") == name:
    sys.exit(3)
(out / "started").write_text("1")
time.sleep(float(os.environ.get("FAKE_SLEEP_" + name.upper(), "0")))
(out / "report.md").write_text(
    f"# {name} report\\n\\n| a | b |\\n|---|---|\\n| 1 | 2 |\\n\\n![fig]({name}.png) [page](https://x.org/p)\\n\\n"
    "```bash\\n# not a heading\\n```\\n"
)
"""


def _fake_parts() -> dict[str, Part]:
    return {
        n: Part(
            name=n,
            title=f"The {n} part",
            page=f"docs/{n}.md",
            reports=("report.md",),
            options=lambda preset, n=n: [n, "--preset", preset],
            folder_options=lambda d: ["--out", str(d)],
        )
        for n in ("alpha", "beta")
    }


def _launcher(script: Path):
    return lambda argv: [sys.executable, str(script), *argv]


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "part.py"
    path.write_text(_PART_SCRIPT)
    return path


def _runs(out: Path, part: str) -> int:
    return len((out / part / "runs.txt").read_text().splitlines())


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_")}
    return {**env, **extra}


def test_every_part_runs_once_and_the_report_is_rebuilt_from_the_records_alone(tmp_path: Path, script: Path) -> None:
    out = tmp_path / "results"
    kw = dict(parts=_fake_parts(), launcher=_launcher(script), env=_env(), log=lambda s: None)
    records = run_reproduction("quick", out, threads=1, progress=False, **kw)
    assert [r["part"] for r in records] == ["alpha", "beta"]
    assert all(r["status"] == "finished" and r["attempts"][0]["returncode"] == 0 for r in records)
    assert (out / "alpha" / "runs.txt").read_text().split() == [
        "alpha", "--preset", "quick", "--out", str(out / "alpha"), "--threads", "1", "--no-progress",
    ]  # fmt: skip
    rec = json.loads(record_path(out, "beta").read_text())
    assert rec["command"][:3] == ["multiequi", "beta", "--preset"] and rec["machine"]["cpu_count"] == os.cpu_count()
    assert rec["versions"]["torch"] and "commit" in rec["code"]

    text = (out / "report.md").read_text()
    assert "## Parts" in text and "## The alpha part" in text
    assert "### alpha report" in text  # the part's headings moved down under its section
    assert "![fig](alpha/alpha.png)" in text and "(https://x.org/p)" in text  # relative links into its folder
    assert "# not a heading" in text and "### not a heading" not in text  # fenced code untouched
    assert "| 1 | 2 |" in text

    again = run_reproduction("quick", out, **kw)
    assert _runs(out, "alpha") == 1 and _runs(out, "beta") == 1  # finished parts are kept
    assert again == records
    (out / "report.md").unlink()
    rebuild_report(out)
    assert (out / "report.md").read_text() == text

    run_reproduction("medium", out, only="beta", **kw)  # other settings: the part runs again
    assert _runs(out, "beta") == 2 and _runs(out, "alpha") == 1


def test_a_failed_part_stops_the_reproduction_and_a_rerun_resumes_it(tmp_path: Path, script: Path) -> None:
    out = tmp_path / "results"
    kw = dict(parts=_fake_parts(), launcher=_launcher(script), log=lambda s: None)
    with pytest.raises(PartFailedError, match="beta part stopped with exit status 3"):
        run_reproduction("quick", out, env=_env(FAKE_FAIL="beta"), **kw)
    assert json.loads(record_path(out, "beta").read_text())["status"] == "failed"
    assert "Not finished (failed)" in (out / "report.md").read_text()
    run_reproduction("quick", out, env=_env(), **kw)
    assert _runs(out, "alpha") == 1 and _runs(out, "beta") == 2
    rec = json.loads(record_path(out, "beta").read_text())
    assert [a["returncode"] for a in rec["attempts"]] == [3, 0] and rec["status"] == "finished"


_DRIVER = """
import signal, sys
def _stop(signum, frame):
    raise SystemExit(143)  # as the multiequi command does with SIGTERM: unwind, then exit
signal.signal(signal.SIGTERM, _stop)
sys.path[:0] = [{tests!r}]
from test_reproduce import _fake_parts, _launcher, _env
from pathlib import Path
from multiequi.lab.reproduce import run_reproduction
run_reproduction("quick", sys.argv[1], parts=_fake_parts(), launcher=_launcher(Path(sys.argv[2])),
                 env=_env(FAKE_SLEEP_BETA="120"))
"""


def _start_and_stop(tmp_path: Path, out: Path, script: Path, stop) -> None:
    """Run a reproduction in a subprocess, call ``stop(process)`` once its second part started."""
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER.format(tests=str(Path(__file__).parent)))
    proc = subprocess.Popen([sys.executable, str(driver), str(out), str(script)], start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "beta" / "started").exists():
            assert proc.poll() is None, "the reproduction ended before it could be stopped"
            assert time.monotonic() < deadline, "the second part never started"
            time.sleep(0.05)
        stop(proc)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_killed_reproduction_resumes_without_redoing_finished_parts(tmp_path: Path, script: Path) -> None:
    """SIGKILL to the reproduction and its running part, then the same command: the finished part
    is kept as it is (not run again, its record untouched), the killed one runs again, and its
    record shows the killed attempt."""
    out = tmp_path / "results"
    _start_and_stop(tmp_path, out, script, lambda proc: os.killpg(proc.pid, signal.SIGKILL))
    assert json.loads(record_path(out, "beta").read_text())["status"] == "running"
    stamp = record_path(out, "alpha").stat().st_mtime_ns

    run_reproduction("quick", out, parts=_fake_parts(), launcher=_launcher(script), env=_env(), log=lambda s: None)
    assert _runs(out, "alpha") == 1 and record_path(out, "alpha").stat().st_mtime_ns == stamp
    assert _runs(out, "beta") == 2
    rec = json.loads(record_path(out, "beta").read_text())
    assert rec["status"] == "finished"
    assert rec["attempts"][0]["interrupted"] is True and rec["attempts"][0]["wall_s"] is None
    assert rec["attempts"][1]["returncode"] == 0
    assert "Not finished" not in (out / "report.md").read_text()


def test_sigterm_stops_the_running_part_and_the_record_says_so(tmp_path: Path, script: Path) -> None:
    out = tmp_path / "results"
    _start_and_stop(tmp_path, out, script, lambda proc: proc.send_signal(signal.SIGTERM))  # to the reproduction only
    rec = json.loads(record_path(out, "beta").read_text())
    assert rec["status"] == "interrupted"
    (attempt,) = rec["attempts"]
    assert attempt["returncode"] == -signal.SIGTERM and attempt["interrupted"] and attempt["wall_s"] > 0
    assert "Not finished (interrupted)" in (out / "report.md").read_text()
    run_reproduction("quick", out, parts=_fake_parts(), launcher=_launcher(script), env=_env(), log=lambda s: None)
    rec = json.loads(record_path(out, "beta").read_text())
    assert rec["status"] == "finished" and len(rec["attempts"]) == 2 and _runs(out, "alpha") == 1


@pytest.mark.parametrize("preset", PRESETS)
def test_every_real_part_command_is_accepted_by_its_command_line(preset: str, tmp_path: Path) -> None:
    parser = build_parser()
    for part in PARTS.values():
        argv = part.command(preset, tmp_path / part.name, threads=1, progress=False)
        args = parser.parse_args(argv)
        assert args.command == argv[0]
    medium = {p: PARTS[p].command("medium", tmp_path) for p in ("scan", "multi-image", "zeroshot")}
    scan = parser.parse_args(medium["scan"])
    assert (scan.tasks, scan.cells, scan.seeds) == (("scan2",), ("gru", "lstm"), (0, 1, 2))
    assert (scan.pretrain_steps, scan.finetune_steps) == (2000, 200)
    images = parser.parse_args(medium["multi-image"])
    assert (images.k, images.seeds, images.train_tuples, images.batch_size) == ([2, 3, 4], [0, 1, 2], 1000, 32)
    zeroshot = parser.parse_args(medium["zeroshot"])
    assert (zeroshot.preset, zeroshot.images, zeroshot.timing_rounds) == ("medium", 64, 3)


def test_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--only", "scna", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown part 'scna'" in err and "multi-image" in err
    assert main(["reproduce", "report", "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "run 'multiequi reproduce'" in err
