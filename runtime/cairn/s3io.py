"""S3IOManager: op outputs as objects in an S3 bucket (AWS S3, SeaweedFS, MinIO...).

It implements the `cairn.io.IOManager` protocol. A key is the object key relative to the manager's
prefix. Values are serialized by `cairn.io.serialize` and streamed to S3 without ever holding the
whole serialized value in memory: the bytes go through a writer that keeps at most one part
(`part_size`, 8 MiB by default) and uploads each full part with a multipart upload, completed only
once serialization finished, so a partly stored value is never visible under its key. A value
smaller than one part is sent with a single PUT. If serialization or an upload fails, the multipart
upload is aborted (S3 would otherwise keep, and bill, its parts) and the error is re-raised.

`open_storage` is the one opener of a Job's storage from its Secret's data (the operator, the UI and the
CLI use it; `S3IOManager.from_env` is it over the environment), `locate` and `bucket_of` say where it is.

boto3 is an optional dependency (the `s3` extra); it is imported only when a client is created.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, cast

from cairn.errors import CairnError
from cairn.io import HashingWriter, StoredOutput, deserialize, serialize

log = logging.getLogger(__name__)

DEFAULT_PART_SIZE = 8 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum size of every part but the last
MAX_PARTS = 10_000  # S3's maximum number of parts of one upload
#: The keys of a storage Secret (and of the environment of a step pod, which gets them from it).
BUCKET_KEY = "CAIRN_S3_BUCKET"
ENDPOINT_KEY = "AWS_ENDPOINT_URL"
ACCESS_KEY_ID_KEY = "AWS_ACCESS_KEY_ID"
SECRET_ACCESS_KEY_KEY = "AWS_SECRET_ACCESS_KEY"
REGION_KEY = "AWS_REGION"
DEFAULT_REGION = "us-east-1"
#: A Job's key prefix when its spec.storage names none (models.Storage.prefix).
DEFAULT_PREFIX = "cairn"

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def _error_code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ClientError ("NoSuchKey", "404"...), None for other errors."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def make_client(endpoint_url: str | None = None, **kwargs: Any) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise CairnError("S3 storage needs boto3: install cairn[s3]") from exc
    return boto3.client("s3", endpoint_url=endpoint_url, config=Config(s3={"addressing_style": "path"}), **kwargs)


class _MultipartWriter:
    """A write-only file object that uploads what is written to it as one S3 object.

    It buffers at most `part_size` bytes. The multipart upload is created when a first full part is
    ready to go; `close` uploads the last part and completes it, or, when everything fits in one
    part, sends the whole object with a single put_object. `abort` drops an unfinished upload.
    """

    def __init__(self, client: Any, bucket: str, key: str, part_size: int) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.part_size = part_size
        self.upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._buf = bytearray()
        self._closed = False
        self.etag: str | None = None

    def write(self, data: bytes) -> int:
        if self._closed:
            raise ValueError("write to a closed S3 upload")
        view = memoryview(data).cast("B")
        written = len(view)
        while view:
            # A full buffer is sent only once more data comes, so that close() always has the last
            # part in hand: a value of exactly one part is then a plain put_object.
            if len(self._buf) >= self.part_size:
                self._upload_part()
            room = self.part_size - len(self._buf)
            self._buf += view[:room]
            view = view[room:]
        return written

    def _upload_part(self) -> None:
        if self.upload_id is None:
            created = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)
            self.upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise CairnError(
                f"s3://{self.bucket}/{self.key}: the value needs more than {MAX_PARTS} parts of "
                f"{self.part_size} bytes; use a larger part_size"
            )
        resp = self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=self._buf
        )
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"]})
        self._buf = bytearray()  # a new buffer: the sent one is never changed (botocore may resend it)

    def close(self) -> None:
        """Finish the object: it becomes visible under its key only now."""
        if self._closed:
            return
        if self.upload_id is None:
            resp = self.client.put_object(Bucket=self.bucket, Key=self.key, Body=self._buf)
        else:
            if self._buf:
                self._upload_part()
            resp = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self._parts}
            )
        self.etag = str(resp.get("ETag", "")).strip('"') or None
        self._buf = bytearray()
        self._closed = True

    def abort(self) -> None:
        """Drop the unfinished upload and its parts (best effort: the caller re-raises its own error)."""
        self._closed = True
        self._buf = bytearray()
        if self.upload_id is None:
            return
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        except Exception:
            log.warning(
                "could not abort the multipart upload %s of s3://%s/%s; its parts stay until a lifecycle rule "
                "removes them",
                self.upload_id,
                self.bucket,
                self.key,
                exc_info=True,
            )


def object_key(prefix: str, key: str) -> str:
    """The object key of an output stored under `prefix` (both stripped of "/", the prefix left out
    when empty): the one join of storage keys, also used by the operator for the uri in a Run's status."""
    prefix, key = prefix.strip("/"), key.strip("/")
    return f"{prefix}/{key}" if prefix else key


class S3IOManager:
    """Outputs as objects ``s3://<bucket>/[<prefix>/]<key>``."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: Any = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        if not bucket:
            raise CairnError("S3IOManager needs a bucket name")
        if part_size < MIN_PART_SIZE:
            raise CairnError(f"part_size must be at least {MIN_PART_SIZE} bytes (5 MiB, S3's minimum), got {part_size}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = part_size
        self.client: Any = client if client is not None else make_client(endpoint_url)

    @classmethod
    def from_env(cls, prefix: str = "") -> S3IOManager:
        """A manager configured by AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
        AWS_REGION (default us-east-1) and CAIRN_S3_BUCKET (required): `open_storage` of the environment."""
        if not os.environ.get(BUCKET_KEY, "").strip():
            raise NoBucket(
                f"{BUCKET_KEY} is not set: set it to the bucket where outputs are stored "
                "(`cairn dev up` writes it, with the AWS_* variables, to <dir>/env)"
            )
        return open_storage(os.environ, prefix=prefix)

    def object_key(self, key: str) -> str:
        return object_key(self.prefix, key)

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def store(self, key: str, value: Any, fmt: str = "pickle") -> StoredOutput:
        writer = _MultipartWriter(self.client, self.bucket, self.object_key(key), self.part_size)
        try:
            hashing = HashingWriter(cast(IO[bytes], writer))
            serialize(value, fmt, hashing)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        return StoredOutput(key=key, size=hashing.size, sha256=hashing.sha256, etag=writer.etag)

    def _body(self, key: str) -> Any:
        """The object's streaming body; a missing object is a CairnError naming where it was looked for."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))["Body"]
        except Exception as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise CairnError(f"stored output {key} is missing (looked for {self.describe(key)})") from exc
            raise

    def load(self, key: str, fmt: str = "pickle") -> Any:
        body = self._body(key)
        try:
            return deserialize(body, fmt)
        finally:
            with contextlib.suppress(Exception):
                body.close()

    def load_into(self, key: str, sink: IO[bytes]) -> None:
        """Stream the object to `sink` in 1 MiB chunks (memory stays flat whatever its size)."""
        body = self._body(key)
        try:
            for chunk in body.iter_chunks(1 << 20):
                sink.write(chunk)
        finally:
            with contextlib.suppress(Exception):
                body.close()

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except Exception as exc:
            if _error_code(exc) in _MISSING_CODES:
                return False
            raise
        return True


class NoBucket(CairnError):
    """Neither the Job (spec.storage.bucket) nor its storage Secret (CAIRN_S3_BUCKET) names a bucket."""


@dataclass(frozen=True)
class StorageLocation:
    """Where a Job's outputs are: bucket, key prefix and endpoint (None: the S3 client's default)."""

    bucket: str
    prefix: str
    endpoint: str | None


def bucket_of(secret: Mapping[str, str], bucket: str | None = None, *, secret_name: str | None = None) -> str:
    """A Job's bucket: `bucket` (its spec.storage.bucket), else the Secret's CAIRN_S3_BUCKET; NoBucket when
    neither names one, saying where to set it (`secret_name`: the Secret's name, None for the environment)."""
    found = bucket or (secret.get(BUCKET_KEY) or "").strip()
    if not found:
        where = f"Secret {secret_name}" if secret_name else "the environment"
        raise NoBucket(f"no bucket: set spec.storage.bucket or {BUCKET_KEY} in {where}")
    return found


def locate(
    secret: Mapping[str, str],
    *,
    bucket: str | None = None,
    prefix: str = "",
    endpoint: str | None = None,
    secret_name: str | None = None,
) -> StorageLocation:
    """Where a Job's storage is: its spec.storage fields (`bucket`, `prefix`, `endpoint`), the Secret's
    CAIRN_S3_BUCKET and AWS_ENDPOINT_URL where they are not set. NoBucket without a bucket."""
    return StorageLocation(
        bucket=bucket_of(secret, bucket, secret_name=secret_name),
        prefix=prefix,
        endpoint=endpoint or secret.get(ENDPOINT_KEY) or None,
    )


def open_storage(
    secret: Mapping[str, str],
    *,
    bucket: str | None = None,
    prefix: str = "",
    endpoint: str | None = None,
    secret_name: str | None = None,
    client_factory: Callable[..., Any] = make_client,
) -> S3IOManager:
    """The one opener of a Job's storage: an S3IOManager at `locate(...)`, with the credentials of the
    storage Secret's data `secret` (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, default
    us-east-1; a missing key leaves it to the S3 client's own chain). The operator, the UI and the CLI
    open storage with it; `client_factory(endpoint, **credentials)` makes the S3 client (tests pass a fake)."""
    where = locate(secret, bucket=bucket, prefix=prefix, endpoint=endpoint, secret_name=secret_name)
    client = client_factory(
        where.endpoint,
        aws_access_key_id=secret.get(ACCESS_KEY_ID_KEY) or None,
        aws_secret_access_key=secret.get(SECRET_ACCESS_KEY_KEY) or None,
        region_name=secret.get(REGION_KEY) or DEFAULT_REGION,
    )
    return S3IOManager(bucket=where.bucket, prefix=where.prefix, endpoint_url=where.endpoint, client=client)
