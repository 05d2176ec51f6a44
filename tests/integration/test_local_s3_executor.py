"""The in-process executor with outputs in S3 (SeaweedFS): re-execution reuses them in place."""

from __future__ import annotations

import contextlib
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from cairn import Instance, MissingOutputsError, ReexecutionOptions, StepStatus, execute_job, job, op
from tests.local import jobs


def test_reexecution_reads_reused_outputs_from_s3_without_copying(
    tmp_path: Path, dev_cluster: Any, dev_state: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in dev_cluster.env(dev_state).items():
        monkeypatch.setenv(k, v)
    prefix = f"local-exec/{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CAIRN_IO_MANAGER", "s3")
    monkeypatch.setenv("CAIRN_S3_PREFIX", prefix)
    instance = Instance.local(tmp_path / "home")
    first = execute_job(
        jobs.unreliable_job, instance=instance, run_config={"ops": {"unreliable": {"config": {"fail": True}}}}
    )
    keys_after_first = {o["Key"] for o in s3.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)["Contents"]}
    assert keys_after_first == {f"{prefix}/local/{first.run_id}/start/result"}
    second = execute_job(
        jobs.unreliable_job,
        instance=instance,
        run_config={},
        reexecution_options=ReexecutionOptions.from_failure(first.run_id, instance),
    )
    assert second.success and second.step_statuses["start"] is StepStatus.REUSED
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)["Contents"]}
    assert keys - keys_after_first == {
        f"{prefix}/local/{second.run_id}/unreliable/result",
        f"{prefix}/local/{second.run_id}/end/result",
    }  # start was not copied
    assert second.output_from_lineage("end") == 20

    s3.delete_object(Bucket=s3.bucket, Key=f"{prefix}/local/{first.run_id}/start/result")
    with pytest.raises(MissingOutputsError, match=f"s3://{s3.bucket}/{prefix}/local/{first.run_id}/start/result"):
        execute_job(
            jobs.unreliable_job,
            instance=instance,
            reexecution_options=ReexecutionOptions(second.run_id, ["unreliable"]),
        )


class Outage:
    """A TCP relay in front of the S3 server that can be cut (no connection accepted, live ones reset)
    and restored on the same port: S3 going down in the middle of a run, and coming back."""

    def __init__(self, target: tuple[str, int]) -> None:
        import socket
        import threading

        self.target = target
        self.port = 0
        self._socket, self._threading = socket, threading
        self._conns: list[Any] = []
        self.restore()

    def restore(self) -> None:
        srv = self._socket.socket()
        srv.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(16)
        self.port, self._srv = srv.getsockname()[1], srv
        self._threading.Thread(target=self._serve, args=(srv,), daemon=True).start()

    def _serve(self, srv: Any) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            upstream = self._socket.create_connection(self.target)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: Any, b: Any) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        # shutdown first: a close alone does not wake the threads blocked in accept() or recv()
        for s in [self._srv, *self._conns]:
            with contextlib.suppress(OSError):
                s.shutdown(self._socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        self._conns = []


OUTAGE: list[Outage] = []


@op
def produce() -> int:
    return 1


@op
def upload_during_outage(num: int) -> bytes:
    if OUTAGE:  # S3 goes down as this step's output is about to be uploaded
        OUTAGE.pop().cut()
    return b"x" * (num * 1024)


@job
def outage_job() -> None:
    upload_during_outage(produce())


def test_an_output_upload_that_fails_fails_its_step_records_nothing_and_from_failure_succeeds_later(
    tmp_path: Path, dev_cluster: Any, dev_state: Any, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = dev_cluster.env(dev_state)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    endpoint = urllib.parse.urlsplit(env["AWS_ENDPOINT_URL"])
    outage = Outage((endpoint.hostname or "127.0.0.1", endpoint.port or 80))
    OUTAGE[:] = [outage]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{outage.port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    prefix = f"outage/{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CAIRN_IO_MANAGER", "s3")
    monkeypatch.setenv("CAIRN_S3_PREFIX", prefix)
    instance = Instance.local(tmp_path / "home")
    first = execute_job(outage_job, instance=instance)
    assert not first.success and first.step_statuses["upload_during_outage"] is StepStatus.FAILURE
    assert "Could not connect to the endpoint URL" in first.errors["upload_during_outage"]
    run = instance.get_run(first.run_id)
    assert ("upload_during_outage", "result") not in run.outputs  # nothing half-written is recorded as done
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("Contents", [])}
    assert keys == {f"{prefix}/local/{first.run_id}/produce/result"}
    outage.restore()  # S3 is back, on the same address
    again = execute_job(
        outage_job, instance=instance, reexecution_options=ReexecutionOptions.from_failure(first.run_id, instance)
    )
    assert again.success and again.step_statuses["produce"] is StepStatus.REUSED
    assert again.output_from_lineage("upload_during_outage") == b"x" * 1024
