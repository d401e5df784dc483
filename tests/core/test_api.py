"""The public API: structural equality of groups, seeded sampling, product embeddings, the
chunking rule and its use by the engine, keyword-only options, bitwise invariance with sorted
sums, and the Symmetrizer extension point."""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from conftest import SmallCNN, TokenNet
from multiequi import (
    Equitune,
    Equizero,
    LambdaEquitune,
    MultiEquitune,
    MultiEquizero,
    MultiLambdaEquitune,
    Symmetrizer,
)
from multiequi.groups import (
    Flip,
    Group,
    MatrixGroup,
    PermutationGroup,
    Product,
    Rot90,
    TokenCycles,
    TrivialGroup,
    as_elements,
)
from multiequi.symmetrize import AUTO_MIN_ROWS, Branch, examples_per_call, is_tuning
from multiequi.testing import CopyCounter, equivariance_error

V = 12
C3_PERMS = [[0, 1, 2], [1, 2, 0], [2, 0, 1]]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


def _c4_matrices(reverse: bool = False) -> MatrixGroup:
    r = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    powers = [torch.linalg.matrix_power(r, k) for k in range(4)]
    return MatrixGroup([powers[0], *powers[:0:-1]] if reverse else powers)


class _SignFlip(Group):
    """A user group that does not override signature(): equal only to itself."""

    def __init__(self) -> None:
        super().__init__(torch.tensor([[0, 1], [1, 0]]), ["e", "neg"])

    def transform(self, x: Tensor, elements: Tensor) -> Tensor:
        e = as_elements(elements, len(self), x.device)
        return x * (1 - 2 * e.to(x.dtype)).reshape(-1, *[1] * (x.dim() - 1))

    def probe(self) -> Tensor:
        return torch.ones(1, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# Structural equality and hashing
# --------------------------------------------------------------------------------------------

BUILT_EQUAL: dict[str, tuple[Callable[[], Group], Callable[[], Group]]] = {
    "rot90": (Rot90, lambda: Rot90((-2, -1))),
    "rot90_other_dims": (lambda: Rot90((-3, -1)), lambda: Rot90([-3, -1])),
    "flip": (Flip, lambda: Flip(-1)),
    "token_cycles": (lambda: TokenCycles([[1, 2, 3], [4, 5, 6]], V), lambda: TokenCycles(((1, 2, 3), (4, 5, 6)), V)),
    "token_cycles_out": (
        lambda: TokenCycles([[3, 4]], 6, out_cycles=[[1, 2]], out_vocab_size=4),
        lambda: TokenCycles([[3, 4]], 6, out_cycles=[[1, 2]], out_vocab_size=4),
    ),
    # the same group built from its table and from a generator
    "permutations": (lambda: PermutationGroup(C3_PERMS), lambda: PermutationGroup.from_generators([[1, 2, 0]])),
    "matrices": (_c4_matrices, _c4_matrices),
    "trivial": (TrivialGroup, TrivialGroup),
    "product": (lambda: Product(Rot90(), Flip()), lambda: Rot90() * Flip()),
    "product_list": (
        lambda: Product(TokenCycles([[1, 2]], V), TokenCycles([[3, 4, 5]], V)),
        lambda: Product([TokenCycles([[1, 2]], V), TokenCycles([[3, 4, 5]], V)]),
    ),
}

BUILT_DIFFERENT: dict[str, tuple[Callable[[], Group], Callable[[], Group]]] = {
    "rot90_dims": (Rot90, lambda: Rot90((-3, -1))),
    "rot90_direction": (Rot90, lambda: Rot90((-1, -2))),  # element 1 turns the other way
    "flip_dim": (Flip, lambda: Flip(-2)),
    "token_cycle_start": (lambda: TokenCycles([[1, 2, 3]], V), lambda: TokenCycles([[2, 3, 1]], V)),
    "token_cycle_direction": (lambda: TokenCycles([[1, 2, 3]], V), lambda: TokenCycles([[1, 3, 2]], V)),
    "token_cycles_order": (
        lambda: TokenCycles([[1, 2], [3, 4]], V),
        lambda: TokenCycles([[3, 4], [1, 2]], V),
    ),
    "token_vocab": (lambda: TokenCycles([[1, 2]], V), lambda: TokenCycles([[1, 2]], V + 1)),
    "token_out_cycles": (
        lambda: TokenCycles([[3, 4]], 6, out_cycles=[[1, 2]], out_vocab_size=4),
        lambda: TokenCycles([[3, 4]], 6, out_cycles=[[2, 3]], out_vocab_size=4),
    ),
    "token_out_vocab": (
        lambda: TokenCycles([[3, 4]], 6, out_cycles=[[1, 2]], out_vocab_size=4),
        lambda: TokenCycles([[3, 4]], 6, out_cycles=[[1, 2]], out_vocab_size=5),
    ),
    "permutation_dim": (lambda: PermutationGroup(C3_PERMS), lambda: PermutationGroup(C3_PERMS, dim=-2)),
    "permutation_indexing": (
        lambda: PermutationGroup(C3_PERMS),
        lambda: PermutationGroup([[0, 1, 2], [2, 0, 1], [1, 2, 0]]),
    ),
    "matrix_indexing": (_c4_matrices, lambda: _c4_matrices(reverse=True)),
    "product_order": (lambda: Product(Rot90(), Flip()), lambda: Product(Flip(), Rot90())),
    "product_factor": (lambda: Product(Rot90(), Flip()), lambda: Product(Rot90(), Flip(-2))),
    "product_of_one": (lambda: Product(Rot90()), Rot90),
    "types": (Rot90, Flip),
    "trivial_versus_product": (TrivialGroup, lambda: Product(TrivialGroup())),
}


@pytest.mark.parametrize("name", list(BUILT_EQUAL))
def test_groups_built_equal_are_equal_and_hash_alike(name: str) -> None:
    make_a, make_b = BUILT_EQUAL[name]
    a, b = make_a(), make_b()
    assert a is not b
    assert a == b and b == a and not (a != b)
    assert hash(a) == hash(b) and a.signature() == b.signature()
    assert len({a, b}) == 1 and {a: 1}[b] == 1
    # equal groups act alike on every element
    assert torch.equal(a.table, b.table)


@pytest.mark.parametrize("name", list(BUILT_DIFFERENT))
def test_groups_with_different_parameters_are_different(name: str) -> None:
    make_a, make_b = BUILT_DIFFERENT[name]
    a, b = make_a(), make_b()
    assert a != b and b != a and not (a == b)
    assert len({a, b}) == 2
    assert a == make_a() and b == make_b()  # each is equal to a copy of itself


def test_a_user_group_without_a_signature_is_equal_only_to_itself() -> None:
    s, t = _SignFlip(), _SignFlip()
    assert s == s and hash(s) == hash(s)
    assert s != t and len({s, t}) == 2
    assert Product(s, TrivialGroup()) == Product(s, TrivialGroup())  # the same object inside
    assert Product(s, TrivialGroup()) != Product(t, TrivialGroup())
    assert Rot90() != "Rot90" and Rot90() != 4 and not (Rot90() == None)  # noqa: E711


# --------------------------------------------------------------------------------------------
# Seeded sampling
# --------------------------------------------------------------------------------------------

SAMPLED = {
    "flip": Flip,
    "rot90": Rot90,
    "d4": lambda: Product(Rot90(), Flip()),
    "tokens": lambda: Product(TokenCycles([[1, 2]], V), TokenCycles([[3, 4, 5]], V), TokenCycles([[6, 7, 8, 9]], V)),
}


@pytest.mark.parametrize("name", list(SAMPLED))
def test_sample_is_seeded_uniform_and_in_range(name: str) -> None:
    g = SAMPLED[name]()
    n = 400 * len(g)
    a = g.sample(n, torch.Generator().manual_seed(7))
    assert a.dtype == torch.long and a.shape == (n,) and a.device.type == "cpu"
    assert torch.equal(a, g.sample(n, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, g.sample(n, torch.Generator().manual_seed(8)))
    counts = torch.bincount(a, minlength=len(g))
    assert counts.numel() == len(g)  # nothing outside 0 .. |G| - 1
    assert int(a.min()) >= 0
    # uniform: every count within 6 standard deviations of n / |G|
    p = 1 / len(g)
    assert bool(((counts - n * p).abs() < 6 * math.sqrt(n * p * (1 - p))).all())
    torch.manual_seed(3)  # the global generator by default
    first = g.sample(20)
    torch.manual_seed(3)
    assert torch.equal(first, g.sample(20))
    assert g.sample(0).shape == (0,)
    for bad in (-1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="n >= 0"):
            g.sample(bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Product.embedding and factors_commute
# --------------------------------------------------------------------------------------------

C3_CHANNELS = PermutationGroup(C3_PERMS, dim=-3)

PRODUCTS = {
    "d4": (lambda: Product(Rot90(), Flip()), lambda: torch.randn(2, 3, 4, 4, dtype=torch.float64)),
    "d4_c3": (lambda: Product(Rot90(), Flip(), C3_CHANNELS), lambda: torch.randn(2, 3, 4, 4, dtype=torch.float64)),
    "rot_c3": (lambda: Product(Rot90(), C3_CHANNELS), lambda: torch.randn(2, 3, 4, 4, dtype=torch.float64)),
    "flips": (lambda: Product(Flip(-1), Flip(-2)), lambda: torch.randn(2, 3, 4, 5, dtype=torch.float64)),
    "tokens": (
        lambda: Product(TokenCycles([[1, 2]], V), TokenCycles([[3, 4, 5], [6, 7, 8]], V), TokenCycles([[9, 10]], V)),
        lambda: torch.randint(0, V, (3, 7)),
    ),
}


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_product_embedding_maps_each_factor_into_the_product(name: str) -> None:
    make_group, make_input = PRODUCTS[name]
    g, x = make_group(), make_input()
    for i, f in enumerate(g.factors):
        emb = g.embedding(i)
        assert emb.shape == (len(f),) and int(emb[0]) == 0 and len(set(emb.tolist())) == len(f)
        assert torch.equal(g.embedding(i - len(g.factors)), emb)  # negative indices count from the end
        for k in f.elements:  # the product's element acts as the factor's element
            assert torch.equal(g.act(x, int(emb[k])), f.act(x, k))
        for a, b in itertools.product(f.elements, repeat=2):  # a homomorphism
            assert g.compose(int(emb[a]), int(emb[b])) == int(emb[f.compose(a, b)])
        parts = g.decompose(emb)
        for j, part in enumerate(parts):
            assert torch.equal(part, torch.arange(len(f)) if j == i else torch.zeros(len(f), dtype=torch.long))
    for bad in (len(g.factors), -len(g.factors) - 1):
        with pytest.raises(IndexError):
            g.embedding(bad)


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_factors_commute_says_whether_the_actions_commute(name: str) -> None:
    make_group, make_input = PRODUCTS[name]
    g, x = make_group(), make_input()
    commute = all(
        torch.equal(f.act(h.act(x, b), a), h.act(f.act(x, a), b))
        for f, h in itertools.combinations(g.factors, 2)
        for a in f.elements
        for b in h.elements
    )
    assert g.factors_commute == commute
    assert g.is_abelian() == (commute and all(f.is_abelian() for f in g.factors))
    assert name not in ("d4", "d4_c3") or not commute  # the test sees both answers
    assert name != "rot_c3" or commute
    for f in g.factors:  # a group that is not a product
        assert f.factors_commute


# --------------------------------------------------------------------------------------------
# The chunking rule and the engine
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunk", "batch", "copies", "measure", "expected"),
    [
        (None, 32, 6, True, 32),  # None: the whole batch
        (None, 32, 6, False, 32),
        (48, 32, 6, True, 8),  # 48 rows hold 8 whole orbits of 6
        (47, 32, 6, True, 7),  # rounded down to whole orbits
        (4, 32, 6, True, 1),  # fewer rows than one orbit: one example anyway
        (1000, 32, 6, True, 32),  # never more than the batch
        (6, 5, 6, False, 1),  # measure does not matter for an int
        ("auto", 1, 100, True, 1),  # one example: nothing to measure
        ("auto", 2, AUTO_MIN_ROWS // 2, True, 2),  # at most AUTO_MIN_ROWS rows: one call
        ("auto", 2, AUTO_MIN_ROWS // 2 + 1, True, None),  # more: measured
        ("auto", 32, 6, True, None),
        ("auto", 32, 6, False, 32),  # gradients or training mode: one call
    ],
)
def test_examples_per_call(chunk, batch: int, copies: int, measure: bool, expected: int | None) -> None:
    assert examples_per_call(chunk, batch, copies, measure=measure) == expected


def _image_model() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).double()


def _wrappers(model: nn.Module, lam: nn.Module | None = None, **options) -> dict[str, Symmetrizer]:
    lam = lam if lam is not None else nn.Sequential(nn.Flatten(), nn.Linear(16, 1)).double()
    d4 = Product(Rot90(), Flip())
    return {
        "equitune": Equitune(model, d4, **options),
        "lambda": LambdaEquitune(model, d4, weight_net=lam, **options),
        "equizero": Equizero(model, d4, **options),
        "multi_equitune": MultiEquitune(model, [Rot90(), Flip()], **options),
        "multi_lambda": MultiLambdaEquitune(model, [Rot90(), Flip()], weight_net=lam, **options),
        "multi_equizero": MultiEquizero(model, [Rot90(), Flip()], **options),
    }


@pytest.mark.parametrize("chunk", [1, 5, 6, 8, 13, 17, 48, 1000])
@pytest.mark.parametrize("name", ["equitune", "lambda", "multi_equitune", "multi_equizero"])
def test_the_engine_makes_the_calls_examples_per_call_says(name: str, chunk: int) -> None:
    model = _image_model()
    lam = nn.Sequential(nn.Flatten(), nn.Linear(16, 1)).double()
    wrapped = _wrappers(model, lam, chunk_size=chunk)[name]
    b = 5
    x = torch.randn(b, 1, 4, 4, dtype=torch.float64)
    k = wrapped.copies_per_example
    rows: list[int] = []
    handle = model.register_forward_pre_hook(lambda m, a: rows.append(a[0].shape[0]))
    try:
        with torch.no_grad(), CopyCounter(model) as c:
            y = wrapped(x)
    finally:
        handle.remove()
    per = examples_per_call(chunk, b, k)
    assert per is not None
    assert c.calls == math.ceil(b / per) and c.rows == b * k
    assert rows == [min(per, b - lo) * k for lo in range(0, b, per)]  # whole orbits per call
    with torch.no_grad():
        whole = _wrappers(model, lam, chunk_size=None)[name](x)
    torch.testing.assert_close(y, whole, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["equitune", "multi_lambda", "multi_equizero"])
def test_auto_makes_one_call_with_gradients_or_in_training_mode(name: str) -> None:
    model = _image_model()
    b = 6
    x = torch.randn(b, 1, 4, 4, dtype=torch.float64)
    wrapped = _wrappers(model, chunk_size="auto")[name]
    k = wrapped.copies_per_example
    assert examples_per_call("auto", b, k) is None  # a batch the tuner would measure
    for training, grad in [(True, True), (False, True), (True, False)]:
        model.train(training)
        with torch.set_grad_enabled(grad), CopyCounter(model) as c:
            wrapped(x)
        assert (c.calls, c.rows) == (1, b * k), (training, grad)
    # in inference the tuner measures; its calls are flagged by is_tuning() and not counted
    model.eval()
    flags: list[bool] = []
    handle = model.register_forward_pre_hook(lambda m, a: flags.append(is_tuning()))
    try:
        with torch.no_grad(), CopyCounter(model) as c:
            wrapped(x)
    finally:
        handle.remove()
    assert any(flags) and c.calls == flags.count(False) and c.rows == b * k
    assert not is_tuning()


@pytest.mark.parametrize("name", ["equitune", "lambda", "equizero", "multi_equitune", "multi_lambda", "multi_equizero"])
def test_chunk_size_is_checked_when_assigned(name: str) -> None:
    wrapped = _wrappers(_image_model(), chunk_size=7)[name]
    for bad in (0, -3, 2.5, True, "fast", "AUTO"):
        with pytest.raises(ValueError, match="chunk_size"):
            wrapped.chunk_size = bad  # type: ignore[assignment]
        assert wrapped.chunk_size == 7  # the old value is kept
        with pytest.raises(ValueError, match="chunk_size"):
            _wrappers(_image_model(), chunk_size=bad)
    for good in (1, 64, None, "auto"):
        wrapped.chunk_size = good
        assert wrapped.chunk_size == good


WRAPPERS = [Equitune, LambdaEquitune, Equizero, MultiEquitune, MultiLambdaEquitune, MultiEquizero]


@pytest.mark.parametrize("cls", WRAPPERS, ids=lambda c: c.__name__)
def test_options_are_keyword_only_and_shared(cls: type[Symmetrizer]) -> None:
    model = _image_model()
    group: Group | list[Group] = [Rot90(), Flip()] if cls.__name__.startswith("Multi") else Rot90()
    specific = (
        {"weight_net": nn.Sequential(nn.Flatten(), nn.Linear(16, 1)).double()} if "Lambda" in cls.__name__ else {}
    )
    params = inspect.signature(cls).parameters
    assert list(params)[:2] == ["model", "groups" if isinstance(group, list) else "group"]
    for name, p in list(params.items())[2:]:
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, name
    base = inspect.signature(Symmetrizer).parameters
    for name in ("output", "aggregate", "chunk_size", "sorted_sum"):
        assert params[name].default == base[name].default
    # positional options are refused
    with pytest.raises(TypeError):
        cls(model, group, "invariant", **specific)
    if specific:
        with pytest.raises(TypeError):
            cls(model, group, specific["weight_net"])
        with pytest.raises(TypeError, match="weight_net"):
            cls(model, group)
    # the four shared options, by keyword
    w = cls(model, group, output="invariant", aggregate="log_probs", chunk_size=6, sorted_sum=False, **specific)
    assert (w.output, w.aggregate, w.chunk_size, w.sorted_sum) == ("invariant", "log_probs", 6, False)
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        y = w(x)
    assert bool((y < 0).all())  # a mean of log-probabilities
    assert equivariance_error(w, Product(Rot90(), Flip()) if cls.__name__.startswith("Multi") else Rot90(), x) < 1e-9


def test_equizero_options_are_keyword_only() -> None:
    model = _image_model()
    for cls, group in ((Equizero, Rot90()), (MultiEquizero, [Rot90(), Flip()])):
        with pytest.raises(TypeError):
            cls(model, group, "max_prob")  # type: ignore[misc]
        w = cls(model, group, loss="max_prob", straight_through=False, tie_tol=1e-3)
        assert (w.straight_through, w.tie_tol) == (False, 1e-3)


# --------------------------------------------------------------------------------------------
# Bitwise invariance with sorted sums
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["equitune", "lambda", "equizero"])
def test_sorted_sums_make_d4_invariance_bitwise_in_float32(name: str) -> None:
    """float32, all 8 elements of D4, exactly zero error: the copies come in another order under
    a transformation, and every sum over them (means, λ normalisers and weighted sums, the mean
    of the tied copies) is taken in sorted order."""
    model = SmallCNN().eval()
    d4 = Product(Rot90(), Flip())
    lam = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1))
    extra = {"weight_net": lam} if name == "lambda" else {}
    cls = {"equitune": Equitune, "lambda": LambdaEquitune, "equizero": Equizero}[name]
    x = torch.randn(4, 3, 8, 8)
    x[1] = torch.rot90(x[1], 2, (-2, -1)) + x[1]  # a rotation-symmetric image: tied equizero copies
    wrapped = cls(model, d4, chunk_size=None, **extra)
    assert equivariance_error(wrapped, d4, x, elements=list(range(8))) == 0.0
    assert equivariance_error(model, d4, x) > 1e-3


# --------------------------------------------------------------------------------------------
# The extension point: a Symmetrizer subclass with its own reduction
# --------------------------------------------------------------------------------------------


class _MaxOverCopies(Symmetrizer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[Branch, Tensor, Tensor, Tensor]] = []

    def reduce(self, branch: Branch, aligned: Tensor, raw: Tensor, inputs: Tensor, elements: Tensor) -> Tensor:
        self.seen.append((branch, aligned, raw, inputs))
        return aligned.amax(0)


class _IdentityCopy(Symmetrizer):
    """An order-dependent reduction (the first copy): not invariant, so the check can fail."""

    def reduce(self, branch: Branch, aligned: Tensor, raw: Tensor, inputs: Tensor, elements: Tensor) -> Tensor:
        return aligned[0]


@pytest.mark.parametrize("groups", ["d4", "multi"])
def test_a_custom_reduction_is_invariant_to_every_element_of_d4(groups: str) -> None:
    model = SmallCNN().eval()
    d4 = Product(Rot90(), Flip())
    g: Group | list[Group] = d4 if groups == "d4" else [Rot90(), Flip()]
    wrapped = _MaxOverCopies(model, g, chunk_size=None)
    x = torch.randn(3, 3, 8, 8)
    assert equivariance_error(wrapped, d4, x, elements=list(range(8))) == 0.0  # a max is exact
    wrapped.seen.clear()
    with torch.no_grad():
        y = wrapped(x)
    assert len(wrapped.seen) == len(wrapped.branches)
    for (branch, aligned, raw, inputs), expected in zip(wrapped.seen, wrapped.branches, strict=True):
        assert branch is expected
        n = len(branch.group)
        assert aligned.shape == raw.shape == (n, 3, 5) and inputs.shape == (n, 3, 3, 8, 8)
    if groups == "d4":  # one branch: the copies are g·x in element order, the value the max over them
        _, aligned, _, inputs = wrapped.seen[0]
        with torch.no_grad():
            for k in d4.elements:
                assert torch.equal(inputs[k], d4.act(x, k))
            expected = torch.stack([model(d4.act(x, k)) for k in d4.elements]).amax(0)
        torch.testing.assert_close(y, expected, rtol=0, atol=1e-5)
    assert equivariance_error(_IdentityCopy(model, g, chunk_size=None), d4, x) > 1e-3


def test_a_custom_reduction_of_vocabulary_outputs_is_equivariant() -> None:
    factors = [TokenCycles([[1, 2]], 2 * V), TokenCycles([[3, 4, 5]], 2 * V)]
    model = TokenNet(2 * V)
    ids = torch.randint(0, 2 * V, (4, 6), generator=torch.Generator().manual_seed(2))
    ids[0, :2] = torch.tensor([1, 4])
    for g in (Product(*factors), factors):
        wrapped = _MaxOverCopies(model, g, output="vocab", chunk_size=None)
        assert equivariance_error(wrapped, Product(*factors), ids, "vocab") == 0.0
        bad = _IdentityCopy(model, g, output="vocab", chunk_size=None)
        assert equivariance_error(bad, Product(*factors), ids, "vocab") > 1e-3
