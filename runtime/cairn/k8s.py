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


def add_commands(sub: Any) -> None:
    k = sub.add_parser("k8s", help="Cairn's resources on a Kubernetes cluster (current kubeconfig)")
    ksub = k.add_subparsers(dest="k8s_command", required=True)
    lg = ksub.add_parser("logs", help="a step's saved log (also after its pod is gone)")
    lg.add_argument("run")
    lg.add_argument("step")
    lg.add_argument("--attempt", type=int, default=None, help="default: the latest")
    lg.add_argument("-n", "--namespace", default="default")
    lg.set_defaults(func=cmd_logs)
