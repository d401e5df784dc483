"""The one timing helper of the lab: wall-clock time of calls, repeats interleaved across the
methods compared, and the time spent inside a module.

Benchmarks, the SCAN throughput table, the demo and the profiler all time through
:func:`timed_call` and :func:`interleaved_times`, so a CUDA device is synchronised the same way
everywhere and a slow period of a shared machine hits every method alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import torch
from torch import nn

__all__ = ["ModelClock", "interleaved_times", "summarize_times", "timed_call"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_call(fn: Callable[[], Any], device: torch.device | str = "cpu") -> tuple[float, Any]:
    """Run ``fn()`` once; return (seconds, result), synchronising a CUDA device before and after.

    Examples
    --------
    >>> seconds, value = timed_call(lambda: sum(range(10)))
    >>> value, seconds >= 0
    (45, True)
    """
    device = torch.device(device)
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def interleaved_times(
    calls: Sequence[Callable[[], Any]],
    repeats: int | Sequence[int],
    device: torch.device | str = "cpu",
    *,
    clocks: Sequence[nn.Module | None] | None = None,
    after_call: Callable[[int], None] | None = None,
) -> tuple[list[list[float]], list[list[float]]]:
    """Time every call ``repeats`` times (one count for all, or one per call), interleaved.

    Round ``r`` runs every call that has repeats left once, in an order rotated by ``r``, so a
    change in the machine's load hits every call alike. Results are dropped as soon as each call
    returns. With ``clocks``, the time spent inside ``clocks[i]``'s forward calls during call
    ``i`` is measured too (:class:`ModelClock`; not on CUDA). ``after_call(i)`` runs after each
    timed call (a progress bar).

    Returns ``(seconds, inside)``: per call, the wall times of its repeats, and the times inside
    its clock (empty lists where there is no clock).

    Examples
    --------
    >>> import torch
    >>> lin = torch.nn.Linear(4, 4)
    >>> x = torch.ones(2, 4)
    >>> wall, inside = interleaved_times([lambda: lin(x), lambda: lin(x).sum()], [3, 2], clocks=[lin, None])
    >>> [len(t) for t in wall], [len(t) for t in inside]
    ([3, 2], [3, 0])
    """
    n = len(calls)
    reps = [int(repeats)] * n if isinstance(repeats, int) else [int(r) for r in repeats]
    if len(reps) != n:
        raise ValueError(f"repeats must be one int or one per call ({n}), got {len(reps)}")
    clock_of = list(clocks) if clocks is not None else [None] * n
    if len(clock_of) != n:
        raise ValueError(f"clocks must list one module (or None) per call ({n}), got {len(clock_of)}")
    seconds: list[list[float]] = [[] for _ in range(n)]
    inside: list[list[float]] = [[] for _ in range(n)]
    order = list(range(n))
    for r in range(max(reps, default=0)):
        k = r % max(n, 1)
        for i in order[k:] + order[:k]:
            if r >= reps[i]:
                continue
            module = clock_of[i]
            if module is None:
                dt, out = timed_call(calls[i], device)
            else:
                with ModelClock(module, device) as clock:
                    dt, out = timed_call(calls[i], device)
                if clock.seconds is not None:
                    inside[i].append(clock.seconds)
            del out
            seconds[i].append(dt)
            if after_call is not None:
                after_call(i)
    return seconds, inside


def summarize_times(seconds: Sequence[float]) -> dict[str, float | None]:
    """Median, min and max of ``seconds`` in milliseconds (``None`` for an empty list).

    Examples
    --------
    >>> summarize_times([0.003, 0.001, 0.002])
    {'median': 2.0, 'min': 1.0, 'max': 3.0}
    """
    if not seconds:
        return {"median": None, "min": None, "max": None}
    ms = [1e3 * s for s in seconds]
    return {"median": statistics.median(ms), "min": min(ms), "max": max(ms)}


class ModelClock:
    """Accumulate the wall time spent inside ``module``'s forward calls (a context manager).

    Forward pre- and post-hooks read ``time.perf_counter``; on CUDA the time would need a
    synchronisation per call, so :attr:`seconds` stays ``None`` there.

    Examples
    --------
    >>> import torch
    >>> from multiequi.lab.reporting import ModelClock
    >>> lin = torch.nn.Linear(2, 2)
    >>> with ModelClock(lin) as clock:
    ...     _ = lin(torch.ones(1, 2))
    >>> clock.seconds >= 0, clock.calls
    (True, 1)
    """

    def __init__(self, module: nn.Module, device: torch.device | str = "cpu") -> None:
        self.module = module
        self.enabled = torch.device(device).type != "cuda"
        self.seconds: float | None = 0.0 if self.enabled else None
        self.calls = 0
        self._stack: list[float] = []
        self._handles: list[Any] = []

    def _pre(self, module: nn.Module, args: tuple) -> None:
        self._stack.append(time.perf_counter())

    def _post(self, module: nn.Module, args: tuple, out: Any) -> None:
        if self._stack:
            dt = time.perf_counter() - self._stack.pop()
            if not self._stack and self.seconds is not None:  # outermost call only
                self.seconds += dt
            self.calls += 1

    def __enter__(self) -> ModelClock:
        if self.enabled:
            self._handles = [
                self.module.register_forward_pre_hook(self._pre),
                self.module.register_forward_hook(self._post),
            ]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
