"""The parts of a reproduction and the ``multiequi`` command each runs at each preset."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PARTS", "PRESETS", "Part", "select_parts"]

#: The budgets: ``quick`` (every part's quick preset, a smoke test, about an hour on 2 cores),
#: ``medium`` (3 seeds everywhere, sized for one 2-core machine: 2 h 9 min measured at commit
#: 25036e8, docs/reproduce.md), ``paper`` (every part's paper preset: a GPU and days).
PRESETS = ("quick", "medium", "paper")


def _out_option(folder: Path) -> list[str]:
    return ["--out", str(folder)]


@dataclass(frozen=True)
class Part:
    """One experiment (or the benchmarks) of a reproduction.

    Parameters
    ----------
    name : str
        The part's name in ``--only`` and in file names.
    title : str
        Its heading in the report.
    page : str
        The documentation page its numbers belong to.
    reports : tuple of str
        Files in the part's folder whose text the report includes, in order.
    options : callable
        ``options(preset)``: the ``multiequi`` arguments of the part at that preset (without the
        output folder and the thread count).
    folder_options : callable
        ``folder_options(folder)``: the arguments that send every output into ``folder``
        (default ``--out folder``).
    """

    name: str
    title: str
    page: str
    reports: tuple[str, ...]
    options: Callable[[str], list[str]]
    folder_options: Callable[[Path], list[str]] = _out_option

    def command(self, preset: str, folder: str | Path, threads: int | None = None, progress: bool = True) -> list[str]:
        """The ``multiequi`` arguments that run this part at ``preset`` into ``folder`` (with
        ``--threads`` when given, ``--no-progress`` unless ``progress``).

        Examples
        --------
        >>> PARTS["zeroshot"].command("quick", "results/quick/zeroshot", threads=2, progress=False)
        ['zeroshot', '--preset', 'quick', '--out', 'results/quick/zeroshot', '--threads', '2', '--no-progress']
        """
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
        argv = self.options(preset) + self.folder_options(Path(folder))
        if threads is not None:
            argv += ["--threads", str(int(threads))]
        return argv if progress else [*argv, "--no-progress"]


def _scan(preset: str) -> list[str]:
    if preset == "medium":  # SCAN-II only, GRU and LSTM, 3 seeds, 2/3 of the quick preset's steps
        return [
            "scan", "--preset", "quick", "--tasks", "scan2", "--cells", "gru,lstm", "--seeds", "0,1,2",
            "--pretrain-steps", "2000", "--finetune-steps", "200",
        ]  # fmt: skip
    return ["scan", "--preset", preset]


def _multi_image(preset: str) -> list[str]:
    if preset == "medium":  # K = 2, 3, 4 and 3 seeds; the quick preset's 94 steps, at batch 32; 1000 test tuples
        return [
            "multi-image", "--preset", "quick", "--k", "2", "3", "4", "--seeds", "0", "1", "2",
            "--train-tuples", "1000", "--batch-size", "32", "--test-tuples", "1000",
        ]  # fmt: skip
    return ["multi-image", "--preset", preset]


def _zeroshot(preset: str) -> list[str]:
    if preset == "medium":  # the zero-shot medium preset with 64 images per seed and 3 timing rounds
        return ["zeroshot", "--preset", "medium", "--images", "64", "--timing-rounds", "3"]
    return ["zeroshot", "--preset", preset]


def _bench(preset: str) -> list[str]:
    if preset == "medium":  # the quick benchmark with image batches 1 and 32 (the batch of the ttach target)
        return ["bench", "--quick", "--batches", "1,32"]
    return ["bench", "--quick"] if preset == "quick" else ["bench"]


PARTS: dict[str, Part] = {
    p.name: p
    for p in (
        Part(
            name="scan",
            title="SCAN-II compositional generalization",
            page="docs/scan.md",
            reports=("scan_report.md",),
            options=_scan,
            folder_options=lambda d: ["--runs", str(d / "runs"), "--results", str(d)],
        ),
        Part(
            name="multi-image",
            title="Multi-image classification",
            page="docs/multi_image.md",
            reports=("table.md", "drop.md"),
            options=_multi_image,
        ),
        Part(
            name="fairness",
            title="Intersectional fairness in text generation",
            page="docs/fairness.md",
            reports=("report.md",),
            options=lambda preset: ["fairness", "--preset", preset],
        ),
        Part(
            name="zeroshot",
            title="Robust zero-shot classification",
            page="docs/zeroshot.md",
            reports=("report.md",),
            options=_zeroshot,
        ),
        Part(
            name="bench",
            title="Benchmarks",
            page="docs/benchmarks.md",
            reports=("report.md",),
            options=_bench,
        ),
    )
}


def select_parts(only: str | Sequence[str] | None, parts: dict[str, Part] | None = None) -> list[Part]:
    """The parts named in ``only`` (a comma-separated string or a list), in reproduction order.

    Examples
    --------
    >>> [p.name for p in select_parts("zeroshot,scan")]
    ['scan', 'zeroshot']
    >>> select_parts("scna")
    Traceback (most recent call last):
    ...
    ValueError: unknown part 'scna' in --only; expected some of scan, multi-image, fairness, zeroshot, bench
    """
    parts = PARTS if parts is None else parts
    if only is None:
        return list(parts.values())
    names = [n.strip() for n in only.split(",")] if isinstance(only, str) else [str(n) for n in only]
    names = [n for n in names if n]
    for n in names:
        if n not in parts:
            raise ValueError(f"unknown part {n!r} in --only; expected some of {', '.join(parts)}")
    if not names:
        raise ValueError(f"--only names no part; expected some of {', '.join(parts)}")
    return [p for p in parts.values() if p.name in names]
