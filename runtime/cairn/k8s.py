"""`cairn k8s ...`: Cairn's resources on a cluster, from the command line (uses the current kubeconfig)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cairn.errors import CairnError

G, V = "cairn.dev", "v1alpha1"


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
    from cairn.s3io import S3IOManager

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
    prefix = ((run.get("status") or {}).get("jobSnapshot") or {}).get("storage", {}).get("prefix", "cairn")
    data = S3IOManager.from_env(prefix=prefix).load(key, "bytes")
    sys.stdout.write(data.decode(errors="replace"))
    return 0


def reexecution_manifest(args: argparse.Namespace) -> dict[str, Any]:
    import uuid

    if args.from_failure:
        mode, selection = "FromFailure", []
    elif args.select:
        mode, selection = "Selected", list(args.select)
    elif args.from_selected:
        mode, selection = "FromSelected", list(args.from_selected)
    else:
        mode, selection = "All", []
    spec: dict[str, Any] = {"parentRun": args.run, "mode": mode}
    if selection:
        spec["stepSelection"] = selection
    if args.dry_run:
        spec["dryRun"] = True
    name = args.name or f"{args.run[:50].rstrip('-')}-rx-{uuid.uuid4().hex[:5]}"
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Reexecution",
        "metadata": {"name": name, "namespace": args.namespace},
        "spec": spec,
    }


def cmd_reexecute(args: argparse.Namespace) -> int:
    """Create a Reexecution (or print it with -o yaml) and follow its child Run to the end."""
    import time

    import yaml

    doc = reexecution_manifest(args)
    if args.output == "yaml":
        print(yaml.safe_dump(doc, sort_keys=False), end="")
        return 0
    get_run(args.namespace, args.run)  # a clear error when the parent does not exist
    api = _custom()
    api.create_namespaced_custom_object(G, V, args.namespace, "reexecutions", doc)
    name = doc["metadata"]["name"]
    print(f"reexecution.cairn.dev/{name} created")
    seen: dict[str, str] = {}
    while True:
        rx = api.get_namespaced_custom_object(G, V, args.namespace, "reexecutions", name)
        st = rx.get("status") or {}
        phase = st.get("phase")
        if phase in ("Invalid", "Planned") or (phase == "Failed" and not st.get("childRun")):
            print(f"{phase}: {st.get('message')}")
            for step in (st.get("plan") or {}).get("steps") or []:
                print(f"  would run {step['name']}  ({step['reason']})")
            return 0 if phase == "Planned" else 1
        child = st.get("childRun")
        if child:
            run = api.get_namespaced_custom_object(G, V, args.namespace, "runs", child)
            for step, s in ((run.get("status") or {}).get("steps") or {}).items():
                if seen.get(step) != s["phase"]:
                    seen[step] = s["phase"]
                    print(f"  {child}  {step:<20} {s['phase']}" + (f"  ({s['reason']})" if s.get("reason") else ""))
            rphase = (run.get("status") or {}).get("phase")
            if rphase in ("Succeeded", "Failed", "Canceled"):
                print(f"run {child}: {rphase}")
                return 0 if rphase == "Succeeded" else 1
        time.sleep(0.5)


def render_tree(runs: list[dict[str, Any]], root: str) -> str:
    children: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        parent = (r["metadata"].get("labels") or {}).get("cairn.dev/parent-run")
        if parent:
            children.setdefault(parent, []).append(r)
    by_name = {r["metadata"]["name"]: r for r in runs}
    lines: list[str] = []

    def line(r: dict[str, Any]) -> str:
        st = r.get("status") or {}
        mode = (r["metadata"].get("annotations") or {}).get("cairn.dev/reexecution-mode")
        return f"{r['metadata']['name']}  {st.get('phase', 'Pending')}  {st.get('progress', '')}" + (
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
    root = (run["metadata"].get("labels") or {}).get("cairn.dev/root-run") or args.run
    api = _custom()
    lineage = api.list_namespaced_custom_object(
        G, V, args.namespace, "runs", label_selector=f"cairn.dev/root-run={root}"
    )["items"]
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
    rx.add_argument("run")
    how = rx.add_mutually_exclusive_group()
    how.add_argument("--all", action="store_true", help="every step (the default)")
    how.add_argument("--from-failure", action="store_true")
    how.add_argument("--select", nargs="+", metavar="CLAUSE")
    how.add_argument("--from-selected", nargs="+", metavar="NAME")
    rx.add_argument("--dry-run", action="store_true", help="plan only")
    rx.add_argument("--name", help="the Reexecution's name (default: <run>-rx-<random>)")
    rx.add_argument("-n", "--namespace", default="default")
    rx.add_argument("-o", "--output", choices=("yaml",), help="print the manifest instead of creating it")
    rx.set_defaults(func=cmd_reexecute)
    tr = ksub.add_parser("tree", help="the lineage of a Run: its root and every re-execution, with phases")
    tr.add_argument("run")
    tr.add_argument("-n", "--namespace", default="default")
    tr.set_defaults(func=cmd_tree)
