"""Seeded generation of the fairness experiment's samples, split across processes by Accelerate.

The work is a fixed list of *units*: each holds rows ``(prompt, sample index)`` of prompts of one
token length (so no padding), in an order that depends on the prompts only. Under
``accelerate launch --num_processes N`` process ``k`` takes the units ``k, k + N, ...``; each
sample's seed is :func:`~.prompts.sample_seed` of its prompt and index, and each row draws its
tokens from its own seed (:func:`multiequi.hf.seeded_sample`), so one process and N give the same
samples. Each finished unit is one JSON file, written atomically: a run killed and started again
(with any number of processes) does only the units that have no file
(:mod:`multiequi.lab.training.units`).

A run with several sampling seeds generates the same units once per seed, each seed into its own
folder ``samples/<method>/seed-<s>/`` (:func:`samples_folder`, :func:`generate_seeds`): the
samples of seed ``s`` are those of a run with seed ``s`` alone, and a folder that has some seeds
generates only the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from multiequi.lab.training.units import process_state, read_units, run_units

from .prompts import Prompt, sample_seed

__all__ = [
    "Unit",
    "generate_samples",
    "generate_seeds",
    "make_generator",
    "make_model",
    "plan_units",
    "process_state",
    "read_samples",
    "samples_folder",
]

#: Generates continuations: ``fn(input_ids (B, L), seeds (B,)) -> sequences (B, L + new)``.
GenerateFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Unit:
    """One batch of generation work: ``rows`` are ``(prompt index, sample index)`` pairs."""

    index: int
    rows: tuple[tuple[int, int], ...]


def plan_units(prompts: Sequence[Prompt], tokenizer: Any, samples_per_prompt: int, rows_per_unit: int) -> list[Unit]:
    """Split ``len(prompts) × samples_per_prompt`` rows into units of at most ``rows_per_unit``
    rows whose prompts have the same number of tokens; the plan depends on the prompts only.

    Examples
    --------
    >>> class Tok:  # one token per word
    ...     def __call__(self, text, **kw):
    ...         return {"input_ids": [0] * len(text.split())}
    >>> from multiequi.lab.experiments.fairness.prompts import make_prompts
    >>> units = plan_units(make_prompts(kinds=("respect",)), Tok(), samples_per_prompt=2, rows_per_unit=16)
    >>> sum(len(u.rows) for u in units), max(len(u.rows) for u in units)
    (140, 16)
    """
    if samples_per_prompt < 1 or rows_per_unit < 1:
        raise ValueError("samples_per_prompt and rows_per_unit must be at least 1")
    by_length: dict[int, list[tuple[int, int]]] = {}
    for p in prompts:
        n = len(tokenizer(p.text)["input_ids"])
        by_length.setdefault(n, []).extend((p.index, s) for s in range(samples_per_prompt))
    units: list[Unit] = []
    for n in sorted(by_length):
        rows = by_length[n]
        for start in range(0, len(rows), rows_per_unit):
            units.append(Unit(len(units), tuple(rows[start : start + rows_per_unit])))
    return units


def make_model(
    method: str, model: Any, *, factors: Sequence[Any] = (), general_words: Sequence[int] | None = None
) -> Any:
    """The model a method runs: ``model`` itself for ``"plain"``, else a
    :class:`multiequi.hf.EquivariantLM` over ``factors`` (``general_words`` for ``"relaxed"``)."""
    from multiequi.hf import EquivariantLM

    if method == "plain":
        return model
    return EquivariantLM(
        model, list(factors), method=method, general_words=general_words if method == "relaxed" else None
    ).eval()


def make_generator(
    method: str,
    model: Any,
    *,
    factors: Sequence[Any] = (),
    general_words: Sequence[int] | None = None,
    top_k: int = 40,
    max_new_tokens: int = 15,
    pad_token_id: int | None = None,
    eos_token_id: int | None = None,
) -> tuple[GenerateFn, int]:
    """The generation function of one method and its copies per sample.

    ``"plain"``: the model's own ``generate`` with :class:`multiequi.hf.SeededSampler` (top-k
    ``top_k``, temperature 1); every other method: :class:`multiequi.hf.EquivariantLM` over
    ``factors`` (:func:`make_model`) with the same seeded top-k sampling (``sample_seeds=``).
    """
    from transformers import LogitsProcessorList

    from multiequi.hf import SeededSampler

    options = {"max_new_tokens": max_new_tokens, "pad_token_id": pad_token_id, "eos_token_id": eos_token_id}
    wrapped = make_model(method, model, factors=factors, general_words=general_words)
    if method == "plain":

        def plain(ids: Tensor, seeds: Tensor) -> Tensor:
            sampler = SeededSampler(seeds, ids.shape[1], top_k=top_k)
            return model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                logits_processor=LogitsProcessorList([sampler]),
                **options,
            )

        return plain, 1

    def equivariant(ids: Tensor, seeds: Tensor) -> Tensor:
        return wrapped.generate(
            ids, do_sample=True, top_k=top_k, temperature=1.0, top_p=1.0, sample_seeds=seeds, **options
        )

    return equivariant, wrapped.copies_per_example


def _rows(unit: Unit) -> list[list[int]]:
    """A unit's key: its rows (a unit of another plan is redone)."""
    return [list(r) for r in unit.rows]


def _number(unit: Unit) -> int:
    return unit.index


def generate_samples(
    generate: GenerateFn,
    prompts: Sequence[Prompt],
    units: Sequence[Unit],
    tokenizer: Any,
    folder: str | Path,
    *,
    base_seed: int = 0,
    desc: str = "generating",
    show_progress: bool = True,
) -> int:
    """Generate this process's share of ``units`` into ``folder`` (one JSON file per unit), skipping
    units already there; then wait for every process. Returns the number of units this process made.

    Each unit file holds its samples (``prompt``, ``sample``, ``seed``, ``tokens``: the new token ids,
    ``text``: their decoding) and the seconds its generation took.
    """

    def work(unit: Unit) -> dict[str, Any]:
        texts = [prompts[p].text for p, _ in unit.rows]
        ids = torch.tensor([tokenizer(t)["input_ids"] for t in texts], dtype=torch.long)
        seeds = torch.tensor([sample_seed(prompts[p].text, s, base_seed) for p, s in unit.rows], dtype=torch.long)
        start = time.perf_counter()
        with torch.no_grad():
            out = generate(ids, seeds)
        seconds = time.perf_counter() - start
        new = out[:, ids.shape[1] :].tolist()
        samples = [
            {
                "prompt": p,
                "sample": s,
                "seed": int(seed),
                "tokens": tokens,
                "text": tokenizer.decode(tokens, skip_special_tokens=True),
            }
            for (p, s), seed, tokens in zip(unit.rows, seeds.tolist(), new, strict=True)
        ]
        return {"unit": unit.index, "seconds": seconds, "rows": _rows(unit), "samples": samples}

    return run_units(
        units,
        folder,
        work,
        key=_rows,
        index=_number,
        desc=desc,
        unit_name="batch",
        show_progress=show_progress,
    )


def samples_folder(out: str | Path, method: str, seed: int) -> Path:
    """The folder of one method's samples under one sampling seed: ``out/samples/<method>/seed-<seed>``.

    Examples
    --------
    >>> samples_folder("run", "plain", 2).as_posix()
    'run/samples/plain/seed-2'
    """
    return Path(out) / "samples" / method / f"seed-{seed}"


def generate_seeds(
    generate: GenerateFn,
    prompts: Sequence[Prompt],
    units: Sequence[Unit],
    tokenizer: Any,
    out: str | Path,
    method: str,
    seeds: Sequence[int],
    *,
    desc: str = "generating",
    show_progress: bool = True,
) -> dict[int, int]:
    """Generate one method's samples under every seed of ``seeds``, each seed's units into
    :func:`samples_folder` (:func:`generate_samples` with ``base_seed=seed``: the same batched
    units as one seed, split across processes the same way). Returns the units this process made
    per seed (0 for a seed whose samples were all there)."""
    return {
        seed: generate_samples(
            generate,
            prompts,
            units,
            tokenizer,
            samples_folder(out, method, seed),
            base_seed=seed,
            desc=f"{desc}, seed {seed}",
            show_progress=show_progress,
        )
        for seed in seeds
    }


def read_samples(folder: str | Path, units: Sequence[Unit]) -> tuple[list[dict[str, Any]], float]:
    """Every sample of ``units`` from ``folder`` in unit order, and the generation seconds summed.

    A missing unit raises ``FileNotFoundError`` saying the generation is unfinished.
    """
    records = read_units(units, folder, key=_rows, index=_number)
    samples = [sample for record in records for sample in record["samples"]]
    return samples, sum(float(record["seconds"]) for record in records)
