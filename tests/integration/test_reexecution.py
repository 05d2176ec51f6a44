"""The Reexecution resource on the real control plane: linked child Runs that execute only the chosen
steps and read every other input where an ancestor stored it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import eventually
from tests.integration.test_operator import G, V, apply, co, get_run, lineage_settled, ns, sample, wait_phase

__all__ = ["ns"]


def rx(name: str, parent: str, mode: str = "FromFailure", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Reexecution",
        "metadata": {"name": name},
        "spec": {"parentRun": parent, "mode": mode, **spec},
    }


PASS = {"unreliable": {"env": [{"name": "CAIRN_UNRELIABLE", "value": "pass"}]}}
FAIL = {"unreliable": {"env": [{"name": "CAIRN_UNRELIABLE", "value": "fail"}]}}


def create_rx(kube: Any, ns: str, doc: dict[str, Any]) -> None:
    co(kube).create_namespaced_custom_object(G, V, ns, "reexecutions", doc)


def rx_phase(kube: Any, ns: str, name: str, *phases: str, timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        obj: dict[str, Any] = co(kube).get_namespaced_custom_object(G, V, ns, "reexecutions", name)
        return obj if (obj.get("status") or {}).get("phase") in phases else None

    return eventually(done, timeout=timeout, interval=0.5, what=f"reexecution {name} to reach {phases}")


@pytest.fixture
def failed_parent(cairn_operator: Any, kube: Any, ns: str) -> dict[str, Any]:
    apply(kube, ns, sample("job-unreliable.yaml"))
    apply(kube, ns, sample("run-unreliable-fails.yaml"))
    parent = wait_phase(kube, ns, "unreliable-fails", "Failed", "Succeeded")
    assert parent["status"]["phase"] == "Failed"
    return parent


def test_from_failure_makes_a_linked_child_and_a_grandchild_reads_from_the_root(
    kube: Any, core: Any, ns: str, failed_parent: dict[str, Any]
) -> None:
    create_rx(kube, ns, rx("retry-1", "unreliable-fails", overrides=FAIL))
    first = rx_phase(kube, ns, "retry-1", "Succeeded", "Failed")
    child = first["status"]["childRun"]
    assert first["status"]["phase"] == "Failed"  # still failing: its child failed
    assert first["status"]["plan"]["steps"] == [
        {"name": "unreliable", "reason": "failed"},
        {"name": "end", "reason": "downstream-of:unreliable"},
    ]
    start_key = failed_parent["status"]["steps"]["start"]["outputs"]["result"]["key"]
    assert first["status"]["plan"]["reused"][0]["key"] == start_key
    create_rx(kube, ns, rx("retry-2", child, overrides=PASS))
    second = rx_phase(kube, ns, "retry-2", "Succeeded", "Failed")
    assert second["status"]["phase"] == "Succeeded"
    grandchild = get_run(kube, ns, second["status"]["childRun"])
    labels = grandchild["metadata"]["labels"]
    assert (labels["cairn.dev/parent-run"], labels["cairn.dev/root-run"]) == (child, "unreliable-fails")
    assert labels["cairn.dev/reexecution"] == "retry-2"
    start = grandchild["status"]["steps"]["start"]
    assert (start["phase"], start["sourceRun"], start["outputs"]["result"]["key"]) == (
        "Reused",
        "unreliable-fails",
        start_key,
    )  # from the run that produced it, not from its parent
    lineage = co(kube).list_namespaced_custom_object(
        G, V, ns, "runs", label_selector="cairn.dev/root-run=unreliable-fails"
    )
    assert sorted(r["metadata"]["name"] for r in lineage["items"]) == sorted(
        ["unreliable-fails", child, grandchild["metadata"]["name"]]
    )
    assert get_run(kube, ns, "unreliable-fails")["status"] == failed_parent["status"]  # parent never modified


def test_dry_run_plans_without_a_child(kube: Any, ns: str, failed_parent: dict[str, Any]) -> None:
    create_rx(
        kube, ns, rx("plan-only", "unreliable-fails", mode="Selected", stepSelection=["unreliable*"], dryRun=True)
    )
    planned = rx_phase(kube, ns, "plan-only", "Planned")
    assert planned["status"]["plan"]["steps"] == [
        {"name": "unreliable", "reason": "selected"},
        {"name": "end", "reason": "selected"},
    ]
    assert "childRun" not in planned["status"]
    runs = co(kube).list_namespaced_custom_object(G, V, ns, "runs")["items"]
    assert [r["metadata"]["name"] for r in runs] == ["unreliable-fails"]


@pytest.mark.parametrize(
    ("spec", "message", "reason"),
    [
        ({"mode": "Selected", "stepSelection": ["nope"]}, "Step selection refers to unknown step: nope", "Invalid"),
        (
            {"mode": "Selected", "stepSelection": ["un*reliable"]},
            "No qualified steps to execute found for step_selection=['un*reliable']",
            "Invalid",
        ),
        ({"runName": "unreliable-fails"}, "is the parent Run's name", "Invalid"),
        (
            {"config": {"ops": {"typo": {"config": {}}}}, "overrides": {"ghost": {"image": "x"}}},
            "config.ops names unknown step(s): typo; overrides name unknown step(s): ghost",
            "UnknownSteps",
        ),
    ],
)
def test_invalid_requests_say_what_is_wrong(
    kube: Any, ns: str, failed_parent: dict[str, Any], spec: dict[str, Any], message: str, reason: str
) -> None:
    doc = rx("bad", "unreliable-fails")
    doc["spec"].update(spec)
    create_rx(kube, ns, doc)
    bad = rx_phase(kube, ns, "bad", "Invalid", "Failed", timeout=30)
    assert bad["status"]["phase"] == "Invalid" and message in bad["status"]["message"]
    stalled = {c["type"]: c for c in bad["status"]["conditions"]}["Stalled"]
    assert (stalled["status"], stalled["reason"], stalled["message"]) == ("True", reason, bad["status"]["message"])
    runs = co(kube).list_namespaced_custom_object(G, V, ns, "runs")["items"]
    assert [r["metadata"]["name"] for r in runs] == ["unreliable-fails"]  # no child made


def test_a_run_name_taken_by_another_run_is_refused_not_adopted(
    kube: Any, ns: str, failed_parent: dict[str, Any]
) -> None:
    create_rx(kube, ns, rx("first", "unreliable-fails", mode="All", runName="taken"))
    rx_phase(kube, ns, "first", "Running", "Succeeded", "Failed", timeout=60)
    create_rx(kube, ns, rx("second", "unreliable-fails", mode="All", runName="taken"))
    bad = rx_phase(kube, ns, "second", "Invalid", "Failed", timeout=30)
    assert bad["status"]["phase"] == "Invalid" and "not this Reexecution's child" in bad["status"]["message"]
    assert {c["type"]: c for c in bad["status"]["conditions"]}["Stalled"]["reason"] == "RunNameTaken"
    assert "childRun" not in bad["status"]


def test_a_reexecution_applied_before_its_parent_waits_then_makes_its_child(
    cairn_operator: Any, kube: Any, core: Any, ns: str
) -> None:
    create_rx(kube, ns, rx("early", "unreliable-fails", overrides=PASS))

    def waiting() -> dict[str, Any] | None:
        obj: dict[str, Any] = co(kube).get_namespaced_custom_object(G, V, ns, "reexecutions", "early")
        conds = {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}
        return obj if (conds.get("Reconciling") or {}).get("reason") == "ParentNotFound" else None

    early = eventually(waiting, timeout=30, interval=0.5, what="the Reexecution to wait for its parent")
    assert early["status"]["phase"] == "Pending" and "Run 'unreliable-fails'" in early["status"]["message"]
    assert early["status"]["observedGeneration"] == early["metadata"]["generation"]
    assert {c["type"]: c["status"] for c in early["status"]["conditions"]} == {
        "Ready": "False",
        "Reconciling": "True",
        "Stalled": "False",
    }
    apply(kube, ns, sample("run-unreliable-fails.yaml"))  # the parent, before its Job even
    apply(kube, ns, sample("job-unreliable.yaml"))
    done = rx_phase(kube, ns, "early", "Succeeded", "Failed", "Invalid", timeout=120)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert {c["type"]: c["status"] for c in done["status"]["conditions"]} == {
        "Ready": "True",
        "Reconciling": "False",
        "Stalled": "False",
    }
    child = get_run(kube, ns, done["status"]["childRun"])
    assert child["metadata"]["labels"]["cairn.dev/parent-run"] == "unreliable-fails"
    events = core.list_namespaced_event(ns, field_selector="involvedObject.name=early").items
    assert [e.reason for e in events if e.reason == "ParentNotFound"] == ["ParentNotFound"]  # said once


def test_missing_outputs_fail_or_rerun_their_producer(
    kube: Any, ns: str, failed_parent: dict[str, Any], s3: Any
) -> None:
    key = failed_parent["status"]["steps"]["start"]["outputs"]["result"]["key"]
    s3.delete_object(Bucket=s3.bucket, Key=f"cairn/{key}")
    create_rx(kube, ns, rx("strict", "unreliable-fails", overrides=PASS))
    failed = rx_phase(kube, ns, "strict", "Failed", "Succeeded", timeout=30)
    assert failed["status"]["phase"] == "Failed" and key in failed["status"]["message"]
    create_rx(kube, ns, rx("lenient", "unreliable-fails", overrides=PASS, missingOutputs="Rerun"))
    ok = rx_phase(kube, ns, "lenient", "Succeeded", "Failed")
    assert ok["status"]["phase"] == "Succeeded"
    assert ok["status"]["plan"]["steps"][0] == {"name": "start", "reason": "missing-output"}


def test_automatic_retries_stop_at_max_retries(cairn_operator: Any, kube: Any, ns: str) -> None:
    apply(kube, ns, sample("job-unreliable.yaml"))
    run = sample("run-unreliable-fails.yaml")
    run["metadata"]["name"] = "always-fails"
    run["spec"]["retryPolicy"] = {"maxRetries": 2, "strategy": "FromFailure"}
    apply(kube, ns, run)

    def retries() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = co(kube).list_namespaced_custom_object(
            G, V, ns, "reexecutions", label_selector="cairn.dev/root-run=always-fails"
        )["items"]
        done = [r for r in items if (r.get("status") or {}).get("phase") in ("Succeeded", "Failed")]
        return items if len(items) == 2 and len(done) == 2 else None

    items = eventually(retries, timeout=180, interval=1, what="two automatic retries to finish")
    assert sorted(r["metadata"]["labels"]["cairn.dev/retry"] for r in items) == ["1", "2"]
    first = next(r for r in items if r["metadata"]["labels"]["cairn.dev/retry"] == "1")
    second = next(r for r in items if r["metadata"]["labels"]["cairn.dev/retry"] == "2")
    assert first["spec"]["parentRun"] == "always-fails"
    assert second["spec"]["parentRun"] == first["status"]["childRun"]  # a retry of the retry
    last_child = get_run(kube, ns, second["status"]["childRun"])
    assert last_child["status"]["phase"] == "Failed"
    # The last failed child must not get a third retry: every Run of the lineage settled, i.e. made its
    # retry decision (written before `settled`), and there are still two retries.
    eventually(lambda: lineage_settled(kube, ns, "always-fails", runs=3), timeout=60, what="the three Runs settled")
    again = co(kube).list_namespaced_custom_object(
        G, V, ns, "reexecutions", label_selector="cairn.dev/root-run=always-fails"
    )["items"]
    assert len(again) == 2


def test_the_cli_reexecutes_follows_the_child_and_prints_the_tree(
    kube: Any, ns: str, failed_parent: dict[str, Any], dev_cluster: Any, dev_state: Any
) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, **dev_cluster.env(dev_state)}

    def cairn(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cairn.cli", "k8s", *args, "-n", ns],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    shown = cairn("reexecute", "unreliable-fails", "--select", "unreliable*", "-o", "yaml")
    assert shown.returncode == 0 and "mode: Selected" in shown.stdout and "- unreliable*" in shown.stdout
    dry = cairn("reexecute", "unreliable-fails", "--from-failure", "--dry-run", "--name", "cli-dry")
    assert dry.returncode == 0, dry.stderr
    assert "would run unreliable  (failed)" in dry.stdout
    # The sample fails its `unreliable` with an override, which a child does not inherit: given to the child
    # too, following it shows the steps and ends Failed.
    done = cairn(
        "reexecute",
        "unreliable-fails",
        "--from-failure",
        "--env",
        "unreliable:CAIRN_UNRELIABLE=fail",
        "--name",
        "cli-rx",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "start                Reused" in done.stdout and "unreliable           Failed" in done.stdout
    tree = cairn("tree", "unreliable-fails")
    assert tree.returncode == 0
    lines = tree.stdout.splitlines()
    assert lines[0].startswith("unreliable-fails  Failed  3/3")
    assert lines[1].startswith("`-- unreliable-fails-rx-") or lines[1].startswith("`-- ")
    assert "mode=FromFailure" in lines[1]
    bad = cairn("reexecute", "ghost", "--from-failure")
    assert bad.returncode == 2 and "Run ghost not found" in bad.stderr


def test_a_parent_is_protected_while_a_child_runs_and_modes_all_and_from_selected(
    cairn_operator: Any, kube: Any, core: Any, ns: str
) -> None:
    import copy

    from tests.integration.test_operator import SLOW_JOB, run_of

    job = copy.deepcopy(SLOW_JOB)
    job["spec"]["ops"][1]["timeoutSeconds"] = 3  # the slow step times out: the parent fails
    apply(kube, ns, job)
    apply(kube, ns, run_of("slow", "p1"))
    parent = wait_phase(kube, ns, "p1", "Failed", "Succeeded", timeout=90)
    assert parent["status"]["phase"] == "Failed"
    create_rx(kube, ns, rx("again", "p1"))
    running = rx_phase(kube, ns, "again", "Running", "Failed", "Succeeded")
    child = running["status"]["childRun"]
    assert "cairn.dev/children" in get_run(kube, ns, "p1")["metadata"]["finalizers"]
    co(kube).delete_namespaced_custom_object(G, V, ns, "runs", "p1")
    assert get_run(kube, ns, "p1")["metadata"]["deletionTimestamp"]  # still there: the child reads it
    done = rx_phase(kube, ns, "again", "Succeeded", "Failed")
    assert done["status"]["phase"] == "Failed"  # the snapshot's timeout holds in the child too

    def parent_gone() -> bool:
        return not any(
            r["metadata"]["name"] == "p1" for r in co(kube).list_namespaced_custom_object(G, V, ns, "runs")["items"]
        )

    eventually(parent_gone, timeout=30, what="the parent to go once its child finished")
    assert get_run(kube, ns, child)["status"]["phase"] == "Failed"  # the child and its history stay
    # Modes on the (finished) child: All runs everything; FromSelected the step and its downstream.
    create_rx(kube, ns, rx("all", child, mode="All", dryRun=True))
    assert [s["name"] for s in rx_phase(kube, ns, "all", "Planned")["status"]["plan"]["steps"]] == [
        "start",
        "slow",
        "end",
    ]
    create_rx(kube, ns, rx("from-slow", child, mode="FromSelected", stepSelection=["slow"], dryRun=True))
    plan = rx_phase(kube, ns, "from-slow", "Planned")["status"]["plan"]
    assert plan["steps"] == [{"name": "slow", "reason": "selected"}, {"name": "end", "reason": "downstream-of:slow"}]
    assert plan["reused"][0]["sourceRun"] == "p1"  # start's output stays in the deleted parent's keys


def test_waiting_for_a_running_parent_interrupted_steps_forbid_and_one_child_across_restarts(
    cairn_operator: Any, kube: Any, core: Any, ns: str, tmp_path: Any
) -> None:
    from tests.integration.test_operator import run_of, slow_job_recording

    apply(kube, ns, slow_job_recording(tmp_path, sleep=60))
    apply(kube, ns, run_of("slow", "p2"))
    eventually(lambda: (tmp_path / "started").exists(), timeout=60, what="the slow step to start")
    create_rx(kube, ns, rx("wait-1", "p2", concurrencyPolicy="Forbid"))
    waiting = rx_phase(kube, ns, "wait-1", "Pending", timeout=30)
    assert "waiting for the parent Run p2 to finish" in waiting["status"]["message"]
    # Interrupt the running step: its pod is deleted.
    pod = core.list_namespaced_pod(ns, label_selector="cairn.dev/run=p2,cairn.dev/step=slow").items[0]
    core.delete_namespaced_pod(pod.metadata.name, ns)
    wait_phase(kube, ns, "p2", "Failed", timeout=60)
    running = rx_phase(kube, ns, "wait-1", "Running", "Succeeded", "Failed", timeout=60)
    assert running["status"]["plan"]["steps"][0] == {"name": "slow", "reason": "interrupted"}
    child = running["status"]["childRun"]
    # Forbid: a second Reexecution of p2 waits while the first child runs.
    create_rx(kube, ns, rx("wait-2", "p2", concurrencyPolicy="Forbid", dryRun=True))
    blocked = rx_phase(kube, ns, "wait-2", "Pending", timeout=30)
    assert f"concurrencyPolicy Forbid: waiting for {child}" in blocked["status"]["message"]
    # An operator restart while the child runs makes no second child.
    cairn_operator.restart()
    co(kube).patch_namespaced_custom_object(G, V, ns, "runs", child, {"spec": {"cancel": True}})
    wait_phase(kube, ns, child, "Canceled", timeout=60)
    planned = rx_phase(kube, ns, "wait-2", "Planned", timeout=60)
    assert planned["status"]["plan"]["steps"][0]["reason"] == "interrupted"
    kids = co(kube).list_namespaced_custom_object(G, V, ns, "runs", label_selector="cairn.dev/reexecution=wait-1")
    assert [r["metadata"]["name"] for r in kids["items"]] == [child]


def test_from_failure_needs_a_failed_parent(kube: Any, ns: str, cairn_operator: Any) -> None:
    apply(kube, ns, sample("job-unreliable.yaml"))
    apply(kube, ns, sample("run-unreliable-succeeds.yaml"))
    wait_phase(kube, ns, "unreliable-succeeds", "Succeeded")
    create_rx(kube, ns, rx("nope", "unreliable-succeeds"))
    bad = rx_phase(kube, ns, "nope", "Invalid", timeout=30)
    assert bad["status"]["message"] == "Cannot reexecute from failure a run that is not failed or canceled"


def test_a_chain_of_three_reexecutions_with_names_labels_and_a_skipped_branch(
    cairn_operator: Any, kube: Any, ns: str, s3: Any
) -> None:
    """split -> (a: upper -> fails-once, b: optional, never produced -> use-b skipped). Each child reads
    `split` from the root and keeps use-b skipped."""
    job = {
        "apiVersion": f"{G}/{V}",
        "kind": "Job",
        "metadata": {"name": "branchy"},
        "spec": {
            "image": "alpine",
            "storage": {"secretRef": {"name": "cairn-s3"}},
            "ops": [
                {
                    "name": "split",
                    "outputs": ["a", "b"],
                    "optionalOutputs": ["b"],
                    "command": ["sh", "-c", 'printf hi > "$CAIRN_OUTPUT_A"'],
                },
                {"name": "use-b", "inputs": {"x": "split.b"}, "command": ["true"]},
                {
                    "name": "shout",
                    "inputs": {"x": "split.a"},
                    "command": [
                        "sh",
                        "-c",
                        'test "$MODE" = ok && tr a-z A-Z < "$CAIRN_INPUT_X" > "$CAIRN_OUTPUT_RESULT"',
                    ],
                },
            ],
        },
    }
    apply(kube, ns, job)
    apply(
        kube,
        ns,
        {"apiVersion": f"{G}/{V}", "kind": "Run", "metadata": {"name": "b0"}, "spec": {"jobRef": {"name": "branchy"}}},
    )
    root = wait_phase(kube, ns, "b0", "Failed", "Succeeded")
    assert {s: v["phase"] for s, v in root["status"]["steps"].items()} == {
        "split": "Succeeded",
        "use-b": "Skipped",
        "shout": "Failed",
    }
    split_key = root["status"]["steps"]["split"]["outputs"]["a"]["key"]
    parent = "b0"
    for i in (1, 2, 3):
        env = [{"name": "MODE", "value": "ok" if i == 3 else "no"}]
        create_rx(
            kube, ns, rx(f"b-rx{i}", parent, runName=f"b{i}", labels={"team": "ml"}, overrides={"shout": {"env": env}})
        )
        done = rx_phase(kube, ns, f"b-rx{i}", "Succeeded", "Failed")
        assert done["status"]["childRun"] == f"b{i}"
        assert done["status"]["plan"]["steps"] == [{"name": "shout", "reason": "failed"}]
        assert done["status"]["plan"]["skipped"] == {"use-b": "skipped in the parent run"}
        run = get_run(kube, ns, f"b{i}")
        assert run["metadata"]["labels"]["team"] == "ml" and run["metadata"]["labels"]["cairn.dev/root-run"] == "b0"
        split = run["status"]["steps"]["split"]
        assert (split["phase"], split["sourceRun"], split["outputs"]["a"]["key"]) == ("Reused", "b0", split_key)
        assert run["status"]["steps"]["use-b"]["phase"] == "Skipped"
        parent = f"b{i}"
    assert done["status"]["phase"] == "Succeeded"
    key = get_run(kube, ns, "b3")["status"]["steps"]["shout"]["outputs"]["result"]["key"]
    assert s3.get_object(Bucket=s3.bucket, Key=f"cairn/{key}")["Body"].read() == b"HI"


@pytest.mark.parametrize(
    ("mode", "selection", "ran"),
    [
        ("Selected", ["unreliable"], ["unreliable"]),
        ("All", [], ["end", "start", "unreliable"]),
        ("FromSelected", ["unreliable"], ["end", "unreliable"]),
    ],
)
def test_each_mode_end_to_end_from_the_seed_failure(
    kube: Any, core: Any, ns: str, failed_parent: dict[str, Any], mode: str, selection: list[str], ran: list[str]
) -> None:
    create_rx(kube, ns, rx("m", "unreliable-fails", mode=mode, stepSelection=selection, overrides=PASS))
    done = rx_phase(kube, ns, "m", "Succeeded", "Failed")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    child = done["status"]["childRun"]
    pods = core.list_namespaced_pod(ns, label_selector=f"cairn.dev/run={child}").items
    assert sorted(p.metadata.labels["cairn.dev/step"] for p in pods) == ran
    run = get_run(kube, ns, child)
    assert run["metadata"]["annotations"]["cairn.dev/reexecution-mode"] == mode


def test_a_child_created_just_before_the_operator_died_is_adopted_not_doubled(
    cairn_operator: Any, kube: Any, ns: str, failed_parent: dict[str, Any]
) -> None:
    """The operator created the child, then died before it wrote the Reexecution's status."""
    cairn_operator.stop()
    try:
        create_rx(kube, ns, rx("adopt", "unreliable-fails", runName="adopted-child", overrides=PASS))
        # What the dead cycle had created: the child (as the controller makes it), with no rx status.
        child = {
            "apiVersion": f"{G}/{V}",
            "kind": "Run",
            "metadata": {
                "name": "adopted-child",
                "labels": {
                    "cairn.dev/parent-run": "unreliable-fails",
                    "cairn.dev/root-run": "unreliable-fails",
                    "cairn.dev/reexecution": "adopt",
                },
            },
            "spec": {"jobRef": {"name": "unreliable"}, "overrides": PASS},
        }
        co(kube).create_namespaced_custom_object(G, V, ns, "runs", child)
    finally:
        cairn_operator.restart()
    done = rx_phase(kube, ns, "adopt", "Succeeded", "Failed")
    assert done["status"]["childRun"] == "adopted-child"
    kids = co(kube).list_namespaced_custom_object(G, V, ns, "runs", label_selector="cairn.dev/reexecution=adopt")
    assert [r["metadata"]["name"] for r in kids["items"]] == ["adopted-child"]
    # Applying the same manifest again changes nothing: still one child.
    again = co(kube).get_namespaced_custom_object(G, V, ns, "reexecutions", "adopt")
    co(kube).replace_namespaced_custom_object(G, V, ns, "reexecutions", "adopt", again)
    assert (
        len(
            co(kube).list_namespaced_custom_object(G, V, ns, "runs", label_selector="cairn.dev/reexecution=adopt")[
                "items"
            ]
        )
        == 1
    )


def test_a_child_deleted_mid_run_releases_its_parent(
    cairn_operator: Any, kube: Any, core: Any, ns: str, tmp_path: Any
) -> None:
    from tests.integration.test_operator import run_of, slow_job_recording

    apply(kube, ns, slow_job_recording(tmp_path, sleep=120))
    apply(kube, ns, run_of("slow", "p3"))
    eventually(lambda: (tmp_path / "started").exists(), timeout=60, what="the slow step to start")
    pod = core.list_namespaced_pod(ns, label_selector="cairn.dev/run=p3,cairn.dev/step=slow").items[0]
    core.delete_namespaced_pod(pod.metadata.name, ns)  # interrupted: the parent fails
    wait_phase(kube, ns, "p3", "Failed", timeout=60)
    (tmp_path / "started").unlink()
    create_rx(kube, ns, rx("again-3", "p3"))
    child = rx_phase(kube, ns, "again-3", "Running", "Failed", "Succeeded")["status"]["childRun"]
    eventually(lambda: (tmp_path / "started").exists(), timeout=60, what="the child's slow step to start")
    assert "cairn.dev/children" in get_run(kube, ns, "p3")["metadata"]["finalizers"]
    co(kube).delete_namespaced_custom_object(G, V, ns, "runs", child)  # mid-run
    eventually(
        lambda: "cairn.dev/children" not in (get_run(kube, ns, "p3")["metadata"].get("finalizers") or []),
        timeout=30,
        what="the parent's protection to go with its only child",
    )
    gone = rx_phase(kube, ns, "again-3", "Failed", timeout=30)
    assert gone["status"]["message"] == f"child Run {child} was deleted"
    co(kube).delete_namespaced_custom_object(G, V, ns, "runs", "p3")

    def parent_gone() -> bool:
        return not any(
            r["metadata"]["name"] == "p3" for r in co(kube).list_namespaced_custom_object(G, V, ns, "runs")["items"]
        )

    eventually(parent_gone, timeout=30, what="the parent to be deletable")


def test_the_parent_can_always_be_deleted_after_refused_creates_deleted_children_and_restarts(
    cairn_operator: Any, kube: Any, core: Any, ns: str, failed_parent: dict[str, Any]
) -> None:
    """Finalizers: the parent's protection is added only once a child exists, dropped when no live child
    needs it, and re-checked every time: a create the API server refuses (an admission policy here), a
    child deleted mid-run and operator restarts between them never leave the parent undeletable."""
    from kubernetes import client

    adm = client.AdmissionregistrationV1Api(kube)
    policy, binding = f"no-blocked-runs-{ns}", f"no-blocked-runs-{ns}"
    adm.create_validating_admission_policy(
        {
            "metadata": {"name": policy},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [G],
                            "apiVersions": [V],
                            "operations": ["CREATE"],
                            "resources": ["runs"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "!object.metadata.name.startsWith('blocked')",
                        "message": "runs named blocked* are not allowed here",
                    }
                ],
            },
        }
    )
    adm.create_validating_admission_policy_binding(
        {
            "metadata": {"name": binding},
            "spec": {
                "policyName": policy,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}},
            },
        }
    )
    try:

        def finalizers() -> list[str]:
            return list(get_run(kube, ns, "unreliable-fails")["metadata"].get("finalizers") or [])

        def enforced() -> bool:  # the policy takes a moment to be enforced: probe it with a dry run
            probe = {"apiVersion": f"{G}/{V}", "kind": "Run", "metadata": {"name": "blocked-probe"}, "spec": {}}
            probe["spec"] = {"jobRef": {"name": "unreliable"}}
            try:
                co(kube).create_namespaced_custom_object(G, V, ns, "runs", probe, dry_run="All")
            except client.exceptions.ApiException as exc:
                return "not allowed here" in str(exc.body)
            return False

        eventually(enforced, timeout=60, interval=0.5, what="the admission policy to be enforced")
        create_rx(kube, ns, rx("try", "unreliable-fails", mode="All", runName="blocked-run"))
        bad = rx_phase(kube, ns, "try", "Failed", "Running", "Succeeded", timeout=60)
        assert bad["status"]["phase"] == "Failed", bad["status"]
        assert bad["status"]["conditions"][2]["reason"] == "ChildCreateRefused"
        assert "runs named blocked* are not allowed here" in bad["status"]["message"]
        assert "cairn.dev/children" not in finalizers()  # never added: no child exists
        cairn_operator.restart()
        create_rx(kube, ns, rx("kid", "unreliable-fails", mode="All", runName="kid-run"))
        eventually(lambda: "cairn.dev/children" in finalizers(), timeout=60, what="the parent protected by its child")
        cairn_operator.restart()
        co(kube).delete_namespaced_custom_object(G, V, ns, "runs", "kid-run")  # running or just done
        eventually(lambda: "cairn.dev/children" not in finalizers(), timeout=60, what="the protection released")
        co(kube).delete_namespaced_custom_object(G, V, ns, "runs", "unreliable-fails")
        eventually(
            lambda: (
                not any(
                    r["metadata"]["name"] == "unreliable-fails"
                    for r in co(kube).list_namespaced_custom_object(G, V, ns, "runs")["items"]
                )
            ),
            timeout=30,
            what="the parent to be deleted",
        )
    finally:
        adm.delete_validating_admission_policy_binding(binding)
        adm.delete_validating_admission_policy(policy)


def test_stale_reexecutes_what_changed_in_the_job_and_reuses_the_rest(cairn_operator: Any, kube: Any, ns: str) -> None:
    apply(kube, ns, sample("job-unreliable.yaml"))
    apply(kube, ns, sample("run-unreliable-succeeds.yaml"))
    parent = wait_phase(kube, ns, "unreliable-succeeds", "Succeeded", "Failed")
    assert parent["status"]["phase"] == "Succeeded", parent["status"]
    recorded = {s: st.get("version") for s, st in parent["status"]["steps"].items()}
    assert all(recorded.values()), recorded  # every succeeded step says which version produced it
    # nothing changed since: nothing is stale, said
    create_rx(kube, ns, rx("same", "unreliable-succeeds", mode="Stale"))
    same = rx_phase(kube, ns, "same", "Invalid", "Running", "Failed", timeout=60)
    assert same["status"]["phase"] == "Invalid" and "Nothing is stale" in same["status"]["message"]
    # a new release of the `unreliable` op: it and what reads it re-run, `start` is reused in place
    job = co(kube).get_namespaced_custom_object(G, V, ns, "jobs", "unreliable")
    ops = job["spec"]["ops"]
    next(o for o in ops if o["name"] == "unreliable")["codeVersion"] = "v2"
    co(kube).patch_namespaced_custom_object(G, V, ns, "jobs", "unreliable", {"spec": {"ops": ops}})
    # (the parent's CAIRN_UNRELIABLE=pass override is not inherited: the child is given it; env is no version)
    create_rx(kube, ns, rx("release", "unreliable-succeeds", mode="Stale", overrides=PASS))
    done = rx_phase(kube, ns, "release", "Succeeded", "Failed", "Invalid", timeout=120)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    plan = done["status"]["plan"]
    assert [(s["name"], s["reason"].split(" ")[0]) for s in plan["steps"]] == [
        ("unreliable", "stale:"),
        ("end", "downstream-of:unreliable"),
    ]
    assert plan["versions"]["unreliable"]["old"] == recorded["unreliable"]
    assert plan["versions"]["unreliable"]["new"].startswith("v2+img:")
    child = get_run(kube, ns, done["status"]["childRun"])
    assert child["status"]["steps"]["start"]["phase"] == "Reused"
    assert child["status"]["steps"]["start"]["version"] == recorded["start"]
    assert child["status"]["steps"]["unreliable"]["version"].startswith("v2+img:")
