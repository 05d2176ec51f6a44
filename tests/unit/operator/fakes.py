"""Fakes the operator's controllers are built with in unit tests: an API server holding one namespace's
objects in memory, an Event recorder, storage, and a Run controller wired to them (no cluster)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cairn_operator.limits import Backoff, PodSlots
from cairn_operator.ports import Faults
from cairn_operator.reconcile import PodObs
from cairn_operator.runs import RunController
from cairn_operator.settle import Settler
from cairn_operator.storage import StorageFactory


def merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """Apply a JSON merge patch in place (None deletes)."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            merge(target[k], v)
        else:
            target[k] = v


class FakeKube:
    """The API calls the controllers make, against objects kept here. Tests replace a method on the
    instance to make the server refuse or fail."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, dict[str, str]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.reexecutions: list[dict[str, Any]] = []
        self.pods: list[dict[str, Any]] = []  # created
        self.observed_pods: list[PodObs] = []  # what list_step_pods answers
        self.status_patches: list[dict[str, Any]] = []
        self.accounts: list[dict[str, Any]] = []
        self.logs: dict[str, bytes] = {}
        self.deleted: list[str] = []
        self.version = 100  # the last resourceVersion written

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.jobs.get(name)

    def secret_exists(self, namespace: str, name: str) -> bool:
        return name in self.secrets

    def read_secret_versioned(self, namespace: str, name: str) -> tuple[str, dict[str, str]]:
        return "1", self.secrets[name]

    def label_run(self, namespace: str, name: str, labels: dict[str, str]) -> None:
        pass

    def list_step_pods(self, namespace: str, run: str, steps: list[str] | None = None) -> list[PodObs]:
        return list(self.observed_pods)

    def ensure_service_account(self, body: dict[str, Any]) -> bool:
        self.accounts.append(body)
        return True

    def create_pod(self, body: dict[str, Any]) -> bool:
        self.pods.append(body)
        return True

    def delete_pod(self, namespace: str, name: str, force: bool = False) -> None:
        self.deleted.append(name)

    def pod_log(self, namespace: str, name: str) -> bytes:
        return self.logs.get(name, b"")

    def patch_run_status(self, namespace: str, name: str, patch: dict[str, Any]) -> str | None:
        if not patch:
            return None
        self.status_patches.append(patch)
        run = self.runs.setdefault(name, {"metadata": {"name": name}})
        merge(run.setdefault("status", {}), patch)
        self.version += 1
        run["metadata"]["resourceVersion"] = str(self.version)
        return str(self.version)

    def get_run(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.runs.get(name)

    def list_runs(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        key, _, value = selector.partition("=")
        return [r for r in self.runs.values() if (r["metadata"].get("labels") or {}).get(key) == value]

    def set_run_finalizers(self, namespace: str, name: str, finalizers: list[str], resource_version: str) -> None:
        self.runs[name]["metadata"]["finalizers"] = finalizers

    def list_reexecutions(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return list(self.reexecutions)

    def create_reexecution(self, body: dict[str, Any]) -> bool:
        self.reexecutions.append(body)
        return True


class Events:
    """A recorder keeping (type, reason, message) of each Event."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, str, str]] = []

    def post(self, body: Mapping[str, Any], type: str, reason: str, message: str) -> None:
        self.posted.append((type, reason, message))


def controller(kube: FakeKube, events: Events, storage: Any = None, **kw: Any) -> RunController:
    """A Run controller over the fakes (storage: an object with `store`/`load`, opened for every Job)."""
    factory = StorageFactory(kube, lambda: 0.0, opener=lambda spec, secret: storage)
    return RunController(
        kube=kube,  # type: ignore[arg-type]
        storage=factory,
        recorder=events,
        slots=PodSlots(100),
        creators=ThreadPoolExecutor(max_workers=2),
        settler=Settler(kube, events),  # type: ignore[arg-type]
        clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        faults=Faults.none(),
        refused_backoff=Backoff(cap=60),
        **kw,
    )


JOB = {
    "image": "img",
    "python": {"job": "pkg.mod:job"},
    "storage": {"secretRef": {"name": "cairn-s3"}, "bucket": "bucket-1"},
    "ops": [{"name": "a"}, {"name": "b", "inputs": {"x": "a"}}],
}


class FakeRun:
    """A Run named r in namespace ns of Job j in the fake API server, reconciled by a controller over the
    fakes; its pod creation refused `refusals` times (403, PodSecurity)."""

    def __init__(self, refusals: int = 0, storage: Any = None) -> None:
        self.kube = FakeKube()
        self.kube.jobs["j"] = {"spec": JOB}
        self.kube.secrets["cairn-s3"] = {"AWS_ACCESS_KEY_ID": "k"}
        self.recorder = Events()
        self.ctl = controller(self.kube, self.recorder, storage)
        self.tries = 0
        self.refusals = refusals
        create = self.kube.create_pod

        def create_pod(body: dict[str, Any]) -> bool:
            self.tries += 1
            if self.tries <= self.refusals:
                pod = body["metadata"]["name"]
                raise refusal(403, f'pods "{pod}" is forbidden: violates PodSecurity', f"creating pod {pod}")
            return create(body)

        self.kube.create_pod = create_pod  # type: ignore[method-assign]

    @property
    def status(self) -> dict[str, Any]:
        return dict((self.kube.runs.get("r") or {}).get("status") or {})

    @property
    def events(self) -> list[tuple[str, str, str]]:
        return self.recorder.posted

    @property
    def pods(self) -> list[dict[str, Any]]:
        return self.kube.pods

    def cycle(self, **spec: Any) -> float | None:
        """One cycle on the Run as the API server holds it now (a fresh copy, as the watch brings it)."""
        return self.ctl.cycle(
            {
                "metadata": {"name": "r", "namespace": "ns", "uid": "u-1", "generation": 1},
                "spec": {"jobRef": {"name": "j"}, **spec},
                "status": json.loads(json.dumps(self.status)),
            }
        )


def refusal(status: int, message: str, what: str = "creating ServiceAccount a/cairn-step") -> Any:
    from kubernetes.client.rest import ApiException

    from cairn_operator.kube import Refused

    exc = ApiException(status=status, reason="Forbidden")
    exc.body = json.dumps({"kind": "Status", "message": message, "code": status})
    return Refused(what, exc)
