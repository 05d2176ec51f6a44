"""How fast `cairn ui` shows a 500-step run: the layout, the run's JSON, and the page in a real browser.

Usage: ``python bench/ui_load.py [--steps 500] [--reps 5] [--no-browser]``

A synthetic run of N steps (a random DAG: each step reads from up to 3 earlier steps within a window,
so the graph has ~N/8 layers and long edges, like a wide pipeline) is served by the real app
(`cairn.ui.app.create_app`, uvicorn on a free loopback port) from an in-memory source. It prints:

- `layout`: `cairn.ui.layout.layout` on the graph (cold: no cache), median and max of --reps;
- `api cold` / `api warm`: GET /api/runs/NAME, with the layout computed / cached, and the JSON size;
- `page`: in Debian's headless Chromium (Selenium, /usr/bin/chromedriver), from `driver.get` of the run
  page until its N step boxes are in the DOM (a fresh page each time, browser cache warm), median and
  max; and the same measured by the page itself (performance.now() when the boxes appear); once with
  the run's layout cached on the server (as for every run of a job after the first), once computed.

It measures; it asserts nothing. The issue's goal is a page load under 1 s for 500 steps.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))

from cairn.ui.layout import layout
from cairn.ui.sources import ReexecRequest, UIError

PHASES = ["Succeeded"] * 6 + ["Reused", "Failed", "NotExecuted", "Running"]


def synthetic_graph(n: int, seed: int = 1) -> dict[str, list[str]]:
    rng = random.Random(seed)
    names = [f"step_{i:04d}" for i in range(n)]
    graph: dict[str, list[str]] = {}
    for i, s in enumerate(names):
        window = names[max(0, i - 24) : i]
        graph[s] = sorted(rng.sample(window, min(len(window), rng.randint(0, 3)))) if window else []
    return graph


class BenchSource:
    """One synthetic run, served as a real source would."""

    kind = "bench"
    live_logs = False

    def __init__(self, n: int) -> None:
        rng = random.Random(2)
        self.graph = synthetic_graph(n)
        t0 = time.time() - 3600
        steps = []
        for i, s in enumerate(self.graph):
            started = t0 + i * 5 + rng.random() * 3
            steps.append(
                {
                    "name": s,
                    "phase": rng.choice(PHASES),
                    "attempt": 1,
                    "attempts": [1],
                    "started": started,
                    "finished": started + rng.random() * 60,
                    "reason": "selected",
                    "sourceRun": None,
                    "message": None,
                    "outputs": [{"name": "result", "key": f"ns/big/{s}/result", "size": 1234, "sha256": "ab" * 32}],
                }
            )
        self.run = {
            "name": "big",
            "job": "big",
            "phase": "Running",
            "progress": f"{n // 2}/{n}",
            "created": t0,
            "started": t0,
            "finished": None,
            "duration": 3600.0,
            "parent": None,
            "root": "big",
            "mode": None,
            "stepSubset": None,
            "steps": steps,
            "graph": self.graph,
            "executedSteps": list(self.graph),
            "canFromFailure": False,
            "plan": None,
        }

    def start(self, publish: Any) -> None:
        pass

    def stop(self) -> None:
        pass

    def info(self) -> dict[str, Any]:
        return {"source": "bench", "namespace": "bench"}

    def list_runs(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in self.run.items() if k not in ("steps", "graph")}]

    def get_run(self, name: str) -> dict[str, Any]:
        if name != "big":
            raise UIError(404, "no such run")
        return dict(self.run)

    def lineage(self, name: str) -> dict[str, Any]:
        return {
            "root": "big",
            "tree": {"name": "big", "phase": "Running", "mode": None, "stepSubset": None, "children": []},
        }

    def step_log(self, name: str, step: str, attempt: int | None) -> dict[str, Any]:
        return {"source": "bench", "attempt": 1, "text": "hello\n"}

    def follow_log(self, name: str, step: str, attempt: int | None) -> NoReturn:
        raise UIError(501, "the bench has no logs")

    def preview(self, name: str, req: ReexecRequest) -> dict[str, Any]:
        raise UIError(400, "bench")

    def reexecute(self, name: str, req: ReexecRequest) -> dict[str, Any]:
        raise UIError(400, "bench")

    def get_reexecution(self, name: str) -> dict[str, Any]:
        raise UIError(404, "bench")


def ms(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1000:7.1f} ms   max {max(xs) * 1000:7.1f} ms   (n={len(xs)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-browser", action="store_true")
    opts = ap.parse_args()

    import uvicorn

    from cairn.ui import app as ui_app
    from cairn_dev.procs import free_port

    source = BenchSource(opts.steps)
    lay = layout(source.graph)
    edges = sum(len(v) for v in source.graph.values())
    print(f"run: {opts.steps} steps, {edges} edges, {len(lay.layers)} layers, {lay.crossings} crossings left")
    times = []
    for _ in range(opts.reps):
        t = time.perf_counter()
        layout(source.graph)
        times.append(time.perf_counter() - t)
    print(f"layout        {ms(times)}")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(ui_app.create_app(source), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        cold, warm = [], []
        size = 0
        for _ in range(opts.reps):
            ui_app._layout_json.cache_clear()
            t = time.perf_counter()
            body = urllib.request.urlopen(f"{url}/api/runs/big").read()
            cold.append(time.perf_counter() - t)
            t = time.perf_counter()
            urllib.request.urlopen(f"{url}/api/runs/big").read()
            warm.append(time.perf_counter() - t)
            size = len(body)
        json.loads(body)
        print(f"api cold      {ms(cold)}   {size / 1024:.0f} KiB")
        print(f"api warm      {ms(warm)}")
        if not opts.no_browser:
            browser_load(url, opts.steps, opts.reps, clear=None)
            browser_load(url, opts.steps, opts.reps, clear=ui_app._layout_json.cache_clear)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return 0


def browser_load(url: str, n: int, reps: int, clear: Any) -> None:
    """Page loads with the layout cached (clear None) or computed on each load (clear: the cache's clear)."""
    import os
    import tempfile

    if not Path("/usr/bin/chromium").exists():
        print("page          skipped: no /usr/bin/chromium (Debian packages: cairn_dev.debs.BROWSER)")
        return
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1440,1000"):  # fmt: skip
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='cairn-bench-chromium-')}")
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    probe = f"return document.querySelectorAll('g.node').length >= {n} ? performance.now() : null"
    try:
        wall, inpage = [], []
        for i in range(reps + 1):
            driver.get("about:blank")
            if clear is not None:
                clear()
            t = time.perf_counter()
            driver.get(f"{url}/#/runs/big")
            while True:
                seen = driver.execute_script(probe)
                if seen is not None:
                    break
                time.sleep(0.005)
            if i:  # the first load warms the browser's cache of app.js and style.css
                wall.append(time.perf_counter() - t)
                inpage.append(float(seen) / 1000)
        how = "layout computed" if clear is not None else "layout cached"
        print(f"page (wall)   {ms(wall)}   driver.get to {n} boxes in the DOM, {how}")
        print(f"page (in-page){ms(inpage)}   navigation start to {n} boxes (performance.now), {how}")
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
