"""The paper's linear characterization: bases and dimensions of equivariant maps on X_1 ⊕ … ⊕ X_N.

Every basis is checked against a brute-force null space (SVD in float64) of the constraints
``L ρ_X(g) = ρ_Y(g) L`` for the product group acting block-diagonally, which knows nothing about
the diagonal-equivariant / off-diagonal-IS structure.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import tol
from multiequi.groups import Flip, MatrixGroup, PermutationGroup, Rot90
from multiequi.multi_input import EquivariantLinear, equivariant_linear_basis, equivariant_linear_dimension
from multiequi.testing import assert_equivariant, equivariance_error

C3 = PermutationGroup([[0, 1, 2], [1, 2, 0], [2, 0, 1]])  # cyclic shifts of R^3, order 3
_R = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
C4_PLANE = MatrixGroup([torch.linalg.matrix_power(_R, k) for k in range(4)])  # rotations of R^2
WORKED = [(Rot90(), (3, 3)), (C3, (3,))]  # the worked check of method.md


def _mats(spec) -> torch.Tensor:
    if isinstance(spec, torch.Tensor):
        return spec.to(torch.float64)
    if isinstance(spec, MatrixGroup):
        return spec.matrices((spec.size,))
    group, shape = spec
    return group.matrices(shape)


def _product_elements(in_specs, out_specs=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Block-diagonal (ρ_X(g), ρ_Y(g)) for every element g of the product group."""
    mx = [_mats(s) for s in in_specs]
    my = mx if out_specs is None else [_mats(s) for s in out_specs]
    out = []
    for els in itertools.product(*[range(m.shape[0]) for m in mx]):
        rx = torch.block_diag(*[m[e] for m, e in zip(mx, els, strict=True)])
        ry = torch.block_diag(*[m[e] for m, e in zip(my, els, strict=True)])
        out.append((rx, ry))
    return out


def _generators(in_specs, gens) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(ρ_X, ρ_Y) of the product-group generators: generator gens[i] of block i, identity elsewhere."""
    mx = [_mats(s) for s in in_specs]
    out = []
    for i, g in enumerate(gens):
        blocks = [m[g] if k == i else m[0] for k, m in enumerate(mx)]
        d = torch.block_diag(*blocks)
        out.append((d, d))
    return out


def _brute_force_dimension(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> int:
    """dim of {L : L ρ_X(g) = ρ_Y(g) L for the given g}: null space of the stacked linear constraints."""
    rx0, ry0 = pairs[0]
    dx, dy = rx0.shape[0], ry0.shape[0]
    ix, iy = torch.eye(dx, dtype=torch.float64), torch.eye(dy, dtype=torch.float64)
    # row-major vec: vec(A L B) = kron(A, Bᵀ) vec(L)
    rows = [torch.kron(iy, rx.T.contiguous()) - torch.kron(ry, ix) for rx, ry in pairs]
    s = torch.linalg.svdvals(torch.cat(rows))
    return dx * dy - int((s > 1e-9).sum())


def _max_violation(weights: torch.Tensor, pairs) -> float:
    return max(float((weights @ rx - ry @ weights).abs().max()) for rx, ry in pairs)


def test_worked_check_dimension_is_30():
    """C4 rotating a 3x3 grid ⊕ C3 shifting R^3: 21 + 3 + 2·(3·1) = 30, formula = basis = brute force."""
    assert equivariant_linear_dimension(WORKED) == 30
    basis = equivariant_linear_basis(WORKED)
    assert basis.shape == (30, 12, 12) and basis.dtype == torch.float64
    assert int(torch.linalg.matrix_rank(basis.reshape(30, -1))) == 30  # linearly independent
    assert _brute_force_dimension(_generators(WORKED, [1, 1])) == 30  # generators: rot90 and one shift


def test_worked_check_blocks_have_the_predicted_dimensions():
    """Diagonal blocks: 21 (C4 on the grid) and 3 (C3 on R^3); each off-diagonal block: 3·1 = 3."""
    basis = equivariant_linear_basis(WORKED)
    rows, cols = (slice(0, 9), slice(9, 12)), (slice(0, 9), slice(9, 12))
    for (a, ra), (b, cb) in itertools.product(enumerate(rows), enumerate(cols)):
        block = basis[:, ra, cb].reshape(30, -1)
        assert int(torch.linalg.matrix_rank(block)) == {(0, 0): 21, (1, 1): 3, (0, 1): 3, (1, 0): 3}[(a, b)]


def test_basis_and_random_span_element_are_equivariant_to_every_product_element():
    basis = equivariant_linear_basis(WORKED)
    pairs = _product_elements(WORKED)
    assert len(pairs) == 12
    assert _max_violation(basis, pairs) < 1e-12
    w = torch.einsum("k,koi->oi", torch.randn(30, dtype=torch.float64), basis)
    assert _max_violation(w, pairs) < 1e-12
    # a generic matrix is not: the check can fail
    assert _max_violation(torch.randn(12, 12, dtype=torch.float64), pairs) > 1e-2


def test_off_diagonal_blocks_are_invariant_symmetric():
    """L_ij ρ_Xi(g) = L_ij and ρ_Yj(h) L_ij = L_ij: not just equivariant but invariant on both sides."""
    basis = equivariant_linear_basis(WORKED)
    grid, shift = Rot90().matrices((3, 3)), C3.matrices((3,))
    l_21 = basis[:, 9:12, 0:9]  # grid -> R^3
    l_12 = basis[:, 0:9, 9:12]  # R^3 -> grid
    for g in range(4):
        assert torch.equal(l_21 @ grid[g], l_21) and torch.equal(grid[g] @ l_12, l_12)
    for h in range(3):
        assert torch.equal(shift[h] @ l_21, l_21) and torch.equal(l_12 @ shift[h], l_12)


@pytest.mark.parametrize(
    ("in_specs", "out_specs", "expected"),
    [
        ([C4_PLANE, (C3, (3,))], None, 2 + 3 + 0),  # rotations of the plane fix no vector
        ([(Rot90(), (3, 3)), C4_PLANE], None, 21 + 2 + 0 + 0),
        ([(Rot90(), (2, 2)), (C3, (3,))], [(Rot90(), (3, 3)), (C3, (2, 3))], 9 + 6 + 1 * 2 + 1 * 3),
        ([(Flip(), (4,)), (C3, (3,))], [torch.ones(2, 1, 1), (C3, (3,))], 2 + 3 + 2 * 1 + 1 * 1),
    ],
    ids=["matrix-rep", "grid-and-plane", "different-out-reps", "invariant-output-block"],
)
def test_dimension_formula_matches_brute_force_and_basis(in_specs, out_specs, expected):
    pairs = _product_elements(in_specs, out_specs)
    d = equivariant_linear_dimension(in_specs, out_specs)
    basis = equivariant_linear_basis(in_specs, out_specs)
    assert d == expected == _brute_force_dimension(pairs) == basis.shape[0]
    assert int(torch.linalg.matrix_rank(basis.reshape(d, -1))) == d
    assert _max_violation(basis, pairs) < 1e-12


def test_permutation_and_dense_paths_span_the_same_space():
    """Conjugating the permutation representations by orthogonal matrices forces the SVD path; its
    span must be the conjugate of the orbit basis."""
    qs = [torch.linalg.qr(torch.randn(d, d, dtype=torch.float64))[0] for d in (9, 3)]
    conj = [q @ _mats(s) @ q.T for q, s in zip(qs, WORKED, strict=True)]
    dense = equivariant_linear_basis(conj)
    assert dense.shape[0] == 30
    q = torch.block_diag(*qs)
    moved = q @ equivariant_linear_basis(WORKED) @ q.T
    both = torch.cat([dense.reshape(30, -1), moved.reshape(30, -1)])
    assert int(torch.linalg.matrix_rank(both)) == 30


@settings(max_examples=15, deadline=None)
@given(st.permutations(range(4)), st.permutations(range(3)), st.integers(1, 2))
def test_random_permutation_groups_formula_equals_brute_force(p1, p2, out_channels):
    """Random cyclic permutation groups (orders 1-4) on two blocks, the second block's output with
    extra channels: formula = basis size = brute force, and the basis is equivariant."""
    g1, g2 = PermutationGroup.from_generators([list(p1)]), PermutationGroup.from_generators([list(p2)])
    ins = [(g1, (4,)), (g2, (3,))]
    outs = [(g1, (4,)), (g2, (out_channels, 3))]
    pairs = _product_elements(ins, outs)
    basis = equivariant_linear_basis(ins, outs)
    assert equivariant_linear_dimension(ins, outs) == basis.shape[0] == _brute_force_dimension(pairs)
    assert _max_violation(basis, pairs) < 1e-12


@pytest.mark.parametrize("reps", [WORKED, [C4_PLANE, (C3, (3,))]], ids=["permutation", "matrix"])
def test_equivariant_linear_layer_is_equivariant_per_input(reps, dtype):
    layer = EquivariantLinear(reps, dtype=dtype)
    with torch.no_grad():
        layer.bias_coefficients.normal_()
    groups = [r[0] if isinstance(r, tuple) else r for r in reps]
    shapes = [r[1] if isinstance(r, tuple) else (r.size,) for r in reps]
    xs = [torch.randn(4, *s, dtype=dtype) for s in shapes]
    errs = equivariance_error(layer, groups, xs, output=["same", "same"])
    assert max(errs) < tol(dtype)
    assert_equivariant(layer, groups, xs, output=["same", "same"])
    # the check can fail: a dense layer with the same shapes is not equivariant
    dense = torch.nn.Linear(layer.weight.shape[1], layer.weight.shape[0]).to(dtype)

    def unstructured(*inputs):
        y = dense(torch.cat([x.flatten(1) for x in inputs], 1))
        return tuple(p.reshape(-1, *s) for p, s in zip(y.split(layer.out_dims, 1), shapes, strict=True))

    assert max(equivariance_error(unstructured, groups, xs, output=["same", "same"])) > 1e-3


def test_equivariant_linear_weight_lies_in_the_span_and_matches_the_formula():
    layer = EquivariantLinear(WORKED, dtype=torch.float64).requires_grad_(False)
    layer.bias_coefficients.normal_()
    basis = equivariant_linear_basis(WORKED)
    torch.testing.assert_close(layer.weight, torch.einsum("k,koi->oi", layer.coefficients, basis))
    x1, x2 = torch.randn(5, 3, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    y1, y2 = layer(x1, x2)
    y = torch.cat([x1.flatten(1), x2], 1) @ layer.weight.T + layer.bias
    torch.testing.assert_close(torch.cat([y1.flatten(1), y2], 1), y)
    # bias is fixed by both groups: constant on the grid's rotation orbits and on R^3
    b = layer.bias.detach()
    assert all(torch.equal(ry @ b, b) for _, ry in _product_elements(WORKED))
    assert b[0] != b[1]  # corners and edges of the grid are different orbits
    # weight entries have about nn.Linear's variance 1/(3 D_in)
    big = EquivariantLinear([(Rot90(), (16, 16))], bias=False)
    assert 0.8 < float(big.weight.detach().var() * 3 * 256) < 1.2


def test_equivariant_linear_gradients_reach_the_coefficients():
    layer = EquivariantLinear([C4_PLANE, (C3, (3,))])
    ys = layer(torch.randn(3, 2), torch.randn(3, 3))
    sum(y.pow(2).sum() for y in ys).backward()
    assert layer.coefficients.grad is not None and bool((layer.coefficients.grad != 0).all())
    assert layer.bias_coefficients.grad is not None and bool((layer.bias_coefficients.grad != 0).all())


def test_equivariant_linear_scales_to_images_with_permutation_representations():
    """A 28x28 image block: ~196k coefficients, stored as one index per weight entry (no dense basis)."""
    layer = EquivariantLinear([(Rot90(), (28, 28))], bias=False)
    assert layer.basis is None and layer.labels.shape == (784, 784)
    assert layer.dimension == equivariant_linear_dimension([(Rot90(), (28, 28))]) == (784 * 784) // 4
    layer = layer.double()
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    assert equivariance_error(lambda t: layer(t)[0], Rot90(), x, "same") < 1e-9


def test_bad_representations_raise_clear_errors():
    with pytest.raises(TypeError, match="block representation"):
        equivariant_linear_basis([Rot90()])
    with pytest.raises(TypeError, match="non-empty list"):
        equivariant_linear_dimension([])
    with pytest.raises(ValueError, match="cannot act on tensors of shape"):
        equivariant_linear_basis([(Rot90(), (2, 3))])
    with pytest.raises(ValueError, match="same group"):
        equivariant_linear_basis([(Rot90(), (3, 3))], [(C3, (3,))])
    with pytest.raises(ValueError, match="same number of blocks"):
        equivariant_linear_basis(WORKED, WORKED[:1])
    with pytest.raises(ValueError, match="identity"):
        equivariant_linear_basis([torch.stack([-torch.eye(2), torch.eye(2)])])
    with pytest.raises(ValueError, match="not an integer"):
        equivariant_linear_dimension([torch.stack([torch.eye(2), torch.diag(torch.tensor([1.0, 3.0]))])])
    with pytest.raises(ValueError, match=r"\(n_elements, D, D\)"):
        equivariant_linear_basis([torch.ones(2, 3)])


def test_equivariant_linear_rejects_bad_inputs():
    layer = EquivariantLinear(WORKED)
    with pytest.raises(ValueError, match="expected 2 inputs"):
        layer(torch.randn(2, 3, 3))
    with pytest.raises(ValueError, match=r"input 1 must have shape \(\*batch, 3\)"):
        layer(torch.randn(2, 3, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="batch shape"):
        layer(torch.randn(2, 3, 3), torch.randn(5, 3))
    with pytest.raises(TypeError, match="must be a Tensor"):
        layer(torch.randn(2, 3, 3), [1.0, 2.0, 3.0])
