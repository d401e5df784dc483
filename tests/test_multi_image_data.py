"""The multi-image data: IDX and image-folder loaders on small files, splits, tuples, per-view transforms.

Everything here runs on files made in ``tmp_path``; only ``test_real_fashion_mnist`` needs Debian's
``dataset-fashion-mnist`` package and is skipped without it.
"""

from __future__ import annotations

import gzip
import itertools
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from multiequi.experiments.multi_image.data import (
    FASHION_MNIST_DIR,
    FASHION_MNIST_NAME,
    TupleDataset,
    load_fashion_mnist,
    load_image_folder,
    make_tuples,
    read_idx,
    stratified_split,
    view_groups,
)
from multiequi.experiments.multi_image.experiment import ExperimentConfig, build_splits, fixed_elements
from multiequi.multi_input import joint_group, sample_elements, transform_inputs


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one thread avoids OpenMP start-up and oversubscription costs on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write ``array`` (uint8) in the IDX format, gzip-compressed when ``compress``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def make_fashion_files(root: Path, per_class_train: int = 10, per_class_test: int = 4, seed: int = 0) -> Path:
    """Small Fashion-MNIST-shaped IDX files: 10 classes, 28x28, each class a bright bar at its own place."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for stem, n in (("train", per_class_train), ("t10k", per_class_test)):
        labels = np.repeat(np.arange(10), n)
        rng.shuffle(labels)
        images = rng.integers(0, 40, size=(labels.size, 28, 28)).astype(np.uint8)
        for c in range(10):  # a class-specific horizontal bar (rotations move it: rotations matter)
            images[labels == c, 2 + 2 * c : 4 + 2 * c, 4:20] = 250
        write_idx(root / f"{stem}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{stem}-labels-idx1-ubyte.gz", labels)
    return root


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
def make_folder(root: Path, classes: dict[str, int]) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, (name, n) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            shape = (12 + i % 3, 9 + c) if i % 2 else (10, 10)  # non-square sizes too
            arr = rng.integers(0, 255, size=(*shape, 3)).astype(np.uint8)
            Image.fromarray(arr, "RGB" if i % 3 else None).save(root / name / f"img{i}.{'png' if i % 2 else 'jpg'}")
    (root / next(iter(classes)) / "notes.txt").write_text("not an image")  # skipped: not an image suffix
    (root / ".hidden").mkdir()
    return root


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


# -------------------------------------------------------------------------------------- tuples
@pytest.mark.parametrize("k", [2, 3, 4])
def test_tuples_share_a_label_stay_in_their_split_and_are_deterministic(k: int) -> None:
    gen = torch.Generator().manual_seed(k)
    labels = torch.randint(0, 7, (600,), generator=gen)
    rest, test = stratified_split(labels, 0.2, seed=0)
    train, val = rest[stratified_split(labels[rest], 0.1, seed=1)[0]], rest[stratified_split(labels[rest], 0.1, 1)[1]]
    seen = {}
    for name, idx in (("train", train), ("val", val), ("test", test)):
        t, y = make_tuples(labels, idx, k, seed=3)
        assert t.shape[1] == k and bool((labels[t] == y[:, None]).all())  # one class per tuple, label = class
        assert set(t.flatten().tolist()) <= set(idx.tolist())  # only this split's images
        assert t.flatten().unique().numel() == t.numel()  # one partition: every image at most once
        expected = sum(int((labels[idx] == c).sum()) // k for c in range(7))
        assert t.shape[0] == expected
        seen[name] = set(t.flatten().tolist())
        t2, y2 = make_tuples(labels, idx, k, seed=3)
        assert torch.equal(t, t2) and torch.equal(y, y2)  # deterministic per seed
        assert not torch.equal(make_tuples(labels, idx, k, seed=4)[0], t)
    assert not (seen["train"] & seen["val"] or seen["train"] & seen["test"] or seen["val"] & seen["test"])


def test_tuple_counts_subset_and_oversample() -> None:
    labels = torch.arange(40) % 4
    small, ys = make_tuples(labels, torch.arange(40), 2, seed=0, n_tuples=5)
    assert small.shape == (5, 2) and bool((labels[small] == ys[:, None]).all())
    big, yb = make_tuples(labels, torch.arange(40), 2, seed=0, n_tuples=50)  # 2.5 partitions
    assert big.shape == (50, 2) and bool((labels[big] == yb[:, None]).all())
    assert bool((big[:, 0] != big[:, 1]).all())  # never the same image twice in one tuple
    with pytest.raises(ValueError, match="cannot form 5-tuples"):
        make_tuples(labels, torch.arange(8), 5, seed=0)


def test_experiment_splits_are_fixed_by_the_data_seed(tmp_path: Path) -> None:
    data = load_fashion_mnist(make_fashion_files(tmp_path / "fm"), val_fraction=0.2)
    cfg = ExperimentConfig.from_preset("quick", train_tuples=30, val_tuples=5, test_tuples=10)
    a, b = build_splits(data, 2, cfg), build_splits(data, 2, cfg)
    for split in ("train", "val", "test"):
        assert torch.equal(a.tuples[split][0], b.tuples[split][0])
        t, y = a.tuples[split]
        assert bool((data.labels[t] == y[:, None]).all())
        assert set(t.flatten().tolist()) <= set(data.splits[split].tolist())
    assert a.sizes() == {"train": 30, "val": 5, "test": 10}


# ---------------------------------------------------------------------------------- transforms
def test_view_groups_and_joint_group() -> None:
    assert [len(g) for g in view_groups("none", 3)] == [1, 1, 1]
    assert [len(g) for g in view_groups("rot", 4)] == [4, 4, 4, 4]
    mixed = view_groups("mixed", 4)
    assert [len(g) for g in mixed] == [4, 2, 4, 2]
    assert mixed[0] == mixed[2] and mixed[0] != mixed[1]  # equal groups share batched calls
    assert len(joint_group(mixed)) == 8  # C4 and the flip generate D4
    with pytest.raises(ValueError, match="unknown transform"):
        view_groups("rot45", 2)


def test_per_view_transforms_are_independent_and_match_the_group_action() -> None:
    for aug in ("rot", "mixed"):
        groups = view_groups(aug, 2)
        e = sample_elements(groups, 4000, torch.Generator().manual_seed(0))
        combos = {tuple(r) for r in e.tolist()}
        assert combos == set(itertools.product(*(range(len(g)) for g in groups)))  # every combination occurs
        # independent draws: P(view 1 = a, view 2 = b) = P(a) P(b) up to sampling noise
        joint = torch.zeros(len(groups[0]), len(groups[1]))
        joint.index_put_((e[:, 0], e[:, 1]), torch.ones(4000), accumulate=True)
        joint /= 4000
        assert torch.allclose(joint, joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True), atol=0.02)
        x = torch.randn(6, 2, 1, 5, 5)
        ee = e[:6]
        y = transform_inputs(x, groups, ee)
        for b, i in itertools.product(range(6), range(2)):
            assert torch.equal(y[b, i], groups[i].act(x[b, i], int(ee[b, i])))
    with pytest.raises(ValueError, match=r"\(batch, N\)"):
        transform_inputs(torch.zeros(3, 2, 1, 4, 4), view_groups("rot", 2), torch.zeros(3, 3, dtype=torch.long))


def test_test_transforms_are_fixed_by_seed() -> None:
    g = view_groups("rot", 3)
    a = fixed_elements(g, 100, 0, 3, "rot", "test")
    assert torch.equal(a, fixed_elements(g, 100, 0, 3, "rot", "test"))  # every model sees the same test set
    assert not torch.equal(a, fixed_elements(g, 100, 0, 3, "rot", "val"))
    assert not torch.equal(a, fixed_elements(g, 100, 1, 3, "rot", "test"))


def test_tuple_dataset_gathers_whole_batches() -> None:
    images = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8)
    tuples = torch.tensor([[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])
    ds = TupleDataset(images, tuples, torch.arange(5))
    batches = list(DataLoader(ds, batch_size=2, collate_fn=TupleDataset.collate))
    x, y = batches[0]
    assert x.shape == (2, 2, 1, 4, 4) and x.dtype == torch.float32 and y.tolist() == [0, 1]
    assert torch.equal(x[1, 0], images[2].float() / 255) and len(batches) == 3
    single_x, single_y = ds[3]
    assert torch.equal(single_x, images[[6, 7]].float() / 255) and int(single_y) == 3


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="needs Debian's dataset-fashion-mnist package")
def test_real_fashion_mnist() -> None:
    data = load_fashion_mnist()
    assert data.images.shape == (70000, 1, 32, 32)
    assert [int(data.splits[s].numel()) for s in ("train", "val", "test")] == [54000, 6000, 10000]
    assert torch.bincount(data.labels[:60000]).tolist() == [6000] * 10
    t, y = make_tuples(data.labels, data.splits["test"], 4, seed=0)
    assert t.shape == (2500, 4) and bool((data.labels[t] == y[:, None]).all())
