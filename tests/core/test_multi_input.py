"""Design 1: IS layers, multi-input networks and classifiers, and the DSS / DeepSets baselines.

Every group is checked over all of its elements; C3 and C4 (order >= 3) catch g versus g⁻¹
mistakes. Inputs carry different groups (C4 on images, C3 on R^3, C2 on R^5) so that one
group acting on the wrong input, or a cross term that is merely equivariant, shows up.
"""

from __future__ import annotations

import contextlib
import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import tol
from multiequi import DeepSetsLayer, DSSLayer, Equitune, ISLayer, MultiInputNetwork
from multiequi.groups import Flip, Group, PermutationAction, PermutationGroup, Product, Rot90, resolve_action
from multiequi.multi_input import (
    MultiInputClassifier,
    joint_group,
    sample_elements,
    symmetrize_output,
    transform_inputs,
)
from multiequi.testing import CopyCounter, assert_equivariant, equivariance_error

B = 3
C3 = PermutationGroup([[0, 1, 2], [1, 2, 0], [2, 0, 1]])  # cyclic shifts of the last axis
S3 = [list(p) for p in itertools.permutations(range(3))]  # all permutations of a set of 3 (order 6)
# C3 on a 4-vector, fixing the last entry: an output action of order 3 that is not "same"
C3_ON_4 = [[0, 1, 2, 3], [1, 2, 0, 3], [2, 0, 1, 3]]


def mlp(in_shape: tuple[int, ...], out_shape: tuple[int, ...], dtype: torch.dtype = torch.float64) -> nn.Module:
    """A small MLP with no built-in symmetry from tensors of ``in_shape`` to ``out_shape``."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(in_shape), 8),
        nn.Tanh(),
        nn.Linear(8, math.prod(out_shape)),
        nn.Unflatten(1, out_shape),
    ).to(dtype)


def conv(c_in: int, c_out: int, dtype: torch.dtype = torch.float64) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, c_out, 3, padding=1)).to(dtype)


def _loop_mean(fn, group: Group, x: torch.Tensor) -> torch.Tensor:
    """Reference: 1/|G| Σ_g fn(g, g·x) with a Python loop (tests only)."""
    return torch.stack([fn(g, group.act(x, g)) for g in group.elements]).mean(0)


# --------------------------------------------------------------------------------------------
# A three-input setup: x1 image with C4, x2 in R^3 with C3, x3 in R^5 with a flip
# --------------------------------------------------------------------------------------------

IN_SHAPES = [(1, 4, 4), (3,), (5,)]
OUT_SHAPES = [(2, 4, 4), (4,), (2,)]


def _groups() -> list[Group]:
    return [Rot90(), C3, Flip()]


def _outputs(groups: list[Group]) -> list:
    # y1 rotates like x1; y2 is a 4-vector on which C3 acts by a custom order-3 permutation; y3 is invariant
    return ["same", PermutationAction(groups[1], C3_ON_4), "invariant"]


def _three_input_net(dtype: torch.dtype) -> tuple[MultiInputNetwork, list[nn.Module], dict]:
    groups = _groups()
    models = [conv(1, 2, dtype), mlp(IN_SHAPES[1], OUT_SHAPES[1], dtype), mlp(IN_SHAPES[2], OUT_SHAPES[2], dtype)]
    is_models = {(i, j): mlp(IN_SHAPES[i], OUT_SHAPES[j], dtype) for i in range(3) for j in range(3) if i != j}
    net = MultiInputNetwork(models, groups, is_models=is_models, output=_outputs(groups), chunk_size=None)
    return net, models, is_models


def _inputs(dtype: torch.dtype, shapes=IN_SHAPES) -> list[torch.Tensor]:
    return [torch.randn(B, *s, dtype=dtype) for s in shapes]


def _joint_error(f, groups: list[Group], outputs: list, xs: list[torch.Tensor]) -> float:
    """Largest error over EVERY element (g_1, …, g_N) of the product acting on all inputs at once."""
    actions = [resolve_action(g, o) for g, o in zip(groups, outputs, strict=True)]
    with torch.no_grad():
        base = f(*xs)
        worst = 0.0
        for els in itertools.product(*[g.elements for g in groups]):
            moved = f(*[g.act(x, e) for g, x, e in zip(groups, xs, els, strict=True)])
            for y0, y1, a, e in zip(base, moved, actions, els, strict=True):
                worst = max(worst, float((y1 - a.act(y0, e)).abs().max()))
    return worst


# --------------------------------------------------------------------------------------------
# ISLayer
# --------------------------------------------------------------------------------------------


def test_is_layer_is_invariant_to_in_group_and_fixed_by_out_group(dtype):
    layer = ISLayer(mlp((3,), (1, 4, 4), dtype), in_group=C3, out_group=Rot90(), chunk_size=None)
    x = torch.randn(B, 3, dtype=dtype)
    assert equivariance_error(layer, C3, x, "invariant") < tol(dtype)
    assert_equivariant(layer, C3, x, "invariant")
    y = layer(x).detach()
    for h in Rot90().elements:  # fixed by every element of the out group, bitwise (sorted sums)
        assert torch.equal(Rot90().act(y, h), y)
    # the check can fail: without the output projection the output is not rotation-symmetric
    raw = ISLayer(layer.model, C3, None)(x).detach()
    assert float((Rot90().act(raw, 1) - raw).abs().max()) > 1e-3


def test_is_layer_matches_the_formula():
    """IS(x) = 1/|H| Σ_h h·(1/|G| Σ_g M(g x)), written with explicit loops."""
    model = mlp((3,), (4,))
    act = PermutationAction(C3, C3_ON_4)
    layer = ISLayer(model, in_group=C3, out_group=C3, output=act, chunk_size=None)
    x = torch.randn(B, 3, dtype=torch.float64)
    avg = _loop_mean(lambda g, gx: model(gx), C3, x)
    expected = torch.stack([act.act(avg, h) for h in C3.elements]).mean(0)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)
    assert layer.copies_per_example == 3


def test_is_layer_without_out_group_is_the_input_average():
    model = mlp((1, 4, 4), (5,))
    x = torch.randn(B, 1, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(ISLayer(model, Rot90(), None)(x), Equitune(model, Rot90())(x))


@settings(max_examples=10, deadline=None)
@given(st.permutations(range(5)), st.permutations(range(4)))
def test_is_layer_with_random_permutation_groups(p_in, p_out):
    """Random cyclic permutation groups (orders 1 to 6) on the input and on the output."""
    g_in, g_out = PermutationGroup.from_generators([list(p_in)]), PermutationGroup.from_generators([list(p_out)])
    layer = ISLayer(mlp((5,), (4,)), g_in, g_out, chunk_size=None)
    x = torch.randn(B, 5, dtype=torch.float64)
    y = layer(x).detach()
    assert equivariance_error(layer, g_in, x, "invariant") < 1e-12
    assert all(torch.equal(g_out.act(y, h), y) for h in g_out.elements)


def test_is_layer_gradients_and_errors():
    model = mlp((3,), (1, 4, 4))
    layer = ISLayer(model, C3, Rot90())
    layer(torch.randn(B, 3, dtype=torch.float64)).pow(2).sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())
    with pytest.raises(TypeError, match="in_group must be a Group"):
        ISLayer(model, "C3", Rot90())
    with pytest.raises(TypeError, match="out_group must be a Group"):
        ISLayer(model, C3, "rot90")
    bad = ISLayer(mlp((3,), (1, 4, 5)), C3, Rot90())  # Rot90 cannot act on a 4x5 output
    with pytest.raises(ValueError, match=r"cannot act on an output of shape \(3, 1, 4, 5\)"):
        bad(torch.randn(B, 3, dtype=torch.float64))


def test_symmetrize_output_projects_onto_fixed_outputs():
    y = torch.randn(B, 2, 4, 4, dtype=torch.float64)
    s = symmetrize_output(y, Rot90())
    assert all(torch.equal(Rot90().act(s, h), s) for h in range(4))
    torch.testing.assert_close(symmetrize_output(s, Rot90()), s)  # a projection: S∘S = S
    assert torch.equal(symmetrize_output(y, Rot90(), "invariant"), y)


# --------------------------------------------------------------------------------------------
# MultiInputNetwork
# --------------------------------------------------------------------------------------------


def test_network_is_equivariant_to_each_input_group(dtype):
    net, _, _ = _three_input_net(dtype)
    xs = _inputs(dtype)
    groups = _groups()
    errs = equivariance_error(net, groups, xs, output=_outputs(groups))
    assert len(errs) == 3 and max(errs) < tol(dtype)
    assert_equivariant(net, groups, xs, output=_outputs(groups))


def test_network_is_equivariant_to_the_whole_product():
    """All 4·3·2 = 24 elements (g1, g2, g3) acting on the three inputs at once."""
    net, _, _ = _three_input_net(torch.float64)
    assert _joint_error(net, _groups(), _outputs(_groups()), _inputs(torch.float64)) < 1e-9


def test_network_matches_the_formula():
    """y_j = 1/|G_j| Σ_g g⁻¹·M_j(g x_j) + Σ_{i≠j} S_{G_j}[1/|G_i| Σ_g M_ij(g x_i)], with loops."""
    net, models, is_models = _three_input_net(torch.float64)
    groups = _groups()
    actions = [resolve_action(g, o) for g, o in zip(groups, _outputs(groups), strict=True)]
    xs = _inputs(torch.float64)
    ys = net(*xs)
    for j in range(3):
        g_j, a_j = groups[j], actions[j]
        expected = _loop_mean(lambda g, gx, j=j, g_j=g_j, a_j=a_j: a_j.act(models[j](gx), g_j.inverse(g)), g_j, xs[j])
        for i in range(3):
            if i != j:
                avg = _loop_mean(lambda g, gx, i=i, j=j: is_models[(i, j)](gx), groups[i], xs[i])
                expected = expected + torch.stack([a_j.act(avg, h) for h in g_j.elements]).mean(0)
        torch.testing.assert_close(ys[j], expected, rtol=0, atol=1e-12)


def _same_shape_setup(dtype: torch.dtype):
    """Three inputs whose outputs share one space (2, 4, 4): C4 on an image, C3 on R^3, a flip of rows."""
    groups = [Rot90(), C3, Flip(dim=-2)]
    outputs = ["same", PermutationAction(C3, C3_ON_4), "same"]
    in_shapes = [(1, 4, 4), (3,), (1, 4, 4)]
    models = [conv(1, 2, dtype), mlp((3,), (2, 4, 4), dtype), conv(1, 2, dtype)]
    features = [mlp(s, (2, 4, 4), dtype) for s in in_shapes]
    return groups, outputs, in_shapes, models, features


def test_shared_is_equals_one_is_layer_per_pair_and_is_equivariant(dtype):
    """Sum over all minus self with S applied once = Σ_{i≠j} S_{G_j}[A_{G_i}[F_i](x_i)]."""
    groups, outputs, in_shapes, models, features = _same_shape_setup(dtype)
    shared = MultiInputNetwork(models, groups, is_models=features, shared_is=True, output=outputs, chunk_size=None)
    pairs = [[None if i == j else features[i] for j in range(3)] for i in range(3)]
    per_pair = MultiInputNetwork(models, groups, is_models=pairs, output=outputs, chunk_size=None)
    xs = _inputs(dtype, in_shapes)
    for a, b in zip(shared(*xs), per_pair(*xs), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12 if dtype == torch.float64 else 1e-5)
    assert max(equivariance_error(shared, groups, xs, output=outputs)) < tol(dtype)
    if dtype == torch.float64:
        assert _joint_error(shared, groups, outputs, xs) < 1e-9


def test_shared_is_terms_are_invariant_symmetric_not_just_equivariant():
    """With the equitune terms switched off (zero models), y_j only depends on the other inputs,
    does not move when any x_i moves, and is fixed by G_j."""
    groups, outputs, in_shapes, _, features = _same_shape_setup(torch.float64)
    zero = [lambda x: torch.zeros(x.shape[0], 2, 4, 4, dtype=torch.float64)] * 3
    net = MultiInputNetwork(zero, groups, is_models=features, shared_is=True, output=outputs, chunk_size=None)
    xs = _inputs(torch.float64, in_shapes)
    ys = net(*xs)
    assert max(equivariance_error(net, groups, xs, output="invariant")) < 1e-12
    for y, g, o in zip(ys, groups, outputs, strict=True):
        a = resolve_action(g, o)
        assert all(torch.equal(a.act(y, h), y) for h in g.elements)


def test_copy_counts_are_the_sum_of_the_group_orders():
    net, models, is_models = _three_input_net(torch.float64)
    xs = _inputs(torch.float64)
    with contextlib.ExitStack() as stack:
        counters = [stack.enter_context(CopyCounter(m)) for m in [*models, *is_models.values()]]
        net(*xs)
    orders = [4, 3, 2]
    assert [c.rows for c in counters[:3]] == [o * B for o in orders]  # equitune: |G_j| copies of x_j
    assert [c.rows for c in counters[3:]] == [orders[i] * B for i, _ in is_models]  # IS_ij: |G_i| copies of x_i
    assert sum(c.rows for c in counters) == net.copies_per_example * B == (9 + 2 * 9) * B
    assert all(c.calls == 1 for c in counters)

    groups, outputs, in_shapes, models, features = _same_shape_setup(torch.float64)
    shared = MultiInputNetwork(models, groups, is_models=features, shared_is=True, output=outputs)
    with CopyCounter(features[0]) as f0, CopyCounter(features[1]) as f1, CopyCounter(models[2]) as m2:
        shared(*_inputs(torch.float64, in_shapes))
    assert (f0.rows, f1.rows, m2.rows) == (4 * B, 3 * B, 2 * B)
    assert shared.copies_per_example == 2 * (4 + 3 + 2)


class _Slot(Group):
    """A group acting on one slot of a packed tuple (batch, N, 3, 3), the other slots fixed: the
    product of such groups is G_1 × … × G_N acting componentwise, for equitune over the product."""

    def __init__(self, base: Group, slot: int, n: int) -> None:
        super().__init__(base.table, base.names)
        self.base, self.slot, self.n = base, slot, n

    def transform(self, x: torch.Tensor, elements: torch.Tensor) -> torch.Tensor:
        parts = list(x.unbind(-3))
        parts[self.slot] = self.base.transform(parts[self.slot], elements)
        return torch.stack(parts, -3)

    def probe(self) -> torch.Tensor:
        return torch.arange(self.n * 9, dtype=torch.float64).reshape(self.n, 3, 3)


def test_sum_of_orders_versus_product_of_orders():
    """Three inputs (3x3 grids) with C4, C3 and C2: the multi-input classifier sends 4 + 3 + 2 = 9
    copies of each tuple through its backbone; equitune over the product sends 4·3·2 = 24. Both are
    invariant to all 24 elements of the product."""
    groups = [Rot90(), C3, Flip()]
    product = Product(*[_Slot(g, i, 3) for i, g in enumerate(groups)])
    assert len(product) == 24 and product.factors_commute
    backbone = mlp((3, 3), (4,))
    clf = MultiInputClassifier(backbone, groups, head=nn.Linear(12, 5).double(), chunk_size=None)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(27, 5)).double()
    full = Equitune(flat, product, chunk_size=None)
    packed = torch.randn(B, 3, 3, 3, dtype=torch.float64)
    with CopyCounter(backbone) as ours, CopyCounter(flat) as theirs:
        clf(*packed.unbind(1))
        full(packed)
    assert ours.rows == (4 + 3 + 2) * B == clf.copies_per_example * B
    assert theirs.rows == (4 * 3 * 2) * B
    assert equivariance_error(lambda p: clf(*p.unbind(1)), product, packed) < 1e-12
    assert equivariance_error(full, product, packed) < 1e-12


def test_siamese_inputs_share_one_batched_call():
    """N views through one backbone with one group object: a single call of N·|G|·B rows."""
    backbone = mlp((1, 4, 4), (6,))
    c4 = Rot90()
    clf = MultiInputClassifier(backbone, [c4] * 4, chunk_size=None)
    views = [torch.randn(B, 1, 4, 4, dtype=torch.float64) for _ in range(4)]
    with CopyCounter(backbone) as c:
        z = clf(*views)
    assert (c.calls, c.rows) == (1, 4 * 4 * B)
    assert z.shape == (B, 24)
    # per view, the same as a separate call
    torch.testing.assert_close(z[:, 6:12], Equitune(backbone, c4)(views[1]))


def test_chunked_calls_give_the_same_outputs():
    net, _, _ = _three_input_net(torch.float64)
    xs = _inputs(torch.float64)
    ref = net(*xs)
    for wrapper in list(net.equitune.wrappers) + [layer.average for layer in net.is_layers.values()]:
        wrapper.chunk_size = 4  # one example (all its copies) per call
    for a, b in zip(net(*xs), ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_gradients_reach_every_wrapped_model():
    net, models, is_models = _three_input_net(torch.float64)
    sum(y.pow(2).sum() for y in net(*_inputs(torch.float64))).backward()
    for m in [*models, *is_models.values()]:
        assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in m.parameters())


def test_network_rejects_bad_inputs_and_arguments():
    net, models, _ = _three_input_net(torch.float64)
    x1, x2, x3 = _inputs(torch.float64)
    with pytest.raises(ValueError, match="expected 3 inputs"):
        net(x1, x2)
    with pytest.raises(ValueError, match=r"same batch size; got batch sizes \[3, 2, 3\]"):
        net(x1, x2[:2], x3)
    with pytest.raises(TypeError, match="input 1 must be a Tensor"):
        net(x1, [1.0, 2.0, 3.0], x3)
    groups = _groups()
    with pytest.raises(TypeError, match="groups must be a non-empty list"):
        MultiInputNetwork(models, Rot90())
    with pytest.raises(TypeError, match=r"groups\[1\] must be a Group"):
        MultiInputNetwork(models, [Rot90(), "C3", Flip()])
    with pytest.raises(ValueError, match="list of 3 models"):
        MultiInputNetwork(models[:2], groups)
    with pytest.raises(ValueError, match="output must be one entry or a list of 3"):
        MultiInputNetwork(models, groups, output=["same", "same"])
    with pytest.raises(ValueError, match=r"is_models\[1\]\[1\] must be None"):
        MultiInputNetwork(models, groups, is_models={(1, 1): models[1]})
    with pytest.raises(ValueError, match="out of range"):
        MultiInputNetwork(models, groups, is_models={(0, 3): models[1]})
    with pytest.raises(TypeError, match="shared_is=True"):
        MultiInputNetwork(models, groups, is_models=models[0])
    with pytest.raises(ValueError, match="needs is_models"):
        MultiInputNetwork(models, groups, shared_is=True)
    # an IS model whose output does not have the target output's shape
    wrong = MultiInputNetwork(models, groups, is_models={(1, 2): mlp((3,), (7,))}, output=_outputs(groups))
    with pytest.raises(ValueError, match=r"IS term from input 1 to output 2 has shape \(3, 7\).*\(3, 2\)"):
        wrong(x1, x2, x3)
    # shared IS features of different shapes
    feats = [mlp((1, 4, 4), (4,)), mlp((3,), (4,)), mlp((5,), (3,))]
    mixed = MultiInputNetwork(models, groups, is_models=feats, shared_is=True, output="invariant")
    with pytest.raises(ValueError, match="one common shape"):
        mixed(x1, x2, x3)


# --------------------------------------------------------------------------------------------
# MultiInputClassifier
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", ["none", "shared_is", "pairs"])
def test_classifier_is_invariant_to_every_input_group(dtype, fusion):
    groups = _groups()
    feats = [mlp(s, (6,), dtype) for s in IN_SHAPES]
    is_models = {
        "none": None,
        "shared_is": [mlp(s, (6,), dtype) for s in IN_SHAPES],
        "pairs": {(0, 1): mlp(IN_SHAPES[0], (6,), dtype), (2, 0): mlp(IN_SHAPES[2], (6,), dtype)},
    }[fusion]
    head = nn.Linear(18, 5).to(dtype)
    clf = MultiInputClassifier(feats, groups, head=head, is_models=is_models, shared_is=fusion == "shared_is")
    xs = _inputs(dtype)
    assert max(equivariance_error(clf, groups, xs, output="invariant")) < tol(dtype)
    assert_equivariant(clf, groups, xs, output="invariant")
    clf(*xs).sum().backward()
    assert head.weight.grad is not None and all(p.grad is not None for m in feats for p in m.parameters())


def test_classifier_fusions():
    backbone = mlp((1, 4, 4), (6,))
    views = [torch.randn(B, 1, 4, 4, dtype=torch.float64) for _ in range(3)]
    shapes = {
        f: MultiInputClassifier(backbone, [Rot90()] * 3, fuse=f)(*views).shape for f in ("concat", "stack", "sum")
    }
    assert shapes == {"concat": (B, 18), "stack": (B, 3, 6), "sum": (B, 6)}
    # "mean" does not depend on the order of the views
    clf = MultiInputClassifier(backbone, [Rot90()] * 3, fuse="mean")
    torch.testing.assert_close(clf(*views), clf(*views[::-1]))
    with pytest.raises(ValueError, match="fuse must be"):
        MultiInputClassifier(backbone, [Rot90()] * 3, fuse="max")
    uneven = MultiInputClassifier([backbone, mlp((3,), (2, 2))], [Rot90(), C3], fuse="concat")
    with pytest.raises(ValueError, match="differ only in the last axis"):
        uneven(views[0], torch.randn(B, 3, dtype=torch.float64))


# --------------------------------------------------------------------------------------------
# DeepSets and DSS (one group shared by the whole set)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_deepsets_is_permutation_equivariant(dtype, reduction):
    layer = DeepSetsLayer(mlp((4,), (2,), dtype), mlp((4,), (2,), dtype), reduction=reduction)
    sym = PermutationGroup(S3, dim=-2)  # permutations of the set axis of (batch, 3, 4)
    x = torch.randn(B, 3, 4, dtype=dtype)
    assert equivariance_error(layer, sym, x, "same") < tol(dtype)
    assert_equivariant(layer, sym, x, "same")
    assert layer(torch.randn(B, 7, 4, dtype=dtype)).shape == (B, 7, 2)  # any set size


def test_deepsets_matches_the_formula_and_set_dim():
    l1, l2 = mlp((4,), (2,)), mlp((4,), (2,))
    x = torch.randn(B, 3, 4, dtype=torch.float64)
    expected = torch.stack([l1(x[:, j]) + l2(x.sum(1)) for j in range(3)], 1)
    torch.testing.assert_close(DeepSetsLayer(l1, l2)(x), expected)
    moved = DeepSetsLayer(l1, l2, set_dim=-1)(x.transpose(1, 2))
    torch.testing.assert_close(moved, expected.transpose(1, 2))
    linear = DeepSetsLayer.linear(4, 2).double()
    assert linear(x).shape == (B, 3, 2)


def test_dss_is_equivariant_to_set_permutations_and_the_shared_group(dtype):
    layer = DSSLayer(conv(1, 2, dtype), conv(1, 2, dtype), Rot90(), chunk_size=None)
    x = torch.randn(B, 3, 1, 4, 4, dtype=dtype)
    assert equivariance_error(layer, PermutationGroup(S3, dim=-4), x, "same") < tol(dtype)
    assert equivariance_error(layer, Rot90(), x, "same") < tol(dtype)  # all elements rotated at once
    # an invariant output per element: features (batch, 3, 6), set axis permuted by an Action
    inv = DSSLayer(mlp((1, 4, 4), (6,), dtype), mlp((1, 4, 4), (6,), dtype), Rot90(), output="invariant")
    s3 = PermutationGroup(S3, dim=-4)
    assert equivariance_error(inv, s3, x, PermutationAction(s3, S3, dim=-2)) < tol(dtype)
    assert equivariance_error(inv, Rot90(), x, "invariant") < tol(dtype)


def test_dss_is_not_equivariant_to_one_element_alone_but_multi_input_is():
    """The neighbour's cross term is equivariant, not IS: rotating one element alone breaks it."""
    l1, l2 = conv(1, 2), conv(1, 2)
    dss = DSSLayer(l1, l2, Rot90(), chunk_size=None)
    x = torch.randn(B, 3, 1, 4, 4, dtype=torch.float64)
    y = dss(x).detach()
    x_moved = x.clone()
    x_moved[:, 0] = torch.rot90(x[:, 0], 1, (-2, -1))
    expected = y.clone()
    expected[:, 0] = torch.rot90(y[:, 0], 1, (-2, -1))
    assert float((dss(x_moved).detach() - expected).abs().max()) > 1e-3
    multi = MultiInputNetwork(l1, [Rot90()] * 3, is_models=l2, shared_is=True)
    assert max(equivariance_error(multi, [Rot90()] * 3, list(x.unbind(1)), output=["same"] * 3)) < 1e-9


def test_set_layers_reject_bad_inputs():
    layer = DeepSetsLayer(mlp((4,), (2,)), mlp((4,), (2,)))
    with pytest.raises(ValueError, match=r"batch of sets.*got shape \(3,\)"):
        layer(torch.randn(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="must be a Tensor"):
        layer([[1.0]])
    mismatch = DeepSetsLayer(mlp((4,), (2,)), mlp((4,), (3,)))
    with pytest.raises(ValueError, match="same output shape"):
        mismatch(torch.randn(B, 3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="reduction must be"):
        DeepSetsLayer(mlp((4,), (2,)), mlp((4,), (2,)), reduction="max")
    with pytest.raises(TypeError, match="element_model must be callable"):
        DeepSetsLayer(3, mlp((4,), (2,)))
    with pytest.raises(TypeError, match="group must be a Group"):
        DSSLayer(conv(1, 2), conv(1, 2), "rot90")


def test_a_backbone_shared_by_two_groups_is_registered_once(tmp_path) -> None:
    """One Siamese backbone for views with C4 and with C2: one name per tensor in the state dict
    (safetensors round trip, channels-last included), and module-wide calls reach it."""
    safetensors = pytest.importorskip("safetensors.torch")
    backbone = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 25, 4))
    net = MultiInputNetwork(backbone, [Rot90(), Flip(), Rot90()], output="invariant", chunk_size=None)
    every = dict(net.named_parameters(remove_duplicate=False)) | dict(net.named_buffers(remove_duplicate=False))
    assert len(every) == len(net.state_dict()) == len(backbone.state_dict())
    assert all(k.startswith("equitune.models.0.") for k in net.state_dict())
    net.double().eval()
    assert backbone[0].weight.dtype == torch.float64 and not backbone.training
    xs = [torch.randn(2, 1, 5, 5, dtype=torch.float64) for _ in range(3)]
    with torch.no_grad():
        y = net(*xs)
        for i, g in enumerate([Rot90(), Flip(), Rot90()]):  # each view's own group, the others fixed
            moved = [g.act(x, len(g) - 1) if j == i else x for j, x in enumerate(xs)]
            assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(net(*moved), y, strict=True))
    net.to(memory_format=torch.channels_last)
    safetensors.save_model(net, str(tmp_path / "w.safetensors"))
    fresh = MultiInputNetwork(
        nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 25, 4)),
        [Rot90(), Flip(), Rot90()],
        output="invariant",
    ).double()
    missing, unexpected = safetensors.load_model(fresh, str(tmp_path / "w.safetensors"))
    assert not missing and not unexpected
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), net.state_dict().values(), strict=True))


# --------------------------------------------------------------------------------------------
# Values of the classifier fusions and of DeepSetsLayer.linear, by hand
# --------------------------------------------------------------------------------------------


def _invariant_feature(model: nn.Module, group: Group, x: torch.Tensor) -> torch.Tensor:
    """1/|G| Σ_g M(g·x), one element at a time."""
    total = torch.zeros_like(model(x))
    for g in group.elements:
        total = total + model(group.act(x, g))
    return total / len(group)


@pytest.mark.parametrize("fuse", ["concat", "stack", "sum", "mean"])
def test_classifier_fusions_equal_the_features_computed_by_hand(fuse: str) -> None:
    groups = _groups()  # C4 on an image, C3 on R^3, a flip of R^5: one feature extractor per input
    feats = [mlp(s, (6,)) for s in IN_SHAPES]
    head = nn.Linear(18 if fuse == "concat" else 6, 5).double()
    clf = MultiInputClassifier(feats, groups, head=head, fuse=fuse, chunk_size=None)
    xs = _inputs(torch.float64)
    with torch.no_grad():
        zs = [_invariant_feature(m, g, x) for m, g, x in zip(feats, groups, xs, strict=True)]
        if fuse == "concat":
            fused = torch.cat(zs, dim=-1)
        elif fuse == "stack":
            fused = torch.stack(zs, dim=1)
        else:
            fused = zs[0] + zs[1] + zs[2]
            if fuse == "mean":
                fused = fused / 3
        expected = head(fused)
        y = clf(*xs)
    assert y.shape == expected.shape == ((B, 3, 5) if fuse == "stack" else (B, 5))
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)
    without_head = MultiInputClassifier(feats, groups, fuse=fuse, chunk_size=None)
    with torch.no_grad():
        torch.testing.assert_close(without_head(*xs), fused, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("reduction", "bias"), [("sum", True), ("mean", True), ("sum", False)])
def test_deepsets_linear_is_the_classic_layer(reduction: str, bias: bool) -> None:
    """y_j = W1 x_j + W2 Σ_i x_i + b (W2 times the mean for reduction="mean"), from the weights."""
    layer = DeepSetsLayer.linear(4, 3, bias=bias, reduction=reduction).double()
    w1, w2 = layer.element_model.weight, layer.set_model.weight
    assert layer.set_model.bias is None and (layer.element_model.bias is not None) == bias
    x = torch.randn(B, 5, 4, dtype=torch.float64)
    with torch.no_grad():
        y = layer(x)
        for b in range(B):
            pooled = x[b].sum(0) / (5 if reduction == "mean" else 1)
            for j in range(5):
                expected = w1 @ x[b, j] + w2 @ pooled
                if bias:
                    expected = expected + layer.element_model.bias
                torch.testing.assert_close(y[b, j], expected, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Stacked inputs: sample_elements, transform_inputs, joint_group
# --------------------------------------------------------------------------------------------


def test_sample_elements_is_seeded_and_per_input() -> None:
    groups = [Rot90(), Flip(), C3]
    e = sample_elements(groups, 600, torch.Generator().manual_seed(4))
    assert e.shape == (600, 3) and e.dtype == torch.long
    assert torch.equal(e, sample_elements(groups, 600, torch.Generator().manual_seed(4)))
    for i, g in enumerate(groups):
        assert sorted(e[:, i].unique().tolist()) == list(range(len(g)))
    # column i is groups[i].sample, drawn input by input from the same generator
    gen = torch.Generator().manual_seed(4)
    assert torch.equal(e, torch.stack([g.sample(600, gen) for g in groups], 1))
    assert sample_elements([], 5).shape == (5, 0)
    with pytest.raises(TypeError, match=r"groups\[1\]"):
        sample_elements([Rot90(), "flip"], 3)  # type: ignore[list-item]


def test_transform_inputs_acts_on_each_input_of_each_example() -> None:
    groups = [Rot90(), Flip(-2), PermutationGroup(S3, dim=-2)]  # each acting on a (1, 3, 3) view
    x = torch.randn(7, 3, 1, 3, 3, dtype=torch.float64)
    e = sample_elements(groups, 7, torch.Generator().manual_seed(5))
    y = transform_inputs(x, groups, e)
    for b in range(7):
        for i, g in enumerate(groups):
            assert torch.equal(y[b, i], g.act(x[b, i], int(e[b, i])))
    # the identity everywhere changes nothing; a group of one element is skipped
    assert torch.equal(transform_inputs(x, groups, torch.zeros(7, 3, dtype=torch.long)), x)
    with pytest.raises(ValueError, match=r"\(batch, N=2"):
        transform_inputs(x, groups[:2], e[:, :2])
    with pytest.raises(ValueError, match="elements must have shape"):
        transform_inputs(x, groups, e[:3])


def test_joint_group_counts_equal_groups_once() -> None:
    assert joint_group([Rot90(), Rot90(), Rot90()]) == Rot90()
    assert joint_group([Flip(-2), Flip(-2)]) == Flip(-2)
    d4 = joint_group([Rot90(), Flip(), Rot90(), Flip()])
    assert d4 == Product(Rot90(), Flip()) and len(d4) == 8 and not d4.is_abelian()
    # the eight transformations of the square: rotations, and rotations after a flip
    img = torch.arange(9.0).reshape(3, 3)
    expected = {
        tuple(torch.rot90(torch.flip(img, (-1,)) if f else img, k, (-2, -1)).reshape(-1).tolist())
        for k in range(4)
        for f in (0, 1)
    }
    assert {tuple(d4.act(img, g).reshape(-1).tolist()) for g in d4.elements} == expected
    assert len(joint_group([Flip(-1), Flip(-2)])) == 4
    with pytest.raises(ValueError, match="at least one"):
        joint_group([])
