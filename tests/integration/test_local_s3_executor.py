"""The in-process executor with outputs in S3 (SeaweedFS): re-execution reuses them in place."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from cairn import Instance, MissingOutputsError, ReexecutionOptions, StepStatus, execute_job
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
    assert second.output_for_node("end") == 20

    s3.delete_object(Bucket=s3.bucket, Key=f"{prefix}/local/{first.run_id}/start/result")
    with pytest.raises(MissingOutputsError, match=f"s3://{s3.bucket}/{prefix}/local/{first.run_id}/start/result"):
        execute_job(
            jobs.unreliable_job,
            instance=instance,
            reexecution_options=ReexecutionOptions(second.run_id, ["unreliable"]),
        )
