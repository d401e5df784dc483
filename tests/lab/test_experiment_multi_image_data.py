"""The multi-image experiment's data: splits, same-class tuples, per-view transforms (the image
loaders are tested in test_datasets_images.py).

Everything here runs on files made in ``tmp_path``; only ``test_real_fashion_mnist`` needs Debian's
``dataset-fashion-mnist`` package and is skipped without it.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from conftest import make_fashion_files
from multiequi.lab.datasets.images import FASHION_MNIST_DIR, load_fashion_mnist, stratified_split
from multiequi.lab.experiments.multi_image.data import TupleDataset, make_tuples, view_groups
from multiequi.lab.experiments.multi_image.experiment import ExperimentConfig, build_splits, fixed_elements
from multiequi.multi_input import joint_group, sample_elements, transform_inputs

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: see conftest.one_thread


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
