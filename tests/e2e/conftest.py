"""Shared end-to-end setup: a cluster with the containerd node (real containers)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from cairn_dev.builds import images
from cairn_dev.cluster import Cluster, UpOptions


@contextlib.contextmanager
def containerd_cluster(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Cluster]:
    """`cairn dev up --node=containerd` in a new directory (the images built first: cached layers, quick
    when nothing changed), brought down at the end whatever happened."""
    images.build_all(say=print)
    cluster = Cluster(tmp_path_factory.mktemp(name) / "dev")
    try:
        cluster.up(UpOptions(node_kind="containerd", timeout=240))
        yield cluster
    finally:
        cluster.down()
