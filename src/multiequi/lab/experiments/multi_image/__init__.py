"""Multi-image classification with IS layers (Design 1 of the paper), on real data.

K-tuples of images of one class, each view transformed independently (rotations by multiples of
90°, or C4 on some views and a flip on others); a Siamese CNN, the same with each view's branch
equituned over its own group (Multi-GCNN, ``Σ |G_i|`` copies per tuple instead of ``Π |G_i|``),
each with and without an IS fusion term, and DSS / DeepSets baselines. Default data: Fashion-MNIST
(Debian's ``dataset-fashion-mnist``), the stand-in for the paper's Caltech101 / 15-Scene; any
image folder with one sub-folder per class works too.

Command line: ``multiequi multi-image --preset quick`` (see ``docs/multi_image.md``).

- :mod:`.data`: same-class tuples and the group of each view (the images come from
  :mod:`multiequi.lab.datasets.images`).
- :mod:`.models`: the six models and the symmetries each declares.
- :mod:`.experiment`: one run (train through the shared Accelerate loop, select on validation,
  test under every test setting) and the grid.
- :mod:`.report`: the paper-style table, the drop table, the plot, the JSON summary.
"""

from .data import make_tuples as make_tuples
from .data import view_groups as view_groups
from .experiment import ExperimentConfig as ExperimentConfig
from .experiment import run_grid as run_grid
from .models import COLUMNS as COLUMNS
from .models import SiameseCNN as SiameseCNN
from .models import TupleClassifier as TupleClassifier
from .models import build_model as build_model
from .presets import PRESETS as PRESETS
from .report import compile_report as compile_report

__all__ = [
    "COLUMNS",
    "PRESETS",
    "ExperimentConfig",
    "SiameseCNN",
    "TupleClassifier",
    "build_model",
    "compile_report",
    "make_tuples",
    "run_grid",
    "view_groups",
]
