"""Equivariant causal language models: a transformers model wrapped like a transformers model."""

from __future__ import annotations

import copy
import inspect
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from multiequi import Equitune, Equizero, MultiEquitune, MultiEquizero, Symmetrizer
from multiequi.groups import Group, Product, TokenCycles

from ._sampling import _warpers, seeded_sample
from ._words import WordSwap

__all__ = ["METHODS", "PROXIES", "EquivariantLM"]

#: ``multi-equitune``: Σ|G_i| copies; ``equitune``: the product, Π|G_i| copies; ``multi-equizero`` /
#: ``equizero``: per-position selection of the copy the proxy prefers (ties averaged);
#: ``relaxed``: equitune over the product where the named general words keep the identity copy's
#: logits (the predecessor's R-EquiGPT2).
METHODS = ("multi-equitune", "equitune", "multi-equizero", "equizero", "relaxed")

#: Equizero's proxies: ``confidence`` prefers the copy whose next-token distribution has the
#: largest probability, ``entropy`` the one with the lowest entropy.
PROXIES = ("confidence", "entropy")

#: Keywords of ``generate`` (transformers' meaning), besides the prompts.
GENERATE_OPTIONS = {
    "max_new_tokens",
    "max_length",
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "num_return_sequences",
    "eos_token_id",
    "pad_token_id",
    "stop_strings",
    "return_dict_in_generate",
    "output_scores",
    "output_logits",
}

CONFIG_NAME = "multiequi_config.json"


def _confidence(y: Tensor) -> Tensor:
    """Minus the largest next-token probability, per row and position: ``(rows, ...)``."""
    return -torch.softmax(y.float(), dim=-1).amax(-1)


def _entropy(y: Tensor) -> Tensor:
    """The entropy of the next-token distribution, per row and position: ``(rows, ...)``."""
    logp = torch.log_softmax(y.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


class _Relaxed(Equitune):
    """Equitune whose general words keep the logits of the identity copy (R-EquiGPT2)."""

    def __init__(self, model: Any, group: Group, general: Tensor, **options: Any) -> None:
        super().__init__(model, group, **options)
        self.register_buffer("general", general.long(), persistent=False)

    def reduce(self, branch: Any, aligned: Tensor, raw: Tensor, inputs: Tensor, elements: Tensor) -> Tensor:
        out = super().reduce(branch, aligned, raw, inputs, elements)
        b = elements.shape[1]
        first = (elements == 0).to(torch.uint8).argmax(0)  # the identity copy of every example
        identity = raw[first, torch.arange(b, device=raw.device)].to(out.dtype)
        general = cast(Tensor, self.general).to(out.device)
        return out.index_copy(-1, general, identity.index_select(-1, general))


def _factor_to_dict(g: Group) -> dict[str, Any]:
    if not isinstance(g, TokenCycles):
        raise TypeError(f"EquivariantLM's groups must be word swaps (TokenCycles), got {g!r}")
    return {
        "cycles": g.cycles,
        "vocab_size": g.vocab_size,
        "out_cycles": g.out_cycles,
        "out_vocab_size": g.out_vocab_size,
        "names": g.names,
        "words": getattr(g, "words", None),
    }


def _factor_from_dict(d: dict[str, Any]) -> TokenCycles:
    if d.get("words") is not None and d["out_cycles"] == d["cycles"] and d["out_vocab_size"] == d["vocab_size"]:
        return WordSwap(d["cycles"], d["vocab_size"], d["words"], names=d["names"])
    return TokenCycles(d["cycles"], d["vocab_size"], d["out_cycles"], d["out_vocab_size"], names=d["names"])


class EquivariantLM(nn.Module):
    """A transformers causal language model made equivariant to word swaps.

    Called like the model it wraps: ``forward(input_ids=..., attention_mask=..., labels=...)``
    returns a transformers ``CausalLMOutputWithPast`` whose ``.logits`` are symmetrized (a swap of
    the prompt's words swaps the next-token distribution's words the same way, every position)
    and, with ``labels``, ``.loss`` computed on them as transformers does (shifted, ``-100``
    ignored). ``generate(...)`` takes transformers' options and returns what transformers
    returns; every copy of every prompt rides in the batch of one model call per new token, with
    one key-value cache.

    Parameters
    ----------
    model : transformers causal LM
        Any ``AutoModelForCausalLM`` (GPT-2, Llama, ...).
    groups : Group or list of Group
        The word-swap factors (:func:`~multiequi.hf.word_swap`), on the model's vocabulary.
    method : str
        One of :data:`METHODS`; ``"multi-equitune"`` (default) costs ``Σ |G_i|`` copies per
        prompt, ``"equitune"`` ``Π |G_i|``.
    proxy : str
        Equizero's choice of copy (:data:`PROXIES`), per position, ties averaged.
    general_words : list of int, optional
        ``method="relaxed"``: the token ids whose logits come from the identity copy.
    chunk_size : int or None
        Rows per model call in :meth:`forward` (``None``: one call). :meth:`generate` always makes
        one call per step.

    Examples
    --------
    >>> import torch
    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> from multiequi.groups import TokenCycles
    >>> from multiequi.hf import EquivariantLM
    >>> lm = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=64, n_positions=32))
    >>> fair = EquivariantLM(lm, [TokenCycles([[5, 6]], 64), TokenCycles([[7, 8, 9]], 64)]).eval()
    >>> fair.copies_per_example                          # 2 + 3, not 2 x 3
    5
    >>> out = fair(input_ids=torch.tensor([[5, 7, 11]]), labels=torch.tensor([[5, 7, 11]]))
    >>> tuple(out.logits.shape), out.loss.dim()
    ((1, 3, 64), 0)
    >>> fair.generate(torch.tensor([[5, 7, 11]]), max_new_tokens=4, do_sample=False).shape
    torch.Size([1, 7])
    """

    def __init__(
        self,
        model: nn.Module,
        groups: Group | Sequence[Group],
        *,
        method: str = "multi-equitune",
        proxy: str = "confidence",
        general_words: Sequence[int] | None = None,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module) or not callable(getattr(model, "forward", None)):
            raise TypeError(f"model must be a transformers causal language model, got {type(model).__name__}")
        factors = [groups] if isinstance(groups, Group) else list(groups)
        if not factors:
            raise ValueError("name at least one word-swap factor")
        for g in factors:
            _factor_to_dict(g)  # word swaps only
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if proxy not in PROXIES:
            raise ValueError(f"proxy must be one of {PROXIES}, got {proxy!r}")
        if (general_words is not None) != (method == "relaxed"):
            raise ValueError("general_words goes with method='relaxed', and method='relaxed' needs general_words")
        vocab = self._vocab_size(model)
        for g in factors:
            size = getattr(g, "out_vocab_size", None)
            if vocab is not None and size != vocab:
                raise ValueError(
                    f"{g!r} permutes an output vocabulary of {size} tokens but the model's logits have {vocab}: "
                    f"build it with word_swap(tokenizer, words, vocab_size={vocab})"
                )
        self.base_model = model
        self.factors = factors
        self.method = method
        self.proxy = proxy
        self.general_words = None if general_words is None else [int(t) for t in general_words]
        options: dict[str, Any] = {
            "output": "vocab",
            "input_key": "input_ids",
            "output_key": "logits",
            "chunk_size": chunk_size,
        }
        product = factors[0] if len(factors) == 1 else Product(*factors)
        loss = _confidence if proxy == "confidence" else _entropy
        self.symmetrizer: Symmetrizer
        if method == "multi-equitune":
            self.symmetrizer = MultiEquitune(model, factors, **options)
        elif method == "equitune":
            self.symmetrizer = Equitune(model, product, **options)
        elif method == "multi-equizero":
            self.symmetrizer = MultiEquizero(model, factors, loss=loss, **options)
        elif method == "equizero":
            self.symmetrizer = Equizero(model, product, loss=loss, **options)
        else:
            self.symmetrizer = _Relaxed(model, product, torch.tensor(self.general_words), **options)
        forward_params = inspect.signature(model.forward).parameters
        self._cache_key = "cache" if "cache" in forward_params else "past_key_values"
        self._keep_key = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in forward_params), None)

    # ------------------------------------------------------------------ transformers' attributes
    @staticmethod
    def _vocab_size(model: nn.Module) -> int | None:
        get_head = getattr(model, "get_output_embeddings", None)
        head = get_head() if callable(get_head) else None
        weight = getattr(head, "weight", None)
        if isinstance(weight, Tensor):
            return int(weight.shape[0])
        return getattr(getattr(model, "config", None), "vocab_size", None)

    @property
    def config(self) -> Any:
        """The wrapped model's configuration."""
        return self.base_model.config

    @property
    def generation_config(self) -> Any:
        """The wrapped model's generation defaults (used by :meth:`generate`)."""
        return self.base_model.generation_config

    @property
    def device(self) -> torch.device:
        return next(self.base_model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.base_model.parameters()).dtype

    @property
    def copies_per_example(self) -> int:
        """Copies of every prompt that go through the model (``Σ |G_i|`` or ``Π |G_i|``)."""
        return self.symmetrizer.copies_per_example

    def extra_repr(self) -> str:
        return f"method={self.method!r}, factors={self.factors}, copies={self.copies_per_example}"

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        """Symmetrized next-token logits for every position, and the loss with ``labels``.

        Returns a transformers ``CausalLMOutputWithPast`` (``logits``, ``loss``). Other keyword
        arguments (``position_ids``, ...) go to the model, repeated for every copy; a key-value
        cache cannot (each call runs every copy: use :meth:`generate` to decode with a cache).
        """
        from transformers.modeling_outputs import CausalLMOutputWithPast

        if input_ids is None:
            raise TypeError("EquivariantLM needs input_ids= (the word swaps act on token ids)")
        for name in ("past_key_values", "cache", "inputs_embeds"):
            if kwargs.get(name) is not None:
                raise ValueError(
                    f"EquivariantLM.forward does not take {name}: every call runs all copies of the input "
                    "(use .generate() to decode with a cache)"
                )
            kwargs.pop(name, None)
        kwargs.pop("return_dict", None)
        kwargs["use_cache"] = False
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        logits = self.symmetrizer(input_ids=input_ids, **kwargs)
        loss = None
        if labels is not None:
            if labels.shape != input_ids.shape:
                raise ValueError(
                    f"labels must have the shape of input_ids {tuple(input_ids.shape)}, got {tuple(labels.shape)}"
                )
            shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
            if shifted.dtype in (torch.float16, torch.bfloat16):
                shifted = shifted.float()  # as transformers computes the loss
            loss = nn.functional.cross_entropy(shifted, labels[:, 1:].reshape(-1).to(logits.device), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    # ------------------------------------------------------------------ generation
    def _call_copies(self, ids: Tensor, mask: Tensor, positions: Tensor, cache: Any) -> tuple[Tensor, Any]:
        """One model call on every copy's rows; the last position's logits ``(K·B, V)`` and the cache."""
        kwargs: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": mask,
            "position_ids": positions,
            "use_cache": True,
        }
        if cache is not None:
            kwargs[self._cache_key] = cache
        if self._keep_key is not None:
            kwargs[self._keep_key] = 1
        out = self.base_model(**kwargs)
        cache = getattr(out, "cache", None)
        if cache is None:
            cache = getattr(out, "past_key_values", None)
        return out.logits[:, -1], cache

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        *,
        generation_config: Any = None,
        tokenizer: Any = None,
        sample_seeds: Sequence[int] | Tensor | None = None,
        **kwargs: Any,
    ) -> Any:
        """Generate continuations, with transformers' meaning of the options.

        Every step symmetrizes the next-token logits of all copies of each prompt (one model
        call for every copy of every prompt, one key-value cache), chooses one token per prompt
        (greedy, or sampled from torch's generator: seed it with ``torch.manual_seed``), and feeds
        each copy that token in its own frame. Prompts of different lengths are left-padded with
        an ``attention_mask``.

        Options: ``max_new_tokens`` (or ``max_length``), ``do_sample``, ``temperature``, ``top_k``,
        ``top_p``, ``num_return_sequences``, ``eos_token_id``, ``pad_token_id``, ``stop_strings``
        (with ``tokenizer=``), ``return_dict_in_generate``, ``output_scores``, ``output_logits``;
        defaults from the model's ``generation_config``. Other options are refused.

        ``sample_seeds`` (multiequi's own option, with ``do_sample=True``): one integer seed per
        returned row (``B · num_return_sequences``); row ``i``'s token at step ``t`` is then drawn
        with a uniform number hashed from ``(sample_seeds[i], t)``
        (:func:`~multiequi.hf.seeded_sample`) instead of torch's generator, so a sample does not
        depend on the other rows of its batch, nor on how prompts are split over processes. The
        plain model samples the same way through :class:`~multiequi.hf.SeededSampler`.

        Returns the sequences ``(B · num_return_sequences, L + new)``, prompts included and
        padded with ``pad_token_id`` after an end token, or a ``GenerateDecoderOnlyOutput``.
        """
        from transformers.generation import GenerateDecoderOnlyOutput, StopStringCriteria

        unknown = sorted(set(kwargs) - GENERATE_OPTIONS - {"token_type_ids"})
        if unknown:
            raise ValueError(f"EquivariantLM.generate does not support {unknown}; it takes {sorted(GENERATE_OPTIONS)}")
        kwargs.pop("token_type_ids", None)
        if input_ids is None:
            raise TypeError("generate needs input_ids (the prompts' token ids, left-padded)")
        gc = copy.deepcopy(generation_config if generation_config is not None else self.generation_config)
        if gc is None:
            from transformers import GenerationConfig

            gc = GenerationConfig()
        gc.update(**kwargs)
        if (getattr(gc, "num_beams", None) or 1) > 1:
            raise ValueError("EquivariantLM.generate does greedy decoding and sampling, not beam search (num_beams=1)")
        device = self.device
        ids = input_ids.to(device)
        if ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, length), got shape {tuple(ids.shape)}")
        mask = torch.ones_like(ids) if attention_mask is None else attention_mask.to(device).long()
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask must have the shape of input_ids {tuple(ids.shape)}")
        if bool((mask[:, -1] == 0).any()):
            raise ValueError("right-padded prompts: pad them on the left (tokenizer.padding_side = 'left')")
        n_ret = int(getattr(gc, "num_return_sequences", None) or 1)
        if n_ret > 1:
            ids, mask = ids.repeat_interleave(n_ret, 0), mask.repeat_interleave(n_ret, 0)
        b, length = ids.shape
        if getattr(gc, "max_new_tokens", None) is not None:
            steps = int(gc.max_new_tokens)
        else:
            steps = int(getattr(gc, "max_length", None) or 20) - length
        eos = gc.eos_token_id
        eos_ids = torch.tensor([eos] if isinstance(eos, int) else list(eos or []), device=device, dtype=torch.long)
        pad = gc.pad_token_id if gc.pad_token_id is not None else (int(eos_ids[0]) if eos_ids.numel() else None)
        for t in eos_ids.tolist():
            if any(t in c for f in self.factors for c in getattr(f, "cycles", [])):
                raise ValueError(f"the end token {t} is moved by a word swap: keep it out of the swapped words")
        do_sample = bool(getattr(gc, "do_sample", False))
        warpers: list[Callable[[Tensor, Tensor], Tensor]] = []
        if do_sample:
            warpers = _warpers(gc.temperature, gc.top_k, gc.top_p)
        seeds = None
        if sample_seeds is not None:
            if not do_sample:
                raise ValueError("sample_seeds goes with do_sample=True (greedy decoding draws nothing)")
            seeds = torch.as_tensor(sample_seeds, dtype=torch.long).reshape(-1)
            if seeds.numel() != b:
                raise ValueError(
                    f"sample_seeds needs one seed per returned row: {b} rows (batch x num_return_sequences), "
                    f"got {seeds.numel()}"
                )
        stop_strings = getattr(gc, "stop_strings", None)
        stopper = None
        if stop_strings:
            if tokenizer is None:
                raise ValueError(
                    "stop_strings needs the tokenizer: generate(..., stop_strings=..., tokenizer=tokenizer)"
                )
            stopper = StopStringCriteria(tokenizer, stop_strings)
        sym = self.symmetrizer
        sym.group.validate(ids)
        copies = sym.copies(ids)
        k = copies.rows.shape[0]
        rows_mask = mask.repeat(k, 1)
        positions = (rows_mask.cumsum(-1) - 1).masked_fill(rows_mask == 0, 1)
        scores_out: list[Tensor] = []
        logits_out: list[Tensor] = []
        finished = torch.zeros(b, dtype=torch.bool, device=device)
        seqs = ids
        last, cache = self._call_copies(copies.rows.reshape(k * b, length), rows_mask, positions, None)
        for step in range(max(0, steps)):
            raw = last.reshape(k, b, -1)
            if raw.dtype in (torch.float16, torch.bfloat16):
                raw = raw.float()
            logits = sym.combine(raw, copies)
            scores = logits
            for warp in warpers:
                scores = warp(seqs, scores)
            if gc.output_scores:
                scores_out.append(scores)
            if getattr(gc, "output_logits", False):
                logits_out.append(logits)
            if seeds is not None:
                chosen = seeded_sample(scores, seeds, step).to(device)
            elif do_sample:
                chosen = torch.multinomial(torch.softmax(scores, dim=-1), 1)[:, 0]
            else:
                chosen = scores.argmax(-1)
            if pad is not None:
                chosen = torch.where(finished, torch.full_like(chosen, pad), chosen)
            seqs = torch.cat([seqs, chosen[:, None]], dim=1)
            if eos_ids.numel():
                finished |= torch.isin(chosen, eos_ids)
            if stopper is not None:
                finished |= stopper(seqs, scores).to(device)
            if bool(finished.all()) or step == steps - 1:
                break
            new = sym.extend(copies, chosen).reshape(k * b, 1)
            rows_mask = torch.cat([rows_mask, torch.ones_like(rows_mask[:, :1])], dim=1)
            positions = positions[:, -1:] + 1
            last, cache = self._call_copies(new, rows_mask, positions, cache)
        if not gc.return_dict_in_generate:
            return seqs
        return GenerateDecoderOnlyOutput(
            sequences=cast(torch.LongTensor, seqs),
            scores=cast(Any, tuple(scores_out)) if gc.output_scores else None,
            logits=cast(Any, tuple(logits_out)) if getattr(gc, "output_logits", False) else None,
        )

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, folder: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Save the wrapped model (``save_pretrained``: config and safetensors weights) and the
        wrapper's configuration (the factors as token ids and words, the method) in ``folder``,
        like an adapter; :meth:`from_pretrained` loads it back."""
        folder = Path(folder)
        tmp = folder.with_name(f".{folder.name}.tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        cast(Any, self.base_model).save_pretrained(tmp, **kwargs)
        config = {
            "format": "multiequi.hf.EquivariantLM/1",
            "method": self.method,
            "proxy": self.proxy,
            "general_words": self.general_words,
            "factors": [_factor_to_dict(g) for g in self.factors],
        }
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str], **kwargs: Any) -> EquivariantLM:
        """Load what :meth:`save_pretrained` wrote (``kwargs`` go to the model's
        ``from_pretrained``: ``torch_dtype``, ``device_map``, ...)."""
        from transformers import AutoModelForCausalLM

        folder = Path(folder)
        path = folder / CONFIG_NAME
        if not path.is_file():
            raise FileNotFoundError(f"'{path}' not found: '{folder}' was not written by EquivariantLM.save_pretrained")
        try:
            config = json.loads(path.read_text())
            factors = [_factor_from_dict(d) for d in config["factors"]]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"'{path}' is damaged ({err}); save the model again") from err
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        return cls(
            model,
            factors,
            method=config["method"],
            proxy=config.get("proxy", "confidence"),
            general_words=config.get("general_words"),
        )
