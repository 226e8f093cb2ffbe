import os
import shutil
import tempfile
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from registry import services

from tests.factories import UserFactory

ROLES = ["viewer", "editor", "publisher", "admin"]
TESTS = Path(__file__).resolve().parent
# Fixtures that start a server: pytest-django's live server (a thread serving real HTTP), and
# moto's S3 server (a process). A test using one is marked `subprocess`, so `make test-fast`
# leaves it out. A test that reaches them through request.getfixturevalue() is marked by hand.
SERVER_FIXTURES = {"live_server", "s3_endpoint"}


def pytest_configure(config):
    # Under CI the suite runs on PostgreSQL; falling back to SQLite would hide real failures.
    if os.environ.get("CI") == "true" and settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.exit("CI=true but DATABASE_URL does not point to PostgreSQL", returncode=1)


def pytest_report_header(config):
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.postgresql":
        where = f"PostgreSQL at {database.get('HOST') or 'localhost'}:{database.get('PORT') or 5432} (DATABASE_URL)"
    else:
        where = "SQLite (DATABASE_URL unset: the tests that need PostgreSQL are skipped)"
    redis = "Redis (REDIS_URL)" if os.environ.get("REDIS_URL") else "no Redis (REDIS_URL unset: its tests are skipped)"
    return f"registry tests on {where}, {redis}"


def pytest_collection_modifyitems(config, items):
    """Mark what `make test-fast` leaves out: tests/browser/ (`browser`), tests/deploy/ (`deploy`),
    and tests that start a server (`subprocess`, see SERVER_FIXTURES)."""
    for item in items:
        folder = item.path.relative_to(TESTS).parts[0] if item.path.is_relative_to(TESTS) else ""
        if folder in ("browser", "deploy"):
            item.add_marker(folder)
        if SERVER_FIXTURES.intersection(item.fixturenames):
            item.add_marker("subprocess")


@pytest.fixture(autouse=True)
def eager_tasks(settings):
    """Queued work runs in-process when the transaction commits (a real worker is tested
    separately in tests/registry/test_worker_integration.py)."""
    from registry.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Fixtures create many users; the production hasher would cost seconds per test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_cache(settings):
    """Every test counts API requests (throttles) from zero, in a private in-memory cache:
    never the Redis that REDIS_URL names, which the broker and other runs share."""
    import uuid

    from django.core.cache import caches

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": f"test-{uuid.uuid4().hex}"}}
    private = caches["default"]
    yield
    private.clear()


@pytest.fixture(autouse=True)
def storage_dir(settings):
    """Each test stores files in a fresh folder, so leftovers can be asserted on."""
    folder = tempfile.mkdtemp(prefix="registry-test-files-")
    # Assigning the setting fires Django's setting_changed, which resets the storage handler.
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": folder}},
    }
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def stored_files(folder: str) -> list[str]:
    found = []
    for root, _, files in os.walk(folder):
        found.extend(os.path.relpath(os.path.join(root, name), folder) for name in files)
    return sorted(found)


@pytest.fixture
def context(db):
    return services.context_create(actor=None, slug="acme", name="Acme")


@pytest.fixture
def other_context(db):
    return services.context_create(actor=None, slug="other", name="Other")


@pytest.fixture
def users(context, other_context):
    """One user per role in `context`, plus an outsider who is admin of another context only."""
    people = {}
    for role in ROLES:
        user = UserFactory(username=role)
        services.membership_set(actor=None, context=context, role=role, username=user.username)
        people[role] = user
    outsider = UserFactory(username="outsider")
    services.membership_set(actor=None, context=other_context, role="admin", username="outsider")
    people["outsider"] = outsider
    return people


def token_for(user, *, read_only=False) -> str:
    return services.token_create(actor=None, user=user, read_only=read_only)[1]


def client_for(user=None, *, read_only=False) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user, read_only=read_only)}")
    return client


@pytest.fixture
def clients(users):
    """API clients by persona: anonymous, outsider, the four roles and a read-only admin token."""
    result = {"anonymous": client_for(None)}
    for name, user in users.items():
        result[name] = client_for(user)
    result["readonly"] = client_for(users["admin"], read_only=True)
    return result


@pytest.fixture
def editor(clients):
    return clients["editor"]


@pytest.fixture
def model(users, context):
    """A model of `context`, created by its editor."""
    return services.model_create(actor=users["editor"], context=context, name="Churn")


@pytest.fixture
def version(model, users):
    return services.version_create(actor=users["editor"], model=model)


# --- S3: a real S3 endpoint (moto's server) in a process of its own -------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """The URL of an S3 server for this test session: moto's standalone server, started here.

    It is a test dependency (`.[test]`), so its absence is a failure, never a skip.
    """
    import subprocess
    import sys
    import time
    import urllib.request

    try:
        import moto.server  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        pytest.fail(f"moto[server] is required for the S3 tests (pip install -e '.[test]'): {exc}")
    port = _free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the moto S3 server did not start on {url}")
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)
    log.close()


S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "registry-test", "AWS_SECRET_ACCESS_KEY": "registry-test-secret"}


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def s3_storage_settings(endpoint: str, bucket: str, **extra) -> dict:
    """The STORAGES['default'] entry registry/settings.py builds for REGISTRY_S3_BUCKET."""
    return {
        "BACKEND": "registry.s3.StreamingS3Storage",
        "OPTIONS": {
            "bucket_name": bucket, "endpoint_url": endpoint, "region_name": "us-east-1",
            "access_key": S3_CREDENTIALS["AWS_ACCESS_KEY_ID"], "secret_key": S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "signature_version": "s3v4", "addressing_style": "path", "file_overwrite": False,
            "default_acl": None, "querystring_auth": True, **extra,
        },
    }


@pytest.fixture
def s3_bucket(s3_endpoint, request):
    """A fresh, empty bucket on the test S3 server; emptied and removed afterwards."""
    import uuid

    if request.node.get_closest_marker("subprocess") is None:
        pytest.fail("a test that uses the S3 server must be marked subprocess (make test-fast leaves those out); "
                    "mark the parameter that needs it: pytest.param('s3', marks=pytest.mark.subprocess)")
    name = f"registry-test-{uuid.uuid4().hex[:12]}"
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=name)
    yield name
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=item["Key"])
    for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
        client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    client.delete_bucket(Bucket=name)
