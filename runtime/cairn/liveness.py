"""Process liveness for the local run store: which process a run records, and whether that process is gone.

A run records the host, pid and start time (in clock ticks since boot, from ``/proc/<pid>/stat``) of the
process that executes it. A run still STARTED whose process is gone from this host is `lost`: the run
store reads it back as FAILURE with its running steps interrupted, and writes nothing for that. The pid
alone is not enough (pids are reused), so on Linux the start time must match too; elsewhere a signal 0
probe says whether the pid exists.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cairn.status import RunStatus


@dataclass(frozen=True)
class ProcessId:
    """A process as a run records it: where it runs, its pid, and its start time (None: unknown)."""

    host: str
    pid: int
    start: int | None


def proc_start(pid: int, proc: Path = Path("/proc")) -> int | None:
    """The start time of process `pid` (field 22 of its stat), None when it does not exist."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: count fields after its last ")"
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def this_process(host: str | None = None) -> ProcessId:
    """The calling process (on `host`, default: this machine's host name)."""
    pid = os.getpid()
    return ProcessId(host if host is not None else socket.gethostname(), pid, proc_start(pid))


def alive(pid: int | None, start: int | None) -> bool:
    """Whether the process `pid` that started at `start` still runs on this host (unknown pid: yes)."""
    if pid is None:
        return True  # unknown: trust the record
    if Path("/proc").is_dir():
        return proc_start(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lost(
    status: RunStatus,
    host: str | None,
    pid: int | None,
    start: int | None,
    *,
    here: str,
    is_alive: Callable[[int | None, int | None], bool] = alive,
) -> bool:
    """Whether a run recorded with `status` by process (`host`, `pid`, `start`) lost its process: it is
    STARTED, its process ran on this host (`here`), and that process is gone. A run of another host is
    never judged (its process cannot be seen from here)."""
    return status is RunStatus.STARTED and host == here and not is_alive(pid, start)
