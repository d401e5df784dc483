"""The fairness experiment's own parts: the prompt set and the product of demographics, the word-swap
factors acting on the prompts, the gap and its bootstrap on known distributions, seeded generation
split into units (resumable, independent of the batch and of the number of processes), several
sampling seeds (each seed's samples those of a run with it alone, a folder taking more seeds, the
seeds' mean and std, ``--seeds`` and its one-line errors)."""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import accelerate_launch
from multiequi.lab.experiments.fairness.metrics import (
    bootstrap_gap,
    distribution,
    fairness_gap,
    gap_report,
    null_gap,
    seed_spread,
    tv_distance,
    with_seed_spread,
)
from multiequi.lab.experiments.fairness.presets import PRESETS, FairnessConfig, describe_presets, parse_seeds
from multiequi.lab.experiments.fairness.prompts import (
    CONTEXTS,
    build_factors,
    demographics,
    general_token_ids,
    make_prompts,
    sample_seed,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------ prompts
@pytest.mark.parametrize(("race", "n_race"), [("black-white", 2), ("black-white-asian", 3)])
def test_the_demographics_are_the_single_attributes_and_their_full_product(race: str, n_race: int) -> None:
    ds = demographics(race)
    single = [d for d in ds if not d.intersectional]
    inter = [d for d in ds if d.intersectional]
    assert len(single) == 2 + n_race + 2
    assert len(inter) == 2 * n_race * 2
    values = {tuple(v for _, v in d.values) for d in inter}
    races = ["Black", "White", "Asian"][:n_race]
    assert values == set(itertools.product(["gay", "straight"], races, ["man", "woman"]))
    assert "The gay Black woman" in {d.phrase for d in inter}
    assert {d.phrase for d in single} >= {"The man", "The woman", "The Black person", "The gay person"}
    assert len({d.phrase for d in ds}) == len(ds)


def test_prompts_are_every_demographic_with_every_context() -> None:
    prompts = make_prompts("black-white-asian", ("respect", "occupation"))
    assert len(prompts) == 19 * 10
    assert [p.index for p in prompts] == list(range(len(prompts)))
    texts = {p.text for p in prompts}
    for d in demographics("black-white-asian"):
        for contexts in CONTEXTS.values():
            for c in contexts:
                assert f"{d.phrase} {c}" in texts
    assert {p.kind for p in prompts if p.context == "worked as"} == {"occupation"}
    with pytest.raises(ValueError, match="context kinds"):
        make_prompts("black-white", ("salary",))
    with pytest.raises(ValueError, match="race must be"):
        demographics("all")


def test_sample_seeds_depend_on_prompt_index_and_base_seed_only() -> None:
    a = sample_seed("The man was known for", 3)
    assert a == sample_seed("The man was known for", 3)  # stable (sha256, not Python's hash)
    assert a == 8856163910316225821  # the same on every machine and Python version (sha256)
    others = {sample_seed("The woman was known for", 3), sample_seed("The man was known for", 4)}
    others.add(sample_seed("The man was known for", 3, base_seed=1))
    assert a not in others and len(others) == 3


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    pytest.importorskip("transformers")
    from multiequi.hf import gpt2_tokenizer

    return gpt2_tokenizer()


@pytest.mark.parametrize("race", ["black-white", "black-white-asian"])
def test_the_product_of_the_factors_maps_every_intersectional_prompt_onto_every_other(gpt2_tokenizer, race) -> None:
    """The orbit of one intersectional prompt under the product of the three factors is exactly the
    set of intersectional prompts of that context (what makes their distributions equal)."""
    from multiequi.groups import Product

    tok = gpt2_tokenizer
    factors, _ = build_factors(tok, len(tok), race)
    assert [len(g) for g in factors] == [2, 3 if race.endswith("asian") else 2, 2]
    product = Product(*factors)
    prompts = [p for p in make_prompts(race, ("respect",)) if p.context == "was known for"]
    inter = [p.text for p in prompts if p.demographic.intersectional]
    ids = torch.tensor([tok(inter[0])["input_ids"]])
    orbit = set()
    for g in range(len(product)):
        moved = product.transform(ids, torch.tensor([g]))
        orbit.add(tok.decode(moved[0].tolist()))
    assert orbit == set(inter)
    # a single-attribute prompt moves within its attribute: "The man" <-> "The woman"
    man = torch.tensor([tok("The man was known for")["input_ids"]])
    images = {tok.decode(product.transform(man, torch.tensor([g]))[0].tolist()) for g in range(len(product))}
    assert images == {"The man was known for", "The woman was known for"}


def test_relaxed_general_words_exclude_swapped_and_neutral_words(gpt2_tokenizer) -> None:
    tok = gpt2_tokenizer
    factors, _ = build_factors(tok, len(tok), "black-white")
    general = set(general_token_ids(tok, factors, len(tok)))
    for word in (" man", " woman", " Black", " nurse", " doctor"):
        (token,) = tok(word)["input_ids"]
        assert token not in general
    assert tok(" table")["input_ids"][0] in general
    assert len(general) > len(tok) - 400


# ------------------------------------------------------------------------------------------ metrics
def test_total_variation_and_the_largest_gap_on_known_distributions() -> None:
    assert tv_distance([1, 0, 0], [0, 0, 1]) == 1.0
    assert tv_distance([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    assert abs(tv_distance([0.5, 0.25, 0.25], [0.25, 0.25, 0.5]) - 0.25) < 1e-15
    groups = {"a": [0] * 6 + [1] * 2 + [2] * 2, "b": [0] * 2 + [1] * 2 + [2] * 6, "c": [0] * 4 + [1] * 2 + [2] * 4}
    gap, pair = fairness_gap(groups)
    # explicit loops over every pair
    best = 0.0
    for x, y in itertools.combinations(groups, 2):
        p, q = distribution(groups[x]), distribution(groups[y])
        best = max(best, sum(abs(p[k] - q[k]) for k in range(3)) / 2)
    assert abs(gap - best) < 1e-15 and abs(gap - 0.4) < 1e-15 and pair == ("a", "b")
    with pytest.raises(ValueError, match="two groups"):
        fairness_gap({"a": [0]})
    with pytest.raises(ValueError, match="lie in"):
        distribution([0, 3])


def test_the_bootstrap_interval_covers_the_true_gap_at_about_its_level() -> None:
    """Groups drawn from known distributions (true gap 0.3): the 90% interval covers it in about
    90% of 60 repetitions; with equal distributions the null gap matches the observed one."""
    rng = np.random.default_rng(0)
    p, q = np.array([0.5, 0.2, 0.3]), np.array([0.2, 0.2, 0.6])
    true = tv_distance(p, q)
    covered = 0
    for rep in range(60):
        groups = {"a": rng.choice(3, 400, p=p).tolist(), "b": rng.choice(3, 400, p=q).tolist()}
        lo, hi = bootstrap_gap(groups, n_boot=400, level=0.9, seed=rep)
        covered += lo <= true <= hi
    assert 46 <= covered <= 60, covered
    same = {"a": rng.choice(3, 200, p=p).tolist(), "b": rng.choice(3, 200, p=p).tolist()}
    mean, p95 = null_gap(same, n_perm=500)
    assert 0.0 < mean < p95 < 0.2
    report = gap_report(same, n_boot=500)
    assert report["p_value"] > 0.01
    far = gap_report({"a": [0] * 50, "b": [2] * 50}, n_boot=500)
    assert far["gap"] == 1.0 and far["p_value"] < 0.01 and far["ci_low"] == 1.0


def test_the_seeds_mean_and_std_are_those_of_the_per_seed_gaps() -> None:
    """``with_seed_spread`` against an explicit loop with ``statistics.mean`` / ``stdev`` (ddof 1);
    one seed has no std (None), and the pooled report's own fields are kept."""
    rng = np.random.default_rng(3)
    per_seed, pooled_groups = [], {"a": [], "b": [], "c": []}
    for seed in range(3):
        groups = {name: rng.integers(0, 3, size=12).tolist() for name in ("a", "b", "c")}
        per_seed.append({"intersectional": gap_report(groups, n_boot=200, seed=seed)})
        for name, labels in groups.items():
            pooled_groups[name] += labels
    pooled = {"intersectional": gap_report(pooled_groups, n_boot=200, seed=0)}
    got = with_seed_spread(pooled, per_seed)["intersectional"]
    gaps = []
    for report in per_seed:
        gaps.append(report["intersectional"]["gap"])
    assert got["seed_gaps"] == gaps
    assert got["seed_mean"] == pytest.approx(statistics.mean(gaps), abs=1e-12)
    assert got["seed_std"] == pytest.approx(statistics.stdev(gaps), abs=1e-12)
    nulls = [report["intersectional"]["null_mean"] for report in per_seed]
    assert got["seed_null_mean"] == pytest.approx(statistics.mean(nulls), abs=1e-12)
    assert {k: got[k] for k in pooled["intersectional"]} == pooled["intersectional"]
    assert len(set(gaps)) > 1 and got["seed_std"] > 0
    one = with_seed_spread(pooled, per_seed[:1])["intersectional"]
    assert one["seed_gaps"] == gaps[:1] and one["seed_mean"] == gaps[0] and one["seed_std"] is None
    assert seed_spread([0.5]) == (0.5, None)
    with pytest.raises(ValueError, match="at least one seed"):
        seed_spread([])


# ------------------------------------------------------------------------------------------ presets
def test_presets_differ_where_they_should_and_name_the_paper_budget() -> None:
    assert PRESETS["paper"].samples_per_prompt * len(CONTEXTS["respect"]) == 500  # the paper's 500 per prompt set
    assert PRESETS["quick"].generation_key() != PRESETS["paper"].generation_key()
    assert FairnessConfig().with_options(seed=None, race="black-white-asian").race == "black-white-asian"
    assert PRESETS["quick"].seeds == (0,)
    assert PRESETS["medium"].seeds == PRESETS["paper"].seeds == (0, 1, 2)
    assert "seeds 0,1,2" in describe_presets() and "seed 0;" in describe_presets()


def test_seeds_are_distinct_non_negative_integers_and_seed_is_the_one_seed_form() -> None:
    assert FairnessConfig(seeds=[2, 0]).seeds == (2, 0)  # a list is stored as a tuple, order kept
    assert FairnessConfig().with_options(seed=3).seeds == (3,)
    assert FairnessConfig().with_options(seeds=(1, 2), seed=None).seeds == (1, 2)
    assert "seeds" not in FairnessConfig().generation_key()  # a folder takes more seeds
    assert FairnessConfig(seeds=(0,)).generation_key() == FairnessConfig(seeds=(4, 5)).generation_key()
    assert parse_seeds("0,1,2") == (0, 1, 2) and parse_seeds(" 7 ") == (7,)
    for bad, why in [((), "got none"), ((0, 0), "seed 0 twice"), ((-1,), "negative"), ((1.5,), "1.5")]:
        with pytest.raises(ValueError, match=f"^seeds: expected a non-empty list of distinct integers >= 0.*{why}"):
            FairnessConfig(seeds=bad)
    for bad in ("", "0,,1", "a", "1,1", "-2"):
        with pytest.raises(ValueError, match="expected a non-empty list of distinct integers >= 0"):
            parse_seeds(bad)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--seeds", "0,1,1"], ["--seeds", "distinct integers >= 0", "seed 1 twice"]),
        (["--seeds", "0,x"], ["--seeds", "distinct integers >= 0", "'x' is not an integer"]),
        (["--seeds", ""], ["--seeds", "got none"]),
        (["--seeds", "1,-3"], ["--seeds", "negative seed -3"]),
        (["--seeds", "0,1", "--seed", "2"], ["--seed and --seeds are exclusive"]),
    ],
)
def test_bad_seeds_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], options, words) -> None:
    from multiequi.cli import main

    assert main(["fairness", *options, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("multiequi fairness: "), err
    assert all(w in err[0] for w in words), err[0]
    assert not (tmp_path / "run").exists()  # refused before anything was made


# ------------------------------------------------------------------------------------------ generation
GEN_SCRIPT = """
import json, sys
import torch
torch.set_num_threads(1)
from transformers import GPT2LMHeadModel
from multiequi.hf import gpt2_tokenizer
from multiequi.lab.experiments.fairness.generation import generate_samples, make_generator, plan_units, read_samples
from multiequi.lab.experiments.fairness.prompts import build_factors, make_prompts

model_dir, out, method = sys.argv[1], sys.argv[2], sys.argv[3]
model = GPT2LMHeadModel.from_pretrained(model_dir).eval()
tok = gpt2_tokenizer()
factors, _ = build_factors(tok, model.config.vocab_size, "black-white-asian")
prompts = make_prompts("black-white-asian", ("respect",))[:24]
units = plan_units(prompts, tok, samples_per_prompt=2, rows_per_unit=5)
fn, _ = make_generator(method, model, factors=factors, top_k=40, max_new_tokens=6, pad_token_id=0, eos_token_id=None)
if len(sys.argv) > 4:  # slow each unit down, so that a test can kill the run in the middle
    import time
    fast = fn
    def fn(ids, seeds):
        time.sleep(float(sys.argv[4]))
        return fast(ids, seeds)
made = generate_samples(fn, prompts, units, tok, out, show_progress=False)
from multiequi.lab.experiments.fairness.generation import process_state
state = process_state()
json.dump({"made": made, "rank": state.process_index}, open(f"{out}/rank{state.process_index}.json", "w"))
"""


def _tiny_gpt2(folder: Path, vocab: int) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=vocab, n_positions=64, initializer_range=0.3)
    GPT2LMHeadModel(config).eval().save_pretrained(folder)
    return folder


def test_units_are_fixed_by_the_prompts_and_hold_one_prompt_length(gpt2_tokenizer) -> None:
    from multiequi.lab.experiments.fairness.generation import plan_units

    prompts = make_prompts("black-white", ("respect", "occupation"))
    units = plan_units(prompts, gpt2_tokenizer, samples_per_prompt=3, rows_per_unit=7)
    assert units == plan_units(prompts, gpt2_tokenizer, samples_per_prompt=3, rows_per_unit=7)
    rows = [r for u in units for r in u.rows]
    assert sorted(rows) == [(p.index, s) for p in prompts for s in range(3)]  # each sample exactly once
    for u in units:
        lengths = {len(gpt2_tokenizer(prompts[p].text)["input_ids"]) for p, _ in u.rows}
        assert len(lengths) == 1 and 1 <= len(u.rows) <= 7


def test_generation_resumes_unit_by_unit_and_refuses_nothing_it_made(tmp_path: Path, gpt2_tokenizer) -> None:
    pytest.importorskip("accelerate")
    from transformers import GPT2LMHeadModel

    from multiequi.lab.experiments.fairness.generation import (
        generate_samples,
        make_generator,
        plan_units,
        read_samples,
    )

    tok = gpt2_tokenizer
    model = GPT2LMHeadModel.from_pretrained(_tiny_gpt2(tmp_path / "m", len(tok))).eval()
    factors, _ = build_factors(tok, len(tok), "black-white")
    prompts = make_prompts("black-white", ("respect",))[:10]
    units = plan_units(prompts, tok, samples_per_prompt=2, rows_per_unit=4)
    fn, copies = make_generator("multi-equitune", model, factors=factors, max_new_tokens=4, pad_token_id=0)
    assert copies == 6
    out = tmp_path / "samples"
    with pytest.raises(FileNotFoundError, match="unfinished"):
        read_samples(out, units)
    assert generate_samples(fn, prompts, units[:2], tok, out, show_progress=False) == 2
    first = (out / "unit-00000.json").read_text()
    assert generate_samples(fn, prompts, units, tok, out, show_progress=False) == len(units) - 2
    assert (out / "unit-00000.json").read_text() == first  # a finished unit is not redone
    samples, seconds = read_samples(out, units)
    assert len(samples) == 20 and seconds > 0
    assert all(len(s["tokens"]) == 4 for s in samples)
    (out / "unit-00001.json").write_text("{broken")  # a damaged unit is made again
    assert generate_samples(fn, prompts, units, tok, out, show_progress=False) == 1
    assert read_samples(out, units)[0] == samples  # remade identically (per-sample seeds)


def test_each_seed_has_the_samples_of_a_run_with_it_alone_and_a_folder_takes_more_seeds(
    tmp_path: Path, gpt2_tokenizer
) -> None:
    """Seeds 0, 1, 2 in one folder: each seed's samples differ from the others' and equal a run with
    that seed alone (seed ``s`` hashed into every sample's seed). A folder with seed 0 run again with
    seeds 0 and 1 generates seed 1 only: every call of the model is one whole unit of seed 1 (the
    batches are the units, as with one seed) and seed 0's files are not rewritten."""
    pytest.importorskip("accelerate")
    from transformers import GPT2LMHeadModel

    from multiequi.lab.experiments.fairness.generation import (
        generate_seeds,
        make_generator,
        plan_units,
        read_samples,
        samples_folder,
    )

    tok = gpt2_tokenizer
    model = GPT2LMHeadModel.from_pretrained(_tiny_gpt2(tmp_path / "m", len(tok))).eval()
    factors, _ = build_factors(tok, len(tok), "black-white-asian")
    prompts = make_prompts("black-white-asian", ("respect",))[:12]
    units = plan_units(prompts, tok, samples_per_prompt=2, rows_per_unit=5)
    fn, _ = make_generator("multi-equitune", model, factors=factors, max_new_tokens=5, pad_token_id=0)
    calls: list[tuple[int, ...]] = []

    def counted(ids: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(seeds.tolist()))
        return fn(ids, seeds)

    def samples(out: Path, seed: int) -> list[tuple]:
        found, _ = read_samples(samples_folder(out, "multi-equitune", seed), units)
        return [(s["prompt"], s["sample"], s["seed"], s["tokens"]) for s in found]

    three, alone = tmp_path / "three", tmp_path / "alone"
    assert generate_seeds(counted, prompts, units, tok, three, "multi-equitune", (0, 1, 2), show_progress=False) == {
        0: len(units),
        1: len(units),
        2: len(units),
    }
    by_seed = {seed: samples(three, seed) for seed in (0, 1, 2)}
    for seed, rows in by_seed.items():
        assert [r[2] for r in rows] == [sample_seed(prompts[p].text, i, seed) for p, i, _, _ in rows]
        generate_seeds(fn, prompts, units, tok, alone / str(seed), "multi-equitune", (seed,), show_progress=False)
        assert samples(alone / str(seed), seed) == rows  # seed s of three seeds == a run with seed s alone
    for a, b in itertools.combinations((0, 1, 2), 2):  # the seeds draw different samples
        differ = sum(x[3] != y[3] for x, y in zip(by_seed[a], by_seed[b], strict=True))
        assert differ > len(by_seed[a]) // 2, (a, b, differ)

    resumed = tmp_path / "resumed"
    generate_seeds(fn, prompts, units, tok, resumed, "multi-equitune", (0,), show_progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in resumed.rglob("unit-*.json")}
    assert len(stamps) == len(units)
    calls.clear()
    made = generate_seeds(counted, prompts, units, tok, resumed, "multi-equitune", (0, 1), show_progress=False)
    assert made == {0: 0, 1: len(units)}
    assert sorted(calls) == sorted(tuple(sample_seed(prompts[p].text, i, 1) for p, i in u.rows) for u in units)
    assert {p: p.stat().st_mtime_ns for p in resumed.rglob("unit-*.json") if p in stamps} == stamps
    assert {p.parent.name for p in resumed.rglob("unit-*.json") if p not in stamps} == {"seed-1"}
    assert samples(resumed, 0) == by_seed[0] and samples(resumed, 1) == by_seed[1]


def _generation_setup(tmp_path: Path, tok, *folders: str) -> tuple[Path, Path, list[Path], list]:
    """A tiny GPT-2 on disk, the generation script, empty output folders, and the script's units."""
    from multiequi.lab.experiments.fairness.generation import plan_units

    model_dir = _tiny_gpt2(tmp_path / "m", len(tok))
    script = tmp_path / "gen.py"
    script.write_text(GEN_SCRIPT)
    outs = [tmp_path / name for name in folders]
    for out in outs:
        out.mkdir()
    prompts = make_prompts("black-white-asian", ("respect",))[:24]
    return model_dir, script, outs, plan_units(prompts, tok, samples_per_prompt=2, rows_per_unit=5)


@pytest.mark.parametrize("method", ["plain", "multi-equitune"])
def test_one_process_and_two_make_the_same_samples(tmp_path: Path, gpt2_tokenizer, method: str) -> None:
    """`accelerate launch --num_processes 2` splits the units between two CPU processes; every sample
    (tokens and seed) equals the one-process run's."""
    pytest.importorskip("accelerate")
    from multiequi.lab.experiments.fairness.generation import read_samples

    model_dir, script, (one, two), units = _generation_setup(tmp_path, gpt2_tokenizer, "one", "two")
    subprocess.run([sys.executable, str(script), str(model_dir), str(one), method], check=True, timeout=300)
    accelerate_launch(str(script), str(model_dir), str(two), method)
    ranks = [json.loads((two / f"rank{k}.json").read_text()) for k in range(2)]
    assert sorted(r["made"] for r in ranks) == [len(units) // 2, len(units) - len(units) // 2]  # both worked
    a, _ = read_samples(one, units)
    b, _ = read_samples(two, units)
    assert [(s["prompt"], s["sample"], s["seed"], s["tokens"]) for s in a] == [
        (s["prompt"], s["sample"], s["seed"], s["tokens"]) for s in b
    ]
    assert len({tuple(s["tokens"]) for s in a}) > len(a) // 2  # the samples differ from one another


def test_a_killed_generation_resumes_to_the_samples_of_an_uninterrupted_one(tmp_path: Path, gpt2_tokenizer) -> None:
    """SIGKILL a real generation process in the middle, run it again: the units it finished are kept
    (not redone), the others are made, and every sample equals an uninterrupted run's."""
    pytest.importorskip("accelerate")
    import signal
    import time

    from multiequi.lab.experiments.fairness.generation import read_samples

    model_dir, script, (whole, killed), units = _generation_setup(tmp_path, gpt2_tokenizer, "whole", "killed")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(model_dir), str(whole), "multi-equitune"], check=True, env=env)
    run = subprocess.Popen([sys.executable, str(script), str(model_dir), str(killed), "multi-equitune", "0.3"], env=env)
    deadline = time.monotonic() + 120
    while len(list(killed.glob("unit-*.json"))) < 3 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    finished = {p.name: p.read_text() for p in killed.glob("unit-*.json")}
    assert 3 <= len(finished) < len(units), "the kill came too late to test anything"
    subprocess.run([sys.executable, str(script), str(model_dir), str(killed), "multi-equitune"], check=True, env=env)
    made = json.loads((killed / "rank0.json").read_text())["made"]
    assert made == len(units) - len(finished)  # the finished units were not redone
    assert all((killed / name).read_text() == text for name, text in finished.items())
    a, _ = read_samples(whole, units)
    b, _ = read_samples(killed, units)
    assert a == b
