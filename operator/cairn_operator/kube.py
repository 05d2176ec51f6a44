"""The one module that talks to the Kubernetes API (besides kopf itself): Jobs, Secrets, ServiceAccounts
and pods."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from typing import Any

from cairn.contract import PodPhase
from cairn_operator.models import GROUP, VERSION
from cairn_operator.reconcile import PodObs
from cairn_operator.resources import ANNOTATION_STEP, LABEL_ATTEMPT, LABEL_RUN, LABEL_STEP, NODE_LOST_KEYS, tolerates


class Refused(Exception):
    """The API server refused a write the operator needs (a 4xx: RBAC, admission, validation). The
    message is the server's own (e.g. a PodSecurity violation), without the HTTP headers an ApiException
    prints; `status` is the HTTP status."""

    def __init__(self, what: str, exc: Any) -> None:
        self.status: int | None = exc.status
        self.reason: str | None = exc.reason
        message = exc.body or ""
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            message = json.loads(exc.body).get("message") or message
        super().__init__(f"{what} refused by the API server ({exc.status} {exc.reason}): {message}")

    @property
    def permanent(self) -> bool:
        """422 Invalid: the object itself is wrong (an invalid quantity, env name, label, volume), so the
        same request is refused every time. Others (403 RBAC, PodSecurity, a quota; 404 a namespace or
        ServiceAccount) may be fixed by an admin: worth trying again."""
        return self.status == 422


#: The first resourceVersion in an object's JSON: its own (metadata's fields precede the rest).
RESOURCE_VERSION = re.compile(rb'"resourceVersion"\s*:\s*"([^"]+)"')


def newer_or_same(version: str | None, than: str) -> bool:
    """Whether resourceVersion `version` is `than` or came after it: equal, or (as the API server's
    versions are) both integers, not smaller. Unknown: False."""
    if version is None:
        return False
    if version == than:
        return True
    try:
        return int(version) >= int(than)
    except ValueError:
        return False


def _refusal(exc: Any) -> bool:
    """A 4xx but 409 (exists) and 429 (throttled): the API server's answer, not a passing failure (5xx,
    throttling and connection errors are raised as they are: the next cycle tries again)."""
    return isinstance(exc.status, int) and 400 <= exc.status < 500 and exc.status not in (409, 429)


def pod_obs(pod: dict[str, Any]) -> PodObs:
    meta, status = pod["metadata"], pod.get("status") or {}
    cs = (status.get("containerStatuses") or [{}])[0]
    term = (cs.get("state") or {}).get("terminated") or {}
    waiting = (cs.get("state") or {}).get("waiting") or {}
    spec = pod.get("spec") or {}
    return PodObs(
        name=meta["name"],
        step=(meta.get("annotations") or {}).get(ANNOTATION_STEP) or meta["labels"][LABEL_STEP],
        attempt=int(meta["labels"].get(LABEL_ATTEMPT, "1")),
        phase=status.get("phase", PodPhase.PENDING.value),
        exit_code=term.get("exitCode"),
        message=term.get("message"),
        reason=status.get("reason") or term.get("reason"),
        started=term.get("startedAt") or ((cs.get("state") or {}).get("running") or {}).get("startedAt"),
        finished=term.get("finishedAt"),
        deleting=meta.get("deletionTimestamp") is not None,
        waiting_reason=waiting.get("reason"),
        waiting_message=waiting.get("message"),
        image=((spec.get("containers") or [{}])[0]).get("image") or cs.get("image"),
        node=spec.get("nodeName"),
        node_lost_since=_node_lost_since(status, cs),
        node_lost_grace=_node_lost_grace(spec.get("tolerations") or []),
    )


def _node_lost_since(status: dict[str, Any], cs: dict[str, Any]) -> str | None:
    """When the node controller marked a running pod not ready (its node stopped answering): Ready False
    without a reason, while the container is still running as far as the API knows. A kubelet that
    reports its own container not ready gives a reason (ContainersNotReady)."""
    if status.get("phase") != PodPhase.RUNNING or not (cs.get("state") or {}).get("running"):
        return None
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "False" and not c.get("reason"):
            since: str | None = c.get("lastTransitionTime")
            return since
    return None


def _node_lost_grace(tolerations: list[dict[str, Any]]) -> float | None:
    """Seconds the pod tolerates a lost node: the shortest NoExecute toleration of a node-lost taint
    (None when one tolerates it for ever, or none applies: then the cluster's own eviction decides)."""
    secs: list[float] = []
    for t in tolerations:
        if not any(tolerates(t, k) for k in NODE_LOST_KEYS) or t.get("effect") not in (None, "", "NoExecute"):
            continue
        if t.get("tolerationSeconds") is None:
            return None
        secs.append(float(t["tolerationSeconds"]))
    return min(secs) if secs else None


class Kube:
    """The Kubernetes API as the operator uses it: one client, made on first use from the in-cluster
    config or the kubeconfig (or given: tests pass their own), held by this object, never by the module."""

    def __init__(self, api_client: Any = None) -> None:
        self._api_client = api_client
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:
            if self._api_client is None:
                from kubernetes import client, config

                try:
                    config.load_incluster_config()
                except config.ConfigException:
                    config.load_kube_config()
                self._api_client = client.ApiClient()
            return self._api_client

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._client())

    def _get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        try:
            obj: dict[str, Any] = client.CustomObjectsApi(self._client()).get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get("jobs", namespace, name)

    def get_run(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get("runs", namespace, name)

    def _list(self, plural: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        from kubernetes import client

        resp = client.CustomObjectsApi(self._client()).list_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, label_selector=selector
        )
        items: list[dict[str, Any]] = resp["items"]
        return items

    def _create(self, plural: str, body: dict[str, Any]) -> bool:
        """Create a custom object; False when it exists already (409), which adopts it."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        try:
            client.CustomObjectsApi(self._client()).create_namespaced_custom_object(
                GROUP, VERSION, body["metadata"]["namespace"], plural, body
            )
        except ApiException as exc:
            if exc.status == 409:
                return False
            if _refusal(exc):
                raise Refused(f"creating {body.get('kind', plural)} {body['metadata']['name']}", exc) from exc
            raise
        return True

    def list_runs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self._list("runs", namespace, selector)

    def create_run(self, body: dict[str, Any]) -> bool:
        return self._create("runs", body)

    def get_reexecution(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get("reexecutions", namespace, name)

    def list_reexecutions(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self._list("reexecutions", namespace, selector)

    def create_reexecution(self, body: dict[str, Any]) -> bool:
        return self._create("reexecutions", body)

    def set_run_finalizers(self, namespace: str, name: str, finalizers: list[str], resource_version: str) -> None:
        """Replace a Run's finalizers (optimistic: fails with 409 if the Run changed since it was read)."""
        from kubernetes import client

        client.CustomObjectsApi(self._client()).patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "runs",
            name,
            {"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}},
        )

    def patch_run_status(self, namespace: str, name: str, patch: dict[str, Any]) -> str | None:
        """A JSON merge patch of the Run's status subresource (None values delete keys); the resourceVersion
        the write made (None: nothing to write)."""
        from kubernetes import client

        if not patch:
            return None
        # the patched Run is not decoded (a large Run's JSON is most of the cost of a small patch): only its
        # resourceVersion is read, the first in the object (metadata comes before spec and status)
        data = (
            client.CustomObjectsApi(self._client())
            .patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, "runs", name, {"status": patch}, _preload_content=False
            )
            .read()
        )
        found = RESOURCE_VERSION.search(data)
        return found.group(1).decode() if found else None

    def patch_reexecution_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """A JSON merge patch of the Reexecution's status subresource (None values delete keys)."""
        from kubernetes import client

        if patch:
            client.CustomObjectsApi(self._client()).patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, "reexecutions", name, {"status": patch}
            )

    def label_run(self, namespace: str, name: str, labels: dict[str, str]) -> None:
        from kubernetes import client

        client.CustomObjectsApi(self._client()).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "runs", name, {"metadata": {"labels": labels}}
        )

    def secret_exists(self, namespace: str, name: str) -> bool:
        from kubernetes.client.rest import ApiException

        try:
            self._core().read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def read_secret_versioned(self, namespace: str, name: str) -> tuple[str, dict[str, str]]:
        """A Secret's resourceVersion and data, decoded; kept in memory only (never copied into a spec,
        status, event or log)."""
        import base64

        secret = self._core().read_namespaced_secret(name, namespace)
        data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        return str(secret.metadata.resource_version), data

    def pod_log(self, namespace: str, name: str) -> bytes:
        resp = self._core().read_namespaced_pod_log(name, namespace, _preload_content=False)
        data: bytes = resp.data
        return data

    def list_step_pods(self, namespace: str, run: str, steps: list[str] | None = None) -> list[PodObs]:
        """The Run's step pods; with `steps`, only those of these steps."""
        selector = f"{LABEL_RUN}={run}"
        if steps is not None:
            if not steps:
                return []
            selector += f",{LABEL_STEP} in ({','.join(steps)})"
        resp = self._core().list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
        return [pod_obs(p) for p in json.loads(resp.data)["items"]]

    def create_pod(self, body: dict[str, Any]) -> bool:
        """Create a pod; False when it already exists (409), which adopts it."""
        from kubernetes.client.rest import ApiException

        try:
            # the created pod is not read back: deserializing it into client models costs more than the call
            # (its bytes are read, so that the connection goes back to the pool)
            resp = self._core().create_namespaced_pod(body["metadata"]["namespace"], body, _preload_content=False)
            resp.read()
        except ApiException as exc:
            if exc.status == 409:
                return False
            if _refusal(exc):
                raise Refused(f"creating pod {body['metadata']['name']}", exc) from exc
            raise
        return True

    def ensure_service_account(self, body: dict[str, Any]) -> bool:
        """Create the ServiceAccount `body` unless one of its name exists (a user's own is left as it is);
        True when this call created it. Needs `serviceaccounts: get, create`."""
        from kubernetes.client.rest import ApiException

        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        try:
            self._core().read_namespaced_service_account(name, namespace)
            return False
        except ApiException as exc:
            if exc.status != 404:
                if _refusal(exc):
                    raise Refused(f"reading ServiceAccount {namespace}/{name}", exc) from exc
                raise
        try:
            self._core().create_namespaced_service_account(namespace, body)
        except ApiException as exc:
            if exc.status == 409:  # created meanwhile (another cycle, another replica, a user)
                return False
            if _refusal(exc):
                raise Refused(f"creating ServiceAccount {namespace}/{name}", exc) from exc
            raise
        return True

    def delete_pod(self, namespace: str, name: str, force: bool = False) -> None:
        """Delete a pod; `force`: with grace period 0 (its node is lost: no kubelet will confirm)."""
        from kubernetes.client.rest import ApiException

        try:
            self._core().delete_namespaced_pod(name, namespace, grace_period_seconds=0 if force else None)
        except ApiException as exc:
            if exc.status != 404:
                raise
