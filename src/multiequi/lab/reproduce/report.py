"""The reproduction's ``report.md``, rebuilt from its records and the parts' own reports alone."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from multiequi.lab.reporting import DamagedFileError, atomic_write_text, markdown_table, read_json

from .claims import claims_markdown, claims_table
from .parts import PARTS

__all__ = ["part_rows", "read_records", "rebuild_report", "wall_time"]

_LINK = re.compile(r"(\]\()([^)\s]+)(\))")


def read_records(out: str | Path) -> list[dict[str, Any]]:
    """The records in ``out/records/``, in the order of :data:`~.parts.PARTS` (others after, by name).
    A damaged record raises :class:`DamagedFileError` naming the file."""
    folder = Path(out) / "records"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: run 'multiequi reproduce' with this --out first")
    records = [read_json(p, "reproduction record") for p in sorted(folder.glob("*.json"))]
    for r, p in zip(records, sorted(folder.glob("*.json")), strict=True):
        if not isinstance(r, dict) or "part" not in r:
            raise DamagedFileError(f"{p} is not a reproduction record; delete it to run its part again")
    order = {name: i for i, name in enumerate(PARTS)}
    return sorted(records, key=lambda r: (order.get(r["part"], len(order)), r["part"]))


def wall_time(record: Mapping[str, Any]) -> float:
    """Seconds over the record's timed attempts (an attempt killed outright has no time)."""
    return sum(float(a["wall_s"]) for a in record.get("attempts", []) if a.get("wall_s") is not None)


def _included(text: str, folder: str) -> str:
    """A part's report inside the reproduction's: headings two levels down, relative links and
    images pointing into the part's folder (fenced code left alone)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            if line.startswith("#"):
                line = "##" + line
            line = _LINK.sub(lambda m: m.group(1) + _relink(m.group(2), folder) + m.group(3), line)
        lines.append(line)
    return "\n".join(lines)


def _relink(target: str, folder: str) -> str:
    if target.startswith(("/", "#")) or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
        return target
    return f"{folder}/{target}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _part_time(record: Mapping[str, Any]) -> str:
    """The part's timed attempts, and how many attempts were killed before they could be timed."""
    untimed = sum(1 for a in record.get("attempts", []) if a.get("wall_s") is None)
    return _minutes(wall_time(record)) + (f" + {untimed} untimed (killed)" if untimed else "")


def _commit(code: Mapping[str, Any] | None) -> str:
    if not code or not code.get("commit"):
        return "unknown (not a git checkout)"
    return str(code["commit"])[:10] + (" + uncommitted changes" if code.get("dirty") else "")


def _machine(m: Mapping[str, Any]) -> str:
    gpu = f", {m['gpu']}" if m.get("gpu") else ""
    return f"{m.get('processor', '?')}, {m.get('cpu_count', '?')} cores{gpu}, torch {m.get('torch', '?')}"


def _versions(records: Sequence[Mapping[str, Any]]) -> str:
    seen: dict[str, set[str]] = {}
    for r in records:
        for name, v in (r.get("versions") or {}).items():
            if v is not None:
                seen.setdefault(name, set()).add(str(v))
    return ", ".join(f"{n} {' / '.join(sorted(v))}" for n, v in seen.items()) or "unknown"


def part_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per part: status, wall time, attempts, commit, threads and command."""
    return [
        {
            "part": r["part"],
            "status": r.get("status", "?"),
            "wall time": _part_time(r),
            "attempts": len(r.get("attempts", [])),
            "commit": _commit(r.get("code")),
            "threads": r.get("threads") or "default",
            "command": "`" + " ".join(r.get("command", [])) + "`",
        }
        for r in records
    ]


def rebuild_report(out: str | Path) -> Path:
    """Write ``out/report.md`` from ``out/records/`` and the report files of each part's folder;
    return its path. Needs nothing else (no model, no data, no rerun).

    The head says which commit(s), machine(s) and library versions produced the parts, then the
    paper's claims judged from the parts' files (:func:`~.claims.claims_table`), the parts and
    their wall times; each finished part's own report follows, its figures linked in its folder.
    """
    out = Path(out)
    records = read_records(out)
    commits = sorted({_commit(r.get("code")) for r in records})
    machines = sorted({_machine(r.get("machine") or {}) for r in records})
    presets = sorted({r["settings"]["preset"] for r in records})
    total = sum(wall_time(r) for r in records)
    head = [
        f"# multiequi reproduction: the {', '.join(f'`{p}`' for p in presets)} preset",
        "",
        "Rebuilt by `multiequi reproduce report` from `records/` and each part's own report "
        "(every number below comes from the run named in its part's record).",
        "",
        markdown_table(
            [
                {
                    "": "commit",
                    "value": commits[0] if len(commits) == 1 else "MIXED: " + "; ".join(commits),
                },
                {"": "machine", "value": "; ".join(machines)},
                {"": "library versions", "value": _versions(records)},
                {"": "wall time of the parts", "value": _minutes(total)},
            ]
        ),
        "",
        "## The paper's claims",
        "",
        "Each claim of the paper (experiments.md), the numbers of this reproduction that bear on it, and a verdict "
        "by the rule in its note (stand-ins named there). Verdicts from the quick preset's single seeds and short "
        "budgets are weak; `not run`: the part's files are not there.",
        "",
        claims_markdown(claims_table(out)),
        "",
        "## Parts",
        "",
        markdown_table(part_rows(records)),
    ]
    body: list[str] = []
    for r in records:
        folder = r.get("folder", r["part"])
        body += ["", f"## {r.get('title', r['part'])}", ""]
        if r.get("status") != "finished":
            body.append(f"Not finished ({r.get('status', '?')}): rerun `multiequi reproduce` to resume it.")
            continue
        page = r.get("page")
        body.append(f"Part `{r['part']}`, {_part_time(r)}" + (f"; its page: `{page}`." if page else "."))
        for name in r.get("reports", []):
            path = out / folder / name
            if not path.is_file():
                body += ["", f"(`{folder}/{name}` is missing: rerun the part's command to rebuild it.)"]
                continue
            body += ["", _included(path.read_text(encoding="utf-8").strip(), folder)]
    return atomic_write_text(out / "report.md", "\n".join(head + body) + "\n")
