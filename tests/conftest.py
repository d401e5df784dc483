"""Shared fixtures: seeded randomness and small models for property tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

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


def accelerate_launch(*target: str) -> subprocess.CompletedProcess[str]:
    """Run ``accelerate launch --multi_gpu --num_processes 2`` on the CPU (gloo) with ``target``
    (a script and its arguments, or ``"-m", module, ...``): a free port (two runs at once must not
    collide on torchrun's default), one thread per process, the package from ``src``, and one
    retry (starting two processes on a busy 2-core machine can time out). Skips when the
    launcher is not installed beside this Python; fails with both attempts' stderr."""
    launcher = Path(sys.executable).with_name("accelerate")
    if not launcher.exists():
        pytest.skip("the accelerate launcher is not installed beside this Python")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "OMP_NUM_THREADS": "1"}
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
        if done.returncode == 0:
            return done
        errors.append(done.stderr[-3000:])
    pytest.fail("accelerate launch failed:\n" + "\n---\n".join(errors))
