"""multiequi: make any pretrained model equivariant to several groups at once.

Equitune over a product of groups costs ``Π |G_i|`` forward passes; multi-equitune costs
``Σ |G_i|``. See the README for a tour and ``multiequi.testing`` to check your own models.

Examples
--------
>>> import torch
>>> from multiequi import MultiEquitune
>>> from multiequi.groups import Rot90, Flip
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 10))
>>> robust = MultiEquitune(model, [Rot90(), Flip()])     # 4 + 2 = 6 copies, not 8
>>> robust(torch.randn(2, 3, 8, 8)).shape
torch.Size([2, 10])
"""

from . import groups as groups
from . import testing as testing
from .multi_input import DeepSetsLayer as DeepSetsLayer
from .multi_input import DSSLayer as DSSLayer
from .multi_input import ISLayer as ISLayer
from .multi_input import MultiInputNetwork as MultiInputNetwork
from .symmetrize import Equitune as Equitune
from .symmetrize import Equizero as Equizero
from .symmetrize import LambdaEquitune as LambdaEquitune
from .symmetrize import MultiEquitune as MultiEquitune
from .symmetrize import MultiEquizero as MultiEquizero
from .symmetrize import MultiLambdaEquitune as MultiLambdaEquitune
from .symmetrize import Symmetrizer as Symmetrizer

__version__ = "0.1.0"

__all__ = [
    "DSSLayer",
    "DeepSetsLayer",
    "Equitune",
    "Equizero",
    "ISLayer",
    "LambdaEquitune",
    "MultiEquitune",
    "MultiEquizero",
    "MultiInputNetwork",
    "MultiLambdaEquitune",
    "Symmetrizer",
    "__version__",
    "groups",
    "testing",
]
