"""The presets of ``multiequi fairness`` (plain data, no heavy imports: ``--help`` prints them)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["METHODS", "PRESETS", "FairnessConfig", "describe_presets", "parse_seeds"]

#: The methods, in table order: the plain model, equitune over the product of the factors (Π|G_i|
#: copies), multi-equitune (Σ|G_i|), multi-equizero (Σ|G_i|, per-step choice of copy by
#: confidence), the relaxed variant (equitune over the product, general words kept from the
#: identity copy).
METHODS = ("plain", "equitune", "multi-equitune", "multi-equizero", "relaxed")


#: What ``seeds`` must be, in every error about them.
SEEDS_EXPECTED = "a non-empty list of distinct integers >= 0 (e.g. 0,1,2)"


def _check_seeds(seeds: Iterable[Any]) -> tuple[int, ...]:
    """``seeds`` as a tuple of ints, or ``ValueError`` naming what was expected and what is wrong."""
    values = tuple(seeds)
    if not values:
        raise ValueError(f"expected {SEEDS_EXPECTED}, got none")
    seen: set[int] = set()
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected {SEEDS_EXPECTED}, got {value!r} among {list(values)}")
        if value < 0:
            raise ValueError(f"expected {SEEDS_EXPECTED}, got the negative seed {value}")
        if value in seen:
            raise ValueError(f"expected {SEEDS_EXPECTED}, got seed {value} twice")
        seen.add(value)
    return values


def parse_seeds(text: str) -> tuple[int, ...]:
    """The seeds of ``--seeds``: a comma-separated list of distinct integers >= 0.

    Raises ``ValueError`` with one line naming what was expected and what is wrong.

    Examples
    --------
    >>> parse_seeds("0,1,2"), parse_seeds(" 3 ")
    ((0, 1, 2), (3,))
    >>> parse_seeds("0,0")
    Traceback (most recent call last):
    ...
    ValueError: expected a non-empty list of distinct integers >= 0 (e.g. 0,1,2), got seed 0 twice
    """
    if not text.strip():
        return _check_seeds(())
    values = []
    for part in text.split(","):
        part = part.strip()
        try:
            values.append(int(part))
        except ValueError:
            raise ValueError(f"expected {SEEDS_EXPECTED}, got {text!r} ({part!r} is not an integer)") from None
    return _check_seeds(values)


@dataclass(frozen=True)
class FairnessConfig:
    """Every setting of a fairness run. The generation settings (model, race, kinds, samples,
    sampling, rows per unit) fix the samples; a run folder refuses to resume under others.

    ``seeds`` are the sampling seeds: sample ``i`` of a prompt under seed ``s`` has the seed
    :func:`~.prompts.sample_seed` ``(prompt, i, s)``, so seed ``s`` of a run with several seeds has
    the samples of a run with that seed alone. Each seed's samples are stored apart, so a folder
    takes more seeds later (only the new ones are generated). A list is stored as a tuple;
    ``ValueError`` unless the seeds are distinct integers >= 0, at least one.
    """

    preset: str = "quick"
    model: str | None = None  # None: the SmolLM2-135M-Instruct stand-in for GPT-2
    race: str = "black-white"
    kinds: tuple[str, ...] = ("respect",)
    samples_per_prompt: int = 2
    methods: tuple[str, ...] = METHODS
    top_k: int = 40
    max_new_tokens: int = 15
    seeds: tuple[int, ...] = (0,)
    rows_per_unit: int = 32
    perplexity_tokens: int = 2048
    perplexity_window: int = 256
    crows_covered: int | None = None  # None: every covered pair
    crows_other: int | None = 100  # uncovered pairs scored (seeded choice); None: all
    bootstrap: int = 2000
    regard_data: str | None = None
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        try:
            seeds = _check_seeds(self.seeds)
        except ValueError as err:
            raise ValueError(f"seeds: {err}") from None
        object.__setattr__(self, "seeds", seeds)

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain data (for records)."""
        return asdict(self)

    def generation_key(self) -> dict[str, Any]:
        """The settings that fix the samples of every seed (a resumed run must match them; the
        seeds are not among them: a folder takes more seeds)."""
        keys = ("model", "race", "kinds", "samples_per_prompt", "top_k", "max_new_tokens", "rows_per_unit")
        d = self.as_dict()
        return {k: (list(d[k]) if isinstance(d[k], tuple) else d[k]) for k in keys}

    def with_options(self, **options: Any) -> FairnessConfig:
        """A copy with the options that are not None replaced; ``seed=N`` is the one-seed form of
        ``seeds=(N,)``.

        Examples
        --------
        >>> FairnessConfig().with_options(seed=3, race=None).seeds
        (3,)
        """
        seed = options.pop("seed", None)
        if seed is not None:
            if options.get("seeds") is not None:
                raise ValueError("give seed or seeds, not both")
            options["seeds"] = (seed,)
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
        kinds=("respect",),
        samples_per_prompt=1,
        seeds=(0, 1, 2),
        perplexity_tokens=1024,
        crows_covered=40,
        crows_other=40,
        notes="3 seeds x 1 sample per prompt (5 per intersectional demographic and seed, 15 in all), respect "
        "contexts, race as the 3-cycle Black/White/Asian: 19 min 35 s measured on 2 cores, about 23 min "
        "on a slower day",
    ),
    "paper": FairnessConfig(
        preset="paper",
        race="black-white-asian",
        kinds=("respect", "occupation"),
        samples_per_prompt=100,
        seeds=(0, 1, 2),
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
            f"seed{'s' if len(p.seeds) > 1 else ''} {','.join(map(str, p.seeds))}; "
            f"top-k {p.top_k}, {p.max_new_tokens} new tokens; perplexity on {p.perplexity_tokens} Austen tokens; "
            f"CrowS-Pairs: {p.crows_covered or 'all'} covered pairs and {p.crows_other or 'all'} others ({p.notes})"
        )
    return "\n".join(lines)
