"""``multiequi reproduce pages``: the documentation's marked blocks filled from one reproduction at
one commit, other presets' blocks left alone, figures copied, and a refusal (one line) for a
reproduction of several commits, uncommitted changes, unfinished parts or a missing file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from multiequi.cli import main
from multiequi.lab.reproduce import PageError, update_pages

COMMIT = "0123456789abcdef0123456789abcdef01234567"
PNG = b"\x89PNG\r\n\x1a\nnot really an image"


def _record(part: str, preset: str = "medium", commit: str = COMMIT, **extra: Any) -> dict[str, Any]:
    return {
        "part": part,
        "title": f"The {part} part",
        "page": f"docs/{part}.md",
        "settings": {"preset": preset, "options": [part]},
        "command": ["multiequi", part, "--preset", preset],
        "folder": part,
        "reports": ["report.md"],
        "status": "finished",
        "attempts": [
            {"started": "2026-12-03T01:00:00", "wall_s": 90.0, "returncode": 0, "finished": "2026-12-03T01:01:30"}
        ],
        "code": {"commit": commit, "dirty": False},
        "versions": {"torch": "2.13.0"},
        "machine": {"processor": "Test CPU", "cpu_count": 2, "torch": "2.13.0+cpu"},
        "threads": 2,
        **extra,
    }


def _reproduction(root: Path, *records: dict[str, Any]) -> Path:
    out = root / "results" / "medium"
    (out / "records").mkdir(parents=True)
    for r in records or (_record("zeroshot"), _record("scan")):
        (out / "records" / f"{r['part']}.json").write_text(json.dumps(r))
    (out / "zeroshot").mkdir()
    (out / "zeroshot" / "accuracy.md").write_text(
        "## Top-1 accuracy\n\n| method | top-1 |\n|---|---|\n| equitune | 17.3 ± 1.2 |\n\n"
        "See [the figure](accuracy.png), [the paper](https://arxiv.org/abs/2310.08157) and ![fig](accuracy.png).\n\n"
        "```bash\n# a comment, not a heading\n```\n"
    )
    (out / "zeroshot" / "accuracy.png").write_bytes(PNG)
    return out


PAGE = """# Zero-shot

Prose written by hand.

<!-- reproduce medium: zeroshot/accuracy.md -->
old numbers
<!-- /reproduce -->

<!-- reproduce paper: zeroshot/accuracy.md -->
the paper preset's block, left alone
<!-- /reproduce -->

<!-- reproduce medium: zeroshot/accuracy.png -->
<!-- /reproduce -->

<!-- reproduce medium: parts -->
<!-- /reproduce -->

```markdown
<!-- reproduce medium: zeroshot/accuracy.md -->
(an example of the syntax, left alone)
<!-- /reproduce -->
```
"""


def _page(root: Path, text: str = PAGE) -> Path:
    page = root / "docs" / "zeroshot.md"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(text)
    return page


def test_blocks_of_the_preset_are_filled_from_the_reproduction_and_other_blocks_kept(tmp_path: Path) -> None:
    out, page = _reproduction(tmp_path), _page(tmp_path)
    [u] = update_pages(out, [page])
    assert u.changed and u.blocks == ("zeroshot/accuracy.md", "zeroshot/accuracy.png", "parts")
    text = page.read_text()
    assert text.startswith("# Zero-shot\n\nProse written by hand.\n")
    assert "old numbers" not in text and "the paper preset's block, left alone" in text
    assert f"at commit `{COMMIT[:10]}` (Test CPU, 2 cores, torch 2.13.0+cpu, finished 2026-12-03)" in text
    assert "`zeroshot/accuracy.md`" in text and "**Top-1 accuracy**" in text and "## Top-1" not in text
    assert "| equitune | 17.3 ± 1.2 |" in text
    # a relative link would point into results/, which is not in the repository: its text stays
    assert "See the figure, [the paper](https://arxiv.org/abs/2310.08157) and ." in text
    assert "# a comment, not a heading" in text and "**a comment" not in text
    figure = page.parent / "figures" / "reproduce-medium-zeroshot-accuracy.png"
    assert (
        figure.read_bytes() == PNG
        and "![zeroshot/accuracy.png](figures/reproduce-medium-zeroshot-accuracy.png)" in text
    )
    rows = [[c.strip() for c in line.split("|")[1:5]] for line in text.splitlines() if "| finished" in line]
    assert rows == [["scan", "finished", "1.5 min", "1"], ["zeroshot", "finished", "1.5 min", "1"]]
    assert text.count("<!-- /reproduce -->") == 5
    assert text.endswith(
        "```markdown\n<!-- reproduce medium: zeroshot/accuracy.md -->\n"
        "(an example of the syntax, left alone)\n<!-- /reproduce -->\n```\n"
    )

    [again] = update_pages(out, [page])  # idempotent
    assert not again.changed and page.read_text() == text
    [checked] = update_pages(out, [page], check=True)
    assert not checked.changed


def test_check_writes_nothing_and_says_what_differs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, page = _reproduction(tmp_path), _page(tmp_path)
    update_pages(out, [page])
    filled, source = page.read_text(), (out / "zeroshot" / "accuracy.md").read_text()
    (out / "zeroshot" / "accuracy.md").write_text("| method | top-1 |\n|---|---|\n| equitune | 99.9 |\n")
    [u] = update_pages(out, [page], check=True)
    assert u.changed and page.read_text() == filled
    assert main(["reproduce", "pages", "--out", str(out), "--pages", str(page), "--check"]) == 1
    assert "differs" in capsys.readouterr().out and page.read_text() == filled

    (out / "zeroshot" / "accuracy.md").write_text(source)  # back as it was: the page is up to date
    assert not update_pages(out, [page], check=True)[0].changed
    (out / "zeroshot" / "accuracy.png").write_bytes(PNG + b"changed")
    assert update_pages(out, [page], check=True)[0].changed
    assert main(["reproduce", "pages", "--out", str(out), "--pages", str(page)]) == 0  # only the figure differs
    assert page.read_text() == filled
    assert (page.parent / "figures" / "reproduce-medium-zeroshot-accuracy.png").read_bytes() == PNG + b"changed"
    assert "3 block(s) updated" in capsys.readouterr().out


def test_a_page_without_blocks_of_the_preset_is_left_alone(tmp_path: Path) -> None:
    out = _reproduction(tmp_path)
    page = _page(tmp_path, "# Page\n\n<!-- reproduce quick: zeroshot/accuracy.md -->\nquick\n<!-- /reproduce -->\n")
    before = page.read_text()
    [u] = update_pages(out, [page])
    assert u.blocks == () and not u.changed and page.read_text() == before


@pytest.mark.parametrize(
    ("records", "page_text", "message"),
    [
        ((_record("zeroshot"), _record("scan", commit="f" * 40)), PAGE, "the parts ran at 2 commits"),
        ((_record("zeroshot", code={"commit": COMMIT, "dirty": True}),), PAGE, "ran with uncommitted changes"),
        ((_record("zeroshot", status="interrupted"),), PAGE, "parts not finished: zeroshot"),
        ((_record("zeroshot"), _record("scan", preset="quick")), PAGE, "parts of several presets"),
        ((), "<!-- reproduce medium: zeroshot/missing.md -->\n<!-- /reproduce -->\n", "zeroshot.md:1: "),
        ((), "<!-- reproduce medium: zeroshot/accuracy.md -->\nno end\n", "has no closing '<!-- /reproduce -->'"),
        ((), "text\n<!-- reproduce medium: records/scan.json -->\n<!-- /reproduce -->\n", "neither a .md nor a .png"),
    ],
)
def test_refusals_name_the_cause(
    tmp_path: Path, records: tuple[dict[str, Any], ...], page_text: str, message: str
) -> None:
    out, page = _reproduction(tmp_path, *records), _page(tmp_path, page_text)
    before = page.read_text()
    with pytest.raises(PageError, match=message.replace("(", r"\(").replace("*", r"\*")):
        update_pages(out, [page])
    assert page.read_text() == before


def test_a_refusal_on_one_page_leaves_every_page_as_it_was(tmp_path: Path) -> None:
    out, good = _reproduction(tmp_path), _page(tmp_path)
    bad = tmp_path / "docs" / "bad.md"
    bad.write_text("<!-- reproduce medium: zeroshot/missing.md -->\n<!-- /reproduce -->\n")
    with pytest.raises(PageError, match=r"bad\.md:1: "):
        update_pages(out, [good, bad])
    assert good.read_text() == PAGE and not (good.parent / "figures").exists()


def test_cli_refusal_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _reproduction(tmp_path, _record("zeroshot", code={"commit": COMMIT, "dirty": True}))
    page = _page(tmp_path)
    assert main(["reproduce", "pages", "--out", str(out), "--pages", str(page)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "uncommitted changes" in err
    assert main(["reproduce", "pages", "--out", str(out), "--pages", str(tmp_path / "nope.md")]) != 0
    assert "nope.md: no such page" in capsys.readouterr().err
