"""Which process writes the results, and how the others wait for it, under ``accelerate launch``.

Under ``accelerate launch --num_processes N`` every process runs the whole experiment: all of
them train (Accelerate shards the batches and averages the gradients) and evaluate, but only the
*main* process (rank 0) writes records, stage weights and summaries; the others wait until those
files are there before they read them. Run as one plain process, nothing changes: that process is
the main one and nothing waits.

When does the process group exist? Accelerate creates it (``torch.distributed``: gloo on the CPU,
nccl on GPUs) when the first ``Accelerator`` is made, so by default when
:func:`~.loop.train` is first called, and keeps it: ``train`` never calls
``Accelerator.end_training()``, so the group lives until the script tears it down at its very end
(as ``_smoke.py`` does). A process therefore meets three states: no group yet (the launcher's
``WORLD_SIZE`` and ``RANK`` are set), a group, and no group again after ``end_training()``.

Without a group the processes are not connected, and waiting is racy: a process that reads a
file before the main process has rewritten it can take a different path (it may find a record
already written and skip work the others do). So the experiments call
:func:`join_process_group` first: it creates the group up front, the way ``train`` would, and
from then on every wait is a ``torch.distributed.barrier`` (``end_training()`` belongs at the very
end of a script, after the last write).

- :func:`is_main_process` asks the group when there is one and otherwise reads ``RANK`` (set by
  torchrun, which ``accelerate launch`` runs); without either it is ``True``.
- :func:`wait_for_everyone` is a barrier when there is a group of several processes, else
  nothing: it can only synchronise processes that are connected.
- :func:`wait_for_main` is what the experiments call after a main-only write: a barrier when
  there is a group. The fallback, several processes but no group (code that did not join, or a
  call after ``end_training()``): the other ranks poll until ``ready()`` says the main process's
  change is on disk, and raise :class:`TimeoutError` with a clear message after ``timeout``
  seconds. Every rank must call it at the same point (not under a rank-dependent condition),
  since with a group it is a collective call.

The pattern (every process runs it; single-process code behaves as before)::

    join_process_group()                  # once, before the first read of a results file
    done = read_jsonl(records)            # reads on every process
    wait_for_everyone()                   # ... before the main process writes anything
    result = train(...)                   # every process trains and evaluates
    if is_main_process():
        append_jsonl(records, record)     # the main process writes
    wait_for_main(lambda: ..., what=...)  # the others continue once it is on disk

The files are assumed to be on a file system every process sees (one machine, or a shared disk).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import torch

__all__ = ["is_main_process", "join_process_group", "leave_process_group", "wait_for_everyone", "wait_for_main"]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        return default


def _group_size() -> int | None:
    """The size of the initialised process group, ``None`` when there is none."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return None


def _rank() -> int:
    if _group_size() is not None:
        return torch.distributed.get_rank()
    return _env_int("RANK", 0) if _env_int("WORLD_SIZE", 1) > 1 else 0


def is_main_process() -> bool:
    """Whether this process is the one that writes results (rank 0).

    Rank 0 of the process group when one is initialised; else, when the launcher says there are
    several processes (``WORLD_SIZE`` > 1), whether ``RANK`` is 0; else ``True`` (one process).

    Examples
    --------
    >>> is_main_process()  # a plain Python process
    True
    """
    return _rank() == 0


def join_process_group() -> None:
    """Under a launcher of several processes (``WORLD_SIZE`` > 1), create the process group now.

    It is created the way :func:`~.loop.train` creates it (an ``Accelerator`` from
    :func:`~.loop.make_accelerator`, on the CPU when no GPU is visible), so the later
    ``train`` calls reuse it. Nothing happens for one process or when a group exists. Every
    process of the launch must call it (it is a rendezvous).

    Examples
    --------
    >>> join_process_group()  # one process: nothing to join
    >>> wait_for_everyone()
    """
    if _group_size() is None and _env_int("WORLD_SIZE", 1) > 1:
        from .loop import make_accelerator

        make_accelerator()


def wait_for_everyone() -> None:
    """Block until every process of the group gets here (``torch.distributed.barrier``).

    Does nothing without a process group of several processes, so single-process code may call
    it freely.

    Examples
    --------
    >>> wait_for_everyone()  # one process: returns at once
    """
    size = _group_size()
    if size is not None and size > 1:
        torch.distributed.barrier()


def wait_for_main(
    ready: Callable[[], bool],
    *,
    what: str = "the main process's files",
    timeout: float = 1800.0,
    interval: float = 0.05,
) -> None:
    """After a write done by the main process only: continue once every process can read it.

    Call it on every process at the same point, right after the ``if is_main_process(): ...``
    write. With a process group of several processes this is a barrier (the main process has
    written before reaching it). With several processes but no group (before the first or after
    the last ``train()``: see the module docstring) the other processes poll ``ready()`` every
    ``interval`` seconds. One process, or the main process: returns at once, ``ready`` unused.

    Parameters
    ----------
    ready : callable
        ``ready() -> bool``: whether the main process's change is visible (e.g. a file exists).
    what : str
        What is awaited, for the error message.
    timeout : float
        Seconds a polling process waits before it raises :class:`TimeoutError` (the default
        matches ``torch.distributed``'s 30 minutes).
    interval : float
        Seconds between polls.

    Examples
    --------
    >>> from pathlib import Path
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "done.json"
    >>> if is_main_process():
    ...     _ = path.write_text("{}")
    >>> wait_for_main(path.is_file, what=f"'{path}'")
    >>> path.is_file()
    True
    """
    size = _group_size()
    if size is not None:
        if size > 1:
            torch.distributed.barrier()
        return
    if is_main_process():
        return
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"process {_rank()} of {_env_int('WORLD_SIZE', 1)} waited {timeout:g} s for the main process "
                f"(rank 0) to write {what}; did rank 0 fail, or do the processes not share this file system?"
            )
        time.sleep(interval)


def leave_process_group() -> None:
    """At the end of a script run under a launcher: wait for every process, then tear the
    process group down (a gloo group left alive can abort the interpreter at exit). Nothing
    happens without a group.

    Examples
    --------
    >>> leave_process_group()  # one process: nothing to leave
    """
    if _group_size() is not None:
        wait_for_everyone()
        torch.distributed.destroy_process_group()
