"""The `cairn` command line: local runs and re-executions, and `cairn dev` (a local control plane)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

DEV_MISSING = (
    "`cairn dev` is the local cluster builder, the package cairn-dev (devtools/ in Cairn's source tree), "
    "which is not installed here; install it with `pip install -e ./devtools` from a checkout (or `make install`)"
)


def _dev_missing(args: argparse.Namespace) -> int:
    print(f"cairn: error: {DEV_MISSING}", file=sys.stderr)
    return 2


def _add_dev(sub: Any) -> None:
    """`cairn dev ...` from the package cairn-dev when it is installed; else a `dev` that says how to get it."""
    try:
        from cairn_dev.cli import add_commands
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("cairn_dev"):
            raise
        dev = sub.add_parser("dev", help="a real local control plane without Docker (needs cairn-dev)")
        dev.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        dev.set_defaults(func=_dev_missing)
        return
    add_commands(sub)


OPERATOR_DESCRIPTION = """\
Run the Cairn operator here, against the current kubeconfig ($KUBECONFIG): this execs
`python -m cairn_operator` with the options below (the operator is its own program; the runtime never
imports it). Anything after `--` is passed to it as it is, e.g. `cairn operator -- --liveness URL`.
"""


def operator_argv(args: argparse.Namespace, python: str = sys.executable) -> list[str]:
    """The command line of `python -m cairn_operator` for `cairn operator` with these options."""
    argv = [python, "-m", "cairn_operator"]
    if args.liveness is not None:
        argv += ["--liveness", args.liveness]
    for ns in args.namespace:
        argv += ["--namespace", ns]
    if args.all_namespaces:
        argv.append("--all-namespaces")
    if args.verbose:
        argv.append("--verbose")
    extra = list(args.args)
    return argv + (extra[1:] if extra[:1] == ["--"] else extra)


def _operator(args: argparse.Namespace) -> int:
    """A convenience wrapper: the operator is its own program (the runtime never imports it)."""
    import os

    argv = operator_argv(args)
    os.execv(argv[0], argv)
    return 0  # pragma: no cover - execv does not return


def _add_operator(sub: Any) -> None:
    op = sub.add_parser(
        "operator",
        help="run the Kubernetes operator here (python -m cairn_operator ...)",
        description=OPERATOR_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    op.add_argument(
        "--liveness",
        metavar="URL",
        default=None,
        help="serve the liveness endpoint at URL (operator's default: http://127.0.0.1:8080/healthz; "
        "in a pod http://0.0.0.0:8080/healthz; '' turns it off)",
    )
    scope = op.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch only namespace NS (repeatable; default: all namespaces)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)")
    op.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    op.add_argument(
        "args", nargs=argparse.REMAINDER, help="after `--`: more options of python -m cairn_operator, passed as is"
    )
    op.set_defaults(func=_operator)


def build_parser() -> argparse.ArgumentParser:
    from cairn import __version__

    parser = argparse.ArgumentParser(prog="cairn", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cairn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    from cairn.cli_runs import add_commands

    add_commands(sub, "instance directory (default: $CAIRN_HOME, else ./.cairn)")
    from cairn.k8s import add_commands as add_k8s

    add_k8s(sub)

    _add_operator(sub)

    from cairn.ui import add_command as add_ui

    add_ui(sub)

    _add_dev(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from cairn.errors import CairnError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except CairnError as exc:  # cairn_dev's DevError is one too
        print(f"cairn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cairn: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
