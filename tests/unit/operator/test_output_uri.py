"""The full S3 location (`bucket`, `uri`) recorded next to each output's relative `key`."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.s3io import S3IOManager
from cairn_operator.resources import add_locations, needs_locations, object_uri, step_output_locations

KEY = "ns/run.abcd1234/step/out"


@pytest.mark.parametrize(
    ("bucket", "prefix", "key", "uri"),
    [
        ("b", "cairn", KEY, f"s3://b/cairn/{KEY}"),
        ("b", "cairn/", KEY, f"s3://b/cairn/{KEY}"),
        ("b", "/cairn/", KEY, f"s3://b/cairn/{KEY}"),
        ("b", "team/cairn", KEY, f"s3://b/team/cairn/{KEY}"),
        ("b", "team/cairn/", KEY, f"s3://b/team/cairn/{KEY}"),
        ("b", "", KEY, f"s3://b/{KEY}"),
        ("b", "/", KEY, f"s3://b/{KEY}"),
        ("my-bucket", "cairn", f"/{KEY}", f"s3://my-bucket/cairn/{KEY}"),
    ],
)
def test_object_uri(bucket: str, prefix: str, key: str, uri: str) -> None:
    assert object_uri(bucket, prefix, key) == uri
    # The same object key as the one the step's S3 IO manager writes.
    manager = S3IOManager(bucket=bucket, prefix=prefix, client=object())
    assert uri == manager.describe(key) == f"s3://{bucket}/{manager.object_key(key)}"


def steps() -> dict[str, Any]:
    return {
        "a": {"phase": "Succeeded", "outputs": {"result": {"key": KEY, "size": 3, "etag": "e"}}},
        "b": {"phase": "Running"},
        "c": {"phase": "Reused", "outputs": {"x": {"key": "ns/p.11112222/c/x", "etag": "f"}}},
    }


def test_add_locations_keeps_the_key() -> None:
    st = steps()
    assert needs_locations(st)
    add_locations(step_output_locations(st), "bkt", "cairn/")
    assert st["a"]["outputs"]["result"] == {
        "key": KEY,
        "size": 3,
        "etag": "e",
        "bucket": "bkt",
        "uri": f"s3://bkt/cairn/{KEY}",
    }
    assert st["c"]["outputs"]["x"]["uri"] == "s3://bkt/cairn/ns/p.11112222/c/x"
    assert st["c"]["outputs"]["x"]["key"] == "ns/p.11112222/c/x"
    assert not needs_locations(st)


@pytest.mark.parametrize("bucket", [None, ""])
def test_unknown_bucket_adds_nothing(bucket: str | None) -> None:
    st = steps()
    add_locations(step_output_locations(st), bucket, "cairn")
    assert st == steps()


def test_plan_entries() -> None:
    reused = [{"step": "a", "output": "o", "sourceRun": "p", "key": KEY, "etag": None}]
    add_locations(reused, "bkt", "")
    assert reused[0]["uri"] == f"s3://bkt/{KEY}" and reused[0]["bucket"] == "bkt"
