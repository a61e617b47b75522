"""bench/RESULTS.md: a section per benchmark (its figures, its baseline, its goals), the
machine and the command; rewritten after each benchmark so a failed run keeps what it measured."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass
class Goal:
    what: str
    measured: str
    met: bool | None  # None: not measured (skipped)

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**missed**", None: "skipped"}[self.met]


@dataclass
class Section:
    title: str
    summary: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def markdown(self) -> str:
        out = [f"## {self.title}", ""]
        if self.summary:
            out += [self.summary, ""]
        if self.header:
            out.append("| " + " | ".join(self.header) + " |")
            out.append("|" + "---|" * len(self.header))
            out += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
            out.append("")
        if self.goals:
            out += ["| goal | measured | verdict |", "|---|---|---|"]
            out += [f"| {g.what} | {g.measured} | {g.verdict} |" for g in self.goals]
            out.append("")
        out += [f"- {n}" for n in self.notes]
        if self.notes:
            out.append("")
        out.append(f"_Took {self.seconds:.0f} s._")
        out.append("")
        return "\n".join(out)


def write(path: Path, title: str, intro: str, machine: list[tuple[str, str]], sections: list[Section],
          started: datetime, command: str | None = None) -> None:
    goals = [g for s in sections for g in s.goals]
    lines = [
        f"# {title}",
        "",
        intro,
        "",
        f"- command: `{command or ' '.join(['python', '-m', *_module_argv()])}`",
        f"- date: {started.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC "
        f"(finished {datetime.now(timezone.utc):%H:%M} UTC)",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine],
        "",
    ]
    if goals:
        lines += ["## Goals at a glance", "", "| benchmark | goal | measured | verdict |", "|---|---|---|---|"]
        for s in sections:
            lines += [f"| {s.title} | {g.what} | {g.measured} | {g.verdict} |" for g in s.goals]
        lines.append("")
    lines += [s.markdown() for s in sections]
    path.write_text("\n".join(lines))


def _module_argv() -> list[str]:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = spec.name.removesuffix(".__main__") if spec else "bench"
    return [name, *sys.argv[1:]]
