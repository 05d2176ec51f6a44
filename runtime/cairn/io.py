"""IO managers: where op outputs are stored and how they are read back.

An output lives at a *key*, ``[<prefix>/]<namespace>/<run_id>/<step>/<output>``; a run that reuses an
output of an ancestor reads it at the ancestor's key, so nothing is ever copied. Values are
serialized per output: ``pickle`` (default), ``json`` or ``bytes`` (the value must be bytes).

An output is recorded by the executor only after `store` returned, i.e. after the write (or upload)
completed; a partly written value is never visible under its key (temporary file + rename on a
filesystem, multipart upload completed last on S3).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from cairn.errors import CairnError

FORMATS = ("pickle", "json", "bytes")


@dataclass(frozen=True)
class StoredOutput:
    """What storing an output produced: its key, size in bytes, sha256 and (on S3) ETag."""

    key: str
    size: int
    sha256: str
    etag: str | None = None  # the object store's ETag, where there is one


def output_key(run_id: str, step: str, output: str, namespace: str = "local", prefix: str = "") -> str:
    parts = [p.strip("/") for p in (prefix, namespace, run_id, step, output) if p and p.strip("/")]
    return "/".join(parts)


class HashingWriter:
    """A write-only file object that counts and hashes what passes through it to `sink`."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.size = 0
        self._hash = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sink.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


@dataclass(frozen=True)
class FileSource:
    """A file whose bytes are an output's value (format "bytes"): streamed to storage in chunks, never
    read into memory whole (a command step's output file of any size)."""

    path: Path


CHUNK = 1 << 20


def serialize(value: Any, fmt: str, out: Any) -> None:
    """Write value to the file-like `out` in format `fmt`, streaming (never a second copy in memory)."""
    if fmt == "pickle":
        pickle.dump(value, out, protocol=pickle.HIGHEST_PROTOCOL)
    elif fmt == "json":
        out.write(json.dumps(value).encode())
    elif fmt == "bytes" and isinstance(value, FileSource):
        with open(value.path, "rb") as f:
            shutil.copyfileobj(f, out, CHUNK)
    elif fmt == "bytes":
        if not isinstance(value, bytes | bytearray | memoryview):
            raise CairnError(f"an output in format 'bytes' must be bytes, got {type(value).__name__}")
        out.write(bytes(value) if isinstance(value, memoryview) else value)
    else:
        raise CairnError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")


def deserialize(stream: Any, fmt: str) -> Any:
    if fmt == "pickle":
        return pickle.load(stream)
    if fmt == "json":
        return json.loads(stream.read())
    if fmt == "bytes":
        return stream.read()
    raise CairnError(f"unknown output format {fmt!r}; use one of {', '.join(FORMATS)}")


class IOManager(Protocol):
    """Stores and loads op outputs by key."""

    def store(self, key: str, value: Any, fmt: str = "pickle") -> StoredOutput: ...

    def load(self, key: str, fmt: str = "pickle") -> Any: ...

    def exists(self, key: str) -> bool: ...

    def load_into(self, key: str, sink: IO[bytes]) -> None:
        """Copy the stored bytes of `key` to `sink` in chunks (a download of any size, in little memory)."""
        ...

    def describe(self, key: str) -> str:
        """Where a key lives, for error messages (a path or an s3:// URL)."""
        ...


class FilesystemIOManager:
    """Outputs as files under a root directory (the default, in the instance's storage dir)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key

    def describe(self, key: str) -> str:
        return str(self.path(key))

    def store(self, key: str, value: Any, fmt: str = "pickle") -> StoredOutput:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                w = HashingWriter(f)
                serialize(value, fmt, w)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredOutput(key=key, size=w.size, sha256=w.sha256)

    def load(self, key: str, fmt: str = "pickle") -> Any:
        try:
            f = self.path(key).open("rb")
        except FileNotFoundError as exc:
            raise CairnError(f"stored output {key} is missing (looked for {self.path(key)})") from exc
        with f:
            return deserialize(f, fmt)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def load_into(self, key: str, sink: IO[bytes]) -> None:
        try:
            f = self.path(key).open("rb")
        except FileNotFoundError as exc:
            raise CairnError(f"stored output {key} is missing (looked for {self.path(key)})") from exc
        with f:
            shutil.copyfileobj(f, sink, CHUNK)
