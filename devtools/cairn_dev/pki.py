"""Certificates and keys for the local control plane: a CA, the API server's serving certificate,
client identities (admin, controller-manager, scheduler, node) and the service-account signing key.

Everything is generated with `cryptography` and written as PEM; private keys are mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class Identity:
    """A client certificate's subject: CN is the user name, O the groups."""

    file: str
    common_name: str
    organizations: tuple[str, ...] = ()


#: Client identities, with the names the bootstrap RBAC policy and the Node authorizer expect.
ADMIN = Identity("admin", "cairn-admin", ("system:masters",))
CONTROLLER_MANAGER = Identity("controller-manager", "system:kube-controller-manager")
SCHEDULER = Identity("scheduler", "system:kube-scheduler")
#: How the API server authenticates to the node's kubelet API (for `kubectl logs`).
APISERVER_KUBELET_CLIENT = Identity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",))


def node_identity(node_name: str) -> Identity:
    return Identity("node", f"system:node:{node_name}", ("system:nodes",))


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class PKI:
    """The files under DIR/pki; `create` makes them, the properties name them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.root / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.root / "apiserver.key"

    @property
    def kubelet_cert(self) -> Path:
        return self.root / "kubelet.crt"

    @property
    def kubelet_key(self) -> Path:
        return self.root / "kubelet.key"

    @property
    def sa_key(self) -> Path:
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.root / "sa.pub"

    def client_cert(self, ident: Identity) -> Path:
        return self.root / f"{ident.file}.crt"

    def client_key(self, ident: Identity) -> Path:
        return self.root / f"{ident.file}.key"

    def create(self, identities: list[Identity], kubelet_ips: tuple[str, ...] = ()) -> None:
        """A CA, the API server's and the kubelet's serving certificates, the client certificates of
        `identities` and the ServiceAccount signing key. `kubelet_ips`: the node's addresses besides
        127.0.0.1 (the API server dials the kubelet there and checks its certificate)."""
        self.root.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cairn-dev-ca")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + VALIDITY * 10)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(self.ca_key, ca_key)
        _write_cert(self.ca_cert, ca)

        def issue(
            subject: x509.Name, server: bool, sans: list[x509.GeneralName]
        ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
            key = ec.generate_private_key(ec.SECP256R1())
            usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(ca_name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(now + VALIDITY)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            )
            if sans:
                builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            return key, builder.sign(ca_key, hashes.SHA256())

        serving_sans: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
            x509.DNSName("kubernetes.default.svc.cluster.local"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
        ]
        key, cert = issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]), True, serving_sans)
        _write_key(self.serving_key, key)
        _write_cert(self.serving_cert, cert)

        key, cert = issue(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cairn-local-kubelet")]),
            True,
            [
                x509.DNSName("localhost"),
                *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", *kubelet_ips)),
            ],
        )
        _write_key(self.kubelet_key, key)
        _write_cert(self.kubelet_cert, cert)

        for ident in identities:
            attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in ident.organizations]
            attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, ident.common_name))
            key, cert = issue(x509.Name(attrs), False, [])
            _write_key(self.client_key(ident), key)
            _write_cert(self.client_cert(ident), cert)

        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(self.sa_key, sa)
        self.sa_pub.write_bytes(
            sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
