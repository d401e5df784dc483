"""The reduction over copies: sparse output permutations, key-ordered copies, bitwise exactness,
and copies built chunk by chunk."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor

from conftest import SmallCNN, TokenNet
from multiequi import Equitune, Equizero, MultiEquitune
from multiequi.groups import (
    Action,
    Flip,
    Group,
    PermutationAction,
    Product,
    Rot90,
    TokenCycles,
    as_elements,
    resolve_action,
    trusted,
)
from multiequi.symmetrize import sequential_sum, symmetrize_output
from multiequi.testing import equivariance_error

V = 40


# tiny tensors (measured: an index_select of 1.2M floats took 62 ms on two threads, 3 ms on one)
pytestmark = pytest.mark.usefixtures("one_thread")


def _factors() -> list[TokenCycles]:
    return [TokenCycles([[3, 4]], V), TokenCycles([[5, 6, 7]], V), TokenCycles([[8, 9], [10, 11]], V)]


def _ids(b: int = 6, t: int = 9) -> Tensor:
    """Sequences with all swapped words, with none (every copy is the same input), and with
    only one factor's words (copies tied in groups)."""
    ids = torch.randint(12, V, (b, t))
    ids[0, :4] = torch.tensor([3, 5, 8, 11])
    ids[1, 2:5] = torch.tensor([4, 7, 10])
    ids[3, 1] = 6  # row 2 has no swapped word; row 3 only the C3 factor's
    return ids


class _DenseVocab(Action):
    """The vocabulary action without the sparse fast path (the reference)."""

    def transform(self, y: Tensor, elements: Tensor) -> Tensor:
        return self.group.transform_vocab(y, elements)


def test_axis_permutation_restricts_the_action_to_the_entries_it_moves() -> None:
    g = Product(*_factors())
    action = resolve_action(g, "vocab")
    perm = action.axis_permutation()
    assert perm is not None and perm.dim == -1 and perm.size == V
    assert perm.moved.tolist() == list(range(3, 12))
    y = torch.randn(len(g), 2, V, dtype=torch.float64)
    full = action.transform(y, torch.arange(len(g)))
    fixed = torch.ones(V, dtype=torch.bool)
    fixed[perm.moved] = False
    assert torch.equal(full[..., fixed], y[..., fixed])
    sub = y[..., perm.moved]
    assert torch.equal(full[..., perm.moved], torch.gather(sub, -1, perm.src[:, None, :].expand(sub.shape)))
    # a factor's restricted action moves only that factor's words
    multi = MultiEquitune(TokenNet(V), _factors(), output="vocab")
    assert [b.action.axis_permutation().moved.tolist() for b in multi.branches] == [[3, 4], [5, 6, 7], [8, 9, 10, 11]]
    # a user permutation of another axis
    pa = PermutationAction(Flip(), [[0, 1, 2], [2, 1, 0]], dim=-2)
    p = pa.axis_permutation()
    assert (p.dim, p.moved.tolist(), p.src.tolist()) == (-2, [0, 2], [[0, 1], [1, 0]])
    # images move every position: no axis permutation, the dense path is used
    assert resolve_action(Rot90(), "same").axis_permutation() is None


def test_sequential_sum_adds_every_entry_in_the_same_order() -> None:
    col = torch.randn(6).sort().values
    y = col[:, None].expand(6, 80).contiguous()  # every column holds the same six values
    s = sequential_sum(y)
    assert torch.equal(s, s[0].expand(80))
    expected = col[0].clone()
    for v in col[1:]:
        expected = expected + v
    assert torch.equal(s[0], expected)


def test_symmetrize_output_changes_only_the_moved_entries() -> None:
    g = Product(*_factors())
    y = torch.randn(3, 5, V, dtype=torch.float64)
    s = symmetrize_output(y, g, "vocab")
    assert torch.equal(s[..., 12:], y[..., 12:]) and torch.equal(s[..., :3], y[..., :3])
    reference = symmetrize_output(y, g, _DenseVocab(g))
    assert torch.allclose(s, reference, atol=1e-14, rtol=0)
    action = resolve_action(g, "vocab")
    for e in range(len(g)):  # bitwise fixed by every element
        assert torch.equal(action.act(s, e), s)


@pytest.mark.parametrize("chunk", [None, 9, 1])
@pytest.mark.parametrize("name", ["equitune", "multi_equitune", "equizero"])
def test_vocabulary_outputs_are_bitwise_equivariant(name: str, chunk: int | None) -> None:
    """float32, every element of a 12-element product, inputs fixed by some or all elements."""
    model = TokenNet(V)
    factors = _factors()
    product = Product(*factors)
    wrapped = {
        "equitune": lambda: Equitune(model, product, output="vocab", chunk_size=chunk),
        "multi_equitune": lambda: MultiEquitune(model, factors, output="vocab", chunk_size=chunk),
        "equizero": lambda: Equizero(model, product, output="vocab", chunk_size=chunk),
    }[name]()
    assert equivariance_error(wrapped, product, _ids(), "vocab") == 0.0
    assert equivariance_error(model, product, _ids(), "vocab") > 1e-3


@pytest.mark.parametrize("wrapper", ["equitune", "multi_equitune"])
def test_sparse_reduction_equals_the_dense_reference(wrapper: str) -> None:
    model = TokenNet(V).double()
    factors = _factors()
    ids = _ids()
    g = Product(*factors)
    cls, groups = (Equitune, g) if wrapper == "equitune" else (MultiEquitune, factors)
    fast, dense = cls(model, groups, output="vocab"), cls(model, groups, output=_DenseVocab(g))
    assert fast.branches[0].keyed and not dense.branches[0].keyed
    unsorted = cls(model, groups, output="vocab", sorted_sum=False)
    with torch.no_grad():
        y_fast, y_dense, y_unsorted = fast(ids), dense(ids), unsorted(ids)
    assert torch.allclose(y_fast, y_dense, atol=1e-13, rtol=0)
    assert torch.allclose(y_unsorted, y_dense, atol=1e-13, rtol=0)
    # and equal to the definition: 1/|G| Σ_g g⁻¹·M(g·x), one element at a time
    if wrapper == "equitune":
        action = resolve_action(g, "vocab")
        with torch.no_grad():
            ref = sum(action.act(model(g.act(ids, e)), g.inverse(e)) for e in range(len(g))) / len(g)
        assert torch.allclose(y_fast, ref, atol=1e-13, rtol=0)


def test_gradients_flow_through_the_sparse_reduction() -> None:
    model = TokenNet(V).double()
    wrapped = MultiEquitune(model, _factors(), output="vocab")
    wrapped(_ids()).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("wrapper", ["equitune", "multi_equitune"])
def test_copies_are_built_chunk_by_chunk(wrapper: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Orbits and canonical forms are made per chunk of examples, never for the whole batch."""
    seen: list[int] = []
    original = Group.orbit

    def spy(self: Group, x: Tensor) -> Tensor:
        if x.dim() == 4:  # a batch of images (templates are single images)
            seen.append(x.shape[0])
        return original(self, x)

    monkeypatch.setattr(Group, "orbit", spy)
    model = SmallCNN().double().eval()
    groups = [Rot90(), Flip()]
    wrapped = (
        Equitune(model, Product(*groups), chunk_size=8)
        if wrapper == "equitune"
        else MultiEquitune(model, groups, chunk_size=6)
    )
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        y = wrapped(x)
    assert seen and max(seen) == 1  # one example per call
    monkeypatch.undo()
    with torch.no_grad():
        whole = type(wrapped)(model, wrapped.factors if wrapper != "equitune" else wrapped.group, chunk_size=None)(x)
    assert torch.allclose(y, whole, atol=1e-12)


def test_element_range_checks_are_skipped_only_inside_trusted() -> None:
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        as_elements([5], 3, torch.device("cpu"))
    with trusted():
        assert as_elements([2], 3, torch.device("cpu")).tolist() == [2]


def test_an_output_of_the_wrong_vocabulary_size_is_refused() -> None:
    for bad in (V - 1, V + 5):  # smaller, and larger (which indexing alone would not notice)
        model = TokenNet(V, out_vocab=bad)
        for wrapped in (
            Equitune(model, Product(*_factors()), output="vocab"),
            MultiEquitune(model, _factors(), output="vocab"),
        ):
            with pytest.raises(ValueError, match=rf"permutes {V} entries along dim -1.*\(6, 9, {bad}\)"):
                wrapped(_ids())


def test_copy_order_is_stable_as_a_prefix_grows() -> None:
    """Greedy decoding calls the wrapper on prefixes that grow by one token: the copies must come
    in an order that extends the previous call's row by row, or a per-row cache (Hugging Face
    past_key_values) would be misaligned."""
    seen: list[Tensor] = []

    class Recorder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = TokenNet(V)

        def forward(self, ids: Tensor) -> Tensor:
            seen.append(ids.clone())
            return self.net(ids)

    ids = _ids(b=6, t=12)
    for wrapped in (
        Equitune(Recorder(), Product(*_factors()), output="vocab", chunk_size=None),
        MultiEquitune(Recorder(), _factors(), output="vocab", chunk_size=None),
    ):
        assert all(b.keyed for b in wrapped.branches)
        seen.clear()
        with torch.no_grad():
            for t in range(1, ids.shape[1] + 1):
                wrapped(ids[:, :t])
        for before, after in itertools.pairwise(seen):
            assert torch.equal(after[:, :-1], before)


def test_both_ways_of_ranking_copies_give_the_same_order() -> None:
    """Few copies are ranked by pairwise comparison, many by torch.unique: which one runs depends
    on the batch and the row length, so a growing prefix can switch between them; the order must
    be the same (lexicographic on the bit patterns, ties by position)."""
    from multiequi.symmetrize import _engine

    gen = torch.Generator().manual_seed(0)
    for trial in range(200):
        k, b, d = (int(v) for v in torch.randint(1, 9, (3,), generator=gen))
        rows = torch.randint(-2, 3, (k, b, d), generator=gen) if trial % 2 else torch.randn(k, b, d, generator=gen)
        rows[k // 2] = rows[0]  # ties
        pairwise = torch.argsort(_engine._lexicographic_ranks(rows), dim=0, stable=True)
        bits = rows if not rows.is_floating_point() else rows.view(torch.int32)
        _, ranks = torch.unique(bits.reshape(k * b, d), dim=0, sorted=True, return_inverse=True)
        assert torch.equal(pairwise, torch.argsort(ranks.reshape(k, b), dim=0, stable=True))


def test_long_rows_are_ranked_by_torch_unique_and_stay_bitwise_equivariant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Many copies of long rows are ranked with torch.unique (the pairwise comparison would need
    k·k·B·T entries): a 120-element product of 2-, 3-, 4- and 5-cycles on 80-token rows. The
    wrapper stays bitwise equivariant in float32, and the order is the pairwise path's order on
    the same rows, and the lexicographic order of the rows written out in Python."""
    from multiequi.symmetrize import _engine

    vocab = 32  # 14 moved words: the sparse, input-ordered path
    factors = [
        TokenCycles([[1, 2]], vocab),
        TokenCycles([[3, 4, 5]], vocab),
        TokenCycles([[6, 7, 8, 9]], vocab),
        TokenCycles([[10, 11, 12, 13, 14]], vocab),
    ]
    product = Product(*factors)
    assert len(product) == 120
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(15, vocab, (4, 80), generator=gen)
    ids[0, :6] = torch.tensor([1, 3, 6, 10, 2, 14])  # every factor's words
    ids[1, 5] = 7  # one factor's words: copies equal in groups of 30
    ids[3, [2, 40]] = torch.tensor([2, 12])  # row 2: no moved word, all 120 copies equal
    wrapped = Equitune(TokenNet(vocab), product, output="vocab", chunk_size=None)
    assert wrapped.branches[0].keyed

    unique_calls: list[int] = []
    recorded: list[tuple[Tensor, Tensor]] = []
    unique, ranks_of = torch.unique, _engine._lexicographic_ranks

    def spy_unique(*args, **kwargs):
        unique_calls.append(1)
        return unique(*args, **kwargs)

    def spy_ranks(rows: Tensor) -> Tensor:
        out = ranks_of(rows)
        recorded.append((rows.clone(), out.clone()))
        return out

    monkeypatch.setattr(torch, "unique", spy_unique)
    monkeypatch.setattr(_engine, "_lexicographic_ranks", spy_ranks)
    with torch.no_grad():
        wrapped(ids)
    assert unique_calls and len(recorded) == 1  # the torch.unique path ran, once
    rows, ranks = recorded[0]
    k, b = rows.shape[:2]
    assert (k, b) == (120, 4)

    # the pairwise path, forced by ranking one example (one column) at a time
    unique_calls.clear()
    pairwise = torch.cat([ranks_of(rows[:, j : j + 1]) for j in range(b)], dim=1)
    assert not unique_calls

    def orders(r: Tensor) -> Tensor:  # sign(r[i] - r[j]) for every pair of copies of every example
        return torch.sign(r[:, None, :] - r[None, :, :])

    assert torch.equal(orders(ranks), orders(pairwise))
    for j in range(b):  # and the lexicographic order of the rows as Python tuples
        keys = [tuple(row) for row in rows[:, j].tolist()]
        position = {key: r for r, key in enumerate(sorted(set(keys)))}
        expected = torch.tensor([position[key] for key in keys])
        assert torch.equal(orders(ranks)[:, :, j], orders(expected[:, None])[:, :, 0])
    assert bool((ranks[:, 2] == ranks[0, 2]).all())  # row 2: all copies tied
    assert len(set(ranks[:, 0].tolist())) == 120  # row 0: all copies differ

    # bitwise equivariance through the torch.unique path, each factor's generator and a sample
    monkeypatch.undo()
    generators = [int(product.embedding(i)[1]) for i in range(len(factors))]
    assert equivariance_error(wrapped, product, ids, "vocab", elements=[0, *generators]) == 0.0
    assert equivariance_error(wrapped, product, ids, "vocab", elements=8, seed=1) == 0.0


def test_an_empty_batch_gives_an_empty_output() -> None:
    """A batch of no examples (the last shard of an uneven split, a generation step with every
    sequence finished) goes through: the model itself accepts it."""
    model = TokenNet(V)
    ids = torch.zeros(0, 9, dtype=torch.long)
    assert model(ids).shape == (0, 9, V)
    for wrapped in (
        Equitune(model, Product(*_factors()), output="vocab", sorted_sum=False),
        MultiEquitune(model, _factors(), output="vocab", sorted_sum=False),
        MultiEquitune(model, _factors(), output=_DenseVocab(Product(*_factors()))),
    ):
        assert not wrapped.branches[0].keyed
        assert wrapped(ids).shape == (0, 9, V)
    assert Equitune(SmallCNN(), Product(Rot90(), Flip()))(torch.zeros(0, 3, 8, 8)).shape == (0, 5)


def test_an_empty_batch_gives_an_empty_output_on_the_input_ordered_path() -> None:
    model = TokenNet(V)
    ids = torch.zeros(0, 9, dtype=torch.long)
    for wrapped in (
        Equitune(model, Product(*_factors()), output="vocab"),
        MultiEquitune(model, _factors(), output="vocab"),
    ):
        assert wrapped.branches[0].keyed
        assert wrapped(ids).shape == (0, 9, V)
