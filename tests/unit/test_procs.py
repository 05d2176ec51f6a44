"""Starting, recognising and stopping host processes."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from cairn_dev import procs
from cairn_dev.errors import DevError


def test_free_ports_are_distinct_and_bindable() -> None:
    taken: set[int] = set()
    ports = [procs.free_port(taken) for _ in range(5)]
    assert len(set(ports)) == 5
    assert all(not procs.port_in_use(p) for p in ports)


def test_port_in_use_sees_a_listener() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert procs.port_in_use(s.getsockname()[1])


def test_stop_escalates_to_kill_for_a_process_that_ignores_term(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    rec = procs.start("stubborn", [sys.executable, "-c", code], tmp_path / "log")
    procs.wait_until("it to print", lambda: "up" in (tmp_path / "log").read_text(), rec, 10)
    assert rec.alive()
    t0 = time.monotonic()
    assert procs.stop(rec, grace=0.5) is True  # had to KILL
    assert not rec.alive()
    assert time.monotonic() - t0 < 10


def test_stop_is_gentle_with_a_process_that_honours_term(tmp_path: Path) -> None:
    rec = procs.start("sleeper", ["sleep", "60"], tmp_path / "log")
    assert procs.stop(rec, grace=5) is False
    assert not rec.alive()


def test_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    rec = procs.start("sleeper", ["sleep", "60"], tmp_path / "log")
    try:
        other = procs.ProcRecord("x", rec.pid, rec.start_time + 1, [], "")
        assert not other.alive()
        assert procs.stop(other) is False  # and it is not signalled
        assert rec.alive()
    finally:
        procs.stop(rec)


def test_wait_until_reports_a_crash_with_the_log_tail(tmp_path: Path) -> None:
    rec = procs.start(
        "crasher", [sys.executable, "-c", "import sys; print('bad flag --x'); sys.exit(2)"], tmp_path / "log"
    )
    with pytest.raises(DevError, match=r"crasher exited before it was ready(.|\n)*bad flag --x"):
        procs.wait_until("readiness", lambda: False, rec, 10)


def test_wait_until_times_out_with_the_last_error() -> None:
    ticks = iter(range(1000))

    def boom() -> bool:
        raise ConnectionRefusedError("nope")

    with pytest.raises(DevError, match=r"timed out after 3s waiting for thing.*ConnectionRefusedError: nope"):
        procs.wait_until("thing", boom, None, 3, sleep=lambda _: None, clock=lambda: float(next(ticks)))
