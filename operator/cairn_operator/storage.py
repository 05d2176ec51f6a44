"""The storage of a Job's outputs as the operator opens it: the runtime's S3 IO manager with the
credentials of the Job's Secret, read at most once per `ttl` seconds per Secret and opened once per
Secret version (building a boto3 client is slow)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cairn_operator.graph import InvalidJob
from cairn_operator.lru import Lru
from cairn_operator.models import JobSpec


class SecretReader(Protocol):
    def read_secret_versioned(self, namespace: str, name: str) -> tuple[str, dict[str, str]]: ...


def storage_bucket(spec: JobSpec, secret: Mapping[str, str]) -> str | None:
    """A Job's bucket: spec.storage.bucket, else its storage Secret's CAIRN_S3_BUCKET (None: neither)."""
    from cairn.s3io import NoBucket, bucket_of

    try:
        return bucket_of(secret, spec.storage.bucket)
    except NoBucket:
        return None


def open_s3(spec: JobSpec, secret: Mapping[str, str]) -> Any:
    """The runtime's S3 IO manager for a Job's storage with its Secret's credentials (`cairn.s3io.open_storage`,
    the one opener); no bucket anywhere: the Job is invalid, saying where to set one."""
    from cairn.s3io import NoBucket, open_storage

    try:
        return open_storage(
            secret,
            bucket=spec.storage.bucket,
            prefix=spec.storage.prefix,
            endpoint=spec.storage.endpoint,
            secret_name=spec.storage.secretRef.name,
        )
    except NoBucket as exc:
        raise InvalidJob(str(exc)) from exc


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
        self._read = Lru(limit)  # (namespace, Secret) -> (read at, version, data)
        self._opened = Lru(limit)  # (namespace, Secret, version, storage spec) -> IO manager

    def _secret(self, namespace: str, name: str) -> tuple[str, dict[str, str]]:
        now = self.clock()
        with self._lock:
            hit = self._read.get((namespace, name))
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1], hit[2]
        version, data = self.secrets.read_secret_versioned(namespace, name)
        with self._lock:
            self._read.put((namespace, name), (now, version, data))
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
                self._opened.put(key, manager)
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
