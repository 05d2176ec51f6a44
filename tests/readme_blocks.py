"""The README's runnable shell blocks, for the test that runs them (tests/e2e/test_readme.py).

Convention: a fenced block whose info string is `sh` is run, in document order, all in one shell (a
user's terminal session: `. .venv/bin/activate` and `eval "$(cairn dev env)"` carry over); a block
`sh teardown` is run after them, in a shell of its own, also when a block failed. Every other block
(`text` for synopses with placeholders, `python`, `yaml`, `dockerfile`, ...) is documentation only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
#: An opening fence (CommonMark: up to 3 spaces, then at least 3 backticks or tildes) and its info string.
FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: the line of its opening fence (1-based), its info string's words, its text."""

    line: int
    info: tuple[str, ...]
    text: str

    @property
    def runnable(self) -> bool:
        return self.info[:1] == ("sh",)

    @property
    def teardown(self) -> bool:
        return self.runnable and "teardown" in self.info[1:]


def blocks(markdown: str) -> list[Block]:
    """Every fenced block of `markdown`, in order. A block closes at a fence of the same character at least
    as long as its opening one, or at the end of the document."""
    out: list[Block] = []
    lines = markdown.split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        fence, start = m["fence"], i
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        i += 1
        while i < len(lines) and not closing.match(lines[i]):
            i += 1
        out.append(Block(start + 1, tuple(m["info"].split()), "\n".join(lines[start + 1 : i]) + "\n"))
        i += 1
    return out


def runnable(markdown: str) -> tuple[list[Block], list[Block]]:
    """The `sh` blocks to run in order, and the `sh teardown` blocks to run after them."""
    found = [b for b in blocks(markdown) if b.runnable]
    return [b for b in found if not b.teardown], [b for b in found if b.teardown]


def script(parts: list[Block], source: str = "README.md") -> str:
    """One shell script of `parts`, each announced on stderr with the line it starts at."""
    return "".join(f"printf '\\n>>> {source}:{b.line}\\n' >&2\n{b.text}" for b in parts)
