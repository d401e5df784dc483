"""The presets of ``multiequi fairness`` (plain data, no heavy imports: ``--help`` prints them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["METHODS", "PRESETS", "FairnessConfig", "describe_presets"]

#: The methods, in table order: the plain model, equitune over the product of the factors (Π|G_i|
#: copies), multi-equitune (Σ|G_i|), multi-equizero (Σ|G_i|, per-step choice of copy by
#: confidence), the relaxed variant (equitune over the product, general words kept from the
#: identity copy).
METHODS = ("plain", "equitune", "multi-equitune", "multi-equizero", "relaxed")


@dataclass(frozen=True)
class FairnessConfig:
    """Every setting of a fairness run. The generation settings (model, race, kinds, samples,
    seed, sampling, rows per unit) fix the samples; a run folder refuses to resume under others."""

    preset: str = "quick"
    model: str | None = None  # None: the SmolLM2-135M-Instruct stand-in for GPT-2
    race: str = "black-white"
    kinds: tuple[str, ...] = ("respect",)
    samples_per_prompt: int = 2
    methods: tuple[str, ...] = METHODS
    top_k: int = 40
    max_new_tokens: int = 15
    seed: int = 0
    rows_per_unit: int = 32
    perplexity_tokens: int = 2048
    perplexity_window: int = 256
    crows_covered: int | None = None  # None: every covered pair
    crows_other: int | None = 100  # uncovered pairs scored (seeded choice); None: all
    bootstrap: int = 2000
    regard_data: str | None = None
    notes: str = field(default="", compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain data (for records)."""
        return asdict(self)

    def generation_key(self) -> dict[str, Any]:
        """The settings that fix the samples (a resumed run must match them)."""
        keys = ("model", "race", "kinds", "samples_per_prompt", "top_k", "max_new_tokens", "seed", "rows_per_unit")
        d = self.as_dict()
        return {k: (list(d[k]) if isinstance(d[k], tuple) else d[k]) for k in keys}

    def with_options(self, **options: Any) -> FairnessConfig:
        """A copy with the options that are not None replaced."""
        return replace(self, **{k: v for k, v in options.items() if v is not None})


PRESETS: dict[str, FairnessConfig] = {
    "quick": FairnessConfig(
        preset="quick",
        race="black-white",
        kinds=("respect",),
        samples_per_prompt=2,
        perplexity_tokens=1024,
        crows_covered=40,
        crows_other=40,
        notes="2 samples per prompt, respect contexts, race Black/White: about 12 minutes on 2 cores",
    ),
    "medium": FairnessConfig(
        preset="medium",
        race="black-white-asian",
        kinds=("respect", "occupation"),
        samples_per_prompt=5,
        perplexity_tokens=8192,
        crows_other=300,
        notes="5 samples per prompt (50 per demographic), race as the 3-cycle Black/White/Asian: hours on 2 cores",
    ),
    "paper": FairnessConfig(
        preset="paper",
        race="black-white-asian",
        kinds=("respect", "occupation"),
        samples_per_prompt=100,
        perplexity_tokens=65536,
        perplexity_window=512,
        crows_other=None,
        notes="the paper's budget: 100 samples per prompt, 500 per prompt set and demographic (use a GPU)",
    ),
}


def describe_presets() -> str:
    """One line per preset with its settings (shown by ``--help`` and in the docs).

    Examples
    --------
    >>> "quick:" in describe_presets()
    True
    """
    lines = []
    for name, p in PRESETS.items():
        lines.append(
            f"{name}: race {p.race}; contexts {'+'.join(p.kinds)}; {p.samples_per_prompt} samples per prompt; "
            f"top-k {p.top_k}, {p.max_new_tokens} new tokens; perplexity on {p.perplexity_tokens} Austen tokens; "
            f"CrowS-Pairs: {p.crows_covered or 'all'} covered pairs and {p.crows_other or 'all'} others ({p.notes})"
        )
    return "\n".join(lines)
