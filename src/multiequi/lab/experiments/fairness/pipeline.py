"""The fairness experiment end to end: generate (every process), then score and report (main process).

Stages, each cached in the run folder so an interrupted run resumes where it stopped:

1. ``config.json``: the settings that fix the samples of every seed (a folder refuses other
   settings, and takes more seeds).
2. ``samples/<method>/seed-<s>/unit-*.json``: seeded samples of each method under each sampling
   seed, split across processes (:mod:`.generation`); a seed already there is not generated again.
3. ``regard/classifier.json``: the regard classifier (all-MiniLM-L6-v2 + logistic regression)
   and its held-out accuracies; ``labels/<method>/seed-<s>.json``: regard and VADER labels of
   every sample, and ``labels/gpt2-reference.json`` those of the GPT-2 reference samples.
4. ``perplexity.json`` and ``crows.json``: each method's perplexity on Austen and CrowS-Pairs
   scores, one entry per method, written as each finishes, each with the settings it was made
   under (a rerun with others measures again). Neither depends on the sampling seed: they are
   computed once (CrowS-Pairs' seeded choice of pairs and its bootstrap use the first seed).
5. ``summary.json`` and the report (:mod:`.report`), rebuilt from the files above alone.

Gaps are computed per seed (:func:`_gaps` on that seed's samples, bootstrapped with that seed)
and on all seeds' samples pooled (bootstrapped with the first seed), the pooled reports carrying
the seeds' gaps, mean and sample std (:func:`.metrics.with_seed_spread`).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from multiequi.lab.reporting import atomic_write_json, machine_info, read_json
from multiequi.lab.training.units import RunMismatchError, check_run_key

from .generation import (
    generate_seeds,
    make_generator,
    make_model,
    plan_units,
    process_state,
    read_samples,
    samples_folder,
)
from .metrics import gap_report, with_seed_spread
from .presets import FairnessConfig
from .prompts import ATTRIBUTES, build_factors, canonical_words, general_token_ids, make_prompts

__all__ = ["ConfigMismatchError", "load_model", "run_fairness", "score_run"]

#: The name of the model in every output when ``--model`` is not given.
DEFAULT_MODEL = "SmolLM2-135M-Instruct (stand-in for GPT-2)"

#: The text of the perplexity check: the stand-in for WikiText.
PERPLEXITY_TEXT = "Persuasion"
PERPLEXITY_NAME = "Jane Austen's Persuasion (stand-in for WikiText-2)"

#: The labelings of the samples whose gaps are reported: regard, VADER sentiment, and regard with
#: the word swaps undone.
READINGS = ("regard", "sentiment", "regard_unswapped")


class ConfigMismatchError(RunMismatchError):
    """The run folder holds samples made with other settings."""


def load_model(name: str | None) -> tuple[Any, Any, str]:
    """The causal LM, its tokenizer and its name for the outputs: the SmolLM2 stand-in by default,
    or any Hugging Face id or local folder."""
    from multiequi.hf import load_causal_lm, smollm2

    if name is None:
        model, tokenizer = smollm2()
        label = DEFAULT_MODEL
    else:
        model, tokenizer = load_causal_lm(name)
        label = str(name)
    return model.eval(), tokenizer, label


def _check_config(out: Path, config: FairnessConfig) -> None:
    """Write ``config.json`` (main process), or check that an existing one has the same generation
    settings; a folder of the one-seed layout (``samples/<method>/unit-*.json``) is refused."""
    path = out / "config.json"
    if path.is_file():
        found = read_json(path, "run configuration").get("generation", {})
        if "seed" in found:
            raise ConfigMismatchError(
                f"'{out}' holds samples of the earlier one-seed layout (seed {found['seed']}, "
                "samples/<method>/unit-*.json): choose another --out, or delete the folder to start again"
            )
    try:
        check_run_key(out, "generation", config.generation_key(), extra={"config": config.as_dict()})
    except RunMismatchError as err:
        raise ConfigMismatchError(str(err).replace("work done", "samples made")) from None


def run_fairness(
    config: FairnessConfig,
    out: str | os.PathLike[str],
    *,
    show_progress: bool = True,
    model: Any = None,
    tokenizer: Any = None,
    model_name: str | None = None,
) -> dict[str, Any] | None:
    """Run the experiment into ``out``; returns the summary on the main process, None on the others.

    ``model`` / ``tokenizer`` / ``model_name`` override :func:`load_model` (tests pass a tiny
    model). Under ``accelerate launch --num_processes N`` every process generates its share of
    the samples; the main process then scores them and writes the report.
    """
    out = Path(out)
    state = process_state()
    _check_config(out, config)
    if model is None or tokenizer is None:
        model, tokenizer, model_name = load_model(config.model)
    model_name = model_name or str(config.model)
    vocab = int(model.get_output_embeddings().weight.shape[0])
    factors, left_out = build_factors(tokenizer, vocab, config.race)
    general = general_token_ids(tokenizer, factors, vocab) if "relaxed" in config.methods else None
    prompts = make_prompts(config.race, config.kinds)
    units = plan_units(prompts, tokenizer, config.samples_per_prompt, config.rows_per_unit)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    copies: dict[str, int] = {}
    for method in config.methods:
        generate, copies[method] = make_generator(
            method,
            model,
            factors=factors,
            general_words=general,
            top_k=config.top_k,
            max_new_tokens=config.max_new_tokens,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
        )
        generate_seeds(
            generate,
            prompts,
            units,
            tokenizer,
            out,
            method,
            config.seeds,
            desc=f"{method} ({copies[method]} copies)",
            show_progress=show_progress,
        )
    if not state.is_main_process:
        return None
    setup = {
        "model": model_name,
        "factors": {name: g.words for name, g in zip(("gender", "race", "orientation"), factors, strict=True)},
        "left_out_forms": left_out,
        "copies": copies,
        "prompts": len(prompts),
        "seeds": list(config.seeds),
        "samples_per_seed": len(prompts) * config.samples_per_prompt,
        "samples_per_method": len(prompts) * config.samples_per_prompt * len(config.seeds),
        "processes": state.num_processes,
        "machine": machine_info(),
    }
    atomic_write_json(out / "setup.json", setup)
    return score_run(config, out, model, tokenizer, factors, general, show_progress=show_progress)


# ---------------------------------------------------------------------------------------- scoring
def _labels_for(
    out: Path, name: str, masked: Sequence[str], classifier: Any, undo: Callable[[str], str]
) -> dict[str, list[int]]:
    """Regard and VADER labels of ``masked`` texts, and regard with the word swaps undone
    (:func:`~.prompts.canonical_words`), cached in ``labels/<name>.json`` (``name`` may hold a
    ``/``: ``"plain/seed-0"``)."""
    from .regard import vader_labels

    path = out / "labels" / f"{name}.json"
    if path.is_file():
        cached = read_json(path, "labels file")
        if cached.get("n") == len(masked) and "regard_unswapped" in cached:
            return cached
    labels = {
        "n": len(masked),
        "regard": classifier.predict(list(masked)).tolist(),
        "sentiment": vader_labels(list(masked)).tolist(),
        "regard_unswapped": classifier.predict([undo(t) for t in masked]).tolist(),
    }
    atomic_write_json(path, labels)
    return labels


def _classifier(out: Path, regard_data: str | None) -> tuple[Any, dict[str, Any]]:
    """The regard classifier, trained once per run folder and cached."""
    from multiequi.hf import minilm

    from .regard import RegardClassifier, load_regard_data, vader_accuracy

    encoder = minilm()
    path, info = out / "regard" / "classifier.json", out / "regard" / "metrics.json"
    if path.is_file() and info.is_file():
        return RegardClassifier.load(path, encoder), read_json(info, "regard metrics")
    data = load_regard_data(regard_data)
    classifier, metrics = RegardClassifier.fit(encoder, data)
    metrics["vader"] = vader_accuracy(data)
    classifier.save(path)
    atomic_write_json(info, metrics)
    return classifier, metrics


def _gaps(labels: Sequence[int], demographic_of: Sequence[Any], n_boot: int, seed: int) -> dict[str, Any]:
    """Gap reports: per attribute (single-attribute demographics) and intersectional; ``seed``
    seeds their bootstrap and permutations."""
    out: dict[str, Any] = {}
    for attribute in ATTRIBUTES:
        groups: dict[str, list[int]] = {}
        for label, d in zip(labels, demographic_of, strict=True):
            if d.attribute == attribute:
                groups.setdefault(d.phrase, []).append(int(label))
        if len(groups) >= 2:
            out[attribute] = gap_report(groups, n_boot=n_boot, seed=seed)
    inter: dict[str, list[int]] = {}
    for label, d in zip(labels, demographic_of, strict=True):
        if d.intersectional:
            inter.setdefault(d.phrase, []).append(int(label))
    if len(inter) >= 2:
        out["intersectional"] = gap_report(inter, n_boot=n_boot, seed=seed)
    return out


def _reference(out: Path, config: FairnessConfig, classifier: Any, undo: Callable[[str], str]) -> dict[str, Any] | None:
    """The GPT-2 reference samples of the regard data, scored by the same classifier (None when the
    data folder has none)."""
    from .prompts import Demographic
    from .regard import gpt2_reference

    try:
        samples = [s for s in gpt2_reference(config.regard_data) if s.kind in config.kinds]
    except FileNotFoundError:
        return None
    labels = _labels_for(out, "gpt2-reference", [s.masked for s in samples], classifier, undo)
    demos = []
    for s in samples:
        words = s.demographic.split()
        value = words[1]
        attribute = "gender" if value in ("man", "woman") else "race" if value in ("Black", "White") else "orientation"
        demos.append(Demographic(s.demographic, ((attribute, value),)))
    gaps = {reading: _gaps(labels[reading], demos, config.bootstrap, config.seeds[0]) for reading in READINGS}
    return {"n": len(samples), **gaps, "distributions": _distributions(labels["regard"], [d.phrase for d in demos])}


def _distributions(labels: Sequence[int], phrases: Sequence[str]) -> dict[str, list[float]]:
    from .metrics import distribution

    by: dict[str, list[int]] = {}
    for label, phrase in zip(labels, phrases, strict=True):
        by.setdefault(phrase, []).append(int(label))
    return {p: distribution(v).tolist() for p, v in by.items()}


def _perplexity_ids(tokenizer: Any, n_tokens: int) -> torch.Tensor:
    from multiequi.lab.datasets.text import austen_text

    text = austen_text([PERPLEXITY_TEXT])
    ids = tokenizer(text[: max(20 * n_tokens, 1000)], add_special_tokens=False)["input_ids"]
    if len(ids) < n_tokens:
        raise ValueError(f"{PERPLEXITY_NAME} has {len(ids)} tokens, fewer than the {n_tokens} asked")
    return torch.tensor(ids[:n_tokens], dtype=torch.long)


def _crows_pairs(tokenizer: Any, factors: Sequence[Any], config: FairnessConfig) -> list[Any]:
    """Every covered pair (or ``crows_covered`` of them) and ``crows_other`` others, chosen with
    the first sampling seed."""
    from multiequi.lab.datasets.text import crows_pairs

    from .crows import pair_coverage

    pairs = crows_pairs()
    covered = pair_coverage(tokenizer, pairs, factors)
    yes = [p for p, c in zip(pairs, covered, strict=True) if c]
    no = [p for p, c in zip(pairs, covered, strict=True) if not c]
    rng = random.Random(config.seeds[0])
    if config.crows_covered is not None and len(yes) > config.crows_covered:
        yes = sorted(rng.sample(yes, config.crows_covered), key=lambda p: p.index)
    if config.crows_other is not None and len(no) > config.crows_other:
        no = sorted(rng.sample(no, config.crows_other), key=lambda p: p.index)
    return yes + no


def _same(entry: dict[str, Any] | None, settings: dict[str, Any]) -> bool:
    """Whether a cached perplexity or CrowS-Pairs entry was made under ``settings`` (a rerun with
    other ``--perplexity-tokens``, ``--crows-pairs`` or first seed measures again)."""
    return entry is not None and all(entry.get(k) == v for k, v in settings.items())


def score_run(
    config: FairnessConfig,
    out: str | os.PathLike[str],
    model: Any,
    tokenizer: Any,
    factors: Sequence[Any],
    general: Sequence[int] | None,
    *,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Score every method's samples (regard, VADER, gaps), its perplexity and CrowS-Pairs bias, and
    the GPT-2 reference; write ``summary.json`` and the report. Main process only.

    Per method, ``summary["methods"][m]`` holds the gap reports of every seed's samples pooled
    (``regard``, ``sentiment``, ``regard_unswapped``: ``{"gender": ..., "intersectional": ...}``,
    each a :func:`.metrics.gap_report` bootstrapped with the first seed, with ``seed_gaps``,
    ``seed_mean``, ``seed_std`` and ``seed_null_mean`` of :func:`.metrics.with_seed_spread`
    beside it; ``seed_std`` is None for one seed), and ``per_seed``: ``{"<seed>": {"samples",
    "seconds", "regard", "sentiment", "regard_unswapped"}}``, the same gaps on that seed's samples
    alone (bootstrapped with that seed, so they equal a run with that seed alone). ``samples``,
    ``seconds`` and ``distributions`` are of all seeds; perplexity and CrowS-Pairs do not depend on
    the seed."""
    from multiequi.hf import perplexity

    from .crows import crows_scores
    from .report import write_report

    out = Path(out)
    setup = read_json(out / "setup.json", "run setup")
    prompts = make_prompts(config.race, config.kinds)
    units = plan_units(prompts, tokenizer, config.samples_per_prompt, config.rows_per_unit)
    classifier, regard_metrics = _classifier(out, config.regard_data)
    ppl_path, crows_path = out / "perplexity.json", out / "crows.json"
    ppl: dict[str, Any] = read_json(ppl_path, "perplexity results") if ppl_path.is_file() else {}
    crows: dict[str, Any] = read_json(crows_path, "CrowS-Pairs results") if crows_path.is_file() else {}
    ppl_ids = _perplexity_ids(tokenizer, config.perplexity_tokens)
    context = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
    window = min(config.perplexity_window, int(context)) if context else config.perplexity_window
    pairs = None
    undo = canonical_words(factors)
    ppl_settings = {"text_tokens": config.perplexity_tokens, "window": window}
    crows_settings = {"seed": config.seeds[0], "covered_asked": config.crows_covered, "other_asked": config.crows_other}
    methods: dict[str, Any] = {}
    for method in config.methods:
        per_seed: dict[str, Any] = {}
        pooled: dict[str, list[int]] = {reading: [] for reading in READINGS}
        pooled_demos: list[Any] = []
        examples: list[str] = []
        for seed in config.seeds:
            samples, seconds = read_samples(samples_folder(out, method, seed), units)
            demos = [prompts[s["prompt"]].demographic for s in samples]
            masked = [f"XYZ {prompts[s['prompt']].context}{s['text']}" for s in samples]
            labels = _labels_for(out, f"{method}/seed-{seed}", masked, classifier, undo)
            per_seed[str(seed)] = {
                "samples": len(samples),
                "seconds": seconds,
                **{reading: _gaps(labels[reading], demos, config.bootstrap, seed) for reading in READINGS},
            }
            for reading in READINGS:
                pooled[reading].extend(labels[reading])
            pooled_demos.extend(demos)
            examples = examples or [f"{prompts[s['prompt']].text}{s['text']}" for s in samples[:3]]
        wrapped = make_model(method, model, factors=factors, general_words=general)
        if not _same(ppl.get(method), ppl_settings):  # cached under these settings, else measured again
            ppl[method] = {
                **perplexity(wrapped, None, ppl_ids, window=window, show_progress=show_progress),
                **ppl_settings,
            }
            atomic_write_json(ppl_path, ppl)
        if not _same(crows.get(method), crows_settings):  # the choice of pairs is the first seed's
            pairs = pairs if pairs is not None else _crows_pairs(tokenizer, factors, config)
            crows[method] = {
                **crows_scores(wrapped, tokenizer, pairs, factors, seed=config.seeds[0], show_progress=show_progress),
                **crows_settings,
            }
            atomic_write_json(crows_path, crows)
        samples_total = sum(r["samples"] for r in per_seed.values())
        seconds_total = sum(r["seconds"] for r in per_seed.values())
        gaps = {
            reading: with_seed_spread(
                _gaps(pooled[reading], pooled_demos, config.bootstrap, config.seeds[0]),
                [r[reading] for r in per_seed.values()],
            )
            for reading in READINGS
        }
        methods[method] = {
            "copies": setup["copies"][method],
            "samples": samples_total,
            "seconds": seconds_total,
            "seconds_per_sample": seconds_total / max(1, samples_total),
            **gaps,
            "distributions": _distributions(pooled["regard"], [d.phrase for d in pooled_demos]),
            "perplexity": ppl[method],
            "crows": {k: v for k, v in crows[method].items() if k != "per_pair"},
            "examples": examples,
            "per_seed": per_seed,
        }
    summary = {
        "experiment": "fairness",
        "config": config.as_dict(),
        "setup": setup,
        "regard_classifier": regard_metrics,
        "perplexity_text": PERPLEXITY_NAME,
        "reference": _reference(out, config, classifier, undo),
        "methods": methods,
    }
    atomic_write_json(out / "summary.json", summary)
    write_report(summary, out)
    return summary
