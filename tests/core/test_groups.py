"""Group laws, actions, inverses and bad inputs for every group in multiequi.groups."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multiequi.groups import (
    Flip,
    Group,
    MatrixAction,
    MatrixGroup,
    PermutationAction,
    PermutationGroup,
    Product,
    Rot90,
    TokenCycles,
    TrivialGroup,
)

V = 12


def _image_input() -> torch.Tensor:
    return torch.randn(2, 3, 5, 5, dtype=torch.float64)


def _token_input() -> torch.Tensor:
    return torch.randint(0, V, (3, 7))


def _c4_matrices() -> MatrixGroup:
    r = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    return MatrixGroup([torch.linalg.matrix_power(r, k) for k in range(4)])


GROUPS = {
    "rot90": (Rot90, _image_input),
    "flip_lr": (lambda: Flip(-1), _image_input),
    "flip_ud": (lambda: Flip(-2), _image_input),
    "d4": (lambda: Product(Rot90(), Flip()), _image_input),
    "flips": (lambda: Product(Flip(-1), Flip(-2)), _image_input),
    "c3_tokens": (lambda: TokenCycles([[1, 2, 3]], V), _token_input),
    "tokens_product": (
        lambda: Product(TokenCycles([[1, 2]], V), TokenCycles([[3, 4, 5], [6, 7, 8]], V), TokenCycles([[9, 10]], V)),
        _token_input,
    ),
    "perm_c3": (
        lambda: PermutationGroup([[0, 1, 2], [1, 2, 0], [2, 0, 1]]),
        lambda: torch.randn(4, 3, dtype=torch.float64),
    ),
    "matrix_c4": (_c4_matrices, lambda: torch.randn(4, 2, dtype=torch.float64)),
    "trivial": (TrivialGroup, _image_input),
}


@pytest.fixture(params=list(GROUPS), ids=list(GROUPS))
def group_and_input(request: pytest.FixtureRequest) -> tuple[Group, torch.Tensor]:
    make_group, make_input = GROUPS[request.param]
    return make_group(), make_input()


def test_identity_first_and_latin_square(group_and_input: tuple[Group, torch.Tensor]) -> None:
    g, x = group_and_input
    assert torch.equal(g.act(x, 0), x)
    n = len(g)
    for row in g.table:
        assert sorted(row.tolist()) == list(range(n))
    for a in range(n):
        assert g.compose(a, g.inverse(a)) == 0 and g.compose(g.inverse(a), a) == 0


def test_action_is_a_homomorphism(group_and_input: tuple[Group, torch.Tensor]) -> None:
    g, x = group_and_input
    for a, b in itertools.product(g.elements, repeat=2):
        assert torch.equal(g.act(g.act(x, b), a), g.act(x, g.compose(a, b))), (a, b)


def test_inverse_undoes_action(group_and_input: tuple[Group, torch.Tensor]) -> None:
    g, x = group_and_input
    for a in g.elements:
        assert torch.equal(g.act(g.act(x, a), g.inverse(a)), x)


def test_orbit_matches_elementwise_action(group_and_input: tuple[Group, torch.Tensor]) -> None:
    g, x = group_and_input
    orb = g.orbit(x)
    assert orb.shape == (len(g), *x.shape)
    for a in g.elements:
        assert torch.equal(orb[a], g.act(x, a))


def test_action_is_faithful_on_probe() -> None:
    for g in [Rot90(), Flip(), Product(Rot90(), Flip()), TokenCycles([[1, 2, 3]], V)]:
        orb = g.orbit(g.probe())
        assert len({tuple(o.reshape(-1).tolist()) for o in orb}) == len(g)


def test_rot90_and_flip_follow_torch_conventions() -> None:
    x = torch.randn(2, 3, 4, 4)
    for k in range(4):
        assert torch.equal(Rot90().act(x, k), torch.rot90(x, k, (-2, -1)))
    assert torch.equal(Flip().act(x, 1), torch.flip(x, (-1,)))
    assert torch.equal(Flip(-2).act(x, 1), torch.flip(x, (-2,)))
    y = torch.randn(5, 2, 5)
    assert torch.equal(Rot90((-3, -1)).act(y, 1), torch.rot90(y, 1, (-3, -1)))


def test_d4_is_the_dihedral_group() -> None:
    d4 = Product(Rot90(), Flip())
    assert len(d4) == 8 and not d4.factors_commute and not d4.is_abelian()
    r, f = 2, 1  # rot90·e and flip (mixed radix: rotation most significant)
    assert d4.names[r] == "rot90" and d4.names[f] == "flip-1"
    # r∘f = f∘r⁻¹, and the inverse of a rotation is the opposite rotation
    assert d4.compose(r, f) == d4.compose(f, d4.inverse(r))
    assert d4.names[d4.inverse(r)] == "rot270"
    for g in d4.elements:  # every reflection is its own inverse
        if "flip" in d4.names[g]:
            assert d4.inverse(g) == g


def test_product_of_commuting_groups_has_commuting_factors() -> None:
    g = Product(TokenCycles([[1, 2]], V), TokenCycles([[3, 4, 5]], V))
    assert g.factors_commute and len(g) == 6 and g.is_abelian()
    assert len(Rot90() * Flip()) == 8


def test_product_that_is_not_closed_raises() -> None:
    # (1 2) and (2 3) generate S3 (order 6): the 4 products are not a group
    with pytest.raises(ValueError, match=r"closed|share"):
        Product(TokenCycles([[1, 2]], V), TokenCycles([[2, 3]], V))


def test_product_of_incompatible_groups_raises() -> None:
    with pytest.raises(ValueError, match="same tensors"):
        Product(Rot90(), TokenCycles([[1, 2]], V))
    with pytest.raises(TypeError):
        Product(Rot90(), "flip")  # type: ignore[arg-type]


def test_rot90_rejects_non_square() -> None:
    with pytest.raises(ValueError, match=r"\(4, 5\)"):
        Rot90().act(torch.randn(3, 4, 5), 1)
    with pytest.raises(ValueError, match="negative"):
        Rot90((2, 3))
    with pytest.raises(ValueError, match="negative"):
        Flip(3)


def test_token_cycles_action_and_vocab_action() -> None:
    g = TokenCycles([[1, 2, 3]], 5)
    assert g.act(torch.tensor([0, 1, 2, 3, 4]), 1).tolist() == [0, 2, 3, 1, 4]
    y = torch.arange(5.0)
    for k in g.elements:
        gy = g.act_vocab(y, k)
        perm = g.act(torch.arange(5), k)  # π_k(v)
        assert torch.equal(gy[perm], y)  # (g·y)[π_g(v)] = y[v]
    for a, b in itertools.product(g.elements, repeat=2):
        assert torch.equal(g.act_vocab(g.act_vocab(y, b), a), g.act_vocab(y, g.compose(a, b)))


def test_token_cycles_output_vocabulary_can_differ() -> None:
    # SCAN-like: input words jump=3, run=4 (vocab 6); output actions JUMP=1, RUN=2 (vocab 4)
    g = TokenCycles([[3, 4]], 6, out_cycles=[[1, 2]], out_vocab_size=4)
    y = torch.tensor([[0.0, 10.0, 20.0, 30.0]])
    assert g.act_vocab(y, 1).tolist() == [[0.0, 20.0, 10.0, 30.0]]
    with pytest.raises(ValueError, match="size 4"):
        g.act_vocab(torch.zeros(2, 6), 1)


@pytest.mark.parametrize(
    ("cycles", "vocab", "match"),
    [
        ([[1, 2], [2, 3]], 5, "overlap"),
        ([[1, 2], [3, 4, 0]], 5, "same length"),
        ([[1, 7]], 5, "outside the vocabulary"),
        ([[1]], 5, "length >= 2"),
        ([], 5, "at least one"),
    ],
)
def test_token_cycles_bad_definitions(cycles: list, vocab: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TokenCycles(cycles, vocab)


def test_token_cycles_bad_inputs() -> None:
    g = TokenCycles([[1, 2]], 5)
    with pytest.raises(TypeError, match="integer token ids"):
        g.act(torch.tensor([1.0, 2.0]), 1)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        g.act(torch.tensor([1, 9]), 1)
    with pytest.raises(ValueError, match="outside"):
        TokenCycles([[1, 2]], 5, out_cycles=[[1, 9]], out_vocab_size=4)
    with pytest.raises(ValueError, match="length"):
        TokenCycles([[1, 2]], 5, out_cycles=[[1, 2, 3]])


def test_element_indices_are_checked() -> None:
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        Rot90().act(torch.randn(3, 3), 4)


def test_matrices_form_a_representation() -> None:
    for g, shape in [
        (Rot90(), (3, 3)),
        (Product(Rot90(), Flip()), (3, 3)),
        (PermutationGroup([[0, 1, 2], [1, 2, 0], [2, 0, 1]]), (3,)),
    ]:
        m = g.matrices(shape)
        for a, b in itertools.product(g.elements, repeat=2):
            assert torch.equal(m[a] @ m[b], m[g.compose(a, b)])
        x = torch.randn(*shape, dtype=torch.float64)
        for a in g.elements:
            assert torch.allclose(m[a] @ x.reshape(-1), g.act(x, a).reshape(-1))


def test_permutation_group_from_generators() -> None:
    s4 = PermutationGroup.from_generators([[1, 0, 2, 3], [1, 2, 3, 0]])  # a transposition and a 4-cycle
    assert len(s4) == 24 and not s4.is_abelian()
    x = torch.randn(2, 4, dtype=torch.float64)
    for a, b in itertools.product(s4.elements, repeat=2):
        assert torch.equal(s4.act(s4.act(x, b), a), s4.act(x, s4.compose(a, b)))


def test_user_groups_validate() -> None:
    with pytest.raises(ValueError, match="identity"):
        PermutationGroup([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="closed"):
        PermutationGroup([[0, 1, 2], [1, 0, 2], [0, 2, 1]])
    with pytest.raises(ValueError, match="not a permutation"):
        PermutationGroup([[0, 1], [0, 0]])
    with pytest.raises(ValueError, match="closed"):
        MatrixGroup([torch.eye(2), 2 * torch.eye(2)])
    with pytest.raises(ValueError, match="compose like"):
        PermutationAction(Rot90(), [[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1], [1, 2, 3, 0]])
    r = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="compose like"):
        MatrixAction(Rot90(), [torch.eye(2), r, r, r])


def test_permutation_action_composes_like_group() -> None:
    a = PermutationAction(Rot90(), [[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1], [3, 0, 1, 2]], dim=-2)
    y = torch.randn(4, 5, dtype=torch.float64)
    g = a.group
    for p, q in itertools.product(g.elements, repeat=2):
        assert torch.equal(a.act(a.act(y, q), p), a.act(y, g.compose(p, q)))


@settings(max_examples=25, deadline=None)
@given(size=st.integers(2, 7), seed=st.integers(0, 10_000))
def test_random_cyclic_permutation_groups(size: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    sigma = torch.randperm(size, generator=gen)
    g = PermutationGroup.from_generators([sigma.tolist()])
    lengths, seen = [], set()
    for start in range(size):  # the order of a cyclic group is the lcm of its cycle lengths
        n, i = 0, start
        while i not in seen:
            seen.add(i)
            i, n = int(sigma[i]), n + 1
        lengths.append(max(n, 1))
    assert len(g) == math.lcm(*lengths)
    x = torch.randn(2, size, dtype=torch.float64, generator=gen)
    for a, b in itertools.product(g.elements, repeat=2):
        assert torch.equal(g.act(g.act(x, b), a), g.act(x, g.compose(a, b)))
    for a in g.elements:
        assert torch.equal(g.act(g.act(x, a), g.inverse(a)), x)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_random_token_cycle_groups(data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 4))
    k = data.draw(st.integers(1, 3))
    vocab = n * k + data.draw(st.integers(0, 5))
    ids = data.draw(st.permutations(list(range(vocab))))
    cycles = [ids[i * n : (i + 1) * n] for i in range(k)]
    g = TokenCycles(cycles, vocab)
    x = torch.tensor(data.draw(st.lists(st.integers(0, vocab - 1), min_size=1, max_size=10)))
    y = torch.randn(len(x), vocab, dtype=torch.float64)
    for a, b in itertools.product(g.elements, repeat=2):
        assert torch.equal(g.act(g.act(x, b), a), g.act(x, g.compose(a, b)))
        assert torch.equal(g.act_vocab(g.act_vocab(y, b), a), g.act_vocab(y, g.compose(a, b)))
    assert torch.equal(g.canonicalize(g.act(x, 1)), g.canonicalize(x))


def test_template_canonicalization_is_invariant_and_equivariant() -> None:
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64)
    # invariant to Flip(-1), equivariant to the commuting Flip(-2)
    f1, f2 = Flip(-1), Flip(-2)
    c = f1.canonicalize(x, symmetric_under=f2)
    assert torch.equal(f1.canonicalize(f1.act(x, 1), symmetric_under=f2), c)
    assert torch.equal(f1.canonicalize(f2.act(x, 1), symmetric_under=f2), f2.act(c, 1))
    # every output is a member of the input's orbit
    orb = f1.orbit(x)
    assert all(any(torch.equal(c[b], orb[k, b]) for k in range(2)) for b in range(4))
    with pytest.raises(TypeError, match="floating-point"):
        Flip().canonicalize(torch.ones(2, 3, dtype=torch.long))


def test_a_product_of_factors_that_act_alike_is_refused() -> None:
    """Commuting or not, factors sharing transformations would list one element several times."""
    with pytest.raises(ValueError, match="share transformations"):
        Product(Flip(), Flip())
    with pytest.raises(ValueError, match="share transformations: their product has 4 distinct elements, not 16"):
        Product(Rot90(), Rot90((-1, -2)))
    assert len(Product(Rot90(), Flip())) == 8 and len(Product(Flip(-1), Flip(-2))) == 4


def test_numpy_integers_are_accepted_where_ints_are() -> None:
    import numpy as np

    from multiequi import Equitune

    assert Rot90().sample(np.int64(3), torch.Generator().manual_seed(0)).shape == (3,)
    assert Equitune(torch.nn.Identity(), Rot90(), chunk_size=np.int64(8)).chunk_size == 8
