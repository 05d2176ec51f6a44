"""The fan-out of change events to the pages' event streams (`cairn.ui.app.Hub`)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from cairn.ui.app import Hub


def test_events_published_from_any_thread_reach_every_stream_and_a_slow_one_gets_a_resync() -> None:
    async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
        hub = Hub()
        hub.loop = asyncio.get_running_loop()
        fast: asyncio.Queue[dict[str, object] | None] = asyncio.Queue(maxsize=10)
        slow: asyncio.Queue[dict[str, object] | None] = asyncio.Queue(maxsize=2)
        hub.queues |= {fast, slow}
        workers = [
            threading.Thread(target=hub.publish, args=({"kind": "runs", "type": "MODIFIED", "name": f"r{i}"},))
            for i in range(3)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        await asyncio.sleep(0.05)  # the loop runs the callbacks the threads scheduled
        got_fast = [fast.get_nowait() for _ in range(fast.qsize())]
        got_slow = [slow.get_nowait() for _ in range(slow.qsize())]
        hub.close()
        closed = [fast.get_nowait()]
        return got_fast, got_slow, closed

    fast, slow, closed = asyncio.run(scenario())
    assert sorted(e["name"] for e in fast) == ["r0", "r1", "r2"]
    assert slow[-1] == {"kind": "all", "type": "RESYNC", "name": None} and len(slow) <= 2
    assert closed == [None]  # close ends every stream


def test_publish_without_a_running_loop_is_a_no_op() -> None:
    Hub().publish({"kind": "runs"})  # before the app started: nothing to deliver, nothing raised
