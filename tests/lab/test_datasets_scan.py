"""SCAN and SCAN-II from the grammar: exact counts, translations, splits, files, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multiequi.lab.datasets.scan import (
    IN_VOCAB,
    OUT_VOCAB,
    SPLITS,
    Vocab,
    all_commands,
    decode_actions,
    encode,
    format_line,
    generate,
    interpret,
    make_splits,
    parse_line,
    read_examples,
    write_dataset,
)


@pytest.fixture(scope="module")
def scan() -> dict:
    return generate("scan", seed=0)


@pytest.fixture(scope="module")
def scan2() -> dict:
    return generate("scan2", seed=0)


def _distinct(examples: list) -> set:
    return {c for c, _ in examples}


def test_command_counts_and_output_lengths() -> None:
    for dataset, n in (("scan", 20_910), ("scan2", 73_920)):
        cmds = all_commands(dataset)
        assert len(cmds) == n and len(_distinct(cmds)) == n
        assert max(len(a.split()) for _, a in cmds) == 48
    # the generator and the independent parser agree on every SCAN-II command (SCAN is a subset)
    assert all(interpret(c) == a for c, a in all_commands("scan2"))
    assert set(all_commands("scan")) <= set(all_commands("scan2"))


@pytest.mark.parametrize(
    ("command", "actions"),
    [
        ("jump around left twice", " ".join(["I_TURN_LEFT I_JUMP"] * 8)),
        ("look opposite up after turn down", "I_TURN_DOWN I_TURN_UP I_TURN_UP I_LOOK"),
        ("turn around right", "I_TURN_RIGHT I_TURN_RIGHT I_TURN_RIGHT I_TURN_RIGHT"),
        ("turn opposite left thrice", " ".join(["I_TURN_LEFT"] * 6)),
        ("walk left and run", "I_TURN_LEFT I_WALK I_RUN"),
        ("walk opposite down and jump up twice", "I_TURN_DOWN I_TURN_DOWN I_WALK I_TURN_UP I_JUMP I_TURN_UP I_JUMP"),
        ("run after look right thrice", "I_TURN_RIGHT I_LOOK I_TURN_RIGHT I_LOOK I_TURN_RIGHT I_LOOK I_RUN"),
        ("jump", "I_JUMP"),
    ],
)
def test_translations(command: str, actions: str) -> None:
    table = dict(all_commands("scan2"))
    assert table[command] == actions == interpret(command)
    if "up" not in command and "down" not in command:
        assert dict(all_commands("scan"))[command] == actions


@pytest.mark.parametrize("bad", ["turn", "jump sideways", "walk left right", "fly", ""])
def test_interpret_refuses_non_commands(bad: str) -> None:
    with pytest.raises(ValueError, match="not a SCAN command"):
        interpret(bad)


def test_official_scan_splits(scan: dict) -> None:
    jump = scan["addprim_jump"]
    assert len(jump["train"]) == 14_670 and len(jump["addprim_jump"]) == 7_706
    assert sum(c == "jump" for c, _ in jump["train"]) == 1_467  # 13,203 / 9: the official file
    assert len(_distinct(jump["train"]) - {"jump"}) == 13_203
    assert not any("jump" in c.split() for c in _distinct(jump["train"]) - {"jump"})
    assert all("jump" in c.split() and c != "jump" for c, _ in jump["addprim_jump"])

    left = scan["addprim_turn_left"]
    assert len(left["train"]) == 21_890 and len(left["addprim_turn_left"]) == 1_208
    assert sum(c == "turn left" for c, _ in left["train"]) == 2_189

    around = scan["template_around_right"]
    assert len(around["train"]) == 15_225 and len(around["template_around_right"]) == 4_476
    assert not any("around right" in c for c, _ in around["train"])
    assert all("around right" in c and "turn around right" not in c for c, _ in around["template_around_right"])
    assert len(scan["tasks"]["all"]) == 20_910


def test_scan2_splits(scan2: dict) -> None:
    parts = scan2["scan2"]
    train = parts["train"]
    assert len(train) == 51_168  # 43,365 + 3 x int(0.06 * 43,365) = 43,365 + 3 x 2,601
    prims = {"jump", "turn left", "turn up"}
    assert len(_distinct(train) - prims) == 43_365
    for p in prims:
        assert sum(c == p for c, _ in train) == 2_601
    sizes = {k: len(v) for k, v in parts.items() if k != "train"}
    assert sizes == {"jump": 26_948, "turn_left": 2_288, "turn_up": 2_288, "union": 30_552}
    for name, phrase in (("jump", "jump"), ("turn_left", "turn left"), ("turn_up", "turn up")):
        test = _distinct(parts[name])
        assert len(test) == len(parts[name])  # no duplicates
        assert all(phrase in c for c in test) and not test & prims  # bare primitives stay out
        assert not test & _distinct(train)
    union = _distinct(parts["union"])
    assert union == _distinct(parts["jump"]) | _distinct(parts["turn_left"]) | _distinct(parts["turn_up"])
    # the published generator's sizes: the bare primitive leaked into each test file (+1), and its
    # union file concatenated the three files (duplicates included)
    assert sizes["jump"] + 1 == 26_949 and sizes["turn_left"] + 1 == 2_289
    assert (sizes["jump"] + 1) + 2 * (sizes["turn_left"] + 1) == 31_527
    # compositions with 'turn around left' / 'turn opposite up' are not held out: only 'turn left'
    assert "turn around left" in _distinct(train) and "turn opposite up twice" in _distinct(train)


def test_generation_is_deterministic_and_seeded() -> None:
    a, b, c = generate("scan", seed=3), generate("scan", seed=3), generate("scan", seed=4)
    assert a == b
    assert a["tasks"]["all"] != c["tasks"]["all"] and sorted(a["tasks"]["all"]) == sorted(c["tasks"]["all"])
    assert make_splits(SPLITS["addprim_jump"], all_commands("scan"), seed=3) == a["addprim_jump"]


def test_files_round_trip_in_the_official_format(tmp_path: Path) -> None:
    manifest = write_dataset("scan", tmp_path, seed=0)
    lines = (tmp_path / "tasks.txt").read_text().splitlines()
    assert len(lines) == 20_910 and all(line.startswith("IN: ") and " OUT: " in line for line in lines)
    assert sorted(read_examples(tmp_path / "tasks.txt")) == sorted(all_commands("scan"))
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    files = on_disk["files"]
    assert files["tasks_train_addprim_jump.txt"]["lines"] == 14_670
    assert files["tasks_test_addprim_jump.txt"]["lines"] == 7_706
    assert files["tasks_train_template_around_right.txt"]["lines"] == 15_225
    assert on_disk["input_vocab"] == list(IN_VOCAB["scan"]) and on_disk["output_vocab"] == list(OUT_VOCAB["scan"])
    assert parse_line(format_line(("jump twice", "I_JUMP I_JUMP"))) == ("jump twice", "I_JUMP I_JUMP")
    (tmp_path / "bad.txt").write_text("IN: jump OUT: I_JUMP\njump I_JUMP\n")
    with pytest.raises(ValueError, match=r"bad\.txt:2: expected a line 'IN: <command> OUT: <actions>'"):
        read_examples(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="multiequi scan generate"):
        read_examples(tmp_path / "missing.txt")


def test_vocabularies_are_fixed_and_encoding_round_trips() -> None:
    v = Vocab.of("scan2")
    assert v.inputs == (
        "<pad>", "walk", "look", "run", "jump", "turn", "left", "right", "up", "down",
        "opposite", "around", "twice", "thrice", "and", "after",
    )  # fmt: skip
    assert v.outputs == (
        "<pad>", "<sos>", "<eos>", "I_WALK", "I_LOOK", "I_RUN", "I_JUMP",
        "I_TURN_LEFT", "I_TURN_RIGHT", "I_TURN_UP", "I_TURN_DOWN",
    )  # fmt: skip
    assert Vocab.of("scan").inputs == tuple(w for w in v.inputs if w not in ("up", "down"))
    examples = all_commands("scan2")[::5000]
    src, tgt = encode(examples, v)
    assert decode_actions(tgt[:, 1:], v) == [a for _, a in examples]
    assert [" ".join(v.inputs[i] for i in row if i) for row in src.tolist()] == [c for c, _ in examples]
    with pytest.raises(ValueError, match="'up' is not in the scan vocabulary"):
        encode([("jump up", "I_TURN_UP I_JUMP")], Vocab.of("scan"))
    with pytest.raises(ValueError, match="dataset must be one of"):
        Vocab.of("cogs")
