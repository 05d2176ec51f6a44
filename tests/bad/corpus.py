"""The bad-input corpus in tests/bad/: its index (cases.yaml) read into typed cases.

Each case names one manifest (one object) and its expected outcome: refused at apply with a message, or,
with the operator running, a phase and a condition reason and message. See the header of cases.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent
INDEX = ROOT / "cases.yaml"
KINDS = {"Job": "jobs", "Run": "runs", "Reexecution": "reexecutions"}
EXPECT_KEYS = {"refused", "phase", "reason", "message", "condition", "steps", "event", "timeout"}


@dataclass(frozen=True)
class Setup:
    """A manifest applied before the case, and the phase to wait for (none: do not wait)."""

    file: str
    phase: str | None = None


@dataclass(frozen=True)
class Case:
    """One manifest of the corpus and what must happen to it."""

    file: str
    expect: dict[str, Any]
    setup: tuple[Setup, ...] = ()
    spec_valid: bool = False
    xfail: str | None = None  # an operator bug: the outcome that SHOULD happen does not (yet); why
    doc: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def id(self) -> str:
        return self.file.removesuffix(".yaml")

    @property
    def refused(self) -> str | None:
        """The text the API server's refusal must contain; None for an outcome case."""
        value = self.expect.get("refused")
        return None if value is None else str(value)

    @property
    def kind(self) -> str:
        return str(self.doc["kind"])

    @property
    def plural(self) -> str:
        return KINDS[self.kind]

    @property
    def name(self) -> str:
        return str(self.doc["metadata"]["name"])


def load_doc(file: str) -> dict[str, Any]:
    """The one object of a corpus manifest; an error when the file holds none or several."""
    docs = [d for d in yaml.safe_load_all((ROOT / file).read_text()) if d is not None]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ValueError(f"tests/bad/{file}: expected exactly one object, found {len(docs)}")
    doc: dict[str, Any] = docs[0]
    if doc.get("kind") not in KINDS:
        raise ValueError(f"tests/bad/{file}: kind {doc.get('kind')!r} is not one of {sorted(KINDS)}")
    return doc


def _setup(entry: Any) -> Setup:
    if isinstance(entry, str):
        return Setup(entry)
    return Setup(str(entry["file"]), entry.get("phase"))


def load_cases() -> list[Case]:
    """Every case of cases.yaml, its manifest loaded; malformed entries raise ValueError."""
    index = yaml.safe_load(INDEX.read_text())
    cases = []
    for entry in index["cases"]:
        expect = dict(entry["expect"])
        unknown = set(expect) - EXPECT_KEYS
        if unknown:
            raise ValueError(f"{entry['file']}: unknown expect keys {sorted(unknown)}")
        if ("refused" in expect) == ("phase" in expect):
            raise ValueError(f"{entry['file']}: expect needs exactly one of refused and phase")
        if not isinstance(expect.get("steps", {}), dict):
            raise ValueError(f"{entry['file']}: expect.steps maps a step's name to text its message contains")
        cases.append(
            Case(
                file=str(entry["file"]),
                expect=expect,
                setup=tuple(_setup(s) for s in entry.get("setup") or ()),
                spec_valid=bool(entry.get("specValid", False)),
                xfail=entry.get("xfail"),
                doc=load_doc(str(entry["file"])),
            )
        )
    return cases


def manifest_files() -> set[str]:
    """Every manifest under tests/bad/ (relative paths), indexed or not."""
    return {str(p.relative_to(ROOT)) for p in ROOT.glob("*/*.yaml")}
