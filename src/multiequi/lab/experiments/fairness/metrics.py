"""Fairness gaps: total-variation distances between demographics' label distributions, with
bootstrap confidence intervals and the gap that sampling noise alone would show.

The gap of a set of demographics is the largest total-variation distance between any two of their
label distributions (regard or sentiment: negative / neutral / positive). An empirical gap is
positive even when the true distributions are equal, and more so with few samples: the *null gap*
(the mean gap after the labels are shuffled across the demographics, keeping each one's sample
count) says how large a gap noise alone makes, so a method's gap can be read against it.

A run with several sampling seeds has one gap per seed and the gap of all seeds' samples pooled;
:func:`with_seed_spread` puts the seeds' gaps, their mean and sample std beside each pooled report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "bootstrap_gap",
    "distribution",
    "fairness_gap",
    "gap_report",
    "null_gap",
    "seed_spread",
    "tv_distance",
    "with_seed_spread",
]


def distribution(labels: Sequence[int] | np.ndarray, n_classes: int = 3) -> np.ndarray:
    """The fraction of each class among ``labels`` (class indices ``0 .. n_classes - 1``).

    Examples
    --------
    >>> distribution([0, 2, 2, 1]).tolist()
    [0.25, 0.25, 0.5]
    """
    a = np.asarray(labels, dtype=np.int64).reshape(-1)
    if a.size == 0:
        raise ValueError("no labels: a distribution needs at least one sample")
    if a.min() < 0 or a.max() >= n_classes:
        raise ValueError(f"labels must lie in 0 .. {n_classes - 1}, got {a.min()} .. {a.max()}")
    return np.bincount(a, minlength=n_classes) / a.size


def tv_distance(p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray) -> float:
    """Total-variation distance ``½ Σ |p - q|`` between two distributions.

    Examples
    --------
    >>> tv_distance([0.5, 0.5, 0.0], [0.0, 0.5, 0.5])
    0.5
    """
    return float(0.5 * np.abs(np.asarray(p, dtype=np.float64) - np.asarray(q, dtype=np.float64)).sum())


def _gaps(dists: np.ndarray) -> np.ndarray:
    """The largest pairwise TV distance along the group axis: ``(..., G, C) -> (...)``."""
    diff = np.abs(dists[..., :, None, :] - dists[..., None, :, :]).sum(-1) * 0.5
    return diff.max(axis=(-1, -2))


def fairness_gap(groups: Mapping[str, Sequence[int]], n_classes: int = 3) -> tuple[float, tuple[str, str]]:
    """The largest total-variation distance between two groups' label distributions, and which two.

    Examples
    --------
    >>> gap, pair = fairness_gap({"a": [0, 0, 2, 2], "b": [2, 2, 2, 2], "c": [0, 2, 2, 2]})
    >>> gap, pair
    (0.5, ('a', 'b'))
    """
    names = list(groups)
    if len(names) < 2:
        raise ValueError(f"a gap needs at least two groups, got {names}")
    dists = np.stack([distribution(groups[n], n_classes) for n in names])
    diff = np.abs(dists[:, None, :] - dists[None, :, :]).sum(-1) * 0.5
    i, j = np.unravel_index(int(np.argmax(diff)), diff.shape)
    a, b = sorted((int(i), int(j)))
    return float(diff[a, b]), (names[a], names[b])


def _counts(samples: np.ndarray, n_classes: int) -> np.ndarray:
    """Class fractions along the last axis: ``(..., n) -> (..., C)``."""
    onehot = samples[..., None] == np.arange(n_classes)
    return onehot.mean(axis=-2)


def bootstrap_gap(
    groups: Mapping[str, Sequence[int]],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    n_classes: int = 3,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of :func:`fairness_gap`: every group's samples are
    redrawn with replacement (each group keeps its size), ``n_boot`` times, seeded.

    Examples
    --------
    >>> lo, hi = bootstrap_gap({"a": [0] * 50 + [2] * 50, "b": [2] * 100}, seed=1)
    >>> round(lo, 2), round(hi, 2)   # the gap is the share of class 0 in "a": 0.5 ± 2 × 0.05
    (0.4, 0.6)
    """
    rng = np.random.default_rng(seed)
    dists = []
    for name in groups:
        a = np.asarray(groups[name], dtype=np.int64)
        if a.size == 0:
            raise ValueError(f"group {name!r} has no samples")
        draws = a[rng.integers(0, a.size, size=(n_boot, a.size))]
        dists.append(_counts(draws, n_classes))
    gaps = _gaps(np.stack(dists, axis=1))
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(gaps, [tail, 100 - tail])
    return float(lo), float(hi)


def _null_gaps(groups: Mapping[str, Sequence[int]], n_perm: int, seed: int, n_classes: int) -> np.ndarray:
    """Gaps of ``n_perm`` random re-dealings of the pooled labels in the groups' sizes."""
    rng = np.random.default_rng(seed)
    sizes = [len(groups[n]) for n in groups]
    pooled = np.concatenate([np.asarray(groups[n], dtype=np.int64) for n in groups])
    shuffled = pooled[np.argsort(rng.random((n_perm, pooled.size)), axis=1)]
    bounds = np.cumsum([0, *sizes])
    parts = [_counts(shuffled[:, bounds[k] : bounds[k + 1]], n_classes) for k in range(len(sizes))]
    return _gaps(np.stack(parts, axis=1))


def null_gap(
    groups: Mapping[str, Sequence[int]], *, n_perm: int = 2000, seed: int = 0, n_classes: int = 3
) -> tuple[float, float]:
    """The gap sampling noise alone makes: the labels of all groups pooled, shuffled and dealt back
    in the groups' sizes, ``n_perm`` times. Returns its mean and 95th percentile (a gap above the
    latter is unlikely under equal distributions: a permutation test at 5%).

    Examples
    --------
    >>> mean, p95 = null_gap({"a": [0, 1, 2] * 10, "b": [0, 1, 2] * 10})
    >>> 0 < mean < p95 < 0.5
    True
    """
    gaps = _null_gaps(groups, n_perm, seed, n_classes)
    return float(gaps.mean()), float(np.percentile(gaps, 95))


def gap_report(
    groups: Mapping[str, Sequence[int]], *, n_boot: int = 2000, seed: int = 0, n_classes: int = 3
) -> dict[str, Any]:
    """Everything the tables show about one set of groups: the gap, the pair, its bootstrap 95%
    interval, the null gap (mean, 95th percentile), the permutation p-value, the sample counts and
    every group's distribution."""
    gap, pair = fairness_gap(groups, n_classes)
    lo, hi = bootstrap_gap(groups, n_boot=n_boot, seed=seed, n_classes=n_classes)
    null = _null_gaps(groups, n_boot, seed + 1, n_classes)
    return {
        "gap": gap,
        "pair": list(pair),
        "ci_low": lo,
        "ci_high": hi,
        "null_mean": float(null.mean()),
        "null_p95": float(np.percentile(null, 95)),
        "p_value": float((1 + (null >= gap - 1e-12).sum()) / (1 + null.size)),
        "n": {name: len(groups[name]) for name in groups},
        "distributions": {name: distribution(groups[name], n_classes).tolist() for name in groups},
    }


def seed_spread(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean of per-seed values and their sample standard deviation (``ddof=1``); the std is
    ``None`` for one seed (a spread needs two seeds; ``None``, not 0.0, so that one seed is never
    read as a spread of zero).

    Examples
    --------
    >>> [round(v, 6) for v in seed_spread([0.2, 0.4, 0.6])]
    [0.4, 0.2]
    >>> seed_spread([0.3])
    (0.3, None)
    """
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no values: a mean over seeds needs at least one seed")
    return float(a.mean()), (float(a.std(ddof=1)) if a.size > 1 else None)


def with_seed_spread(pooled: Mapping[str, Any], per_seed: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The gap reports of ``pooled`` (``{"gender": report, ..., "intersectional": report}`` of all
    seeds' samples pooled), each with the seeds' gaps beside it, in the order of ``per_seed`` (the
    same reports, one mapping per seed):

    - ``seed_gaps``: the gap of each seed;
    - ``seed_mean``, ``seed_std``: their mean and sample std (``ddof=1``; ``None`` for one seed,
      :func:`seed_spread`);
    - ``seed_null_mean``: the mean of the seeds' noise gaps (``null_mean``), the level one seed's
      gap is to be read against (the pooled ``null_mean`` is lower: it has every seed's samples).

    Examples
    --------
    >>> pooled = {"race": {"gap": 0.25, "null_mean": 0.1}}
    >>> seeds = [{"race": {"gap": 0.2, "null_mean": 0.2}}, {"race": {"gap": 0.4, "null_mean": 0.3}}]
    >>> r = with_seed_spread(pooled, seeds)["race"]
    >>> r["seed_gaps"], round(r["seed_mean"], 6), round(r["seed_std"], 4), r["seed_null_mean"]
    ([0.2, 0.4], 0.3, 0.1414, 0.25)
    """
    out: dict[str, Any] = {}
    for key, report in pooled.items():
        reports = [seed[key] for seed in per_seed if key in seed]
        gaps = [float(r["gap"]) for r in reports]
        mean, std = seed_spread(gaps)
        out[key] = {
            **report,
            "seed_gaps": gaps,
            "seed_mean": mean,
            "seed_std": std,
            "seed_null_mean": seed_spread([float(r["null_mean"]) for r in reports])[0],
        }
    return out
