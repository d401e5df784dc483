"""Equivariance, copy counts, gradients and errors of every symmetrizer."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import SmallCNN, TokenNet, tol
from multiequi import (
    Equitune,
    Equizero,
    LambdaEquitune,
    MultiEquitune,
    MultiEquizero,
    MultiLambdaEquitune,
)
from multiequi.groups import Flip, Group, Product, Rot90, TokenCycles
from multiequi.testing import CopyCounter, count_copies, equivariance_error

V = 14
C2 = lambda: TokenCycles([[1, 2]], V)  # noqa: E731
C3 = lambda: TokenCycles([[3, 4, 5], [6, 7, 8]], V)  # noqa: E731 — order 3 catches g versus g⁻¹
C2b = lambda: TokenCycles([[9, 10], [11, 12]], V)  # noqa: E731


def _weight_net(in_features: int, dtype: torch.dtype) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, 1)).to(dtype)


class _TokenWeight(nn.Module):
    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.emb = nn.Embedding(V, 1).to(dtype)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.emb(ids).sum((1, 2))


def _image_wrappers(model: nn.Module, dtype: torch.dtype) -> dict[str, nn.Module]:
    d4 = Product(Rot90(), Flip())
    lam = _weight_net(3 * 8 * 8, dtype)
    return {
        "equitune_d4": Equitune(model, d4),
        "lambda_d4": LambdaEquitune(model, d4, weight_net=lam),
        "equizero_d4": Equizero(model, d4),
        "multi_equitune": MultiEquitune(model, [Rot90(), Flip()]),
        "multi_lambda": MultiLambdaEquitune(model, [Rot90(), Flip()], weight_net=lam),
        "multi_equizero": MultiEquizero(model, [Rot90(), Flip()]),
    }


@pytest.mark.parametrize(
    "name", ["equitune_d4", "lambda_d4", "equizero_d4", "multi_equitune", "multi_lambda", "multi_equizero"]
)
def test_image_classifiers_are_invariant_to_all_of_d4(name: str, dtype: torch.dtype) -> None:
    model = SmallCNN().to(dtype).eval()
    wrapped = _image_wrappers(model, dtype)[name]
    x = torch.randn(4, 3, 8, 8, dtype=dtype)
    d4 = Product(Rot90(), Flip())
    assert equivariance_error(wrapped, d4, x) < tol(dtype)
    # and the plain model is not: the test can fail
    assert equivariance_error(model, d4, x) > 1e-3


def test_multi_equitune_uses_six_copies_for_d4_and_counts_each_view_once() -> None:
    model = SmallCNN().double().eval()
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    assert count_copies(MultiEquitune(model, [Rot90(), Flip()], chunk_size=None), model, x) == 6
    assert count_copies(Equitune(model, Product(Rot90(), Flip()), chunk_size=None), model, x) == 8


def _token_wrappers(model: nn.Module, dtype: torch.dtype) -> dict[str, Callable[[list[Group]], nn.Module]]:
    return {
        "equitune": lambda gs: Equitune(model, Product(*gs), output="vocab"),
        "lambda": lambda gs: LambdaEquitune(model, Product(*gs), weight_net=_TokenWeight(dtype), output="vocab"),
        "equizero": lambda gs: Equizero(model, Product(*gs), output="vocab"),
        "multi_equitune": lambda gs: MultiEquitune(model, gs, output="vocab"),
        "multi_lambda": lambda gs: MultiLambdaEquitune(model, gs, weight_net=_TokenWeight(dtype), output="vocab"),
        "multi_equizero": lambda gs: MultiEquizero(model, gs, output="vocab"),
    }


@pytest.mark.parametrize("name", ["equitune", "lambda", "equizero", "multi_equitune", "multi_lambda", "multi_equizero"])
def test_token_models_are_equivariant_to_the_whole_product(name: str, dtype: torch.dtype) -> None:
    model = TokenNet(V).to(dtype)
    groups = [C2(), C3(), C2b()]
    wrapped = _token_wrappers(model, dtype)[name](groups)
    ids = torch.randint(0, V, (6, 9))
    product = Product(*groups)
    assert len(product) == 12
    assert equivariance_error(wrapped, product, ids, "vocab") < tol(dtype)
    for g in groups:  # each factor on its own too
        assert equivariance_error(wrapped, g, ids, "vocab") < tol(dtype)
    assert equivariance_error(model, product, ids, "vocab") > 1e-3


def test_applying_g_instead_of_g_inverse_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Break the inverse (use g instead of g⁻¹ on the output): the 3-cycle test must fail.
    More deliberate bugs (per reduction path, sums for means, a dropped S_{G_-i}) are in
    test_design2_reference.py::test_deliberate_engine_bugs_are_caught."""
    model = TokenNet(V).double()
    ids = torch.randint(0, V, (6, 9))
    good = Equitune(model, C3(), output="vocab")
    assert equivariance_error(good, C3(), ids, "vocab") < 1e-12
    monkeypatch.setattr(Group, "inverse_elements", lambda self, device=None: torch.arange(len(self), device=device))
    for wrapped in (Equitune(model, C3(), output="vocab"), MultiEquitune(model, [C2(), C3()], output="vocab")):
        assert equivariance_error(wrapped, C3(), ids, "vocab") > 1e-3
    # with an order-2 group the mistake is invisible, which is why a 3-cycle is needed
    assert equivariance_error(Equitune(model, C2(), output="vocab"), C2(), ids, "vocab") < 1e-12


@pytest.mark.parametrize("factors", [1, 2, 3, 4])
def test_copy_counts_sum_versus_product(factors: int) -> None:
    groups = [TokenCycles([[2 * i + 1, 2 * i + 2]], V) for i in range(factors - 1)] + [TokenCycles([[9, 10, 11]], V)]
    model = TokenNet(V).double()
    ids = torch.randint(0, V, (5, 4))
    sizes = [len(g) for g in groups]
    with CopyCounter(model) as c:
        MultiEquitune(model, groups, output="vocab", chunk_size=None)(ids)
    assert (c.rows, c.calls) == (sum(sizes) * 5, 1)
    with CopyCounter(model) as c:
        Equitune(model, Product(*groups), output="vocab", chunk_size=None)(ids)
    assert (c.rows, c.calls) == (math.prod(sizes) * 5, 1)


def test_chunking_bounds_rows_per_call_and_keeps_whole_orbits() -> None:
    model = SmallCNN().double().train()  # BatchNorm in training mode
    wrapped = Equitune(model, Rot90(), chunk_size=9)  # rounds down to 2 examples (8 rows) per call
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    seen: list[int] = []
    handle = model.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[0]))
    y = wrapped(x)
    handle.remove()
    assert seen == [8, 8, 4]
    # batch statistics over whole orbits: exactly invariant even in training mode
    assert equivariance_error(wrapped, Rot90(), x) < 1e-9
    # chunked and unchunked agree in eval mode
    model.eval()
    assert torch.allclose(Equitune(model, Rot90(), chunk_size=4)(x), Equitune(model, Rot90(), chunk_size=None)(x))
    assert y.shape == (5, 5)


def test_auto_chunk_size_is_tuned_once_and_not_counted() -> None:
    model = SmallCNN().eval()
    wrapped = Equitune(model, Product(Rot90(), Flip()))  # chunk_size="auto"
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad(), CopyCounter(model) as c:
        y_auto = wrapped(x)
    assert c.rows == 32  # the tuner's calls are not counted
    assert len(wrapped._tuned) == 1
    with torch.no_grad():
        y_one = Equitune(model, Product(Rot90(), Flip()), chunk_size=None)(x)
    assert torch.allclose(y_auto, y_one, atol=1e-5)


def test_equivariant_image_outputs() -> None:
    conv = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1)).double()
    x = torch.randn(3, 2, 7, 7, dtype=torch.float64)
    d4 = Product(Rot90(), Flip())
    assert equivariance_error(Equitune(conv, d4, output="same"), d4, x, "same") < 1e-12
    assert equivariance_error(Equitune(conv, Rot90(), output="same"), Rot90(), x, "same") < 1e-12
    flips = [Flip(-1), Flip(-2)]  # commuting factors: Design 2 gives equivariance to the product
    assert equivariance_error(MultiEquitune(conv, flips, output="same"), Product(*flips), x, "same") < 1e-12
    assert equivariance_error(conv, Rot90(), x, "same") > 1e-3


def test_equizero_selects_the_lowest_entropy_copy() -> None:
    model = TokenNet(V).double()
    g = C3()
    wrapped = Equizero(model, g, output="vocab")
    ids = torch.tensor([[3, 1, 6, 0]])  # moved by every non-identity element
    orbit = g.orbit(ids)[:, 0]
    outs = model(orbit)
    logp = torch.log_softmax(outs, -1)
    ent = -(logp.exp() * logp).sum(-1).mean(-1)
    best = int(ent.argmin())
    expected = g.act_vocab(outs[best], g.inverse(best))
    assert torch.allclose(wrapped(ids)[0], expected)


def test_equizero_averages_ties_for_inputs_fixed_by_a_factor() -> None:
    """A sentence without a factor's words is fixed by it; picking 'the first' tied copy breaks
    equivariance, averaging the tied copies keeps it exact."""
    model = TokenNet(V).double()
    groups = [C2(), C3()]
    ids = torch.tensor([[3, 0, 13, 6], [4, 7, 0, 13]])  # no word of the C2 factor
    for wrapped in (Equizero(model, Product(*groups), output="vocab"), MultiEquizero(model, groups, output="vocab")):
        assert equivariance_error(wrapped, Product(*groups), ids, "vocab") < 1e-12
    product = Product(*groups)

    def first_minimum(x: torch.Tensor) -> torch.Tensor:  # the published rule: argmin, first wins
        n, b = len(product), x.shape[0]
        outs = model(product.orbit(x).flatten(0, 1)).reshape(n, b, *x.shape[1:], V)
        logp = torch.log_softmax(outs, -1)
        ent = -(logp.exp() * logp).sum(-1).flatten(2).mean(-1)
        aligned = product.transform_vocab(outs, product.inverses)
        return aligned[ent.argmin(0), torch.arange(b)]

    assert equivariance_error(first_minimum, groups[0], ids, "vocab") > 1e-6


def test_gradients_reach_the_wrapped_model(dtype: torch.dtype) -> None:
    model = TokenNet(V).to(dtype)
    ids = torch.randint(0, V, (4, 6))
    for wrapped in _token_wrappers(model, dtype).values():
        w = wrapped([C2(), C3()])
        model.zero_grad()
        w(ids).square().mean().backward()
        assert model.out.weight.grad is not None and model.out.weight.grad.abs().sum() > 0


def test_equizero_straight_through_gradient_is_the_equitune_gradient() -> None:
    model = TokenNet(V).double()
    ids = torch.randint(0, V, (4, 6))
    grads = []
    for w in (Equizero(model, C3(), output="vocab"), Equitune(model, C3(), output="vocab")):
        model.zero_grad()
        w(ids).sum().backward()
        grads.append(model.out.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1])


def test_lambda_weight_net_gets_gradients_and_constant_lambda_is_equitune() -> None:
    model = TokenNet(V).double()
    lam = _TokenWeight(torch.float64)
    ids = torch.randint(0, V, (4, 6))
    w = LambdaEquitune(model, C3(), weight_net=lam, output="vocab")
    w(ids).square().sum().backward()
    assert lam.emb.weight.grad is not None and lam.emb.weight.grad.abs().sum() > 0
    nn.init.zeros_(lam.emb.weight)
    with torch.no_grad():
        assert torch.allclose(w(ids), Equitune(model, C3(), output="vocab")(ids))


def test_extra_arguments_are_repeated_for_every_copy() -> None:
    model = TokenNet(V).double()
    ids = torch.randint(0, V, (3, 5))
    scale = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    for wrapped in (
        Equitune(model, C3(), output="vocab", chunk_size=3),
        MultiEquitune(model, [C2(), C3()], output="vocab"),
    ):
        by_pos = wrapped(ids, scale)
        by_kw = wrapped(ids, scale=scale)
        plain = wrapped(ids)
        assert torch.allclose(by_pos, by_kw)
        assert torch.allclose(by_pos, plain * scale[:, None, None])
        assert equivariance_error(wrapped, C3(), ids, "vocab", args=(scale,)) < 1e-12


class _HFLike(nn.Module):
    """Returns a Hugging Face-style output object with .logits."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = TokenNet(V).double()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> object:
        class Out(dict):
            pass

        out = Out(logits=self.inner(input_ids), past_key_values=None)
        out.logits = out["logits"]
        return out


def test_model_outputs_with_logits_are_read() -> None:
    ids = torch.randint(0, V, (2, 5))
    wrapped = MultiEquitune(_HFLike(), [C2(), C3()], output="vocab")
    y = wrapped(ids, attention_mask=torch.ones(2, 5))
    assert y.shape == (2, 5, V)
    assert equivariance_error(wrapped, Product(C2(), C3()), ids, "vocab") < 1e-12
    mapping = Equitune(lambda t: {"logits": t.double().unsqueeze(-1).expand(*t.shape, V)}, C2(), output="vocab")
    assert mapping(ids).shape == (2, 5, V)


def test_aggregate_spaces() -> None:
    model = TokenNet(V).double()
    ids = torch.randint(0, V, (3, 5))
    probs = Equitune(model, C3(), output="vocab", aggregate="probs")(ids)
    assert torch.allclose(probs.sum(-1), torch.ones(3, 5, dtype=torch.float64))
    logp = Equitune(model, C3(), output="vocab", aggregate="log_probs")(ids)
    assert (logp <= 0).all()
    assert equivariance_error(Equitune(model, C3(), output="vocab", aggregate="probs"), C3(), ids, "vocab") < 1e-12
    with pytest.raises(ValueError, match="aggregate"):
        Equitune(model, C3(), aggregate="softmax")  # type: ignore[arg-type]


def test_single_factor_multi_equitune_is_equitune() -> None:
    model = TokenNet(V).double()
    ids = torch.randint(0, V, (3, 5))
    assert torch.allclose(MultiEquitune(model, [C3()], output="vocab")(ids), Equitune(model, C3(), output="vocab")(ids))


def test_bad_arguments_raise_clear_errors() -> None:
    model = SmallCNN()
    with pytest.raises(TypeError, match="Product"):
        Equitune(model, [Rot90(), Flip()])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list of Group"):
        MultiEquitune(model, Rot90())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Group"):
        MultiEquitune(model, ["rot90", "flip"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="vocab"):
        Equitune(model, Rot90(), output="vocab")
    with pytest.raises(ValueError, match="output must be"):
        Equitune(model, Rot90(), output="equivariant")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="do not commute"):
        MultiEquitune(model, [Rot90(), Flip()], output="same")
    with pytest.raises(ValueError, match="chunk_size"):
        Equitune(model, Rot90(), chunk_size=0)
    with pytest.raises(TypeError, match="callable"):
        Equitune(3, Rot90())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="equal sizes"):
        Equitune(model, Rot90())(torch.randn(2, 3, 8, 6))
    with pytest.raises(ValueError, match="batch dimension first"):
        Equitune(lambda x: x.sum(), Rot90())(torch.randn(2, 3, 4, 4))
    with pytest.raises(TypeError, match="Tensor"):
        Equitune(model, Rot90())([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="integer token ids"):
        Equitune(TokenNet(V), C2())(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\[0, 14\)"):  # checked once up front, for every factor
        MultiEquitune(TokenNet(V), [C2(), C3()], output="vocab")(torch.tensor([[1, 99]]))
    with pytest.raises(TypeError, match="logits"):
        Equitune(lambda x: (x,), Rot90())(torch.randn(1, 4, 4))


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_random_word_swap_groups_multi_equitune(data: st.DataObject) -> None:
    vocab = 20  # 19 movable words: enough for 3 factors of up to 2 cycles of length 3
    words = data.draw(st.permutations(list(range(1, vocab))))
    pos = 0
    groups = []
    for _ in range(data.draw(st.integers(1, 3))):
        n = data.draw(st.integers(2, 3))
        k = data.draw(st.integers(1, 2))
        cycles = [words[pos + i * n : pos + (i + 1) * n] for i in range(k)]
        pos += n * k
        groups.append(TokenCycles(cycles, vocab))
    model = TokenNet(vocab).double()
    ids = torch.tensor(
        data.draw(st.lists(st.lists(st.integers(0, vocab - 1), min_size=4, max_size=4), min_size=1, max_size=3))
    )
    wrapped = MultiEquitune(model, groups, output="vocab")
    assert equivariance_error(wrapped, Product(*groups), ids, "vocab") < 1e-12
    assert wrapped.copies_per_example == sum(len(g) for g in groups)
