"""`cairn ui`: see runs, pick steps, re-execute, in a browser, on Kubernetes or on a local instance.

`serve` builds the source (the caller's kubeconfig identity, or `--local HOME`), the ASGI app
(`cairn.ui.app.create_app`) and runs it with uvicorn on loopback by default. The `ui` extra provides
Starlette and uvicorn: `pip install 'cairn[ui]'`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def allowed_hosts(host: str) -> list[str]:
    """The Host header values to accept: the loopback names, plus `host` when bound elsewhere."""
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    return sorted({*LOOPBACK, host})


def make_source(args: argparse.Namespace) -> Any:
    from cairn.ui.sources import UIError

    if args.local is not None:
        from cairn.ui.local import LocalSource

        refs = {}
        for pair in args.job:
            name, sep, ref = pair.partition("=")
            if not sep or not name or ":" not in ref:
                raise UIError(2, f"--job {pair!r} must look like JOB_NAME=module:attr")
            refs[name] = ref
        return LocalSource(Path(args.local), refs)
    from cairn.ui.kube import KubeSource

    return KubeSource.from_kubeconfig(args.kubeconfig, args.context, args.namespace)


def serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from cairn.ui.app import create_app
    except ImportError as exc:
        print(f"cairn ui needs the `ui` extra: pip install 'cairn[ui]' ({exc})", file=sys.stderr)
        return 2
    from cairn.ui.sources import UIError

    try:
        source = make_source(args)
    except UIError as exc:
        print(f"cairn ui: {exc.message}", file=sys.stderr)
        return 2
    app = create_app(source, allowed_hosts=allowed_hosts(args.host))
    where = f"local instance {args.local}" if args.local is not None else f"namespace {source.namespace}"
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"cairn ui: {where} at http://{shown}:{args.port}/", flush=True)
    if args.host not in LOOPBACK:
        print(f"cairn ui: warning: listening on {args.host}, not only on loopback", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=2)
    return 0


def add_command(sub: Any) -> None:
    """Register `cairn ui` on the `cairn` command line."""
    u = sub.add_parser("ui", help="a web UI: runs, their graphs and logs, re-execution (Kubernetes or local)")
    u.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    u.add_argument("--context", default=None, help="kubeconfig context (default: the current one)")
    u.add_argument("-n", "--namespace", default=None, help="namespace (default: the context's, else default)")
    u.add_argument("--local", metavar="HOME", type=Path, default=None, help="show a local instance instead")
    u.add_argument(
        "--job",
        action="append",
        default=[],
        metavar="NAME=MODULE:ATTR",
        help="with --local: where job NAME is defined, for runs that do not record it (repeatable)",
    )
    u.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    u.add_argument("--port", type=int, default=3000, help="port (default: %(default)s)")
    u.set_defaults(func=serve)
