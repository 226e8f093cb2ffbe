"""HTTPS deliveries connect to the checked address and still verify the URL's host name: a TLS
receiver on 127.0.0.1 with a certificate for `hooks.example.test`, issued by a CA this test makes
and the process trusts (SSL_CERT_FILE, read by OpenSSL's default verify paths)."""

from __future__ import annotations

import datetime
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.test import TestCase
from registry_client import webhooks as client_webhooks

from registry import services
from registry.models import DeliveryStatus

from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db
NAME = "hooks.example.test"


def _certificate(subject: str, issuer_name, issuer_key, *, ca: bool, names=()):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return key, builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture
def tls_receiver(tmp_path, monkeypatch, settings):
    settings.REGISTRY_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    ca_key, ca_cert = _certificate("Test CA", None, None, ca=True)
    key, cert = _certificate(NAME, ca_cert.subject, ca_key, ca=False, names=[x509.DNSName(NAME)])
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    server = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):  # the name stands for the receiver's address
        if host == NAME:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server.port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    yield server
    server.stop()


def _send(context, url):
    hook, secret = services.webhook_create(actor=None, context=context, url=url, events=["model.deleted"])
    with TestCase.captureOnCommitCallbacks(execute=True):
        delivery = services.webhook_test(actor=None, webhook=hook)
    delivery.refresh_from_db()
    return delivery, secret


def test_https_is_verified_against_the_urls_host(context, tls_receiver):
    delivery, secret = _send(context, f"https://{NAME}:{tls_receiver.port}/in")
    assert delivery.status == DeliveryStatus.DELIVERED, delivery.last_error
    [request] = tls_receiver.requests
    assert request.headers["Host"] == f"{NAME}:{tls_receiver.port}"
    assert client_webhooks.verify(request.body, request.headers["X-Registry-Signature"], secret)


def test_a_certificate_for_another_name_is_refused(context, tls_receiver):
    """The same receiver by its address: the certificate does not name 127.0.0.1, so nothing is sent."""
    delivery, _ = _send(context, f"https://127.0.0.1:{tls_receiver.port}/in")
    assert delivery.status == DeliveryStatus.PENDING and "TLS failed" in delivery.last_error
    assert tls_receiver.requests == []  # the address was allowed: TLS refused it
