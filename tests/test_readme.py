"""Every Python snippet in the README runs as written; the set-up commands are the real ones."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_python_snippet_runs(index: int) -> None:
    exec(compile(SNIPPETS[index], f"README.md snippet {index}", "exec"), {"__name__": "__readme__"})


def test_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 2


def test_ci_runs_the_readme_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    awk = re.search(r"cmd=\$\(awk '(.*?)' README.md\)", script).group(1)
    extracted = subprocess.run(["awk", awk, str(ROOT / "README.md")], capture_output=True, text=True, check=True).stdout
    assert "pytest" in extracted and "pip install -q torch==2.13.0" in extracted
    assert "lint-imports" in extracted  # the import contracts run in CI
    assert extracted.strip() in README


def test_readme_demo_command_runs_the_demo() -> None:
    bash = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    assert any(cmd.strip().endswith("multiequi demo") and "torch==2.13.0" in cmd for cmd in bash)
