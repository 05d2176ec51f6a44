"""The `cairn` command line: local runs and re-executions, and `cairn dev` (a local control plane)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _dev_build(args: argparse.Namespace) -> int:
    from cairn.dev.helmbuild import HelmBuilder
    from cairn.dev.k8sbuild import Builder
    from cairn.dev.kstatusbuild import KstatusBuilder

    Builder(version=args.version, cache=args.cache).build(force=args.force)
    HelmBuilder(cache=args.cache).build(force=args.force)  # helm renders and lints charts/cairn
    KstatusBuilder(cache=args.cache).build(force=args.force)  # kstatus reads Runs as Flux and kpt do
    return 0


def _dev_up(args: argparse.Namespace) -> int:
    from cairn.dev.cluster import Cluster, UpOptions

    cluster = Cluster(args.dir)
    state = cluster.up(
        UpOptions(
            apiserver_port=args.apiserver_port,
            s3_port=args.s3_port,
            node=not args.no_node,
            node_kind=args.node,
            kubelet_args=tuple(args.kubelet_arg),
        )
    )
    print(cluster.usage(state))
    return 0


def _dev_down(args: argparse.Namespace) -> int:
    from cairn.dev.cluster import Cluster

    Cluster(args.dir).down()
    return 0


def _dev_status(args: argparse.Namespace) -> int:
    from cairn.dev.cluster import Cluster

    text, healthy = Cluster(args.dir).status()
    print(text)
    return 0 if healthy else 1


def _dev_env(args: argparse.Namespace) -> int:
    from cairn.dev.cluster import Cluster

    print(Cluster(args.dir).env_text(), end="")
    return 0


def _dev_image_build(args: argparse.Namespace) -> int:
    from cairn.dev import images

    images.build_all(base=args.base, no_cache=args.no_cache)
    return 0


def _dev_image_export(args: argparse.Namespace) -> int:
    from cairn.dev import images

    print(images.export(args.name, args.file))
    return 0


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
    from cairn.dev.paths import default_cluster_dir
    from cairn.dev.versions import K8S_VERSION

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

    dev = sub.add_parser("dev", help="a real local control plane without Docker")
    dsub = dev.add_subparsers(dest="dev_command", required=True)

    b = dsub.add_parser(
        "build",
        help=f"build Kubernetes {K8S_VERSION} (kubelet included), helm and kstatus from Go modules (cached)",
    )
    b.add_argument("--version", default=K8S_VERSION, help="Kubernetes release (default: %(default)s)")
    b.add_argument("--cache", type=Path, default=None, help="cache directory (default: ~/.cache/cairn)")
    b.add_argument("--force", action="store_true", help="rebuild even when cached binaries exist")
    b.set_defaults(func=_dev_build)

    dir_help = f"cluster directory (default: $CAIRN_DEV_DIR or {default_cluster_dir()})"
    u = dsub.add_parser("up", help="start etcd, kube-apiserver, controllers, SeaweedFS S3 and a local node")
    u.add_argument("--dir", type=Path, default=None, help=dir_help)
    u.add_argument("--apiserver-port", type=int, default=0, help="fixed API server port (default: a free one)")
    u.add_argument("--s3-port", type=int, default=0, help="fixed S3 port (default: a free one)")
    u.add_argument(
        "--node",
        choices=("local", "containerd"),
        default="local",
        help="local: the stand-in cairn-local (pods as host processes, fast); containerd: cairn-node, a real "
        "kubelet with containerd, runc and CNI in a network namespace of its own (root; images from "
        "`cairn dev image build`) (default: %(default)s)",
    )
    u.add_argument("--no-node", action="store_true", help="do not run a node")
    u.add_argument(
        "--kubelet-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="an extra kubelet flag for --node=containerd (repeatable), e.g. --kubelet-arg=--v=4",
    )
    u.set_defaults(func=_dev_up)

    d = dsub.add_parser("down", help="stop every process `up` started and remove what it created")
    d.add_argument("--dir", type=Path, default=None, help=dir_help)
    d.set_defaults(func=_dev_down)

    s = dsub.add_parser("status", help="show what runs (exit 1 when something is down)")
    s.add_argument("--dir", type=Path, default=None, help=dir_help)
    s.set_defaults(func=_dev_status)

    e = dsub.add_parser("env", help='print the environment (eval "$(cairn dev env)")')
    e.add_argument("--dir", type=Path, default=None, help=dir_help)
    e.set_defaults(func=_dev_env)

    im = dsub.add_parser("image", help="build Cairn's container images with buildah (no Docker engine), export them")
    isub = im.add_subparsers(dest="image_command", required=True)
    ib = isub.add_parser("build", help="build base (once), pause, operator and step images (cached layers)")
    ib.add_argument("--base", default=None, help="base image (default: localhost/cairn-base:bookworm, debootstrap)")
    ib.add_argument("--no-cache", action="store_true", help="rebuild every layer (the base image is kept)")
    ib.set_defaults(func=_dev_image_build)
    ie = isub.add_parser("export", help="write an image as a docker-archive tar (ctr images import, kind load)")
    ie.add_argument("name", help="full image name, e.g. localhost/cairn-step:0.1.0")
    ie.add_argument("file", type=Path, help="the tar to write")
    ie.set_defaults(func=_dev_image_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from cairn.dev.errors import DevError
    from cairn.errors import CairnError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except (DevError, CairnError) as exc:
        print(f"cairn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cairn: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
