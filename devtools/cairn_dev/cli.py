"""The `cairn dev` subcommands (build, up, down, status, env, image): their options and what each runs.

The runtime's `cairn` command adds them with :func:`add_commands` when this package is installed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cairn_dev.paths import default_cluster_dir
from cairn_dev.versions import K8S_VERSION


def _build(args: argparse.Namespace) -> int:
    from cairn_dev.builds.helm import HelmBuilder
    from cairn_dev.builds.k8s import Builder
    from cairn_dev.builds.kstatus import KstatusBuilder

    Builder(version=args.version, cache=args.cache).build(force=args.force)
    HelmBuilder(cache=args.cache).build(force=args.force)  # helm renders and lints charts/cairn
    KstatusBuilder(cache=args.cache).build(force=args.force)  # kstatus reads Runs as Flux and kpt do
    return 0


def _up(args: argparse.Namespace) -> int:
    from cairn_dev.cluster import Cluster, UpOptions

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


def _down(args: argparse.Namespace) -> int:
    from cairn_dev.cluster import Cluster

    Cluster(args.dir).down()
    return 0


def _status(args: argparse.Namespace) -> int:
    from cairn_dev.cluster import Cluster

    text, healthy = Cluster(args.dir).status()
    print(text)
    return 0 if healthy else 1


def _env(args: argparse.Namespace) -> int:
    from cairn_dev.cluster import Cluster

    cluster = Cluster(args.dir)
    if args.path:
        print(cluster.env_file())
    else:
        print(cluster.env_text(), end="")
    return 0


def _image_build(args: argparse.Namespace) -> int:
    from cairn_dev.builds import images

    images.build_all(base=args.base, no_cache=args.no_cache)
    return 0


def _image_export(args: argparse.Namespace) -> int:
    from cairn_dev.builds import images

    print(images.export(args.name, args.file))
    return 0


def _add_build(dsub: Any) -> None:
    b = dsub.add_parser(
        "build",
        help=f"build Kubernetes {K8S_VERSION} (kubelet included), helm and kstatus from Go modules (cached)",
    )
    b.add_argument("--version", default=K8S_VERSION, help="Kubernetes release (default: %(default)s)")
    b.add_argument("--cache", type=Path, default=None, help="cache directory (default: ~/.cache/cairn)")
    b.add_argument("--force", action="store_true", help="rebuild even when cached binaries exist")
    b.set_defaults(func=_build)


def _add_up(dsub: Any, dir_help: str) -> None:
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
    u.set_defaults(func=_up)


def _add_image(dsub: Any) -> None:
    im = dsub.add_parser("image", help="build Cairn's container images with buildah (no Docker engine), export them")
    isub = im.add_subparsers(dest="image_command", required=True)
    ib = isub.add_parser("build", help="build base (once), pause, operator and step images (cached layers)")
    ib.add_argument("--base", default=None, help="base image (default: localhost/cairn-base:bookworm, debootstrap)")
    ib.add_argument("--no-cache", action="store_true", help="rebuild every layer (the base image is kept)")
    ib.set_defaults(func=_image_build)
    ie = isub.add_parser("export", help="write an image as a docker-archive tar (ctr images import, kind load)")
    ie.add_argument("name", help="full image name, e.g. localhost/cairn-step:0.1.0")
    ie.add_argument("file", type=Path, help="the tar to write")
    ie.set_defaults(func=_image_export)


def add_commands(sub: Any) -> None:
    """Add `cairn dev ...` to the `cairn` command's subparsers `sub`."""
    dev = sub.add_parser("dev", help="a real local control plane without Docker")
    dsub = dev.add_subparsers(dest="dev_command", required=True)
    _add_build(dsub)
    dir_help = f"cluster directory (default: $CAIRN_DEV_DIR or {default_cluster_dir()})"
    _add_up(dsub, dir_help)
    d = dsub.add_parser("down", help="stop every process `up` started and remove what it created")
    d.add_argument("--dir", type=Path, default=None, help=dir_help)
    d.set_defaults(func=_down)
    s = dsub.add_parser("status", help="show what runs (exit 1 when something is down)")
    s.add_argument("--dir", type=Path, default=None, help=dir_help)
    s.set_defaults(func=_status)
    e = dsub.add_parser(
        "env",
        help='print the environment (eval "$(cairn dev env)"), or with --path the env file '
        '(source "$(cairn dev env --path)")',
    )
    e.add_argument("--dir", type=Path, default=None, help=dir_help)
    e.add_argument("--path", action="store_true", help="print the env file's path instead of its variables")
    e.set_defaults(func=_env)
    _add_image(dsub)
