"""The storage of a Job's outputs as the operator opens it: the runtime's S3 IO manager with the
credentials of the Job's Secret, read at most once per `ttl` seconds per Secret and opened once per
Secret version (building a boto3 client is slow)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cairn_operator.graph import InvalidJob
from cairn_operator.models import JobSpec


class SecretReader(Protocol):
    def read_secret_versioned(self, namespace: str, name: str) -> tuple[str, dict[str, str]]: ...


def storage_bucket(spec: JobSpec, secret: Mapping[str, str]) -> str | None:
    """A Job's bucket: spec.storage.bucket, else its storage Secret's CAIRN_S3_BUCKET (None: neither)."""
    return spec.storage.bucket or secret.get("CAIRN_S3_BUCKET") or None


def open_s3(spec: JobSpec, secret: Mapping[str, str]) -> Any:
    """The runtime's S3 IO manager for a Job's storage with its Secret's credentials."""
    from cairn.s3io import S3IOManager, make_client

    endpoint = spec.storage.endpoint or secret.get("AWS_ENDPOINT_URL") or None
    bucket = storage_bucket(spec, secret)
    if not bucket:
        raise InvalidJob(
            f"no bucket: set spec.storage.bucket or CAIRN_S3_BUCKET in Secret {spec.storage.secretRef.name}"
        )
    client = make_client(
        endpoint,
        aws_access_key_id=secret.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=secret.get("AWS_SECRET_ACCESS_KEY"),
        region_name=secret.get("AWS_REGION") or "us-east-1",
    )
    return S3IOManager(bucket=bucket, prefix=spec.storage.prefix, endpoint_url=endpoint, client=client)


class StorageFactory:
    """Opens a Job's storage (`open`) and says its bucket (`bucket`), from its Secret, cached."""

    def __init__(
        self,
        secrets: SecretReader,
        clock: Callable[[], float],
        ttl: float = 5.0,
        opener: Callable[[JobSpec, Mapping[str, str]], Any] = open_s3,
        limit: int = 256,
    ) -> None:
        self.secrets, self.clock, self.ttl, self.opener, self.limit = secrets, clock, ttl, opener, limit
        self._lock = threading.Lock()
        self._read: dict[tuple[str, str], tuple[float, str, dict[str, str]]] = {}  # -> (at, version, data)
        self._opened: dict[tuple[str, str, str, str], Any] = {}

    def _secret(self, namespace: str, name: str) -> tuple[str, dict[str, str]]:
        now = self.clock()
        with self._lock:
            hit = self._read.get((namespace, name))
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1], hit[2]
        version, data = self.secrets.read_secret_versioned(namespace, name)
        with self._lock:
            if len(self._read) >= self.limit:
                self._read.pop(next(iter(self._read)))
            self._read[(namespace, name)] = (now, version, data)
        return version, data

    def open(self, namespace: str, spec: JobSpec) -> Any:
        name = spec.storage.secretRef.name
        version, data = self._secret(namespace, name)
        key = (namespace, name, version, spec.model_dump_json(include={"storage"}))
        with self._lock:
            manager = self._opened.get(key)
        if manager is None:
            manager = self.opener(spec, data)
            with self._lock:
                if len(self._opened) >= self.limit:
                    self._opened.pop(next(iter(self._opened)))
                self._opened[key] = manager
        return manager

    def bucket(self, namespace: str, spec: JobSpec) -> str | None:
        """The bucket of a Job's outputs, for their `uri` in the status; None when neither the Job nor its
        Secret says (or the Secret cannot be read: the uri is informative, it never fails a cycle)."""
        if spec.storage.bucket:
            return spec.storage.bucket
        try:
            _, data = self._secret(namespace, spec.storage.secretRef.name)
        except Exception:
            return None
        return storage_bucket(spec, data)
