"""Re-execution planning on the cluster: the runtime's planner applied to a parent Run's status.

`parent_view` turns a finished Run's status into the planner's `RunView` (its phases are the runtime's
own `cairn.runstate` states, read as they are; and the output index: where each output lives, in the run
that produced it); `child_execution` turns the plan into the
`spec.execution` of a child Run. The same rules and the same error messages as the in-process mode,
because it is the same planner (`cairn.planner.plan`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cairn.dynamic import status_keys, value_key
from cairn.planner import OutputRef, Plan, Request, RunView, plan
from cairn.runstate import NOT_SELECTED, RunPhase, StepState
from cairn_operator.graph import OpGraph
from cairn_operator.models import Execution


def parent_view(run_name: str, run_status: Mapping[str, Any], root: str) -> RunView:
    """The planner's view of a Run: each output is indexed at the run that produced it."""
    steps = run_status.get("steps") or {}
    outputs: dict[tuple[str, str], OutputRef] = {}
    for name, st in steps.items():
        source = st.get("sourceRun") or run_name
        for out, loc in (st.get("outputs") or {}).items():
            outputs[(name, out)] = OutputRef(source, loc["key"])
            for k in (st.get("keys") or {}).get(out) or ():  # each key's value of a dynamic output
                outputs[(name, f"{out}[{k}]")] = OutputRef(source, value_key(loc["key"], k))
    return RunView(
        run_id=run_name,
        status=RunPhase(run_status.get("phase") or RunPhase.PENDING.value),
        root_run_id=root,
        steps={name: StepState(st.get("phase") or StepState.PENDING.value) for name, st in steps.items()},
        versions={name: st["version"] for name, st in steps.items() if st.get("version")},
        outputs=outputs,
        keys=status_keys(steps),
        # A child that ran a selection: from failure of it retries only within it (Dagster's rule).
        not_selected=frozenset(
            n
            for n, st in steps.items()
            if st.get("phase") == StepState.NOT_EXECUTED.value and st.get("reason") == NOT_SELECTED
        ),
    )


def plan_child(graph: OpGraph, run_name: str, run_status: Mapping[str, Any], root: str, request: Request) -> Plan:
    """The plan of a re-execution of a finished Run (raises the planner's errors)."""
    return plan(graph.job_graph(), parent_view(run_name, run_status, root), request)


def child_execution(
    p: Plan, parent: str, root: str, snapshot: Mapping[str, Any], parent_status: Mapping[str, Any]
) -> Execution:
    """The child Run's `spec.execution` for a plan: its steps with reasons, the steps it reuses (with
    the key and ETag of each output, where the producing run stored it), and those that stay skipped."""
    parent_steps = parent_status.get("steps") or {}
    reused: dict[str, dict[str, Any]] = {}
    for step, source in p.reused_steps.items():
        outs = (parent_steps.get(step) or {}).get("outputs") or {}
        reused[step] = {
            "sourceRun": source,
            "outputs": {o: {"key": loc["key"], "etag": loc.get("etag")} for o, loc in outs.items()},
            "version": (parent_steps.get(step) or {}).get("version"),
            "keys": (parent_steps.get(step) or {}).get("keys"),
        }
    return Execution.model_validate(
        {
            "parentRun": parent,
            "rootRun": root,
            "jobSnapshot": dict(snapshot),
            "steps": [{"name": s, "reason": r} for s, r in p.to_run],
            "reused": reused,
            "skipped": dict(p.skipped),
        }
    )
