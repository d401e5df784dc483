"""Regard: how a generated sentence regards the person it is about (Sheng et al., EMNLP 2019).

Sheng et al. label GPT-2 continuations of prompts such as "The woman worked as" with the *regard*
they show towards the demographic (negative, neutral, positive), and train a BERT classifier on
those labels. Their annotations are read here, from a copy of their repository's ``data/`` folder
(github.com/ewsheng/nlg-bias, commit 7f8d08e), never from inside this repository:

- :func:`load_regard_data`: the annotated sentences (``regard/{train,train_other,dev,test}.tsv``;
  the demographic mention is masked as ``XYZ``), as class indices of :data:`LABELS`.
- :class:`RegardClassifier`: the substitute for the authors' BERT: a multinomial logistic
  regression (float64, full-batch L-BFGS, L2 penalty chosen on the dev split) on
  all-MiniLM-L6-v2 sentence embeddings (:func:`multiequi.hf.minilm`) of the masked text.
- :func:`vader_labels`, :func:`vader_accuracy`: VADER sentiment thresholded into the same three
  classes (a lexicon baseline; it measures sentiment, not regard).
- :func:`gpt2_reference`: the repository's 6,000 real GPT-2 (small) generations, parsed into
  demographic, context and masked text: a real-GPT-2 baseline for regard distributions.
- :func:`mask_demographic`: "The woman worked as a nurse." -> "XYZ worked as a nurse.", the form
  the classifier was trained on.

Where the data is: ``--regard-data DIR``, else :func:`default_regard_dir` (``$MULTIEQUI_REGARD_DATA``,
else ``shared/data/nlg-bias`` beside the repository).
"""

from __future__ import annotations

import functools
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from multiequi.lab.reporting import atomic_write_json, read_json

from .prompts import CONTEXTS

__all__ = [
    "DATA_ENV",
    "L2_GRID",
    "LABELS",
    "MASK",
    "ReferenceSample",
    "RegardClassifier",
    "RegardData",
    "TextEncoder",
    "default_regard_dir",
    "fit_logistic_regression",
    "gpt2_reference",
    "load_regard_data",
    "mask_demographic",
    "parse_samples",
    "vader_accuracy",
    "vader_labels",
]

#: The regard classes, by class index (the data's labels -1, 0, 1).
LABELS = ("negative", "neutral", "positive")
#: What stands for the demographic mention in the annotated sentences.
MASK = "XYZ"
#: The environment variable naming the data folder.
DATA_ENV = "MULTIEQUI_REGARD_DATA"
#: The L2 penalties :meth:`RegardClassifier.fit` tries (the best on dev is kept).
L2_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)

_DATA_LABELS = {-1: 0, 0: 1, 1: 2}  # the data's labels -> class indices; 2 ("other") is not a regard class
_OTHER = 2
_REGARD_FILES = ("train.tsv", "train_other.tsv", "dev.tsv", "test.tsv")
_SAMPLES_FILE = Path("generated_samples") / "small_gpt2_generated_samples.tsv"
_SOURCE = (
    "the regard annotations of Sheng et al. 2019, 'The Woman Worked as a Babysitter' (github.com/ewsheng/nlg-bias, "
    "folder data/regard); pass --regard-data DIR (or set $MULTIEQUI_REGARD_DATA) with DIR the repository's data "
    "folder, the one holding regard/"
)
_VADER_PIP = "pip install 'multiequi[fairness]'"
_FORMAT = "multiequi-regard-classifier/1"


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class RegardData:
    """The regard annotations as ``(text, class index)`` pairs (classes of :data:`LABELS`).

    Attributes
    ----------
    train : list of (str, int)
        ``train.tsv`` and ``train_other.tsv`` rows labelled negative, neutral or positive, each text
        once, less texts that are also in dev or test (212 rows in Sheng et al.'s data, 211 here).
    dev, test : list of (str, int)
        ``dev.tsv`` (60) and ``test.tsv`` (30).
    left_out : dict of str to int
        Rows not kept, by reason: ``"other"`` (label 2, not a regard class), ``"duplicate"`` (a
        text already read), ``"in dev or test"`` (a training text also held out).
    folder : Path
        The ``regard`` folder read.
    """

    train: list[tuple[str, int]]
    dev: list[tuple[str, int]]
    test: list[tuple[str, int]]
    left_out: dict[str, int] = field(default_factory=dict)
    folder: Path | None = None

    def split(self, name: str) -> list[tuple[str, int]]:
        """The split called ``name`` (``"train"``, ``"dev"`` or ``"test"``)."""
        if name not in ("train", "dev", "test"):
            raise ValueError(f"no split {name!r}: choose train, dev or test")
        return getattr(self, name)


def _find_upwards(start: Path) -> Path | None:
    for ancestor in start.parents:
        candidate = ancestor / "shared" / "data" / "nlg-bias"
        if candidate.is_dir():
            return candidate
    return None


def default_regard_dir() -> Path | None:
    """Where Sheng et al.'s data folder is, if anywhere: the first of these that exists.

    1. ``$MULTIEQUI_REGARD_DATA``;
    2. ``shared/data/nlg-bias`` beside an ancestor folder of this file (for a checkout at
       ``/work/main``: ``/work/shared/data/nlg-bias``);
    3. ``../shared/data/nlg-bias`` from the current folder.

    Returns
    -------
    Path or None
        None when none exists.
    """
    candidates = []
    if os.environ.get(DATA_ENV):
        candidates.append(Path(os.environ[DATA_ENV]).expanduser())
    found = _find_upwards(Path(__file__).resolve())
    if found is not None:
        candidates.append(found)
    candidates.append(Path.cwd() / ".." / "shared" / "data" / "nlg-bias")
    return next((c for c in candidates if c.is_dir()), None)


def _data_folder(folder: str | os.PathLike[str] | None) -> Path:
    if folder is None:
        found = default_regard_dir()
        if found is None:
            raise FileNotFoundError(
                f"no regard data folder found (${DATA_ENV} unset, no shared/data/nlg-bias): {_SOURCE}"
            )
        return found
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"no regard data folder {path}: it should hold {_SOURCE}")
    return path


def _read_lines(path: Path) -> list[str]:
    """The file's lines, without line ends (a final newline makes no empty last line)."""
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}: it is part of {_SOURCE}")
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _read_tsv(path: Path) -> list[tuple[str, int]]:
    """``(text, data label)`` rows of a regard file; a malformed line raises ValueError naming it."""
    rows = []
    for number, line in enumerate(_read_lines(path), start=1):
        label, tab, text = line.partition("\t")
        if not tab or not text.strip():
            raise ValueError(f"{path}, line {number}: expected 'label<TAB>text', got {line[:80]!r}")
        try:
            value = int(label)
        except ValueError:
            value = None
        if value not in (*_DATA_LABELS, _OTHER):
            raise ValueError(f"{path}, line {number}: the label must be -1, 0, 1 or 2, got {label[:20]!r}")
        rows.append((text, value))
    return rows


def load_regard_data(folder: str | os.PathLike[str] | None = None) -> RegardData:
    """Sheng et al.'s regard annotations, as ``(text, class index)`` splits.

    Training rows are those of ``train.tsv`` and ``train_other.tsv`` labelled -1, 0 or 1 (in the
    published data the two files have the same 212 such rows; ``train_other.tsv`` adds 23 rows
    labelled 2, "other", which are not a regard class and are left out). Each text is kept once,
    and a training text that is also in dev or test (one test sentence) is left out of training.
    The dev and test splits keep their rows labelled -1, 0 or 1 (they have no other).
    The choice was made on the dev split, with :meth:`RegardClassifier.fit` on all-MiniLM-L6-v2
    embeddings: these 211 rows reach dev accuracy 0.850; the 212 rows with the test sentence 0.833;
    the 211 rows and the 23 "other" rows as neutral 0.833.

    Parameters
    ----------
    folder : str or path-like, optional
        The data folder (the one holding ``regard/``) or its ``regard`` folder itself. Default:
        :func:`default_regard_dir`.

    Returns
    -------
    RegardData

    Raises
    ------
    FileNotFoundError
        When the folder or one of its four files is missing; the message says where the data comes from.
    ValueError
        When a line is not ``label<TAB>text`` with a label in -1, 0, 1, 2 (file and line named),
        or a text appears twice with different labels.

    Examples
    --------
    >>> from multiequi.lab.experiments.fairness.regard import LABELS, load_regard_data
    >>> data = load_regard_data()  # doctest: +SKIP
    >>> len(data.train), len(data.dev), len(data.test)  # doctest: +SKIP
    (211, 60, 30)
    >>> text, label = data.test[0]  # doctest: +SKIP
    >>> text, LABELS[label]  # doctest: +SKIP
    ('XYZ earned money by stealing her $500 from a bank.', 'negative')
    """
    root = _data_folder(folder)
    regard = root / "regard" if (root / "regard").is_dir() else root
    files = {name: _read_tsv(regard / name) for name in _REGARD_FILES}
    left_out: Counter[str] = Counter()

    def keep(rows: Iterable[tuple[str, int]], skip: set[str], what: str) -> list[tuple[str, int]]:
        kept: dict[str, int] = {}
        for text, value in rows:
            if value == _OTHER:
                left_out["other"] += 1
                continue
            label = _DATA_LABELS[value]
            if text in kept:
                if kept[text] != label:
                    both = f"{LABELS[kept[text]]} and {LABELS[label]}"
                    raise ValueError(f"{regard}: the {what} text {text[:80]!r} is labelled both {both}")
                left_out["duplicate"] += 1
            elif text in skip:
                left_out["in dev or test"] += 1
            else:
                kept[text] = label
        return list(kept.items())

    dev = keep(files["dev.tsv"], set(), "dev")
    test = keep(files["test.tsv"], set(), "test")
    held_out = {t for t, _ in dev} | {t for t, _ in test}
    train = keep([*files["train.tsv"], *files["train_other.tsv"]], held_out, "training")
    return RegardData(train=train, dev=dev, test=test, left_out=dict(left_out), folder=regard)


# ----------------------------------------------------------------------------- masking
def mask_demographic(text: str, demographic: str) -> str:
    """Replace the demographic mention that starts ``text`` by ``XYZ``.

    Parameters
    ----------
    text : str
        A sentence starting with ``demographic`` followed by a space or punctuation (or nothing).
    demographic : str
        The mention, e.g. ``"The Black person"`` (case-sensitive).

    Returns
    -------
    str

    Raises
    ------
    ValueError
        When ``text`` does not start with ``demographic`` as whole words ("The manager ..." does
        not start with "The man").

    Examples
    --------
    >>> mask_demographic("The Black person was known for his kindness.", "The Black person")
    'XYZ was known for his kindness.'
    >>> mask_demographic("The manager was known for it.", "The man")
    Traceback (most recent call last):
    ...
    ValueError: 'The manager was known for it.' does not start with the demographic 'The man'
    """
    if not demographic or not text.startswith(demographic) or _continues_word(text, len(demographic)):
        raise ValueError(f"{text[:80]!r} does not start with the demographic {demographic!r}")
    return MASK + text[len(demographic) :]


def _continues_word(text: str, end: int) -> bool:
    """Whether ``text[end]`` continues the word that ends at ``end`` (a letter, digit, ``_`` or ``-``)."""
    return end < len(text) and (text[end].isalnum() or text[end] in "_-")


# ----------------------------------------------------------------------------- the GPT-2 reference
@dataclass(frozen=True)
class ReferenceSample:
    """One generation of the GPT-2 reference.

    Attributes
    ----------
    demographic : str
        The mention it starts with (``"The Black person"``).
    context : str
        The context that follows it (``"was known for"``).
    kind : str
        ``"respect"`` or ``"occupation"``.
    text : str
        The whole generation, prompt included.
    masked : str
        ``text`` with the demographic replaced by ``XYZ`` (what :class:`RegardClassifier` reads).
    """

    demographic: str
    context: str
    kind: str
    text: str
    masked: str


def parse_samples(
    lines: Sequence[str], demographics: Sequence[str], contexts: dict[str, Sequence[str]] | None = None
) -> tuple[list[ReferenceSample], list[tuple[int, str]]]:
    """Split generations into demographic, context and continuation.

    A line matches when it starts with a demographic and then, after one space, a context, each
    as whole words (the longest one when several fit).

    Parameters
    ----------
    lines : sequence of str
        The generations.
    demographics : sequence of str
        The mentions (``"The man"``, ...).
    contexts : dict of str to sequence of str, optional
        Contexts by kind. Default: Sheng et al.'s five respect and five occupation contexts.

    Returns
    -------
    samples : list of ReferenceSample
        The lines that match, in order.
    unmatched : list of (int, str)
        ``(line number from 1, line)`` of the others.

    Examples
    --------
    >>> samples, unmatched = parse_samples(["The man worked as a cook.", "A man worked as a cook."], ["The man"])
    >>> samples[0].context, samples[0].kind, samples[0].masked
    ('worked as', 'occupation', 'XYZ worked as a cook.')
    >>> unmatched
    [(2, 'A man worked as a cook.')]
    """
    kinds = {c: kind for kind, cs in (CONTEXTS if contexts is None else contexts).items() for c in cs}
    by_length = sorted(demographics, key=len, reverse=True)
    contexts_by_length = sorted(kinds, key=len, reverse=True)
    samples, unmatched = [], []
    for number, line in enumerate(lines, start=1):
        sample = None
        for demographic in by_length:
            if not line.startswith(demographic + " "):
                continue
            rest = line[len(demographic) + 1 :]
            context = next(
                (c for c in contexts_by_length if rest.startswith(c) and not _continues_word(rest, len(c))), None
            )
            if context is not None:
                sample = ReferenceSample(
                    demographic, context, kinds[context], line, mask_demographic(line, demographic)
                )
                break
        if sample is None:
            unmatched.append((number, line))
        else:
            samples.append(sample)
    return samples, unmatched


def gpt2_reference(folder: str | os.PathLike[str] | None = None) -> list[ReferenceSample]:
    """The 6,000 GPT-2 (small) generations of Sheng et al.'s repository, parsed.

    ``generated_samples/small_gpt2_generated_samples.tsv`` holds one generation a line, each
    starting with a demographic of ``demographics.txt`` and one of the ten contexts: 1,000 a
    demographic, 100 a demographic and context, so 500 respect and 500 occupation samples a
    demographic.

    Parameters
    ----------
    folder : str or path-like, optional
        The data folder (holding ``demographics.txt`` and ``generated_samples/``). Default:
        :func:`default_regard_dir`.

    Returns
    -------
    list of ReferenceSample
        In file order.

    Raises
    ------
    FileNotFoundError
        When the folder or a file is missing.
    ValueError
        When a line matches no demographic and context (none does in the published file): the
        message gives their number and the first ones, with line numbers (:func:`parse_samples`
        returns them instead).

    Examples
    --------
    >>> from collections import Counter
    >>> from multiequi.lab.experiments.fairness.regard import gpt2_reference
    >>> samples = gpt2_reference()  # doctest: +SKIP
    >>> len(samples), Counter(s.kind for s in samples)["respect"]  # doctest: +SKIP
    (6000, 3000)
    >>> samples[0].masked[:30]  # doctest: +SKIP
    'XYZ had a job as a clerk at a '
    """
    root = _data_folder(folder)
    demographics = [line.strip() for line in _read_lines(root / "demographics.txt") if line.strip()]
    if not demographics:
        raise ValueError(f"{root / 'demographics.txt'} lists no demographic")
    path = root / _SAMPLES_FILE
    samples, unmatched = parse_samples(_read_lines(path), demographics)
    if unmatched:
        shown = "; ".join(f"line {n}: {line[:60]!r}" for n, line in unmatched[:5])
        raise ValueError(
            f"{path}: {len(unmatched)} of {len(samples) + len(unmatched)} lines start with no demographic of "
            f"demographics.txt followed by one of the ten contexts ({shown})"
        )
    return samples


# ----------------------------------------------------------------------------- VADER
@functools.lru_cache(maxsize=1)
def _vader() -> Any:
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # type: ignore[import-untyped]
    except ImportError as err:
        raise ImportError(f"VADER needs the vaderSentiment package: {_VADER_PIP}") from err
    return SentimentIntensityAnalyzer()


def vader_labels(texts: Sequence[str], threshold: float = 0.05) -> Tensor:
    """VADER's compound sentiment score thresholded into the classes of :data:`LABELS`.

    Compound ``< -threshold``: negative (0); ``> threshold``: positive (2); else neutral (1).

    Parameters
    ----------
    texts : sequence of str
    threshold : float
        Non-negative.

    Returns
    -------
    LongTensor
        ``(len(texts),)`` class indices.

    Raises
    ------
    ImportError
        When vaderSentiment is not installed (``pip install 'multiequi[fairness]'``).

    Examples
    --------
    >>> vader_labels(["XYZ was a wonderful, kind nurse.", "XYZ worked as a clerk.", "XYZ was a horrible thief."])
    tensor([2, 1, 0])
    """
    if isinstance(texts, str):
        raise TypeError("vader_labels needs a sequence of texts, got a single str: pass [text]")
    if not threshold >= 0:
        raise ValueError(f"threshold must be non-negative, got {threshold}")
    analyzer = _vader()
    scores = torch.tensor([analyzer.polarity_scores(t)["compound"] for t in texts], dtype=torch.float64)
    labels = torch.ones(len(scores), dtype=torch.long)
    labels[scores < -threshold] = 0
    labels[scores > threshold] = 2
    return labels


def _accuracy(predicted: Tensor, rows: Sequence[tuple[str, int]]) -> float:
    truth = torch.tensor([label for _, label in rows], dtype=torch.long)
    return float((predicted == truth).double().mean()) if len(rows) else math.nan


def vader_accuracy(data: RegardData, threshold: float = 0.05) -> dict[str, float]:
    """Accuracy of :func:`vader_labels` against the regard labels of the dev and test splits.

    Parameters
    ----------
    data : RegardData
    threshold : float

    Returns
    -------
    dict
        ``{"dev_accuracy", "test_accuracy", "threshold"}``.

    Examples
    --------
    >>> from multiequi.lab.experiments.fairness.regard import load_regard_data, vader_accuracy
    >>> vader_accuracy(load_regard_data())  # doctest: +SKIP
    {'dev_accuracy': 0.65, 'test_accuracy': 0.5333333333333333, 'threshold': 0.05}
    """
    return {
        "dev_accuracy": _accuracy(vader_labels([t for t, _ in data.dev], threshold), data.dev),
        "test_accuracy": _accuracy(vader_labels([t for t, _ in data.test], threshold), data.test),
        "threshold": float(threshold),
    }


# ----------------------------------------------------------------------------- the classifier
class TextEncoder(Protocol):
    """What :class:`RegardClassifier` needs of an encoder (:class:`multiequi.hf.SentenceEncoder` is one)."""

    name: str

    def encode(self, texts: Sequence[str], batch_size: int = ..., show_progress: bool = ...) -> Tensor: ...


def _loss(weight: Tensor, bias: Tensor, x: Tensor, y: Tensor, l2: float) -> Tensor:
    return torch.nn.functional.cross_entropy(x @ weight.T + bias, y) + l2 * weight.pow(2).sum()


def fit_logistic_regression(
    x: Tensor, y: Tensor, l2: float, n_classes: int = 3, max_iter: int = 1000
) -> tuple[Tensor, Tensor]:
    """Multinomial logistic regression by full-batch L-BFGS, in float64.

    Minimises ``mean cross-entropy(x @ W.T + b, y) + l2 * ||W||²`` (the bias is not penalised)
    from zero weights, with a strong-Wolfe line search; deterministic for given inputs and torch
    threads. With ``l2 > 0`` the objective is strictly convex in ``W``: the minimiser is unique.

    Parameters
    ----------
    x : Tensor
        ``(n, d)`` features.
    y : Tensor
        ``(n,)`` class indices in ``0 .. n_classes - 1``.
    l2 : float
        Penalty, non-negative.
    n_classes : int
    max_iter : int
        L-BFGS iterations at most.

    Returns
    -------
    weight : Tensor
        ``(n_classes, d)`` float64.
    bias : Tensor
        ``(n_classes,)`` float64.

    Examples
    --------
    >>> x = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]])
    >>> weight, bias = fit_logistic_regression(x, torch.tensor([0, 0, 1, 1]), l2=1e-3, n_classes=2)
    >>> (x.double() @ weight.T + bias).argmax(1).tolist()
    [0, 0, 1, 1]
    """
    x = torch.as_tensor(x).to(torch.float64)
    y = torch.as_tensor(y).to(torch.long)
    if x.dim() != 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise ValueError(
            f"need x of shape (n, d) and y of shape (n,) with n > 0, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if int(y.min()) < 0 or int(y.max()) >= n_classes:
        raise ValueError(f"labels must lie in 0 .. {n_classes - 1}, got {int(y.min())} .. {int(y.max())}")
    if not l2 >= 0:
        raise ValueError(f"l2 must be non-negative, got {l2}")
    weight = torch.zeros(n_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        max_eval=2 * max_iter,
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = _loss(weight, bias, x, y, l2)
        loss.backward()
        return loss.detach()

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


def _labels(rows: Sequence[tuple[str, int]]) -> Tensor:
    return torch.tensor([label for _, label in rows], dtype=torch.long)


class RegardClassifier:
    """Regard of a sentence: logistic regression on its sentence embedding (masked as ``XYZ``).

    Train with :meth:`fit`; classify with :meth:`predict` / :meth:`predict_proba` (texts whose
    demographic is already masked as ``XYZ``, as in the training data: see
    :func:`mask_demographic`); cache with :meth:`save` / :meth:`load` (a small JSON file of the
    weights; the encoder is not saved, and loading checks its name).

    Parameters
    ----------
    weight : Tensor
        ``(3, dim)`` float64.
    bias : Tensor
        ``(3,)`` float64.
    encoder : TextEncoder, optional
        Needed by :meth:`predict` and :meth:`predict_proba`, not by the ``*_embeddings`` methods.
    encoder_name : str, optional
        Default: ``encoder.name``.
    l2 : float
        The penalty it was trained with (recorded only).

    Examples
    --------
    >>> from multiequi.hf import minilm
    >>> from multiequi.lab.experiments.fairness.regard import LABELS, RegardClassifier, load_regard_data
    >>> classifier, metrics = RegardClassifier.fit(minilm(), load_regard_data())  # doctest: +SKIP
    >>> round(metrics["dev_accuracy"], 3), round(metrics["test_accuracy"], 3), metrics["l2"]  # doctest: +SKIP
    (0.85, 0.7, 0.001)
    >>> predicted = classifier.predict(["XYZ was known for his kindness.", "XYZ was a thief."])  # doctest: +SKIP
    >>> [LABELS[i] for i in predicted]  # doctest: +SKIP
    ['positive', 'negative']
    """

    def __init__(
        self,
        weight: Tensor,
        bias: Tensor,
        *,
        encoder: TextEncoder | None = None,
        encoder_name: str | None = None,
        l2: float = math.nan,
    ) -> None:
        weight = torch.as_tensor(weight, dtype=torch.float64)
        bias = torch.as_tensor(bias, dtype=torch.float64)
        if weight.dim() != 2 or weight.shape[0] != len(LABELS) or bias.shape != (len(LABELS),):
            raise ValueError(f"need weight (3, dim) and bias (3,), got {tuple(weight.shape)} and {tuple(bias.shape)}")
        if encoder_name is None:
            if encoder is None:
                raise ValueError("name the encoder (encoder_name=...) or pass it (encoder=...)")
            encoder_name = encoder.name
        if encoder is not None and encoder.name != encoder_name:
            raise ValueError(f"the classifier was trained on {encoder_name!r} embeddings, not {encoder.name!r}")
        self.weight = weight
        self.bias = bias
        self.encoder = encoder
        self.encoder_name = encoder_name
        self.l2 = float(l2)

    @property
    def dim(self) -> int:
        """Length of the embeddings it reads."""
        return int(self.weight.shape[1])

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(
        cls,
        encoder: TextEncoder,
        data: RegardData,
        l2_grid: Sequence[float] = L2_GRID,
        batch_size: int = 64,
    ) -> tuple[RegardClassifier, dict[str, Any]]:
        """Train on ``data.train``, choosing the L2 penalty on ``data.dev``; measure on both held-out splits.

        Every penalty of ``l2_grid`` is fitted on the training split; the one with the best dev
        accuracy is kept (ties: the lower dev cross-entropy, then the larger penalty). The test
        split is only measured.

        Parameters
        ----------
        encoder : TextEncoder
            E.g. :func:`multiequi.hf.minilm`.
        data : RegardData
        l2_grid : sequence of float
        batch_size : int
            Texts per encoder call.

        Returns
        -------
        classifier : RegardClassifier
            Holding ``encoder``.
        metrics : dict
            ``dev_accuracy``, ``test_accuracy``, ``n_train``, ``n_dev``, ``n_test``, ``l2``, ``encoder``
            (its name) and ``dev_accuracy_by_l2`` (``{str(l2): accuracy}``).
        """
        if not data.train or not data.dev:
            raise ValueError("RegardClassifier.fit needs training and dev rows")
        if not l2_grid:
            raise ValueError("l2_grid is empty")

        def embed(rows: Sequence[tuple[str, int]]) -> Tensor:
            return encoder.encode([t for t, _ in rows], batch_size=batch_size).to(torch.float64)

        x_train, x_dev = embed(data.train), embed(data.dev)
        y_train, y_dev = _labels(data.train), _labels(data.dev)
        best: tuple[tuple[float, float, float], RegardClassifier] | None = None
        by_l2: dict[str, float] = {}
        for l2 in l2_grid:
            weight, bias = fit_logistic_regression(x_train, y_train, float(l2), n_classes=len(LABELS))
            candidate = cls(weight, bias, encoder=encoder, l2=float(l2))
            logits = candidate.logits_embeddings(x_dev)
            accuracy = float((logits.argmax(1) == y_dev).double().mean())
            cross_entropy = float(torch.nn.functional.cross_entropy(logits, y_dev))
            by_l2[repr(float(l2))] = accuracy
            key = (accuracy, -cross_entropy, float(l2))
            if best is None or key > best[0]:
                best = (key, candidate)
        assert best is not None
        classifier = best[1]
        metrics: dict[str, Any] = {
            "dev_accuracy": best[0][0],
            "test_accuracy": classifier.accuracy(data.test, batch_size=batch_size) if data.test else math.nan,
            "n_train": len(data.train),
            "n_dev": len(data.dev),
            "n_test": len(data.test),
            "l2": classifier.l2,
            "encoder": classifier.encoder_name,
            "dev_accuracy_by_l2": by_l2,
        }
        return classifier, metrics

    # ------------------------------------------------------------------ inference
    def logits_embeddings(self, embeddings: Tensor) -> Tensor:
        """``(n, 3)`` float64 logits of ``(n, dim)`` embeddings."""
        embeddings = torch.as_tensor(embeddings).to(torch.float64)
        if embeddings.dim() != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(f"need embeddings of shape (n, {self.dim}), got {tuple(embeddings.shape)}")
        return embeddings @ self.weight.T + self.bias

    def proba_embeddings(self, embeddings: Tensor) -> Tensor:
        """``(n, 3)`` float64 class probabilities of ``(n, dim)`` embeddings."""
        return torch.softmax(self.logits_embeddings(embeddings), dim=1)

    def _encode(self, texts: Sequence[str], batch_size: int) -> Tensor:
        if self.encoder is None:
            raise RuntimeError(
                f"this classifier has no encoder: pass the {self.encoder_name!r} encoder (encoder=..., or "
                "RegardClassifier.load(path, encoder)), or use the *_embeddings methods"
            )
        if isinstance(texts, str):
            raise TypeError("pass a sequence of texts, not a single str: [text]")
        return self.encoder.encode(list(texts), batch_size=batch_size)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> Tensor:
        """``(len(texts), 3)`` float64 probabilities of :data:`LABELS` for texts masked as ``XYZ``."""
        return self.proba_embeddings(self._encode(texts, batch_size))

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> Tensor:
        """``(len(texts),)`` class indices of :data:`LABELS` for texts masked as ``XYZ``."""
        return self.logits_embeddings(self._encode(texts, batch_size)).argmax(1)

    def accuracy(self, rows: Sequence[tuple[str, int]], batch_size: int = 64) -> float:
        """Fraction of ``(text, class index)`` rows predicted right."""
        return _accuracy(self.predict([t for t, _ in rows], batch_size=batch_size), rows)

    # ------------------------------------------------------------------ saving
    def state_dict(self) -> dict[str, Any]:
        """The weights and what they were trained for: ``weight``, ``bias`` (tensors), ``labels``,
        ``encoder``, ``l2``."""
        return {
            "weight": self.weight.clone(),
            "bias": self.bias.clone(),
            "labels": list(LABELS),
            "encoder": self.encoder_name,
            "l2": self.l2,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the weights as JSON, atomically (about 25 kB; float64 values round-trip exactly)."""
        state = self.state_dict()
        return atomic_write_json(
            path,
            {
                "format": _FORMAT,
                "labels": state["labels"],
                "encoder": state["encoder"],
                "l2": state["l2"],
                "weight": state["weight"].tolist(),
                "bias": state["bias"].tolist(),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], encoder: TextEncoder | None = None) -> RegardClassifier:
        """Read a classifier written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
        encoder : TextEncoder, optional
            The encoder it was trained on (checked by name); needed to classify texts.

        Raises
        ------
        FileNotFoundError
            When the file is missing.
        ValueError
            When it is not such a file (:class:`multiequi.lab.reporting.DamagedFileError` when
            not JSON), or ``encoder`` is not the one it was trained on.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no regard classifier file {path}")
        state = read_json(path, what="regard classifier")
        if not isinstance(state, dict) or state.get("format") != _FORMAT or tuple(state.get("labels", ())) != LABELS:
            raise ValueError(f"{path} is not a regard classifier written by RegardClassifier.save ({_FORMAT})")
        try:
            weight = torch.tensor(state["weight"], dtype=torch.float64)
            bias = torch.tensor(state["bias"], dtype=torch.float64)
            return cls(weight, bias, encoder=encoder, encoder_name=str(state["encoder"]), l2=float(state["l2"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: damaged regard classifier ({err})") from err

    def __repr__(self) -> str:
        return f"RegardClassifier(encoder={self.encoder_name!r}, dim={self.dim}, l2={self.l2:g})"
