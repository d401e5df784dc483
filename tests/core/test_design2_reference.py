"""Design 2 values against the formula, written out independently with explicit Python loops.

    output(x) = 1/N Σ_i S_{G_-i}[ R_{G_i}( g ↦ g⁻¹·M(g·canon_{-i}(x)) ) ],   S_H[y] = 1/|H| Σ_h h·y

- ``canon_{-i}``: the other factors' canonicalization. For word swaps (TokenCycles) it is written
  here by hand (every word of another factor's cycle becomes the cycle's first word); for images
  the public ``canonicalize`` is called (the template is part of the definition).
- ``R``: the mean (equitune), the λ-weighted mean with λ = exp(score) normalised over the branch's
  copies (λ-equitune), or the mean of the copies tied at the lowest entropy (equizero).
- the vocabulary action ``(g·y)[..., π_g(v)] = y[..., v]`` is built from the cycles by hand, and the
  symmetrizer ``S_{G_-i}`` loops over every element of the other factors.

Nothing here calls the engine's orbit, alignment, reduction or symmetrizer code, so a sum where a
mean belongs, ``g`` where ``g⁻¹`` belongs, or a dropped ``S_{G_-i}`` shows up as a wrong *value* even
when the output is still equivariant. The second half of this file makes those mistakes on purpose
(monkeypatching the engine) and checks that these tests see them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from conftest import SmallCNN, TokenNet, tol
from multiequi import (
    Equitune,
    Equizero,
    LambdaEquitune,
    MultiEquitune,
    MultiEquizero,
    MultiLambdaEquitune,
)
from multiequi.groups import Action, Flip, Group, PermutationGroup, Product, Rot90, TokenCycles
from multiequi.symmetrize import Branch, Symmetrizer, _engine, _wrappers
from multiequi.testing import equivariance_error

V = 24  # words 1..11 move (all factors together), 12..23 never move


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


def _token_factors(n: int) -> list[TokenCycles]:
    """Factors on disjoint word sets; the 3-cycles make g and g⁻¹ differ."""
    c2 = TokenCycles([[1, 2]], V)
    c3 = TokenCycles([[3, 4, 5], [6, 7, 8]], V)
    c3b = TokenCycles([[9, 10, 11]], V)
    return {1: [c3], 2: [c2, c3], 3: [c2, c3, c3b]}[n]


def _ids() -> Tensor:
    """Rows with every factor's words, with one factor's words, with none (all copies equal:
    equizero ties), with two factors' words, and a random row."""
    gen = torch.Generator().manual_seed(1)  # the same rows on every call
    ids = torch.randint(12, V, (5, 6), generator=gen)
    ids[0, :5] = torch.tensor([1, 3, 9, 7, 2])
    ids[1, 1:3] = torch.tensor([5, 6])
    ids[3, 2:5] = torch.tensor([10, 2, 11])
    ids[4] = torch.randint(0, V, (6,), generator=gen)
    return ids


class _TokenWeight(nn.Module):
    """λ network for token ids: one score per row."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.emb = nn.Embedding(V, 1).to(dtype)

    def forward(self, ids: Tensor) -> Tensor:
        return self.emb(ids).sum((1, 2))


class _DenseVocab(Action):
    """The vocabulary action with no axis permutation declared: the engine's dense path."""

    def transform(self, y: Tensor, elements: Tensor) -> Tensor:
        return self.group.transform_vocab(y, elements)


# --------------------------------------------------------------------------------------------
# The reference, by hand
# --------------------------------------------------------------------------------------------


def _vocab_perm(factor: TokenCycles, g: int) -> list[int]:
    """π_g as a list: σ sends cycle[k] to cycle[k + 1]; element g is σ^g; other words stay."""
    pi = list(range(factor.out_vocab_size))
    for cycle in factor.out_cycles:
        for k, word in enumerate(cycle):
            pi[word] = cycle[(k + g) % len(cycle)]
    return pi


def _act_vocab(y: Tensor, factor: Group, g: int) -> Tensor:
    """``g·y`` on the last (vocabulary) axis: ``(g·y)[..., π_g(v)] = y[..., v]``."""
    assert isinstance(factor, TokenCycles)
    pi = _vocab_perm(factor, g)
    out = torch.empty_like(y)
    for v, target in enumerate(pi):
        out[..., target] = y[..., v]
    return out


def _no_action(y: Tensor, factor: Group, g: int) -> Tensor:
    return y


def _collapse(rest: list[Group], group: Group, x: Tensor) -> Tensor:
    """Orbit collapse for word swaps: every word of another factor's cycle becomes the first."""
    out = x.clone()
    for factor in rest:
        assert isinstance(factor, TokenCycles)
        for cycle in factor.cycles:
            for word in cycle:
                out[x == word] = cycle[0]
    return out


def _template(rest: list[Group], group: Group, x: Tensor) -> Tensor:
    """Images: the other factors' public canonicalizer, symmetric under the branch's group."""
    others = rest[0] if len(rest) == 1 else Product(*rest)
    return others.canonicalize(x, symmetric_under=group)


def _entropy(raw: Tensor) -> float:
    """Entropy of the softmax over the last axis, averaged over the other axes."""
    logp = torch.log_softmax(raw, dim=-1)
    return float(-(logp.exp() * logp).sum(-1).mean())


def _reduce(kind: str, aligned: list[Tensor], raws: list[Tensor], scores: list[Tensor]) -> Tensor:
    n = len(aligned)
    if kind == "equitune":
        total = aligned[0]
        for a in aligned[1:]:
            total = total + a
        return total / n
    if kind == "lambda":
        lam = [torch.exp(s) for s in scores]
        norm = lam[0]
        for v in lam[1:]:
            norm = norm + v
        total = aligned[0] * (lam[0] / norm)
        for a, v in zip(aligned[1:], lam[1:], strict=True):
            total = total + a * (v / norm)
        return total
    assert kind == "equizero"
    losses = [_entropy(r) for r in raws]
    lo = min(losses)
    tie = 64 * torch.finfo(aligned[0].dtype).eps * max(abs(lo), 1.0)  # the documented default tie_tol
    tied = [a for a, loss in zip(aligned, losses, strict=True) if loss <= lo + tie]
    total = tied[0]
    for a in tied[1:]:
        total = total + a
    return total / len(tied)


def design2_reference(
    model: Callable[[Tensor], Tensor],
    factors: list[Group],
    x: Tensor,
    *,
    kind: str,
    act: Callable[[Tensor, Group, int], Tensor],
    canon: Callable[[list[Group], Group, Tensor], Tensor],
    aggregate: Callable[[Tensor], Tensor] = lambda y: y,
    weight_net: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """``1/N Σ_i S_{G_-i}[R_{G_i}(g ↦ g⁻¹·M(g·canon_{-i}(x)))]``, one example, one element and one
    model call at a time. ``act(y, factor, g)`` is the output action of one factor's element."""
    branches = []
    with torch.no_grad():
        for i, gi in enumerate(factors):
            rest = [f for j, f in enumerate(factors) if j != i]
            c = canon(rest, gi, x) if rest else x
            rows = []
            for b in range(x.shape[0]):
                aligned, raws, scores = [], [], []
                for g in range(len(gi)):
                    xg = gi.act(c[b], g)
                    raw = model(xg.unsqueeze(0))[0]
                    raws.append(raw)
                    aligned.append(aggregate(act(raw, gi, gi.inverse(g))))
                    if weight_net is not None:
                        scores.append(weight_net(xg.unsqueeze(0)).reshape(()))
                z = _reduce(kind, aligned, raws, scores)
                if rest and act is not _no_action:  # S_{G_-i}: the mean of h·z over every h in G_-i
                    elements = list(itertools.product(*[range(len(f)) for f in rest]))
                    total = torch.zeros_like(z)
                    for h in elements:
                        moved = z
                        for f, e in zip(rest, h, strict=True):
                            moved = act(moved, f, e)
                        total = total + moved
                    z = total / len(elements)
                rows.append(z)
            branches.append(torch.stack(rows))
    out = branches[0]
    for br in branches[1:]:
        out = out + br
    return out / len(branches)


def value_error(y: Tensor, reference: Tensor) -> float:
    """``max |y − reference| / max(1, max |reference|)``."""
    return float((y.detach() - reference).abs().max()) / max(1.0, float(reference.abs().max()))


# --------------------------------------------------------------------------------------------
# Wrappers under test
# --------------------------------------------------------------------------------------------

_MULTI = {"equitune": MultiEquitune, "lambda": MultiLambdaEquitune, "equizero": MultiEquizero}
_SINGLE = {"equitune": Equitune, "lambda": LambdaEquitune, "equizero": Equizero}


def _wrap(kind: str, model: nn.Module, factors: list[Group], weight_net: nn.Module | None, **options) -> Symmetrizer:
    extra = {"weight_net": weight_net} if kind == "lambda" else {}
    if len(factors) == 1:
        return _SINGLE[kind](model, factors[0], chunk_size=None, **extra, **options)
    return _MULTI[kind](model, factors, chunk_size=None, **extra, **options)


def _token_case(kind: str, n: int, path: str, dtype: torch.dtype, **options):
    """A vocabulary-output wrapper and its reference. ``path``: ``"sparse"`` (only the moved words
    are reduced, copies ordered by their inputs), ``"unsorted"`` (sparse, plain sums), ``"dense"``
    (an output action without a declared axis permutation) or ``"dense_unsorted"``."""
    model = TokenNet(V).to(dtype)
    factors = _token_factors(n)
    lam = _TokenWeight(dtype) if kind == "lambda" else None
    dense = path.startswith("dense")
    output = _DenseVocab(factors[0] if n == 1 else Product(*factors)) if dense else "vocab"
    wrapped = _wrap(kind, model, factors, lam, output=output, sorted_sum=not path.endswith("unsorted"), **options)
    assert all(br.sparse != dense and br.keyed == (path == "sparse") for br in wrapped.branches)
    reference = design2_reference(
        model, factors, _ids(), kind=kind, act=_act_vocab, canon=_collapse, weight_net=lam, **_agg(options)
    )
    return wrapped, factors, reference


def _agg(options: dict) -> dict:
    agg = options.get("aggregate", "raw")
    fn = {"raw": lambda y: y, "probs": lambda y: torch.softmax(y, -1), "log_probs": lambda y: torch.log_softmax(y, -1)}
    return {"aggregate": fn[agg]}


C3_CHANNELS = PermutationGroup([[0, 1, 2], [1, 2, 0], [2, 0, 1]], dim=-3)  # cycles the 3 colour channels


def _image_factors(n: int) -> list[Group]:
    return [Rot90(), Flip()] if n == 2 else [Rot90(), Flip(), C3_CHANNELS]


def _image_case(kind: str, n: int, dtype: torch.dtype):
    model = SmallCNN().to(dtype).eval()
    factors = _image_factors(n)
    lam = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 1)).to(dtype) if kind == "lambda" else None
    wrapped = _wrap(kind, model, factors, lam)
    x = torch.randn(3, 3, 8, 8, dtype=dtype)
    reference = design2_reference(model, factors, x, kind=kind, act=_no_action, canon=_template, weight_net=lam)
    return wrapped, factors, x, reference


# --------------------------------------------------------------------------------------------
# 1. Values
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["sparse", "unsorted", "dense", "dense_unsorted"])
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("kind", ["equitune", "lambda", "equizero"])
def test_vocabulary_outputs_equal_the_formula(kind: str, n: int, path: str, dtype: torch.dtype) -> None:
    wrapped, _, reference = _token_case(kind, n, path, dtype)
    with torch.no_grad():
        assert value_error(wrapped(_ids()), reference) < tol(dtype)
    # the reference is not trivially satisfied: the plain model is far from it
    with torch.no_grad():
        assert value_error(wrapped.model(_ids()), reference) > 1e-2


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("kind", ["equitune", "lambda", "equizero"])
def test_image_classifiers_equal_the_formula(kind: str, n: int, dtype: torch.dtype) -> None:
    wrapped, factors, x, reference = _image_case(kind, n, dtype)
    with torch.no_grad():
        assert value_error(wrapped(x), reference) < tol(dtype)
    assert equivariance_error(wrapped, Product(*factors), x) < tol(dtype)


@pytest.mark.parametrize("aggregate", ["probs", "log_probs"])
@pytest.mark.parametrize(
    ("kind", "n"), [("equitune", 1), ("equitune", 2), ("equitune", 3), ("lambda", 2), ("equizero", 3)]
)
def test_aggregate_spaces_equal_the_formula(kind: str, n: int, aggregate: str) -> None:
    """The copies are averaged as softmax / log-softmax of the aligned outputs."""
    wrapped, _, reference = _token_case(kind, n, "sparse", torch.float64, aggregate=aggregate)
    with torch.no_grad():
        y = wrapped(_ids())
    assert value_error(y, reference) < 1e-9
    _, _, raw_reference = _token_case(kind, n, "sparse", torch.float64)
    assert value_error(y, raw_reference) > 1e-2  # the space matters: the raw mean is another value


class _MappingModel(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, ids: Tensor) -> dict[str, Tensor]:
        logits = self.inner(ids)
        return {"hidden_states": 2 * logits, "logits": logits}  # a decoy of the same shape first


class _LogitsModel(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, ids: Tensor) -> object:
        class Output:
            pass

        out = Output()
        out.logits = self.inner(ids)  # type: ignore[attr-defined]
        out.hidden_states = 2 * out.logits  # type: ignore[attr-defined]
        return out


@pytest.mark.parametrize("kind", ["equitune", "lambda", "equizero"])
def test_mapping_and_logits_outputs_give_the_tensor_models_values(kind: str) -> None:
    inner = TokenNet(V).double()
    factors = _token_factors(2)
    lam = _TokenWeight(torch.float64)
    ids = _ids()
    with torch.no_grad():
        plain = _wrap(kind, inner, factors, lam, output="vocab")(ids)
        for model in (_MappingModel(inner), _LogitsModel(inner)):
            assert torch.equal(_wrap(kind, model, factors, lam, output="vocab")(ids), plain)
    reference = design2_reference(inner, factors, ids, kind=kind, act=_act_vocab, canon=_collapse, weight_net=lam)
    assert value_error(plain, reference) < 1e-9


# --------------------------------------------------------------------------------------------
# 2. Deliberate bugs in the engine: the value checks above must see each of them
# --------------------------------------------------------------------------------------------


def _identity_inverses(monkeypatch: pytest.MonkeyPatch) -> None:
    """g instead of g⁻¹ everywhere the engine aligns (dense, sparse, λ, equizero)."""
    monkeypatch.setattr(Group, "inverse_elements", lambda self, device=None: torch.arange(len(self), device=device))


def _align_with_g(monkeypatch: pytest.MonkeyPatch) -> None:
    """g instead of g⁻¹ in Branch.align only (dense mean, λ and equizero go through it)."""

    def align(self: Branch, y: Tensor, elements: Tensor) -> Tensor:
        n, b = y.shape[:2]
        return self.action.transform(y.reshape(n * b, *y.shape[2:]), elements.reshape(-1)).reshape(y.shape)

    monkeypatch.setattr(Branch, "align", align)


def _sum_over_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """The equitune mean of a branch replaced by the sum over its copies."""
    mean = Branch.mean
    monkeypatch.setattr(Branch, "mean", lambda self, y, elements, s: mean(self, y, elements, s) * y.shape[0])


def _sum_over_branches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mean of the branches replaced by their sum (the branches arrive as a list)."""
    add = _engine.sequential_sum
    monkeypatch.setattr(_engine, "sequential_sum", lambda y: add(y) * len(y) if isinstance(y, list) else add(y))


def _unnormalised_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    """λ-weights not divided by their sum over the copies (the normaliser, a sum of (n, B) λs, is 1)."""
    add = _wrappers.sequential_sum
    monkeypatch.setattr(_wrappers, "sequential_sum", lambda y: torch.ones_like(y[0]) if y.dim() == 2 else add(y))


def _no_output_symmetrizer(monkeypatch: pytest.MonkeyPatch) -> None:
    """S_{G_-i} dropped: each branch's output is not averaged over the other factors."""
    monkeypatch.setattr(Branch, "symmetrize_others", lambda self, y, sorted_sum: y)


MUTATIONS = {
    "identity_inverses": _identity_inverses,
    "align_with_g": _align_with_g,
    "sum_over_copies": _sum_over_copies,
    "sum_over_branches": _sum_over_branches,
    "unnormalised_lambda": _unnormalised_lambda,
    "no_output_symmetrizer": _no_output_symmetrizer,
}

# (mutation, wrapper kind, factors, path or "images", whether the output stays equivariant)
CAUGHT = [
    *[("identity_inverses", "equitune", n, p, False) for n in (1, 2, 3) for p in ("sparse", "unsorted", "dense")],
    ("identity_inverses", "equitune", 2, "dense_unsorted", False),
    *[("identity_inverses", k, n, "sparse", False) for k in ("lambda", "equizero") for n in (1, 2)],
    *[("align_with_g", "equitune", n, "dense", False) for n in (1, 2, 3)],
    *[("align_with_g", k, n, p, False) for k in ("lambda", "equizero") for n in (1, 2) for p in ("sparse", "dense")],
    *[("sum_over_copies", "equitune", n, p, True) for n in (1, 3) for p in ("sparse", "unsorted", "dense")],
    ("sum_over_copies", "equitune", 2, "dense_unsorted", True),
    ("sum_over_copies", "equitune", 2, "images", True),
    *[("sum_over_branches", k, n, "sparse", True) for k in ("equitune", "lambda", "equizero") for n in (2, 3)],
    *[("sum_over_branches", k, 2, "images", True) for k in ("equitune", "lambda", "equizero")],
    *[("unnormalised_lambda", "lambda", n, "sparse", True) for n in (1, 2)],
    ("unnormalised_lambda", "lambda", 2, "images", True),
    *[
        ("no_output_symmetrizer", k, n, p, False)
        for k in ("equitune", "lambda", "equizero")
        for n in (2, 3)
        for p in ("sparse", "dense")
    ],
]


@pytest.mark.parametrize(("mutation", "kind", "n", "path", "still_equivariant"), CAUGHT)
def test_deliberate_engine_bugs_are_caught(
    mutation: str, kind: str, n: int, path: str, still_equivariant: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "images":
        wrapped, factors, x, reference = _image_case(kind, n, torch.float64)
        output = "invariant"
    else:
        wrapped, factors, reference = _token_case(kind, n, path, torch.float64)
        x, output = _ids(), "vocab"
    full = factors[0] if n == 1 else Product(*factors)
    with torch.no_grad():
        assert value_error(wrapped(x), reference) < 1e-9  # correct before the mutation
    MUTATIONS[mutation](monkeypatch)
    with torch.no_grad():
        assert value_error(wrapped(x), reference) > 1e-3
    # equivariance checks alone see only some of these bugs: a sum where a mean belongs is still
    # equivariant, which is why the values are checked against the formula
    err = equivariance_error(wrapped, full, x, output)
    assert (err < 1e-9) if still_equivariant else (err > 1e-3)
