"""Resources, IO managers and hooks in the pod step entrypoint (`cairn.step.run`, in this process, filesystem
storage): the step context's ``resources`` section configures the job's resources, a job IO manager's output is
reported as its record (format json) and loaded through the IO manager by the next pod, and the context's
``attempt`` decides whether a failure's hooks run now."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from cairn.definitions import Out, job, op
from cairn.hooks import failure_hook
from cairn.resources import fs_io_manager, mem_io_manager, resource
from cairn.retries import RetryPolicy
from cairn.step import run as run_step

JOB = "tests.local.test_resources_pod:pod_job"


@resource(config_schema={"factor": int})
def factor(init_context: Any) -> int:
    return int(init_context.resource_config["factor"])


@failure_hook
def tell(context: Any) -> None:
    print(f"failure hook ran for {context.step_key}")


@op(required_resource_keys={"factor"}, out=Out(io_manager_key="files"))
def scaled(context: Any) -> int:
    return 3 * int(context.resources.factor)


@op
def plus_one(x: int) -> int:
    return x + 1


@op(retry_policy=RetryPolicy(max_retries=1))
def breaks() -> int:
    raise ValueError("pod op broke")


@op(out=Out(io_manager_key="memory"))
def to_memory() -> int:
    return 1


@job(resource_defs={"factor": factor, "files": fs_io_manager, "memory": mem_io_manager}, hooks={tell})
def pod_job() -> None:
    plus_one(scaled())
    breaks()
    to_memory()


def _ctx(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    files = {"config": {"base_dir": str(tmp_path / "files")}}
    return {
        "protocol": 1,
        "namespace": "ns",
        "storage": {"kind": "fs", "root": str(tmp_path / "store")},
        "resources": {"factor": {"config": {"factor": 5}}, "files": files},
        **extra,
    }


def test_a_pod_step_configures_resources_and_hands_outputs_to_the_io_manager(tmp_path: Path) -> None:
    res = run_step(JOB, "r1", "scaled", _ctx(tmp_path))
    assert res["status"] == "SUCCESS", res.get("error")
    assert res["outputs"]["result"]["format"] == "json"  # Cairn's store keeps the IO manager's record
    assert pickle.loads((tmp_path / "files/r1/scaled/result").read_bytes()) == 15
    loc = {"key": res["outputs"]["result"]["key"], "format": "json"}
    down = run_step(JOB, "r2", "plus_one", _ctx(tmp_path, inputs={"scaled.result": loc}))
    assert down["status"] == "SUCCESS", down.get("error")
    from cairn.io import FilesystemIOManager

    assert FilesystemIOManager(tmp_path / "store").load(down["outputs"]["result"]["key"]) == 16


@pytest.mark.parametrize(("attempt", "ran"), [(1, False), (2, True), (None, True)])
def test_failure_hooks_in_a_pod_wait_for_the_last_attempt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], attempt: int | None, ran: bool
) -> None:
    extra = {"attempt": attempt} if attempt is not None else {}
    res = run_step(JOB, "r1", "breaks", _ctx(tmp_path, **extra))
    assert res["status"] == "FAILURE"
    captured = capsys.readouterr()
    assert ("failure hook ran for breaks" in captured.out) is ran
    assert ("cairn: hook_completed breaks" in captured.err) is ran
    assert ("cairn: hook_skipped breaks" in captured.err) is not ran


def test_a_pod_refuses_an_output_to_an_in_memory_io_manager_with_dagsters_message(tmp_path: Path) -> None:
    res = run_step(JOB, "r1", "to_memory", _ctx(tmp_path))
    assert res["status"] == "FAILURE" and res["outputs"] == {}
    assert res["error"]["message"].startswith(
        "You have attempted to use an executor that uses multiple processes, but your job includes op outputs that "
        "will not be stored somewhere where other processes can retrieve them."
    )
