"""Image data sets shared by the lab: real Fashion-MNIST, CIFAR-100, ImageNet-V2 and a user's image folder.

- :func:`read_idx`: the IDX format of (Fashion-)MNIST, gzip or not.
- :func:`load_fashion_mnist`: real Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package
  (the stand-in for the paper's Caltech101 / 15-Scene), fetched into multiequi's cache when the
  package is not installed (:func:`fashion_mnist_dir`), or any folder with the same four files.
- :func:`load_cifar100`: CIFAR-100's official python version (downloaded on request).
- :func:`load_imagenet_v2`: ImageNet-V2's class-index folders, resized and center-cropped.
- :func:`load_image_folder`: a user's own data set, one sub-folder per class (as Caltech101 and
  15-Scene are distributed).
- :func:`natural_images`: a batch made ready for natural-image encoders (RGB ``float32``
  224×224, optionally inverted), commuting bitwise with rotations by 90° and flips.
- :class:`ImageData`, :func:`stratified_split`, :func:`to_float`: images kept as ``uint8`` tensors
  ``(N, C, S, S)`` with index splits, so a split never copies images.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from multiequi.lab.datasets._debian import debian_files

__all__ = [
    "CIFAR100_MD5",
    "CIFAR100_URL",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_NAME",
    "FASHION_MNIST_PACKAGE",
    "IMAGE_SUFFIXES",
    "ImageData",
    "fashion_mnist_dir",
    "load_cifar100",
    "load_fashion_mnist",
    "load_image_folder",
    "load_imagenet_v2",
    "natural_images",
    "read_idx",
    "stratified_split",
    "to_float",
]

#: Where Debian's ``dataset-fashion-mnist`` package puts the IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: The name every output uses: Fashion-MNIST stands in for the paper's data sets.
FASHION_MNIST_NAME = "Fashion-MNIST (stand-in for Caltech101/15-Scene)"
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: Debian's package of Fashion-MNIST, and the files :func:`fashion_mnist_dir` takes from it.
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
_FMNIST_MEMBERS = [f"usr/share/datasets/fashion-mnist/{stem}.gz" for pair in _FMNIST_FILES.values() for stem in pair]
_FMNIST_FOLDER = "fashion-mnist"
_INSTALL = (
    "Install Debian's package (it puts the files in /usr/share/datasets/fashion-mnist): "
    "sudo apt-get update && sudo apt-get install dataset-fashion-mnist; or pass --data-dir to a folder "
    "holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
    "t10k-labels-idx1-ubyte.gz (gzip or not); or use your own images with --image-folder"
)
#: File suffixes :func:`load_image_folder` reads.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


# --------------------------------------------------------------------------------------- files
def read_idx(path: str | os.PathLike[str]) -> Tensor:
    """Read an IDX file of unsigned bytes (the (Fashion-)MNIST format), gzip-compressed or not.

    The format: two zero bytes, a type byte (``0x08`` = unsigned byte), the number of
    dimensions, each dimension as a big-endian int32, then the data in row-major order.

    Parameters
    ----------
    path : path
        The file (``.gz`` or raw; compression is detected from its first bytes).

    Returns
    -------
    Tensor
        ``torch.uint8`` of the file's shape, e.g. ``(60000, 28, 28)`` for images, ``(60000,)``
        for labels.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
    >>> _ = p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 9]))
    >>> read_idx(p).tolist()
    [7, 2, 9]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: '{path}'")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise ValueError(f"'{path}' looks gzip-compressed but cannot be decompressed: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"'{path}' is not an IDX file: it must start with two zero bytes, got {raw[:4]!r}")
    if raw[2] != 0x08:
        raise ValueError(f"'{path}': only unsigned-byte IDX files (type 0x08) are supported, got type {raw[2]:#04x}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"'{path}' is truncated: its header declares {ndim} dimensions")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    size = int(np.prod(shape)) if shape else 1
    if len(raw) - header != size:
        raise ValueError(
            f"'{path}': the header declares shape {shape} ({size} bytes of data) but the file holds "
            f"{len(raw) - header} bytes after the header"
        )
    return torch.from_numpy(np.frombuffer(raw, dtype=np.uint8, offset=header).copy()).reshape(shape)


def _idx_file(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"Fashion-MNIST file '{root / (stem + '.gz')}' not found. {_INSTALL}")


# ----------------------------------------------------------------------------------- data sets
@dataclass
class ImageData:
    """Images, labels and disjoint splits of one data set.

    Attributes
    ----------
    images : Tensor
        ``uint8`` images ``(N, C, S, S)`` (square, so that rotations by 90° map them to themselves).
    labels : Tensor
        ``int64`` class of every image, ``(N,)``.
    classes : list of str
        Class names, indexed by label.
    splits : dict of str to Tensor
        ``"train"``, ``"val"``, ``"test"``: indices into ``images``, pairwise disjoint.
    name : str
        The data set's name as every output shows it.
    source : str
        Where the images came from (a folder).
    """

    images: Tensor
    labels: Tensor
    classes: list[str]
    splits: dict[str, Tensor]
    name: str
    source: str
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        """Channels per image (1 grey, 3 RGB)."""
        return int(self.images.shape[1])

    @property
    def size(self) -> int:
        """Side of the square images in pixels."""
        return int(self.images.shape[-1])

    def summary(self) -> dict[str, object]:
        """Sizes for records and logs."""
        return {
            "dataset": self.name,
            "source": self.source,
            "classes": len(self.classes),
            "image_shape": list(self.images.shape[1:]),
            **{f"{k}_images": int(v.numel()) for k, v in self.splits.items()},
            **self.notes,
        }


def stratified_split(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Split indices ``0 .. len(labels)-1`` into (rest, held out) with ``fraction`` of each class held out.

    Deterministic per ``seed``; each class keeps at least one image on each side when it has two.

    Examples
    --------
    >>> rest, held = stratified_split(torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), 0.25, seed=0)
    >>> len(rest), len(held), sorted(set(rest.tolist()) | set(held.tolist())) == list(range(8))
    (6, 2, True)
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the held-out fraction must be in [0, 1), got {fraction}")
    gen = torch.Generator().manual_seed(seed)
    rest, held = [], []
    for c in torch.unique(labels).tolist():  # a loop over classes, not over images
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        n = round(fraction * idx.numel())
        if fraction > 0 and idx.numel() >= 2:
            n = min(max(n, 1), idx.numel() - 1)
        held.append(idx[:n])
        rest.append(idx[n:])
    return torch.cat(rest).sort().values, torch.cat(held).sort().values


def _fit(images: Tensor, size: int) -> tuple[Tensor, str]:
    """Zero-pad (when the difference is even and non-negative) or resize square images to ``size``."""
    s = images.shape[-1]
    if size == s:
        return images, "none"
    if size > s and (size - s) % 2 == 0:
        p = (size - s) // 2
        return F.pad(images, (p, p, p, p)), f"zero-padded {s}->{size} ({p} px each side)"
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8), f"resized {s}->{size} (bilinear)"


def fashion_mnist_dir(cache_dir: str | os.PathLike[str] | None = None, fetch: bool = True) -> Path:
    """The folder holding Fashion-MNIST's four IDX files, fetched from Debian if need be.

    Looks in :data:`FASHION_MNIST_DIR` (``apt-get install dataset-fashion-mnist``), then in
    multiequi's cache (``cache_dir/fashion-mnist``; ``cache_dir`` defaults to
    ``$MULTIEQUI_CACHE``, else ``~/.cache/multiequi``); else, when ``fetch``, downloads Debian's
    package with ``apt-get download`` (31 MB, no root needed), unpacks it and copies the four
    ``.gz`` files (30 MB) into the cache atomically, once
    (:func:`~multiequi.lab.datasets._debian.debian_files`).

    Raises
    ------
    FileNotFoundError
        When the files are nowhere and cannot be fetched; the message names the folders searched
        and ``apt-get install dataset-fashion-mnist``.
    """
    return debian_files(
        FASHION_MNIST_PACKAGE,
        _FMNIST_MEMBERS,
        _FMNIST_FOLDER,
        FASHION_MNIST_DIR,
        cache_dir,
        fetch,
        what="Fashion-MNIST (train/t10k images and labels, .gz)",
    )


def load_fashion_mnist(
    root: str | os.PathLike[str] | None = None,
    size: int = 32,
    val_fraction: float = 0.1,
    seed: int = 0,
    fetch: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ImageData:
    """Real Fashion-MNIST (60,000 training and 10,000 test images, 28×28 grey, 10 classes).

    Read directly from the IDX files of Debian's ``dataset-fashion-mnist`` package. The test
    split is the official test file; ``val_fraction`` of every class of the training file is the
    validation split (model selection), the rest is the training split.

    Parameters
    ----------
    root : path, optional
        Folder of the four IDX files. Default: :func:`fashion_mnist_dir` (Debian's package in
        :data:`FASHION_MNIST_DIR`, else multiequi's cache, else fetched into the cache).
    size : int
        Side of the images returned: 32 (default) zero-pads the 28×28 images by 2 pixels on each
        side (three 2×2 poolings then give 4×4 maps, as with the paper's 64 px and unpadded
        convolutions); other sizes are padded when the difference is even, else resized.
    val_fraction : float
        Share of each class of the training file held out for validation.
    seed : int
        Seed of the train / validation split.
    fetch : bool
        When ``root`` is ``None`` and the files are neither installed nor cached, download
        Debian's package into the cache (``False``: raise instead).
    cache_dir : path, optional
        Root of multiequi's cache (default ``$MULTIEQUI_CACHE``, else ``~/.cache/multiequi``).

    Raises
    ------
    FileNotFoundError
        When a file is missing; the message says how to install the package.
    """
    folder = Path(root) if root is not None else fashion_mnist_dir(cache_dir, fetch)
    if not folder.is_dir():
        raise FileNotFoundError(f"Fashion-MNIST folder '{folder}' not found. {_INSTALL}")
    parts = {}
    for split, (img_stem, lab_stem) in _FMNIST_FILES.items():
        img_path, lab_path = _idx_file(folder, img_stem), _idx_file(folder, lab_stem)
        images, labels = read_idx(img_path), read_idx(lab_path)
        if images.dim() != 3 or images.shape[1] != images.shape[2]:
            raise ValueError(f"'{img_path}' must hold square images (N, H, W); got shape {tuple(images.shape)}")
        if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"'{lab_path}' must hold one label per image of '{img_path}' ({images.shape[0]}); "
                f"got shape {tuple(labels.shape)}"
            )
        if labels.numel() and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
            raise ValueError(f"'{lab_path}' holds label {int(labels.max())}; Fashion-MNIST has 10 classes (0-9)")
        parts[split] = (images, labels.long())
    n_train = parts["train"][0].shape[0]
    images = torch.cat([parts["train"][0], parts["test"][0]]).unsqueeze(1)
    images, how = _fit(images, size)
    labels = torch.cat([parts["train"][1], parts["test"][1]])
    train_idx, val_idx = stratified_split(labels[:n_train], val_fraction, seed)
    return ImageData(
        images=images,
        labels=labels,
        classes=list(FASHION_MNIST_CLASSES),
        splits={"train": train_idx, "val": val_idx, "test": torch.arange(n_train, labels.numel())},
        name=FASHION_MNIST_NAME,
        source=str(folder),
        notes={"preprocessing": how, "split": f"val = {val_fraction:g} of each class of the training file"},
    )


def load_image_folder(
    root: str | os.PathLike[str],
    size: int = 64,
    channels: int = 1,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    seed: int = 0,
    name: str | None = None,
) -> ImageData:
    """A user's image folder with one sub-folder per class (Caltech101, 15-Scene, …).

    Every image is converted to grey (``channels=1``) or RGB (``channels=3``) and resized to
    ``size × size`` (bilinear; non-square images are stretched, as the paper's resize to 64 px
    did). ``test_fraction`` of every class is the test split (the paper used 80/20), then
    ``val_fraction`` of the rest is the validation split.

    Parameters
    ----------
    root : path
        The folder; its sub-folders (sorted by name) are the classes. Hidden entries are skipped.
    size, channels, test_fraction, val_fraction, seed
        As above; ``seed`` fixes the splits.
    name : str, optional
        The data set's name in outputs (default ``"folder:<folder name>"``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for c in ("cat", "dog"):
    ...     (root / c).mkdir()
    ...     for i in range(5):
    ...         Image.new("L", (10, 7), 40 * i).save(root / c / f"{i}.png")
    >>> data = load_image_folder(root, size=8)
    >>> data.classes, tuple(data.images.shape)
    (['cat', 'dog'], (10, 1, 8, 8))
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as err:
        raise ImportError("reading an image folder needs Pillow: pip install 'multiequi[experiments]'") from err
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder '{folder}' not found (expected one sub-folder per class)")
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise ValueError(
            f"image folder '{folder}' must hold one sub-folder per class (at least 2); found {len(class_dirs)}"
        )
    mode = "L" if channels == 1 else "RGB"
    arrays, labels = [], []
    for c, d in enumerate(class_dirs):  # reading files: a loop over images is I/O, done once
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise ValueError(f"class folder '{d}' holds no images (suffixes {', '.join(IMAGE_SUFFIXES)})")
        for f in files:
            try:
                with Image.open(f) as im:
                    img = im.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
                    a = np.asarray(img, dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as err:
                raise ValueError(f"cannot read image '{f}': {err}") from err
            arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
            labels.append(c)
    images = torch.from_numpy(np.stack(arrays))
    lab = torch.tensor(labels, dtype=torch.long)
    rest, test = stratified_split(lab, test_fraction, seed)
    train_sub, val_sub = stratified_split(lab[rest], val_fraction, seed + 1)
    return ImageData(
        images=images,
        labels=lab,
        classes=[d.name for d in class_dirs],
        splits={"train": rest[train_sub], "val": rest[val_sub], "test": test},
        name=name or f"folder:{folder.name}",
        source=str(folder),
        notes={
            "preprocessing": f"{mode} resized to {size}x{size} (bilinear)",
            "split": f"test = {test_fraction:g} of each class, val = {val_fraction:g} of the rest",
        },
    )


def to_float(images: Tensor) -> Tensor:
    """``uint8`` pixels to ``float32`` in ``[0, 1]``."""
    return images.to(torch.float32).div_(255.0)


# ------------------------------------------------------------------- natural-image encoders
#: Fixed-point scale of the resize weights of :func:`natural_images` (20 bits: every product and
#: sum of the two matrix products stays an integer below 2**53, exact in float64).
_WEIGHT_BITS = 20


@functools.lru_cache(maxsize=16)
def _resize_weights(s: int, size: int) -> tuple[Tensor, Tensor]:
    """Integer 1-D resize weights ``W`` (``(size, s)``, float64 holding integers) and row sums.

    ``W / rowsum`` is torch's antialiased bilinear resize (``align_corners=False``) from ``s`` to
    ``size`` samples, made mirror-symmetric (``W[size-1-i, s-1-j] == W[i, j]``, exactly) and
    rounded to :data:`_WEIGHT_BITS` bits.
    """
    eye = torch.eye(s, dtype=torch.float64).reshape(s, 1, 1, s)
    a = F.interpolate(eye, size=(1, size), mode="bilinear", antialias=True, align_corners=False)
    a = a.reshape(s, size).T  # a[i, j]: weight of input sample j in output sample i
    a = (a + a.flip(0, 1)) / 2  # exactly mirror-symmetric (a + b == b + a in floating point)
    w = torch.round(a * 2.0**_WEIGHT_BITS).clamp_(min=0)
    sums = w.sum(1)
    if bool((sums <= 0).any()):  # cannot happen for bilinear weights; a guard, not a code path
        raise ValueError(f"degenerate resize weights from {s} to {size}")
    return w, sums


def natural_images(images: Tensor, size: int = 224, invert: bool = False) -> Tensor:
    """Images as natural-image encoders take them: ``float32`` RGB ``(B, 3, size, size)`` in ``[0, 1]``.

    Grey images get three identical channels; ``invert`` maps every pixel ``p`` to ``255 - p``
    first (Fashion-MNIST is light-on-black; natural-image encoders see dark objects on a light
    background better); images are resized when ``size`` differs from theirs. Call it on
    batches: it materializes ``B × 3 × size × size`` floats.

    The resize is torch's antialiased bilinear resize (``align_corners=False``) computed so that
    it commutes *bitwise* with the eight rotations by 90° and flips of the input: its 1-D weights
    are made mirror-symmetric and rounded to 20-bit integers, the separable resize is two matrix
    products ``W · X · Wᵀ`` in float64 on integer values (exact, hence independent of the order
    of summation), and the normalization divides by ``255 · r_i · r_k`` (``r`` the weights' row
    sums), the same number for a pixel and its image under the group. Plain ``F.interpolate`` in
    float32 commutes only up to ~1e-5 (measured for 32 → 224 and for downsampling; it resizes the
    height first, then the width, rounding in between); 28 → 224, an upsampling by 8 with dyadic
    weights, happens to be exact. The values differ from torch's resize computed in float64 by
    less than 1e-6 (measured: at most 7.5e-7 for 17, 32, 225, 300 and 1000 → 224, where torch's
    float32 resize is off by up to 1.7e-5); for 28 → 224 they equal
    ``F.interpolate(x.float(), ...) / 255`` bitwise.

    Parameters
    ----------
    images : Tensor
        ``uint8`` ``(B, 1, S, S)`` or ``(B, 3, S, S)`` (any device).
    size : int
        Side of the output.
    invert : bool
        Map ``p`` to ``255 - p`` before anything else.

    Returns
    -------
    Tensor
        ``float32`` ``(B, 3, size, size)``, contiguous, values in ``[0, 1]``, on the input's device.

    Examples
    --------
    >>> x = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    >>> x[:, :, :4, :4] = 255  # a bright square in the top-left corner
    >>> y = natural_images(x, size=56, invert=True)
    >>> tuple(y.shape), y.dtype, float(y.min()), float(y.max())
    ((2, 3, 56, 56), torch.float32, 0.0, 1.0)
    >>> torch.equal(natural_images(x.flip(-1), 56, True), y.flip(-1))  # commutes with the flips
    True
    >>> torch.equal(natural_images(torch.rot90(x, 1, (2, 3)), 56), torch.rot90(natural_images(x, 56), 1, (2, 3)))
    True
    """
    if not isinstance(images, Tensor) or images.dtype != torch.uint8:
        got = images.dtype if isinstance(images, Tensor) else type(images).__name__
        raise TypeError(f"natural_images takes uint8 images (B, C, S, S), got {got}")
    if images.dim() != 4 or images.shape[1] not in (1, 3) or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"natural_images takes square uint8 images (B, 1 or 3, S, S); got shape {tuple(images.shape)}")
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    size = int(size)
    x = 255 - images if invert else images
    b, c, s = x.shape[0], x.shape[1], x.shape[-1]
    if size == s:
        out = x.to(torch.float32).div_(255.0)
    else:
        w, sums = _resize_weights(s, size)
        w, sums = w.to(x.device), sums.to(x.device)
        y = torch.matmul(torch.matmul(w, x.to(torch.float64)), w.T)  # integers below 2**48: exact
        out = y.div_((sums[:, None] * sums[None, :]) * 255.0).to(torch.float32)
    if c == 1:
        out = out.expand(b, 3, size, size)
    return out.contiguous()


# ------------------------------------------------------------------------------ CIFAR-100
#: The official python version of CIFAR-100 (Krizhevsky, 2009) and its md5.
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
_CIFAR100_FOLDER = "cifar-100-python"
_CIFAR100_FILES = ("train", "test", "meta")
_CIFAR100_LAYOUT = (
    "expected the official python version: a folder 'cifar-100-python' holding the pickled files "
    "'train', 'test' and 'meta' (extract cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
    "into it, or pass download=True)"
)
#: What the CIFAR pickles may reference: numpy arrays and their dtypes (numpy 1.x wrote them as
#: ``numpy.core.multiarray``; numpy 2 keeps them in ``numpy._core``) and, for bytes pickled with
#: protocol 2 by Python 3, ``_codecs.encode``; nothing that runs other code.
_PICKLE_ALLOWED = {
    ("_codecs", "encode"): ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain Python values only (no arbitrary code)."""

    def find_class(self, module: str, name: str) -> object:
        target = _PICKLE_ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"the CIFAR-100 pickle references {module}.{name}, which is not allowed")
        mod, attr = target
        if not hasattr(np, "_core") and mod.startswith("numpy._core"):  # numpy 1.x
            mod = mod.replace("numpy._core", "numpy.core")
        return getattr(importlib.import_module(mod), attr)


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            out = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as err:
        raise ValueError(f"cannot read the CIFAR-100 file '{path}': {err}") from err
    if not isinstance(out, dict):
        raise ValueError(f"'{path}' is not a CIFAR-100 pickle (a dict), got {type(out).__name__}")
    return out


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_cifar100(root: Path) -> None:
    """Download :data:`CIFAR100_URL` into ``root``, check its md5 and extract it, atomically."""
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "cifar-100-python.tar.gz"
    if not (archive.is_file() and _md5(archive) == CIFAR100_MD5):
        fd, tmp_name = tempfile.mkstemp(prefix=".cifar-100-python.", suffix=".part", dir=root)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(CIFAR100_URL, timeout=60) as response:
                shutil.copyfileobj(response, out, 1 << 20)
            got = _md5(tmp)
            if got != CIFAR100_MD5:
                raise ValueError(
                    f"the CIFAR-100 archive downloaded from {CIFAR100_URL} has md5 {got}, expected {CIFAR100_MD5}"
                )
            os.replace(tmp, archive)
        except (urllib.error.URLError, OSError) as err:
            reason = " ".join(str(getattr(err, "reason", err)).split())
            raise ConnectionError(
                f"could not download CIFAR-100 from {CIFAR100_URL} ({reason}); download it by hand and extract "
                f"it into {root} (it makes {root / _CIFAR100_FOLDER})"
            ) from err
        finally:
            tmp.unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".cifar-100-python.tmp-", dir=root))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                parts = Path(m.name).parts
                if m.name.startswith("/") or ".." in parts or not (m.isfile() or m.isdir()):
                    raise ValueError(f"unexpected entry {m.name!r} in {archive}")
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.10.12: refuse unsafe entries too
                tar.extractall(work, members=members, filter="data")
            else:  # entries checked above
                tar.extractall(work, members=members)
        extracted = work / _CIFAR100_FOLDER
        if not all((extracted / f).is_file() for f in _CIFAR100_FILES):
            raise ValueError(f"{archive} does not hold {_CIFAR100_FOLDER}/{{train,test,meta}}")
        try:
            os.rename(extracted, root / _CIFAR100_FOLDER)
        except OSError:  # another process extracted it first
            if not all((root / _CIFAR100_FOLDER / f).is_file() for f in _CIFAR100_FILES):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cifar100_folder(root: Path) -> Path | None:
    for folder in (root / _CIFAR100_FOLDER, root):
        if all((folder / f).is_file() for f in _CIFAR100_FILES):
            return folder
    return None


def load_cifar100(
    root: str | os.PathLike[str], download: bool = False, val_fraction: float = 0.1, seed: int = 0
) -> ImageData:
    """CIFAR-100 (50,000 training and 10,000 test images, 32×32 RGB, 100 fine classes).

    Read from the official python version: ``root/cifar-100-python/{train,test,meta}`` (or
    ``root`` itself holding the three files), pickled dicts with ``b"data"`` (``(N, 3072)``
    ``uint8``, each row the red, green then blue plane, row-major) and ``b"fine_labels"``, and
    ``meta``'s ``b"fine_label_names"``. The pickles are read by an unpickler that builds numpy
    arrays and plain values only. The test split is the official test file; ``val_fraction``
    of every class of the training file is the validation split, the rest the training split.
    Class names have underscores replaced by spaces (``"maple_tree"`` → ``"maple tree"``), as
    text prompts want them.

    Parameters
    ----------
    root : path
        The folder holding ``cifar-100-python`` (or the files).
    download : bool
        When the files are missing, download :data:`CIFAR100_URL` (161 MB) into ``root``, check
        its md5 (:data:`CIFAR100_MD5`) and extract it (written beside and renamed into place).
    val_fraction, seed
        The validation share of each class of the training file, and the split's seed.

    Raises
    ------
    FileNotFoundError
        When the files are missing and ``download`` is ``False`` (the message names the layout).
    ConnectionError
        When the download fails (offline): one line naming the URL and what to do by hand.
    ValueError
        When a file is not in the official layout.

    Examples
    --------
    >>> data = load_cifar100("/data")  # doctest: +SKIP
    >>> data.classes[:3], tuple(data.images.shape), {k: len(v) for k, v in data.splits.items()}  # doctest: +SKIP
    (['apple', 'aquarium fish', 'baby'], (60000, 3, 32, 32), {'train': 45000, 'val': 5000, 'test': 10000})
    """
    base = Path(root)
    folder = _cifar100_folder(base)
    if folder is None:
        if not download:
            raise FileNotFoundError(f"CIFAR-100 not found in '{base}': {_CIFAR100_LAYOUT}")
        _download_cifar100(base)
        folder = base / _CIFAR100_FOLDER
    meta = _unpickle(folder / "meta")
    names = meta.get(b"fine_label_names")
    if not isinstance(names, list) or not names:
        raise ValueError(f"'{folder / 'meta'}' lacks b'fine_label_names': {_CIFAR100_LAYOUT}")
    classes = [(n.decode("utf-8") if isinstance(n, bytes) else str(n)).replace("_", " ") for n in names]
    parts = []
    for split in ("train", "test"):
        path = folder / split
        d = _unpickle(path)
        if b"data" not in d or b"fine_labels" not in d:
            raise ValueError(f"'{path}' lacks b'data' or b'fine_labels': {_CIFAR100_LAYOUT}")
        data = np.asarray(d[b"data"])
        labels = torch.as_tensor(np.asarray(d[b"fine_labels"], dtype=np.int64))
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"'{path}': b'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
        if labels.shape != (data.shape[0],):
            raise ValueError(f"'{path}': {labels.numel()} fine labels for {data.shape[0]} images")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
            raise ValueError(f"'{path}' holds labels outside 0..{len(classes) - 1}")
        parts.append((torch.from_numpy(np.ascontiguousarray(data)).reshape(-1, 3, 32, 32), labels))
    n_train = parts[0][0].shape[0]
    images = torch.cat([parts[0][0], parts[1][0]])
    labels = torch.cat([parts[0][1], parts[1][1]])
    train_idx, val_idx = stratified_split(labels[:n_train], val_fraction, seed)
    return ImageData(
        images=images,
        labels=labels,
        classes=classes,
        splits={"train": train_idx, "val": val_idx, "test": torch.arange(n_train, labels.numel())},
        name="CIFAR-100",
        source=str(folder),
        notes={
            "preprocessing": "none (32x32 RGB)",
            "split": f"val = {val_fraction:g} of each class of the training file",
        },
    )


# ---------------------------------------------------------------------------- ImageNet-V2
_IMAGENET_V2_LAYOUT = (
    "expected ImageNet-V2's layout: one folder per ImageNet class, named by its index '0' ... '999', "
    "holding that class's JPEG files (as in imagenetv2-matched-frequency-format-val; a subset of the "
    "1000 class folders is fine)"
)
_RESAMPLE = ("bicubic", "bilinear")


def _class_index_dirs(folder: Path) -> tuple[list[tuple[int, Path]], list[str]]:
    dirs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    numbered = [(int(p.name), p) for p in dirs if p.name.isdigit() and p.name.isascii()]
    others = sorted(p.name for p in dirs if not (p.name.isdigit() and p.name.isascii()))
    return sorted(numbered), others


def load_imagenet_v2(
    root: str | os.PathLike[str], size: int = 224, per_class: int | None = None, *, resample: str = "bicubic"
) -> ImageData:
    """ImageNet-V2 (Recht et al., 2019): 10,000 new test images of the 1000 ImageNet classes.

    The layout of its archives: one folder per class named by the ImageNet class index (``"0"``
    … ``"999"``), each holding JPEG files. A folder holding a subset of the class folders is
    read the same way (labels stay the folder numbers; ``classes`` keeps all 1000 names, from
    :func:`multiequi.lab.datasets.photos.imagenet_class_names`, which needs the ``[demo]``
    extra). ``root`` may also be the folder that holds the extracted archive's single folder.

    Every image is converted to RGB, resized so that its shorter side is ``size`` (``resample``,
    antialiased by Pillow; bicubic by default, as CLIP's preprocessing) and center-cropped to
    ``size × size``. All images form the ``"test"`` split (the data set is a test set).

    Parameters
    ----------
    root : path
        The folder of class folders.
    size : int
        Side of the square images returned.
    per_class : int, optional
        Read at most this many images per class (the first by sorted file name).
    resample : {"bicubic", "bilinear"}
        Pillow's filter for the resize.

    Raises
    ------
    FileNotFoundError
        When ``root`` is missing.
    ValueError
        When the folder is not in the expected layout (the message names it), or an image
        cannot be read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for c in ("1", "207"):
    ...     (root / c).mkdir()
    ...     Image.new("RGB", (40, 30), (10, 20, 30)).save(root / c / "a.jpeg")
    >>> data = load_imagenet_v2(root, size=16)
    >>> data.labels.tolist(), [data.classes[i] for i in data.labels], tuple(data.images.shape)
    ([1, 207], ['goldfish', 'golden retriever'], (2, 3, 16, 16))
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as err:
        raise ImportError("reading ImageNet-V2 needs Pillow: pip install 'multiequi[experiments]'") from err
    if resample not in _RESAMPLE:
        raise ValueError(f"resample must be one of {_RESAMPLE}, got {resample!r}")
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if per_class is not None and (isinstance(per_class, bool) or int(per_class) != per_class or per_class < 1):
        raise ValueError(f"per_class must be a positive integer or None, got {per_class!r}")
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"ImageNet-V2 folder '{folder}' not found: {_IMAGENET_V2_LAYOUT}")
    numbered, others = _class_index_dirs(folder)
    if not numbered and len(others) == 1:  # the folder that holds the extracted archive's folder
        inner, inner_others = _class_index_dirs(folder / others[0])
        if inner and not inner_others:
            folder, numbered, others = folder / others[0], inner, inner_others
    if not numbered or others:
        seen = f"folders {', '.join(others[:5])}{' ...' if len(others) > 5 else ''}" if others else "no class folders"
        raise ValueError(f"'{folder}' is not an ImageNet-V2 folder (found {seen}): {_IMAGENET_V2_LAYOUT}")
    bad = [i for i, _ in numbered if i >= 1000]
    if bad:
        raise ValueError(f"'{folder}' holds class folder '{bad[0]}': {_IMAGENET_V2_LAYOUT}")
    from multiequi.lab.datasets.photos import imagenet_class_names

    classes = list(imagenet_class_names())
    files: list[tuple[int, Path]] = []
    for label, d in numbered:
        in_class = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not in_class:
            raise ValueError(f"class folder '{d}' holds no images (suffixes {', '.join(IMAGE_SUFFIXES)})")
        files += [(label, p) for p in in_class[:per_class]]
    filt = Image.Resampling.BICUBIC if resample == "bicubic" else Image.Resampling.BILINEAR
    images = torch.empty((len(files), 3, size, size), dtype=torch.uint8)  # filled in place: no second copy
    for k, (_, f) in enumerate(files):  # reading files: a loop over images is I/O, done once
        try:
            with Image.open(f) as im:
                rgb = im.convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"cannot read image '{f}': {err}") from err
        w, h = rgb.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        left, top = (nw - size) // 2, (nh - size) // 2
        rgb = rgb.resize((nw, nh), filt).crop((left, top, left + size, top + size))
        images[k] = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1).copy())
    labels = torch.tensor([label for label, _ in files], dtype=torch.long)
    return ImageData(
        images=images,
        labels=labels,
        classes=classes,
        splits={"test": torch.arange(len(files))},
        name="ImageNet-V2",
        source=str(folder),
        notes={
            "preprocessing": f"RGB, shorter side resized to {size} ({resample}), center crop {size}x{size}",
            "split": "all images are the test split"
            + (f" (at most {per_class} per class, first by file name)" if per_class else ""),
            "class_folders": str(len(numbered)),
        },
    )
