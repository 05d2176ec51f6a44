"""The filesystem IO manager: formats, atomic writes, clear errors."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from cairn.errors import CairnError
from cairn.io import FilesystemIOManager, output_key


@pytest.mark.parametrize(
    ("value", "fmt", "raw"),
    [
        ({"a": [1, 2]}, "pickle", pickle.dumps({"a": [1, 2]}, protocol=pickle.HIGHEST_PROTOCOL)),
        ({"a": [1, 2]}, "json", json.dumps({"a": [1, 2]}).encode()),
        (b"\x00raw", "bytes", b"\x00raw"),
    ],
)
def test_round_trip_size_and_hash(tmp_path: Path, value: Any, fmt: str, raw: bytes) -> None:
    io = FilesystemIOManager(tmp_path)
    stored = io.store("ns/run/step/out", value, fmt)
    assert (stored.size, stored.sha256) == (len(raw), hashlib.sha256(raw).hexdigest())
    assert (tmp_path / "ns/run/step/out").read_bytes() == raw
    assert io.load("ns/run/step/out", fmt) == value
    assert io.exists("ns/run/step/out") and not io.exists("ns/run/step/other")


class Unpicklable:
    def __reduce__(self) -> Any:
        raise RuntimeError("cannot pickle me")


def test_a_failed_write_leaves_no_file_and_keeps_the_previous_value(tmp_path: Path) -> None:
    io = FilesystemIOManager(tmp_path)
    io.store("k", "old")
    with pytest.raises(RuntimeError, match="cannot pickle me"):
        io.store("k", [b"x" * 1000, Unpicklable()])
    assert io.load("k") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temporary file left behind


def test_errors_name_what_is_wrong(tmp_path: Path) -> None:
    io = FilesystemIOManager(tmp_path)
    with pytest.raises(CairnError, match=f"stored output gone/key is missing \\(looked for {tmp_path}/gone/key\\)"):
        io.load("gone/key")
    with pytest.raises(CairnError, match="format 'bytes' must be bytes, got str"):
        io.store("k", "text", "bytes")
    with pytest.raises(CairnError, match="unknown output format 'yaml'"):
        io.store("k", 1, "yaml")
    assert not io.exists("k")


def test_output_keys() -> None:
    assert output_key("r1", "s", "o") == "local/r1/s/o"
    assert output_key("r1", "s", "o", namespace="team", prefix="/pfx/") == "pfx/team/r1/s/o"


def test_a_file_output_is_streamed_in_and_out(tmp_path: Path) -> None:
    """A command step's output file is stored from the file in chunks and an input is copied out the same
    way (never whole in memory): same bytes, size and sha256 as the file."""
    import hashlib
    import io as _io

    from cairn.io import CHUNK, FileSource, FilesystemIOManager

    data = bytes(range(256)) * (3 * CHUNK // 256 + 7)  # a few chunks and a ragged end
    src = tmp_path / "out.bin"
    src.write_bytes(data)
    io = FilesystemIOManager(tmp_path / "store")
    stored = io.store("ns/run/step/result", FileSource(src), "bytes")
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    sink = _io.BytesIO()
    io.load_into("ns/run/step/result", sink)
    assert sink.getvalue() == data
