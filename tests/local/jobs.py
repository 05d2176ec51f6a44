"""Jobs used by the local executor tests (module-level, so subprocesses can load them by reference)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from cairn import Field, Out, Output, in_process_executor, job, op

CALLS_FILE = "CAIRN_TEST_CALLS"


def _called(name: str) -> None:
    """Append the op's name to the file named by $CAIRN_TEST_CALLS: which op bodies ran, in order."""
    path = os.environ.get(CALLS_FILE)
    if path:
        with open(path, "a") as f:
            f.write(name + "\n")


@op
def start() -> int:
    _called("start")
    return 1


@op(config_schema={"fail": Field(bool, default_value=False)})
def unreliable(context: Any, num: int) -> int:
    _called("unreliable")
    if context.op_config["fail"] or os.environ.get("CAIRN_TEST_FAIL") == "1":
        raise Exception("blah")
    return num + 1


@op
def end(_num: int) -> int:
    _called("end")
    return _num * 10


@job(executor_def=in_process_executor, tags={"team": "ml"})
def unreliable_job() -> None:
    end(unreliable(start()))


@op(out={"a": Out(), "b": Out(is_required=False)}, config_schema={"emit_b": Field(bool, default_value=True)})
def split(context: Any) -> Any:
    _called("split")
    yield Output(1, "a")
    if context.op_config["emit_b"]:
        yield Output(2, "b")


@op
def use_a(a: int) -> int:
    _called("use_a")
    return a + 100


@op
def use_b(b: int) -> int:
    _called("use_b")
    return b + 200


@op
def after_b(x: int) -> int:
    _called("after_b")
    return x


@op
def boom(a: int) -> int:
    _called("boom")
    if os.environ.get("CAIRN_TEST_FAIL") == "1":
        raise ValueError("boom failed")
    return a


@job
def branches() -> None:
    a, b = split()
    use_a(a)
    after_b(use_b(b))
    boom(a)


@op(out={"doc": Out(format="json"), "raw": Out(format="bytes")})
def formats() -> tuple[Any, bytes]:
    return {"k": [1, 2]}, b"\x00\x01raw"


@op
def read_formats(doc: dict[str, Any], raw: bytes) -> str:
    return f"{doc['k']}-{raw!r}"


@job
def formats_job() -> None:
    doc, raw = formats()
    read_formats(doc, raw)


@op
def slow(num: int) -> int:
    """Signals that it started (a file appears), then waits to be interrupted."""
    _called("slow")
    marker = os.environ.get("CAIRN_TEST_STARTED")
    again = bool(marker) and Path(str(marker)).exists()  # a later attempt: with CAIRN_TEST_ONCE=1, fast
    if marker:
        Path(marker).write_text(str(os.getpid()))
    if os.environ.get("CAIRN_TEST_FAST") == "1" or (again and os.environ.get("CAIRN_TEST_ONCE") == "1"):
        return num
    deadline = time.monotonic() + float(os.environ.get("CAIRN_TEST_SLEEP", "60"))
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return num


@op
def die(num: int) -> int:
    """Kills its own process, as an OOM kill would, unless CAIRN_TEST_FAST=1."""
    _called("die")
    if os.environ.get("CAIRN_TEST_FAST") != "1":
        os.kill(os.getpid(), signal.SIGKILL)
    return num


@job
def slow_job() -> None:
    end(slow(start()))


@job
def dying_job() -> None:
    end(die(start()))


@op
def twice(x: int) -> int:
    return x * 2


@job
def reuse_op() -> None:
    twice(twice(start()))


@op
def flaky(num: int) -> int:
    """Fails on its first attempt (it leaves a marker file), succeeds on the next."""
    _called("flaky")
    marker = Path(os.environ["CAIRN_TEST_MARKER"])
    if not marker.exists():
        marker.write_text("failed once")
        raise RuntimeError("first attempt fails")
    return num


@job
def flaky_job() -> None:
    end(flaky(start()))


@op
def ticker(num: int) -> int:
    """Prints `tick N` once a second, flushed, for $CAIRN_TEST_TICKS seconds (default 5): a live log."""
    for i in range(int(os.environ.get("CAIRN_TEST_TICKS", "5"))):
        print(f"tick {i + 1}", flush=True)
        time.sleep(1)
    return num


@job
def ticker_job() -> None:
    end(ticker(start()))
