"""Perplexity of a causal language model on a text, by the transformers sliding-window protocol.

The protocol (https://huggingface.co/docs/transformers/perplexity): tokenize the whole text once,
slide windows of ``window`` tokens forward by ``stride`` tokens, and in each window label only the
tokens the previous window did not label (the others get the label -100), so that every token is
scored once, with up to ``window - stride`` tokens of context carried over. The model is called as
``model(input_ids=..., labels=...)`` and its ``.loss`` (the mean negative log-likelihood of the
predicted tokens) is multiplied back by their number, so the sum is exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["perplexity"]


def _token_ids(tokenizer: PreTrainedTokenizerBase | None, text: str | Sequence[int] | Tensor) -> Tensor:
    """The text's token ids as a 1-D int64 tensor (the tokenizer called once on the whole text)."""
    if isinstance(text, str):
        if not text:
            raise ValueError("perplexity needs a non-empty text, got ''")
        if tokenizer is None:
            raise ValueError("perplexity needs a tokenizer to tokenize a str text (or pass token ids as text)")
        # verbose=False: no "sequence longer than the model's maximum" warning; windows keep within it
        ids = tokenizer(text, return_attention_mask=False, verbose=False)["input_ids"]
        return torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    ids = torch.as_tensor(text)
    if ids.dim() == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.dim() == 1 and ids.numel() == 0:
        raise ValueError("perplexity needs a non-empty text, got no token ids")
    if ids.dim() != 1 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(
            f"perplexity needs a str text or a 1-D sequence of integer token ids, got shape {tuple(ids.shape)} "
            f"and dtype {ids.dtype}"
        )
    return ids.to(torch.long)


def _windows(n: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """``(begin, end, labelled)`` per window: ``ids[begin:end]``, its last ``labelled`` tokens labelled.

    Windows in which no token can be predicted (a last window of one token) are left out.
    """
    spans = []
    previous_end = 0
    for begin in range(0, n, stride):
        end = min(begin + window, n)
        labelled = end - previous_end
        if min(labelled, end - begin - 1) > 0:  # the first position of a window predicts nothing
            spans.append((begin, end, labelled))
        previous_end = end
        if end == n:
            break
    return spans


def _loss(output: Any) -> Tensor:
    loss = output[0] if isinstance(output, tuple) else getattr(output, "loss", None)
    if loss is None and isinstance(output, dict):
        loss = output.get("loss")
    if not isinstance(loss, Tensor):
        raise TypeError(
            "perplexity needs model(input_ids=..., labels=...) to return its loss (an output with .loss, as "
            f"transformers' causal language models do); got {type(output).__name__}"
        )
    return loss


def perplexity(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase | None,
    text: str | Sequence[int] | Tensor,
    *,
    window: int = 512,
    stride: int | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 1,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Perplexity of a causal language model on a text, by the transformers sliding-window protocol.

    The text is tokenized once; windows of ``window`` tokens start every ``stride`` tokens, and
    each labels only the tokens the previous window did not (the rest get -100). The model is
    called by keyword, ``model(input_ids=ids, labels=labels)``, and must return the mean negative
    log-likelihood of the predicted tokens as ``.loss`` (labels shifted by one position inside, as
    in transformers): a transformers causal LM, or any wrapper that keeps that calling convention.
    A window's first token predicts nothing, so with ``stride == window`` the first token of every
    window goes unscored; with ``stride < window`` every token but the text's first is scored, with
    at least ``window - stride`` tokens of context. The sum of negative log-likelihoods is exact
    (each window's loss times its number of predicted tokens), accumulated in float64, up to the
    precision of the model's loss: transformers computes it in float32 even for a float64 model.

    The model's train/eval mode is left as it is: pass a model in eval mode (dropout off).

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(input_ids=..., labels=...)`` under ``torch.no_grad()``.
    tokenizer : transformers tokenizer or None
        Called once on the whole text (with its default special tokens); None when ``text`` is
        already token ids.
    text : str, sequence of int or 1-D tensor
        The text, or its token ids.
    window : int
        Tokens per window (at most the model's context length); at least 2.
    stride : int, optional
        Tokens between window starts, 1 ≤ stride ≤ window. Default: ``window`` (disjoint windows).
    device : str or torch.device, optional
        Where the ids go. Default: the device of the model's first parameter (CPU if it has none).
    batch_size : int
        Windows per model call. Only windows of equal length share a call (no padding), so the
        result does not depend on it beyond floating-point rounding.
    show_progress : bool
        Show a tqdm progress bar over windows.

    Returns
    -------
    dict
        ``perplexity`` (``exp(nll / tokens)``), ``nll`` (summed negative log-likelihood, nats),
        ``tokens`` (tokens predicted), ``windows`` (windows scored), ``window``, ``stride``.

    Raises
    ------
    ValueError
        For an empty text, a text of fewer than 2 tokens, ``window < 2``, a stride outside
        ``[1, window]`` or ``batch_size < 1``.

    Examples
    --------
    A model whose next-token distribution is uniform has perplexity equal to its vocabulary size:

    >>> import torch
    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> from multiequi.hf import perplexity
    >>> config = GPT2Config(
    ...     vocab_size=100, n_positions=32, n_layer=1, n_head=2, n_embd=16, bos_token_id=0, eos_token_id=0
    ... )
    >>> model = GPT2LMHeadModel(config).eval()
    >>> with torch.no_grad():
    ...     _ = model.transformer.wte.weight.zero_()  # tied output layer: all logits 0
    >>> result = perplexity(model, None, torch.randint(0, 100, (50,)), window=16, stride=8)
    >>> round(result["perplexity"], 3), result["tokens"], result["windows"]
    (100.0, 49, 6)
    """
    for name, number in (("window", window), ("batch_size", batch_size)):
        if isinstance(number, bool) or not isinstance(number, int):
            raise TypeError(f"perplexity: {name} must be an int, got {number!r}")
    if window < 2:
        raise ValueError(f"perplexity: window must be at least 2 tokens (one to read, one to predict), got {window}")
    if stride is None:
        stride = window
    if isinstance(stride, bool) or not isinstance(stride, int):
        raise TypeError(f"perplexity: stride must be an int or None, got {stride!r}")
    if not 1 <= stride <= window:
        raise ValueError(
            f"perplexity: stride must be between 1 and window={window} (a stride larger than the window "
            f"would skip tokens), got {stride}"
        )
    if batch_size < 1:
        raise ValueError(f"perplexity: batch_size must be at least 1, got {batch_size}")
    ids = _token_ids(tokenizer, text)
    n = ids.numel()
    if n < 2:
        raise ValueError(f"perplexity needs a text of at least 2 tokens (one to read, one to predict), got {n}")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    ids = ids.to(device)

    spans = _windows(n, window, stride)
    calls: list[list[tuple[int, int, int]]] = []  # consecutive windows of one length, batch_size at most
    for span in spans:
        last = calls[-1] if calls else None
        if last and len(last) < batch_size and last[0][1] - last[0][0] == span[1] - span[0]:
            last.append(span)
        else:
            calls.append([span])

    bar = None
    if show_progress:
        try:
            from tqdm.auto import tqdm
        except ImportError as err:
            raise ImportError("perplexity(show_progress=True) needs tqdm: pip install tqdm") from err
        bar = tqdm(total=len(spans), desc="perplexity", unit="window")
    nll = 0.0
    tokens = 0
    try:
        with torch.no_grad():
            for call in calls:
                input_ids = torch.stack([ids[begin:end] for begin, end, _ in call])
                labels = input_ids.clone()
                for row, (begin, end, labelled) in enumerate(call):
                    labels[row, : end - begin - labelled] = -100
                predicted = int((labels[:, 1:] != -100).sum())  # the labels shift by one inside the model
                loss = _loss(model(input_ids=input_ids, labels=labels))
                nll += float(loss.detach().double()) * predicted
                tokens += predicted
                if bar is not None:
                    bar.update(len(call))
    finally:
        if bar is not None:
            bar.close()
    try:
        value = math.exp(nll / tokens)
    except OverflowError:
        value = math.inf
    return {
        "perplexity": value,
        "nll": nll,
        "tokens": tokens,
        "windows": len(spans),
        "window": window,
        "stride": stride,
    }
