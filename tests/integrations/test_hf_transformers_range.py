"""The declared transformers range has two ends: the installed release (the newest, 5.x, where the
cache keyword is ``cache``) runs every test here; this test runs the language-model tests and the
zero-shot CLIP tests again, in one pytest call, under the oldest supported release, 4.57
(``past_key_values``; get_*_features return tensors; CLIP's causal mask is built in torch's default
dtype), installed beside the environment into a cache folder (PyPI is reachable from CI; without it
the test is skipped)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The test files rerun under the oldest release.
RERUN = ["test_hf_lm.py", "test_zeroshot_clip.py"]
#: The oldest release of the range in pyproject.toml, with the hub and tokenizers it was made for.
OLDEST = ["transformers==4.57.6", "huggingface-hub==0.36.2", "tokenizers==0.22.2"]


def _install(target: Path) -> None:
    marker = target / ".complete"
    if marker.is_file():
        return
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", str(target)]
    steps = [[*pip, "--no-deps", *OLDEST], [*pip, "requests"]]  # requests: huggingface-hub 0.x's client
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"cannot install {OLDEST} here (no package index?): {done.stderr.strip()[-300:]}")
    marker.write_text("ok")


def test_hf_tests_pass_with_the_oldest_supported_transformers(tmp_path: Path) -> None:
    cache = Path(os.environ.get("MULTIEQUI_CACHE", Path.home() / ".cache" / "multiequi")) / "transformers-4.57.6"
    _install(cache)
    env = {**os.environ, "PYTHONPATH": f"{cache}{os.pathsep}{ROOT / 'src'}", "OMP_NUM_THREADS": "1"}
    probe = subprocess.run(
        [sys.executable, "-c", "import transformers; print(transformers.__version__)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.stdout.strip() == "4.57.6", probe.stderr[-2000:]
    tests = [str(ROOT / "tests" / "integrations" / name) for name in RERUN]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(ROOT), *tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
