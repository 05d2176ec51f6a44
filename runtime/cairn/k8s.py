"""`cairn k8s ...`: Cairn's resources on a cluster, from the command line (uses the current kubeconfig)."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from cairn.cli_runs import STEP_NAME, load_run_config, parse_step_env
from cairn.contract import (
    ANNOTATION_MODE,
    API_VERSION,
    GROUP,
    KEY_PREFIX,
    LABEL_PARENT,
    LABEL_ROOT,
    REEXECUTION,
    VERSION,
    RunPhase,
    RxMode,
    RxPhase,
    StepState,
)
from cairn.errors import CairnError
from cairn.manifest import to_yaml

G, V = GROUP, VERSION
PENDING = RunPhase.PENDING.value  # a Run's or Reexecution's phase before its status has one


#: Run phases after which a Run does nothing more.
FINISHED = frozenset(p.value for p in RunPhase if p.finished)


def rx_ref(name: str) -> str:
    """A Reexecution as kubectl names it (`reexecution.cairn.dev/NAME`)."""
    return f"{REEXECUTION.kind.lower()}.{GROUP}/{name}"


def _custom() -> Any:
    from kubernetes import client, config

    config.load_kube_config()
    return client.CustomObjectsApi()


def get_run(namespace: str, name: str) -> dict[str, Any]:
    from kubernetes.client.rest import ApiException

    try:
        run: dict[str, Any] = _custom().get_namespaced_custom_object(G, V, namespace, "runs", name)
    except ApiException as exc:
        if exc.status == 404:
            raise CairnError(f"Run {name} not found in namespace {namespace}") from exc
        raise
    return run


def cmd_logs(args: argparse.Namespace) -> int:
    """A step's log, from storage: it outlives the step's pod."""
    import os

    from cairn.s3io import DEFAULT_PREFIX, open_storage

    run = get_run(args.namespace, args.run)
    steps = (run.get("status") or {}).get("steps") or {}
    if args.step not in steps:
        raise CairnError(f"Run {args.run} has no step {args.step!r}; its steps are {', '.join(steps)}")
    logs = steps[args.step].get("logs") or {}
    attempt = str(args.attempt or steps[args.step].get("attempt") or 1)
    key = logs.get(attempt)
    if not key:
        raise CairnError(
            f"no saved log for step {args.step} attempt {attempt} of Run {args.run} (saved: "
            f"{', '.join(sorted(logs)) or 'none'}); a running step's log is in its pod: kubectl logs"
        )
    if key.startswith("unavailable:"):
        raise CairnError(key)
    storage = ((run.get("status") or {}).get("jobSnapshot") or {}).get("storage") or {}
    # With the caller's own credentials and endpoint (the environment: `cairn dev up` writes them to its env
    # file), in the Job's bucket, else the environment's CAIRN_S3_BUCKET.
    io = open_storage(os.environ, bucket=storage.get("bucket"), prefix=storage.get("prefix", DEFAULT_PREFIX))
    data = io.load(key, "bytes")
    sys.stdout.write(data.decode(errors="replace"))
    return 0


#: Step phases whose op ran in the parent (StepState.ran): what --same-steps re-executes.
RAN = frozenset(s.value for s in StepState if s.ran)
#: Run phases --all-failed re-executes from failure.
FAILED_RUN = tuple(p.value for p in RunPhase if p.can_resume_from_failure)
#: A Reexecution in one of these phases (or none yet) is live: it will create or follow a child.
LIVE_RX = (None, RxPhase.PENDING.value, RxPhase.RUNNING.value)
#: A dry-run Reexecution's phases once its plan is made (or refused).
PLANNED = (RxPhase.PLANNED.value, RxPhase.INVALID.value, RxPhase.FAILED.value)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
IMAGE_FORM = "--image takes STEP=IMAGE, e.g. --image unreliable=localhost/cairn-step:0.2.0"
MODE_FLAGS = ("--all", "--from-failure", "--select", "--from-selected", "--same-steps", "--stale")


def parse_step_images(items: Sequence[str]) -> dict[str, str]:
    """`--image STEP=IMAGE` values as {step: image}; a later image of the same step wins."""
    out: dict[str, str] = {}
    for item in items:
        step, eq, image = item.partition("=")
        if not eq or not STEP_NAME.match(step) or not image or any(c.isspace() for c in image):
            raise CairnError(f"{IMAGE_FORM} (got {item!r})")
        out[step] = image
    return out


def step_overrides(env: Mapping[str, Mapping[str, str]], images: Mapping[str, str]) -> dict[str, Any]:
    """`spec.overrides` of a Reexecution: {step: {image, env: [{name, value}]}} (models.StepOverride).
    Step names must be DNS-1123 labels, as a Job's op names are; the operator refuses unknown ones."""
    for flag, steps in (("--env", env), ("--image", images)):
        for step in steps:
            if not DNS_LABEL.match(step) or len(step) > 63:
                raise CairnError(
                    f"{flag}: {step!r} cannot be a step of a Kubernetes Job (op names are DNS-1123 labels: "
                    "lower-case letters, digits and '-')"
                )
    out: dict[str, Any] = {}
    for step in dict.fromkeys([*env, *images]):
        override: dict[str, Any] = {}
        if step in images:
            override["image"] = images[step]
        if env.get(step):
            override["env"] = [{"name": n, "value": v} for n, v in env[step].items()]
        out[step] = override
    return out


def same_steps(run: Mapping[str, Any]) -> list[str]:
    """Dagster's "Same steps" of a Run: the steps whose op ran (phase Succeeded, Failed or Interrupted), in
    the order of its Job snapshot. The Run must have finished."""
    name = run["metadata"]["name"]
    status = run.get("status") or {}
    if status.get("phase") not in (RunPhase.SUCCEEDED.value, *FAILED_RUN):
        raise CairnError(
            f"Run {name} is {status.get('phase') or PENDING}: --same-steps needs a finished Run (it re-runs "
            "the steps that Run executed)"
        )
    order = [op.get("name") for op in (status.get("jobSnapshot") or {}).get("ops") or []]
    ran = [s for s, st in (status.get("steps") or {}).items() if st.get("phase") in RAN]
    ran.sort(key=lambda s: order.index(s) if s in order else len(order))
    if not ran:
        raise CairnError(f"Run {name} executed no step: --same-steps has nothing to re-execute")
    return ran


def check_reexecute_args(args: argparse.Namespace) -> None:
    """Refuse bad flag values and combinations that mean nothing, naming the flags and the expected form,
    before anything is read from the cluster."""
    step_overrides(parse_step_env(args.env), parse_step_images(args.image))
    load_run_config(args.config)
    modes = [f for f, on in zip(MODE_FLAGS, _modes(args), strict=True) if on]
    if args.all_failed:
        if args.run:
            raise CairnError(
                f"--all-failed re-executes every matching Run: give -l SELECTOR, not a Run name ({args.run!r})"
            )
        if args.selector is None:
            raise CairnError(
                "--all-failed takes -l SELECTOR (a label selector, e.g. -l team=ml): the Runs to re-execute"
            )
        if [m for m in modes if m != "--from-failure"]:
            raise CairnError(f"--all-failed re-executes from failure: it cannot be combined with {', '.join(modes)}")
        if args.name:
            raise CairnError("--name names one Reexecution: it cannot be combined with --all-failed")
    else:
        if not args.run:
            raise CairnError("give the Run to re-execute (cairn k8s reexecute RUN ...), or --all-failed -l SELECTOR")
        if args.selector is not None:
            raise CairnError("-l SELECTOR chooses the Runs of --all-failed: add --all-failed, or leave -l out")


def _modes(args: argparse.Namespace) -> tuple[bool, ...]:
    return (args.all, args.from_failure, bool(args.select), bool(args.from_selected), args.same_steps, args.stale)


def reexecution_manifest(args: argparse.Namespace, parent: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Reexecution `cairn k8s reexecute` creates for `args.run` (or, given, `parent`, whose name wins:
    --all-failed builds one per Run). With --same-steps, `parent` (the Run as read) is required."""
    import uuid

    run = parent["metadata"]["name"] if parent is not None else args.run
    if args.same_steps:
        if parent is None:
            raise CairnError("--same-steps needs the parent Run's status")
        mode, selection = RxMode.SELECTED, same_steps(parent)
    elif args.from_failure or args.all_failed:
        mode, selection = RxMode.FROM_FAILURE, []
    elif args.stale:
        mode, selection = RxMode.STALE, []
    elif args.select:
        mode, selection = RxMode.SELECTED, list(args.select)
    elif args.from_selected:
        mode, selection = RxMode.FROM_SELECTED, list(args.from_selected)
    else:
        mode, selection = RxMode.ALL, []
    spec: dict[str, Any] = {"parentRun": run, "mode": mode.value}
    if selection:
        spec["stepSelection"] = selection
    config = load_run_config(args.config)
    if config is not None:
        spec["config"] = config
    overrides = step_overrides(parse_step_env(args.env), parse_step_images(args.image))
    if overrides:
        spec["overrides"] = overrides
    if args.dry_run:
        spec["dryRun"] = True
    if args.all_failed and parent is not None:
        own = {k: v for k, v in (parent["metadata"].get("labels") or {}).items() if not k.startswith(KEY_PREFIX)}
        if own:
            spec["labels"] = own  # the child matches the same selector: a later --all-failed finds it
    name = (None if args.all_failed else args.name) or (f"{run[:50].rstrip('-.')}-rx-{uuid.uuid4().hex[:5]}")
    return {
        "apiVersion": API_VERSION,
        "kind": REEXECUTION.kind,
        "metadata": {"name": name, "namespace": args.namespace},
        "spec": spec,
    }


def bulk_targets(
    runs: Sequence[Mapping[str, Any]], reexecutions: Sequence[Mapping[str, Any]], existing: Collection[str]
) -> list[tuple[str, str | None]]:
    """For --all-failed: each Failed or Canceled Run of `runs` (by name) with None when it is to be
    re-executed from failure, or why not. A Run is left alone when a Reexecution of it (not a dry run) is
    live or succeeded, or failed with a child Run that still exists (`existing` names): that child carries
    the lineage on and is re-executed in its place (it carries the parent's labels when --all-failed made
    it). Runs being deleted are left alone."""
    by_parent: dict[str, list[Mapping[str, Any]]] = {}
    for rx in reexecutions:
        spec = rx.get("spec") or {}
        if not spec.get("dryRun"):
            by_parent.setdefault(spec.get("parentRun", ""), []).append(rx)
    out: list[tuple[str, str | None]] = []
    for run in sorted(runs, key=lambda r: str(r["metadata"]["name"])):
        meta, status = run["metadata"], run.get("status") or {}
        if status.get("phase") not in FAILED_RUN or meta.get("deletionTimestamp"):
            continue
        why: str | None = None
        for rx in by_parent.get(meta["name"], []):
            rname, st = rx["metadata"]["name"], rx.get("status") or {}
            phase, child = st.get("phase"), st.get("childRun")
            if phase in LIVE_RX:
                why = f"re-execution {rname} is {phase or PENDING}"
            elif phase == RxPhase.SUCCEEDED:
                why = f"re-execution {rname} succeeded (child Run {child})"
            elif phase == RxPhase.FAILED and child and child in existing:
                why = f"re-executed by {rname}: its child Run {child} carries the lineage on"
            if why:
                break
        out.append((meta["name"], why))
    return out


def _api_message(exc: Exception) -> str:
    """The API server's message of a refused request."""
    import json

    body = getattr(exc, "body", None)
    try:
        return str(json.loads(body)["message"]) if body else str(exc)
    except (ValueError, KeyError, TypeError):
        return str(exc)


def _outcome(st: Mapping[str, Any]) -> list[str]:
    """A Reexecution's phase, reason and message, then the steps its plan would run."""
    phase = st.get("phase")
    reason = next((c.get("reason") for c in st.get("conditions") or [] if c.get("type") == "Ready"), None)
    head = f"{phase}" + (f" ({reason})" if reason and reason != phase else "") + f": {st.get('message')}"
    plan = [f"  would run {s['name']}  ({s['reason']})" for s in (st.get("plan") or {}).get("steps") or []]
    return [head, *plan]


def await_plans(
    api: Any,
    namespace: str,
    names: Sequence[str],
    timeout: float = 120,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> dict[str, dict[str, Any]]:
    """The status of each dry-run Reexecution of `names` once planned, or after `timeout` seconds; each is
    deleted then, also when the wait fails or is interrupted: a dry run leaves nothing behind."""
    from kubernetes.client.rest import ApiException

    out: dict[str, dict[str, Any]] = {}
    deadline = clock() + timeout
    try:
        for name in names:
            while True:
                st = api.get_namespaced_custom_object(G, V, namespace, "reexecutions", name).get("status") or {}
                if st.get("phase") in PLANNED:
                    break
                if clock() > deadline:
                    st = {**st, "phase": st.get("phase") or PENDING, "message": f"no plan after {timeout:.0f} s"}
                    break
                pause(0.5)
            out[name] = st
    finally:
        refused: list[ApiException] = []
        for name in names:
            try:
                api.delete_namespaced_custom_object(G, V, namespace, "reexecutions", name)
            except ApiException as exc:
                if exc.status != 404:
                    refused.append(exc)
        if refused:  # every one was tried
            raise refused[0]
    return out


def cmd_reexecute(args: argparse.Namespace) -> int:
    """Create a Reexecution (or print it with -o yaml) and follow its child Run to the end; with
    --all-failed, one from-failure Reexecution per matching failed Run."""
    check_reexecute_args(args)
    if args.all_failed:
        return _reexecute_all_failed(args)
    parent = get_run(args.namespace, args.run) if args.same_steps or args.output != "yaml" else None
    doc = reexecution_manifest(args, parent)
    if args.output == "yaml":
        print(to_yaml(doc), end="")
        return 0
    api = _custom()
    api.create_namespaced_custom_object(G, V, args.namespace, "reexecutions", doc)
    name = doc["metadata"]["name"]
    if args.dry_run:
        print(f"{rx_ref(name)} created (dry run: deleted once planned)", flush=True)
        st = await_plans(api, args.namespace, [name])[name]
        print("\n".join(_outcome(st)))
        return 0 if st.get("phase") == RxPhase.PLANNED else 1
    print(f"{rx_ref(name)} created")
    seen: dict[str, str] = {}
    while True:
        rx = api.get_namespaced_custom_object(G, V, args.namespace, "reexecutions", name)
        st = rx.get("status") or {}
        phase = st.get("phase")
        if phase in (RxPhase.INVALID, RxPhase.PLANNED) or (phase == RxPhase.FAILED and not st.get("childRun")):
            print("\n".join(_outcome(st)))
            return 0 if phase == RxPhase.PLANNED else 1
        child = st.get("childRun")
        if child:
            run = api.get_namespaced_custom_object(G, V, args.namespace, "runs", child)
            for step, s in ((run.get("status") or {}).get("steps") or {}).items():
                if seen.get(step) != s["phase"]:
                    seen[step] = s["phase"]
                    print(f"  {child}  {step:<20} {s['phase']}" + (f"  ({s['reason']})" if s.get("reason") else ""))
            rphase = (run.get("status") or {}).get("phase")
            if rphase in FINISHED:
                print(f"run {child}: {rphase}")
                return 0 if rphase == RunPhase.SUCCEEDED.value else 1
        time.sleep(0.5)


def _reexecute_all_failed(args: argparse.Namespace, timeout: float = 120) -> int:
    """--all-failed -l SELECTOR: one line per failed Run (created, or skipped and why); with --dry-run,
    each Run's plan as the operator made it; with -o yaml, the manifests (skipped Runs as comments)."""
    from kubernetes.client.rest import ApiException

    api = _custom()
    ns = args.namespace
    runs = api.list_namespaced_custom_object(G, V, ns, "runs", label_selector=args.selector)["items"]
    existing = {r["metadata"]["name"] for r in api.list_namespaced_custom_object(G, V, ns, "runs")["items"]}
    rxs = api.list_namespaced_custom_object(G, V, ns, "reexecutions")["items"]
    targets = bulk_targets(runs, rxs, existing)
    if not targets:
        print(f"no Failed or Canceled Run matches -l {args.selector!r} in namespace {ns}")
        return 0
    by_name = {r["metadata"]["name"]: r for r in runs}
    docs = {run: reexecution_manifest(args, by_name[run]) for run, why in targets if why is None}
    if args.output == "yaml":
        for run, why in targets:
            if why:
                print(f"# {run}: skipped: {why}")
        print(to_yaml(list(docs.values()), many=True), end="")
        return 0
    code = 0
    created: dict[str, str] = {}
    for run, why in targets:
        if why:
            print(f"{run}  skipped: {why}")
            continue
        doc = docs[run]
        try:
            api.create_namespaced_custom_object(G, V, ns, "reexecutions", doc)
        except ApiException as exc:
            print(f"{run}  refused: {_api_message(exc)}")
            code = 1
            continue
        created[run] = doc["metadata"]["name"]
        print(f"{run}  {rx_ref(created[run])} created" + (" (dry run)" if args.dry_run else ""))
    if not args.dry_run:
        return code
    plans = await_plans(api, ns, list(created.values()), timeout)
    for run, name in created.items():
        st = plans[name]
        lines = _outcome(st)
        print(f"{run}  {lines[0]}", *lines[1:], sep="\n")
        code = code if st.get("phase") == RxPhase.PLANNED else 1
    return code


def render_tree(runs: list[dict[str, Any]], root: str) -> str:
    children: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        parent = (r["metadata"].get("labels") or {}).get(LABEL_PARENT)
        if parent:
            children.setdefault(parent, []).append(r)
    by_name = {r["metadata"]["name"]: r for r in runs}
    lines: list[str] = []

    def line(r: dict[str, Any]) -> str:
        st = r.get("status") or {}
        mode = (r["metadata"].get("annotations") or {}).get(ANNOTATION_MODE)
        return f"{r['metadata']['name']}  {st.get('phase', PENDING)}  {st.get('progress', '')}" + (
            f"  mode={mode}" if mode else ""
        )

    def walk(name: str, prefix: str, last: bool, top: bool) -> None:
        r = by_name.get(name)
        if r is None:
            return
        lines.append(line(r) if top else prefix + ("`-- " if last else "|-- ") + line(r))
        kids = sorted(children.get(name, []), key=lambda k: k["metadata"]["creationTimestamp"])
        for i, k in enumerate(kids):
            walk(
                k["metadata"]["name"], prefix + ("" if top else ("    " if last else "|   ")), i == len(kids) - 1, False
            )

    walk(root, "", True, True)
    return "\n".join(lines)


def cmd_tree(args: argparse.Namespace) -> int:
    run = get_run(args.namespace, args.run)
    root = (run["metadata"].get("labels") or {}).get(LABEL_ROOT) or args.run
    api = _custom()
    lineage = api.list_namespaced_custom_object(G, V, args.namespace, "runs", label_selector=f"{LABEL_ROOT}={root}")[
        "items"
    ]
    names = {r["metadata"]["name"] for r in lineage}
    runs = lineage if root in names else [get_run(args.namespace, root), *lineage]
    print(render_tree(runs, root))
    return 0


def add_commands(sub: Any) -> None:
    k = sub.add_parser("k8s", help="Cairn's resources on a Kubernetes cluster (current kubeconfig)")
    ksub = k.add_subparsers(dest="k8s_command", required=True)
    lg = ksub.add_parser("logs", help="a step's saved log (also after its pod is gone)")
    lg.add_argument("run")
    lg.add_argument("step")
    lg.add_argument("--attempt", type=int, default=None, help="default: the latest")
    lg.add_argument("-n", "--namespace", default="default")
    lg.set_defaults(func=cmd_logs)
    rx = ksub.add_parser("reexecute", help="re-execute part of a Run as a linked child Run, and follow it")
    rx.add_argument("run", nargs="?", help="the parent Run (not with --all-failed)")
    how = rx.add_mutually_exclusive_group()
    how.add_argument("--all", action="store_true", help="every step (the default)")
    how.add_argument("--from-failure", action="store_true")
    how.add_argument("--select", nargs="+", metavar="CLAUSE")
    how.add_argument("--from-selected", nargs="+", metavar="NAME")
    how.add_argument("--same-steps", action="store_true", help="the steps the parent executed (Dagster's Same steps)")
    how.add_argument(
        "--stale",
        action="store_true",
        help="the steps whose version (codeVersion, command, image, config) differs in the Job as it is now, "
        "their downstream and what the parent never produced; the child runs today's Job",
    )
    rx.add_argument(
        "--env", action="append", default=[], metavar="STEP:NAME=VALUE", help="env var of STEP's pods (repeatable)"
    )
    rx.add_argument("--image", action="append", default=[], metavar="STEP=IMAGE", help="STEP's image (repeatable)")
    rx.add_argument(
        "--config", type=Path, metavar="FILE", help="run config of the child (YAML or JSON): {ops: {op: {config: ...}}}"
    )
    rx.add_argument(
        "--all-failed",
        action="store_true",
        help="from failure, every Failed/Canceled Run matching -l that no live or succeeded Reexecution covers",
    )
    rx.add_argument("-l", "--selector", help="label selector of the Runs of --all-failed")
    rx.add_argument(
        "--dry-run", action="store_true", help="plan only: print the plan; the dry-run Reexecution is deleted after"
    )
    rx.add_argument("--name", help="the Reexecution's name (default: <run>-rx-<random>)")
    rx.add_argument("-n", "--namespace", default="default")
    rx.add_argument("-o", "--output", choices=("yaml",), help="print the manifest instead of creating it")
    rx.set_defaults(func=cmd_reexecute)
    tr = ksub.add_parser("tree", help="the lineage of a Run: its root and every re-execution, with phases")
    tr.add_argument("run")
    tr.add_argument("-n", "--namespace", default="default")
    tr.set_defaults(func=cmd_tree)
