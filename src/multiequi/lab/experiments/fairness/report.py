"""The fairness report, rebuilt from ``summary.json`` alone: tables (markdown, CSV, JSON), a
stacked-bar PNG of regard per demographic and method, and the fairness gap against cost.

With one sampling seed the tables show each gap of the run's samples with its bootstrap interval,
noise gap and permutation p-value, and the figure draws the bootstrap interval. With several seeds
they show each gap as the mean ± sample std of the seeds' gaps (and the number of seeds) beside the
gap of all seeds' samples pooled with its bootstrap interval, noise gap and p-value; the figure
draws the seeds' mean ± std. A summary written before seeds were a list (``config.seed``) reads as
one seed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from multiequi.lab.reporting import atomic_write_text, markdown_table, read_json, write_tables

from .regard import LABELS

__all__ = ["gap_rows", "main_rows", "rebuild_report", "seed_rows", "seeds_of", "write_report"]

#: The columns both main tables end with: the pooled p-value with swaps undone, the per-attribute
#: gaps, sentiment, perplexity, CrowS-Pairs and the model.
_SHARED_TAIL = [
    "p ",
    "gender",
    "race",
    "orientation",
    "sentiment gap (inter.)",
    "perplexity",
    "Δ ppl",
    "CrowS covered",
    "CrowS other",
    "model",
]


_COLUMNS = [
    "method",
    "copies",
    "s/sample",
    "regard gap (inter.)",
    "95% CI",
    "noise gap",
    "p",
    "swaps undone",
    *_SHARED_TAIL,
]


#: The main table's columns with several seeds: per-seed gaps as mean ± std, pooled gaps beside them.
_SEED_COLUMNS = [
    "method",
    "copies",
    "s/sample",
    "seeds",
    "regard gap (inter.), mean ± std",
    "noise, one seed",
    "pooled gap",
    "95% CI",
    "noise gap",
    "p",
    "swaps undone, mean ± std",
    "pooled",
    *_SHARED_TAIL,
]


def seeds_of(summary: dict[str, Any]) -> list[int]:
    """The run's sampling seeds (``config.seeds``; ``[config.seed]`` in a summary of the one-seed
    version).

    Examples
    --------
    >>> seeds_of({"config": {"seeds": [0, 1, 2]}}), seeds_of({"config": {"seed": 4}})
    ([0, 1, 2], [4])
    """
    config = summary.get("config", {})
    return [int(s) for s in (config.get("seeds") or [config.get("seed", 0)])]


def _seed_words(seeds: list[int]) -> str:
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def _spread(g: dict[str, Any] | None) -> str:
    """The seeds' gaps of a pooled report as ``mean ± std`` (empty without several seeds)."""
    if not g or g.get("seed_std") is None:
        return ""
    return f"{g['seed_mean']:.2f} ± {g['seed_std']:.2f}"


def _ci(g: dict[str, Any] | None) -> str:
    return "" if not g else f"[{g['ci_low']:.2f}, {g['ci_high']:.2f}]"


def _gap(gaps: dict[str, Any], key: str) -> float | None:
    g = gaps.get(key)
    return None if g is None else float(g["gap"])


def _crows(c: dict[str, Any] | None, part: str) -> str:
    if not c or part not in c or not c[part].get("pairs"):
        return ""
    p = c[part]
    low, high = p["ci95"] or (p["score"], p["score"])
    return f"{p['score']:.1f} [{low:.0f}, {high:.0f}] (n={p['pairs']}, ties {p['ties']})"


def _p(g: dict[str, Any] | None) -> float | None:
    return None if not g else g["p_value"]


def main_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The main table: the GPT-2 reference row, then one row per method. With several seeds the
    columns are ``_SEED_COLUMNS``: gaps as the seeds' mean ± std, the pooled gap, interval, noise
    gap and p-value beside them."""
    several = len(seeds_of(summary)) > 1
    rows: list[dict[str, Any]] = []
    ref = summary.get("reference")
    if ref:
        r = ref["regard"]
        rows.append(
            {
                "method": "GPT-2 reference (Sheng et al.'s samples)",
                "copies": 1,
                "gender": _gap(r, "gender"),
                "race": _gap(r, "race"),
                "orientation": _gap(r, "orientation"),
            }
        )
    methods = summary["methods"]
    base = methods.get("plain", {}).get("perplexity", {}).get("perplexity")
    for name, m in methods.items():
        r, s = m["regard"], m["sentiment"]
        inter = r.get("intersectional")
        ppl = m["perplexity"]["perplexity"]
        if several:
            unswapped = m["regard_unswapped"].get("intersectional")
            rows.append(
                {
                    "method": name,
                    "copies": m["copies"],
                    "s/sample": m["seconds_per_sample"],
                    "seeds": len(m.get("per_seed") or {}) or None,
                    "regard gap (inter.), mean ± std": _spread(inter),
                    "noise, one seed": None if not inter else inter.get("seed_null_mean"),
                    "pooled gap": _gap(r, "intersectional"),
                    "95% CI": _ci(inter),
                    "noise gap": None if not inter else inter["null_mean"],
                    "p": _p(inter),
                    "swaps undone, mean ± std": _spread(unswapped),
                    "pooled": _gap(m["regard_unswapped"], "intersectional"),
                    "p ": _p(unswapped),
                    "gender": _spread(r.get("gender")),
                    "race": _spread(r.get("race")),
                    "orientation": _spread(r.get("orientation")),
                    "sentiment gap (inter.)": _spread(s.get("intersectional")),
                    "perplexity": ppl,
                    "Δ ppl": None if base is None else f"{100 * (ppl / base - 1):+.1f}%",
                    "CrowS covered": _crows(m.get("crows"), "covered"),
                    "CrowS other": _crows(m.get("crows"), "uncovered"),
                }
            )
            continue
        rows.append(
            {
                "method": name,
                "copies": m["copies"],
                "s/sample": m["seconds_per_sample"],
                "regard gap (inter.)": _gap(r, "intersectional"),
                "95% CI": _ci(inter),
                "noise gap": None if not inter else inter["null_mean"],
                "p": None if not inter else inter["p_value"],
                "swaps undone": _gap(m["regard_unswapped"], "intersectional"),
                "p ": None
                if not m["regard_unswapped"].get("intersectional")
                else m["regard_unswapped"]["intersectional"]["p_value"],
                "gender": _gap(r, "gender"),
                "race": _gap(r, "race"),
                "orientation": _gap(r, "orientation"),
                "sentiment gap (inter.)": _gap(s, "intersectional"),
                "perplexity": ppl,
                "Δ ppl": None if base is None else f"{100 * (ppl / base - 1):+.1f}%",
                "CrowS covered": _crows(m.get("crows"), "covered"),
                "CrowS other": _crows(m.get("crows"), "uncovered"),
            }
        )
    return rows


def gap_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Every regard gap with its 95% bootstrap interval and the noise gap, per source and attribute;
    with several seeds, the seeds' mean ± std (and one seed's noise gap) before the pooled gap."""
    sources = dict(summary["methods"])
    if summary.get("reference"):
        sources = {"GPT-2 reference": summary["reference"], **sources}
    rows = []
    for name, m in sources.items():
        row: dict[str, Any] = {"method": name}
        for key in ("gender", "race", "orientation", "intersectional"):
            g = m["regard"].get(key)
            p = "p < 0.001" if g and g["p_value"] < 0.001 else f"p {g['p_value']:.3f}" if g else ""
            row[key] = "" if not g else f"{g['gap']:.2f} {_ci(g)} (noise {g['null_mean']:.2f}, {p})"
            if g and _spread(g):
                row[key] = (
                    f"{_spread(g)} over {len(g['seed_gaps'])} seeds (noise {g['seed_null_mean']:.2f}); "
                    f"pooled {row[key]}"
                )
        rows.append(row)
    return rows


def seed_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The intersectional regard gap of every method under every seed, their mean ± std and the
    pooled gap (one row per method)."""
    seeds = seeds_of(summary)
    rows = []
    for name, m in summary["methods"].items():
        g = m["regard"].get("intersectional")
        if not g:
            continue
        row: dict[str, Any] = {"method": name}
        for seed in seeds:
            report = ((m.get("per_seed") or {}).get(str(seed)) or {}).get("regard", {}).get("intersectional")
            row[f"seed {seed}"] = None if not report else report["gap"]
        row["mean ± std"] = _spread(g)
        row["noise, one seed"] = g.get("seed_null_mean")
        row["pooled"] = g["gap"]
        row["pooled noise"] = g["null_mean"]
        rows.append(row)
    return rows


def distribution_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Regard per demographic: positive / neutral / negative fractions for each method."""
    columns: dict[str, dict[str, Any]] = {}
    sources = dict(summary["methods"])
    if summary.get("reference"):
        sources = {"GPT-2 reference": summary["reference"], **sources}
    for name, m in sources.items():
        for phrase, d in m["distributions"].items():
            row = columns.setdefault(phrase, {"demographic": phrase})
            neg, neu, pos = d
            row[name] = f"{pos:.2f} / {neu:.2f} / {neg:.2f}"
    return list(columns.values())


def _stamp(summary: dict[str, Any]) -> str:
    setup = summary["setup"]
    machine = setup.get("machine", {})
    return (
        f"model: {setup['model']}; {_seed_words(seeds_of(summary))}; {setup['samples_per_method']} samples per "
        "method; regard: "
        f"{summary['regard_classifier'].get('encoder', 'all-MiniLM-L6-v2')} + logistic regression; "
        f"{machine.get('processor', '')}, {machine.get('cpu_count', '')} cores, {machine.get('torch_threads', '')} "
        f"threads, torch {machine.get('torch', '')}"
    )


def write_report(summary: dict[str, Any], out: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``table.{md,csv,json}``, ``gaps.{md,csv,json}``, ``distributions.{md,csv,json}``, ``regard.png``,
    ``gap_vs_cost.png`` and ``report.md`` into ``out``."""
    from multiequi.lab.reporting.plots import scatter_plot, stacked_bars

    out = Path(out)
    setup, config = summary["setup"], summary["config"]
    seeds = seeds_of(summary)
    several = len(seeds) > 1
    columns = _SEED_COLUMNS if several else _COLUMNS
    rows = main_rows(summary)
    for row in rows:  # the JSON tables name the model of every row (the markdown ones in their title)
        row.setdefault("model", setup["model"] if row["method"] in summary["methods"] else "GPT-2 small")
    title = f"Fairness gaps, perplexity and cost per method: {setup['model']}"
    paths = {"table": write_tables(rows, out / "table", columns, title=title, digits=3)["md"]}
    title = f"Regard gaps with 95% bootstrap intervals, noise gaps and permutation p-values: {setup['model']}"
    gaps = [
        {**row, "model": "GPT-2 small" if row["method"] == "GPT-2 reference" else setup["model"]}
        for row in gap_rows(summary)
    ]
    paths["gaps"] = write_tables(gaps, out / "gaps", title=title)["md"]
    dist = distribution_rows(summary)
    title = f"Regard per demographic (positive / neutral / negative): {setup['model']}"
    paths["distributions"] = write_tables(dist, out / "distributions", title=title)["md"]
    panels = {name: m["distributions"] for name, m in summary["methods"].items()}
    if summary.get("reference"):
        panels = {"GPT-2 ref.": summary["reference"]["distributions"], **panels}
    paths["regard_png"] = stacked_bars(
        panels,
        list(LABELS),
        out / "regard.png",
        title=f"Regard of the continuations per demographic and method ({setup['model']})",
        note=_stamp(summary),
        colors=["#d62728", "#bbbbbb", "#2ca02c"],
    )
    points = []
    null = None
    for name, m in summary["methods"].items():
        inter = m["regard"].get("intersectional")
        if inter and several and inter.get("seed_std") is not None:  # the seeds' spread
            null = inter["seed_null_mean"] if null is None else null
            mean, std = inter["seed_mean"], inter["seed_std"]
            point = {"gap": mean, "lo": mean - std, "hi": mean + std}
        elif inter:  # one seed: the bootstrap interval
            null = inter["null_mean"] if null is None else null
            point = {"gap": inter["gap"], "lo": inter["ci_low"], "hi": inter["ci_high"]}
        else:
            continue
        points.append({"method": name, "copies": m["copies"], "seconds": m["seconds_per_sample"], **point})
    if several:
        ylabel = f"regard gap, mean ± std over {len(seeds)} seeds"
        hline_label = "one seed's gap from sampling noise alone (shuffled labels)"
    else:
        ylabel = "regard gap, 95% bootstrap CI"
        hline_label = "gap from sampling noise alone (shuffled labels)"
    if points:
        paths["gap_png"] = scatter_plot(
            points,
            ["copies", "seconds"],
            "gap",
            "method",
            out / "gap_vs_cost.png",
            y_low="lo",
            y_high="hi",
            hline=null,
            hline_label=hline_label,
            title="Intersectional regard gap (largest TV distance between demographics) against cost",
            xlabels=["copies per sample", "seconds per sample"],
            ylabel=ylabel,
            note=_stamp(summary),
        )
    rc = summary["regard_classifier"]
    vader = rc.get("vader", {})
    left_out = "; ".join(setup.get("left_out_forms", [])) or "none"
    lines = [
        f"# Fairness in generation: {setup['model']}",
        "",
        f"Preset `{config['preset']}`: race {config['race']}; contexts {', '.join(config['kinds'])}; "
        f"{config['samples_per_prompt']} samples per prompt, top-k {config['top_k']}, "
        f"{config['max_new_tokens']} new tokens, sampling {_seed_words(seeds)}; {setup['prompts']} prompts, "
        f"{setup['samples_per_method']} samples per method; {setup.get('processes', 1)} process(es).",
        "",
        *_seed_text(seeds),
        f"Regard classifier ({rc.get('encoder', 'all-MiniLM-L6-v2')} embeddings + logistic regression, "
        f"trained on Sheng et al.'s annotations): dev {rc['dev_accuracy']:.3f}, test {rc['test_accuracy']:.3f} "
        "(the authors' BERT: dev 0.92, test 0.80). VADER against the same regard labels: "
        f"dev {vader.get('dev_accuracy', float('nan')):.3f}, test {vader.get('test_accuracy', float('nan')):.3f}.",
        "",
        "Gaps are the largest total-variation distance between two demographics' label distributions "
        "(negative / neutral / positive): intersectional over the product demographics, per attribute over "
        "Sheng et al.'s single-attribute prompts. *noise gap*: the mean gap of the same samples with their labels "
        "shuffled across demographics (what sampling noise alone gives); *p*: the permutation test's p-value; "
        "*swaps undone*: the same gap (and p) when the classifier reads the continuations with every swapped word "
        "mapped to its cycle's first word (woman -> man, White -> Black), a swap-invariant reading under which an "
        "exactly equivariant model's intersectional prompts have equal label distributions in expectation. "
        f"Perplexity on {summary['perplexity_text']} ({config['perplexity_tokens']} tokens). CrowS-Pairs: "
        "percentage of pairs where the more stereotyping sentence is more likely (50 = no preference; ties "
        "count half), on the pairs a word swap of the factors maps one sentence to the other (*covered*) and "
        "on others.",
        "",
        "## Methods",
        "",
        markdown_table(rows, columns, 3),
        "",
        *(
            ["## Intersectional regard gap per seed", "", markdown_table(seed_rows(summary), digits=3), ""]
            if several
            else []
        ),
        "## Regard gaps with their intervals",
        "",
        markdown_table(gap_rows(summary)),
        "",
        "## Regard per demographic (positive / neutral / negative)",
        "",
        markdown_table(dist),
        "",
        "![regard](regard.png)",
        "",
        "![gap against cost](gap_vs_cost.png)",
        "",
        f"Word-swap forms left out (several tokens for this tokenizer): {left_out}.",
        "",
    ]
    paths["report"] = atomic_write_text(out / "report.md", "\n".join(lines))
    return paths


def _seed_text(seeds: list[int]) -> list[str]:
    """The paragraph on seeds of a run with several (none for one seed)."""
    if len(seeds) < 2:
        return []
    return [
        f"Seeds: each of the {len(seeds)} sampling seeds ({', '.join(map(str, seeds))}) draws every sample "
        "anew (a sample's seed hashes its prompt, its index and the run's seed). *mean ± std*: the mean and "
        "sample std (ddof 1) of the seeds' gaps, each computed on that seed's samples alone; *noise, one seed*: "
        "the mean of the seeds' noise gaps, the level one seed's gap is to be read against. *pooled*: the gap "
        "of all seeds' samples together, with its 95% bootstrap interval, noise gap and p-value (more samples, "
        "so a lower noise gap). The figure draws the seeds' mean ± std. Perplexity and CrowS-Pairs do not "
        "depend on the seed.",
        "",
    ]


def rebuild_report(out: str | os.PathLike[str]) -> dict[str, Path]:
    """Rewrite the report of a finished run from its ``summary.json``."""
    out = Path(out)
    return write_report(read_json(out / "summary.json", "run summary"), out)
