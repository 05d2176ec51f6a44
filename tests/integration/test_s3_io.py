"""S3IOManager on the session's real SeaweedFS S3 server: round trips, streaming multipart uploads, aborts."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cairn.errors import CairnError
from cairn.io import IOManager
from cairn.s3io import MIN_PART_SIZE, S3IOManager

MiB = 1024 * 1024


class Unpicklable:
    def __getstate__(self) -> Any:
        raise RuntimeError("boom in the middle of serialization")


class RecordingClient:
    """Passes calls through to a real boto3 client and records (operation, body size or None)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, int | None]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            body = kwargs.get("Body")
            self.calls.append((name, None if body is None else len(body)))
            return method(**kwargs)

        return call

    def ops(self) -> list[str]:
        return [op for op, _ in self.calls]


@pytest.fixture
def prefix(s3: Any) -> Iterator[str]:
    """A fresh prefix in the bucket; its objects and any pending multipart upload are removed afterwards."""
    prefix = f"t/{uuid.uuid4().hex}"
    yield prefix
    for upload in pending_uploads(s3, prefix):
        s3.abort_multipart_upload(Bucket=s3.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for obj in s3.list_objects_v2(Bucket=s3.bucket, Prefix=f"{prefix}/").get("Contents", []):
        s3.delete_object(Bucket=s3.bucket, Key=obj["Key"])


@pytest.fixture
def io(s3: Any, prefix: str) -> S3IOManager:
    return S3IOManager(bucket=s3.bucket, prefix=prefix, client=s3)


def pending_uploads(s3: Any, prefix: str) -> list[dict[str, Any]]:
    uploads: list[dict[str, Any]] = s3.list_multipart_uploads(Bucket=s3.bucket, Prefix=prefix).get("Uploads", [])
    return uploads


def test_it_is_an_io_manager(io: S3IOManager, s3: Any, prefix: str) -> None:
    manager: IOManager = io
    assert manager.describe("ns/run/step/out") == f"s3://{s3.bucket}/{prefix}/ns/run/step/out"
    assert S3IOManager(bucket="b", client=s3).describe("/a/b") == "s3://b/a/b"
    assert S3IOManager(bucket="b", prefix="/p/q/", client=s3).describe("a") == "s3://b/p/q/a"


@pytest.mark.parametrize(
    ("fmt", "value", "encoded"),
    [
        ("pickle", {"a": [1, 2.5, "x"], "b": None}, lambda v: pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)),
        ("json", {"a": [1, 2.5, "x"], "b": None}, lambda v: json.dumps(v).encode()),
        ("bytes", b"\x00\x01raw bytes\xff", lambda v: v),
    ],
)
def test_round_trip_with_size_and_sha256_of_the_serialized_bytes(
    io: S3IOManager, s3: Any, prefix: str, fmt: str, value: Any, encoded: Any
) -> None:
    key = f"ns/run/step/{fmt}"
    stored = io.store(key, value, fmt)
    expected = encoded(value)
    assert stored.key == key
    assert stored.size == len(expected)
    assert stored.sha256 == hashlib.sha256(expected).hexdigest()
    assert io.load(key, fmt) == value
    body = s3.get_object(Bucket=s3.bucket, Key=f"{prefix}/{key}")["Body"].read()
    assert body == expected


def test_a_small_value_is_a_single_put(s3: Any, prefix: str) -> None:
    client = RecordingClient(s3)
    io = S3IOManager(bucket=s3.bucket, prefix=prefix, client=client, part_size=MIN_PART_SIZE)
    io.store("small", b"x" * 1000, "bytes")
    io.store("one-part", b"y" * MIN_PART_SIZE, "bytes")  # exactly one part: still a single put
    assert client.calls == [("put_object", 1000), ("put_object", MIN_PART_SIZE)]
    assert io.load("one-part", "bytes") == b"y" * MIN_PART_SIZE


def test_a_large_value_is_streamed_as_a_multipart_upload(s3: Any, prefix: str) -> None:
    client = RecordingClient(s3)
    io = S3IOManager(bucket=s3.bucket, prefix=prefix, client=client, part_size=5 * MiB)
    value = os.urandom(12 * MiB)
    stored = io.store("big", value, "bytes")
    assert stored.size == len(value)
    assert stored.sha256 == hashlib.sha256(value).hexdigest()
    # Parts of exactly part_size each, then the rest: never more than one part held in memory.
    assert client.calls == [
        ("create_multipart_upload", None),
        ("upload_part", 5 * MiB),
        ("upload_part", 5 * MiB),
        ("upload_part", 2 * MiB),
        ("complete_multipart_upload", None),
    ]
    head = s3.head_object(Bucket=s3.bucket, Key=f"{prefix}/big")
    assert "-" in head["ETag"], head["ETag"]  # the multipart ETag form, "<md5 of md5s>-<parts>"
    assert head["ContentLength"] == len(value)
    assert io.load("big", "bytes") == value
    assert pending_uploads(s3, prefix) == []


def test_a_large_pickle_round_trips(s3: Any, prefix: str) -> None:
    io = S3IOManager(bucket=s3.bucket, prefix=prefix, client=s3, part_size=5 * MiB)
    value = {"blob": os.urandom(11 * MiB), "items": list(range(100_000)), "text": "é" * 1000}
    stored = io.store("big.pkl", value)
    expected = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    assert (stored.size, stored.sha256) == (len(expected), hashlib.sha256(expected).hexdigest())
    assert io.load("big.pkl") == value


def test_exists(io: S3IOManager) -> None:
    assert not io.exists("ns/run/step/out")
    io.store("ns/run/step/out", [1, 2, 3])
    assert io.exists("ns/run/step/out")
    assert not io.exists("ns/run/step")  # a "directory" is not an output


def test_exists_propagates_errors_other_than_not_found(dev_cluster: Any, dev_state: Any, s3: Any) -> None:
    import boto3
    from botocore.config import Config

    env = dev_cluster.env(dev_state)
    bad = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key="wrong-secret",
        region_name=env["AWS_REGION"],
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError):
        S3IOManager(bucket=s3.bucket, client=bad).exists("anything")


def test_loading_a_missing_key_names_the_url(io: S3IOManager, s3: Any, prefix: str) -> None:
    with pytest.raises(CairnError, match=f"s3://{s3.bucket}/{prefix}/ns/run/step/missing"):
        io.load("ns/run/step/missing")


def test_a_failure_during_serialization_leaves_no_object_and_no_pending_upload(s3: Any, prefix: str) -> None:
    client = RecordingClient(s3)
    io = S3IOManager(bucket=s3.bucket, prefix=prefix, client=client, part_size=5 * MiB)
    with pytest.raises(RuntimeError, match="boom in the middle"):
        io.store("broken", [os.urandom(6 * MiB), Unpicklable()])
    # At least one part had gone up before the failure, and the upload was aborted.
    assert client.ops() == ["create_multipart_upload", "upload_part", "abort_multipart_upload"]
    assert not io.exists("broken")
    assert s3.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("KeyCount", 0) == 0
    assert pending_uploads(s3, prefix) == []


def test_a_small_failed_value_sends_nothing(s3: Any, prefix: str) -> None:
    client = RecordingClient(s3)
    io = S3IOManager(bucket=s3.bucket, prefix=prefix, client=client)
    with pytest.raises(RuntimeError):
        io.store("broken", [b"abc", Unpicklable()])
    assert client.calls == []
    assert not io.exists("broken")


def test_format_bytes_needs_bytes(io: S3IOManager) -> None:
    with pytest.raises(CairnError, match="must be bytes, got str"):
        io.store("not-bytes", "a string", "bytes")
    assert not io.exists("not-bytes")
    assert io.store("view", memoryview(b"abc"), "bytes").size == 3
    assert io.load("view", "bytes") == b"abc"


def test_unknown_format(io: S3IOManager) -> None:
    with pytest.raises(CairnError, match="unknown output format"):
        io.store("x", 1, "yaml")


def test_part_size_below_the_s3_minimum_is_refused(s3: Any) -> None:
    with pytest.raises(CairnError, match="part_size"):
        S3IOManager(bucket=s3.bucket, client=s3, part_size=1024)


def test_from_env(monkeypatch: pytest.MonkeyPatch, dev_cluster: Any, dev_state: Any, s3: Any, prefix: str) -> None:
    for name, value in dev_cluster.env(dev_state).items():
        monkeypatch.setenv(name, value)
    io = S3IOManager.from_env(prefix=prefix)
    assert io.bucket == s3.bucket
    assert io.describe("k") == f"s3://{s3.bucket}/{prefix}/k"
    io.store("k", {"from": "env"}, "json")
    assert io.load("k", "json") == {"from": "env"}
    assert json.loads(s3.get_object(Bucket=s3.bucket, Key=f"{prefix}/k")["Body"].read()) == {"from": "env"}


def test_from_env_without_a_bucket(monkeypatch: pytest.MonkeyPatch, dev_cluster: Any, dev_state: Any) -> None:
    for name, value in dev_cluster.env(dev_state).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CAIRN_S3_BUCKET")
    with pytest.raises(CairnError, match="CAIRN_S3_BUCKET is not set"):
        S3IOManager.from_env()


def test_a_file_output_is_streamed_to_s3_and_back(s3: Any, prefix: str, tmp_path: Path) -> None:
    """Multipart from the file, part by part, and a download in chunks: a command step's file output of
    any size never sits whole in memory."""
    import hashlib
    import io as _io

    from cairn.io import FileSource

    data = os.urandom(3 * 5 * 1024 * 1024 + 123)  # three 5 MiB parts and a ragged end
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    io = S3IOManager(bucket=s3.bucket, prefix=prefix, client=s3, part_size=5 * 1024 * 1024)
    stored = io.store("k/big", FileSource(src), "bytes")
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert stored.etag is not None and stored.etag.endswith("-4")  # a multipart upload of 4 parts
    sink = _io.BytesIO()
    io.load_into("k/big", sink)
    assert sink.getvalue() == data
