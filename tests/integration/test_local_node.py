"""The local node cairn-local: pods run as host processes and report status as with a kubelet."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from cairn_dev.procs import ProcRecord
from tests.helpers import eventually


def make_pod(namespace: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "ignored:latest", "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p-{uuid.uuid4().hex[:6]}", "namespace": namespace},
        "spec": {"restartPolicy": "Never", "containers": [container], **spec},
    }


def run(core: Any, body: dict[str, Any]) -> str:
    core.create_namespaced_pod(body["metadata"]["namespace"], body)
    return str(body["metadata"]["name"])


def phase_of(core: Any, ns: str, name: str, *phases: str) -> Any:
    pod = core.read_namespaced_pod(name, ns)
    return pod if pod.status.phase in phases else None


def pod_dir(dev_cluster: Any, pod: Any) -> Path:
    return Path(dev_cluster.root) / "node" / "pods" / str(pod.metadata.uid)


def test_the_node_is_ready_with_capacity_and_a_fresh_lease(kube: Any, core: Any) -> None:
    node = core.read_node("cairn-local")
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
    assert int(node.status.capacity["cpu"]) >= 1 and node.status.capacity["pods"] == "110"
    assert not node.spec.taints
    lease = client.CoordinationV1Api(kube).read_namespaced_lease("cairn-local", "kube-node-lease")
    age = dt.datetime.now(dt.UTC) - lease.spec.renew_time
    assert age.total_seconds() < 30
    assert lease.spec.holder_identity == "cairn-local"


def test_a_pod_runs_to_succeeded_with_its_termination_message(
    core: Any, namespace: str, dev_cluster: Any, tmp_path: Path
) -> None:
    code = (
        "import os; open('/dev/termination-log', 'w').write(json.dumps({'pod': os.environ['POD'], "
        "'ns': os.environ['NS'], 'bucket': os.environ['CAIRN_S3_BUCKET'], "
        "'mode': os.environ['MODE'], 'cwd': os.getcwd()})); print('hello')"
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    body = make_pod(
        namespace,
        ["python", "-c", "import json; " + code],
        container={
            "workingDir": str(workdir),
            "env": [
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            ],
        },
    )
    # Secrets resolve in the pod's own namespace, as with a kubelet.
    src = core.read_namespaced_secret("cairn-s3", "default")
    core.create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name="cairn-s3"), data=src.data)
    )
    body["spec"]["containers"][0]["env"].append(
        {
            "name": "CAIRN_S3_BUCKET",
            "valueFrom": {"secretKeyRef": {"name": "cairn-s3", "key": "CAIRN_S3_BUCKET"}},
        }
    )
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"mode": "fast"})
    )
    body["spec"]["containers"][0]["env"].append(
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}
    )
    name = run(core, body)
    pod = eventually(lambda: phase_of(core, namespace, name, "Succeeded", "Failed"), timeout=60, what="pod to end")
    assert pod.status.phase == "Succeeded"
    term = pod.status.container_statuses[0].state.terminated
    assert term.exit_code == 0 and term.reason == "Completed"
    msg = json.loads(term.message)
    assert msg["pod"] == name and msg["ns"] == namespace and msg["bucket"] == "cairn"
    assert msg["cwd"] == str(workdir) and msg["mode"] == "fast"
    assert term.started_at <= term.finished_at
    assert pod.spec.node_name == "cairn-local"
    assert (pod_dir(dev_cluster, pod) / "log").read_text().strip() == "hello"


def test_a_failing_pod_reaches_failed_with_its_exit_code(core: Any, namespace: str) -> None:
    name = run(
        core,
        make_pod(
            namespace,
            ["python", "-c", "import sys; print('it broke'); sys.exit(7)"],
            container={"terminationMessagePolicy": "FallbackToLogsOnError"},
        ),
    )
    pod = eventually(lambda: phase_of(core, namespace, name, "Failed", "Succeeded"), timeout=60, what="pod to fail")
    assert pod.status.phase == "Failed"
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason, term.message) == (7, "Error", "it broke")


def test_a_missing_secret_keeps_the_pod_waiting_with_the_reason(core: Any, namespace: str) -> None:
    name = run(
        core,
        make_pod(
            namespace,
            ["true"],
            container={"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]},
        ),
    )

    def waiting() -> Any:
        st = core.read_namespaced_pod(name, namespace).status
        cs = (st.container_statuses or [None])[0]
        return cs and cs.state.waiting and cs.state.waiting

    w = eventually(waiting, timeout=30, what="waiting reason")
    assert w.reason == "CreateContainerConfigError"
    assert 'secret "absent" not found' in w.message


def _process_of(dev_cluster: Any, pod: Any) -> ProcRecord | None:
    try:
        shim = json.loads((pod_dir(dev_cluster, pod) / "shim.json").read_text())
    except FileNotFoundError:
        return None
    return ProcRecord("shim", shim["pid"], shim["start_time"], [], "")


def test_a_deleted_pod_is_killed(core: Any, namespace: str, dev_cluster: Any) -> None:
    body = make_pod(namespace, ["sleep", "600"], terminationGracePeriodSeconds=3)
    name = run(core, body)
    pod = eventually(lambda: phase_of(core, namespace, name, "Running"), timeout=60, what="pod running")
    proc = eventually(lambda: _process_of(dev_cluster, pod), what="shim record")
    assert proc.alive()
    core.delete_namespaced_pod(name, namespace)

    def deleted() -> bool:
        try:
            core.read_namespaced_pod(name, namespace)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    eventually(deleted, timeout=30, what="pod object gone")
    assert not proc.alive()
    child = json.loads((pod_dir(dev_cluster, pod) / "child.json").read_text())
    assert (
        not Path(f"/proc/{child['pid']}").exists() or "Z" in Path(f"/proc/{child['pid']}/stat").read_text().split()[2]
    )


def test_active_deadline_kills_the_pod(core: Any, namespace: str, dev_cluster: Any) -> None:
    name = run(core, make_pod(namespace, ["sleep", "600"], activeDeadlineSeconds=2, terminationGracePeriodSeconds=1))
    pod = eventually(lambda: phase_of(core, namespace, name, "Failed", "Succeeded"), timeout=60, what="deadline")
    assert (pod.status.phase, pod.status.reason) == ("Failed", "DeadlineExceeded")
    proc = _process_of(dev_cluster, pod)
    assert proc is not None and not proc.alive()


def test_a_restarted_agent_does_not_run_a_pod_twice(core: Any, namespace: str, dev_cluster: Any) -> None:
    # Each run of the command appends a line to a file: it must hold exactly one line at the end.
    marker = Path(dev_cluster.root) / f"runs-{uuid.uuid4().hex[:6]}.txt"
    code = f"import time; open({str(marker)!r}, 'a').write('ran\\n'); time.sleep(4)"
    name = run(core, make_pod(namespace, ["python", "-c", code]))
    eventually(lambda: phase_of(core, namespace, name, "Running"), timeout=60, what="pod running")
    dev_cluster.restart_node()
    pod = eventually(lambda: phase_of(core, namespace, name, "Succeeded", "Failed"), timeout=60, what="pod done")
    assert pod.status.phase == "Succeeded"
    # Several sync rounds of the new agent, each listing the first pod: a second pod runs to its end on it
    # (started in one round, its exit reported in a later one).
    probe = run(core, make_pod(namespace, ["python", "-c", "pass"]))
    eventually(lambda: phase_of(core, namespace, probe, "Succeeded"), timeout=60, what="a second pod run")
    assert marker.read_text() == "ran\n"
    marker.unlink()


@pytest.mark.parametrize("command", [[], ["/no/such/binary"]])
def test_a_pod_that_cannot_start_says_why(core: Any, namespace: str, command: list[str]) -> None:
    name = run(core, make_pod(namespace, command))

    def reason() -> Any:
        st = core.read_namespaced_pod(name, namespace).status
        cs = (st.container_statuses or [None])[0]
        if cs is None:
            return None
        return cs.state.waiting or cs.state.terminated

    r = eventually(reason, timeout=30, what="a reason")
    assert r.reason in ("CreateContainerError", "StartError")
    assert "command" in r.message or "/no/such/binary" in r.message


def test_kubectl_logs_works_through_the_kubelet_api(core: Any, namespace: str) -> None:
    name = run(core, make_pod(namespace, ["python", "-c", "print('\\n'.join(f'line {i}' for i in range(5)))"]))
    eventually(lambda: phase_of(core, namespace, name, "Succeeded"), timeout=60, what="pod done")

    def logs(**kw: Any) -> str:
        # _preload_content=False: the client's decoding of this text endpoint is unreliable across versions.
        return str(core.read_namespaced_pod_log(name, namespace, _preload_content=False, **kw).data.decode())

    assert logs() == "".join(f"line {i}\n" for i in range(5))
    assert logs(tail_lines=2) == "line 3\nline 4\n"
    assert logs(limit_bytes=6) == "line 0"


def test_following_logs_streams_until_the_pod_ends(core: Any, namespace: str) -> None:
    code = "import time\nfor i in range(3):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.7)"
    name = run(core, make_pod(namespace, ["python", "-c", code]))
    eventually(lambda: phase_of(core, namespace, name, "Running", "Succeeded"), timeout=60, what="pod started")
    resp = core.read_namespaced_pod_log(name, namespace, follow=True, _preload_content=False)
    chunks = [c.decode() for c in resp.stream(64)]
    assert "".join(chunks) == "tick 0\ntick 1\ntick 2\n"
    assert len(chunks) > 1  # it arrived while the pod ran, not at the end in one piece


def test_the_kubelet_api_refuses_callers_without_a_cluster_client_certificate(core: Any, dev_cluster: Any) -> None:
    import ssl
    import urllib.error
    import urllib.request

    port = core.read_node("cairn-local").status.daemon_endpoints.kubelet_endpoint.port
    assert port > 0
    ctx = ssl.create_default_context(cafile=str(dev_cluster.pki.ca_cert))
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
        urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=ctx, timeout=5).read()


def test_the_lease_is_renewed_so_the_node_controller_never_taints_the_node(kube: Any, core: Any) -> None:
    coord = client.CoordinationV1Api(kube)
    first = coord.read_namespaced_lease("cairn-local", "kube-node-lease").spec.renew_time
    later = eventually(
        lambda: (t := coord.read_namespaced_lease("cairn-local", "kube-node-lease").spec.renew_time) > first and t,
        timeout=25,
        interval=1,
        what="the lease to be renewed",
    )
    assert (later - first).total_seconds() < 25
    node = core.read_node("cairn-local")
    heartbeat = {c.type: c for c in node.status.conditions}["Ready"].last_heartbeat_time
    assert (dt.datetime.now(dt.UTC) - heartbeat).total_seconds() < 25
    assert not node.spec.taints
