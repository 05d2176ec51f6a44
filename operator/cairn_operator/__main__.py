"""`python -m cairn_operator [--namespace NS ... | --all-namespaces] [--liveness URL] [--verbose]`: run the
operator (kopf) against the current kubeconfig."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import sys

import kopf


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread its own malloc arena (up to 8 per core), and the operator runs one sync
    daemon thread per live Run: cap the arenas, or memory grows with Runs for no benefit."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX


def build_parser() -> argparse.ArgumentParser:
    """The operator's options (`cairn operator` maps its own onto these)."""
    parser = argparse.ArgumentParser(prog="python -m cairn_operator", description=__doc__)
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch only namespace NS (repeatable; default: all namespaces)",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)")
    parser.add_argument(
        "--liveness",
        metavar="URL",
        default="http://127.0.0.1:8080/healthz",
        help="liveness endpoint URL (default: %(default)s; in a pod use http://0.0.0.0:8080/healthz; '' turns it off)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    limit_malloc_arenas()
    import cairn_operator.handlers  # noqa: F401  (registers the handlers)

    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            liveness_endpoint=args.liveness or None,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
