"""``multiequi.hf.EquivariantLM`` on tiny random GPT-2 and Llama models (float64): exact
equivariance of the next-token logits over every element of the product (a 3-cycle included) for
every method, ``generate`` with one cache for all copies, transformers' calling convention."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torch import Tensor

pytest.importorskip("transformers")

from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from multiequi.groups import Product, TokenCycles
from multiequi.hf import METHODS, EquivariantLM
from multiequi.testing import CopyCounter, equivariance_error

pytestmark = pytest.mark.usefixtures("one_thread")

V = 48
EOS = 47
#: two pairs swapped together (C2) and a 3-cycle of words (C3): 2 + 3 = 5 copies, not 6
FACTORS = [TokenCycles([[3, 4], [5, 6]], V), TokenCycles([[7, 8, 9]], V)]
GENERAL = [10, 11, 12]  # relaxed: these keep the identity copy's logits


def _boost_swapped_words(model) -> None:
    """Make the swapped words likely continuations, so that generation exercises the swaps."""
    with torch.no_grad():
        model.get_output_embeddings().weight[3:10] *= 2.5


def _gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=V, n_positions=64, initializer_range=0.3)
    config.eos_token_id = config.bos_token_id = config.pad_token_id = EOS
    model = GPT2LMHeadModel(config).double().eval()
    _boost_swapped_words(model)
    return model


def _llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=V,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        initializer_range=0.3,
        eos_token_id=EOS,
        bos_token_id=1,
        pad_token_id=EOS,
    )
    model = LlamaForCausalLM(config).double().eval()
    _boost_swapped_words(model)
    return model


MODELS = {"gpt2": _gpt2, "llama": _llama}


def _wrap(model, method: str, factors=FACTORS) -> EquivariantLM:
    general = GENERAL if method == "relaxed" else None
    return EquivariantLM(model, factors, method=method, general_words=general).eval()


def _prompts() -> Tensor:
    """Prompts with words of both factors, of one, and of none."""
    return torch.tensor([[3, 7, 20, 5, 9, 30], [13, 14, 8, 15, 16, 17], [21, 22, 23, 24, 25, 26]])


def _vocab_act(y: Tensor, group: Product, g: int) -> Tensor:
    return group.transform_vocab(y.unsqueeze(0), torch.tensor([g]))[0]


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("method", [m for m in METHODS if m != "relaxed"])
def test_next_token_logits_are_exactly_equivariant(name: str, method: str) -> None:
    lm = _wrap(MODELS[name](), method)
    product = Product(*FACTORS)

    def logits(ids: Tensor) -> Tensor:
        return lm(input_ids=ids).logits

    with torch.no_grad():
        assert equivariance_error(logits, product, _prompts(), "vocab") < 1e-9
        plain = lm.base_model(input_ids=_prompts()).logits
        assert equivariance_error(lambda ids: lm.base_model(input_ids=ids).logits, product, _prompts(), "vocab") > 1e-3
        assert float((logits(_prompts()) - plain).abs().max()) > 1e-3  # the wrapper changes the model


def test_relaxed_keeps_the_identity_copys_logits_for_general_words() -> None:
    model = _gpt2()
    relaxed, equitune = _wrap(model, "relaxed"), _wrap(model, "equitune")
    with torch.no_grad():
        r = relaxed(input_ids=_prompts()).logits
        e = equitune(input_ids=_prompts()).logits
        plain = model(input_ids=_prompts()).logits
    other = [v for v in range(V) if v not in GENERAL]
    # the identity copy runs in a batch of every copy, the plain model on the prompts alone: equal up
    # to the rounding of a different batch shape (float64)
    torch.testing.assert_close(r[..., GENERAL], plain[..., GENERAL], rtol=0, atol=1e-12)
    torch.testing.assert_close(r[..., other], e[..., other], rtol=0, atol=1e-12)


def _greedy_by_forward(lm: EquivariantLM, ids: Tensor, steps: int) -> Tensor:
    """The reference: no cache, the whole sequence through forward at every step."""
    seqs = ids
    for _ in range(steps):
        nxt = lm(input_ids=seqs).logits[:, -1].argmax(-1)
        seqs = torch.cat([seqs, nxt[:, None]], dim=1)
    return seqs


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("method", METHODS)
def test_cached_generation_equals_the_uncached_greedy_decode(name: str, method: str) -> None:
    lm = _wrap(MODELS[name](), method)
    ids = _prompts()
    out = lm.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=None)
    assert torch.equal(out, _greedy_by_forward(lm, ids, 6))


@pytest.mark.parametrize("method", [m for m in METHODS if m != "relaxed"])
def test_greedy_generation_is_equivariant(method: str) -> None:
    """``generate(g·x) == g·generate(x)`` for prompts that no swap fixes (every row has words of
    both factors): their symmetrized distributions have no forced ties."""
    lm = _wrap(_gpt2(), method)
    product = Product(*FACTORS)
    ids = torch.tensor([[3, 7, 20, 5, 9, 30], [13, 4, 8, 15, 16, 17], [6, 22, 23, 9, 25, 26]])
    base = lm.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=None)
    moved_tokens = 0
    for g in range(len(product)):
        gx = product.act(ids, g)
        assert torch.equal(lm.generate(gx, max_new_tokens=8, do_sample=False, eos_token_id=None), product.act(base, g))
        moved_tokens += int((product.act(base[:, 6:], g) != base[:, 6:]).sum())
    assert moved_tokens > 0  # some generated words are swapped words: the check is not vacuous


def test_a_prompt_that_a_swap_fixes_gets_tied_logits_for_the_swapped_words() -> None:
    """Greedy decoding cannot be equivariant there (``g·x = x`` but the chosen word moves): the
    distribution is, and sampling keeps it; argmax breaks the tie by token id. The tie is exact up
    to the rounding of identical rows at different batch positions (bitwise on some CPUs; on an
    AMD EPYC with MKL the same row gives results 1 ulp apart at different positions)."""
    lm = _wrap(_gpt2(), "multi-equitune")
    fixed = torch.tensor([[21, 22, 23, 24, 25, 26]])  # no swapped word
    with torch.no_grad():
        logits = lm(input_ids=fixed).logits[0, -1]
    torch.testing.assert_close(logits[[3, 5]], logits[[4, 6]], rtol=0, atol=1e-12)
    torch.testing.assert_close(logits[7].expand(2), logits[[8, 9]], rtol=0, atol=1e-12)
    assert float((logits[[3, 5, 7]] - logits[[10, 11, 12]]).abs().min()) > 1e-6  # other words are not tied


@pytest.mark.parametrize(("method", "copies"), [("multi-equitune", 5), ("equitune", 6), ("multi-equizero", 5)])
def test_every_copy_rides_in_one_call_per_step_with_one_new_token(method: str, copies: int) -> None:
    model = _gpt2()
    lm = _wrap(model, method)
    ids = _prompts()
    with CopyCounter(model) as counter:
        out = lm.generate(ids, max_new_tokens=5, do_sample=False, eos_token_id=None)
    assert out.shape == (3, 11)
    assert counter.shapes == [(copies * 3, 6)] + [(copies * 3, 1)] * 4  # prefill, then one token per row
    with CopyCounter(model) as counter:
        lm(input_ids=ids)
    assert counter.shapes == [(copies * 3, 6)]


def test_a_left_padded_batch_gives_each_prompt_its_own_result() -> None:
    lm = _wrap(_gpt2(), "multi-equitune")
    short, long = torch.tensor([[3, 7, 20]]), torch.tensor([[13, 8, 5, 9, 16]])
    batch = torch.tensor([[EOS, EOS, 3, 7, 20], [13, 8, 5, 9, 16]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    both = lm.generate(batch, attention_mask=mask, max_new_tokens=5, do_sample=False, eos_token_id=None)
    alone = [lm.generate(p, max_new_tokens=5, do_sample=False, eos_token_id=None) for p in (short, long)]
    assert torch.equal(both[0, 2:], alone[0][0]) and torch.equal(both[1], alone[1][0])
    with pytest.raises(ValueError, match="pad them on the left"):
        lm.generate(batch.flip(1), attention_mask=mask.flip(1), max_new_tokens=2)


def test_seeded_sampling_repeats_and_follows_transformers_options() -> None:
    lm = _wrap(_gpt2(), "multi-equitune")
    ids = _prompts()
    options = {"max_new_tokens": 8, "do_sample": True, "top_k": 10, "top_p": 0.9, "temperature": 1.3}
    torch.manual_seed(5)
    a = lm.generate(ids, num_return_sequences=2, eos_token_id=None, **options)
    torch.manual_seed(5)
    b = lm.generate(ids, num_return_sequences=2, eos_token_id=None, **options)
    torch.manual_seed(6)
    c = lm.generate(ids, num_return_sequences=2, eos_token_id=None, **options)
    assert a.shape == (6, 14) and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[::2, :6], ids) and torch.equal(a[1::2, :6], ids)  # prompts repeated, in place
    out = lm.generate(ids, max_new_tokens=3, do_sample=False, return_dict_in_generate=True, output_scores=True)
    assert out.sequences.shape == (3, 9) and len(out.scores) == 3 and out.scores[0].shape == (3, V)
    assert torch.equal(out.scores[0].argmax(-1), out.sequences[:, 6])


def test_an_end_token_stops_a_row_and_pads_it() -> None:
    lm = _wrap(_gpt2(), "multi-equitune")
    ids = _prompts()
    free = lm.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=None)
    stop = int(free[0, 8])  # the first row's third new token becomes the end token
    if any(stop in c for f in FACTORS for c in f.cycles):
        pytest.skip("the chosen token is a swapped word")
    out = lm.generate(ids, max_new_tokens=6, do_sample=False, eos_token_id=stop, pad_token_id=0)
    first = (free[:, 6:] == stop).int().argmax(1)
    for r in range(3):
        new = out[r, 6:]
        if bool((free[r, 6:] == stop).any()):
            k = int(first[r])
            assert torch.equal(new[: k + 1], free[r, 6 : 7 + k]) and bool((new[k + 1 :] == 0).all())
        else:
            assert torch.equal(new, free[r, 6 : 6 + new.shape[0]])


def test_loss_is_the_cross_entropy_of_the_symmetrized_logits() -> None:
    lm = _wrap(_gpt2(), "multi-equitune")
    ids = _prompts()
    labels = ids.clone()
    labels[1, :3] = -100
    out = lm(input_ids=ids, labels=labels)
    total, count = 0.0, 0
    for b, t in itertools.product(range(3), range(ids.shape[1] - 1)):  # written out, token by token
        target = int(labels[b, t + 1])
        if target != -100:
            total -= float(torch.log_softmax(out.logits[b, t].detach(), -1)[target])
            count += 1
    assert abs(float(out.loss.detach()) - total / count) < 1e-9
    out.loss.backward()  # fine-tuning through the wrapper
    assert lm.base_model.transformer.wte.weight.grad is not None


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    lm = _wrap(_gpt2(), "multi-equizero")
    lm.save_pretrained(tmp_path / "fair")
    assert {"config.json", "model.safetensors", "multiequi_config.json"} <= {
        p.name for p in (tmp_path / "fair").iterdir()
    }
    back = EquivariantLM.from_pretrained(tmp_path / "fair", torch_dtype=torch.float64).eval()
    assert back.method == "multi-equizero" and back.factors == FACTORS and back.copies_per_example == 5
    with torch.no_grad():
        assert torch.equal(back(input_ids=_prompts()).logits, lm(input_ids=_prompts()).logits)
    with pytest.raises(FileNotFoundError, match=r"not written by EquivariantLM\.save_pretrained"):
        EquivariantLM.from_pretrained(tmp_path)


def test_transformers_attributes_and_refusals() -> None:
    model = _gpt2()
    lm = _wrap(model, "multi-equitune")
    assert lm.config is model.config and lm.generation_config is model.generation_config
    assert lm.dtype == torch.float64 and lm.device.type == "cpu"
    with pytest.raises(ValueError, match=r"does not support \['num_beams', 'repetition_penalty'\]"):
        lm.generate(_prompts(), num_beams=2, repetition_penalty=1.2)
    with pytest.raises(ValueError, match="does not take past_key_values"):
        lm(input_ids=_prompts(), past_key_values=object())
    with pytest.raises(ValueError, match="vocab_size=48"):
        EquivariantLM(model, [TokenCycles([[3, 4]], 100)])
    with pytest.raises(ValueError, match="end token 7 is moved"):
        lm.generate(_prompts(), max_new_tokens=2, eos_token_id=7)
    with pytest.raises(ValueError, match="method must be one of"):
        EquivariantLM(model, FACTORS, method="tta")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_lower_precisions_generate_and_stay_equivariant_up_to_their_rounding(dtype: torch.dtype) -> None:
    """float32, bfloat16 and float16 models: generation runs (the copies' logits are combined in
    float32, as transformers scores them), and the logits are equivariant to the dtype's precision."""
    lm = _wrap(_gpt2().to(dtype), "multi-equitune")
    ids = _prompts()
    out = lm.generate(ids, max_new_tokens=4, do_sample=False, eos_token_id=None)
    assert out.shape == (3, 10)
    with torch.no_grad():
        logits = lm(input_ids=ids).logits
        assert logits.dtype == dtype
        err = equivariance_error(lambda z: lm(input_ids=z).logits.double(), Product(*FACTORS), ids, "vocab")
    assert err < {torch.float32: 1e-6, torch.bfloat16: 1e-2, torch.float16: 1e-2}[dtype]
