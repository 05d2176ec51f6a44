"""`cairn ui` in a real browser: Debian's headless Chromium driven by Selenium through Debian's
chromedriver (installed by `cairn_dev.debs.ensure(BROWSER)`; nothing downloads a browser).

On the local cluster and on a local instance: open the failed seed run, click `unreliable` on the graph,
choose From selected, preview (the plan shows `start` reused), re-execute with the fix as an env
override, and see the child succeed with `start` shown as reused. Screenshots of each stage are kept
in the test's tmp dir (pytest's basetemp)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cairn_dev import debs
from tests.integration.test_operator import apply, ns, sample, wait_phase
from tests.integration.test_ui_api import UIServer, ui_server

__all__ = ["ns"]

pytestmark = pytest.mark.e2e

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
#: As the machine notes say: no background networking (this machine's network is closed), no sandbox as root.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1440,1000",
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    debs.ensure(debs.BROWSER, "the browser tests of cairn ui")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not fetch anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: Any, what: str, condition: Any, shots: Path, timeout: float = 120) -> Any:
    """Wait for `condition`; on a timeout, keep a screenshot in `shots` and say what the page says."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The page re-renders as it polls: an element found a moment ago may be gone; look again.
    until = WebDriverWait(driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,))
    try:
        return until.until(lambda d: condition(d) or None)
    except Exception as exc:
        error = driver.find_element("id", "error").text
        with contextlib.suppress(Exception):
            driver.save_screenshot(str(shots / f"failed-{what.replace(' ', '-')}.png"))
        raise AssertionError(f"waiting for {what}: {exc!r}; page error: {error!r}") from exc


def click(driver: Any, selector: str, what: str, shots: Path) -> None:
    """Click the element matching `selector`, found afresh until the click lands (the page re-renders its
    graph and steps table as the Run changes: an element found a moment ago may be gone)."""
    from selenium.webdriver.common.by import By

    def clicked(d: Any) -> bool:
        d.find_element(By.CSS_SELECTOR, selector).click()
        return True

    wait(driver, what, clicked, shots)


def tick(box: Any) -> bool:
    """Tick a checkbox unless it is ticked; True once it is (a re-render may have replaced it: look again)."""
    if not box.is_selected():
        box.click()
    return bool(box.is_selected())


def read(driver: Any, selector: str, attribute: str | None = None) -> list[str]:
    """The text (or `attribute`) of every element matching `selector`, read in one script turn, so a
    re-render of the page between finding and reading cannot leave a stale element."""
    script = (
        "return Array.from(document.querySelectorAll(arguments[0]))"
        ".map(e => arguments[1] === null ? e.innerText : e.getAttribute(arguments[1]));"
    )
    return [str(v) for v in driver.execute_script(script, selector, attribute)]


def reexecute_from_selected(driver: Any, ui: UIServer, run: str, shots: Path, fix: str) -> str:
    """The scenario of the issue, in the page; returns the child's name."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    def css(selector: str) -> Any:
        return lambda d: d.find_elements(By.CSS_SELECTOR, selector)

    driver.get(f"{ui.url}/#/runs/{run}")
    wait(driver, "the failed run's graph", css('g.node.Failed[data-step="unreliable"]'), shots)
    assert driver.find_element(By.ID, "run-phase").text == "Failed"
    driver.save_screenshot(str(shots / "1-failed-run.png"))

    click(driver, 'g.node[data-step="unreliable"] rect', "a click on unreliable", shots)
    wait(driver, "the selection", css('g.node.selected[data-step="unreliable"]'), shots)
    assert driver.find_element(By.ID, "selection").get_attribute("value") == "unreliable"
    Select(driver.find_element(By.ID, "mode")).select_by_value("FromSelected")
    driver.find_element(By.TAG_NAME, "summary").click()
    driver.find_element(By.ID, "env").send_keys(fix)

    driver.find_element(By.ID, "preview").click()
    wait(driver, "the preview's plan", css("#plan-result .reused-row"), shots)
    assert read(driver, "#plan-result .reused-row", "data-step") == ["start"]
    steps, texts = read(driver, "#plan-result .plan-step", "data-step"), read(driver, "#plan-result .plan-step")
    planned = zip(steps, texts, strict=True)
    assert [(step, text.split()[-1]) for step, text in planned] == [
        ("unreliable", "selected"),
        ("end", "downstream-of:unreliable"),
    ]
    driver.save_screenshot(str(shots / "2-preview.png"))

    driver.find_element(By.ID, "reexecute").click()
    wait(driver, "the child run's page", lambda d: str(d.current_url).partition("#/runs/")[2] not in ("", run), shots)
    child = str(driver.current_url).partition("#/runs/")[2]
    succeeded = lambda d: d.find_element(By.ID, "run-phase").text == "Succeeded"  # noqa: E731
    wait(driver, "the child to succeed", succeeded, shots, timeout=180)
    wait(driver, "start shown reused", css('g.node.Reused[data-step="start"]'), shots)
    assert read(driver, "#plan .reused-row", "data-step") == ["start"]
    assert run in driver.find_element(By.ID, "lineage").text
    assert driver.find_element(By.CSS_SELECTOR, "#mode option[value=FromFailure]").get_attribute("disabled")
    driver.save_screenshot(str(shots / "3-child-succeeded.png"))
    return child


def test_reexecute_from_selected_on_the_local_cluster(
    browser: Any, cairn_operator: Any, kube: Any, dev_cluster: Any, ns: str, tmp_path: Path
) -> None:
    apply(kube, ns, sample("job-unreliable.yaml"))
    apply(kube, ns, sample("run-unreliable-fails.yaml"))
    assert wait_phase(kube, ns, "unreliable-fails", "Failed", "Succeeded")["status"]["phase"] == "Failed"
    args = ["--kubeconfig", str(dev_cluster.kubeconfig), "--namespace", ns]
    with ui_server(args, tmp_path / "ui.log") as ui:
        child = reexecute_from_selected(browser, ui, "unreliable-fails", tmp_path, "unreliable:CAIRN_UNRELIABLE=pass")
    assert child.startswith("unreliable-fails-rx-")


def test_reexecute_from_selected_on_a_local_instance(browser: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    run = failed_local_run(home)
    with ui_server(["--local", str(home)], tmp_path / "ui.log", env={"CAIRN_UNRELIABLE": ""}) as ui:
        reexecute_from_selected(browser, ui, run, tmp_path, "unreliable:CAIRN_UNRELIABLE=pass")
        browser.get(f"{ui.url}/#/")
        rows = lambda d: len(d.find_elements("css selector", "#runs-table tr[data-run]")) == 2  # noqa: E731
        wait(browser, "the runs list", rows, tmp_path)
        browser.save_screenshot(str(tmp_path / "4-runs.png"))


def failed_local_run(home: Path) -> str:
    env = {**os.environ, "CAIRN_UNRELIABLE": "fail"}
    cmd = [sys.executable, "-m", "cairn.cli", "run", "cairn.examples.unreliable:unreliable_job", "--home", str(home)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert res.returncode == 1, res.stdout + res.stderr
    return res.stdout.split()[1].rstrip(":")  # "run <id>: 3 step(s) to execute"


def test_refusals_and_bulk_from_failure_on_a_local_instance(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    home = tmp_path / "home"
    runs = [failed_local_run(home), failed_local_run(home)]
    with ui_server(["--local", str(home)], tmp_path / "ui.log", env={"CAIRN_UNRELIABLE": "pass"}) as ui:
        # A refusal is shown with the server's message (here: an image override, which is Kubernetes only).
        browser.get(f"{ui.url}/#/runs/{runs[0]}")
        wait(browser, "the run page", lambda d: d.find_elements(By.CSS_SELECTOR, "g.node"), tmp_path)
        Select(browser.find_element(By.ID, "mode")).select_by_value("FromFailure")
        browser.find_element(By.TAG_NAME, "summary").click()
        browser.find_element(By.ID, "image").send_keys("unreliable=localhost/mine:1")
        browser.find_element(By.ID, "reexecute").click()
        wait(browser, "the refusal", lambda d: d.find_elements(By.ID, "rx-error"), tmp_path)
        refusal = "400: image overrides apply on Kubernetes only: a local run executes in this process"
        assert read(browser, "#rx-error") == [refusal]
        browser.save_screenshot(str(tmp_path / "refused.png"))

        # Bulk: tick both failed runs, re-execute them from failure, see two children succeed.
        browser.get(f"{ui.url}/#/")
        boxes = wait(browser, "the runs", lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-run] input"), tmp_path)
        assert len(boxes) == 2
        for run in runs:
            box = f'tr[data-run="{run}"] input'
            wait(browser, f"{run} ticked", lambda d, box=box: tick(d.find_element(By.CSS_SELECTOR, box)), tmp_path)
        assert read(browser, "#bulk") == ["Re-execute from failure (2)"]
        browser.find_element(By.ID, "bulk").click()
        wait(browser, "the bulk results", lambda d: d.find_elements(By.CSS_SELECTOR, "#bulk-result li"), tmp_path)
        results = read(browser, "#bulk-result li")
        assert len(results) == 2 and all("refused" not in r for r in results), results
        succeeded = "tr[data-run] .badge.Succeeded"
        wait(
            browser, "two children succeeded", lambda d: len(d.find_elements(By.CSS_SELECTOR, succeeded)) == 2, tmp_path
        )
        browser.save_screenshot(str(tmp_path / "bulk.png"))
        listed = set(read(browser, "tr[data-run]", "data-run"))
        assert len(listed) == 4 and set(runs) <= listed, listed


def test_the_log_of_a_running_step_appears_live_in_the_page(
    browser: Any, cairn_operator: Any, kube: Any, dev_cluster: Any, ns: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    from tests.integration.test_operator import run_of
    from tests.integration.test_ui_api import ticker_job

    apply(kube, ns, ticker_job(ticks=8))
    apply(kube, ns, run_of("ticker", "tick"))
    args = ["--kubeconfig", str(dev_cluster.kubeconfig), "--namespace", ns]
    with ui_server(args, tmp_path / "ui.log") as ui:
        browser.get(f"{ui.url}/#/runs/tick")
        wait(browser, "the ticker step", lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-step="ticker"]'), tmp_path)
        running = 'g.node.Running[data-step="ticker"]'
        wait(browser, "the ticker step to run", lambda d: d.find_elements(By.CSS_SELECTOR, running), tmp_path)
        click(browser, 'tr[data-step="ticker"]', "a click on the ticker row", tmp_path)

        def log() -> str:
            return str(browser.find_element(By.ID, "log").text)

        # Lines appear while the step still runs (the page shows them before the last one is written).
        wait(browser, "a first live line", lambda d: "tick 2" in log() and "tick 8" not in log(), tmp_path, 60)
        assert read(browser, "#log-source")[0].startswith("live from pod tick-ticker-")
        assert browser.find_elements(By.CSS_SELECTOR, running)
        browser.save_screenshot(str(tmp_path / "live-log.png"))
        wait(browser, "the last line", lambda d: "tick 8" in log(), tmp_path, 60)
        # The step ends: the page shows the log read at once (from the pod, then from storage).
        wait(
            browser,
            "the step to end",
            lambda d: d.find_elements(By.CSS_SELECTOR, 'g.node.Succeeded[data-step="ticker"]'),
            tmp_path,
        )
        wait(
            browser,
            "the saved log",
            lambda d: d.find_element(By.ID, "log-source").text.startswith(("from pod", "from storage")),
            tmp_path,
            30,
        )
        ticks = [f"tick {i}" for i in range(1, 9)]
        wait(
            browser,
            "the whole log",
            lambda d: [x for x in log().splitlines() if x.startswith("tick ")] == ticks,
            tmp_path,
            30,
        )
