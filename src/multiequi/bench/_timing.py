"""Wall-clock timing of one call, and of the time spent inside the wrapped model."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import torch
from torch import nn

__all__ = ["ModelClock", "summarize_times", "timed_call"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_call(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Run ``fn()`` once; return (seconds, result), synchronising a CUDA device before and after."""
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


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
    >>> from multiequi.bench import ModelClock
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
