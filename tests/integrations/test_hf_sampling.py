"""Per-row seeded sampling (``multiequi.hf.seeded_sample``, ``SeededSampler``, ``EquivariantLM.generate``
with ``sample_seeds``): a row's tokens depend on its seed only, never on its batch, and follow the
model's distribution."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessorList

from multiequi.groups import TokenCycles
from multiequi.hf import EquivariantLM, SeededSampler, seeded_sample, seeded_uniforms

pytestmark = pytest.mark.usefixtures("one_thread")

V = 48
EOS = 47


def _gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=V, n_positions=64, initializer_range=0.3)
    config.eos_token_id = config.bos_token_id = config.pad_token_id = EOS
    return GPT2LMHeadModel(config).double().eval()


def test_uniforms_are_a_function_of_seed_and_step_and_look_uniform() -> None:
    seeds = torch.arange(50_000)
    u = seeded_uniforms(seeds, 4)
    assert torch.equal(u, seeded_uniforms(seeds, 4))
    assert torch.equal(u[123:124], seeded_uniforms(seeds[123:124], 4))  # alone = in a batch
    assert not torch.equal(u, seeded_uniforms(seeds, 5))  # steps differ
    assert not torch.equal(u[:-1], seeded_uniforms(seeds[1:], 4))  # neighbouring seeds differ
    assert bool(((u >= 0) & (u < 1)).all())
    counts = torch.histc(u.float(), bins=10, min=0, max=1)
    expected = len(u) / 10
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 27.9, chi2  # 99.9% quantile of chi-square with 9 degrees of freedom


def test_seeded_sample_follows_the_distribution_and_never_draws_a_cut_token() -> None:
    probs = torch.tensor([0.1, 0.0, 0.2, 0.3, 0.4])
    scores = probs.log().expand(40_000, 5)
    drawn = seeded_sample(scores, torch.arange(40_000), step=0)
    counts = torch.bincount(drawn, minlength=5).double()
    assert counts[1] == 0
    expected = probs.double() * 40_000
    keep = expected > 0
    chi2 = float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    assert chi2 < 16.3, chi2  # 99.9% quantile, 3 degrees of freedom
    with pytest.raises(ValueError, match="one seed per row"):
        seeded_sample(scores[:3], torch.arange(2), 0)


def test_plain_generate_with_the_sampler_does_not_depend_on_the_batch() -> None:
    """Row 1 alone and row 1 beside other rows: the same tokens (per-row seeds, same logits)."""
    model = _gpt2()
    ids = torch.tensor([[3, 5, 7, 9], [4, 6, 8, 10], [11, 12, 13, 14]])
    seeds = torch.tensor([101, 202, 303])

    def run(rows: list[int]) -> torch.Tensor:
        sampler = SeededSampler(seeds[rows], ids.shape[1], top_k=10)
        return model.generate(
            input_ids=ids[rows],
            attention_mask=torch.ones_like(ids[rows]),
            do_sample=False,
            logits_processor=LogitsProcessorList([sampler]),
            max_new_tokens=8,
            pad_token_id=EOS,
        )

    together = run([0, 1, 2])
    for k in range(3):
        assert torch.equal(run([k])[0], together[k])
    assert not torch.equal(together[0, 4:], together[1, 4:])  # different seeds, different samples


def test_the_sampler_draws_what_equivariant_generate_draws_from_the_same_logits() -> None:
    """A one-element group (the identity only) makes EquivariantLM's logits the model's: the two
    sampling paths (transformers' generate + SeededSampler, EquivariantLM with sample_seeds) must
    then give the same tokens."""
    model = _gpt2()
    trivial = TokenCycles([[1, 2]], V)  # moves tokens 1 and 2 only: prompts and top-k avoid them
    lm = EquivariantLM(model, [trivial], method="equitune").eval()
    with torch.no_grad():
        model.get_output_embeddings().weight[1:3] -= 50.0  # never among the top 10
    ids = torch.tensor([[3, 5, 7, 9], [4, 6, 8, 10]])
    seeds = torch.tensor([5, 6])
    ours = lm.generate(ids, do_sample=True, top_k=10, sample_seeds=seeds, max_new_tokens=6, pad_token_id=EOS)
    sampler = SeededSampler(seeds, ids.shape[1], top_k=10)
    theirs = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        logits_processor=LogitsProcessorList([sampler]),
        max_new_tokens=6,
        pad_token_id=EOS,
    )
    assert torch.equal(ours, theirs)


def test_equivariant_generate_with_seeds_repeats_and_ignores_batch_companions() -> None:
    model = _gpt2()
    lm = EquivariantLM(model, [TokenCycles([[3, 4]], V), TokenCycles([[5, 6, 7]], V)]).eval()
    ids = torch.tensor([[3, 5, 9, 11], [4, 6, 10, 12], [7, 8, 13, 14]])
    seeds = torch.tensor([9, 8, 7])
    a = lm.generate(ids, do_sample=True, top_k=20, sample_seeds=seeds, max_new_tokens=8, pad_token_id=EOS)
    torch.manual_seed(123)  # torch's generator plays no part
    b = lm.generate(ids, do_sample=True, top_k=20, sample_seeds=seeds, max_new_tokens=8, pad_token_id=EOS)
    assert torch.equal(a, b)
    single = lm.generate(
        ids[1:2], do_sample=True, top_k=20, sample_seeds=seeds[1:2], max_new_tokens=8, pad_token_id=EOS
    )
    assert torch.equal(single[0], a[1])
    with pytest.raises(ValueError, match="one seed per returned row"):
        lm.generate(ids, do_sample=True, sample_seeds=seeds[:2], max_new_tokens=2, pad_token_id=EOS)
    with pytest.raises(ValueError, match="do_sample=True"):
        lm.generate(ids, do_sample=False, sample_seeds=seeds, max_new_tokens=2, pad_token_id=EOS)
