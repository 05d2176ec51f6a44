"""`cairn.s3io.open_storage`, the one opener of a Job's storage from its Secret's data: where it is (the
Job's fields first, then the Secret's), the credentials the S3 client gets, and the error without a bucket."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.errors import CairnError
from cairn.s3io import NoBucket, S3IOManager, StorageLocation, bucket_of, locate, open_storage

SECRET = {
    "AWS_ACCESS_KEY_ID": "AKID",
    "AWS_SECRET_ACCESS_KEY": "SECRET",
    "AWS_ENDPOINT_URL": "http://secret-s3:8333",
    "CAIRN_S3_BUCKET": "from-secret",
}


@pytest.mark.parametrize(
    ("secret", "fields", "where"),
    [
        (SECRET, {}, StorageLocation("from-secret", "", "http://secret-s3:8333")),
        (
            SECRET,
            {"bucket": "from-job", "prefix": "p/q", "endpoint": "https://job-s3"},
            StorageLocation("from-job", "p/q", "https://job-s3"),
        ),
        ({"CAIRN_S3_BUCKET": " padded "}, {"prefix": "cairn"}, StorageLocation("padded", "cairn", None)),
        ({"CAIRN_S3_BUCKET": "b", "AWS_ENDPOINT_URL": ""}, {}, StorageLocation("b", "", None)),
    ],
)
def test_the_jobs_fields_win_over_the_secrets(
    secret: dict[str, str], fields: dict[str, Any], where: StorageLocation
) -> None:
    assert locate(secret, **fields) == where


@pytest.mark.parametrize(
    ("secret_name", "message"),
    [
        ("cairn-s3", "no bucket: set spec.storage.bucket or CAIRN_S3_BUCKET in Secret cairn-s3"),
        (None, "no bucket: set spec.storage.bucket or CAIRN_S3_BUCKET in the environment"),
    ],
)
def test_without_a_bucket_the_error_says_where_to_set_one(secret_name: str | None, message: str) -> None:
    with pytest.raises(NoBucket) as caught:
        bucket_of({"CAIRN_S3_BUCKET": "  "}, None, secret_name=secret_name)
    assert str(caught.value) == message and isinstance(caught.value, CairnError)


class Clients:
    def __init__(self) -> None:
        self.made: list[tuple[str | None, dict[str, Any]]] = []

    def __call__(self, endpoint: str | None, **kwargs: Any) -> object:
        self.made.append((endpoint, kwargs))
        return object()


@pytest.mark.parametrize(
    ("secret", "credentials"),
    [
        (SECRET, {"aws_access_key_id": "AKID", "aws_secret_access_key": "SECRET", "region_name": "us-east-1"}),
        (
            {"CAIRN_S3_BUCKET": "b", "AWS_REGION": "eu-west-3", "AWS_ACCESS_KEY_ID": ""},
            {"aws_access_key_id": None, "aws_secret_access_key": None, "region_name": "eu-west-3"},
        ),
    ],
)
def test_the_client_gets_the_secrets_credentials(secret: dict[str, str], credentials: dict[str, Any]) -> None:
    clients = Clients()
    io = open_storage(secret, prefix="/cairn/", client_factory=clients)
    assert isinstance(io, S3IOManager)
    assert clients.made == [(secret.get("AWS_ENDPOINT_URL"), credentials)]
    assert io.describe("ns/r/s/result") == f"s3://{secret['CAIRN_S3_BUCKET']}/cairn/ns/r/s/result"


def test_no_client_is_made_without_a_bucket() -> None:
    clients = Clients()
    with pytest.raises(NoBucket, match="in Secret s"):
        open_storage({}, secret_name="s", client_factory=clients)
    assert clients.made == []


def test_from_env_is_open_storage_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SECRET.items():
        monkeypatch.setenv(k, v)
    io = S3IOManager.from_env(prefix="px")
    assert (io.bucket, io.prefix) == ("from-secret", "px")
    monkeypatch.delenv("CAIRN_S3_BUCKET")
    with pytest.raises(CairnError, match="CAIRN_S3_BUCKET is not set"):
        S3IOManager.from_env()
