"""Symmetrizers: wrappers that make any model equivariant or invariant to a group.

- :class:`Equitune`, :class:`LambdaEquitune`, :class:`Equizero`: one group ``G``, ``|G|`` copies.
- :class:`MultiEquitune`, :class:`MultiLambdaEquitune`, :class:`MultiEquizero`: several factors
  acting on the same input (Design 2 of the paper), ``Σ |G_i|`` copies instead of ``Π |G_i|``.
- :func:`symmetrize_output`: the output symmetrizer ``S_G[y] = 1/|G| Σ_g g·y``.
- :class:`Symmetrizer` and :class:`Branch`: the engine; subclass :class:`Symmetrizer` and
  override :meth:`~Symmetrizer.reduce` for a new reduction.
- :func:`examples_per_call`: the chunking rule every wrapper follows (``chunk_size``).
"""

from ._engine import AUTO_MIN_ROWS as AUTO_MIN_ROWS
from ._engine import Aggregate as Aggregate
from ._engine import Branch as Branch
from ._engine import ChunkSize as ChunkSize
from ._engine import Output as Output
from ._engine import Symmetrizer as Symmetrizer
from ._engine import apply_symmetrizer as apply_symmetrizer
from ._engine import examples_per_call as examples_per_call
from ._engine import is_tuning as is_tuning
from ._engine import model_output_tensor as model_output_tensor
from ._engine import sequential_sum as sequential_sum
from ._engine import sorted_mean as sorted_mean
from ._engine import symmetrize_output as symmetrize_output
from ._wrappers import Equitune as Equitune
from ._wrappers import Equizero as Equizero
from ._wrappers import LambdaEquitune as LambdaEquitune
from ._wrappers import MultiEquitune as MultiEquitune
from ._wrappers import MultiEquizero as MultiEquizero
from ._wrappers import MultiLambdaEquitune as MultiLambdaEquitune
from ._wrappers import entropy_loss as entropy_loss
from ._wrappers import max_prob_loss as max_prob_loss

__all__ = [
    "AUTO_MIN_ROWS",
    "Aggregate",
    "Branch",
    "ChunkSize",
    "Equitune",
    "Equizero",
    "LambdaEquitune",
    "MultiEquitune",
    "MultiEquizero",
    "MultiLambdaEquitune",
    "Output",
    "Symmetrizer",
    "apply_symmetrizer",
    "entropy_loss",
    "examples_per_call",
    "is_tuning",
    "max_prob_loss",
    "model_output_tensor",
    "sequential_sum",
    "sorted_mean",
    "symmetrize_output",
]
