"""The Helm chart charts/cairn, linted and rendered by the real helm (the pinned release `cairn dev build` makes).

No cluster is needed here; the `helm` fixture builds helm when `cairn dev build` has not (a few
minutes, once), so these tests never skip. test_chart_rbac.py runs what the chart renders on the local
control plane.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from cairn_dev.builds.helm import HelmBuilder, find_helm
from cairn_dev.builds.k8s import BuildError
from cairn_dev.versions import HELM_VERSION

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "cairn"
RELEASE, NAMESPACE = "cairn", "cairn-system"
FULLNAME = f"{RELEASE}-operator"
LIVENESS = "--liveness=http://0.0.0.0:8080/healthz"
TWO = ["--set-json", 'watchNamespaces=["team-a","team-b"]']
# What an operator's Role or ClusterRole grants besides kopf's own needs (the operator's API calls).
OPERATOR_RESOURCES = {
    "jobs",
    "runs",
    "reexecutions",
    "runs/status",
    "reexecutions/status",
    "pods",
    "pods/log",
    "secrets",
    "serviceaccounts",
    "events",
}


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The pinned helm, with its config, cache and data in a temporary directory (no user plugins/repos)."""
    try:
        path = find_helm()
    except BuildError:
        path = HelmBuilder().build().helm  # `make build` makes it; only a bare checkout gets here
    home = tmp_path_factory.mktemp("helm-home")
    with pytest.MonkeyPatch.context() as mp:
        for key in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"):
            mp.setenv(key, str(home / key.lower()))
        yield path


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, check=False)


def template(helm: Path, *args: str, release: str = RELEASE, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """`helm template` of the chart (without its CRDs): the rendered objects."""
    out = run_helm(helm, "template", release, str(CHART), "--namespace", namespace, *args)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in of_kind(docs, kind)
        if (name is None or d["metadata"]["name"] == name)
        and (namespace is None or d["metadata"].get("namespace") == namespace)
    ]
    assert len(found) == 1, f"{len(found)} {kind} {namespace}/{name} in {[(d['kind'], d['metadata']) for d in docs]}"
    return found[0]


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    container: dict[str, Any] = containers[0]
    return container


def resources_of(rules: list[dict[str, Any]]) -> set[str]:
    return {r for rule in rules for r in rule["resources"]}


def env_of(container: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


# PodSecurity "restricted" (and "baseline", which it includes), as the Pod Security Standards define
# them for the fields a Deployment's pod template can set.
ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected"}
ALLOWED_VOLUMES |= {"secret"}


def restricted_violations(pod: Mapping[str, Any]) -> list[str]:
    """What in a pod spec PodSecurity `restricted` refuses (empty: it passes)."""
    bad: list[str] = []
    psc = pod.get("securityContext") or {}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            bad.append(host)
    for vol in pod.get("volumes") or []:
        kinds = set(vol) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            bad.append(f"volume {vol['name']}: {sorted(kinds)}")
    if psc.get("runAsUser") == 0:
        bad.append("pod runAsUser 0")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for c in [*(pod.get("initContainers") or []), *pod["containers"]]:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            bad.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: adds capabilities {caps['add']}")
        if sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
            bad.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            bad.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost, not {seccomp}")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            bad.append(f"{name}: hostPort")
        if sc.get("procMount") not in (None, "Default"):
            bad.append(f"{name}: procMount")
    return bad


# -- lint ---------------------------------------------------------------------------------------------


def test_the_built_helm_is_the_pinned_release(helm: Path) -> None:
    out = run_helm(helm, "version", "--template", "{{.Version}}")
    assert out.returncode == 0 and out.stdout.strip() == HELM_VERSION, out


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([], id="cluster-wide"),
        pytest.param(TWO, id="namespaced"),
        pytest.param(
            [
                "--set-json",
                'watchNamespaces=["team-a"]',
                "--set",
                "logLevel=debug,maxPods=3,image.tag=dev,podLabels.team=a,podAnnotations.note=x,nodeSelector.disk=ssd",
                "--set-json",
                'env=[{"name":"CAIRN_WORKERS","value":"4"}]',
                "--set-json",
                'imagePullSecrets=[{"name":"regcred"}]',
                "--set-json",
                'tolerations=[{"key":"k","operator":"Exists"}]',
                "--set-json",
                'affinity={"nodeAffinity":{}}',
            ],
            id="every-value-set",
        ),
    ],
)
def test_helm_lint_strict_passes(helm: Path, values: list[str]) -> None:
    out = run_helm(helm, "lint", "--strict", str(CHART), "--namespace", NAMESPACE, *values)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout
    assert "[WARNING]" not in out.stdout and "[ERROR]" not in out.stdout


def test_helm_lint_strict_fails_on_a_broken_template(helm: Path, tmp_path: Path) -> None:
    """The lint test above can fail: the same chart with one bad template does not pass."""
    broken = tmp_path / "cairn"
    shutil.copytree(CHART, broken)
    (broken / "templates" / "broken.yaml").write_text("kind: ConfigMap\nmetadata: {{ .Values.nope.deeper }}\n")
    out = run_helm(helm, "lint", "--strict", str(broken))
    assert out.returncode != 0 and "[ERROR]" in out.stdout, out.stdout


# -- install modes ------------------------------------------------------------------------------------


def test_cluster_wide_renders_a_cluster_role_and_binding_and_no_role(helm: Path) -> None:
    docs = template(helm)
    assert sorted(d["kind"] for d in docs) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "ServiceAccount",
        "ServiceAccount",
    ]
    role = one(docs, "ClusterRole", FULLNAME)
    assert resources_of(role["rules"]) == OPERATOR_RESOURCES | {"customresourcedefinitions"}
    assert "namespaces" not in resources_of(role["rules"])  # kopf reads namespaces only when it watches some
    binding = one(docs, "ClusterRoleBinding", FULLNAME)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULLNAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    assert of_kind(docs, "Role") == [] and of_kind(docs, "RoleBinding") == []
    assert operator_container(docs)["args"] == [LIVENESS]
    one(docs, "ServiceAccount", "cairn-step", NAMESPACE)
    one(docs, "ServiceAccount", FULLNAME, NAMESPACE)


def test_namespaced_renders_a_role_binding_and_step_account_in_each_namespace(helm: Path) -> None:
    docs = template(helm, *TWO)
    wide = one(template(helm), "ClusterRole")["rules"]
    for ns in ("team-a", "team-b"):
        role = one(docs, "Role", FULLNAME, ns)
        assert resources_of(role["rules"]) == OPERATOR_RESOURCES
        assert role["rules"] == [r for r in wide if r["resources"] != ["customresourcedefinitions"]]
        binding = one(docs, "RoleBinding", FULLNAME, ns)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": FULLNAME}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
        one(docs, "ServiceAccount", "cairn-step", ns)
    assert len(of_kind(docs, "Role")) == len(of_kind(docs, "RoleBinding")) == 2
    assert [d["metadata"]["namespace"] for d in of_kind(docs, "ServiceAccount")] == [NAMESPACE, "team-a", "team-b"]
    # Cluster-wide only what kopf needs to find its resources and the watched namespaces: reading.
    cluster = one(docs, "ClusterRole", FULLNAME)
    assert cluster["rules"] == [
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]
    assert one(docs, "ClusterRoleBinding", FULLNAME)["subjects"][0]["name"] == FULLNAME
    assert operator_container(docs)["args"] == [LIVENESS, "--namespace=team-a", "--namespace=team-b"]


def test_operator_rules_are_the_least_it_needs(helm: Path) -> None:
    rules = {
        r: sorted(rule["verbs"]) for rule in one(template(helm), "ClusterRole")["rules"] for r in rule["resources"]
    }
    assert rules["secrets"] == ["get"]
    assert rules["serviceaccounts"] == ["create", "get"]
    assert rules["pods"] == ["create", "delete", "get", "list", "watch"]
    assert rules["pods/log"] == ["get"]
    assert rules["customresourcedefinitions"] == ["list", "watch"]
    for verbs in rules.values():
        assert "*" not in verbs and "escalate" not in verbs and "bind" not in verbs and "impersonate" not in verbs


@pytest.mark.parametrize("values", [[], TWO], ids=["cluster-wide", "namespaced"])
def test_the_step_account_mounts_no_token_and_is_bound_to_nothing(helm: Path, values: list[str]) -> None:
    docs = template(helm, *values, "--set", "stepServiceAccount.name=runner")
    steps = [d for d in of_kind(docs, "ServiceAccount") if d["metadata"]["name"] == "runner"]
    assert steps and all(sa["automountServiceAccountToken"] is False for sa in steps)
    subjects = [s for d in [*of_kind(docs, "RoleBinding"), *of_kind(docs, "ClusterRoleBinding")] for s in d["subjects"]]
    assert subjects and all(s["name"] == FULLNAME for s in subjects)
    assert env_of(operator_container(docs))["CAIRN_STEP_SERVICE_ACCOUNT"] == "runner"
    # The operator's own token: mounted into its pod only (its ServiceAccount does not auto-mount).
    assert one(docs, "ServiceAccount", FULLNAME)["automountServiceAccountToken"] is False
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["automountServiceAccountToken"] is True


# -- the operator's pod -------------------------------------------------------------------------------


def test_the_operator_pod_passes_podsecurity_restricted(helm: Path) -> None:
    pod = one(template(helm), "Deployment")["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    sc = pod["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    # The one writable place: /tmp, an emptyDir.
    assert pod["containers"][0]["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"] and "emptyDir" in pod["volumes"][0]


def test_the_restricted_check_finds_violations() -> None:
    """restricted_violations can fail: each weakening of a passing pod is reported."""
    good = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {"name": "c", "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}
        ],
    }
    assert restricted_violations(good) == []
    weakened = json.loads(json.dumps(good))
    weakened["containers"][0]["securityContext"] = {"capabilities": {"add": ["SYS_ADMIN"]}}
    weakened["securityContext"] = {"runAsUser": 0}
    weakened["hostNetwork"] = True
    weakened["volumes"] = [{"name": "h", "hostPath": {"path": "/"}}]
    bad = " ".join(restricted_violations(weakened))
    for what in ("hostNetwork", "hostPath", "runAsUser 0", "allowPrivilegeEscalation", "drop ALL", "SYS_ADMIN"):
        assert what in bad, bad
    assert "seccompProfile" in bad and "runAsNonRoot" in bad


def test_the_operator_pod_probes_kopfs_liveness_endpoint_and_takes_its_values(helm: Path) -> None:
    docs = template(
        helm,
        "--set",
        "logLevel=debug,maxPods=7,nodeSelector.disk=ssd,podAnnotations.note=x,podLabels.team=a",
        "--set-json",
        'env=[{"name":"CAIRN_WORKERS","value":"4"}]',
        "--set-json",
        'imagePullSecrets=[{"name":"regcred"}]',
        "--set-json",
        'tolerations=[{"key":"k","operator":"Exists","effect":"NoSchedule"}]',
        "--set-json",
        'affinity={"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[]}}}',
        "--set-json",
        'resources={"requests":{"cpu":"50m","memory":"64Mi"},"limits":{"memory":"256Mi"}}',
    )
    template_ = one(docs, "Deployment")["spec"]["template"]
    pod, c = template_["spec"], template_["spec"]["containers"][0]
    port = int(re.fullmatch(r"--liveness=http://0\.0\.0\.0:(\d+)/healthz", c["args"][0]).group(1))  # type: ignore[union-attr]
    assert c["ports"] == [{"name": "health", "containerPort": port, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["args"][-1] == "--verbose"
    env = env_of(c)
    assert env["CAIRN_MAX_PODS"] == "7" and env["CAIRN_WORKERS"] == "4"
    assert c["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    assert pod["nodeSelector"] == {"disk": "ssd"}
    assert pod["tolerations"] == [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]
    assert "nodeAffinity" in pod["affinity"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert template_["metadata"]["annotations"] == {"note": "x"}
    assert template_["metadata"]["labels"]["team"] == "a"
    default = operator_container(template(helm))
    assert "--verbose" not in default["args"]
    assert default["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}


def test_the_image_defaults_to_what_cairn_dev_image_build_makes(helm: Path) -> None:
    c = operator_container(template(helm))
    assert c["image"] == "localhost/cairn-operator:0.1.0"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert operator_container(template(helm, "--set", "image.tag=dev"))["image"] == "localhost/cairn-operator:dev"
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == ("0.1.0", "0.1.0")


# -- values and their schema --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        (["--set", "maxPods=lots"], "at '/maxPods': got string, want integer"),
        (["--set", "maxPods=0"], "at '/maxPods': minimum: got 0, want 1"),
        (["--set", "nosuchKey=1"], "at '': additional properties 'nosuchKey' not allowed"),
        (["--set", "image.registry=x"], "at '/image': additional properties 'registry' not allowed"),
        (["--set", "image.pullPolicy=Sometimes"], "at '/image/pullPolicy': value must be one of 'Always', "),
        (["--set", "watchNamespaces=team-a"], "at '/watchNamespaces': got string, want array"),
        (["--set-json", 'watchNamespaces=["Team_A"]'], "at '/watchNamespaces/0': 'Team_A' does not match pattern"),
        (["--set-json", 'watchNamespaces=["a","a"]'], "at '/watchNamespaces': items at 0 and 1 are equal"),
        (["--set", "logLevel=trace"], "at '/logLevel': value must be one of 'info', 'debug'"),
        (["--set", "stepServiceAccount.name=Not A Name"], "at '/stepServiceAccount/name': 'Not A Name' does not match"),
        (["--set", "podLabels.team=null"], "at '/podLabels/team': got null, want string"),
    ],
)
def test_the_schema_refuses_wrong_values_with_helms_error(helm: Path, values: list[str], complaint: str) -> None:
    out = run_helm(helm, "template", RELEASE, str(CHART), *values)
    assert out.returncode != 0, out.stdout
    assert "Error: values don't meet the specifications of the schema(s)" in out.stderr, out.stderr
    assert complaint in out.stderr, out.stderr


def test_every_value_is_commented_and_in_the_schema() -> None:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    assert set(values) == set(schema["properties"])
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*[A-Za-z][A-Za-z0-9]*:", line) and not re.match(r"^\s+(requests|limits|cpu|memory):", line):
            assert lines[i - 1].lstrip().startswith("#"), f"values.yaml line {i + 1} has no comment: {line!r}"
    for key in ("image", "stepServiceAccount"):
        assert set(values[key]) == set(schema["properties"][key]["properties"]), key


def test_notes_say_the_mode_and_how_to_run_the_samples(helm: Path, tmp_path: Path) -> None:
    """NOTES.txt rendered by helm without a cluster: a copy of the chart renders it into a ConfigMap
    with `tpl` (`helm install --dry-run` would need a reachable cluster)."""
    chart = tmp_path / "cairn"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "notes.tpl")
    (chart / "templates" / "notes-probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n"
        '  notes: {{ tpl (.Files.Get "notes.tpl") . | quote }}\n'
    )

    def notes(*values: str) -> str:
        out = run_helm(helm, "template", RELEASE, str(chart), "--namespace", NAMESPACE, *values)
        assert out.returncode == 0, out.stderr
        text: str = one(list(yaml.safe_load_all(out.stdout)), "ConfigMap")["data"]["notes"]
        return text

    wide = notes()
    assert "mode: CLUSTER-WIDE" in wide and "kubectl -n default apply -f crds/samples/" in wide
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{FULLNAME}" in wide
    assert "image localhost/cairn-operator:0.1.0" in wide
    assert "cairn k8s reexecute unreliable-fails --from-failure -n default" in wide
    # the Secret from literals (there is no s3.env file to read), and the three sample Runs named
    assert "s3.env" not in wide and '--from-literal=CAIRN_S3_BUCKET="$CAIRN_S3_BUCKET"' in wide
    assert all(run in wide for run in ("unreliable-succeeds", "unreliable-fails", "fanout-fails"))
    namespaced = notes(*TWO)
    assert "mode: NAMESPACED, watching team-a, team-b" in namespaced
    assert "kubectl -n team-a apply -f crds/samples/" in namespaced
    assert "{{" not in wide + namespaced
