"""Results on disk: atomic writes, JSON-lines run records, the machine that made them."""

from __future__ import annotations

import json
import os
import platform
import socket
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DamagedFileError",
    "append_jsonl",
    "atomic_write_json",
    "atomic_write_text",
    "machine_info",
    "read_json",
    "read_jsonl",
]


class DamagedFileError(ValueError):
    """A results file that cannot be read. The message names the file (and line), what is wrong
    and what to do."""


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, then a rename.

    A reader never sees a half-written file, and an interrupted run leaves the old file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def read_json(path: str | os.PathLike[str], what: str = "file") -> Any:
    """The JSON value in ``path``; a damaged file raises :class:`DamagedFileError` saying which
    file and what to do (a missing one raises ``FileNotFoundError``)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DamagedFileError(
            f"{what} '{path}' is damaged (not valid JSON: {err}); delete it and rerun to write it again"
        ) from err


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records of a JSON-lines file (an empty list when the file does not exist).

    A line that is not a JSON object raises :class:`DamagedFileError` naming the file and the line.
    """
    path = Path(path)
    if not path.exists():
        return []
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DamagedFileError(f"records file '{path}' is damaged (not UTF-8 text: {err})") from err
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"a JSON {type(record).__name__}, not an object")
            except ValueError as err:
                raise DamagedFileError(
                    f"records file '{path}' line {n} is not a valid record ({err}); fix or delete that line "
                    "(the results it held are then computed again on the next run)"
                ) from err
            out.append(record)
    return out


def append_jsonl(path: str | os.PathLike[str], records: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> Path:
    """Append one record (or several) to a JSON-lines file, rewriting it atomically."""
    if isinstance(records, Mapping):
        records = [records]
    existing = read_jsonl(path)
    lines = [json.dumps(r, default=_jsonable) for r in [*existing, *records]]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def machine_info(device: str | None = None) -> dict[str, Any]:
    """The machine a result was measured on: CPU, cores, torch version and threads, device."""
    import torch

    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device or "cpu",
    }
    if device and device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
