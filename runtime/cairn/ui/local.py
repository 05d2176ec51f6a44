"""The UI's local source: the in-process run store (`cairn.instance.Instance`) and its re-executions.

Reads go to the run store (SQLite, WAL). A re-execution runs in a background thread through
`cairn.execution.execute_job` with `ReexecutionOptions`, on its own `Instance` (its own SQLite
connection); the job is loaded from the reference the parent run recorded (`job_ref`), as
`cairn reexecute` does. Changes reach the pages from the executor's events and, for runs made by other
processes, from SQLite's `PRAGMA data_version` (one cheap query every half second, one thread).
Per-step env overrides are set in this process's environment while that step runs (one local
re-execution with overrides at a time); image overrides exist on Kubernetes only.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from cairn.contract import TAG_CREATED_BY, RxMode, RxPhase
from cairn.definitions import JobDefinition
from cairn.errors import CairnError, RunNotFoundError
from cairn.execution import Event, ReexecutionOptions, execute_job, job_graph
from cairn.instance import Instance, RunRecord
from cairn.loader import load_job
from cairn.planner import JobGraph, Mode, Plan, Request, plan_checked
from cairn.runstate import RunPhase, StepState
from cairn.ui.sources import PLAN_REASONS, SAME_STEPS, Publish, ReexecRequest, UIError, duration, lineage_tree

_MODES = {
    RxMode.ALL.value: Mode.ALL,
    SAME_STEPS: Mode.SELECTED,
    RxMode.SELECTED.value: Mode.SELECTED,
    RxMode.FROM_SELECTED.value: Mode.FROM_SELECTED,
    RxMode.FROM_FAILURE.value: Mode.FROM_FAILURE,
}
_UI_MODE = {m.value: n for n, m in _MODES.items() if n != SAME_STEPS}
_env_lock = threading.Lock()
NO_STEP_LOG = (
    "no live log on a local instance: in-process steps write no log of their own (their output goes to the "
    "process that runs them); a failed step's error is shown when it ends"
)


def _planned(rec: Any) -> bool:
    """Whether a step of a re-execution was in its plan (not reused, not left out, not kept skipped)."""
    st: StepState = rec.state
    if st is StepState.REUSED or (st is StepState.NOT_EXECUTED and rec.reason == "not selected"):
        return False
    return not (st is StepState.SKIPPED and rec.reason == "skipped in the parent run")


def plan_json(p: Plan) -> dict[str, Any]:
    """A planner's Plan in the shape of a Reexecution's status.plan."""
    return {
        "steps": [{"name": s, "reason": r} for s, r in p.to_run],
        "reused": [
            {"step": s, "output": o, "sourceRun": ref.run_id, "key": ref.key}
            for (s, o), ref in sorted(p.reused.items())
        ],
        "reusedSteps": dict(p.reused_steps),
        "skipped": dict(p.skipped),
    }


class LocalSource:
    """Runs of one local instance directory."""

    kind = "local"
    live_logs = False  # in-process steps write no log of their own (see NO_STEP_LOG)

    def __init__(self, home: Path, job_refs: Mapping[str, str] | None = None) -> None:
        self.home = Path(home)
        self.job_refs = dict(job_refs or {})  # job name -> module:attr, for runs that record no job_ref
        self.instance = Instance.local(self.home)
        self._lock = threading.Lock()  # one reader of the shared connection at a time
        self._jobs: dict[str, JobDefinition] = {}
        self._publish: Publish = lambda _e: None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ----- lifecycle ------------------------------------------------------------------------------
    def start(self, publish: Publish) -> None:
        self._publish = publish
        t = threading.Thread(target=self._watch, name="cairn-ui-local-watch", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)

    def _watch(self) -> None:
        """Publish a change when another connection (a re-execution here, a `cairn run` elsewhere) commits:
        SQLite's data_version of this thread's own read-only connection moves then."""
        conn = sqlite3.connect(f"file:{self.instance.db_path}?mode=ro", uri=True, timeout=30)
        try:
            last = None
            while not self._stop.wait(0.5):
                try:
                    version = conn.execute("PRAGMA data_version").fetchone()[0]
                except sqlite3.Error:
                    continue
                if last is not None and version != last:
                    self._publish({"kind": "runs", "type": "MODIFIED", "name": None})
                last = version
        finally:
            conn.close()

    def info(self) -> dict[str, Any]:
        return {"source": "local", "home": str(self.instance.root), "namespace": None}

    # ----- reads ----------------------------------------------------------------------------------
    def _run(self, name: str) -> RunRecord:
        try:
            with self._lock:
                return self.instance.get_run(name)
        except RunNotFoundError as exc:
            raise UIError(404, str(exc)) from exc

    def _job(self, r: RunRecord) -> JobDefinition:
        ref = r.job_ref or self.job_refs.get(r.job_name)
        if not ref:
            raise UIError(
                422,
                f"run {r.run_id} does not record where its job {r.job_name} is defined: start the UI with "
                f"--job {r.job_name}=module:attr",
            )
        job = self._jobs.get(ref)
        if job is None:
            try:
                job = load_job(ref)
            except (CairnError, ImportError, OSError, AttributeError) as exc:
                raise UIError(422, f"cannot load job {ref} of run {r.run_id}: {exc}") from exc
            self._jobs[ref] = job
        return job

    def _summary(self, r: RunRecord, now: float) -> dict[str, Any]:
        phase = RunPhase.of(r.status)
        starts = [s.started for s in r.steps.values() if s.started]
        ends = [s.finished for s in r.steps.values() if s.finished]
        started = min(starts) if starts else None
        finished = (max(ends) if ends else r.updated) if phase.finished else None
        subset = None if r.parent_run_id is None else [s for s, rec in r.steps.items() if _planned(rec)]
        return {
            "name": r.run_id,
            "job": r.job_name,
            "phase": phase.value,
            "progress": f"{sum(1 for s in r.steps.values() if s.state.terminal)}/{len(r.steps)}",
            "created": r.created,
            "started": started,
            "finished": finished,
            "duration": duration(started, finished, now),
            "parent": r.parent_run_id,
            "root": r.root_run_id,
            "mode": _UI_MODE.get(r.mode or "", r.mode),
            "stepSubset": subset,
        }

    def list_runs(self) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            runs = self.instance.list_runs(1000)
        return [self._summary(r, now) for r in runs]

    def get_run(self, name: str) -> dict[str, Any]:
        r = self._run(name)
        out = self._summary(r, time.time())
        io = self.instance.io_manager
        steps = []
        for s, rec in r.steps.items():
            outputs = [
                {"name": o, "key": so.key, "size": so.size, "sha256": so.sha256, "uri": io.describe(so.key)}
                for o, so in rec.outputs.items()
            ]
            if rec.state is StepState.REUSED:
                outputs = [
                    {"name": o, "key": ref.key, "sourceRun": ref.run_id, "uri": io.describe(ref.key)}
                    for (st, o), ref in r.outputs.items()
                    if st == s
                ]
            steps.append(
                {
                    "name": s,
                    "phase": rec.state.value,
                    "attempt": 1 if rec.started else 0,
                    "attempts": [1] if rec.started else [],
                    "started": rec.started,
                    "finished": rec.finished,
                    "reason": rec.reason,
                    "sourceRun": rec.source_run_id,
                    "message": rec.error.strip().splitlines()[-1] if rec.error else None,
                    "outputs": outputs,
                }
            )
        out["steps"] = steps
        out["jobRef"] = r.job_ref
        try:
            graph = job_graph(self._job(r)).concrete(r.keys)  # a fan-out run's steps: op[key] per mapping key
            out["graph"] = {s: [u for u, _ in dict.fromkeys(graph.deps.get(s, {}).values())] for s in graph.steps}
        except UIError as exc:
            out["graph"] = {s: [] for s in r.steps}
            out["graphError"] = exc.message
        out["executedSteps"] = out["stepSubset"] or list(r.steps)
        out["canFromFailure"] = RunPhase.of(r.status).can_resume_from_failure
        if r.parent_run_id is not None:
            out["plan"] = {
                "steps": [
                    {"name": s, "reason": rec.reason if _is_plan_reason(rec.reason) else "planned"}
                    for s, rec in r.steps.items()
                    if _planned(rec)
                ],
                "reused": [
                    {"step": s, "output": o, "sourceRun": ref.run_id, "key": ref.key}
                    for (s, o), ref in sorted(r.outputs.items())
                    if ref.run_id != r.run_id and r.steps.get(s) is not None and not _planned(r.steps[s])
                ],
                "skipped": {s: rec.reason for s, rec in r.steps.items() if rec.state is StepState.SKIPPED},
            }
        else:
            out["plan"] = None
        return out

    def lineage(self, name: str) -> dict[str, Any]:
        r = self._run(name)
        with self._lock:
            group = self.instance.get_run_group(r.run_id)
        now = time.time()
        tree = lineage_tree([self._summary(g, now) for g in group], r.root_run_id)
        return {"root": r.root_run_id, "tree": tree}

    def step_log(self, name: str, step: str, attempt: int | None) -> dict[str, Any]:
        r = self._run(name)
        rec = r.steps.get(step)
        if rec is None:
            raise UIError(404, f"run {name} has no step {step!r}")
        text = rec.error or (
            f"step {step} is {rec.state.value}; in-process steps write no log of their own"
            + (f" (outputs reused from run {rec.source_run_id})" if rec.source_run_id else "")
        )
        return {"source": "run store", "attempt": 1, "text": text}

    def follow_log(self, name: str, step: str, attempt: int | None) -> NoReturn:
        self._run(name)
        raise UIError(501, NO_STEP_LOG)

    # ----- re-execution ---------------------------------------------------------------------------
    def _request(self, r: RunRecord, req: ReexecRequest) -> ReexecutionOptions:
        if req.image:
            raise UIError(400, "image overrides apply on Kubernetes only: a local run executes in this process")
        unknown = req.unknown_steps(list(r.steps))
        if unknown:
            raise UIError(400, f"overrides name unknown step(s): {', '.join(unknown)}")
        if r.status.value == "STARTED":
            raise UIError(409, f"run {r.run_id} is still running; wait for it to finish")
        if req.mode == RxMode.FROM_FAILURE and not RunPhase.of(r.status).can_resume_from_failure:
            raise UIError(400, "From failure is only for failed or canceled runs")
        selection: tuple[str, ...] = req.selection
        if req.mode == SAME_STEPS:
            selection = tuple(s for s, rec in r.steps.items() if _planned(rec)) if r.parent_run_id else tuple(r.steps)
        elif req.mode in (RxMode.ALL, RxMode.FROM_FAILURE):
            selection = ()
        return ReexecutionOptions(r.run_id, list(selection), _MODES[req.mode])

    def preview(self, name: str, req: ReexecRequest) -> dict[str, Any]:
        r = self._run(name)
        options = self._request(r, req)
        job = self._job(r)
        graph: JobGraph = job_graph(job)
        io = self.instance.io_manager
        try:
            with self._lock:
                known = self.instance.run_ids()
            assert options.mode is not None
            p = plan_checked(
                graph,
                r.view(),
                Request(options.mode, tuple(options.step_selection)),
                exists=io.exists,
                known_runs=known,
                describe=io.describe,
            )
        except CairnError as exc:
            return {"phase": RxPhase.INVALID.value, "message": str(exc), "plan": None}
        return {"phase": RxPhase.PLANNED.value, "message": f"{len(p.to_run)} step(s) to execute", "plan": plan_json(p)}

    def reexecute(self, name: str, req: ReexecRequest) -> dict[str, Any]:
        r = self._run(name)
        options = self._request(r, req)
        job = self._job(r)
        started = threading.Event()
        box: dict[str, Any] = {}

        def on_event(event: Event) -> None:
            kind, _step, data = event
            if kind == "run_start":
                box["run_id"] = data["run_id"]
                started.set()
            self._publish({"kind": "runs", "type": "MODIFIED", "name": box.get("run_id"), "event": kind})

        def work() -> None:
            try:
                instance = Instance.local(self.home)
                try:
                    with _overrides(req.env, on_event) as hook:
                        execute_job(
                            job,
                            instance=instance,
                            run_config=dict(req.config) if req.config is not None else None,
                            reexecution_options=options,
                            tags={TAG_CREATED_BY: "cairn-ui"},
                            on_event=hook,
                        )
                finally:
                    instance.close()
            except Exception as exc:
                box["error"] = str(exc)
            finally:
                started.set()
                self._publish({"kind": "runs", "type": "MODIFIED", "name": box.get("run_id")})

        threading.Thread(target=work, name=f"cairn-ui-reexecute-{name[:8]}", daemon=True).start()
        started.wait(timeout=60)
        if "run_id" not in box:
            raise UIError(422, box.get("error") or "the re-execution did not start within 60 s")
        return {"reexecution": None, "childRun": box["run_id"]}

    def get_reexecution(self, name: str) -> dict[str, Any]:
        raise UIError(404, "a local instance has no Reexecution resources: a re-execution is its child run")


def _is_plan_reason(reason: str | None) -> bool:
    return bool(reason) and (reason in PLAN_REASONS or str(reason).startswith("downstream-of:"))


@contextmanager
def _overrides(env: Mapping[str, Mapping[str, str]], forward: Any) -> Iterator[Any]:
    """An on_event hook that sets a step's env overrides while it runs (the op runs right after
    step_start), and puts the environment back when it ends; one such run at a time."""
    if not env:
        yield forward
        return
    saved: dict[str, str | None] = {}

    def hook(event: Event) -> None:
        kind, step, _ = event
        if kind == "step_start" and step in env:
            for k, v in env[step].items():
                saved.setdefault(k, os.environ.get(k))
                os.environ[k] = v
        elif kind in ("step_success", "step_failure", "step_interrupted") and saved:
            _restore(saved)
        forward(event)

    with _env_lock:
        try:
            yield hook
        finally:
            _restore(saved)


def _restore(saved: dict[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    saved.clear()
