"""Argument types shared by every ``multiequi`` subcommand (one parser for integers with words)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["int_arg"]


def int_arg(minimum: int = 1, words: Mapping[str, Any] | None = None) -> Callable[[str], Any]:
    """An argparse ``type`` accepting integers ``>= minimum`` or one of ``words`` (mapped to values).

    Examples
    --------
    >>> chunk = int_arg(1, {"auto": "auto", "none": None})
    >>> chunk("8"), chunk("auto"), chunk("none")
    (8, 'auto', None)
    """
    words = dict(words or {})
    allowed = f"an integer >= {minimum}" + (f" or {', '.join(repr(w) for w in words)}" if words else "")

    def parse(value: str) -> Any:
        if value in words:
            return words[value]
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {value!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {n}")
        return n

    return parse
