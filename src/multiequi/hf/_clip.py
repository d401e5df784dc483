"""Zero-shot image classification with CLIP and prompt ensembling, as a plain image classifier.

:class:`ZeroShotCLIP` turns a CLIP model (transformers' ``CLIPModel``, or an open_clip model) and a
list of class names into an ``nn.Module`` mapping normalized pixels ``(B, 3, S, S)`` to class
logits ``(B, C)``. The class embeddings are computed once, at construction, with the prompt
ensembling of CLIP's ImageNet notebook (every template filled with the class name, each text
embedding L2-normalized, averaged over templates, renormalized), and kept as a buffer: a call runs
the image tower only. Any wrapper of the library applies to it: ``MultiEquitune(zs, [Rot90(),
Flip()])`` gives D4-invariant logits at 6 copies per image.

transformers is imported only by :meth:`ZeroShotCLIP.from_pretrained` (``[hf]`` extra); the class
itself needs torch alone, so an open_clip model works without transformers.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._assets import _model_source, _transformers
from ._templates import TEMPLATES

__all__ = ["DEFAULT_TEMPLATES", "OPENAI_CLIP_MEAN", "OPENAI_CLIP_STD", "ZeroShotCLIP"]

#: The template used when none is given: one prompt per class.
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {c}.",)
#: OpenAI CLIP's per-channel pixel mean and standard deviation (RGB, pixels in [0, 1]).
OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
#: OpenAI CLIP's input side when neither the model nor a processor config gives one.
_DEFAULT_SIZE = 224
#: Keyword arguments of ``from_pretrained`` that also go to the tokenizer and the processor config.
_SHARED_KWARGS = ("local_files_only", "revision", "cache_dir", "token", "trust_remote_code")


# ----------------------------------------------------------------------------- helpers
def _projected_features(output: Any, what: str) -> Tensor:
    """The projected embeddings returned by ``get_text_features`` / ``get_image_features``.

    transformers 4.x returns them as a tensor; 5.x returns a ``ModelOutput`` whose
    ``pooler_output`` holds them.
    """
    if isinstance(output, Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, Tensor):
        return pooled
    raise TypeError(
        f"{what} returned {type(output).__name__}; expected a tensor (transformers 4.x) or a ModelOutput "
        "with the projected embeddings in pooler_output (transformers 5.x)"
    )


def _model_kind(model: Any) -> str:
    """``"transformers"`` (``get_text_features`` / ``get_image_features``) or ``"open_clip"``
    (``encode_text`` / ``encode_image``); both need ``logit_scale``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"ZeroShotCLIP needs a CLIP nn.Module, got {type(model).__name__}")
    if callable(getattr(model, "get_text_features", None)) and callable(getattr(model, "get_image_features", None)):
        kind = "transformers"
    elif callable(getattr(model, "encode_text", None)) and callable(getattr(model, "encode_image", None)):
        kind = "open_clip"
    else:
        raise TypeError(
            f"ZeroShotCLIP needs a CLIP model: a transformers model with get_text_features and "
            f"get_image_features (CLIPModel), or an open_clip model with encode_text and encode_image; "
            f"{type(model).__name__} has neither pair"
        )
    if not isinstance(getattr(model, "logit_scale", None), Tensor):
        raise TypeError(f"ZeroShotCLIP needs the model's logit_scale (a tensor); {type(model).__name__} has none")
    return kind


def _embedding_dim(model: nn.Module) -> int | None:
    """The joint embedding dimension (the projections' output size), when the model tells it."""
    dim = getattr(getattr(model, "config", None), "projection_dim", None)
    if isinstance(dim, int):
        return dim
    projection = getattr(model, "text_projection", None)
    if isinstance(projection, nn.Linear):
        return projection.out_features
    if isinstance(projection, Tensor) and projection.dim() == 2:
        return int(projection.shape[1])  # open_clip: x @ text_projection
    dim = getattr(getattr(model, "visual", None), "output_dim", None)
    return dim if isinstance(dim, int) else None


def _model_image_size(model: nn.Module) -> int | None:
    """The input side the model was built for: ``config.vision_config.image_size`` (transformers)
    or ``visual.image_size`` (open_clip)."""
    vision = getattr(getattr(model, "config", None), "vision_config", None)
    size = getattr(vision, "image_size", None)
    if size is None:
        size = getattr(getattr(model, "visual", None), "image_size", None)
    if isinstance(size, (tuple, list)) and len(size) == 2 and size[0] == size[1]:
        size = size[0]
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def _device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _check_class_names(class_names: Any) -> list[str]:
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(f"class_names must be a list of strings, got {type(class_names).__name__}")
    names = list(class_names)
    if not names:
        raise ValueError("class_names is empty: ZeroShotCLIP needs at least one class")
    bad = [name for name in names if not isinstance(name, str)]
    if bad:
        raise TypeError(f"class_names must be strings; got {bad[0]!r} ({type(bad[0]).__name__})")
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ValueError(f"class_names has duplicates: {', '.join(map(repr, duplicates))} (each class once)")
    return names


def _resolve_templates(templates: str | Sequence[str] | None) -> tuple[str, ...]:
    if templates is None:
        return DEFAULT_TEMPLATES
    if isinstance(templates, str):
        if templates in TEMPLATES:
            return TEMPLATES[templates]
        if "{c}" in templates:  # one template given as a string
            templates = (templates,)
        else:
            raise ValueError(
                f"unknown template set {templates!r}: use one of {', '.join(map(repr, TEMPLATES))}, "
                "or a sequence of templates each containing '{c}'"
            )
    result = tuple(templates)
    if not result:
        raise ValueError("templates is empty: give at least one template containing '{c}'")
    for template in result:
        if not isinstance(template, str):
            raise TypeError(f"templates must be strings; got {template!r} ({type(template).__name__})")
        if "{c}" not in template:
            raise ValueError(f"template {template!r} has no '{{c}}' placeholder for the class name")
        try:
            template.format(c="x")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(
                f"template {template!r} cannot be filled with template.format(c=class_name) ({err!r}); "
                "write other braces as '{{' and '}}'"
            ) from err
    return result


def _check_class_embeddings(embeddings: Any, dim: int | None, count: int | None) -> Tensor:
    expected = f"(C, {dim})" if dim is not None else "(C, D)"
    if not isinstance(embeddings, Tensor):
        raise TypeError(f"class_embeddings must be a tensor of shape {expected}, got {type(embeddings).__name__}")
    if not torch.is_floating_point(embeddings):
        raise TypeError(f"class_embeddings must be floating point, got {embeddings.dtype}")
    if embeddings.dim() != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"class_embeddings must have shape {expected} with C >= 1, got {tuple(embeddings.shape)}")
    if dim is not None and embeddings.shape[1] != dim:
        raise ValueError(
            f"class_embeddings has shape {tuple(embeddings.shape)} but the model's embeddings (its projection "
            f"dim) have {dim} dimensions: expected {expected}"
        )
    if count is not None and embeddings.shape[0] != count:
        raise ValueError(f"class_embeddings has {embeddings.shape[0]} rows but class_names has {count} names")
    norms = embeddings.norm(dim=-1, keepdim=True)
    if not bool((norms > 0).all()) or not bool(torch.isfinite(norms).all()):
        raise ValueError("class_embeddings has a row of norm 0 (or not finite): it cannot be normalized")
    return (embeddings / norms).detach().clone()


def _check_triple(values: Any, name: str) -> tuple[float, float, float]:
    triple = tuple(float(v) for v in values)
    if len(triple) != 3:
        raise ValueError(f"{name} needs one value per RGB channel (3), got {len(triple)}")
    return triple


def _side(value: Any) -> int | None:
    """An image side from a processor config entry: an int, ``{"shortest_edge": s}`` or
    ``{"height": s, "width": s}``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("shortest_edge"), int):
            return value["shortest_edge"]
        if isinstance(value.get("height"), int) and value.get("height") == value.get("width"):
            return value["height"]
    return None


def _processor_settings(config: dict[str, Any]) -> dict[str, Any]:
    """``image_mean``, ``image_std`` and ``image_size`` from a ``preprocessor_config.json``."""
    settings: dict[str, Any] = {}
    for key in ("image_mean", "image_std"):
        if isinstance(config.get(key), (list, tuple)):
            settings[key] = tuple(config[key])
    side = _side(config.get("crop_size")) or _side(config.get("size"))
    if side is not None:
        settings["image_size"] = side
    return settings


def _read_processor_config(folder: Path | None, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The processor config of a local folder or (when reachable) a hub id; ``{}`` when there is none."""
    if folder is not None:
        path = folder / "preprocessor_config.json"
        if not path.is_file():
            return {}
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    try:  # optional: without it the defaults apply
        from huggingface_hub import hf_hub_download

        hub_kwargs = {k: v for k, v in kwargs.items() if k in ("local_files_only", "revision", "cache_dir", "token")}
        with open(hf_hub_download(name, "preprocessor_config.json", **hub_kwargs), encoding="utf-8") as handle:
            return json.load(handle)
    except Exception:
        return {}


# ----------------------------------------------------------------------------- the classifier
class ZeroShotCLIP(nn.Module):
    """A CLIP model as a zero-shot image classifier: normalized pixels in, class logits out.

    At construction every template is filled with every class name (``template.format(c=name)``),
    embedded by the text tower in batches of ``text_batch_size`` under ``torch.no_grad()`` (the
    model in eval mode), and the class embedding is CLIP's prompt ensemble: each prompt's
    embedding L2-normalized, averaged over the templates, renormalized. The result is the buffer
    :attr:`class_embeddings` ``(C, D)``; :meth:`forward` runs the image tower only::

        logits = model.logit_scale.exp() * normalize(image_features) @ class_embeddings.T

    the model's own scale, as its ``logits_per_image``. With one template the logits equal the
    model's ``logits_per_image`` for the prompts.

    Parameters
    ----------
    model : nn.Module
        transformers' ``CLIPModel`` (any model with ``get_text_features``, ``get_image_features``
        and ``logit_scale``; both transformers 4.x, where those return tensors, and 5.x, where they
        return a ``ModelOutput`` holding the projected embeddings in ``pooler_output``), or an
        open_clip model (``encode_text``, ``encode_image`` and ``logit_scale``).
    tokenizer : callable, optional
        For a transformers model, its tokenizer (called with ``padding=True`` and truncation at
        the text tower's ``max_position_embeddings``). For an open_clip model, its tokenizer: a
        callable mapping a list of strings to a ``LongTensor`` of token ids.
    class_names : sequence of str
        One name per class, distinct; the logits' columns follow this order.
    templates : str or sequence of str, optional
        ``None``: ``("a photo of a {c}.",)``. ``"imagenet"`` or ``"cifar100"``: CLIP's 80 or 18
        templates (:data:`~multiequi.hf.IMAGENET_TEMPLATES`, :data:`~multiequi.hf.CIFAR100_TEMPLATES`).
        A sequence: used as given; each must contain ``{c}``.
    class_embeddings : Tensor, optional
        ``(C, D)`` class embeddings to use instead of a tokenizer and templates (normalized here;
        ``D`` must be the model's projection dimension). ``class_names`` is then optional
        (default ``"class 0"``, ``"class 1"``, ...).
    text_batch_size : int
        Prompts per call of the text tower at construction.
    image_mean, image_std : sequence of 3 floats, optional
        Normalization of :meth:`preprocess`. Default: OpenAI CLIP's.
    image_size : int, optional
        Side ``S`` of :meth:`preprocess`'s output. Default: the model's (``vision_config.image_size``,
        or open_clip's ``visual.image_size``), else 224.

    Attributes
    ----------
    model : nn.Module
        The CLIP model (a submodule: ``.to()``, ``.double()``, ``state_dict()`` include it).
    class_names : list of str
    templates : tuple of str
        The templates used (empty when ``class_embeddings`` was given).
    class_embeddings : Tensor
        Buffer ``(C, D)``, unit rows, in the dtype of the text tower's output.
    logit_scale : Tensor
        The model's ``logit_scale`` (a log; the logits are scaled by its exponential).
    image_mean, image_std : tuple of 3 floats
    image_size : int

    Raises
    ------
    TypeError
        A model that is not CLIP-like; class names or templates that are not strings; integer
        ``class_embeddings``.
    ValueError
        Empty or duplicate class names; a template without ``{c}``; an unknown template set;
        ``class_embeddings`` of the wrong shape or dimension; ``class_embeddings`` together with a
        tokenizer or templates; neither.

    Examples
    --------
    A tiny random CLIP, with random class embeddings (real use: :meth:`from_pretrained` with class
    names, or a tokenizer and ``class_names=``):

    >>> import torch
    >>> from transformers import CLIPConfig, CLIPModel
    >>> from multiequi import MultiEquitune
    >>> from multiequi.groups import Flip, Rot90
    >>> from multiequi.hf import ZeroShotCLIP
    >>> _ = torch.manual_seed(0)
    >>> tiny = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    >>> vision = {**tiny, "image_size": 16, "patch_size": 8}
    >>> config = CLIPConfig(text_config=tiny, vision_config=vision, projection_dim=8)
    >>> zs = ZeroShotCLIP(CLIPModel(config).eval(), class_embeddings=torch.randn(5, 8))
    >>> pixel_values = zs.preprocess(torch.rand(2, 3, 20, 24))  # resize, center crop, normalize
    >>> tuple(pixel_values.shape), tuple(zs(pixel_values).shape)
    ((2, 3, 16, 16), (2, 5))
    >>> d4 = MultiEquitune(zs, [Rot90(), Flip()])  # 4 + 2 copies per image
    >>> with torch.no_grad():
    ...     turned = d4(torch.rot90(pixel_values, 1, (-2, -1)).flip(-1))
    ...     torch.allclose(d4(pixel_values), turned, atol=1e-5)
    True

    With a pretrained model (needs the hub, or a local folder written by ``save_pretrained``):

    >>> zs = ZeroShotCLIP.from_pretrained("openai/clip-vit-base-patch32", ["cat", "dog"], "imagenet")  # doctest: +SKIP
    """

    class_embeddings: Tensor

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Callable[..., Any] | None = None,
        class_names: Sequence[str] | None = None,
        templates: str | Sequence[str] | None = None,
        *,
        class_embeddings: Tensor | None = None,
        text_batch_size: int = 256,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        self.kind = _model_kind(model)
        self.model = model
        if isinstance(text_batch_size, bool) or not isinstance(text_batch_size, int) or text_batch_size < 1:
            raise ValueError(f"text_batch_size must be a positive int, got {text_batch_size!r}")
        dim = _embedding_dim(model)
        if class_embeddings is not None:
            if tokenizer is not None or templates is not None:
                raise ValueError(
                    "give either class_embeddings or a tokenizer (with class_names and templates), not both"
                )
            names = None if class_names is None else _check_class_names(class_names)
            embeddings = _check_class_embeddings(class_embeddings, dim, None if names is None else len(names))
            self.class_names = names if names is not None else [f"class {i}" for i in range(len(embeddings))]
            self.templates: tuple[str, ...] = ()
        else:
            if tokenizer is None or class_names is None:
                raise ValueError(
                    "ZeroShotCLIP needs a tokenizer and class_names to embed the class prompts "
                    "(or class_embeddings=, a (C, D) tensor)"
                )
            self.class_names = _check_class_names(class_names)
            self.templates = _resolve_templates(templates)
            embeddings = self._embed_classes(tokenizer, text_batch_size)
        self.register_buffer("class_embeddings", embeddings.to(_device(model)))
        self.image_mean = _check_triple(OPENAI_CLIP_MEAN if image_mean is None else image_mean, "image_mean")
        self.image_std = _check_triple(OPENAI_CLIP_STD if image_std is None else image_std, "image_std")
        if not all(s > 0 for s in self.image_std):
            raise ValueError(f"image_std must be positive, got {self.image_std}")
        size = image_size if image_size is not None else (_model_image_size(model) or _DEFAULT_SIZE)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"image_size must be a positive int, got {size!r}")
        self.image_size = size

    # ------------------------------------------------------------------------- text side
    def _encode_text(self, tokenizer: Callable[..., Any], prompts: list[str]) -> Tensor:
        device = _device(self.model)
        if self.kind == "open_clip":
            ids = tokenizer(prompts)
            if not isinstance(ids, Tensor):
                raise TypeError(
                    f"an open_clip tokenizer must return a LongTensor of token ids, got {type(ids).__name__}"
                )
            return self.model.encode_text(ids.to(device))  # type: ignore[operator]
        config = getattr(self.model, "config", None)
        limit = getattr(getattr(config, "text_config", None), "max_position_embeddings", None)
        model_max = getattr(tokenizer, "model_max_length", None)
        if isinstance(model_max, int) and (limit is None or model_max < limit):
            limit = model_max
        options: dict[str, Any] = {"truncation": True, "max_length": limit} if isinstance(limit, int) else {}
        encoded = tokenizer(prompts, padding=True, return_tensors="pt", **options)
        inputs = {k: encoded[k].to(device) for k in ("input_ids", "attention_mask") if k in encoded}
        return _projected_features(self.model.get_text_features(**inputs), "get_text_features")  # type: ignore[operator]

    @torch.no_grad()
    def _embed_classes(self, tokenizer: Callable[..., Any], batch_size: int) -> Tensor:
        prompts = [template.format(c=name) for name in self.class_names for template in self.templates]
        was_training = self.model.training
        self.model.eval()
        try:
            chunks = []
            for start in range(0, len(prompts), batch_size):
                features = self._encode_text(tokenizer, prompts[start : start + batch_size])
                chunks.append(features / features.norm(dim=-1, keepdim=True))
        finally:
            self.model.train(was_training)
        features = torch.cat(chunks).reshape(len(self.class_names), len(self.templates), -1)
        ensemble = features.mean(dim=1)
        return ensemble / ensemble.norm(dim=-1, keepdim=True)

    # ------------------------------------------------------------------------- image side
    @property
    def logit_scale(self) -> Tensor:
        """The model's ``logit_scale`` parameter (the logits are scaled by its exponential)."""
        return self.model.logit_scale  # type: ignore[return-value]

    def _expected_shape(self) -> str:
        return f"(B, 3, {self.image_size}, {self.image_size})"

    def forward(self, pixel_values: Tensor) -> Tensor:
        """Class logits ``(B, C)`` of normalized pixels ``(B, 3, S, S)`` (see :meth:`preprocess`)."""
        if not isinstance(pixel_values, Tensor):
            raise TypeError(
                f"pixel_values must be a tensor of shape {self._expected_shape()}, got {type(pixel_values).__name__}"
            )
        if pixel_values.dim() != 4 or pixel_values.shape[1] != 3:
            raise ValueError(
                f"pixel_values must have shape {self._expected_shape()} (a batch of normalized RGB images), "
                f"got {tuple(pixel_values.shape)}"
            )
        if not torch.is_floating_point(pixel_values):
            raise TypeError(
                f"pixel_values must be floating point (normalized pixels, e.g. from ZeroShotCLIP.preprocess), "
                f"got {pixel_values.dtype}"
            )
        if self.kind == "open_clip":
            features = self.model.encode_image(pixel_values)  # type: ignore[operator]
        else:
            output = self.model.get_image_features(pixel_values=pixel_values)  # type: ignore[operator]
            features = _projected_features(output, "get_image_features")
        features = features / features.norm(dim=-1, keepdim=True)
        scale = self.logit_scale.exp().to(features.dtype)
        return scale * features @ self.class_embeddings.to(features.dtype).T

    def preprocess(self, images: Tensor) -> Tensor:
        """CLIP's image preprocessing on tensors: ``(B, 3, H, W)`` floats in [0, 1] to ``pixel_values``.

        As OpenAI's ``Resize(S, bicubic)`` + ``CenterCrop(S)`` + ``Normalize(mean, std)``: the
        shorter side is resized to ``S`` (the longer to ``int(S * long / short)``; bicubic with
        antialiasing, clamped to [0, 1] as an 8-bit image would be; skipped when the shorter side
        already is ``S``), the centre ``S × S`` is cropped (offset ``round((side - S) / 2)``) and
        each channel is normalized with :attr:`image_mean` and :attr:`image_std`.
        """
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"preprocess needs images of shape (B, 3, H, W) with values in [0, 1], got {shape}")
        if not torch.is_floating_point(images):
            raise TypeError(
                f"preprocess needs floating-point images in [0, 1] (divide 8-bit images by 255), got {images.dtype}"
            )
        size = self.image_size
        height, width = images.shape[-2:]
        if min(height, width) != size:
            if height <= width:
                target = (size, int(size * width / height))
            else:
                target = (int(size * height / width), size)
            images = F.interpolate(images, size=target, mode="bicubic", antialias=True, align_corners=False)
            images = images.clamp(0, 1)
            height, width = target
        top, left = round((height - size) / 2), round((width - size) / 2)
        images = images[..., top : top + size, left : left + size]
        mean = torch.tensor(self.image_mean, dtype=images.dtype, device=images.device).reshape(1, 3, 1, 1)
        std = torch.tensor(self.image_std, dtype=images.dtype, device=images.device).reshape(1, 3, 1, 1)
        return (images - mean) / std

    def extra_repr(self) -> str:
        return (
            f"classes={len(self.class_names)}, templates={len(self.templates)}, "
            f"embedding_dim={self.class_embeddings.shape[1]}, image_size={self.image_size}"
        )

    # ------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        class_names: Sequence[str],
        templates: str | Sequence[str] | None = None,
        *,
        text_batch_size: int = 256,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        image_size: int | None = None,
        **model_kwargs: Any,
    ) -> ZeroShotCLIP:
        """A zero-shot classifier from a transformers CLIP folder or Hugging Face id.

        ``CLIPModel.from_pretrained`` and ``AutoTokenizer.from_pretrained`` on the same name (the
        model in eval mode); ``image_mean``, ``image_std`` and ``image_size`` default to the
        folder's ``preprocessor_config.json`` (``image_mean``, ``image_std``, ``crop_size``, else
        ``size``) when it has one, else to OpenAI CLIP's values and the model's image size.

        Parameters
        ----------
        name_or_path : str or path-like
            A folder written by ``save_pretrained`` (model and tokenizer), or a hub id.
        class_names, templates, text_batch_size, image_mean, image_std, image_size
            As in :class:`ZeroShotCLIP`.
        **model_kwargs
            Passed to ``CLIPModel.from_pretrained`` (e.g. ``dtype=torch.float64``,
            ``local_files_only=True``); ``local_files_only``, ``revision``, ``cache_dir``,
            ``token`` and ``trust_remote_code`` also go to the tokenizer. A float64 model
            needs transformers 5, or torch's default dtype set to float64 during this call (the
            only one that runs the text tower): 4.x's CLIP text model builds its causal mask in
            the default dtype, where float64's minimum overflows (``value cannot be converted to
            type float without overflow``).

        Raises
        ------
        ImportError
            When transformers is not installed (``pip install 'multiequi[hf]'``).
        FileNotFoundError
            When ``name_or_path`` is a path (absolute, or starting with ``./``, ``../`` or ``~``)
            to no folder.
        OSError or ValueError
            When transformers cannot load it; the message names ``name_or_path``.
        """
        names = _check_class_names(class_names)  # fail before loading anything
        _resolve_templates(templates)
        transformers = _transformers("ZeroShotCLIP.from_pretrained")
        name, folder = _model_source(
            name_or_path,
            "ZeroShotCLIP.from_pretrained",
            "ZeroShotCLIP.from_pretrained needs a folder written by save_pretrained (a CLIP model and its "
            "tokenizer) or a Hugging Face id",
        )
        source = str(folder) if folder is not None else name
        shared = {k: model_kwargs[k] for k in _SHARED_KWARGS if k in model_kwargs}
        try:
            model = transformers.CLIPModel.from_pretrained(source, **model_kwargs)
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, **shared)
        except (OSError, ValueError) as err:
            reason = " ".join(str(err).split())  # one line
            error = OSError if isinstance(err, OSError) else ValueError
            where = "the local folder" if folder is not None else "the Hugging Face id"
            raise error(f"cannot load a CLIP model and tokenizer from {where} {name!r}: {reason}") from err
        settings = _processor_settings(_read_processor_config(folder, name, shared))
        return cls(
            model.eval(),
            tokenizer,
            names,
            templates,
            text_batch_size=text_batch_size,
            image_mean=image_mean if image_mean is not None else settings.get("image_mean"),
            image_std=image_std if image_std is not None else settings.get("image_std"),
            image_size=image_size if image_size is not None else settings.get("image_size"),
        )
