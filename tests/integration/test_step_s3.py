"""The pod entrypoint with S3 storage on the real SeaweedFS: credentials only from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def test_a_step_stores_its_output_in_s3_and_the_next_one_reads_it(
    tmp_path: Path, dev_cluster: Any, dev_state: Any, s3: Any
) -> None:
    env = {**os.environ, **{k: v for k, v in dev_cluster.env(dev_state).items() if k != "KUBECONFIG"}}
    prefix = f"cairn-test/{uuid.uuid4().hex[:8]}"
    storage = {"kind": "s3", "bucket": s3.bucket, "prefix": prefix}

    def step(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        term = tmp_path / f"{name}.json"
        ctx = {"protocol": 1, "namespace": "team-a", "storage": storage, "inputs": inputs}
        subprocess.run(
            [
                sys.executable,
                "-m",
                "cairn.step",
                "run",
                "--job",
                "tests.local.jobs:unreliable_job",
                "--run-id",
                "r9",
                "--step",
                name,
                "--context",
                json.dumps(ctx),
                "--termination-path",
                str(term),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        result: dict[str, Any] = json.loads(term.read_text())
        return result

    first = step("start", {})
    key = first["outputs"]["result"]["key"]
    assert key == "team-a/r9/start/result"
    head = s3.head_object(Bucket=s3.bucket, Key=f"{prefix}/{key}")
    assert head["ContentLength"] == first["outputs"]["result"]["size"]
    second = step("unreliable", {"start.result": {"key": key}})
    assert second["status"] == "SUCCESS"
    assert "AWS_SECRET_ACCESS_KEY" not in json.dumps(second) and env["AWS_SECRET_ACCESS_KEY"] not in json.dumps(second)
