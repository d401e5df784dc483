"""Peak memory of one call: CUDA allocator statistics, or the resident-set high-water mark on Linux.

``tracemalloc`` does not see torch's allocations, so on CPUs the benchmark reads the kernel's own
count of the process's resident memory:

1. ``malloc_trim(0)`` hands memory that glibc keeps after earlier frees back to the system;
2. writing ``5`` to ``/proc/self/clear_refs`` resets the peak resident-set size (``VmHWM``) to the
   current one (Linux >= 4.0);
3. after the call, ``VmHWM`` minus the resident size before it is the call's peak memory.

glibc grows its ``mmap`` threshold dynamically: once a large block has been freed, blocks of
that size come from the heap and their pages stay resident after ``free``, so a later call that
reuses them adds nothing to the high-water mark. :func:`exact_cpu_accounting` fixes the threshold
at 64 KiB: every tensor larger than that is ``mmap``-ed and returned to the system when freed, so
the high-water mark follows the bytes torch has alive. This slows allocation (a page fault per
fresh page), so the benchmark turns it on only for a separate memory pass, after all timings.
A 100 MB tensor allocated and filled inside the window reads as 100 MB (tested).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from types import TracebackType

import torch

__all__ = ["PeakMemory", "cpu_peak_supported", "exact_cpu_accounting"]

_CLEAR_REFS = "/proc/self/clear_refs"
_STATUS = "/proc/self/status"
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_EXACT = False


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    return lib if hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt") else None


def _status_kb(key: str) -> int:
    with open(_STATUS, encoding="ascii") as handle:
        for line in handle:
            if line.startswith(key):
                return int(line.split()[1])
    raise OSError(f"{key} not found in {_STATUS}")


def _reset_high_water_mark() -> None:
    with open(_CLEAR_REFS, "w", encoding="ascii") as handle:
        handle.write("5")


def cpu_peak_supported() -> bool:
    """Whether this process can reset and read its resident-set high-water mark (Linux, glibc)."""
    try:
        _reset_high_water_mark()
        _status_kb("VmHWM:")
    except OSError:
        return False
    return _libc() is not None


def exact_cpu_accounting() -> bool:
    """Fix glibc's ``mmap`` threshold at 64 KiB for the rest of this process (see the module notes).

    Returns ``True`` when it took effect. It cannot be undone, and it slows allocation: call it
    after every timed measurement.
    """
    global _EXACT
    lib = _libc()
    if lib is None:
        return False
    ok = bool(lib.mallopt(_M_MMAP_THRESHOLD, 1 << 16)) and bool(lib.mallopt(_M_TRIM_THRESHOLD, 1 << 16))
    _EXACT = _EXACT or ok
    return ok


class PeakMemory:
    """Measure the peak memory of the code inside a ``with`` block, in MiB (``.mb``).

    On CUDA: ``torch.cuda.max_memory_allocated`` minus the memory allocated on entry (tensors
    only, the caching allocator's reserve excluded). On a Linux CPU: the resident-set high-water
    mark minus the resident size on entry (see the module notes). Elsewhere ``.mb`` is ``None``
    and ``.method`` says why.

    Examples
    --------
    >>> import torch
    >>> from multiequi.lab.bench import PeakMemory
    >>> with PeakMemory("cpu") as peak:
    ...     x = torch.ones(2**22)      # 16 MiB, filled
    >>> peak.mb is None or peak.mb > 10
    True
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.mb: float | None = None
        self.method = "none"
        self._base = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self.method = "cuda max_memory_allocated"
        elif self.device.type == "cpu" and os.path.exists(_CLEAR_REFS):
            lib = _libc()
            try:
                if lib is not None:
                    lib.malloc_trim(0)
                _reset_high_water_mark()
                self._base = _status_kb("VmRSS:")
                self.method = "rss high-water mark" + (" (mmap threshold 64 KiB)" if _EXACT else "")
            except OSError as err:
                self.method = f"unavailable: {err}"
        else:
            self.method = f"unavailable on {self.device.type}"
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            return
        if self.method.startswith("cuda"):
            torch.cuda.synchronize(self.device)
            self.mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        elif self.method.startswith("rss"):
            self.mb = max(0.0, (_status_kb("VmHWM:") - self._base) / 1024)
