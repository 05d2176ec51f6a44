"""The local run store split by concern: instance settings from the environment, schema migration, process
liveness, and the read model of a run whose process is gone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cairn import Instance
from cairn.errors import CairnError
from cairn.instance import InstanceSettings, OutputStore, settings_from_env
from cairn.liveness import alive, lost, proc_start, this_process
from cairn.records import read_run
from cairn.runstate import StepState
from cairn.runstore import ADDED_COLUMNS, Column, RunStore, missing_columns
from cairn.status import RunStatus


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, InstanceSettings(Path(".cairn"), OutputStore.FS, "cairn")),
        ({"CAIRN_HOME": ""}, InstanceSettings(Path(".cairn"), OutputStore.FS, "cairn")),
        ({"CAIRN_HOME": "/h", "CAIRN_IO_MANAGER": "fs"}, InstanceSettings(Path("/h"), OutputStore.FS, "cairn")),
        ({"CAIRN_IO_MANAGER": "s3"}, InstanceSettings(Path(".cairn"), OutputStore.S3, "cairn")),
        ({"CAIRN_IO_MANAGER": "s3", "CAIRN_S3_PREFIX": ""}, InstanceSettings(Path(".cairn"), OutputStore.S3, "")),
        ({"CAIRN_S3_PREFIX": "team/a"}, InstanceSettings(Path(".cairn"), OutputStore.FS, "team/a")),
    ],
)
def test_settings_from_env(env: dict[str, str], expected: InstanceSettings) -> None:
    assert settings_from_env(env) == expected


@pytest.mark.parametrize("kind", ["", "S3", "gcs"])
def test_an_unknown_output_store_is_refused_naming_the_choices(kind: str) -> None:
    with pytest.raises(CairnError, match=f"CAIRN_IO_MANAGER='{kind}': use 'fs' \\(default\\) or 's3'"):
        settings_from_env({"CAIRN_IO_MANAGER": kind})


def test_local_takes_its_home_from_the_path_else_the_settings(tmp_path: Path) -> None:
    settings = InstanceSettings(home=tmp_path / "from-settings")
    for path, home in [
        (None, tmp_path / "from-settings"),
        ("", tmp_path / "from-settings"),
        (tmp_path / "p", tmp_path / "p"),
    ]:
        instance = Instance.local(path, settings=settings)
        try:
            assert instance.root == home and (home / "runs.db").is_file()
        finally:
            instance.close()


def test_local_reads_the_environment_when_given_no_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_HOME", str(tmp_path / "env-home"))
    monkeypatch.setenv("CAIRN_IO_MANAGER", "fs")
    instance = Instance.local()
    try:
        assert instance.root == tmp_path / "env-home" and instance.namespace == "local"
    finally:
        instance.close()
    monkeypatch.setenv("CAIRN_IO_MANAGER", "nfs")
    with pytest.raises(CairnError, match="CAIRN_IO_MANAGER='nfs'"):
        Instance.local(tmp_path / "elsewhere")


@pytest.mark.parametrize(
    ("existing", "missing"),
    [
        ({"steps": {"run_id", "step", "version", "attempts"}}, []),
        ({"steps": {"run_id", "step", "attempts"}}, [Column("steps", "version", "TEXT")]),
        ({"steps": {"run_id", "step", "version"}}, [Column("steps", "attempts", "INTEGER NOT NULL DEFAULT 0")]),
        ({}, list(ADDED_COLUMNS)),
    ],
)
def test_missing_columns(existing: dict[str, set[str]], missing: list[Column]) -> None:
    assert missing_columns(existing) == missing


def test_a_store_without_an_added_column_gets_it_and_its_rows_read_null(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.db")
    store.create_run("r", "j", None, "r", {}, {}, [("a", StepState.PENDING, None, None, "v1")], {}, {})
    store._conn.execute("ALTER TABLE steps DROP COLUMN version")
    store.close()
    again = RunStore(tmp_path / "runs.db")
    try:
        assert again.get_run("r").steps["a"].version is None
        again.step_finished("r", "a", StepState.SUCCEEDED, version="v2")
        assert again.get_run("r").steps["a"].version == "v2"
    finally:
        again.close()


# ----- liveness --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "host", "is_alive", "expected"),
    [
        (RunStatus.STARTED, "here", False, True),
        (RunStatus.STARTED, "here", True, False),
        (RunStatus.STARTED, "elsewhere", False, False),  # another host's process cannot be seen from here
        (RunStatus.STARTED, None, False, False),
        (RunStatus.SUCCESS, "here", False, False),
        (RunStatus.FAILURE, "here", False, False),
    ],
)
def test_lost(status: RunStatus, host: str | None, is_alive: bool, expected: bool) -> None:
    assert lost(status, host, 1, 2, here="here", is_alive=lambda _pid, _start: is_alive) is expected


def test_proc_start_reads_the_field_after_a_command_name_with_spaces_and_parentheses(tmp_path: Path) -> None:
    fields = ["S"] + [str(n) for n in range(4, 22)] + ["123456", "0"]  # fields 3..21, 22 (start time), 23
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "stat").write_text(f"7 (a (b) c) {' '.join(fields)}\n")
    assert proc_start(7, tmp_path) == 123456
    assert proc_start(8, tmp_path) is None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="start times are read from /proc")
def test_this_process_is_alive_and_a_finished_or_reused_pid_is_not() -> None:
    me = this_process()
    assert me.pid == os.getpid() and me.start is not None and alive(me.pid, me.start)
    assert not alive(me.pid, me.start + 1)  # the same pid, another process (the pid was reused)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not alive(child.pid, proc_start(os.getpid()))
    assert alive(None, None)  # nothing recorded: trust the record


def _says(answer: bool) -> Callable[[int | None, int | None], bool]:
    return lambda _pid, _start: answer


@pytest.mark.parametrize(
    ("elsewhere", "is_alive", "status", "process_lost", "state"),
    [
        (False, False, RunStatus.FAILURE, True, StepState.INTERRUPTED),
        (False, True, RunStatus.STARTED, False, StepState.RUNNING),
        (True, False, RunStatus.STARTED, False, StepState.RUNNING),  # another host's run is not judged
    ],
)
def test_a_lost_run_reads_as_failure_with_its_running_step_interrupted_and_is_left_unchanged(
    tmp_path: Path, elsewhere: bool, is_alive: bool, status: RunStatus, process_lost: bool, state: StepState
) -> None:
    store = RunStore(tmp_path / "runs.db")
    try:
        rows = [("a", StepState.PENDING, None, None, None), ("b", StepState.PENDING, None, None, None)]
        store.create_run("r", "j", None, "r", {}, {}, rows, {}, {})
        store.step_started("r", "a")
        here = "another-host" if elsewhere else store.host
        run = read_run(store._conn, "r", here=here, is_alive=_says(is_alive))
        assert run is not None
        assert (run.status, run.process_lost, run.steps["a"].state) == (status, process_lost, state)
        assert run.steps["b"].state is StepState.PENDING
        assert store.get_run("r").status is RunStatus.STARTED  # the record is unchanged; this process is alive
        assert read_run(store._conn, "nope", here=store.host) is None
    finally:
        store.close()
