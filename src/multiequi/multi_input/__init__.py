"""Multi-input networks (Design 1 of the paper): several inputs, each with its own group.

Inputs ``x_1, …, x_N`` carry groups ``G_1, …, G_N``, each acting on its own input only. Equitune
over the product ``G_1 × … × G_N`` costs ``Π |G_i|`` copies; these layers cost ``Σ |G_i|``.

- :class:`ISLayer`: invariant-symmetric layer ``S_out[A_in[M]]`` around any model (the cross terms).
- :class:`MultiInputNetwork`: ``y_j = E_{G_j}[M_j](x_j) + Σ_{i≠j} IS_ij(x_i)``, equivariant to every
  input's group acting independently; :class:`MultiInputClassifier` for invariant tuple
  classification (per-input invariant features, optional IS fusion, any head).
- :class:`DSSLayer`, :class:`DeepSetsLayer`: baselines for a set of inputs sharing one group.
- :func:`equivariant_linear_basis`, :func:`equivariant_linear_dimension`, :class:`EquivariantLinear`:
  the paper's exact characterization of equivariant linear maps on ``X_1 ⊕ … ⊕ X_N``.
- :func:`symmetrize_output`: the output symmetrizer ``S_G[y] = 1/|G| Σ_g g·y``.
- :func:`sample_elements`, :func:`transform_inputs`, :func:`joint_group`: inputs stacked on one
  axis, each transformed by its own group (seeded), and the group of all of them together.
"""

from ._inputs import joint_group as joint_group
from ._inputs import sample_elements as sample_elements
from ._inputs import transform_inputs as transform_inputs
from ._is_layer import ISLayer as ISLayer
from ._is_layer import symmetrize_output as symmetrize_output
from ._linear import EquivariantLinear as EquivariantLinear
from ._linear import equivariant_linear_basis as equivariant_linear_basis
from ._linear import equivariant_linear_dimension as equivariant_linear_dimension
from ._network import MultiInputClassifier as MultiInputClassifier
from ._network import MultiInputNetwork as MultiInputNetwork
from ._sets import DeepSetsLayer as DeepSetsLayer
from ._sets import DSSLayer as DSSLayer

__all__ = [
    "DSSLayer",
    "DeepSetsLayer",
    "EquivariantLinear",
    "ISLayer",
    "MultiInputClassifier",
    "MultiInputNetwork",
    "equivariant_linear_basis",
    "equivariant_linear_dimension",
    "joint_group",
    "sample_elements",
    "symmetrize_output",
    "transform_inputs",
]
