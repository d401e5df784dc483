"""Image data sets shared by the lab: real Fashion-MNIST and a user's image folder.

- :func:`read_idx`: the IDX format of (Fashion-)MNIST, gzip or not.
- :func:`load_fashion_mnist`: real Fashion-MNIST from Debian's ``dataset-fashion-mnist`` package
  (the stand-in for the paper's Caltech101 / 15-Scene), or any folder with the same four files.
- :func:`load_image_folder`: a user's own data set, one sub-folder per class (as Caltech101 and
  15-Scene are distributed).
- :class:`ImageData`, :func:`stratified_split`, :func:`to_float`: images kept as ``uint8`` tensors
  ``(N, C, S, S)`` with index splits, so a split never copies images.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_NAME",
    "IMAGE_SUFFIXES",
    "ImageData",
    "load_fashion_mnist",
    "load_image_folder",
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


def load_fashion_mnist(
    root: str | os.PathLike[str] | None = None, size: int = 32, val_fraction: float = 0.1, seed: int = 0
) -> ImageData:
    """Real Fashion-MNIST (60,000 training and 10,000 test images, 28×28 grey, 10 classes).

    Read directly from the IDX files of Debian's ``dataset-fashion-mnist`` package. The test
    split is the official test file; ``val_fraction`` of every class of the training file is the
    validation split (model selection), the rest is the training split.

    Parameters
    ----------
    root : path, optional
        Folder of the four IDX files (default :data:`FASHION_MNIST_DIR`).
    size : int
        Side of the images returned: 32 (default) zero-pads the 28×28 images by 2 pixels on each
        side (three 2×2 poolings then give 4×4 maps, as with the paper's 64 px and unpadded
        convolutions); other sizes are padded when the difference is even, else resized.
    val_fraction : float
        Share of each class of the training file held out for validation.
    seed : int
        Seed of the train / validation split.

    Raises
    ------
    FileNotFoundError
        When a file is missing; the message says how to install the package.
    """
    folder = Path(root) if root is not None else FASHION_MNIST_DIR
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
