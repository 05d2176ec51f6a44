"""The one place that pins the Kubernetes and Helm releases `cairn dev` builds and runs."""

from __future__ import annotations

#: kube-apiserver, kube-controller-manager, kube-scheduler and kubectl are built from
#: the Go module k8s.io/kubernetes at this release.
K8S_VERSION = "v1.34.4"

#: helm is built from the Go module helm.sh/helm/v3 at this release (it renders and lints charts/cairn).
HELM_VERSION = "v3.22.0"


def staging_version(k8s_version: str) -> str:
    """The published version of the k8s.io/* staging modules that match a release: v1.34.4 -> v0.34.4."""
    parts = k8s_version.lstrip("v").split(".")
    if len(parts) != 3 or parts[0] != "1" or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a Kubernetes release version: {k8s_version!r} (expected v1.MINOR.PATCH)")
    return f"v0.{parts[1]}.{parts[2]}"
