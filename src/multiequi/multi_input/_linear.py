"""Exact equivariant linear maps between direct sums ``X_1 ⊕ … ⊕ X_N → Y_1 ⊕ … ⊕ Y_N``.

The paper's linear characterization: with ``G_i`` acting on block ``i`` only, ``L`` is equivariant
iff every diagonal block ``L_ii`` is ``G_i``-equivariant and every off-diagonal block ``L_ij``
(input ``i`` to output ``j``) is invariant-symmetric: ``L_ij ρ_Xi(g) = L_ij`` and
``ρ_Yj(h) L_ij = L_ij``, i.e. ``L_ij = P_Yj W P_Xi`` with ``P = 1/|G| Σ_g ρ(g)``.

Representations are given per block as ``(group, shape)`` (matrices from :meth:`Group.matrices`),
a :class:`~multiequi.groups.MatrixGroup`, or a raw ``(n, D, D)`` tensor of matrices (element
``0`` the identity). Permutation representations get an exact orbit basis (0/1 entries, one
coefficient per orbit of index pairs) at any size; other representations the range of the
Reynolds projection, computed by an SVD in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..groups import Group, MatrixGroup

__all__ = ["EquivariantLinear", "equivariant_linear_basis", "equivariant_linear_dimension"]

RepSpec = Tensor | MatrixGroup | tuple[Group, Sequence[int]]
#: One block representation, or a list with one per block.
Reps = RepSpec | Sequence[RepSpec]

#: Largest ``D_out · D_in`` of a non-permutation diagonal block (its Reynolds matrix is that squared).
_MAX_DENSE_BLOCK = 4096
#: Largest number of entries of a dense basis tensor returned by :func:`equivariant_linear_basis`.
_MAX_DENSE_BASIS = 2**27


class _Rep:
    """One block's representation: matrices ``(n, D, D)`` in float64, the block's tensor shape,
    and, for permutation matrices, ``perm[g, j]`` = the index to which ``g`` sends ``e_j``."""

    def __init__(self, spec: Any, where: str) -> None:
        self.group: Group | None = None
        if isinstance(spec, MatrixGroup):
            spec = (spec, (spec.size,))
        if isinstance(spec, Tensor):
            m = spec.detach().to("cpu", torch.float64)
            if m.dim() != 3 or m.shape[1] != m.shape[2] or m.shape[0] < 1:
                raise ValueError(f"{where}: raw matrices must have shape (n_elements, D, D), got {tuple(m.shape)}")
            self.shape: tuple[int, ...] = (int(m.shape[1]),)
        elif isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], Group):
            group, shape = spec
            shape = (shape,) if isinstance(shape, int) else shape
            try:
                self.shape = tuple(int(s) for s in shape)
            except TypeError as err:
                raise TypeError(f"{where}: the block shape must be a sequence of ints, got {shape!r}") from err
            try:
                m = group.matrices(self.shape)
            except (ValueError, TypeError, RuntimeError) as err:
                raise ValueError(f"{where}: {group!r} cannot act on tensors of shape {self.shape}: {err}") from err
            self.group = group
        else:
            raise TypeError(
                f"{where}: a block representation is (group, shape), a MatrixGroup, or a tensor of matrices "
                f"(n_elements, D, D); got {type(spec).__name__}"
            )
        n, d, _ = m.shape
        if not torch.allclose(m[0], torch.eye(d, dtype=m.dtype), atol=1e-9):
            raise ValueError(f"{where}: the first matrix must be the identity (element 0 is the identity)")
        self.matrices = m
        self.order = n
        self.dim = d
        is_perm = bool(((m == 0) | (m == 1)).all()) and bool((m.sum(1) == 1).all()) and bool((m.sum(2) == 1).all())
        self.perm: Tensor | None = m.argmax(1) if is_perm else None  # column j of M[g] is e_{perm[g, j]}
        if is_perm:
            self.inverse = m.transpose(1, 2)
        else:
            try:
                self.inverse = torch.linalg.inv(m)
            except RuntimeError as err:
                raise ValueError(f"{where}: the matrices must be invertible: {err}") from err

    def orbit_labels(self) -> tuple[Tensor, int]:
        """Compact orbit index of every position (permutation representations)."""
        assert self.perm is not None
        _, lab = torch.unique(self.perm.amin(0), return_inverse=True)
        return lab, int(lab.max()) + 1 if lab.numel() else 0

    def fixed_basis(self, transpose: bool = False) -> Tensor:
        """Columns spanning ``{v : ρ(g) v = v}`` (``transpose``: ``{v : vᵀ ρ(g) = vᵀ}``), ``(D, r)``."""
        if self.perm is not None:
            lab, k = self.orbit_labels()
            return F.one_hot(lab, k).to(torch.float64)
        p = self.matrices.mean(0)
        u, s, _ = torch.linalg.svd(p.T if transpose else p)
        # nonzero singular values of a projection are >= 1; 0.5 separates them from 0 robustly
        return u[:, s > 0.5]


def _reps(in_reps: Any, out_reps: Any) -> tuple[list[_Rep], list[_Rep]]:
    def as_list(specs: Any, name: str) -> list[Any]:
        if isinstance(specs, (Tensor, MatrixGroup)) or (
            isinstance(specs, tuple) and len(specs) == 2 and isinstance(specs[0], Group)
        ):
            return [specs]  # one block
        if not isinstance(specs, (list, tuple)) or not specs:
            raise TypeError(f"{name} must be a non-empty list of block representations, got {type(specs).__name__}")
        return list(specs)

    ins = as_list(in_reps, "in_reps")
    outs = ins if out_reps is None else as_list(out_reps, "out_reps")
    if len(outs) != len(ins):
        raise ValueError(f"in_reps and out_reps must list the same number of blocks; got {len(ins)} and {len(outs)}")
    rx = [_Rep(s, f"in_reps[{i}]") for i, s in enumerate(ins)]
    ry = rx if out_reps is None else [_Rep(s, f"out_reps[{i}]") for i, s in enumerate(outs)]
    for i, (a, b) in enumerate(zip(rx, ry, strict=True)):
        if a.order != b.order:
            raise ValueError(
                f"block {i}: the input and output representations must be of the same group; "
                f"they have {a.order} and {b.order} elements"
            )
        if a.group is not None and b.group is not None and a.group is not b.group:
            if not torch.equal(a.group.table, b.group.table):
                raise ValueError(
                    f"block {i}: in and out representations come from different groups ({a.group!r}, {b.group!r})"
                )
    return rx, ry


def _hom_piece(ry: _Rep, rx: _Rep) -> tuple[str, Tensor, int]:
    """Basis of ``Hom_G(X, Y)``: orbit labels ``(Dy, Dx)`` for permutations, else dense ``(k, Dy, Dx)``."""
    if ry.perm is not None and rx.perm is not None:
        img = ry.perm[:, :, None] * rx.dim + rx.perm[:, None, :]  # index of (g·a, g·b) for every g
        _, lab = torch.unique(img.amin(0), return_inverse=True)  # orbit minimum labels the orbit
        return "labels", lab, int(lab.max()) + 1
    if ry.dim * rx.dim > _MAX_DENSE_BLOCK:
        raise ValueError(
            f"a {ry.dim} x {rx.dim} diagonal block with a non-permutation representation is too large for the "
            f"dense Reynolds projection (D_out * D_in <= {_MAX_DENSE_BLOCK}); use permutation representations"
        )
    # R vec(W) = vec(1/|G| Σ_g ρ_Y(g)⁻¹ W ρ_X(g)) with row-major vec: R[a, b, c, d] = mean_g ρ_Y(g)⁻¹[a, c] ρ_X(g)[d, b]
    r = torch.einsum("gac,gdb->abcd", ry.inverse, rx.matrices) / ry.order
    u, s, _ = torch.linalg.svd(r.reshape(ry.dim * rx.dim, ry.dim * rx.dim))
    basis = u[:, s > 0.5].T.reshape(-1, ry.dim, rx.dim)
    return "dense", basis, basis.shape[0]


def _is_piece(ry: _Rep, rx: _Rep) -> tuple[str, Tensor, int]:
    """Basis of the IS maps ``P_Y W P_X``: outer products of fixed vectors and fixed covectors."""
    if ry.perm is not None and rx.perm is not None:
        ly, ky = ry.orbit_labels()
        lx, kx = rx.orbit_labels()
        return "labels", ly[:, None] * kx + lx[None, :], ky * kx
    u = ry.fixed_basis()
    v = rx.fixed_basis(transpose=True)
    basis = torch.einsum("ar,bs->rsab", u, v).reshape(-1, ry.dim, rx.dim)
    return "dense", basis, basis.shape[0]


class _Structure:
    """All blocks of the equivariant maps, in the order (output block j, input block i)."""

    def __init__(self, in_reps: Any, out_reps: Any) -> None:
        self.rx, self.ry = _reps(in_reps, out_reps)
        self.in_dims = [r.dim for r in self.rx]
        self.out_dims = [r.dim for r in self.ry]
        self.in_off = [sum(self.in_dims[:i]) for i in range(len(self.rx))]
        self.out_off = [sum(self.out_dims[:j]) for j in range(len(self.ry))]
        self.d_in, self.d_out = sum(self.in_dims), sum(self.out_dims)
        self.pieces: list[tuple[int, int, str, Tensor, int]] = []
        for j, ry in enumerate(self.ry):
            for i, rx in enumerate(self.rx):
                kind, data, k = _hom_piece(ry, rx) if i == j else _is_piece(ry, rx)
                self.pieces.append((j, i, kind, data, k))
        self.k = sum(p[4] for p in self.pieces)
        self.all_labels = all(p[2] == "labels" for p in self.pieces)

    def labels(self) -> Tensor:
        """``(D_out, D_in)`` index of the coefficient of every entry (permutation representations)."""
        lab = torch.empty(self.d_out, self.d_in, dtype=torch.long)
        start = 0
        for j, i, _, data, k in self.pieces:
            lab[
                self.out_off[j] : self.out_off[j] + self.out_dims[j], self.in_off[i] : self.in_off[i] + self.in_dims[i]
            ] = data + start
            start += k
        return lab

    def dense(self) -> Tensor:
        """The basis ``(k, D_out, D_in)`` in float64."""
        if self.k * self.d_out * self.d_in > _MAX_DENSE_BASIS:
            raise ValueError(
                f"the dense basis would have {self.k} x {self.d_out} x {self.d_in} entries; use EquivariantLinear, "
                "which stores one coefficient index per entry for permutation representations"
            )
        out = torch.zeros(self.k, self.d_out, self.d_in, dtype=torch.float64)
        start = 0
        for j, i, kind, data, k in self.pieces:
            block = F.one_hot(data, k).permute(2, 0, 1).to(torch.float64) if kind == "labels" else data
            out[
                start : start + k,
                self.out_off[j] : self.out_off[j] + self.out_dims[j],
                self.in_off[i] : self.in_off[i] + self.in_dims[i],
            ] = block
            start += k
        return out

    def bias_basis(self) -> Tensor:
        """``(k_b, D_out)``: the fixed vectors of every output block (an equivariant bias)."""
        parts = []
        for j, ry in enumerate(self.ry):
            u = ry.fixed_basis()  # (Dy, r)
            b = torch.zeros(u.shape[1], self.d_out, dtype=torch.float64)
            b[:, self.out_off[j] : self.out_off[j] + ry.dim] = u.T
            parts.append(b)
        return torch.cat(parts)


def equivariant_linear_basis(in_reps: Reps, out_reps: Reps | None = None) -> Tensor:
    """A basis of the linear maps ``X_1 ⊕ … ⊕ X_N → Y_1 ⊕ … ⊕ Y_N`` equivariant to ``G_1 × … × G_N``.

    Group ``G_i`` acts on block ``i`` of the input (``ρ_Xi``) and of the output (``ρ_Yi``) only.
    Diagonal blocks span ``Hom_{G_i}(X_i, Y_i)`` (the Reynolds projection
    ``1/|G| Σ_g ρ_Y(g)⁻¹ W ρ_X(g)``); off-diagonal blocks span the invariant-symmetric maps
    ``P_Yj W P_Xi``. Vectors are the blocks' tensors flattened in row-major order and concatenated.

    Parameters
    ----------
    in_reps : list of block representations
        One per input block: ``(group, shape)`` (the group's action on tensors of that shape),
        a :class:`~multiequi.groups.MatrixGroup`, or a tensor ``(n_i, D_i, D_i)`` of matrices
        (column ``j`` of matrix ``g`` is ``g·e_j``; matrix ``0`` the identity).
    out_reps : list of block representations or None
        One per output block, with the same groups in the same element order; ``None``: the
        input representations.

    Returns
    -------
    Tensor
        ``(k, D_out, D_in)`` in float64, ``k`` = :func:`equivariant_linear_dimension`. Basis
        elements are ordered by output block, then input block. For permutation
        representations they are 0/1 indicators of orbits of index pairs; otherwise each block's
        elements are orthonormal.

    Examples
    --------
    >>> from multiequi.groups import PermutationGroup, Rot90
    >>> from multiequi.multi_input import equivariant_linear_basis
    >>> C3 = PermutationGroup([[0, 1, 2], [1, 2, 0], [2, 0, 1]])
    >>> basis = equivariant_linear_basis([(Rot90(), (3, 3)), (C3, (3,))])
    >>> basis.shape                                     # 21 + 3 + 3·1 + 1·3 maps on R^9 ⊕ R^3
    torch.Size([30, 12, 12])
    """
    return _Structure(in_reps, out_reps).dense()


def equivariant_linear_dimension(in_reps: Reps, out_reps: Reps | None = None) -> int:
    """Dimension of the equivariant maps: ``Σ_i dim Hom_{G_i}(X_i, Y_i) + Σ_{i≠j} dim X_i^{G_i} · dim Y_j^{G_j}``.

    Computed from characters, independently of the basis:
    ``dim Hom_G(X, Y) = 1/|G| Σ_g tr ρ_Y(g)⁻¹ · tr ρ_X(g)`` and ``dim X^G = 1/|G| Σ_g tr ρ_X(g)``.
    Arguments as in :func:`equivariant_linear_basis`.

    Examples
    --------
    >>> from multiequi.groups import PermutationGroup, Rot90
    >>> from multiequi.multi_input import equivariant_linear_dimension
    >>> C3 = PermutationGroup([[0, 1, 2], [1, 2, 0], [2, 0, 1]])
    >>> equivariant_linear_dimension([(Rot90(), (3, 3)), (C3, (3,))])     # 21 + 3 + 2·(3·1)
    30
    """
    rx, ry = _reps(in_reps, out_reps)

    def trace(m: Tensor) -> Tensor:
        return m.diagonal(dim1=1, dim2=2).sum(-1)

    def as_int(v: Tensor, what: str) -> int:
        f = float(v)
        if abs(f - round(f)) > 1e-6:
            raise ValueError(
                f"{what} = {f} is not an integer: the matrices do not form a representation of a finite group"
            )
        return round(f)

    hom = [
        as_int((trace(y.inverse) * trace(x.matrices)).mean(), f"dim Hom block {i}")
        for i, (x, y) in enumerate(zip(rx, ry, strict=True))
    ]
    fix_x = [as_int(trace(x.matrices).mean(), f"dim X_{i}^G") for i, x in enumerate(rx)]
    fix_y = [as_int(trace(y.matrices).mean(), f"dim Y_{j}^G") for j, y in enumerate(ry)]
    n = len(rx)
    return sum(hom) + sum(fix_x[i] * fix_y[j] for i in range(n) for j in range(n) if i != j)


class EquivariantLinear(nn.Module):
    """An exactly equivariant linear layer on ``X_1 ⊕ … ⊕ X_N``: ``W = Σ_k c_k B_k`` (+ an equivariant bias).

    The coefficients ``c_k`` on the basis of :func:`equivariant_linear_basis` are the trainable
    parameters, so every weight the layer can take is equivariant to ``G_1 × … × G_N``
    (diagonal blocks ``G_i``-equivariant, off-diagonal blocks invariant-symmetric). For
    permutation representations the weight is a gather ``c[labels]`` (one index per entry, no
    dense basis), so large blocks such as images are cheap.

    Parameters
    ----------
    in_reps, out_reps
        Block representations, as in :func:`equivariant_linear_basis`.
    bias : bool
        Add a bias in the fixed subspace of every output block (default ``True``).
    dtype, device
        Of the parameters (default: torch's default dtype, CPU).

    Notes
    -----
    ``forward(*xs)`` takes one tensor per input block, of shape ``(*batch, *shape_i)`` (``shape_i``
    the block's shape, ``(D_i,)`` for raw matrices), and returns a tuple with one tensor per output
    block. Coefficients are initialised so the weight entries have the variance of
    ``nn.Linear``'s default initialisation; the bias starts at zero. For non-permutation
    representations the dense basis is a buffer of the parameters' dtype: build the layer with
    ``dtype=torch.float64`` for float64 exactness (``.double()`` on a float32 layer keeps a basis
    rounded to float32).

    Examples
    --------
    >>> import torch
    >>> from multiequi.groups import PermutationGroup, Rot90
    >>> from multiequi.multi_input import EquivariantLinear
    >>> C3 = PermutationGroup([[0, 1, 2], [1, 2, 0], [2, 0, 1]])
    >>> layer = EquivariantLinear([(Rot90(), (3, 3)), (C3, (3,))]).double()
    >>> layer.coefficients.numel(), tuple(layer.weight.shape)
    (30, (12, 12))
    >>> x1, x2 = torch.randn(2, 3, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    >>> y1, y2 = layer(x1, x2)
    >>> z1, z2 = layer(torch.rot90(x1, 1, (-2, -1)), x2)          # rotate the grid only
    >>> torch.allclose(z1, torch.rot90(y1, 1, (-2, -1))), torch.allclose(z2, y2)
    (True, True)
    """

    def __init__(
        self,
        in_reps: Reps,
        out_reps: Reps | None = None,
        bias: bool = True,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        s = _Structure(in_reps, out_reps)
        dtype = dtype or torch.get_default_dtype()
        self.in_shapes = [r.shape for r in s.rx]
        self.out_shapes = [r.shape for r in s.ry]
        self.in_dims, self.out_dims = s.in_dims, s.out_dims
        self.dimension = s.k
        self.labels: Tensor | None
        self.basis: Tensor | None
        if s.all_labels:
            self.register_buffer("labels", s.labels().to(device))
            self.basis = None
            norm2 = float(s.d_out * s.d_in)  # Σ_k ||B_k||² for a partition into indicators
        else:
            basis = s.dense()
            self.labels = None
            self.register_buffer("basis", basis.to(device=device, dtype=dtype))
            norm2 = float(basis.pow(2).sum())
        self.coefficients = nn.Parameter(torch.empty(s.k, dtype=dtype, device=device))
        self._init_std = math.sqrt(s.d_out / (3.0 * norm2)) if norm2 > 0 else 0.0
        self.bias_basis: Tensor | None
        if bias:
            self.register_buffer("bias_basis", s.bias_basis().to(device=device, dtype=dtype))
            self.bias_coefficients: nn.Parameter | None = nn.Parameter(
                torch.zeros(cast(Tensor, self.bias_basis).shape[0], dtype=dtype, device=device)
            )
        else:
            self.bias_basis = None
            self.bias_coefficients = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Coefficients ~ N(0, σ²) with σ chosen so the weight entries have variance ``1 / (3 D_in)``."""
        with torch.no_grad():
            nn.init.normal_(self.coefficients, 0.0, self._init_std)
            if self.bias_coefficients is not None:
                self.bias_coefficients.zero_()

    @property
    def weight(self) -> Tensor:
        """The ``(D_out, D_in)`` weight ``Σ_k c_k B_k``."""
        if self.labels is not None:
            return self.coefficients[self.labels]
        assert self.basis is not None
        return torch.einsum("k,koi->oi", self.coefficients, self.basis)

    @property
    def bias(self) -> Tensor | None:
        """The ``(D_out,)`` bias (fixed by every group), or ``None``."""
        if self.bias_coefficients is None:
            return None
        # bias_basis is a buffer whenever bias_coefficients is a Parameter (both set in __init__).
        return self.bias_coefficients @ cast(Tensor, self.bias_basis)

    def forward(self, *xs: Tensor) -> tuple[Tensor, ...]:
        """One output per block: ``y = W x + b`` on the concatenated, flattened blocks."""
        n = len(self.in_shapes)
        if len(xs) != n:
            raise ValueError(f"expected {n} inputs (one per block, shapes {self.in_shapes}), got {len(xs)}")
        flat = []
        batch: tuple[int, ...] | None = None
        for i, (x, shape) in enumerate(zip(xs, self.in_shapes, strict=True)):
            if not isinstance(x, Tensor):
                raise TypeError(f"input {i} must be a Tensor, got {type(x).__name__}")
            k = len(shape)
            if x.dim() < k or tuple(x.shape[x.dim() - k :]) != shape:
                raise ValueError(
                    f"input {i} must have shape (*batch, {', '.join(map(str, shape))}); got {tuple(x.shape)}"
                )
            b = tuple(x.shape[: x.dim() - k])
            if batch is not None and b != batch:
                raise ValueError(f"all inputs must share the batch shape; input 0 has {batch}, input {i} has {b}")
            batch = b
            flat.append(x.reshape(*b, self.in_dims[i]))
        y = F.linear(torch.cat(flat, dim=-1), self.weight, self.bias)
        assert batch is not None
        return tuple(
            part.reshape(*batch, *shape)
            for part, shape in zip(y.split(self.out_dims, dim=-1), self.out_shapes, strict=True)
        )

    def extra_repr(self) -> str:
        has_bias = self.bias_coefficients is not None
        return f"in_shapes={self.in_shapes}, out_shapes={self.out_shapes}, dimension={self.dimension}, bias={has_bias}"
