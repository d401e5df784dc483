"""Finite groups and their actions on tensors.

Groups are objects: elements are indexed ``0 .. len(G) - 1`` with the identity first, and every
group acts on a stack of tensors in one tensor operation (:meth:`Group.transform`).

- :class:`Rot90`, :class:`Flip`: rotations by 90° and reflections of image axes.
- :class:`TokenCycles`: word-swap groups on token ids and output vocabularies.
- :class:`Product`: the product of groups acting on the same tensors (``G1 * G2`` too).
- :class:`PermutationGroup`, :class:`MatrixGroup`: define your own group from permutations or
  matrices.
- :class:`Action` and its subclasses: how outputs transform (``output=`` of the symmetrizers).

Groups compare by structure (``Rot90() == Rot90()``) and draw seeded random elements
(:meth:`Group.sample`). To define a new group, subclass :class:`Group` (its docstring has an
example); :func:`as_elements`, :func:`checks_enabled` and :func:`trusted` are the helpers a
subclass uses.
"""

from ._actions import Action as Action
from ._actions import AxisPermutation as AxisPermutation
from ._actions import InputAction as InputAction
from ._actions import InvariantAction as InvariantAction
from ._actions import MatrixAction as MatrixAction
from ._actions import PermutationAction as PermutationAction
from ._actions import VocabAction as VocabAction
from ._actions import resolve_action as resolve_action
from ._base import Group as Group
from ._base import as_elements as as_elements
from ._base import checks_enabled as checks_enabled
from ._base import trusted as trusted
from ._images import Flip as Flip
from ._images import Rot90 as Rot90
from ._linear import MatrixGroup as MatrixGroup
from ._linear import TrivialGroup as TrivialGroup
from ._permutations import PermutationGroup as PermutationGroup
from ._positions import PositionGroup as PositionGroup
from ._product import Product as Product
from ._tokens import TokenCycles as TokenCycles

__all__ = [
    "Action",
    "AxisPermutation",
    "Flip",
    "Group",
    "InputAction",
    "InvariantAction",
    "MatrixAction",
    "MatrixGroup",
    "PermutationAction",
    "PermutationGroup",
    "PositionGroup",
    "Product",
    "Rot90",
    "TokenCycles",
    "TrivialGroup",
    "VocabAction",
    "as_elements",
    "checks_enabled",
    "resolve_action",
    "trusted",
]
