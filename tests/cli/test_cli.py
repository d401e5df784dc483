"""The command line is a thin layer: its help explains each option, its parsing is checked."""

from __future__ import annotations

import pytest

from multiequi.cli import build_parser, main


def test_top_level_help_lists_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "demo" in capsys.readouterr().out


def test_demo_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ["--chunk-size", "--no-channels-last", "--repeats", "--threads", "--json", "--no-progress"]:
        assert option in text
    assert "Rot90" in text and "6 copies" in text


@pytest.mark.parametrize(("value", "parsed"), [("auto", "auto"), ("none", None), ("12", 12)])
def test_chunk_size_parsing(value: str, parsed: object) -> None:
    assert build_parser().parse_args(["demo", "--chunk-size", value]).chunk_size == parsed


@pytest.mark.parametrize("value", ["0", "-3", "big"])
def test_bad_chunk_size_is_refused(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--chunk-size", value])
    assert "chunk" in capsys.readouterr().err
