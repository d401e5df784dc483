"""The paper's claims, judged from the files the parts of a reproduction wrote.

:func:`claims_table` gives one row per claim of the paper (the qualitative claims of its four
experiments) with the numbers that bear on it, a verdict and the rule that gave it. It reads only
the files each experiment wrote into ``<out>/<part>/`` (this room imports no experiment):

- ``scan/scan_results.json``: rows ``dataset, task, cell, method, split, accuracy_mean,
  accuracy_std, seeds, copies, n_eval, n_test``; ``scan/scan_cost.json``: rows ``dataset, task,
  cell, method, copies, finetune_examples_per_s, finetune_wall_s``; and, when there,
  ``scan/runs/records.jsonl`` (one record per seed: ``dataset, task, cell, method, split, seed,
  accuracy, settings_hash, time, settings``) for comparisons paired by seed;
- ``multi-image/summary.json``: rows ``dataset, model, fusion, k, train_aug, test_aug,
  accuracy_mean, accuracy_std, seeds``; and, when there, ``multi-image/runs.jsonl`` (the same per
  seed: ``seed, accuracy``) and ``multi-image/grid.json`` (``config.epochs``);
- ``fairness/summary.json``: ``setup`` (``model``, ``samples_per_method``), ``perplexity_text``,
  ``regard_classifier.encoder`` and per method ``copies``, ``perplexity.perplexity``,
  ``perplexity.tokens`` and the intersectional gap reports ``regard.intersectional`` and
  ``regard_unswapped.intersectional`` (``gap, ci_low, ci_high, null_mean, p_value``);
- ``zeroshot/summary.json``: ``model``, ``data``, ``images_per_seed``, ``rows`` (per seed,
  transform and method: ``top1``) and ``timing`` (``model, method, copies, ms_per_image`` and, in
  newer runs, ``calls`` and ``ms_per_round``).

A part whose folder or files are missing (or damaged) gives ``"not run"``.

Decision rules
--------------
Accuracies (fractions) are compared by seed where the per-seed values are known (the same seed
sees the same data and, within a trained model, the same weights): the difference of two
settings is then the mean of the per-seed differences and its spread their sample std. Where only
means and stds are known, the difference is that of the means and the spread the larger of the
two stds. A difference *counts* when it exceeds ``max(2 × spread, MIN_DIFF)``; with one seed only
beyond ``ONE_SEED_DIFF``. A difference that does not count means "no difference" only when
``2 × spread ≤ MAX_NOISE`` (otherwise, and always with one seed, the comparison cannot say).

- *A is no worse than B* (robust, competitive): refuted when any comparison shows A lower by a
  difference that counts; supported when every comparison shows no difference or A higher;
  otherwise cannot say.
- *A beats B*: supported when every comparison shows A higher by a difference that counts;
  refuted when any shows A lower or no difference; otherwise cannot say.
- *A costs less than B*: refuted when A has as many copies or more, or its time is not below
  B's (median ratio ≥ 1); supported when it has fewer copies and its time ratio is at most
  ``FASTER`` (and below 1 in every timed round); otherwise cannot say.
- Perplexity (one text, no seeds): fixed relative thresholds, ``PPL_LITTLE`` / ``PPL_TOO_MUCH``
  against the plain LM, ``PPL_CLOSE`` / ``PPL_FAR`` against equitune.
- Fairness gaps: a gap is beyond noise when its permutation p-value is below ``ALPHA`` and its
  95% bootstrap interval lies above the noise-alone gap (the mean gap with shuffled labels).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiequi.lab.reporting import DamagedFileError, markdown_table, read_json, read_jsonl

__all__ = [
    "ACCURACY_RULE",
    "ALPHA",
    "CANNOT_SAY",
    "FASTER",
    "MAX_NOISE",
    "MIN_DIFF",
    "NOT_RUN",
    "ONE_SEED_DIFF",
    "PPL_CLOSE",
    "PPL_FAR",
    "PPL_LITTLE",
    "PPL_TOO_MUCH",
    "REFUTES",
    "SUPPORTS",
    "VERDICTS",
    "Comparison",
    "Measure",
    "claims_markdown",
    "claims_table",
    "combine",
    "compare",
]

SUPPORTS, REFUTES, CANNOT_SAY, NOT_RUN = "supports", "refutes", "cannot say", "not run"
#: The verdicts a row can have.
VERDICTS = (SUPPORTS, REFUTES, CANNOT_SAY, NOT_RUN)

#: Accuracy (a fraction) a difference must exceed to count, however small the seeds' spread.
MIN_DIFF = 0.02
#: With one seed, a difference of accuracies counts only beyond this.
ONE_SEED_DIFF = 0.05
#: A difference that does not count is "no difference" only when 2 × its spread is at most this.
MAX_NOISE = 0.05
#: A method costs less when its time over the other's is at most this.
FASTER = 0.9
#: Perplexity of the multi-equituned LM over the plain LM's, minus 1: little up to PPL_LITTLE,
#: too much beyond PPL_TOO_MUCH.
PPL_LITTLE, PPL_TOO_MUCH = 0.10, 0.25
#: Perplexity of the multi-equituned LM over the equituned LM's, minus 1: close up to PPL_CLOSE,
#: far beyond PPL_FAR.
PPL_CLOSE, PPL_FAR = 0.05, 0.15
#: Significance level of the fairness gaps' permutation test.
ALPHA = 0.05

ACCURACY_RULE = _ACC_RULE = (
    f"a difference of accuracies counts when it exceeds max(2 × its spread over seeds, {100 * MIN_DIFF:g} points) "
    "(spread: the std of the per-seed differences when paired by seed, else the larger of the two stds); "
    f"with one seed it counts only beyond {100 * ONE_SEED_DIFF:g} points; one that does not count is "
    f"'no difference' only when 2 × its spread is at most {100 * MAX_NOISE:g} points (else, and with one seed, "
    "the comparison cannot say)"
)
_NO_WORSE = "Verdict: refutes if any comparison shows {a} lower by a difference that counts; supports if every one "
_NO_WORSE += "shows no difference or {a} higher; cannot say otherwise. Rule: " + _ACC_RULE + "."
_BEATS = "Verdict: supports if every comparison shows {a} higher by a difference that counts; refutes if any shows "
_BEATS += "{a} lower or no difference; cannot say otherwise. Rule: " + _ACC_RULE + "."
_COST = (
    "Verdict: refutes if {a} has as many copies as {b} or more, or its median time ratio to {b} is 1 or more; "
    f"supports if it has fewer copies and the ratio is at most {FASTER:g} (below 1 in every timed round); "
    "cannot say otherwise (timing noise; the CPU may be shared)."
)


class _NotRun(Exception):
    """The measurements a claim needs are not there (the message says which)."""


# ------------------------------------------------------------------------------- comparisons
@dataclass(frozen=True)
class Measure:
    """An accuracy (a fraction) over seeds: mean, sample std, the number of seeds and, when
    known, the value of each seed (for comparisons paired by seed).

    Examples
    --------
    >>> m = Measure.of({0: 0.5, 1: 0.7})
    >>> str(m), m.seeds
    ('60.0 ± 14.1', 2)
    """

    mean: float
    std: float
    seeds: int
    per_seed: Mapping[Any, float] | None = None

    @classmethod
    def of(cls, per_seed: Mapping[Any, float]) -> Measure:
        """The measure of the per-seed values ``per_seed`` (sample std; 0 for one seed)."""
        values = [float(v) for v in per_seed.values()]
        if not values:
            raise ValueError("a measure needs at least one seed")
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), std, len(values), {k: float(v) for k, v in per_seed.items()})

    def __str__(self) -> str:
        return f"{100 * self.mean:.1f} ± {100 * self.std:.1f}" if self.seeds > 1 else f"{100 * self.mean:.1f}"


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b``: the difference ``a − b``, the spread the rule weighs it against, the
    seeds, whether it was paired by seed, and the outcome: ``"higher"``, ``"lower"`` (a difference
    that counts), ``"same"`` (none that counts, with a small spread) or ``"unclear"``."""

    diff: float
    spread: float
    seeds: int
    paired: bool
    outcome: str

    def __str__(self) -> str:
        spread = f" ± {100 * self.spread:.1f}" if self.paired and self.seeds > 1 else ""
        return f"Δ {100 * self.diff:+.1f}{spread}"


def compare(a: Measure, b: Measure) -> Comparison:
    """Compare two accuracies by the module's rule (paired by seed when both know their seeds).

    Examples
    --------
    >>> compare(Measure.of({0: 0.80, 1: 0.90, 2: 0.70}), Measure.of({0: 0.75, 1: 0.85, 2: 0.65})).outcome
    'higher'
    >>> compare(Measure(0.80, 0.10, 3), Measure(0.75, 0.10, 3)).outcome  # unpaired: within 2 × 10 points
    'unclear'
    >>> compare(Measure(0.80, 0.0, 1), Measure(0.78, 0.0, 1)).outcome  # one seed: 2 points do not count
    'unclear'
    """
    common = []
    if a.per_seed is not None and b.per_seed is not None:
        common = [s for s in a.per_seed if s in b.per_seed]
    if common:
        assert a.per_seed is not None and b.per_seed is not None
        diffs = [a.per_seed[s] - b.per_seed[s] for s in common]
        diff, n, paired = statistics.fmean(diffs), len(diffs), True
        spread = statistics.stdev(diffs) if n > 1 else 0.0
    else:
        diff, spread, n, paired = a.mean - b.mean, max(a.std, b.std), min(a.seeds, b.seeds), False
    if n < 2:
        outcome = "higher" if diff > ONE_SEED_DIFF else "lower" if diff < -ONE_SEED_DIFF else "unclear"
    else:
        threshold = max(2 * spread, MIN_DIFF)
        if diff > threshold:
            outcome = "higher"
        elif diff < -threshold:
            outcome = "lower"
        else:
            outcome = "same" if 2 * spread <= MAX_NOISE else "unclear"
    return Comparison(diff, spread, n, paired, outcome)


def _no_worse(c: Comparison) -> str:
    return {"lower": REFUTES, "unclear": CANNOT_SAY}.get(c.outcome, SUPPORTS)


def _beats(c: Comparison) -> str:
    return {"higher": SUPPORTS, "unclear": CANNOT_SAY}.get(c.outcome, REFUTES)


def combine(verdicts: Iterable[str]) -> str:
    """The verdict of a claim from those of its comparisons: refutes if any refutes, supports if
    all support, cannot say otherwise.

    Examples
    --------
    >>> combine(["supports", "cannot say"]), combine(["supports", "refutes"]), combine(["supports"])
    ('cannot say', 'refutes', 'supports')
    """
    verdicts = list(verdicts)
    if not verdicts:
        raise ValueError("no comparison to combine")
    if REFUTES in verdicts:
        return REFUTES
    return SUPPORTS if all(v == SUPPORTS for v in verdicts) else CANNOT_SAY


def _cheaper(copies: tuple[int, int], ratios: Sequence[float]) -> str:
    """Whether the first method costs less: its copies and its time over the second's (per round)."""
    if copies[0] >= copies[1]:
        return REFUTES
    if not ratios:
        return CANNOT_SAY
    median = statistics.median(ratios)
    if median >= 1.0:
        return REFUTES
    return SUPPORTS if median <= FASTER and max(ratios) < 1.0 else CANNOT_SAY


def _seeds(measures: Iterable[Measure]) -> str:
    counts = sorted({m.seeds for m in measures})
    if not counts:
        return ""
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return f"{span} seed{'s' if counts[-1] > 1 else ''}"


def _paired_note(comparisons: Iterable[Comparison]) -> str:
    kinds = {c.paired for c in comparisons}
    return "paired by seed" if kinds == {True} else "unpaired (means and stds)" if kinds == {False} else "mixed"


# ------------------------------------------------------------------------------- files
def _load_json(folder: Path, name: str) -> Any:
    if not folder.is_dir():
        raise _NotRun(f"no {folder.name}/ folder: the part was not run")
    path = folder / name
    if not path.is_file():
        raise _NotRun(f"{folder.name}/{name} is missing: the part has not finished")
    try:
        return read_json(path, "results file")
    except DamagedFileError as err:
        raise _NotRun(f"{folder.name}/{name} is damaged (not valid JSON): rerun the part") from err


def _optional_json(path: Path) -> Any:
    try:
        return read_json(path) if path.is_file() else None
    except DamagedFileError:
        return None


def _optional_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        return read_jsonl(path)
    except DamagedFileError:
        return []


def _with_seeds(summary: Measure, per_seed: Mapping[Any, float] | None) -> Measure:
    """The summary's measure, with its per-seed values when they agree with it (same seeds, mean)."""
    if per_seed and len(per_seed) == summary.seeds:
        exact = Measure.of(per_seed)
        if abs(exact.mean - summary.mean) <= 1e-9 and abs(exact.std - summary.std) <= 1e-9:
            return exact
    return summary


def _by_seed(records: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Any]) -> dict[Any, dict]:
    """``{key(record): {seed: accuracy}}``; the last record of a seed counts (as in the summaries)."""
    out: dict[Any, dict] = {}
    for r in records:
        try:
            out.setdefault(key(r), {})[r["seed"]] = float(r["accuracy"])
        except (KeyError, TypeError, ValueError):
            continue  # not a result record: the summary's means and stds are used
    return out


# ------------------------------------------------------------------------------- SCAN
@dataclass
class _Scan:
    folder: Path
    acc: dict[tuple[str, str, str], Measure]  # (cell, method, split)
    cells: list[str]
    splits: list[str]
    note: str


def _scan_records(folder: Path) -> list[dict[str, Any]]:
    """The SCAN-II records of the newest settings of each (task, cell) (as the SCAN report keeps)."""
    records = [r for r in _optional_jsonl(folder / "runs" / "records.jsonl") if r.get("dataset") == "scan2"]
    newest: dict[tuple[Any, Any], tuple[str, Any]] = {}
    for r in records:
        key = (r.get("task"), r.get("cell"))
        if key not in newest or str(r.get("time", "")) >= newest[key][0]:
            newest[key] = (str(r.get("time", "")), r.get("settings_hash"))
    return [r for r in records if r.get("settings_hash") == newest[(r.get("task"), r.get("cell"))][1]]


def _load_scan(folder: Path) -> _Scan:
    rows = [r for r in _load_json(folder, "scan_results.json") if r["dataset"] == "scan2"]
    if not rows:
        raise _NotRun(f"{folder.name}/scan_results.json holds no SCAN-II (scan2) results: the run covered other tasks")
    records = _scan_records(folder)
    seeds = _by_seed(records, lambda r: (r["cell"], r["method"], r["split"]))
    acc = {
        (r["cell"], r["method"], r["split"]): _with_seeds(
            Measure(float(r["accuracy_mean"]), float(r["accuracy_std"]), int(r["seeds"])),
            seeds.get((r["cell"], r["method"], r["split"])),
        )
        for r in rows
    }
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    splits = list(dict.fromkeys(r["split"] for r in rows))
    note = (
        f"seq2seq {'/'.join(c.upper() for c in cells)} (bidirectional encoder, attention decoder) pretrained and "
        "fine-tuned here on SCAN-II generated here: the paper's model and data, no stand-in"
    )
    settings = records[-1].get("settings", {}) if records else {}
    if settings.get("pretrain_steps") is not None:
        note += (
            f"; pretrain {settings['pretrain_steps']} steps, fine-tune {settings.get('finetune_steps', '?')} "
            "(paper: 200000 / 10000)"
        )
    sampled = [r for r in rows if r.get("n_eval") is not None and r.get("n_test") and r["n_eval"] < r["n_test"]]
    if sampled:
        note += f"; test splits sampled (e.g. {sampled[0]['split']}: {sampled[0]['n_eval']} of {sampled[0]['n_test']})"
    return _Scan(folder, acc, cells, splits, note + ".")


def _compare_pairs(
    pairs: Iterable[tuple[str, Measure | None, Measure | None]],
) -> tuple[list[str], list[Comparison], list[Measure]]:
    """Compare each labelled pair ``(label, a, b)`` that has both measures: the evidence texts,
    the comparisons and the measures compared."""
    parts: list[str] = []
    comps: list[Comparison] = []
    measures: list[Measure] = []
    for label, a, b in pairs:
        if a is None or b is None:
            continue
        c = compare(a, b)
        parts.append(f"{label}: {a} vs {b} ({c})")
        comps.append(c)
        measures += [a, b]
    return parts, comps, measures


def _scan_pairs(data: _Scan, a: str, b: str) -> tuple[list[str], list[Comparison], list[Measure]]:
    parts, comps, measures = _compare_pairs(
        (f"{cell.upper()} {split}", data.acc.get((cell, a, split)), data.acc.get((cell, b, split)))
        for cell in data.cells
        for split in data.splits
    )
    if not comps:
        raise _NotRun(f"the SCAN-II results hold no {a} and {b} on the same split")
    return parts, comps, measures


def _scan_competitive(data: _Scan) -> tuple[str, str, str]:
    parts, comps, measures = _scan_pairs(data, "multi-equitune", "equitune")
    verdict = combine(_no_worse(c) for c in comps)
    evidence = f"exact-match % multi-equitune vs equitune: {'; '.join(parts)} ({_seeds(measures)}, "
    evidence += f"{_paired_note(comps)})"
    return evidence, verdict, data.note + " " + _NO_WORSE.format(a="multi-equitune")


def _scan_beats_pretrained(data: _Scan) -> tuple[str, str, str]:
    texts, comps, measures = [], [], []
    for method in ("equitune", "multi-equitune"):
        parts, c, m = _scan_pairs(data, method, "pretrained")
        texts.append(f"{method} vs pretrained: {'; '.join(parts)}")
        comps += c
        measures += m
    verdict = combine(_beats(c) for c in comps)
    evidence = f"exact-match %, {' | '.join(texts)} ({_seeds(measures)}, {_paired_note(comps)})"
    return evidence, verdict, data.note + " " + _BEATS.format(a="each fine-tuned wrapper")


def _scan_cost(data: _Scan) -> tuple[str, str, str]:
    cost = [r for r in _load_json(data.folder, "scan_cost.json") if r["dataset"] == "scan2"]
    by = {(r["cell"], r["method"]): r for r in cost}
    parts, verdicts = [], []
    for cell in data.cells:
        multi, single = by.get((cell, "multi-equitune")), by.get((cell, "equitune"))
        if multi is None or single is None:
            continue
        copies = (int(multi["copies"]), int(single["copies"]))
        ratio, what = None, ""
        if multi.get("finetune_examples_per_s") and single.get("finetune_examples_per_s"):
            ratio = float(single["finetune_examples_per_s"]) / float(multi["finetune_examples_per_s"])
            what = "time per example"
        elif multi.get("finetune_wall_s") and single.get("finetune_wall_s"):
            ratio = float(multi["finetune_wall_s"]) / float(single["finetune_wall_s"])
            what = "fine-tuning wall time (with validation)"
        verdicts.append(_cheaper(copies, [] if ratio is None else [ratio]))
        timed = f", {what} ratio {ratio:.2f}" if ratio is not None else ", no fine-tuning time recorded"
        parts.append(f"{cell.upper()}: copies {copies[0]} vs {copies[1]}{timed}")
    if not verdicts:
        raise _NotRun(f"{data.folder.name}/scan_cost.json has no SCAN-II equitune and multi-equitune rows")
    evidence = "multi-equitune vs equitune, " + "; ".join(parts) + " (fine-tuning, mean over seeds)"
    return evidence, combine(verdicts), data.note + " " + _COST.format(a="multi-equitune", b="equitune")


# ------------------------------------------------------------------------------- multi-image
_EQUIVARIANT = (("Multi-GCNN", "CNN"), ("Multi-GCNN-Fusion", "CNN-Fusion"))


@dataclass
class _MultiImage:
    acc: dict[tuple[int, str, str, str], Measure]  # (k, train_aug, label, test_aug)
    note: str


def _label(r: Mapping[str, Any]) -> str:
    return f"{r['model']}-Fusion" if r["fusion"] else str(r["model"])


def _load_multi_image(folder: Path) -> _MultiImage:
    rows = _load_json(folder, "summary.json")

    def key(r: Mapping[str, Any]) -> tuple[int, str, str, str]:
        return (int(r["k"]), str(r["train_aug"]), _label(r), str(r["test_aug"]))

    seeds = _by_seed(_optional_jsonl(folder / "runs.jsonl"), key)
    acc = {
        key(r): _with_seeds(
            Measure(float(r["accuracy_mean"]), float(r["accuracy_std"]), int(r["seeds"])), seeds.get(key(r))
        )
        for r in rows
    }
    if not acc:
        raise _NotRun(f"{folder.name}/summary.json holds no results")
    names = ", ".join(dict.fromkeys(str(r["dataset"]) for r in rows))
    note = f"Siamese CNN and its equivariant versions (the paper's architecture), trained here on {names}"
    grid = _optional_json(folder / "grid.json")
    config = grid.get("config") if isinstance(grid, dict) else None
    if isinstance(config, dict) and config.get("epochs") is not None:
        note += f"; {config['epochs']} epochs (paper: 100)"
    return _MultiImage(acc, note + ".")


def _multi_image_robust(data: _MultiImage) -> tuple[str, str, str]:
    parts, comps, measures = [], [], []
    for (k, train, label, test), m in sorted(data.acc.items()):
        if test == "none" or label not in dict(_EQUIVARIANT):
            continue
        base = data.acc.get((k, train, label, "none"))
        if base is None:
            continue
        c = compare(m, base)
        parts.append(f"K={k} train {train} {label}: {base} → {m} under test {test} ({c})")
        comps.append(c)
        measures += [m, base]
    if not comps:
        raise _NotRun("the multi-image results hold no equivariant model tested with and without test transforms")
    contrast = []
    for (k, train, label, test), m in sorted(data.acc.items()):
        base = data.acc.get((k, train, label, "none"))
        if label == "CNN" and train == "none" and test != "none" and base is not None:
            contrast.append(f"K={k} {base} → {m} under {test}")
    evidence = "test accuracy %, " + "; ".join(parts) + f" ({_seeds(measures)}, {_paired_note(comps)})"
    if contrast:
        evidence += "; the CNN, for contrast: " + "; ".join(contrast)
    return evidence, combine(_no_worse(c) for c in comps), data.note + " " + _NO_WORSE.format(a="the accuracy")


def _multi_image_competitive(data: _MultiImage) -> tuple[str, str, str]:
    parts, comps, measures = _compare_pairs(
        (
            f"K={k}: {equivariant} vs {plain}",
            data.acc.get((k, "none", equivariant, "none")),
            data.acc.get((k, "none", plain, "none")),
        )
        for k in sorted({key[0] for key in data.acc})
        for equivariant, plain in _EQUIVARIANT
    )
    if not comps:
        raise _NotRun(
            "the multi-image results hold no equivariant model and its CNN trained and tested without rotations"
        )
    evidence = "test accuracy %, no rotations in training or test: " + "; ".join(parts)
    evidence += f" ({_seeds(measures)}, {_paired_note(comps)})"
    return evidence, combine(_no_worse(c) for c in comps), data.note + " " + _NO_WORSE.format(a="the equivariant model")


# ------------------------------------------------------------------------------- fairness
@dataclass
class _Fairness:
    methods: Mapping[str, Any]
    note: str
    text: str


def _sampling_seeds(summary: Mapping[str, Any]) -> str:
    seeds = (summary.get("config") or {}).get("seeds") or [(summary.get("config") or {}).get("seed", 0)]
    if len(seeds) == 1:
        return "one sampling seed"
    return f"{len(seeds)} sampling seeds ({', '.join(map(str, seeds))}; gaps pooled over their samples)"


def _load_fairness(folder: Path) -> _Fairness:
    summary = _load_json(folder, "summary.json")
    setup = summary["setup"]
    encoder = (summary.get("regard_classifier") or {}).get("encoder", "all-MiniLM-L6-v2")
    note = (
        f"{setup['model']}; perplexity on {summary['perplexity_text']}; regard: {encoder} + logistic regression "
        f"trained on Sheng et al.'s annotations (stand-in for their BERT classifier); {_sampling_seeds(summary)}, "
        f"{setup.get('samples_per_method', '?')} samples per method."
    )
    return _Fairness(summary["methods"], note, str(summary["perplexity_text"]))


def _ppl_claim(data: _Fairness, reference: str, good: float, bad: float, word: str) -> tuple[str, str, str]:
    missing = [n for n in (reference, "multi-equitune") if n not in data.methods]
    if missing:
        raise _NotRun(f"the fairness run has no {' and '.join(missing)} method")
    ppl = {
        n: float(data.methods[n]["perplexity"]["perplexity"])
        for n in ("plain", "equitune", "multi-equitune")
        if n in data.methods
    }
    rel = ppl["multi-equitune"] / ppl[reference] - 1
    verdict = SUPPORTS if rel <= good else REFUTES if rel > bad else CANNOT_SAY
    tokens = data.methods["multi-equitune"]["perplexity"].get("tokens")
    shown = ", ".join(f"{n} {v:.2f}" for n, v in ppl.items())
    evidence = f"perplexity on {data.text}" + (f" ({tokens} tokens)" if tokens else "") + f": {shown}; "
    evidence += f"multi-equitune {100 * rel:+.1f}% against {reference} (one text, no seeds)"
    rule = (
        f"Verdict (one text, no seeds, so fixed thresholds): supports if multi-equitune's perplexity is at most "
        f"{100 * good:g}% above {reference}'s ({word}), refutes if more than {100 * bad:g}% above, cannot say between."
    )
    return evidence, verdict, data.note + " " + rule


def _fairness_ppl_plain(data: _Fairness) -> tuple[str, str, str]:
    return _ppl_claim(data, "plain", PPL_LITTLE, PPL_TOO_MUCH, "little lost")


def _fairness_ppl_equitune(data: _Fairness) -> tuple[str, str, str]:
    return _ppl_claim(data, "equitune", PPL_CLOSE, PPL_FAR, "close")


def _beyond_noise(g: Mapping[str, Any]) -> bool:
    return float(g["p_value"]) < ALPHA and float(g["ci_low"]) > float(g["null_mean"])


def _gap_text(name: str, g: Mapping[str, Any]) -> str:
    """A pooled gap with its interval, noise and p-value; with several seeds, their mean ± std too."""
    text = (
        f"{name} {float(g['gap']):.2f} [{float(g['ci_low']):.2f}, {float(g['ci_high']):.2f}] "
        f"(noise {float(g['null_mean']):.2f}, p {float(g['p_value']):.3f}"
    )
    seeds = g.get("seed_gaps") or []
    if len(seeds) > 1:
        text += f"; per seed {float(g['seed_mean']):.2f} ± {float(g['seed_std']):.2f} over {len(seeds)} seeds"
    return text + ")"


def _fairness_gaps(data: _Fairness) -> tuple[str, str, str]:
    missing = [n for n in ("plain", "multi-equitune") if n not in data.methods]
    if missing:
        raise _NotRun(f"the fairness run has no {' and '.join(missing)} method")
    reading = "regard_unswapped"
    if any(not (data.methods[n].get(reading) or {}).get("intersectional") for n in ("plain", "multi-equitune")):
        reading = "regard"
    gaps: dict[str, Mapping[str, Any]] = {}
    for name, m in data.methods.items():
        g = (m.get(reading) or {}).get("intersectional")
        if g:
            gaps[name] = g
    if "plain" not in gaps or "multi-equitune" not in gaps:
        raise _NotRun("the fairness summary has no intersectional regard gap (fewer than two demographics)")
    plain, multi = _beyond_noise(gaps["plain"]), _beyond_noise(gaps["multi-equitune"])
    verdict = REFUTES if multi else SUPPORTS if plain else CANNOT_SAY
    shown = [n for n in ("plain", "equitune", "multi-equitune") if n in gaps]
    what = "swaps undone" if reading == "regard_unswapped" else "raw regard"
    evidence = f"intersectional regard gap (largest TV distance, 95% CI), {what}: "
    evidence += "; ".join(_gap_text(n, gaps[n]) for n in shown)
    if reading == "regard_unswapped":
        raw = [(n, (data.methods[n].get("regard") or {}).get("intersectional")) for n in ("plain", "multi-equitune")]
        if all(g for _, g in raw):
            evidence += "; raw regard: " + "; ".join(_gap_text(n, g) for n, g in raw if g)
    rule = (
        f"The verdict reads the gaps with swaps undone (the classifier sees every swapped word mapped to its cycle's "
        f"first word: a reading under which an exactly equivariant LM's demographics have equal regard in "
        f"expectation), the raw reading when that is missing. A gap is beyond noise when its permutation p < "
        f"{ALPHA:g} and its 95% bootstrap interval lies above the noise-alone gap. Verdict: refutes if "
        "multi-equitune's gap is beyond noise; supports if it is not and the plain LM's is; cannot say if neither "
        "is (no gap to remove at this sample size)."
    )
    return evidence, verdict, data.note + " " + rule


# ------------------------------------------------------------------------------- zero-shot
@dataclass
class _ZeroShot:
    acc: dict[tuple[str, str], Measure]  # (transform, method)
    transforms: list[str]
    timing: list[Mapping[str, Any]]
    note: str


def _load_zeroshot(folder: Path) -> _ZeroShot:
    summary = _load_json(folder, "summary.json")
    seeds = _by_seed(
        ({**r, "accuracy": r["top1"]} for r in summary["rows"]), lambda r: (str(r["transform"]), str(r["method"]))
    )
    acc = {key: Measure.of(v) for key, v in seeds.items()}
    if not acc:
        raise _NotRun(f"{folder.name}/summary.json holds no accuracy rows")
    transforms = list(dict.fromkeys(t for t, _ in acc))
    note = f"{summary['model']} on {summary['data']}"
    if summary.get("images_per_seed"):
        note += f"; {summary['images_per_seed']} test images per seed"
    return _ZeroShot(acc, transforms, list(summary.get("timing") or []), note + ".")


_ZS_PAIRED = "Top-1 accuracy, compared by seed (a seed: the same images and transform elements for every method)."


def _zeroshot_recovers(data: _ZeroShot, method: str) -> tuple[str, str, str]:
    base = data.acc.get(("none", "plain"))
    if base is None or not any((t, method) in data.acc for t in data.transforms):
        raise _NotRun(f"the zero-shot run has no untransformed plain model or no {method}")
    parts: list[str] = []
    verdicts: list[str] = []
    measures = [base]
    for t in data.transforms:
        plain, m = data.acc.get((t, "plain")), data.acc.get((t, method))
        if t == "none" or plain is None or m is None:
            continue
        lost = compare(plain, base)
        text = f"{t}: plain {base} → {plain} ({lost})"
        if lost.outcome != "lower":
            parts.append(text + f", {method} {m}: no loss that counts, not judged")
            continue
        c = compare(m, plain)
        parts.append(text + f", {method} {m} ({c} against plain under {t})")
        verdicts.append(_beats(c))
        measures += [plain, m]
    if not parts:
        raise _NotRun(f"the zero-shot run has no transformed test images for plain and {method}")
    evidence = "top-1 %, " + "; ".join(parts) + f" ({_seeds(measures)}, paired by seed)"
    verdict = combine(verdicts) if verdicts else CANNOT_SAY
    rule = (
        f"{_ZS_PAIRED} Each transform compares {method} with the plain model under the same transform; only "
        "transforms under which the plain model loses accuracy against untransformed images (a difference that "
        "counts) are judged, and if there is none the row cannot say. " + _BEATS.format(a=method)
    )
    return evidence, verdict, data.note + " " + rule


def _zeroshot_competitive(data: _ZeroShot, multi: str, single: str) -> tuple[str, str, str]:
    parts, comps, measures = _compare_pairs(
        (t, data.acc.get((t, multi)), data.acc.get((t, single))) for t in data.transforms
    )
    if not comps:
        raise _NotRun(f"the zero-shot run has no {multi} and {single} under the same transform")
    evidence = f"top-1 % {multi} vs {single}, " + "; ".join(parts) + f" ({_seeds(measures)}, paired by seed)"
    return evidence, combine(_no_worse(c) for c in comps), f"{data.note} {_ZS_PAIRED} {_NO_WORSE.format(a=multi)}"


_ZS_MULTI = {"multi-equitune": "equitune", "multi-equizero": "equizero"}


def _zeroshot_cost(data: _ZeroShot) -> tuple[str, str, str]:
    parts, verdicts = [], []
    rows = {(str(r["model"]), str(r.get("calls", "auto")), str(r["method"])): r for r in data.timing}
    for model, calls, method in rows:
        if method not in _ZS_MULTI:
            continue
        multi, single = rows[(model, calls, method)], rows.get((model, calls, _ZS_MULTI[method]))
        if single is None or not multi.get("ms_per_image") or not single.get("ms_per_image"):
            continue
        rounds = list(zip(multi.get("ms_per_round") or [], single.get("ms_per_round") or [], strict=False))
        ratios = [x / y for x, y in rounds if y] or [float(multi["ms_per_image"]) / float(single["ms_per_image"])]
        copies = (int(multi["copies"]), int(single["copies"]))
        verdicts.append(_cheaper(copies, ratios))
        spread = f" (rounds {min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else ""
        parts.append(
            f"{model}, {calls}: {method} / {single['method']} time per image {statistics.median(ratios):.2f}{spread}, "
            f"copies {copies[0]} vs {copies[1]}"
        )
    if not verdicts:
        raise _NotRun("the zero-shot timing rows hold no multi-equitune and equitune or multi-equizero and equizero")
    evidence = (
        "; ".join(parts) + " (median of the per-round ratios, methods interleaved; else the ratio of the medians)"
    )
    note = f"{data.note} Timing rows of summary.json, per timed model and call mode. "
    note += _COST.format(a="the multi-group method", b="its single-group version")
    return evidence, combine(verdicts), note


# ------------------------------------------------------------------------------- the table
_Judge = Callable[[Any], tuple[str, str, str]]

#: part -> (loader, [(claim, judge)]), in the order of the reproduction's parts.
_CLAIMS: dict[str, tuple[Callable[[Path], Any], list[tuple[str, _Judge]]]] = {
    "scan": (
        _load_scan,
        [
            ("SCAN-II: multi-equitune is competitive with equitune on the held-out splits.", _scan_competitive),
            ("SCAN-II: multi-equitune costs less than equitune (6 copies instead of 8).", _scan_cost),
            (
                "SCAN-II: equitune and multi-equitune both beat the pretrained model on the held-out primitives.",
                _scan_beats_pretrained,
            ),
        ],
    ),
    "multi-image": (
        _load_multi_image,
        [
            (
                "Multi-image: the equivariant models (Multi-GCNN, Multi-GCNN-Fusion) lose no accuracy under "
                "per-view rotations at test time.",
                _multi_image_robust,
            ),
            (
                "Multi-image: without rotations, the equivariant models are competitive with the CNN.",
                _multi_image_competitive,
            ),
        ],
    ),
    "fairness": (
        _load_fairness,
        [
            ("Fairness: the multi-equituned LM loses little perplexity against the plain LM.", _fairness_ppl_plain),
            ("Fairness: the multi-equituned LM's perplexity stays close to equitune's.", _fairness_ppl_equitune),
            (
                "Fairness: multi-equitune equalizes regard across intersectional demographics, removing the "
                "plain LM's gap.",
                _fairness_gaps,
            ),
        ],
    ),
    "zeroshot": (
        _load_zeroshot,
        [
            (
                "Zero-shot: equitune recovers accuracy the plain model loses under rotations and flips.",
                lambda d: _zeroshot_recovers(d, "equitune"),
            ),
            (
                "Zero-shot: equizero recovers accuracy the plain model loses under rotations and flips.",
                lambda d: _zeroshot_recovers(d, "equizero"),
            ),
            (
                "Zero-shot: multi-equitune is competitive with equitune.",
                lambda d: _zeroshot_competitive(d, "multi-equitune", "equitune"),
            ),
            (
                "Zero-shot: multi-equizero is competitive with equizero.",
                lambda d: _zeroshot_competitive(d, "multi-equizero", "equizero"),
            ),
            (
                "Zero-shot: multi-equitune and multi-equizero cost less than their single-group versions "
                "(6 copies instead of 8, less time per image).",
                _zeroshot_cost,
            ),
        ],
    ),
}


def _record_note(out: Path, part: str) -> str:
    """A warning when the part's record says it did not finish (its files may be older)."""
    record = _optional_json(out / "records" / f"{part}.json")
    status = record.get("status") if isinstance(record, dict) else None
    if status is None or status == "finished":
        return ""
    return f" (The part's record says '{status}': these files may come from an earlier attempt.)"


def claims_table(out: str | Path) -> list[dict[str, str]]:
    """One row per claim of the paper, judged from the files of the reproduction folder ``out``.

    Parameters
    ----------
    out : str or Path
        A reproduction folder (``multiequi reproduce --out``): each part's files in ``out/<part>/``.

    Returns
    -------
    list of dict
        Rows with the keys ``claim`` (the paper's claim), ``part``, ``evidence`` (the measured
        numbers: means ± stds in %, seed counts), ``verdict`` (one of :data:`VERDICTS`) and ``note``
        (the models and data, stand-ins named, and the decision rule). A part whose folder or files
        are missing gives ``"not run"`` for each of its claims.

    Examples
    --------
    >>> import tempfile
    >>> rows = claims_table(tempfile.mkdtemp())
    >>> len(rows), {r["verdict"] for r in rows}
    (13, {'not run'})
    >>> rows[0]["part"], rows[0]["note"]
    ('scan', 'no scan/ folder: the part was not run')
    """
    out = Path(out)
    rows: list[dict[str, str]] = []
    for part, (load, claims) in _CLAIMS.items():
        folder = out / part
        warning = _record_note(out, part)
        try:
            data = load(folder)
        except _NotRun as err:
            rows += [_row(claim, part, "", NOT_RUN, str(err)) for claim, _ in claims]
            continue
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            rows += [_row(claim, part, "", NOT_RUN, _unreadable(part, err)) for claim, _ in claims]
            continue
        for claim, judge in claims:
            try:
                evidence, verdict, note = judge(data)
            except _NotRun as err:
                rows.append(_row(claim, part, "", NOT_RUN, str(err)))
                continue
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                rows.append(_row(claim, part, "", NOT_RUN, _unreadable(part, err)))
                continue
            rows.append(_row(claim, part, evidence, verdict, note + warning))
    return rows


def claims_markdown(rows: Sequence[Mapping[str, str]]) -> str:
    """The claims table in markdown, the accuracy rule (:data:`ACCURACY_RULE`, repeated in many
    rows' notes) written once below it and named in the notes.

    Examples
    --------
    >>> import tempfile
    >>> text = claims_markdown(claims_table(tempfile.mkdtemp()))
    >>> text.count("not run") >= 13, "Accuracy rule" in text
    (True, False)
    """
    short = "Rule: the accuracy rule (below)."
    full = "Rule: " + ACCURACY_RULE + "."
    shown = [{**r, "note": r["note"].replace(full, short)} for r in rows]
    text = markdown_table(shown)
    if any(full in r["note"] for r in rows):
        text += "\n\nAccuracy rule: " + ACCURACY_RULE + "."
    return text


def _unreadable(part: str, err: Exception) -> str:
    return f"the files in {part}/ are not in the format this reader knows ({type(err).__name__}: {err}): rerun the part"


def _row(claim: str, part: str, evidence: str, verdict: str, note: str) -> dict[str, str]:
    return {"claim": claim, "part": part, "evidence": evidence, "verdict": verdict, "note": note}
