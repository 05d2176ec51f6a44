"""A 1 GiB output streamed through S3: the step entrypoint's peak memory, beside boto3's own upload_file.

Starts a local control plane without a node (`cairn dev up`: etcd, Kubernetes, SeaweedFS S3) in a
temporary directory, then runs, as a separate process each so that each peak RSS is its own:

Peak memory is each process's own high-water mark of resident memory (VmHWM in /proc/PID/status).

(a) `python -m cairn.step exec` of a command step whose command writes a SIZE-byte output file
    (`head -c SIZE /dev/zero > $CAIRN_OUTPUT_RESULT`); the entrypoint uploads it to S3 (multipart,
    8 MiB parts, streamed from the file) and writes its result. Its peak RSS is the step's memory
    (the command's own, `head`, is a few MiB: the children's peak is printed too);
(b) the same output read back by a downstream command step (`wc -c < $CAIRN_INPUT_X`): the entrypoint
    downloads it to a file in 1 MiB chunks;
(c) the peer: `boto3`'s `upload_file` of the same file (its default TransferConfig: 8 MiB chunks, 10
    threads), in a process of its own.

Target (issue 12): the step's memory stays under 200 MiB for a 1 GiB output. Prints a table; nothing is
asserted. Run: .venv/bin/python bench/large_output.py [--size-mib 1024]. Needs `cairn dev build`.
Everything it starts is stopped, and its files removed, at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

PEER = """
import os, sys, time, boto3
c = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ.get("AWS_REGION"))
t = time.monotonic()
c.upload_file(sys.argv[1], sys.argv[2], sys.argv[3])
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:")).split()[1]
print(time.monotonic() - t, hwm)
"""


def step_exec(
    env: dict[str, str], ctx: dict[str, Any], step: str, inputs: dict[str, Any], cmd: str, work: Path
) -> tuple[float, int, dict[str, Any]]:
    """One command step in a fresh process: (seconds, peak RSS KiB of the entrypoint, its result)."""
    term = work / f"{step}.json"
    context = {**ctx, "inputs": inputs}
    code = (
        "import sys, runpy\n"
        "sys.argv = ['cairn.step'] + sys.argv[1:]\n"
        "try:\n"
        "    runpy.run_module('cairn.step', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    rc = e.code\n"
        "else:\n"
        "    rc = 0\n"
        "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n"
        "print('MAXRSS', hwm, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    argv = [
        sys.executable,
        "-c",
        code,
        "exec",
        "--run-id",
        "bench",
        "--step",
        step,
        "--context",
        json.dumps(context),
        "--termination-path",
        str(term),
        "--workdir",
        str(work / step),
        "--",
        "sh",
        "-c",
        cmd,
    ]
    t0 = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"step {step} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    rss = int(next(line.split()[1] for line in proc.stderr.splitlines() if line.startswith("MAXRSS")))
    return seconds, rss, json.loads(term.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024

    from cairn_dev.cluster import Cluster, UpOptions

    with tempfile.TemporaryDirectory(prefix="cairn-bench-large-") as tmp:
        cluster = Cluster(Path(tmp) / "dev")
        state = cluster.up(UpOptions(node=False), say=lambda _: None)
        try:
            env = {**os.environ, **cluster.env(state), "PYTHONPATH": str(ROOT / "runtime")}
            bucket = state.s3["bucket"]
            env["CAIRN_S3_BUCKET"] = bucket
            ctx = {"namespace": "bench", "storage": {"kind": "s3", "bucket": bucket, "prefix": "large"}}
            work = Path(tmp) / "work"
            work.mkdir()
            up_s, up_rss, up = step_exec(
                env, ctx, "produce", {}, f"head -c {size} /dev/zero > $CAIRN_OUTPUT_RESULT", work
            )
            assert up["status"] == "SUCCESS", up
            key = up["outputs"]["result"]["key"]
            down_s, down_rss, down = step_exec(
                env,
                ctx,
                "consume",
                {"x": {"key": key, "names": ["x"]}},
                "wc -c < $CAIRN_INPUT_X > $CAIRN_OUTPUT_RESULT",
                work,
            )
            assert down["status"] == "SUCCESS", down
            counted = cluster.s3_client(state).get_object(
                Bucket=bucket, Key="large/" + down["outputs"]["result"]["key"]
            )
            read_back = int(counted["Body"].read().decode().strip().split()[0])
            src = work / "peer.bin"
            subprocess.run(["sh", "-c", f"head -c {size} /dev/zero > {src}"], check=True)
            peer = subprocess.run(
                [sys.executable, "-c", PEER, str(src), bucket, "large/peer"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            peer_s, peer_rss = peer.stdout.split()
            mib = size / 2**20
            print(f"output size: {mib:.0f} MiB; read back by the downstream step: {read_back / 2**20:.0f} MiB")
            print(f"{'':44} {'seconds':>8} {'MiB/s':>8} {'peak RSS MiB':>13}")
            for label, secs, rss in (
                ("cairn step: produce + upload (streamed)", up_s, up_rss),
                ("cairn step: download + consume (streamed)", down_s, down_rss),
                ("peer: boto3 upload_file (TransferConfig)", float(peer_s), int(peer_rss)),
            ):
                print(f"{label:44} {secs:8.1f} {mib / secs:8.0f} {rss / 1024:13.0f}")
            print(f"ratio of peak RSS, cairn upload / boto3 upload_file: {up_rss / int(peer_rss):.2f}")
            print("target: the step's memory under 200 MiB for a 1 GiB output")
        finally:
            cluster.down(say=lambda _: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
