"""SCAN and SCAN-II compositional generalisation with multi-equitune (Design 2 on tokens).

- :mod:`.data`: the grammar, every command with its actions, the splits, files in the official
  ``IN: … OUT: …`` format, vocabularies in a fixed order.
- :mod:`.model`: the seq2seq model reading one packed tensor (source words, then the decoder's
  input tokens), greedy decoding with a step cache.
- :mod:`.symmetry`: the word-swap factors (jump↔run, left↔right, up↔down) as
  :class:`~multiequi.groups.TokenCycles` on the packed ids, and the two wrappers.
- :mod:`.training`: batches, the teacher-forcing loss, exact-match accuracy.
- :mod:`.pipeline`: pretrain → fine-tune through the wrappers → evaluate → records; presets.
- :mod:`.report`: mean ± std tables and bar charts.
- :mod:`.bench`: fine-tuning throughput of equitune and multi-equitune.

Command line: ``multiequi scan --help``. Documentation: ``docs/scan.md``.
"""

from .data import IN_VOCAB as IN_VOCAB
from .data import OUT_VOCAB as OUT_VOCAB
from .data import SPLITS as SPLITS
from .data import Vocab as Vocab
from .data import all_commands as all_commands
from .data import generate as generate
from .data import interpret as interpret
from .data import make_splits as make_splits
from .data import read_examples as read_examples
from .data import write_dataset as write_dataset
from .model import DecodeCache as DecodeCache
from .model import Seq2Seq as Seq2Seq
from .model import exact_match as exact_match
from .model import greedy_decode as greedy_decode
from .model import pack as pack
from .model import unpack as unpack
from .symmetry import FACTORS as FACTORS
from .symmetry import factors_for as factors_for
from .symmetry import word_swap as word_swap
from .symmetry import wrap as wrap

__all__ = [
    "FACTORS",
    "IN_VOCAB",
    "OUT_VOCAB",
    "SPLITS",
    "DecodeCache",
    "Seq2Seq",
    "Vocab",
    "all_commands",
    "exact_match",
    "factors_for",
    "generate",
    "greedy_decode",
    "interpret",
    "make_splits",
    "pack",
    "read_examples",
    "unpack",
    "word_swap",
    "wrap",
    "write_dataset",
]
