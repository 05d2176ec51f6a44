"""Shared pytest setup: the `--e2e` switch, and fixtures on a real local control plane.

The control plane (`cairn dev up`) is started once per test session, in a temporary directory, and
stopped at the end even when tests fail. Set CAIRN_TEST_CLUSTER_DIR to a directory where `cairn dev
up` already runs to reuse it (it is then left running).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cycles_at


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--e2e", action="store_true", default=False, help="run the end-to-end tests (marked e2e)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--e2e"):
        return
    skip = pytest.mark.skip(reason="end-to-end test: run with --e2e (.ci/run does)")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def dev_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from cairn_dev.cluster import Cluster

    reuse = os.environ.get("CAIRN_TEST_CLUSTER_DIR")
    if reuse:
        cluster = Cluster(Path(reuse))
        state = cluster.load_state()
        assert state is not None and state.phase == "up", f"CAIRN_TEST_CLUSTER_DIR={reuse} holds no running cluster"
        yield cluster
        return
    cluster = Cluster(tmp_path_factory.mktemp("cluster") / "dev")
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="session")
def dev_state(dev_cluster: Any) -> Any:
    return dev_cluster.load_state()


@pytest.fixture(scope="session")
def kube(dev_cluster: Any) -> Any:
    """An admin `kubernetes.client.ApiClient`."""
    return dev_cluster.api()


@pytest.fixture(scope="session")
def core(kube: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(kube)


@pytest.fixture(scope="session")
def s3(dev_cluster: Any, dev_state: Any) -> Any:
    """A boto3 S3 client with the cluster's credentials; its bucket is `s3.bucket`."""
    client = dev_cluster.s3_client(dev_state)
    client.bucket = dev_state.s3["bucket"]
    return client


@pytest.fixture
def namespace(core: Any) -> Iterator[str]:
    """A fresh namespace, ready for pods (its default ServiceAccount exists); deleted afterwards."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    deadline = time.monotonic() + 30
    while True:
        try:
            core.read_namespaced_service_account("default", name)
            break
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield name
    core.delete_namespace(name)


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cairn_operator(dev_cluster: Any, kube: Any) -> Iterator[Any]:
    """The CRDs from crds/ installed, and the operator running as a process against the cluster, serving
    its metrics (`cycles()` reads how many reconcile cycles it finished for an object)."""
    import sys

    import yaml
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from cairn_dev import procs

    ext = client.ApiextensionsV1Api(kube)
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        try:
            ext.create_custom_resource_definition(doc)
        except ApiException as exc:
            if exc.status != 409:
                raise
            current = ext.read_custom_resource_definition(doc["metadata"]["name"])
            doc["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(doc["metadata"]["name"], doc)
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        deadline = time.monotonic() + 30
        while not any(
            c.type == "Established" and c.status == "True"
            for c in (ext.read_custom_resource_definition(name).status.conditions or [])
        ):
            assert time.monotonic() < deadline, f"CRD {name} not Established"
            time.sleep(0.2)
    log = Path(dev_cluster.root) / "logs" / "cairn-operator.log"
    liveness = f"http://127.0.0.1:{procs.free_port()}/healthz"
    metrics = f"127.0.0.1:{procs.free_port()}"
    argv = [sys.executable, "-m", "cairn_operator", "--liveness", liveness, "--metrics", metrics]
    env = {**os.environ, "KUBECONFIG": str(dev_cluster.kubeconfig)}
    rec = procs.start("cairn-operator", argv, log, env=env, cwd=ROOT)

    class Handle:
        record = rec
        liveness_url = liveness
        metrics_url = f"http://{metrics}/metrics"
        log_path = log

        def cycles(self, kind: str, namespace: str, name: str) -> int:
            """Reconcile cycles the running operator process finished for one object (kind Run or
            Reexecution); counted from 0 again after a restart."""
            return cycles_at(self.metrics_url, kind, namespace, name)

        def restart(self, kubeconfig: Path | None = None) -> None:
            """Start it again, as the admin or, with `kubeconfig`, as another identity."""
            procs.stop(self.record, grace=10)
            run_env = {**env, "KUBECONFIG": str(kubeconfig)} if kubeconfig else env
            self.record = procs.start("cairn-operator", argv, log, env=run_env, cwd=ROOT)

        def kill(self) -> None:
            """SIGKILL, as an OOM kill or a node failure would: no cleanup at all."""
            import signal

            os.kill(self.record.pid, signal.SIGKILL)
            procs.stop(self.record, grace=1)

        def stop(self) -> None:
            procs.stop(self.record, grace=10)

    handle = Handle()
    try:
        yield handle
    finally:
        handle.stop()
