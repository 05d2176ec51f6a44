"""Host processes for `cairn dev`: free ports, starting detached processes, telling whether they still
run, and stopping them (TERM, wait, KILL: SeaweedFS ignores TERM).

A process is identified by its pid *and* its start time (field 22 of /proc/PID/stat), so a pid that the
kernel reused for something else is never taken for ours and never signalled.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cairn_dev.errors import DevError


def free_port(taken: set[int] | None = None) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, and not in `taken` (which it is added to)."""
    taken = taken if taken is not None else set()
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        # Ports p and p+10000 are both free: SeaweedFS derives gRPC ports that way when not told.
        if port not in taken and port < 55000:
            taken.add(port)
            return port
    raise DevError("could not find a free TCP port on 127.0.0.1")


def port_in_use(port: int, host: str = "127.0.0.1", reuse_addr: bool = False) -> bool:
    """True when something already listens on host:port.

    With `reuse_addr`, bind as the servers do (SO_REUSEADDR): connections that a process which just died
    left in TIME_WAIT do not count, only a socket that is bound or listening there now.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if reuse_addr:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def proc_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


@dataclass
class ProcRecord:
    """One process `cairn dev` started."""

    name: str
    pid: int
    start_time: int
    argv: list[str]
    log: str
    #: Its working directory, when not the one of `cairn dev up` (so a restart runs it the same way).
    cwd: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            start_time=int(data["start_time"]),
            argv=[str(a) for a in data["argv"]],
            log=str(data["log"]),
            cwd=str(data["cwd"]) if data.get("cwd") else None,
        )

    def alive(self) -> bool:
        """Still running (a zombie is not), and the pid is still the process we started."""
        reap(self.pid)
        if proc_start_time(self.pid) != self.start_time:
            return False
        return proc_state(self.pid) not in (None, "Z", "X")


def reap(pid: int) -> None:
    """Collect the exit status of a child of ours that has ended, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def start(
    name: str,
    argv: Sequence[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ProcRecord:
    """Start argv detached in its own session (it outlives us), output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise DevError(f"cannot start {name} ({argv[0]}): {exc}") from exc
    started = proc_start_time(proc.pid)
    if started is None:  # it ended already; still record it so the caller reports its log
        started = -1
    return ProcRecord(
        name=name,
        pid=proc.pid,
        start_time=started,
        argv=list(argv),
        log=str(log),
        cwd=str(cwd) if cwd is not None else None,
    )


def stop(
    rec: ProcRecord,
    grace: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Stop a process and its process group: TERM, wait up to `grace` seconds, then KILL.

    Returns True when it had to KILL. Never signals a pid that is no longer the recorded process.
    """
    if not rec.alive():
        return False

    def signal_group(sig: signal.Signals) -> None:
        try:
            os.killpg(rec.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec.pid, sig)

    signal_group(signal.SIGTERM)
    deadline = clock() + grace
    while clock() < deadline:
        if not rec.alive():
            signal_group(signal.SIGKILL)  # leftovers of its group, if any
            return False
        sleep(0.1)
    signal_group(signal.SIGKILL)
    deadline = clock() + 10
    while rec.alive() and clock() < deadline:
        sleep(0.05)
    return True


def tail(path: str | Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def wait_until(
    what: str,
    check: Callable[[], bool],
    rec: ProcRecord | None,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Poll `check` until True; a dead process or the timeout raise DevError with its log's tail."""
    deadline = clock() + timeout
    last_error = ""
    while True:
        try:
            if check():
                return
        except Exception as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        if rec is not None and not rec.alive():
            raise DevError(f"{rec.name} exited before it was ready ({what}); last lines of {rec.log}:\n{tail(rec.log)}")
        if clock() >= deadline:
            where = f"; last lines of {rec.log}:\n{tail(rec.log)}" if rec is not None else ""
            detail = f" (last check: {last_error})" if last_error else ""
            raise DevError(f"timed out after {timeout:.0f}s waiting for {what}{detail}{where}")
        sleep(0.2)
