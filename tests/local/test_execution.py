"""The in-process executor end to end, on a real instance (SQLite + filesystem) in a temp directory."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cairn import (
    ConfigError,
    DefinitionError,
    Field,
    Instance,
    MissingOutputsError,
    ReexecutionError,
    ReexecutionOptions,
    RunNotFoundError,
    RunStatus,
    StepSelectionError,
    StepStatus,
    execute_job,
    job,
    op,
    reconstructable,
)
from cairn.planner import Mode
from tests.local import jobs

ROOT = Path(__file__).resolve().parents[2]
OK, FAIL, SKIP, NOTX, REUSED = (
    StepStatus.SUCCESS,
    StepStatus.FAILURE,
    StepStatus.SKIPPED,
    StepStatus.NOT_EXECUTED,
    StepStatus.REUSED,
)


@pytest.fixture
def instance(tmp_path: Path) -> Instance:
    return Instance.local(tmp_path / "home")


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "calls"
    monkeypatch.setenv(jobs.CALLS_FILE, str(path))
    return path


def ran(calls: Path) -> list[str]:
    lines = calls.read_text().splitlines() if calls.exists() else []
    calls.unlink(missing_ok=True)
    return lines


def db_rows(instance: Instance, run_id: str) -> Any:
    con = sqlite3.connect(instance.db_path)
    try:
        return [
            con.execute(f"SELECT * FROM {t} WHERE run_id=? ORDER BY 1, 2", (run_id,)).fetchall()
            for t in ("runs", "steps", "outputs")
        ]
    finally:
        con.close()


FAIL_CONFIG = {"ops": {"unreliable": {"config": {"fail": True}}}}


def test_the_seed_example_and_its_reexecution(instance: Instance, calls: Path) -> None:
    first = execute_job(reconstructable(jobs.unreliable_job), instance=instance, run_config=FAIL_CONFIG)
    assert (first.success, first.status) == (False, RunStatus.FAILURE)
    assert first.step_statuses == {"start": OK, "unreliable": FAIL, "end": NOTX}
    assert first.executed_steps == ["start", "unreliable"]
    assert ran(calls) == ["start", "unreliable"]
    before = db_rows(instance, first.run_id)

    options = ReexecutionOptions(parent_run_id=first.run_id, step_selection=["unreliable*"])
    second = execute_job(
        reconstructable(jobs.unreliable_job), instance=instance, reexecution_options=options, run_config={}
    )
    assert second.success
    assert second.step_statuses == {"start": REUSED, "unreliable": OK, "end": OK}
    assert second.executed_steps == ["unreliable", "end"]
    assert ran(calls) == ["unreliable", "end"]  # start's body did not run again
    assert second.output_from_lineage("end") == 20
    assert second.output_from_lineage("start") == 1  # loaded from the parent, where it was produced

    record = instance.get_run(second.run_id)
    assert (record.parent_run_id, record.root_run_id) == (first.run_id, first.run_id)
    assert record.tags == {
        "team": "ml",
        "cairn.dev/parent-run": first.run_id,
        "cairn.dev/root-run": first.run_id,
        "cairn.dev/reexecution-mode": "selected",
    }
    assert record.steps["start"].source_run_id == first.run_id
    assert record.outputs[("start", "result")].run_id == first.run_id
    # Zero bytes copied: the child stored nothing for `start`, and reads the parent's key.
    child_dir = instance.root / "storage" / "local" / second.run_id
    assert sorted(p.name for p in child_dir.iterdir()) == ["end", "unreliable"]
    assert db_rows(instance, first.run_id) == before  # the parent is never modified
    assert instance.get_run(first.run_id).status is RunStatus.FAILURE


def test_from_failure_and_a_chain_of_reexecutions_read_from_the_producing_run(
    instance: Instance, calls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_TEST_FAIL", "1")
    root = execute_job(jobs.unreliable_job, instance=instance)
    child = execute_job(
        jobs.unreliable_job,
        instance=instance,
        reexecution_options=ReexecutionOptions.from_failure(root.run_id, instance),
    )
    assert child.status is RunStatus.FAILURE  # still failing: a second failed run in the lineage
    monkeypatch.setenv("CAIRN_TEST_FAIL", "0")
    ran(calls)
    grandchild = execute_job(
        jobs.unreliable_job,
        instance=instance,
        reexecution_options=ReexecutionOptions.from_failure(child.run_id, instance),
    )
    assert grandchild.success and ran(calls) == ["unreliable", "end"]
    assert [dict(grandchild.plan.to_run)[s] for s in ("unreliable", "end")] == ["failed", "downstream-of:unreliable"]
    g = instance.get_run(grandchild.run_id)
    assert g.parent_run_id == child.run_id and g.root_run_id == root.run_id
    # start was produced by the root: the grandchild reads it from there, not from its parent.
    assert g.outputs[("start", "result")].run_id == root.run_id
    assert g.outputs[("start", "result")].key == f"local/{root.run_id}/start/result"
    great = execute_job(
        jobs.unreliable_job, instance=instance, reexecution_options=ReexecutionOptions(grandchild.run_id, ["end"])
    )
    assert great.plan.reused[("unreliable", "result")].run_id == grandchild.run_id
    assert great.output_from_lineage("end") == 20
    assert [r.run_id for r in instance.get_run_group(child.run_id)] == [
        root.run_id,
        child.run_id,
        grandchild.run_id,
        great.run_id,
    ]


@pytest.mark.parametrize(
    ("mode", "selection", "statuses", "executed"),
    [
        (Mode.ALL, (), {"start": OK, "unreliable": OK, "end": OK}, ["start", "unreliable", "end"]),
        (Mode.SELECTED, ("unreliable",), {"start": REUSED, "unreliable": OK, "end": REUSED}, ["unreliable"]),
        (Mode.FROM_SELECTED, ("start",), {"start": OK, "unreliable": OK, "end": OK}, ["start", "unreliable", "end"]),
        (Mode.SELECTED, ("*end",), {"start": OK, "unreliable": OK, "end": OK}, ["start", "unreliable", "end"]),
    ],
)
def test_modes_on_a_successful_parent(
    instance: Instance, mode: Mode, selection: tuple[str, ...], statuses: dict[str, StepStatus], executed: list[str]
) -> None:
    parent = execute_job(jobs.unreliable_job, instance=instance)
    child = execute_job(
        jobs.unreliable_job, instance=instance, reexecution_options=ReexecutionOptions(parent.run_id, selection, mode)
    )
    assert child.step_statuses == statuses
    assert child.executed_steps == executed
    assert instance.get_run(child.run_id).tags["cairn.dev/reexecution-mode"] == mode.value


def test_reexecution_errors(instance: Instance) -> None:
    ok = execute_job(jobs.unreliable_job, instance=instance)
    not_failed = ReexecutionOptions.from_failure(ok.run_id, instance)  # as Dagster's, it reads nothing yet
    with pytest.raises(ReexecutionError, match=r"^Cannot reexecute from failure a run that is not failed or canceled$"):
        execute_job(jobs.unreliable_job, instance=instance, reexecution_options=not_failed)
    with pytest.raises(StepSelectionError, match=r"^Step selection refers to unknown step: nope$"):
        execute_job(jobs.unreliable_job, instance=instance, reexecution_options=ReexecutionOptions(ok.run_id, ["nope"]))
    with pytest.raises(StepSelectionError, match="No qualified steps to execute found for step_selection"):
        execute_job(jobs.unreliable_job, instance=instance, reexecution_options=ReexecutionOptions(ok.run_id, ["a b"]))
    with pytest.raises(RunNotFoundError, match="Run 0000 not found in the run store"):
        execute_job(jobs.unreliable_job, instance=instance, reexecution_options=ReexecutionOptions("0000"))
    with pytest.raises(ReexecutionError, match="is a run of job 'unreliable_job', not 'branches'"):
        execute_job(jobs.branches, instance=instance, reexecution_options=ReexecutionOptions(ok.run_id))
    runs = instance.run_ids()
    assert len(runs) == 1  # refused re-executions created no run


def test_missing_outputs_refuse_or_rerun_their_producer(instance: Instance, calls: Path) -> None:
    first = execute_job(jobs.unreliable_job, instance=instance, run_config=FAIL_CONFIG)
    key = f"local/{first.run_id}/start/result"
    (instance.root / "storage" / key).unlink()
    ran(calls)
    with pytest.raises(MissingOutputsError) as err:
        execute_job(
            jobs.unreliable_job,
            instance=instance,
            reexecution_options=ReexecutionOptions.from_failure(first.run_id, instance),
            run_config={},
        )
    assert err.value.missing == [("start", "result", key)]
    assert str(instance.root / "storage" / key) in str(err.value)
    assert ran(calls) == []  # nothing ran
    fixed = execute_job(
        jobs.unreliable_job,
        instance=instance,
        run_config={},
        reexecution_options=ReexecutionOptions.from_failure(first.run_id, instance, rerun_missing=True),
    )
    assert fixed.success and ran(calls) == ["start", "unreliable", "end"]
    assert dict(fixed.plan.to_run)["start"] == "missing-output"


def test_a_missing_ancestor_run_is_named(instance: Instance) -> None:
    root = execute_job(jobs.unreliable_job, instance=instance, run_config=FAIL_CONFIG)
    child = execute_job(
        jobs.unreliable_job,
        instance=instance,
        run_config=FAIL_CONFIG,
        reexecution_options=ReexecutionOptions.from_failure(root.run_id, instance),
    )
    con = sqlite3.connect(instance.db_path)
    con.execute("DELETE FROM runs WHERE run_id=?", (root.run_id,))
    con.commit()
    con.close()
    with pytest.raises(ReexecutionError, match=f"stored by run {root.run_id} at .*no longer in the run store"):
        execute_job(
            jobs.unreliable_job,
            instance=instance,
            reexecution_options=ReexecutionOptions.from_failure(child.run_id, instance),
        )


def test_config_is_checked_and_reused_by_reexecutions(instance: Instance) -> None:
    with pytest.raises(ConfigError, match=r"unreliable\.config\.fail must be bool"):
        execute_job(jobs.unreliable_job, instance=instance, run_config={"ops": {"unreliable": {"config": {"fail": 3}}}})
    with pytest.raises(ConfigError, match="names op\\(s\\) not in job unreliable_job: nope"):
        execute_job(jobs.unreliable_job, instance=instance, run_config={"ops": {"nope": {}}})
    with pytest.raises(ConfigError, match="unknown key\\(s\\) extra"):
        execute_job(
            jobs.unreliable_job, instance=instance, run_config={"ops": {"unreliable": {"config": {"extra": 1}}}}
        )
    first = execute_job(jobs.unreliable_job, instance=instance, run_config=FAIL_CONFIG)
    again = execute_job(
        jobs.unreliable_job,
        instance=instance,
        reexecution_options=ReexecutionOptions.from_failure(first.run_id, instance),
    )
    assert instance.get_run(again.run_id).run_config == FAIL_CONFIG and not again.success  # the parent's config
    fixed = execute_job(
        jobs.unreliable_job,
        instance=instance,
        run_config={},
        reexecution_options=ReexecutionOptions.from_failure(first.run_id, instance),
    )
    assert fixed.success


def test_optional_outputs_skip_their_consumers_and_skips_stay_skipped(
    instance: Instance, calls: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_TEST_FAIL", "1")
    cfg = {"ops": {"split": {"config": {"emit_b": False}}}}
    first = execute_job(jobs.branches, instance=instance, run_config=cfg)
    assert first.step_statuses == {"split": OK, "use_a": OK, "use_b": SKIP, "after_b": SKIP, "boom": FAIL}
    assert first.status is RunStatus.FAILURE  # independent branches finished; the run failed
    monkeypatch.setenv("CAIRN_TEST_FAIL", "0")
    ran(calls)
    retry = execute_job(
        jobs.branches, instance=instance, reexecution_options=ReexecutionOptions.from_failure(first.run_id, instance)
    )
    assert retry.success and ran(calls) == ["boom"]
    assert retry.step_statuses == {"split": REUSED, "use_a": REUSED, "use_b": SKIP, "after_b": SKIP, "boom": OK}
    assert retry.plan.skipped == {"use_b": "skipped in the parent run", "after_b": "skipped in the parent run"}


def test_a_rerun_step_that_no_longer_emits_an_optional_output_leaves_no_stale_one(
    instance: Instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent emitted split.b; the child re-runs split without it: use_b is skipped in the child (it
    must not read the parent's old b), and the child's output index no longer lists split.b."""
    monkeypatch.setenv("CAIRN_TEST_FAIL", "0")
    first = execute_job(jobs.branches, instance=instance)
    assert first.success and ("split", "b") in instance.get_run(first.run_id).outputs
    child = execute_job(
        jobs.branches,
        instance=instance,
        run_config={"ops": {"split": {"config": {"emit_b": False}}}},
        reexecution_options=ReexecutionOptions(first.run_id, ["split*"]),
    )
    assert child.step_statuses["use_b"] is SKIP and child.step_statuses["after_b"] is SKIP
    index = instance.get_run(child.run_id).outputs
    assert ("split", "b") not in index and index[("split", "a")].run_id == child.run_id


def test_multiple_outputs_and_formats(instance: Instance) -> None:
    r = execute_job(jobs.branches, instance=instance)
    assert r.success and (r.output_from_lineage("split", "a"), r.output_from_lineage("split", "b")) == (1, 2)
    assert r.output_from_lineage("after_b") == 202
    f = execute_job(jobs.formats_job, instance=instance)
    assert f.output_from_lineage("read_formats") == "[1, 2]-b'\\x00\\x01raw'"
    stored = instance.root / "storage" / "local" / f.run_id / "formats"
    assert json.loads((stored / "doc").read_text()) == {"k": [1, 2]}
    assert (stored / "raw").read_bytes() == b"\x00\x01raw"
    rec = instance.get_run(f.run_id).steps["formats"].outputs["raw"]
    assert rec.size == 5 and len(rec.sha256) == 64


def test_an_op_used_twice_gets_an_alias(instance: Instance) -> None:
    assert list(jobs.reuse_op.nodes) == ["start", "twice", "twice_2"]
    assert execute_job(jobs.reuse_op, instance=instance).output_from_lineage("twice_2") == 4


def test_raise_on_error(instance: Instance) -> None:
    # As Dagster's in-process executor: the op's own error, once the run has ended (recorded as failed).
    with pytest.raises(Exception, match=r"^blah$") as err:
        execute_job(jobs.unreliable_job, instance=instance, run_config=FAIL_CONFIG, raise_on_error=True)
    assert type(err.value) is Exception
    assert [r.status for r in instance.list_runs(1)] == [RunStatus.FAILURE]


def test_definition_errors_are_clear() -> None:
    @op
    def needs(x: int) -> int:
        return x

    with pytest.raises(DefinitionError, match="input 'x' of op needs is not connected"):

        @job
        def broken() -> None:
            needs()

    with pytest.raises(DefinitionError, match="must be an op's output, got int"):

        @job
        def constant() -> None:
            needs(3)


def _run_in_subprocess(job_ref: str, home: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    code = (
        # A shell's background job inherits SIGINT ignored, and Python then installs no KeyboardInterrupt
        # handler: restore Python's own, so the test does not depend on how the test run was started.
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "import sys; from cairn import execute_job, Instance; from cairn.loader import load_job; "
        f"r = execute_job(load_job({job_ref!r}), instance=Instance.local({str(home)!r})); "
        "print(r.run_id, r.status.value, flush=True)"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_cancels_the_run_and_from_failure_resumes_it(
    tmp_path: Path, instance: Instance, sig: signal.Signals
) -> None:
    started = tmp_path / "started"
    proc = _run_in_subprocess("tests.local.jobs:slow_job", instance.root, {"CAIRN_TEST_STARTED": str(started)})
    _wait_for(started)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    run_id, status = out.split()
    assert status == "CANCELED", err
    run = instance.get_run(run_id)
    assert run.status is RunStatus.CANCELED
    assert run.steps["slow"].interrupted and run.steps["slow"].status is FAIL
    assert run.step_statuses == {"start": OK, "slow": FAIL, "end": NOTX}
    os.environ["CAIRN_TEST_FAST"] = "1"
    try:
        resumed = execute_job(
            jobs.slow_job, instance=instance, reexecution_options=ReexecutionOptions.from_failure(run_id, instance)
        )
    finally:
        del os.environ["CAIRN_TEST_FAST"]
    assert resumed.success and resumed.executed_steps == ["slow", "end"]
    assert dict(resumed.plan.to_run) == {"slow": "interrupted", "end": "downstream-of:slow"}


def test_a_run_whose_process_died_reads_as_failure_with_the_step_interrupted(instance: Instance) -> None:
    proc = _run_in_subprocess("tests.local.jobs:dying_job", instance.root, {})
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    (run_id,) = instance.run_ids()
    run = instance.get_run(run_id)
    assert run.status is RunStatus.FAILURE and run.process_lost
    assert run.steps["die"].interrupted and run.step_statuses == {"start": OK, "die": FAIL, "end": NOTX}
    raw = sqlite3.connect(instance.db_path).execute("SELECT status FROM runs").fetchone()
    assert raw == ("STARTED",)  # detected on read; the record itself is left as it was
    os.environ["CAIRN_TEST_FAST"] = "1"
    try:
        resumed = execute_job(
            jobs.dying_job, instance=instance, reexecution_options=ReexecutionOptions.from_failure(run_id, instance)
        )
    finally:
        del os.environ["CAIRN_TEST_FAST"]
    assert resumed.success and dict(resumed.plan.to_run) == {"die": "interrupted", "end": "downstream-of:die"}


def test_a_run_records_where_its_job_is_defined(instance: Instance) -> None:
    """A job declared at module level is found again by reference: the CLI and `cairn ui --local` can
    re-execute (and draw) its runs without being told where the job is."""
    r = execute_job(jobs.unreliable_job, instance=instance, run_config={})
    ref = instance.get_run(r.run_id).job_ref
    assert ref == "tests.local.jobs:unreliable_job"
    from cairn.loader import load_job

    assert load_job(ref).name == jobs.unreliable_job.name


def _versioned_job(double_version: str) -> Any:
    """The same job (name, ops) twice over: `double` at code version `double_version`."""

    @op(code_version="v1")
    def load() -> int:
        return 20

    @op(code_version=double_version, config_schema={"factor": Field(int, default_value=2)})
    def double(context: Any, n: int) -> int:
        factor: int = context.op_config["factor"]
        return n * factor + (1 if double_version == "v2" else 0)

    @op(code_version="v1")
    def report(n: int) -> str:
        return f"n={n}"

    @job(name="versioned")
    def versioned() -> None:
        report(double(load()))

    return versioned


def test_stale_reexecution_reruns_what_changed_and_reuses_the_rest(instance: Instance) -> None:
    first = execute_job(_versioned_job("v1"), instance=instance)
    assert first.success and first.output_from_lineage("report") == "n=40"
    recorded = {s: r.version for s, r in instance.get_run(first.run_id).steps.items()}
    assert recorded["double"] is not None and recorded["double"].startswith("v1+cfg:")
    # nothing changed: nothing to do, said
    with pytest.raises(ReexecutionError, match="Nothing is stale"):
        execute_job(_versioned_job("v1"), instance=instance, reexecution_options=ReexecutionOptions.stale(first.run_id))
    # double's code changed: it and report re-run, load is reused in place
    code = execute_job(
        _versioned_job("v2"), instance=instance, reexecution_options=ReexecutionOptions.stale(first.run_id)
    )
    assert code.success and code.executed_steps == ["double", "report"]
    assert code.step_statuses["load"] is StepStatus.REUSED and code.output_from_lineage("report") == "n=41"
    old, new = code.plan.versions["double"]
    assert old is not None and new is not None and old.startswith("v1+") and new.startswith("v2+")
    assert dict(code.plan.to_run)["double"] == f"stale: {old} -> {new}"
    # a child of that child with the same code: nothing stale (load's version came down from the root)
    with pytest.raises(ReexecutionError, match="Nothing is stale"):
        execute_job(_versioned_job("v2"), instance=instance, reexecution_options=ReexecutionOptions.stale(code.run_id))
    # a config change of double is a change too
    cfg = execute_job(
        _versioned_job("v2"),
        instance=instance,
        run_config={"ops": {"double": {"config": {"factor": 3}}}},
        reexecution_options=ReexecutionOptions.stale(code.run_id),
    )
    assert cfg.executed_steps == ["double", "report"] and cfg.output_from_lineage("report") == "n=61"


def test_a_store_from_before_versions_is_read_and_its_steps_count_as_unrecorded(tmp_path: Path) -> None:
    home = tmp_path / "old"
    old = Instance(home)
    first = execute_job(_versioned_job("v1"), instance=old)
    old._conn.execute("ALTER TABLE steps DROP COLUMN version")  # as cairn 0.1 wrote it
    old._conn.execute("UPDATE steps SET state='SUCCESS' WHERE run_id=?", (first.run_id,))  # its state names too
    old.close()
    again = Instance(home)
    run = again.get_run(first.run_id)
    assert {s: (r.state.value, r.version) for s, r in run.steps.items()} == {
        "load": ("Succeeded", None),
        "double": ("Succeeded", None),
        "report": ("Succeeded", None),
    }
    stale = execute_job(
        _versioned_job("v1"), instance=again, reexecution_options=ReexecutionOptions.stale(first.run_id)
    )
    assert stale.success and dict(stale.plan.to_run)["load"].startswith("stale: unrecorded -> v1+cfg:")
