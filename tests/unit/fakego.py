"""A fake `go` on PATH for the tests of the Go-module builders (helm, kstatus): each test file gives its
own script; the calls it receives are recorded one per line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """Put `script` first on PATH as `go`; returns the file its calls are recorded in ($FAKE_GO_CALLS)."""
    bindir = tmp_path / "gobin"
    bindir.mkdir()
    go = bindir / "go"
    go.write_text(script)
    go.chmod(go.stat().st_mode | stat.S_IEXEC)
    calls = tmp_path / "calls"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    monkeypatch.setenv("FAKE_GO_CALLS", str(calls))
    monkeypatch.delenv("FAKE_GO_FAIL", raising=False)
    return calls


def calls(path: Path) -> list[str]:
    """The recorded calls, one per line (none yet: empty)."""
    return path.read_text().splitlines() if path.exists() else []
