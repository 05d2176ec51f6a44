"""The UI's Kubernetes source: Jobs, Runs and Reexecutions of one namespace, as the caller sees them.

Everything is done with the kubeconfig identity the UI was started with, never another account. One
watch per kind (jobs, runs, reexecutions) keeps an in-memory copy of the namespace (list, then watch
from its resourceVersion; a 410 Gone lists again), and every change is published to the pages
(server-sent events), so a page never polls the API server. A refusal of the API server (403...)
reaches the page with the server's own message.

Step logs: while the step's pod exists, from the pod (the kubelet's log endpoint); after it is gone,
from storage, at the key the Run's status.steps[*].logs names, read with the credentials of the Job's
storage Secret (read here, used server-side only: no Secret value is ever returned; any value of it
found in a text sent to a page is masked). A running attempt's log can also be followed as it is
written (`follow_log`: the pod log with follow=True, one API server connection per open stream,
closed by `PodLogFollow.close`).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from cairn.contract import (
    ANNOTATION_MODE,
    API_VERSION,
    GROUP,
    LABEL_PARENT,
    LABEL_ROOT,
    LABEL_RX,
    REEXECUTION,
    RESOURCES,
    VERSION,
    RunPhase,
    RxMode,
    RxPhase,
    StepState,
)
from cairn.s3io import DEFAULT_PREFIX, locate, object_key, open_storage
from cairn.ui.sources import (
    SAME_STEPS,
    SELECTING,
    Publish,
    ReexecRequest,
    UIError,
    duration,
    iso_to_epoch,
    lineage_tree,
    mask,
    upstream_of_ops,
)

G, V = GROUP, VERSION
KINDS = tuple(r.plural for r in RESOURCES)  # jobs, runs, reexecutions
PENDING = RunPhase.PENDING.value  # a Run's, a step's or a Reexecution's phase before its status has one
TERMINAL_STEPS = frozenset(s.value for s in StepState if s.terminal)
FINISHED = frozenset(p.value for p in RunPhase if p.finished)
#: Run phases a re-execution from failure can start from.
RESUMABLE = frozenset(p.value for p in RunPhase if p.can_resume_from_failure)
#: Step phases whose current attempt's pod log can be followed.
FOLLOWABLE = (StepState.RUNNING.value, StepState.PENDING.value)
#: Step phases whose current attempt may have a pod whose log can be read.
POD_LOG_STEPS = frozenset(
    s.value for s in (StepState.RUNNING, StepState.PENDING, StepState.RETRYING, StepState.FAILED, StepState.SUCCEEDED)
)
#: Reexecution phases after which a dry run has its plan, and after which a re-execution has its child (or failed).
PLANNED = (RxPhase.PLANNED.value, RxPhase.INVALID.value, RxPhase.FAILED.value)
STARTED = (RxPhase.RUNNING.value, RxPhase.SUCCEEDED.value, RxPhase.FAILED.value, RxPhase.INVALID.value)
LOG_TAIL = 5000  # lines of a pod log read at once, or before following it
#: The re-execution modes the UI shows for a child Run (a Stale child shows none).
_UI_MODE = {m.value: m.value for m in RxMode if m is not RxMode.STALE}


def api_message(exc: Exception) -> tuple[int, str]:
    """The HTTP status and the API server's own message of an ApiException (or the error's text)."""
    status = int(getattr(exc, "status", 0) or 502)
    body = getattr(exc, "body", None)
    message = ""
    if body:
        try:
            message = json.loads(body).get("message") or ""
        except (ValueError, AttributeError):
            message = str(body)[:500]
    if not message:
        message = f"{getattr(exc, 'reason', '') or type(exc).__name__}".strip()
    return status, message


#: Streams watch events of one kind from a resourceVersion: (plural, resource_version, stop) -> events.
WatchStream = Callable[[str, str, threading.Event], Iterator[dict[str, Any]]]
#: Loads an object from storage: (endpoint, bucket, prefix, credentials, key) -> bytes.
StorageRead = Callable[[str | None, str, str, dict[str, str], str], bytes]


def _s3_read(endpoint: str | None, bucket: str, prefix: str, creds: dict[str, str], key: str) -> bytes:
    data: bytes = open_storage(creds, bucket=bucket, prefix=prefix, endpoint=endpoint).load(key, "bytes")
    return data


class KubeSource:
    """One namespace of a cluster, through the caller's kubeconfig."""

    kind = "kubernetes"
    live_logs = True

    def __init__(
        self,
        custom: Any,
        core: Any,
        namespace: str,
        watch_stream: WatchStream | None = None,
        storage_read: StorageRead = _s3_read,
        identity: str = "",
    ) -> None:
        self.custom = custom
        self.core = core
        self.namespace = namespace
        self.identity = identity
        self._watch_stream = watch_stream or self._kube_watch
        self._storage_read = storage_read
        self._cache: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in KINDS}
        self._errors: dict[str, str] = {}
        self._ready = {k: threading.Event() for k in KINDS}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._publish: Publish = lambda _e: None

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None, context: str | None, namespace: str | None) -> KubeSource:
        from kubernetes import client, config

        try:
            api = config.new_client_from_config(config_file=kubeconfig, context=context)
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
        except Exception as exc:
            raise UIError(
                500, f"cannot load the kubeconfig {kubeconfig or '$KUBECONFIG or ~/.kube/config'}: {exc}"
            ) from exc
        if context:
            contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
            active = next((c for c in contexts if c["name"] == context), active)
        ns = namespace or (active.get("context") or {}).get("namespace") or "default"
        ident = f"{active.get('name', '')} ({(active.get('context') or {}).get('user', '')})"
        return cls(client.CustomObjectsApi(api), client.CoreV1Api(api), ns, identity=ident)

    # ----- watches --------------------------------------------------------------------------------
    def start(self, publish: Publish) -> None:
        self._publish = publish
        for plural in KINDS:
            t = threading.Thread(target=self._watch, args=(plural,), name=f"cairn-ui-watch-{plural}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)

    def wait_ready(self, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        return all(e.wait(max(0.0, deadline - time.monotonic())) or k in self._errors for k, e in self._ready.items())

    def _kube_watch(self, plural: str, rv: str, stop: threading.Event) -> Iterator[dict[str, Any]]:
        from kubernetes import watch

        w = watch.Watch()
        try:
            for ev in w.stream(
                self.custom.list_namespaced_custom_object,
                G,
                V,
                self.namespace,
                plural,
                resource_version=rv,
                timeout_seconds=20,
                allow_watch_bookmarks=True,
                _request_timeout=30,
            ):
                if stop.is_set():
                    return
                yield ev
        finally:
            w.stop()

    def _watch(self, plural: str) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                listed = self.custom.list_namespaced_custom_object(G, V, self.namespace, plural)
                with self._cond:
                    self._cache[plural] = {o["metadata"]["name"]: o for o in listed.get("items") or []}
                    self._errors.pop(plural, None)
                    self._cond.notify_all()
                self._ready[plural].set()
                self._publish({"kind": plural, "type": "RESYNC", "name": None})
                rv = (listed.get("metadata") or {}).get("resourceVersion") or ""
                backoff = 1.0
                while not self._stop.is_set():
                    gone = False
                    for ev in self._watch_stream(plural, rv, self._stop):
                        typ, obj = ev.get("type"), ev.get("object") or {}
                        if typ == "ERROR":
                            gone = obj.get("code") == 410
                            if not gone:
                                raise UIError(int(obj.get("code") or 500), str(obj.get("message")))
                            break
                        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                        if typ != "BOOKMARK":
                            self._apply(plural, str(typ), obj)
                    if gone:
                        break
            except Exception as exc:
                status, message = api_message(exc) if not isinstance(exc, UIError) else (exc.status, exc.message)
                if status == 410:
                    continue
                with self._cond:
                    self._errors[plural] = message if status in (401, 403) else f"watch of {plural}: {message}"
                    self._cond.notify_all()
                self._ready[plural].set()
                self._publish({"kind": plural, "type": "ERROR", "name": None})
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _apply(self, plural: str, typ: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        with self._cond:
            if typ == "DELETED":
                self._cache[plural].pop(name, None)
            else:
                self._cache[plural][name] = obj
            self._cond.notify_all()
        self._publish({"kind": plural, "type": typ, "name": name})

    def _objects(self, plural: str) -> dict[str, dict[str, Any]]:
        if plural in self._errors and not self._cache[plural]:
            raise UIError(403 if "forbidden" in self._errors[plural].lower() else 502, self._errors[plural])
        self._ready[plural].wait(10)
        with self._cond:
            return dict(self._cache[plural])

    # ----- reads ----------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {"source": "kubernetes", "namespace": self.namespace, "identity": self.identity, "errors": self._errors}

    def _run_obj(self, name: str) -> dict[str, Any]:
        run = self._objects("runs").get(name)
        if run is None:
            raise UIError(404, f"Run {name} not found in namespace {self.namespace}")
        return run

    def _ops(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        st = run.get("status") or {}
        execution = (run.get("spec") or {}).get("execution") or {}
        snap = st.get("jobSnapshot") or execution.get("jobSnapshot")
        if not snap:
            job = self._cache["jobs"].get(((run.get("spec") or {}).get("jobRef") or {}).get("name", ""))
            snap = (job or {}).get("spec") or {}
        return list(snap.get("ops") or [])

    def _summary(self, run: dict[str, Any], now: float) -> dict[str, Any]:
        meta, spec, st = run["metadata"], run.get("spec") or {}, run.get("status") or {}
        labels = meta.get("labels") or {}
        execution = spec.get("execution") or {}
        steps = st.get("steps") or {}
        started, finished = iso_to_epoch(st.get("startedAt")), iso_to_epoch(st.get("finishedAt"))
        phase = st.get("phase") or PENDING
        total = len(steps) or len(self._ops(run))
        subset = [s["name"] for s in execution.get("steps") or []] if execution else None
        return {
            "name": meta["name"],
            "job": (spec.get("jobRef") or {}).get("name"),
            "phase": phase,
            "progress": st.get("progress")
            or f"{sum(1 for s in steps.values() if s.get('phase') in TERMINAL_STEPS)}/{total}",
            "created": iso_to_epoch(meta.get("creationTimestamp")),
            "started": started,
            "finished": finished if phase in FINISHED else None,
            "duration": duration(started, finished if phase in FINISHED else None, now),
            "parent": labels.get(LABEL_PARENT) or execution.get("parentRun"),
            "root": labels.get(LABEL_ROOT) or execution.get("rootRun") or meta["name"],
            "mode": _UI_MODE.get((meta.get("annotations") or {}).get(ANNOTATION_MODE, "")),
            "stepSubset": subset,
            "reexecution": labels.get(LABEL_RX),
            "message": st.get("message"),
        }

    def list_runs(self) -> list[dict[str, Any]]:
        now = time.time()
        runs = [self._summary(r, now) for r in self._objects("runs").values()]
        return sorted(runs, key=lambda r: r.get("created") or 0, reverse=True)

    def get_run(self, name: str) -> dict[str, Any]:
        run = self._run_obj(name)
        out = self._summary(run, time.time())
        st = run.get("status") or {}
        ops = self._ops(run)
        status_steps = st.get("steps") or {}
        graph = upstream_of_ops(ops, status_steps)
        order = list(graph) + [s for s in status_steps if s not in graph]
        steps = []
        for s in order:
            ss = status_steps.get(s) or {}
            attempt = int(ss.get("attempt") or 0)
            attempts = sorted({int(a) for a in (ss.get("logs") or {}) if str(a).isdigit()} | set(range(1, attempt + 1)))
            steps.append(
                {
                    "name": s,
                    "phase": ss.get("phase") or PENDING,
                    "attempt": attempt,
                    "attempts": attempts,
                    "started": iso_to_epoch(ss.get("startedAt")),
                    "finished": iso_to_epoch(ss.get("finishedAt")),
                    "reason": ss.get("reason"),
                    "sourceRun": ss.get("sourceRun"),
                    "message": ss.get("message"),
                    "exitCode": ss.get("exitCode"),
                    "podName": ss.get("podName"),
                    "nextAttemptAt": ss.get("nextAttemptAt"),
                    "outputs": [
                        {
                            "name": o,
                            **located(ref, st.get("storage")),
                            **({"sourceRun": ss["sourceRun"]} if ss.get("sourceRun") else {}),
                        }
                        for o, ref in (ss.get("outputs") or {}).items()
                    ],
                }
            )
        out["steps"] = steps
        out["graph"] = {s: graph.get(s, []) for s in order}
        out["executedSteps"] = out["stepSubset"] or list(graph)
        out["canFromFailure"] = out["phase"] in RESUMABLE
        out["plan"] = self._child_plan(run)
        return out

    def _child_plan(self, run: dict[str, Any]) -> dict[str, Any] | None:
        name = run["metadata"]["name"]
        rx_name = (run["metadata"].get("labels") or {}).get(LABEL_RX)
        rxs = self._cache["reexecutions"]
        rx = rxs.get(rx_name or "") or next(
            (r for r in rxs.values() if (r.get("status") or {}).get("childRun") == name), None
        )
        plan = ((rx or {}).get("status") or {}).get("plan")
        if plan:
            return {**plan, "reexecution": rx["metadata"]["name"] if rx else None}
        execution = (run.get("spec") or {}).get("execution")
        if not execution:
            return None
        return {
            "steps": execution.get("steps") or [],
            "reused": [
                {
                    "step": s,
                    "output": o,
                    "sourceRun": r.get("sourceRun"),
                    "key": ref.get("key"),
                    "etag": ref.get("etag"),
                }
                for s, r in (execution.get("reused") or {}).items()
                for o, ref in (r.get("outputs") or {}).items()
            ],
            "skipped": execution.get("skipped") or {},
            "reexecution": rx_name,
        }

    def lineage(self, name: str) -> dict[str, Any]:
        run = self._run_obj(name)
        root = (run["metadata"].get("labels") or {}).get(LABEL_ROOT) or name
        now = time.time()
        members = [
            self._summary(r, now)
            for r in self._objects("runs").values()
            if r["metadata"]["name"] == root or (r["metadata"].get("labels") or {}).get(LABEL_ROOT) == root
        ]
        return {"root": root, "tree": lineage_tree(members, root)}

    def step_log(self, name: str, step: str, attempt: int | None) -> dict[str, Any]:
        run = self._run_obj(name)
        st = run.get("status") or {}
        ss = (st.get("steps") or {}).get(step)
        if ss is None:
            raise UIError(404, f"Run {name} has no step {step!r} (yet)")
        current = int(ss.get("attempt") or 1)
        want = attempt or current
        pod = ss.get("podName")
        if pod and want == current and ss.get("phase") in POD_LOG_STEPS:
            try:
                # Unparsed: the client's own decoding turns the bytes into their repr ("b'...\\n...'").
                resp = self.core.read_namespaced_pod_log(
                    pod, self.namespace, tail_lines=LOG_TAIL, _preload_content=False
                )
                raw = getattr(resp, "data", resp)
                text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            except Exception as exc:
                status, message = api_message(exc)
                if status == 403:
                    raise UIError(403, message) from exc
                if status not in (404, 400):
                    raise UIError(status, message) from exc
            else:
                secrets, note = self._secrets_of(run)
                return {
                    "source": f"pod {pod}",
                    "attempt": want,
                    "text": mask(text, secrets),
                    **({"note": note} if note else {}),
                }
        key = (ss.get("logs") or {}).get(str(want))
        if not key:
            why = ss.get("logError") or "no log saved to storage for this attempt yet"
            return {"source": "none", "attempt": want, "text": "", "message": why}
        if key.startswith("unavailable:"):
            return {"source": "none", "attempt": want, "text": "", "message": key}
        storage = (st.get("jobSnapshot") or {}).get("storage") or {}
        creds = self._creds(run)
        try:
            where = locate(
                creds,
                bucket=storage.get("bucket"),
                prefix=storage.get("prefix", DEFAULT_PREFIX),
                endpoint=storage.get("endpoint"),
                secret_name=(storage.get("secretRef") or {}).get("name"),
            )
            text = self._storage_read(where.endpoint, where.bucket, where.prefix, creds, key).decode(errors="replace")
        except Exception as exc:
            raise UIError(502, _mask(f"cannot read log {key} from storage: {exc}", creds)) from exc
        return {"source": f"storage {key}", "attempt": want, "text": _mask(text, creds)}

    def _creds(self, run: dict[str, Any]) -> dict[str, str]:
        """The storage Secret of a Run (status.jobSnapshot.storage.secretRef), decoded; server-side only."""
        name = run["metadata"]["name"]
        storage = ((run.get("status") or {}).get("jobSnapshot") or {}).get("storage") or {}
        secret_name = (storage.get("secretRef") or {}).get("name")
        if not secret_name:
            raise UIError(422, f"Run {name} names no storage Secret (status.jobSnapshot.storage.secretRef)")
        try:
            secret = self.core.read_namespaced_secret(secret_name, self.namespace)
        except Exception as exc:
            status, message = api_message(exc)
            raise UIError(status, f"cannot read the storage Secret {secret_name}: {message}") from exc
        data = getattr(secret, "data", None) or (secret.get("data") if isinstance(secret, dict) else None) or {}
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}

    def _secrets_of(self, run: dict[str, Any]) -> tuple[list[str], str | None]:
        """The values to mask in a pod's log (the credentials of the Run's storage Secret). No Secret value
        is ever shown: when the Secret cannot be read, the log is not shown either (403, saying why and
        what to do), though the identity may read it with kubectl."""
        try:
            return secret_values(self._creds(run)), None
        except UIError as exc:
            if exc.status == 422:  # no storage Secret: nothing to mask
                return [], None
            raise UIError(
                403,
                f"this log is not shown: {exc.message}, so credentials in it could not be masked; grant this "
                "identity `get` on that Secret, or read the log with kubectl logs",
            ) from exc

    def follow_log(self, name: str, step: str, attempt: int | None) -> PodLogFollow:
        """Follow the log of the running attempt of `step` (the pod log with follow=True, as the caller):
        its last LOG_TAIL lines, then each line as it is written, until the container ends."""
        run = self._run_obj(name)
        ss = ((run.get("status") or {}).get("steps") or {}).get(step)
        if ss is None:
            raise UIError(404, f"Run {name} has no step {step!r} (yet)")
        current, phase = int(ss.get("attempt") or 1), ss.get("phase") or PENDING
        want, pod = attempt or current, ss.get("podName")
        if want != current or phase not in FOLLOWABLE or not pod:
            why = f"the step is {phase}, attempt {current}"
            raise UIError(409, f"attempt {want} of step {step} is not running ({why}): read its saved log")
        secrets, note = self._secrets_of(run)
        try:
            resp = self.core.read_namespaced_pod_log(
                pod,
                self.namespace,
                follow=True,
                tail_lines=LOG_TAIL,
                _preload_content=False,
                _request_timeout=(10, None),  # connect timeout only: a follow is idle while the step is
            )
        except Exception as exc:
            raise UIError(*api_message(exc)) from exc
        return PodLogFollow(resp, f"pod {pod}", secrets, note)

    # ----- re-execution ---------------------------------------------------------------------------
    def manifest(self, name: str, req: ReexecRequest, dry_run: bool = False) -> dict[str, Any]:
        run = self._run_obj(name)
        detail_steps = list(upstream_of_ops(self._ops(run))) or list((run.get("status") or {}).get("steps") or {})
        unknown = req.unknown_steps(detail_steps)
        if unknown:
            raise UIError(400, f"overrides name unknown step(s): {', '.join(unknown)}")
        phase = (run.get("status") or {}).get("phase")
        if req.mode == RxMode.FROM_FAILURE and phase not in RESUMABLE:
            raise UIError(400, f"From failure is only for failed or canceled runs; Run {name} is {phase or PENDING}")
        mode, selection = req.mode, list(req.selection)
        if mode == SAME_STEPS:
            execution = (run.get("spec") or {}).get("execution") or {}
            selection = [s["name"] for s in execution.get("steps") or []] or detail_steps
            mode = RxMode.SELECTED.value
        spec: dict[str, Any] = {"parentRun": name, "mode": mode}
        if mode in SELECTING:
            spec["stepSelection"] = selection
        overrides: dict[str, Any] = {}
        for step, env in req.env.items():
            if env:
                overrides.setdefault(step, {})["env"] = [{"name": k, "value": v} for k, v in env.items()]
        for step, image in req.image.items():
            overrides.setdefault(step, {})["image"] = image
        if overrides:
            spec["overrides"] = overrides
        if req.config is not None:
            spec["config"] = dict(req.config)
        if dry_run:
            spec["dryRun"] = True
        base = name[:40].rstrip("-.")
        rx_name = f"{base}-{'preview' if dry_run else 'rx'}-{uuid.uuid4().hex[:5]}"
        return {
            "apiVersion": API_VERSION,
            "kind": REEXECUTION.kind,
            "metadata": {
                "name": rx_name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/managed-by": "cairn-ui"},
            },
            "spec": spec,
        }

    def _create(self, doc: dict[str, Any]) -> dict[str, Any]:
        try:
            created: dict[str, Any] = self.custom.create_namespaced_custom_object(
                G, V, self.namespace, "reexecutions", doc
            )
        except Exception as exc:
            status, message = api_message(exc)
            raise UIError(status, message) from exc
        self._apply("reexecutions", "ADDED", created)
        return created

    def _await_rx(self, name: str, phases: tuple[str, ...], timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                rx = self._cache["reexecutions"].get(name)
                if rx is not None and (rx.get("status") or {}).get("phase") in phases:
                    return rx
                left = deadline - time.monotonic()
                if left <= 0:
                    return rx
                self._cond.wait(left)

    def preview(self, name: str, req: ReexecRequest) -> dict[str, Any]:
        doc = self._create(self.manifest(name, req, dry_run=True))
        rx_name = doc["metadata"]["name"]
        rx = self._await_rx(rx_name, PLANNED, timeout=30)
        st = (rx or {}).get("status") or {}
        result = {
            "reexecution": rx_name,
            "phase": st.get("phase") or PENDING,
            "message": st.get("message") or ("the operator did not plan it within 30 s" if not st else ""),
            "plan": st.get("plan"),
        }
        try:  # a preview is not a record: remove it (best effort: the caller may not be allowed to)
            self.custom.delete_namespaced_custom_object(G, V, self.namespace, "reexecutions", rx_name)
        except Exception as exc:
            result["cleanup"] = f"the dry-run Reexecution {rx_name} stays: {api_message(exc)[1]}"
        return result

    def reexecute(self, name: str, req: ReexecRequest) -> dict[str, Any]:
        doc = self._create(self.manifest(name, req))
        rx_name = doc["metadata"]["name"]
        rx = self._await_rx(rx_name, STARTED, timeout=5)
        st = (rx or {}).get("status") or {}
        return {
            "reexecution": rx_name,
            "childRun": st.get("childRun"),
            "phase": st.get("phase"),
            "message": st.get("message"),
        }

    def get_reexecution(self, name: str) -> dict[str, Any]:
        rx = self._objects("reexecutions").get(name)
        if rx is None:
            raise UIError(404, f"Reexecution {name} not found in namespace {self.namespace}")
        st = rx.get("status") or {}
        return {
            "name": name,
            "parentRun": (rx.get("spec") or {}).get("parentRun"),
            "phase": st.get("phase") or PENDING,
            "message": st.get("message"),
            "childRun": st.get("childRun"),
            "plan": st.get("plan"),
        }


#: Keys of a storage Secret that only say where storage is (they also appear in output URIs).
PUBLIC_KEYS = frozenset({"AWS_ENDPOINT_URL", "CAIRN_S3_BUCKET", "AWS_REGION"})


def secret_values(creds: dict[str, str]) -> list[str]:
    """The credentials of a storage Secret (any key but PUBLIC_KEYS, at least 4 characters), longest first."""
    return sorted((v for k, v in creds.items() if k not in PUBLIC_KEYS and len(v) >= 4), key=len, reverse=True)


def _mask(text: str, creds: dict[str, str]) -> str:
    """`text` with every credential of the Secret (any key but PUBLIC_KEYS) replaced by ***."""
    return mask(text, secret_values(creds))


class PodLogFollow:
    """A followed pod log: the API server's streamed (chunked) answer, read as bytes arrive."""

    def __init__(self, resp: Any, source: str, secrets: Sequence[str], note: str | None = None) -> None:
        self.resp = resp
        self.source = source
        self.secrets: Sequence[str] = list(secrets)
        self.note: str | None = note
        self._closed = threading.Event()

    def chunks(self) -> Iterator[bytes]:
        read1 = getattr(self.resp, "read1", None)
        try:
            if read1 is not None:  # returns as soon as some bytes are there (chunked or not)
                while not self._closed.is_set():
                    data = read1(65536)
                    if not data:
                        return
                    yield data
            else:
                for data in self.resp.stream(65536):
                    if self._closed.is_set():
                        return
                    yield data
        except Exception as exc:
            if self._closed.is_set():  # closed under our feet: the end, not an error
                return
            status, message = api_message(exc)
            raise UIError(status, f"the log of {self.source} broke off: {message or exc}") from exc

    def close(self) -> None:
        """Close the connection to the API server; unblocks a read in another thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        for method in ("shutdown", "close", "release_conn"):  # shutdown: wakes a blocked recv
            fn = getattr(self.resp, method, None)
            if fn is not None:
                try:
                    fn()
                except Exception:  # best effort: the connection may be gone already
                    continue


def located(ref: Mapping[str, Any], storage: Mapping[str, Any] | None) -> dict[str, Any]:
    """An output's location as the page shows it; a large Run says its bucket and prefix once
    (`status.storage`) instead of per output: its uri is made from them."""
    out = {k: v for k, v in ref.items() if k in ("key", "size", "etag", "sha256", "uri", "bucket")}
    if "uri" not in out and storage and storage.get("bucket") and ref.get("key"):
        out["bucket"] = storage["bucket"]
        out["uri"] = f"s3://{storage['bucket']}/{object_key(str(storage.get('prefix') or ''), str(ref['key']))}"
    return out
