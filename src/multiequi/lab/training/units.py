"""Work split into fixed units, shared by the processes of ``accelerate launch``, resumable unit by unit.

An experiment whose work is many independent pieces (generating samples, evaluating batches of
test images) lists them as *units* in an order fixed by its settings. Process ``k`` of ``N`` takes
the units ``k, k + N, ...``; each finished unit is one JSON file written atomically, holding the
unit's *key* (what fixes its result). A run killed and started again, with any number of
processes, does only the units that have no file, or whose file holds another key (a unit of
another plan is redone; a damaged file too).

Examples
--------
>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> units = [0, 1, 2]
>>> run_units(units, folder, lambda u: {"square": u * u}, key=lambda u: {"u": u}, show_progress=False)
3
>>> run_units(units, folder, lambda u: {"square": u * u}, key=lambda u: {"u": u}, show_progress=False)
0
>>> [r["square"] for r in read_units(units, folder, key=lambda u: {"u": u})]
[0, 1, 4]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from multiequi.lab.reporting import DamagedFileError, atomic_write_json, progress, read_json

__all__ = ["RunMismatchError", "check_run_key", "process_state", "read_units", "run_units", "unit_path"]

U = TypeVar("U")


def process_state() -> Any:
    """Accelerate's ``PartialState`` (which process this is, of how many), on the CPU when no GPU
    is visible, so that ``accelerate launch --multi_gpu --num_processes N`` runs N CPU processes
    over gloo; one plain process is process 0 of 1."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def unit_path(folder: str | Path, index: int) -> Path:
    """The file of unit number ``index`` in ``folder``."""
    return Path(folder) / f"unit-{index:05d}.json"


def _done(path: Path, key: Any) -> bool:
    if not path.is_file():
        return False
    try:
        record = read_json(path, "unit file")
    except DamagedFileError:
        return False  # an interrupted write cannot leave one (writes are atomic); a damaged file is redone
    return record.get("key") == key


def run_units(
    units: Sequence[U],
    folder: str | Path,
    work: Callable[[U], dict[str, Any]],
    *,
    key: Callable[[U], Any],
    index: Callable[[U], int] | None = None,
    desc: str = "units",
    unit_name: str = "unit",
    show_progress: bool = True,
    state: Any = None,
) -> int:
    """Do this process's share of ``units`` (unit number ``i`` goes to process ``i mod N``), skipping
    units whose file holds the same key; then wait for every process. Returns the units done here.

    ``work(unit)`` returns the unit's record (plain data); it is written to :func:`unit_path` with
    ``"key": key(unit)`` added (``key`` must return plain JSON data). A unit's number is its
    position in ``units``, or ``index(unit)`` (so a part of a plan keeps its numbers).
    """
    state = state if state is not None else process_state()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    numbered = [(i if index is None else index(u), u) for i, u in enumerate(units)]
    mine = [(i, u) for i, u in numbered if i % state.num_processes == state.process_index]
    todo = [(i, u) for i, u in mine if not _done(unit_path(folder, i), key(u))]
    bar = progress(
        total=len(mine),
        initial=len(mine) - len(todo),
        desc=desc,
        unit=unit_name,
        enabled=show_progress and state.is_local_main_process,
    )
    try:
        for i, u in todo:
            record = dict(work(u))
            record["key"] = key(u)
            atomic_write_json(unit_path(folder, i), record)
            bar.update(1)
    finally:
        bar.close()
    state.wait_for_everyone()
    return len(todo)


def read_units(
    units: Sequence[U],
    folder: str | Path,
    *,
    key: Callable[[U], Any],
    index: Callable[[U], int] | None = None,
) -> list[dict[str, Any]]:
    """Every unit's record, in unit order. A missing unit, or one written for another plan, raises
    ``FileNotFoundError`` saying the run is unfinished."""
    records = []
    for i, u in enumerate(units):
        path = unit_path(folder, i if index is None else index(u))
        if not _done(path, key(u)):
            raise FileNotFoundError(
                f"'{path}' is missing or from another plan: the run in '{folder}' is unfinished; run again"
            )
        records.append(read_json(path, "unit file"))
    return records


class RunMismatchError(ValueError):
    """The run folder holds work done with other settings."""


def check_run_key(
    out: str | Path, section: str, key: dict[str, Any], *, extra: dict[str, Any] | None = None, state: Any = None
) -> None:
    """Write ``out/config.json`` with ``{section: key}`` (main process), or check that an existing
    one holds the same ``key``: a run folder refuses to resume under other settings. ``extra``:
    more fields written beside it (not checked).

    Examples
    --------
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> check_run_key(out, "evaluation", {"images": 10})
    >>> check_run_key(out, "evaluation", {"images": 20})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    multiequi.lab.training.units.RunMismatchError: '...' holds work done with other settings {'images': (10, 20)} ...
    """
    state = state if state is not None else process_state()
    out = Path(out)
    path = out / "config.json"
    if path.is_file():
        found = read_json(path, "run configuration").get(section, {})
        if found != key:
            diff = {k: (found.get(k), v) for k, v in key.items() if found.get(k) != v}
            raise RunMismatchError(
                f"'{out}' holds work done with other settings {diff} (found, asked): choose another --out, "
                "or delete the folder to start again"
            )
    elif state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {section: key, **(extra or {})})
    state.wait_for_everyone()
