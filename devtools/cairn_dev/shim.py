"""The per-pod shim of the local node (the role containerd-shim plays for a container).

The node agent starts ``python -m cairn_dev.shim --pod-dir D -- CMD ARGS...`` in a session of its own,
with the container's environment and working directory. The shim records itself in ``D/shim.json``,
runs the command with its output appended to ``D/log``, waits for it, and writes ``D/exit.json``
(exit code, signal, start and finish times) atomically. Because the shim, not the agent, waits for the
command, the agent can restart at any time without losing the exit code or running the pod twice.

When the command ends, whatever it left running in the shim's process group is killed, as a container
runtime kills what is left in a container whose main process exited.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    from cairn_dev.procs import proc_start_time

    parser = argparse.ArgumentParser(prog="cairn_dev.shim")
    parser.add_argument("--pod-dir", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    pod_dir: Path = args.pod_dir

    # TERM is meant for the command; the shim stays to record how the command ended.
    # (A Python-level handler, unlike SIG_IGN, is reset to the default in the exec'd command.)
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    me = os.getpid()
    write_json_atomic(pod_dir / "shim.json", {"pid": me, "start_time": proc_start_time(me)})

    started = now_rfc3339()
    with (pod_dir / "log").open("ab") as log:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        except OSError as exc:
            log.write(f"cairn-local: cannot start {cmd[:1]}: {exc}\n".encode())
            log.flush()
            write_json_atomic(
                pod_dir / "exit.json",
                {
                    "exit_code": 128,
                    "signal": None,
                    "started_at": started,
                    "finished_at": now_rfc3339(),
                    "start_error": f"cannot start {cmd[0] if cmd else '(empty command)'}: {exc.strerror or exc}",
                },
            )
            return 0
        write_json_atomic(pod_dir / "child.json", {"pid": proc.pid, "started_at": started})
        while True:
            try:
                code = proc.wait()
                break
            except InterruptedError:  # pragma: no cover - Python retries, kept for clarity
                continue
    sig = -code if code < 0 else None
    write_json_atomic(
        pod_dir / "exit.json",
        {
            "exit_code": 128 + sig if sig else code,
            "signal": sig,
            "started_at": started,
            "finished_at": now_rfc3339(),
        },
    )
    # Kill leftovers of the command's process group (this includes the shim itself).
    sys.stdout.flush()
    os.killpg(os.getpgid(0), signal.SIGKILL)
    return 0  # pragma: no cover - not reached


if __name__ == "__main__":
    sys.exit(main())
