"""The zero-shot experiment: every method's invariance and copies, the evaluation units, the
summary against hand counts, and small runs end to end (resume, report rebuilt from the summary,
one process against two under ``accelerate launch``).

The classifier here is a tiny random one with the interface of the real ones (``image_size``,
``preprocess``, ``forward``); the real stand-in is tested in ``test_zeroshot_standin.py`` and
CLIP in ``tests/integrations/test_zeroshot_clip.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import accelerate_launch
from multiequi.groups import Flip, Rot90
from multiequi.lab.datasets.images import ImageData
from multiequi.lab.experiments.zeroshot.evaluation import plan_units, seeded_subset, unit_elements
from multiequi.lab.experiments.zeroshot.methods import LambdaNet, OrbitMemo, build_method, d4, invariance_error
from multiequi.lab.experiments.zeroshot.pipeline import make_prepare, run_zeroshot, summarize_units, train_lambda
from multiequi.lab.experiments.zeroshot.presets import METHODS, PRESETS
from multiequi.lab.experiments.zeroshot.report import rebuild_report, timing_ratios
from multiequi.lab.training.units import RunMismatchError, read_units

pytest.importorskip("ttach")
pytest.importorskip("accelerate")


class TinyClassifier(nn.Module):
    """A random linear classifier of ``S × S`` RGB images with the zero-shot classifiers' interface."""

    def __init__(self, size: int = 8, classes: int = 3, seed: int = 0, delay: float = 0.0) -> None:
        super().__init__()
        self.image_size = size
        self.delay = delay
        g = torch.Generator().manual_seed(seed)
        self.lin = nn.Linear(3 * size * size, classes)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(classes, 3 * size * size, generator=g))
            self.lin.bias.copy_(torch.randn(classes, generator=g))

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return (x - 0.5) / 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.delay:
            time.sleep(self.delay)  # a slow model, so that a run can be killed in the middle
        return self.lin(x.flatten(1))


def tiny_data(n: int = 40, size: int = 8, classes: int = 3) -> ImageData:
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % classes
    return ImageData(
        images=images,
        labels=labels,
        classes=[f"class {c}" for c in range(classes)],
        splits={"train": torch.arange(0, n // 2), "test": torch.arange(n // 2, n)},
        name="tiny random images",
        source="memory",
    )


def _random_lambda(seed: int = 3) -> LambdaNet:
    torch.manual_seed(seed)
    net = LambdaNet()
    nn.init.normal_(net.score.weight, std=0.5)  # not the constant start: the weights must matter
    return net.double()


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_but_plain_is_invariant_to_all_eight_d4_elements(method: str) -> None:
    model = TinyClassifier().double()
    fn = build_method(method, model, weight_net=_random_lambda())
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    err = invariance_error(fn, x)
    if method == "plain":
        assert err["max_abs"] > 1e-2  # the check can fail: the plain model is not invariant
    else:
        assert err["max_abs"] < 1e-9, err
        assert err["agreement"] == 1.0


def test_invariance_holds_in_float32_and_with_tied_equizero_copies() -> None:
    model = TinyClassifier()
    x = torch.randn(4, 3, 8, 8)
    x[0] = x[0] + torch.rot90(x[0], 1, (-2, -1)) + torch.rot90(x[0], 2, (-2, -1)) + torch.rot90(x[0], 3, (-2, -1))
    for method in ("equizero", "multi-equizero", "multi-equitune", "equitune"):
        err = invariance_error(build_method(method, model), x)
        assert err["relative"] < 1e-5 and err["agreement"] == 1.0, (method, err)


def _rows_seen(fn, model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    calls: list[int] = []
    handle = model.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    try:
        with torch.no_grad():
            fn(x)
    finally:
        handle.remove()
    return sum(calls), len(calls)


@pytest.mark.parametrize("method", list(METHODS))
def test_copies_per_image_and_model_calls(method: str) -> None:
    model = TinyClassifier()
    fn = build_method(method, model, weight_net=LambdaNet(), chunk_size=None)
    rows, calls = _rows_seen(fn, model, torch.randn(5, 3, 8, 8))
    assert rows == 5 * METHODS[method]
    assert calls == (8 if method == "ttach" else 1)  # ttach: one call per element; the wrappers: one call


def test_equitune_and_canonical_against_explicit_loops() -> None:
    model = TinyClassifier().double()
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    total = torch.zeros(3, 3, dtype=torch.float64)
    for k in range(4):
        for flip in (False, True):
            xi = torch.rot90(x, k, (-2, -1))
            total += model(xi.flip(-1) if flip else xi)
    got = build_method("equitune", model)(x)
    assert (got - total / 8).abs().max() < 1e-12
    canon = build_method("canonical", model)(x)
    orbit = torch.stack([model(d4().act(x, g)) for g in range(8)])  # the canonical image is an orbit member
    assert all(((orbit[:, i] - canon[i]).abs().amax(-1) < 1e-12).any() for i in range(3))


def test_d4_is_rot90_times_left_right_flip() -> None:
    assert len(d4()) == 8 and d4() == Rot90() * Flip()


def test_orbit_memo_returns_the_models_outputs_and_runs_the_model_only_on_new_rows() -> None:
    model = TinyClassifier()
    x = torch.randn(3, 3, 8, 8)
    memo = OrbitMemo(model, x, batch_size=2)
    calls = []
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    group = d4()
    rows = group.transform(x.repeat(8, 1, 1, 1), torch.arange(8).repeat_interleave(3))  # all 24 D4 images
    got = memo(rows)
    assert calls == [] and memo.misses == 0
    torch.testing.assert_close(got, model(rows).detach())
    stranger = torch.randn(2, 3, 8, 8)
    mixed = torch.cat([rows[:5], stranger, rows[7:9]])
    out = memo(mixed)
    assert memo.misses == 2 and calls == [24, 2]  # the direct check above, then the two new rows in one call
    torch.testing.assert_close(out, model(mixed).detach())


@pytest.mark.parametrize("method", ["lambda-equitune", "multi-lambda-equitune"])
def test_lambda_trained_through_the_memo_equals_lambda_trained_on_the_model(method: str, tmp_path: Path) -> None:
    """Every copy λ's training sends to the classifier is a D4 image of a prepared training image:
    the memo answers all of them, and the trained λ is the one the classifier itself gives."""
    data = tiny_data()
    images, labels = data.images[:8], data.labels[:8]
    model = TinyClassifier()
    prepare = make_prepare(model, invert=True)
    memo = OrbitMemo(model, prepare(images))
    kw = dict(seed=0, epochs=3, lr=1e-2, batch_size=4, show_progress=False)
    via_memo = train_lambda(method, model, images, labels, prepare, checkpoint_dir=tmp_path / "a", memo=memo, **kw)
    direct = train_lambda(method, model, images, labels, prepare, checkpoint_dir=tmp_path / "b", memo=model, **kw)
    assert memo.misses == 0
    assert via_memo.score.weight.abs().sum() > 0  # λ moved from its constant start
    for a, b in zip(via_memo.parameters(), direct.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_units_cover_every_seed_transform_and_image_once() -> None:
    units = plan_units([0, 1], ["none", "d4"], images=10, per_unit=4)
    assert len(units) == 2 * 2 * 3
    for s in (0, 1):
        for t in ("none", "d4"):
            spans = [(u.start, u.stop) for u in units if u.seed == s and u.transform == t]
            assert spans == [(0, 4), (4, 8), (8, 10)]
    d4_unit = next(u for u in units if u.transform == "d4")
    none_unit = next(u for u in units if u.transform == "none")
    assert unit_elements(none_unit, 10).eq(0).all()
    whole = torch.cat([unit_elements(u, 10) for u in units if u.seed == 0 and u.transform == "d4"])
    assert unit_elements(d4_unit, 10).tolist() == whole[:4].tolist()
    assert len(set(whole.tolist())) > 2  # one element per image, not one per batch
    assert seeded_subset(torch.arange(100), 10, 0).tolist() != seeded_subset(torch.arange(100), 10, 1).tolist()


def test_summary_counts_top1_and_top5_by_hand() -> None:
    units = plan_units([0], ["none"], images=4, per_unit=2)
    records = [
        {"labels": [0, 1], "top5": {"plain": [[0, 1], [2, 1]]}, "seconds": {"plain": 0.5}},
        {"labels": [2, 2], "top5": {"plain": [[1, 0], [2, 0]]}, "seconds": {"plain": 0.5}},
    ]
    (row,) = summarize_units(records, units)
    assert row["top1"] == 2 / 4  # images 0 and 3
    assert row["top5"] == 3 / 4  # image 2's label is not in its list
    assert row["ms_per_image"] == pytest.approx(250.0)


def test_timing_ratios_pair_rounds_and_judge_the_targets() -> None:
    def row(method, calls, rounds):
        return {"model": "m", "method": method, "calls": calls, "batch": 32, "ms_per_round": rounds}

    rows = [
        row("equitune", "auto", [8.0, 16.0, 8.0]),
        row("multi-equitune", "auto", [6.0, 8.0, 7.0]),  # per round 0.75, 0.5, 0.875: median 0.75
        row("ttach", "8", [12.0, 24.0, 12.0]),  # per round 2, 3, 12/7: median 2
        row("equitune", "one call", [10.0, 10.0, 10.0]),
        row("multi-equitune", "one call", [9.0, 8.5, 9.5]),  # 0.9, 0.85, 0.95
    ]
    got = {(r["ratio"], r["calls"]): r for r in timing_ratios(rows)}
    assert set(got) == {
        ("multi-equitune / equitune", "auto / auto"),
        ("multi-equitune / equitune", "one call / one call"),
        ("ttach / multi-equitune", "8 / auto"),
        ("ttach / multi-equitune", "8 / one call"),
    }
    r = got[("multi-equitune / equitune", "auto / auto")]
    assert (r["median"], r["smallest"], r["largest"], r["rounds"], r["met"]) == (0.75, 0.5, 0.875, 3, "yes")
    r = got[("ttach / multi-equitune", "8 / auto")]
    assert (r["median"], r["smallest"], r["largest"], r["met"]) == (2.0, 12 / 7, 3.0, "yes")
    assert got[("multi-equitune / equitune", "one call / one call")]["met"] == "no"  # median 0.9 > 0.8
    r = got[("ttach / multi-equitune", "8 / one call")]
    assert r["median"] == pytest.approx(12 / 9) and r["met"] == "no"
    # rows without per-round times (older summaries): the ratio of the medians
    (old,) = timing_ratios(
        [
            {"model": "m", "method": "equitune", "ms_per_image": 8.0, "batch": 32},
            {"model": "m", "method": "multi-equitune", "ms_per_image": 6.0, "batch": 32},
        ]
    )
    assert old["median"] == 0.75 and old["rounds"] == 0


def _small_config(**kw):
    base = dict(
        images=8,
        images_per_unit=4,
        transforms=("none", "d4"),
        seeds=(0, 1),
        batch_size=4,
        lambda_images=8,
        lambda_epochs=1,
        invariance_images=2,
        timing_batch=4,
        timing_repeats=1,
    )
    base.update(kw)
    return PRESETS["quick"].with_options(**base)


def test_a_small_run_end_to_end_resumes_and_rebuilds_its_report(tmp_path: Path) -> None:
    config = _small_config()
    out = tmp_path / "run"
    summary = run_zeroshot(
        config, out, show_progress=False, model=TinyClassifier(), data=(tiny_data(), True), model_name="tiny"
    )
    assert summary is not None and summary["model"] == "tiny"
    rows = summary["rows"]
    assert {(r["seed"], r["transform"], r["method"]) for r in rows} == {
        (s, t, m) for s in (0, 1) for t in ("none", "d4") for m in METHODS
    }
    assert all(r["images"] == 8 for r in rows)
    for r in rows:  # invariant methods: the same predictions whatever the transforms
        if r["method"] not in ("plain",):
            twin = next(q for q in rows if q["seed"] == r["seed"] and q["method"] == r["method"] and q is not r)
            assert r["top1"] == twin["top1"]
    inv = {r["method"]: r for r in summary["invariance"]}
    assert inv["plain"]["max_abs"] > 1e-3 and inv["multi-equitune"]["relative"] < 1e-5
    assert summary["model_notes"]["lambda_memo_misses"] == 0
    assert {(r["method"], r["calls"]) for r in summary["timing"]} == {
        (m, {"plain": "1", "canonical": "1", "ttach": "8"}.get(m, "auto")) for m in METHODS
    } | {("equitune", "one call"), ("multi-equitune", "one call")}
    assert all(len(r["ms_per_round"]) == 1 for r in summary["timing"])
    for name in ("report.md", "accuracy.md", "accuracy.csv", "accuracy.json", "accuracy.png", "accuracy_vs_time.png"):
        assert (out / name).is_file(), name
    assert (out / "lambda" / "lambda-equitune-seed1").is_dir()

    units = sorted((out / "units").glob("unit-*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in units}
    again = run_zeroshot(
        config, out, show_progress=False, model=TinyClassifier(), data=(tiny_data(), True), model_name="tiny"
    )
    assert again is not None and again["rows"] == rows
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # nothing redone

    (out / "report.md").unlink()
    (out / "accuracy.png").unlink()
    rebuild_report(out)
    assert (out / "report.md").is_file() and (out / "accuracy.png").is_file()
    assert "tiny" in (out / "report.md").read_text()

    with pytest.raises(RunMismatchError, match="other settings"):
        run_zeroshot(
            _small_config(images=6),
            out,
            show_progress=False,
            model=TinyClassifier(),
            data=(tiny_data(), True),
            model_name="tiny",
        )


_SCRIPT = """
import json, sys
sys.path[:0] = [{tests!r}, {root!r}]
from test_zeroshot import TinyClassifier, tiny_data, _small_config
from multiequi.lab.experiments.zeroshot.pipeline import run_zeroshot
config = _small_config(methods=("plain", "equitune", "multi-equitune", "canonical"))
model = TinyClassifier(delay=float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
run_zeroshot(config, sys.argv[1], show_progress=False, model=model, data=(tiny_data(), True), model_name="tiny")
"""


def test_one_process_and_two_give_the_same_predictions(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT.format(tests=str(Path(__file__).parent), root=str(Path(__file__).parents[1])))
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, str(script), str(one)], check=True, timeout=300)
    accelerate_launch(str(script), str(two))
    config = _small_config(methods=("plain", "equitune", "multi-equitune", "canonical"))
    units = plan_units(config.seeds, config.transforms, config.images, config.images_per_unit)
    key = json.loads(next((one / "units").glob("unit-00000.json")).read_text())["key"]
    rest = {k: v for k, v in key.items() if k not in ("seed", "transform", "start", "stop")}
    a = read_units(units, one / "units", key=lambda u: {**u.key(), **rest})
    b = read_units(units, two / "units", key=lambda u: {**u.key(), **rest})
    assert [r["top5"] for r in a] == [r["top5"] for r in b]
    assert json.loads((two / "summary.json").read_text())["processes"] == 2


def test_a_killed_run_resumes_without_redoing_finished_units(tmp_path: Path) -> None:
    """SIGKILL in the middle of the evaluation, then the same command: the finished unit files are
    kept as they are, the rest is done, and the predictions equal an uninterrupted run's."""
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT.format(tests=str(Path(__file__).parent), root=str(Path(__file__).parents[1])))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(whole)], check=True, timeout=300, env=env)
    run = subprocess.Popen([sys.executable, str(script), str(killed), "0.05"], env=env)
    deadline = time.monotonic() + 120
    while len(list((killed / "units").glob("unit-*.json"))) < 2 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait()
    finished = {p.name: p.read_text() for p in (killed / "units").glob("unit-*.json")}
    config = _small_config(methods=("plain", "equitune", "multi-equitune", "canonical"))
    units = plan_units(config.seeds, config.transforms, config.images, config.images_per_unit)
    assert 2 <= len(finished) < len(units), "the kill came too late to test anything"
    assert not (killed / "summary.json").exists()
    subprocess.run([sys.executable, str(script), str(killed)], check=True, timeout=300, env=env)
    assert all((killed / "units" / name).read_text() == text for name, text in finished.items())
    key = json.loads((whole / "units" / "unit-00000.json").read_text())["key"]
    rest = {k: v for k, v in key.items() if k not in ("seed", "transform", "start", "stop")}
    a = read_units(units, whole / "units", key=lambda u: {**u.key(), **rest})
    b = read_units(units, killed / "units", key=lambda u: {**u.key(), **rest})
    assert [r["top5"] for r in a] == [r["top5"] for r in b]
    assert _accuracies(killed) == _accuracies(whole)  # (times differ)


def _accuracies(out: Path) -> list[tuple]:
    rows = json.loads((out / "summary.json").read_text())["rows"]
    return [(r["seed"], r["transform"], r["method"], r["top1"], r["top5"]) for r in rows]
