"""The shared image data sets: IDX and image-folder loaders on small files made in ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_fashion_files, make_folder, write_idx
from multiequi.lab.datasets.images import FASHION_MNIST_NAME, load_fashion_mnist, load_image_folder, read_idx

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


# ----------------------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trips_images_and_labels(tmp_path: Path, compress: bool) -> None:
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labels = np.array([9, 0, 3], dtype=np.uint8)
    got = read_idx(write_idx(tmp_path / "im", images, compress))
    assert got.dtype == torch.uint8 and torch.equal(got, torch.from_numpy(images))
    assert read_idx(write_idx(tmp_path / "lab", labels, compress)).tolist() == [9, 0, 3]


def test_read_idx_refuses_bad_files_with_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        read_idx(tmp_path / "missing")
    (tmp_path / "magic").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="two zero bytes"):
        read_idx(tmp_path / "magic")
    (tmp_path / "float").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x00")
    with pytest.raises(ValueError, match="type 0x0d"):
        read_idx(tmp_path / "float")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02")
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        read_idx(tmp_path / "short")


# -------------------------------------------------------------------------------- Fashion-MNIST
def test_fashion_mnist_loader_pads_and_splits_disjointly(tmp_path: Path) -> None:
    root = make_fashion_files(tmp_path / "fm")
    data = load_fashion_mnist(root, size=32, val_fraction=0.2, seed=0)
    raw = read_idx(root / "train-images-idx3-ubyte.gz")
    assert data.name == FASHION_MNIST_NAME and "Fashion-MNIST" in data.name and "stand-in" in data.name
    assert data.images.shape == (140, 1, 32, 32) and data.images.dtype == torch.uint8
    assert torch.equal(data.images[:100, 0, 2:30, 2:30], raw)  # 2 px of zero padding on each side
    assert int(data.images[:, :, :2].abs().sum()) == 0 and int(data.images[:, :, :, -2:].abs().sum()) == 0
    tr, va, te = (set(data.splits[s].tolist()) for s in ("train", "val", "test"))
    assert not (tr & va or tr & te or va & te) and tr | va | te == set(range(140))
    assert te == set(range(100, 140))  # the official test file is the test split
    assert torch.bincount(data.labels[data.splits["val"]], minlength=10).tolist() == [2] * 10  # stratified
    again = load_fashion_mnist(root, size=32, val_fraction=0.2, seed=0)
    assert torch.equal(again.splits["val"], data.splits["val"])
    assert not torch.equal(
        load_fashion_mnist(root, size=32, val_fraction=0.2, seed=1).splits["val"], data.splits["val"]
    )
    assert load_fashion_mnist(root, size=28).images.shape[-1] == 28
    assert load_fashion_mnist(root, size=20).images.shape[-1] == 20  # resized


def test_missing_fashion_mnist_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz.*apt-get install"):
        load_fashion_mnist(tmp_path / "empty")


def test_fashion_mnist_loader_refuses_mismatched_files(tmp_path: Path) -> None:
    root = make_fashion_files(tmp_path / "fm")
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="one label per image"):
        load_fashion_mnist(root)


# ------------------------------------------------------------------------------- image folders
def test_image_folder_loader(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "caltech", {"airplanes": 10, "faces": 12, "leopards": 8})
    grey = load_image_folder(root, size=16, channels=1, seed=0)
    assert grey.classes == ["airplanes", "faces", "leopards"] and grey.name == "folder:caltech"
    assert grey.images.shape == (30, 1, 16, 16) and grey.labels.bincount().tolist() == [10, 12, 8]
    rgb = load_image_folder(root, size=8, channels=3, seed=0)
    assert rgb.images.shape == (30, 3, 8, 8)
    splits = [set(grey.splits[s].tolist()) for s in ("train", "val", "test")]
    assert sum(len(s) for s in splits) == 30 and len(set().union(*splits)) == 30  # disjoint and complete
    assert torch.bincount(grey.labels[grey.splits["test"]], minlength=3).tolist() == [2, 2, 2]  # 20% per class
    assert torch.equal(load_image_folder(root, size=16, seed=0).splits["test"], grey.splits["test"])


def test_image_folder_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="one sub-folder per class"):
        load_image_folder(tmp_path / "none")
    (tmp_path / "one" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="at least 2"):
        load_image_folder(tmp_path / "one")
    (tmp_path / "one" / "b").mkdir()
    with pytest.raises(ValueError, match=r"holds no images"):
        load_image_folder(tmp_path / "one")
    root = make_folder(tmp_path / "bad", {"a": 3, "b": 3})
    (root / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        load_image_folder(root)
    with pytest.raises(ValueError, match="channels"):
        load_image_folder(root, channels=2)
