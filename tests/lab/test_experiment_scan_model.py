"""The SCAN seq2seq model through the wrappers: exact equivariance, 6 not 8 copies, decoding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from multiequi import Equitune, MultiEquitune
from multiequi.groups import Product, TokenCycles
from multiequi.lab.datasets.scan import PairData, Vocab, all_commands, encode, factors_for, word_swap
from multiequi.lab.experiments.scan.symmetry import wrap
from multiequi.lab.experiments.scan.training import make_loader
from multiequi.lab.training import TrainConfig, train
from multiequi.models.seq2seq import (
    EOS,
    PAD,
    SOS,
    DecodeCache,
    Seq2Seq,
    exact_match,
    greedy_decode,
    pack,
    seq2seq_loss,
    unpack,
)
from multiequi.testing import CopyCounter, equivariance_error

V = Vocab.of("scan2")
N_IN, N_OUT = len(V.inputs), len(V.outputs)
# commands that use every factor's words: jump/run, left/right, up/down, and none of them
COMMANDS = [
    "jump around left twice and run opposite up",
    "look opposite down after turn right thrice",
    "turn up twice and walk around right",
    "run left after jump down",
    "walk twice",
    "turn around up",
    "jump opposite right thrice after run around down",
]


def _batch(dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    table = dict(all_commands("scan2"))
    return encode([(c, table[c]) for c in COMMANDS], V)


def _trained_tiny_model(tmp_path: Path, method: str) -> Seq2Seq:
    """A tiny GRU trained for a few steps through a wrapper (teacher forcing 0.5), in float64."""
    torch.manual_seed(0)
    model = Seq2Seq(N_IN, N_OUT, "gru", hidden=12).double()
    before = [p.detach().clone() for p in model.parameters()]
    commands = all_commands("scan2")[::997]
    wrapped = wrap(model, factors_for(V, ["verb", "lr", "ud"]), method)
    result = train(
        wrapped,
        make_loader(PairData(commands, V), batch_size=8),
        lambda m, b: seq2seq_loss(m, b, N_IN, teacher_forcing=0.5),
        TrainConfig(steps=3, lr=1e-2, grad_clip=5.0, progress=False),
    )
    assert result.steps == 3 and all(h["train_loss"] > 0 for h in result.history if "train_loss" in h)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    return model.eval()


@pytest.mark.parametrize("method", ["equitune", "multi-equitune"])
def test_fine_tuned_wrapped_model_is_exactly_equivariant_on_scan2(tmp_path: Path, method: str) -> None:
    model = _trained_tiny_model(tmp_path, method)
    factors = factors_for(V, ["verb", "lr", "ud"])
    group = Product(*factors)
    assert len(group) == 8 and group.factors_commute
    src, tgt = _batch()
    x = pack(src, tgt[:, :-1], N_IN)
    kwargs = {"src_len": src.shape[1]}
    wrapped = wrap(model, factors, method)
    # teacher-forced logits, every one of the 8 elements, float64
    assert equivariance_error(model, group, x, "vocab", kwargs=kwargs) > 1e-3  # the plain model is not
    assert equivariance_error(wrapped, group, x, "vocab", kwargs=kwargs) < 1e-9
    # copies that reach the model: Π|G_i| = 8 for equitune, Σ|G_i| = 6 for multi-equitune, in one call
    with CopyCounter(model) as counter:
        wrapped(x, **kwargs)
    assert counter.calls == 1 and counter.rows == (8 if method == "equitune" else 6) * x.shape[0]
    assert wrapped.copies_per_example == counter.rows // x.shape[0]
    # greedy decoding of the wrapped model: decode(g·src) = g·decode(src) for all 8 elements, on the
    # sources that every non-identity element moves (a source fixed by g gets exactly tied logits
    # for each swapped pair, see test_symmetric_sources_get_exactly_tied_logits)
    src = src[[0, 3, 6]]
    pred = greedy_decode(wrapped, src, 16, N_IN)
    for g in range(len(group)):
        moved_src, moved_pred = unpack(group.act(pack(src, pred, N_IN), g), src.shape[1], N_IN)
        assert torch.equal(greedy_decode(wrapped, moved_src, 16, N_IN), moved_pred), f"element {g}"


def test_symmetric_sources_get_tied_logits() -> None:
    """A source fixed by a swap (no word of its pair) gets equal logits for the swapped output
    pair (up to rounding: the copies of a fixed source are computed as different rows): an
    equivariant decoder cannot prefer one, so greedy decoding's choice between them is not
    equivariant. Such a tie never hides a correct token (the correct output contains a pair's
    token only if the source contains one of the pair's words)."""
    torch.manual_seed(0)
    model = Seq2Seq(N_IN, N_OUT, "gru", hidden=8).double().eval()
    factors = factors_for(V, ["verb", "lr", "ud"])
    src, tgt = encode([("walk twice", "I_WALK I_WALK")], V)
    x = pack(src, tgt[:, :-1], N_IN)
    with torch.no_grad():
        plain = model(x, src_len=src.shape[1])
    assert (plain[..., V.out_id["I_TURN_UP"]] - plain[..., V.out_id["I_TURN_DOWN"]]).abs().max() > 1e-3
    for method in ("equitune", "multi-equitune"):
        with torch.no_grad():
            y = wrap(model, factors, method)(x, src_len=src.shape[1])
        for a, b in (("I_RUN", "I_JUMP"), ("I_TURN_LEFT", "I_TURN_RIGHT"), ("I_TURN_UP", "I_TURN_DOWN")):
            torch.testing.assert_close(y[..., V.out_id[a]], y[..., V.out_id[b]], rtol=0, atol=1e-12)


def test_six_copies_not_eight() -> None:
    torch.manual_seed(0)
    model = Seq2Seq(N_IN, N_OUT, "lstm", hidden=8).eval()
    factors = factors_for(V, ["verb", "lr", "ud"])
    src, tgt = _batch()
    x = pack(src, tgt[:, :-1], N_IN)
    counts = {}
    for wrapper in (
        Equitune(model, Product(*factors), output="vocab", chunk_size=None),
        MultiEquitune(model, factors, output="vocab", chunk_size=None),
    ):
        with CopyCounter(model) as c, torch.no_grad():
            wrapper(x, src_len=src.shape[1])
        counts[type(wrapper).__name__] = c.rows / x.shape[0]
    assert counts == {"Equitune": 8.0, "MultiEquitune": 6.0}


def test_group_must_also_move_the_decoder_inputs() -> None:
    """Swapping only the source words is not a symmetry of teacher-forced decoding: the packed
    design (source and decoder inputs transformed together) is what makes the wrapper exact."""
    torch.manual_seed(0)
    model = Seq2Seq(N_IN, N_OUT, "gru", hidden=8).double().eval()
    full = word_swap(V, "verb")
    source_only = TokenCycles(
        [[V.in_id["run"], V.in_id["jump"]]],
        N_IN + N_OUT,
        out_cycles=[[V.out_id["I_RUN"], V.out_id["I_JUMP"]]],
        out_vocab_size=N_OUT,
    )
    src, tgt = _batch()
    x = pack(src, tgt[:, :-1], N_IN)
    kw = {"src_len": src.shape[1]}
    assert equivariance_error(Equitune(model, full, output="vocab"), full, x, "vocab", kwargs=kw) < 1e-9
    assert equivariance_error(Equitune(model, source_only, output="vocab"), full, x, "vocab", kwargs=kw) > 1e-3


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_padding_and_batching_do_not_change_outputs(cell: str) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(N_IN, N_OUT, cell, hidden=8).double().eval()  # type: ignore[arg-type]
    src, tgt = _batch()
    logits = model(pack(src, tgt[:, :-1], N_IN), src_len=src.shape[1])
    lengths = (tgt != PAD).sum(1)
    for i in range(len(COMMANDS)):
        s = src[i : i + 1, : int((src[i] != PAD).sum())]  # no source padding, alone in the batch
        t = tgt[i : i + 1, : int(lengths[i]) - 1]
        alone = model(pack(s, t, N_IN), src_len=s.shape[1])
        torch.testing.assert_close(alone[0], logits[i, : t.shape[1]], rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_decode_cache_changes_cost_not_results(cell: str) -> None:
    torch.manual_seed(1)
    model = Seq2Seq(N_IN, N_OUT, cell, hidden=8).double().eval()  # type: ignore[arg-type]
    wrapped = wrap(model, factors_for(V, ["verb", "lr", "ud"]), "multi-equitune")
    src, _ = _batch()
    for f in (model, wrapped):
        fast = greedy_decode(f, src, 12, N_IN, stop_at_eos=False)
        slow = greedy_decode(f, src, 12, N_IN, stop_at_eos=False, cache=False)
        assert torch.equal(fast, slow)
    # step by step: one miss then hits; a call that does not extend the last one recomputes
    cache = DecodeCache()
    prefix = torch.full((src.shape[0], 1), SOS)
    for _ in range(4):
        last = model(pack(src, prefix, N_IN), src_len=src.shape[1], cache=cache)
        prefix = torch.cat([prefix, last[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert (cache.misses, cache.hits) == (1, 3)
    # through the wrapper too: its copies keep their order as the prefix grows (prefix-stable)
    wrapped_cache, wrapped_prefix = DecodeCache(), torch.full((src.shape[0], 1), SOS)
    for _ in range(4):
        last = wrapped(pack(src, wrapped_prefix, N_IN), src_len=src.shape[1], cache=wrapped_cache)
        wrapped_prefix = torch.cat([wrapped_prefix, last[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert (wrapped_cache.misses, wrapped_cache.hits) == (1, 3)
    other = prefix.flip(0)
    got = model(pack(src.flip(0), other, N_IN), src_len=src.shape[1], cache=cache)
    full = model(pack(src.flip(0), other, N_IN), src_len=src.shape[1])
    assert cache.misses == 2
    torch.testing.assert_close(got[:, -1], full[:, -1], rtol=0, atol=1e-12)


def test_free_running_loss_equals_step_by_step_feeding() -> None:
    """The free-running half of training re-reads the model's own greedy predictions in one call:
    the same logits, hence the same loss, as feeding them one step at a time."""
    torch.manual_seed(0)
    model = Seq2Seq(N_IN, N_OUT, "gru", hidden=8).double().eval()
    src, tgt = _batch()
    steps = tgt.shape[1] - 1
    # the reference, written out: one call per step on the prefix so far, greedy choice, <pad> once
    # a row has produced <eos>; the loss is the cross-entropy of every step's logits on the gold tokens
    prefix = torch.full((src.shape[0], 1), SOS)
    done = torch.zeros(src.shape[0], dtype=torch.bool)
    step_logits = []
    for _ in range(steps):
        logits = model(pack(src, prefix, N_IN), src_len=src.shape[1])[:, -1]
        step_logits.append(logits)
        nxt = torch.where(done, torch.full_like(done, PAD, dtype=torch.long), logits.argmax(-1))
        done |= nxt == EOS
        prefix = torch.cat([prefix, nxt[:, None]], dim=1)
    by_step = torch.stack(step_logits, dim=1)
    expected = nn.functional.cross_entropy(by_step.reshape(-1, N_OUT), tgt[:, 1:].reshape(-1), ignore_index=PAD)
    one_call = model(pack(src, prefix[:, :-1], N_IN), src_len=src.shape[1])
    torch.testing.assert_close(one_call, by_step, rtol=0, atol=1e-12)  # re-reading the prefix in one call
    torch.manual_seed(5)  # a draw >= 0.0 always takes the free-running branch
    free = seq2seq_loss(model, (src, tgt), N_IN, teacher_forcing=0.0)
    torch.testing.assert_close(free, expected, rtol=0, atol=1e-12)
    forced = seq2seq_loss(model, (src, tgt), N_IN, teacher_forcing=1.0)
    gold = model(pack(src, tgt[:, :-1], N_IN), src_len=src.shape[1])
    torch.testing.assert_close(
        forced, nn.functional.cross_entropy(gold.reshape(-1, N_OUT), tgt[:, 1:].reshape(-1), ignore_index=PAD)
    )
    assert float((free - forced).detach().abs()) > 1e-6  # an untrained model's predictions differ from the gold prefix


def test_exact_match_and_clear_errors() -> None:
    gold = torch.tensor([[SOS, 6, 6, EOS, PAD], [SOS, 5, EOS, PAD, PAD]])
    pred = torch.tensor([[6, 6, EOS], [5, 5, EOS]])
    assert exact_match(pred, gold).tolist() == [True, False]
    assert exact_match(torch.tensor([[6, 6]]), gold[:1]).tolist() == [False]  # no <eos>: wrong
    model = Seq2Seq(N_IN, N_OUT, "gru", hidden=4)
    src, tgt = _batch()
    with pytest.raises(ValueError, match=r"pack\(\) the source and target first"):
        model(torch.cat([src, tgt], 1), src_len=src.shape[1])
    with pytest.raises(ValueError, match="src_len must lie in"):
        model(pack(src, tgt, N_IN), src_len=0)
    with pytest.raises(ValueError, match="at least one word"):
        model(pack(torch.zeros_like(src), tgt, N_IN), src_len=src.shape[1])
    with pytest.raises(ValueError, match="cell must be one of"):
        Seq2Seq(N_IN, N_OUT, "transformer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="absent from the scan vocabulary"):
        word_swap(Vocab.of("scan"), "ud")
    with pytest.raises(ValueError, match="method must be"):
        wrap(model, factors_for(V, ["verb"]), "equizero")
