"""External files through the client: a manifest entry stored elsewhere is fetched by the
fetcher of its scheme (https with httpx from a real TLS server on loopback, s3 with boto3 from
the suite's moto S3 server, gs/data by a registered fetcher) and verified like the registry's
own files: a mismatch is a TamperError (regctl's exit 4), reported, never cached."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import ipaddress
import ssl
import threading
import uuid

import pytest

import registry_client
from registry_client import FetchError, Manifest, NoFetcher, TamperError
from tests.client.conftest import run_cli
from tests.conftest import S3_CREDENTIALS, s3_client

WEIGHTS = b"external weights " * 4096
SHA = hashlib.sha256(WEIGHTS).hexdigest()


@pytest.fixture(autouse=True)
def no_registered_fetchers():
    yield
    for scheme in registry_client.fetchers.SCHEMES:
        registry_client.register_fetcher(scheme, None)


@pytest.fixture
def draft(connect, model_file):
    """acme/churn v1 (a draft with a pkl): (registry, version)."""
    registry = connect("publisher")
    version = registry.context("acme").model("churn", create=True).create_version()
    version.upload("pkl", model_file)
    return registry, version


# --- a real HTTPS server on loopback, with its own CA ------------------------------------------

def _certificates(folder):
    """(CA bundle path, server cert path, key path): a CA and a leaf for 127.0.0.1, made here."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    return paths


@pytest.fixture
def https_files(tmp_path):
    """A TLS file server on 127.0.0.1: (base URL, CA bundle path, {path: bytes} it serves, requests seen)."""
    ca_path, cert_path, key_path = _certificates(tmp_path)
    files: dict[str, bytes] = {}
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", str(ca_path), files, seen
    server.shutdown()
    server.server_close()


def test_an_https_file_is_fetched_and_verified_without_the_registry_token(draft, connect, https_files, tmp_path):
    registry, version = draft
    base, ca_path, files, seen = https_files
    files["/models/weights.bin"] = WEIGHTS
    weights = tmp_path / "weights.bin"
    weights.write_bytes(WEIGHTS)
    version.add_external_file("weights", f"{base}/models/weights.bin", path=weights)  # checksums computed locally
    assert version.external_files[0]["sha256_checksum"] == SHA and version.external_files[0]["size"] == len(WEIGHTS)
    version.publish()
    manifest_path = tmp_path / "manifest.json"
    version.freeze(manifest_path)

    # Without trust in the server's CA, the built-in fetcher refuses the TLS connection.
    with pytest.raises(FetchError, match="ConnectError"):
        Manifest.load(manifest_path, connect("readonly"))

    registry_client.register_fetcher("https", registry_client.https_fetcher(verify=ca_path))
    manifest = Manifest.load(manifest_path, connect("readonly"))
    assert manifest.files["weights"].external
    assert manifest.get_model("weights").read_bytes() == WEIGHTS
    assert manifest.get_model("pkl").is_file()
    assert [request["authorization"] for request in seen] == [None]  # the registry's token never left for it

    # Cached by SHA-256: loading again fetches nothing.
    Manifest.load(manifest_path, connect("readonly"))
    assert len(seen) == 1


def test_a_changed_external_file_is_tamper_reported_and_never_kept(draft, connect, https_files, tmp_path):
    registry, version = draft
    base, ca_path, files, _ = https_files
    files["/w.bin"] = WEIGHTS[:-1] + b"!"  # same size, other bytes
    version.add_external_file("weights", f"{base}/w.bin", sha256=SHA, size=len(WEIGHTS))
    registry_client.register_fetcher("https", registry_client.https_fetcher(verify=ca_path))
    with pytest.raises(TamperError) as caught:
        Manifest.load(version.manifest(), connect("readonly"))  # the live manifest lists the declared checksums
    assert (caught.value.file, caught.value.reason, caught.value.expected) == ("weights", "checksum_mismatch", SHA)
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("w.bin"))
    events = list(connect("admin").context("acme").audit(action="format.tamper_reported"))
    assert len(events) == 1 and "external file weights" in events[0]["summary"]


def test_an_external_file_the_source_does_not_have_is_a_fetch_error(draft, connect, https_files):
    _, version = draft
    base, ca_path, _, _ = https_files
    version.add_external_file("weights", f"{base}/gone.bin", sha256=SHA)
    registry_client.register_fetcher("https", registry_client.https_fetcher(verify=ca_path))
    with pytest.raises(FetchError, match="answered 404"):
        Manifest.load(version.manifest(), connect("readonly"))


# --- gs:// and data://: a clear error until a fetcher is registered --------------------------------

def test_gs_needs_a_registered_fetcher(draft, connect, tmp_path):
    _, version = draft
    version.add_external_file("weights", "gs://team-bucket/churn/weights.bin", sha256=SHA)
    with pytest.raises(NoFetcher, match=r"No fetcher for scheme gs:// .*register_fetcher\('gs', fetch\)"):
        Manifest.load(version.manifest(), connect("readonly"))

    asked = []

    def fetch_gcs(uri, out):
        asked.append(uri)
        out.write(WEIGHTS[:1000])
        out.write(WEIGHTS[1000:])

    registry_client.register_fetcher("gs", fetch_gcs)
    manifest = Manifest.load(version.manifest(), connect("readonly"))
    assert manifest.get_model("weights").read_bytes() == WEIGHTS
    assert asked == ["gs://team-bucket/churn/weights.bin"]


def test_register_fetcher_refuses_an_unknown_scheme():
    with pytest.raises(ValueError, match="not ftp://"):
        registry_client.register_fetcher("ftp", lambda uri, out: None)


def test_an_unverifiable_external_entry_is_never_fetched(connect):
    data = {"required_files": [{"name": "weights", "source_uri": "gs://b/w.bin"}], "optional_files": []}
    registry_client.register_fetcher("gs", lambda uri, out: pytest.fail("fetched without a checksum"))
    with pytest.raises(ValueError, match="has no sha256_checksum"):
        Manifest.load(data, connect("readonly"))


# --- s3:// through boto3, against the suite's S3 server; regctl's tamper exit ------------------------

@pytest.fixture
def bucket_object(s3_endpoint, monkeypatch):
    """(bucket, key) holding WEIGHTS on the S3 server; boto3 pointed at it through the environment."""
    bucket, key = f"external-{uuid.uuid4().hex[:12]}", "churn/weights.bin"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key=key, Body=WEIGHTS)
    environment = {**S3_CREDENTIALS, "AWS_ENDPOINT_URL_S3": s3_endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    yield bucket, key, client, environment
    for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


def test_an_s3_file_is_fetched_with_boto3_and_a_changed_one_exits_4(draft, connect, bucket_object, tmp_path,
                                                                    server_url, tokens):
    _, version = draft
    bucket, key, s3, environment = bucket_object
    version.add_external_file("weights", f"s3://{bucket}/{key}", sha256=SHA, size=len(WEIGHTS))
    version.publish()
    manifest_path = tmp_path / "manifest.json"
    version.freeze(manifest_path)
    manifest = Manifest.load(manifest_path, connect("readonly"))
    assert manifest.get_model("weights").read_bytes() == WEIGHTS

    s3.put_object(Bucket=bucket, Key=key, Body=WEIGHTS[:-1] + b"?")  # the bucket's copy changed
    env = {"REGISTRY_URL": server_url, "REGISTRY_TOKEN": tokens["readonly"], "REGISTRY_CACHE_DIR": str(tmp_path / "c2"),
           **environment}
    result = run_cli("pull", "--manifest", str(manifest_path), "-o", str(tmp_path / "out"), env=env)
    assert result.returncode == 4, result.stderr
    assert "weights" in result.stderr and "SHA-256" in result.stderr
    assert not (tmp_path / "out" / "weights.bin").exists()
