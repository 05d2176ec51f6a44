"""`python -m cairn.step run`: one step in a separate process, as in a pod, with filesystem storage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cairn.io import FilesystemIOManager
from cairn.step import MAX_MESSAGE, PROTOCOL, result_message

ROOT = Path(__file__).resolve().parents[2]


def step(
    tmp_path: Path,
    name: str,
    ctx: dict[str, Any] | str,
    job: str = "tests.local.jobs:unreliable_job",
    env: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], str]:
    term = tmp_path / f"{name}.term"
    context = ctx if isinstance(ctx, str) else json.dumps(ctx)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cairn.step",
            "run",
            "--job",
            job,
            "--run-id",
            "r1",
            "--step",
            name,
            "--context",
            context,
        ],
        cwd=ROOT,
        env={**os.environ, "CAIRN_TERMINATION_MESSAGE_PATH": str(term), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, json.loads(term.read_text()), proc.stderr


def test_steps_chain_through_storage_and_report_in_the_termination_message(tmp_path: Path) -> None:
    storage = {"kind": "fs", "root": str(tmp_path / "store")}
    code, res, _ = step(tmp_path, "start", {"protocol": 1, "namespace": "ns1", "storage": storage})
    assert code == 0 and res["status"] == "SUCCESS" and res["protocol"] == PROTOCOL
    out = res["outputs"]["result"]
    assert out["key"] == "ns1/r1/start/result" and out["size"] > 0 and len(out["sha256"]) == 64
    assert FilesystemIOManager(tmp_path / "store").load(out["key"]) == 1

    ctx = {
        "namespace": "ns1",
        "storage": storage,
        "inputs": {"start.result": {"key": out["key"]}},
        "config": {"fail": False},
    }
    code, res, _ = step(tmp_path, "unreliable", ctx)
    assert code == 0 and FilesystemIOManager(tmp_path / "store").load(res["outputs"]["result"]["key"]) == 2
    assert res["duration_s"] >= 0


def test_a_failing_op_exits_1_with_the_error_summary(tmp_path: Path) -> None:
    storage = {"kind": "fs", "root": str(tmp_path / "store")}
    FilesystemIOManager(tmp_path / "store").store("x/start", 1)
    ctx = {"storage": storage, "inputs": {"start.result": {"key": "x/start"}}, "config": {"fail": True}}
    code, res, stderr = step(tmp_path, "unreliable", ctx)
    assert code == 1 and res["status"] == "FAILURE"
    assert res["error"]["type"] == "Exception" and res["error"]["message"] == "blah"
    assert res["outputs"] == {}
    assert "Exception: blah" in stderr  # the traceback goes to the pod's log


@pytest.mark.parametrize(
    ("name", "ctx", "message"),
    [
        ("start", "{not json", "step context is not valid JSON"),
        ("nope", {"storage": {"kind": "fs", "root": "/tmp"}}, "job unreliable_job has no step 'nope'"),
        ("unreliable", {"storage": {"kind": "fs", "root": "/tmp"}}, "no location for input(s) start.result"),
        ("start", {"storage": {"kind": "gcs"}}, "storage.kind must be 'fs' or 's3'"),
        ("start", {"protocol": 99, "storage": {"kind": "fs", "root": "/tmp"}}, "protocol 99 is not 1"),
    ],
)
def test_invocation_errors_exit_2_and_say_what_is_wrong(tmp_path: Path, name: str, ctx: Any, message: str) -> None:
    code, res, stderr = step(tmp_path, name, ctx)
    assert code == 2 and res["invocation_error"] is True
    assert message in res["error"]["message"] and message in stderr


def test_the_result_always_fits_a_termination_message() -> None:
    big = {
        "protocol": 1,
        "status": "FAILURE",
        "outputs": {f"o{i}": {"key": "k" * 100, "size": 1, "sha256": "h" * 64} for i in range(10)},
        "error": {"type": "E", "message": "m" * 5000, "traceback": "t" * 5000},
    }
    text = result_message(big)
    assert len(text) <= MAX_MESSAGE and json.loads(text)["status"] == "FAILURE"


def exec_step(
    tmp_path: Path, command: list[str], ctx: dict[str, Any], outputs: str = "result", optional: str = ""
) -> tuple[int, dict[str, Any]]:
    term = tmp_path / "exec.term"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cairn.step",
            "exec",
            "--run-id",
            "r2",
            "--step",
            "shell",
            "--outputs",
            outputs,
            "--optional-outputs",
            optional,
            "--context",
            json.dumps(ctx),
            "--termination-path",
            str(term),
            "--workdir",
            str(tmp_path / "work"),
            "--",
            *command,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, json.loads(term.read_text())


def test_exec_runs_any_command_with_inputs_and_outputs_as_files(tmp_path: Path) -> None:
    io = FilesystemIOManager(tmp_path / "store")
    io.store("ns/r1/up/result", b"hello", "bytes")
    ctx = {
        "namespace": "ns",
        "storage": {"kind": "fs", "root": str(tmp_path / "store")},
        "inputs": {"up.result": {"key": "ns/r1/up/result", "names": ["greeting"]}},
    }
    script = 'cat "$CAIRN_INPUT_GREETING" > "$CAIRN_OUTPUT_RESULT"; echo " world" >> "$CAIRN_OUTPUT_RESULT"'
    code, res = exec_step(tmp_path, ["sh", "-c", script], ctx, outputs="result,extra", optional="extra")
    assert code == 0 and res["status"] == "SUCCESS", res
    assert res["outputs"]["result"]["key"] == "ns/r2/shell/result" and "extra" not in res["outputs"]
    assert io.load("ns/r2/shell/result", "bytes") == b"hello world\n"


@pytest.mark.parametrize(
    ("script", "code", "kind", "message"),
    [
        ("exit 3", 3, "CommandFailed", "sh exited 3"),
        ("true", 1, "MissingOutput", "the command wrote no result (to $CAIRN_OUTPUT_RESULT)"),
    ],
)
def test_exec_failures(tmp_path: Path, script: str, code: int, kind: str, message: str) -> None:
    ctx = {"storage": {"kind": "fs", "root": str(tmp_path / "store")}}
    got, res = exec_step(tmp_path, ["sh", "-c", script], ctx)
    assert got == code and res["status"] == "FAILURE"
    assert res["error"] == {"type": kind, "message": message}
