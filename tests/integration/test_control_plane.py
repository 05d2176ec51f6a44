"""The real control plane of `cairn dev up`: API server, RBAC, CRDs, garbage collection, S3."""

from __future__ import annotations

import os
import ssl
import threading
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from cairn_dev import pki
from tests.helpers import eventually


def test_readyz_with_the_written_kubeconfig(dev_cluster: Any) -> None:
    kc = yaml.safe_load(dev_cluster.kubeconfig.read_text())
    server = kc["clusters"][0]["cluster"]["server"]
    ctx = ssl.create_default_context(cafile=str(dev_cluster.pki.ca_cert))
    ctx.load_cert_chain(str(dev_cluster.pki.client_cert(pki.ADMIN)), str(dev_cluster.pki.client_key(pki.ADMIN)))
    with urllib.request.urlopen(f"{server}/readyz", context=ctx, timeout=5) as resp:
        assert resp.read() == b"ok"
    version = client.VersionApi(dev_cluster.api()).get_code()
    assert version.git_version == "v1.34.4"


def test_rbac_refuses_a_service_account_without_a_role(kube: Any, core: Any, namespace: str) -> None:
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token = core.create_namespaced_service_account_token(
        "nobody", namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    ).status.token
    cfg = client.Configuration()
    cfg.host = kube.configuration.host
    cfg.ssl_ca_cert = kube.configuration.ssl_ca_cert
    cfg.api_key = {"authorization": f"Bearer {token}"}
    as_nobody = client.CoreV1Api(client.ApiClient(cfg))
    with pytest.raises(ApiException) as err:
        as_nobody.list_namespaced_pod(namespace)
    assert err.value.status == 403
    assert f"system:serviceaccount:{namespace}:nobody" in err.value.body
    # The same token is authenticated (not 401): RBAC, not authentication, refused it.
    review = client.AuthenticationV1Api(kube).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
    )
    assert review.status.authenticated is True


CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.cairn.dev"},
    "spec": {
        "group": "test.cairn.dev",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def test_a_crd_installs_and_its_objects_are_created_and_watched(kube: Any, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(kube)
    try:
        ext.create_custom_resource_definition(CRD)
    except ApiException as exc:
        if exc.status != 409:
            raise
    eventually(
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in ext.read_custom_resource_definition(CRD["metadata"]["name"]).status.conditions or []
        ),
        what="CRD Established",
    )
    co = client.CustomObjectsApi(kube)
    seen: list[str] = []
    started = threading.Event()

    def watcher() -> None:
        w = watch.Watch()
        started.set()
        for ev in w.stream(
            co.list_namespaced_custom_object, "test.cairn.dev", "v1", namespace, "widgets", timeout_seconds=20
        ):
            seen.append(f"{ev['type']} {ev['object']['metadata']['name']}")
            if len(seen) >= 2:
                w.stop()

    t = threading.Thread(target=watcher, daemon=True)
    t.start()
    started.wait()
    body = {
        "apiVersion": "test.cairn.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 2},
    }
    eventually(
        lambda: co.create_namespaced_custom_object("test.cairn.dev", "v1", namespace, "widgets", body),
        what="create widget",
    )
    co.patch_namespaced_custom_object("test.cairn.dev", "v1", namespace, "widgets", "w1", {"spec": {"size": 3}})
    t.join(25)
    assert seen[:2] == ["ADDED w1", "MODIFIED w1"]
    bad = {**body, "metadata": {"name": "w2"}, "spec": {"size": 0}}
    with pytest.raises(ApiException) as err:
        co.create_namespaced_custom_object("test.cairn.dev", "v1", namespace, "widgets", bad)
    assert err.value.status == 422 and "should be greater than or equal to 1" in err.value.body


def test_deleting_an_owner_garbage_collects_its_configmap(core: Any, namespace: str) -> None:
    owner = core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner")))
    ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owned", owner_references=[ref]))
    )
    core.delete_namespaced_config_map("owner", namespace)

    def gone() -> bool:
        try:
            core.read_namespaced_config_map("owned", namespace)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    eventually(gone, timeout=60, what="the owned ConfigMap to be garbage-collected")


def test_s3_roundtrip_of_20_mb_through_boto3(s3: Any) -> None:
    key = f"it/{uuid.uuid4().hex}/blob"
    data = os.urandom(20 * 1024 * 1024)
    s3.put_object(Bucket=s3.bucket, Key=key, Body=data)
    assert s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == data
    listed = s3.list_objects_v2(Bucket=s3.bucket, Prefix=key.rsplit("/", 1)[0])
    assert [(o["Key"], o["Size"]) for o in listed["Contents"]] == [(key, len(data))]
    s3.delete_object(Bucket=s3.bucket, Key=key)
    assert s3.list_objects_v2(Bucket=s3.bucket, Prefix=key).get("KeyCount") == 0


def test_s3_refuses_anonymous_access(s3: Any, dev_state: Any) -> None:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    s3.put_object(Bucket=s3.bucket, Key="private/x", Body=b"secret")
    anon = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{dev_state.ports['s3']}",
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}),
    )
    calls: list[Callable[[], Any]] = [
        lambda: anon.get_object(Bucket=s3.bucket, Key="private/x"),
        lambda: anon.put_object(Bucket=s3.bucket, Key="private/y", Body=b"x"),
        lambda: anon.list_objects_v2(Bucket=s3.bucket),
    ]
    for call in calls:
        with pytest.raises(Exception) as err:
            call()
        assert "AccessDenied" in str(err.value)


def test_the_s3_secret_holds_endpoint_bucket_and_credentials(core: Any, dev_cluster: Any, dev_state: Any) -> None:
    import base64

    secret = core.read_namespaced_secret("cairn-s3", "default")
    data = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
    assert data == {k: v for k, v in dev_cluster.env(dev_state).items() if k != "KUBECONFIG"}
