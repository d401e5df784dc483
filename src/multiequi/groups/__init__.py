"""Finite groups and their actions on tensors.

Groups are objects: elements are indexed ``0 .. len(G) - 1`` with the identity first, and every
group acts on a stack of tensors in one tensor operation (:meth:`Group.transform`).

- :class:`Rot90`, :class:`Flip`: rotations by 90° and reflections of image axes.
- :class:`TokenCycles`: word-swap groups on token ids and output vocabularies.
- :class:`Product`: the product of groups acting on the same tensors (``G1 * G2`` too).
- :class:`PermutationGroup`, :class:`MatrixGroup`: define your own group from permutations or
  matrices.
- :class:`Action` and its subclasses: how outputs transform (``output=`` of the symmetrizers).
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
from ._images import Flip as Flip
from ._images import PermutationGroup as PermutationGroup
from ._images import PositionGroup as PositionGroup
from ._images import Rot90 as Rot90
from ._linear import MatrixGroup as MatrixGroup
from ._linear import TrivialGroup as TrivialGroup
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
    "resolve_action",
]
