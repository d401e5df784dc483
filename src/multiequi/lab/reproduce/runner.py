"""Run the parts of a reproduction, each a ``multiequi`` command in a subprocess, with records."""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from multiequi.lab.reporting import DamagedFileError, atomic_write_json, machine_info, read_json

from .parts import PRESETS, Part, select_parts

__all__ = ["PartFailedError", "code_version", "library_versions", "record_path", "run_reproduction"]

#: the packages whose versions each record keeps
VERSIONED = ("multiequi", "torch", "numpy", "transformers", "accelerate", "ttach", "matplotlib")


class PartFailedError(RuntimeError):
    """A part's command ended with a non-zero exit status (its own output says why)."""

    def __init__(self, part: str, returncode: int) -> None:
        self.part = part
        self.returncode = returncode
        super().__init__(
            f"the {part} part stopped with exit status {returncode} (its output above says why); "
            "rerun the same command to resume it: finished parts are not run again"
        )


def record_path(out: str | Path, part: str) -> Path:
    """The record of ``part`` in the reproduction folder ``out``."""
    return Path(out) / "records" / f"{part}.json"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def code_version() -> dict[str, Any]:
    """The commit of the multiequi checkout that runs (``None`` outside a git checkout) and whether
    its tracked files differ from that commit."""
    import multiequi

    root = Path(multiequi.__file__).resolve().parents[2]
    info: dict[str, Any] = {"commit": None, "dirty": None, "source": str(root)}
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=30)
        if head.returncode == 0:
            info["commit"] = head.stdout.strip()
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=30,
            )
            info["dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def library_versions() -> dict[str, str | None]:
    """The installed version of each package of :data:`VERSIONED` (``None``: not installed)."""
    out: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _default_launcher(argv: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "multiequi.cli", *argv]


def _read_record(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        record = read_json(path, "reproduction record")
    except DamagedFileError:
        return None  # written atomically, so only damaged by hand: the part runs again and resumes
    return record if isinstance(record, dict) else None


def _run_command(cmd: list[str], env: dict[str, str] | None, attempt: dict[str, Any]) -> int:
    """Run ``cmd`` in the foreground; its exit status. Ctrl-C reaches the part too (it stops at a
    safe point and says so): wait for it. Any other interruption of this process (SIGTERM) is
    passed on to the part. Either way ``attempt`` gets the part's exit status, then the
    interruption goes on."""
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except BaseException:
        if proc.poll() is None:
            if not isinstance(sys.exc_info()[1], KeyboardInterrupt):
                proc.terminate()
            try:
                proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        attempt["returncode"] = proc.returncode
        attempt["interrupted"] = True
        raise


def run_reproduction(
    preset: str,
    out: str | Path,
    *,
    only: str | Sequence[str] | None = None,
    threads: int | None = None,
    progress: bool = True,
    parts: dict[str, Part] | None = None,
    launcher: Callable[[Sequence[str]], list[str]] | None = None,
    env: dict[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run (or resume) every chosen part at ``preset`` into ``out/<part>/``, then write
    ``out/report.md``; return the parts' records.

    A part whose record says it finished with the same settings is skipped; any other part runs its
    command, which resumes from what its folder holds. Before a part starts, its record is written
    with the attempt (so an attempt killed outright still shows in the report); afterwards the
    record gets the attempt's wall time and exit status. A part that fails stops the reproduction
    (:class:`PartFailedError`); the report is still rebuilt from what finished.

    ``launcher`` turns the ``multiequi`` arguments into the process's command (default
    ``python -m multiequi.cli ...``); ``parts`` replaces :data:`~.parts.PARTS` (tests).
    """
    from .report import rebuild_report

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    out = Path(out)
    chosen = select_parts(only, parts)
    launch = launcher or _default_launcher
    records = []
    for i, part in enumerate(chosen, 1):
        path = record_path(out, part.name)
        settings = {"preset": preset, "options": part.options(preset)}
        record = _read_record(path)
        if record is not None and record.get("settings") == settings and record.get("status") == "finished":
            log(f"[{i}/{len(chosen)}] {part.name}: finished earlier, kept")
            records.append(record)
            continue
        attempts = list(record.get("attempts", [])) if record is not None and record.get("settings") == settings else []
        for a in attempts:
            if a.get("wall_s") is None:
                a["interrupted"] = True  # the reproduction was killed outright: the time is unknown
        argv = part.command(preset, out / part.name, threads=threads, progress=progress)
        attempt: dict[str, Any] = {"started": _now(), "wall_s": None, "returncode": None}
        record = {
            "part": part.name,
            "title": part.title,
            "page": part.page,
            "settings": settings,
            "command": ["multiequi", *argv],
            "folder": part.name,
            "reports": list(part.reports),
            "status": "running",
            "attempts": [*attempts, attempt],
            "code": code_version(),
            "versions": library_versions(),
            "machine": machine_info(),
            "threads": threads,
        }
        atomic_write_json(path, record)
        log(f"[{i}/{len(chosen)}] {part.name}: multiequi {' '.join(argv)}")
        start = time.perf_counter()
        try:
            rc = _run_command(launch(argv), env if env is not None else dict(os.environ), attempt)
        except BaseException:  # Ctrl-C or SIGTERM: the part stopped at a safe point; say so, then stop
            attempt["wall_s"] = time.perf_counter() - start
            record["status"] = "interrupted"
            atomic_write_json(path, record)
            rebuild_report(out)
            raise
        attempt["wall_s"] = time.perf_counter() - start
        attempt["returncode"] = rc
        attempt["finished"] = _now()
        record["status"] = "finished" if rc == 0 else "failed"
        atomic_write_json(path, record)
        records.append(record)
        if rc != 0:
            rebuild_report(out)
            raise PartFailedError(part.name, rc)
        log(f"[{i}/{len(chosen)}] {part.name}: done in {attempt['wall_s'] / 60:.1f} min")
    rebuild_report(out)
    return records
