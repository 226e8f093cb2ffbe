"""A real Celery worker process on the real Redis follows uploads to their final state.

Needs Redis on 127.0.0.1:6379 and PostgreSQL (the worker must see the test database):
under CI=true both are required and a missing one fails the test.
"""

import hashlib
import io
import os
import pickle
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.db import connection

from registry import queue, services
from registry.models import AuditEvent, Format, FormatStatus
from registry.services import processing

from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.subprocess]

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
# A queue of this run's own, so concurrent runs on one Redis never take each other's messages.
QUEUE = f"registry-itest-{os.getpid()}"
HOSTNAME = f"itest-{os.getpid()}@localhost"
ROOT = Path(__file__).resolve().parents[2]


class Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/registry-integration-pwned",))


def _require_services():
    ci = os.environ.get("CI") == "true"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if ci:
            pytest.fail(f"Redis is required under CI: {exc}")
        pytest.skip(f"Redis not running: {exc}")
    if connection.vendor != "postgresql":
        if ci:
            pytest.fail("the worker integration test needs PostgreSQL under CI")
        pytest.skip("a worker process cannot share the SQLite in-memory test database")


@pytest.fixture
def broker(monkeypatch):
    """A Celery app sending to the real Redis, used by the web side of this test."""
    _require_services()
    from registry.celery import app as registry_app

    registry_app.conf.task_always_eager = False
    app = Celery("registry-test")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url=REDIS_URL, task_always_eager=False, broker_transport_options={},
                    task_default_queue=QUEUE)
    with app.connection_for_write() as conn:
        conn.default_channel.client.delete(QUEUE)  # stale messages of an earlier run
    monkeypatch.setattr(queue, "app", app)
    yield app
    app.close()


@pytest.fixture
def worker(broker, tmp_path, settings):
    """A worker process on the same database, storage folder and Redis as this test."""
    files = tmp_path / "files"
    files.mkdir()
    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(files)}}}
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": REDIS_URL,
        "REGISTRY_CELERY_QUEUE": QUEUE,
        "REGISTRY_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "registry.settings",
    }
    log = open(tmp_path / "worker.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "registry", "worker", "--concurrency", "1",
         "--loglevel", "INFO", "--hostname", HOSTNAME, "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not broker.control.ping(destination=[HOSTNAME], timeout=1):
            assert process.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker did not start"
        yield files
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def wait_for(fmt_id, statuses, timeout=60) -> Format:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fmt = Format.objects.get(pk=fmt_id)
        if fmt.status in statuses:
            return fmt
        time.sleep(0.2)
    raise AssertionError(f"format stayed {Format.objects.get(pk=fmt_id).status}, expected one of {statuses}")


def put(client, model_id, number, kind, body, **headers):
    return client.generic("PUT", f"/api/v1/models/{model_id}/versions/{number}/formats/{kind}/file",
                          data=body, content_type="application/octet-stream", **headers)


def test_a_real_worker_takes_uploads_to_their_final_state(worker, broker):
    context = services.context_create(actor=None, slug="itest")
    editor = UserFactory(username="itest-editor")
    services.membership_set(actor=None, context=context, role="admin", username=editor.username)
    client = client_for(editor)
    model = services.model_create(actor=None, context=context, name="m")
    for _ in range(3):
        services.version_create(actor=None, model=model)

    good = pickle.dumps({"weights": [0.1, 0.2]})
    r = put(client, model.pk, 1, "pkl", good, HTTP_X_CHECKSUM_SHA256=hashlib.sha256(good).hexdigest())
    assert r.status_code == 200, r.json()
    fmt = wait_for(r.json()["id"], {FormatStatus.READY, FormatStatus.FAILED, FormatStatus.QUARANTINED})
    assert fmt.status == FormatStatus.READY, fmt.status_message
    assert fmt.sha256 == hashlib.sha256(good).hexdigest() and fmt.md5 == hashlib.md5(good).hexdigest()
    assert client.post(f"/api/v1/models/{model.pk}/versions/1/publish/").status_code == 200

    r = put(client, model.pk, 2, "pkl", pickle.dumps(Payload()))
    fmt = wait_for(r.json()["id"], {FormatStatus.QUARANTINED, FormatStatus.READY, FormatStatus.FAILED})
    assert fmt.status == FormatStatus.QUARANTINED and "system" in fmt.status_message
    assert not os.path.exists("/tmp/registry-integration-pwned")
    assert client.post(f"/api/v1/models/{model.pk}/versions/2/publish/").status_code == 409

    r = put(client, model.pk, 3, "pkl", good, HTTP_X_CHECKSUM_SHA256="0" * 64)
    fmt = wait_for(r.json()["id"], {FormatStatus.CORRUPT, FormatStatus.READY})
    assert fmt.status == FormatStatus.CORRUPT

    # The integrity sweep, sent to the worker like beat would, catches a changed byte.
    ready = Format.objects.get(version__number=1, version__model=model)
    path = worker / ready.storage_key
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    broker.send_task("registry.tasks.integrity_sweep")
    assert wait_for(ready.pk, {FormatStatus.CORRUPT}).status_message.startswith("Integrity check failed")
    assert AuditEvent.objects.filter(action="format.tamper", object_id=str(ready.pk)).count() == 1


def test_upload_survives_a_broker_outage_and_the_reconciler_requeues(worker, broker, monkeypatch):
    context = services.context_create(actor=None, slug="itest2")
    model = services.model_create(actor=None, context=context, name="m")
    version = services.version_create(actor=None, model=model)

    down = Celery("registry-down")
    down.conf.update(broker_url="redis://127.0.0.1:1/0", broker_connection_timeout=1,
                     broker_connection_retry=False, broker_connection_max_retries=0)
    monkeypatch.setattr(queue, "app", down)
    body = pickle.dumps([1, 2, 3])
    fmt = services.format_upload(actor=None, version=version, kind="pkl", stream=io.BytesIO(body),
                                 content_length=len(body))
    time.sleep(1)
    fmt.refresh_from_db()
    assert fmt.status == FormatStatus.UPLOADED  # pending: never shown as clean

    monkeypatch.setattr(queue, "app", broker)  # the broker is back
    assert processing.formats_reconcile(older_than=timedelta(0)) == 1
    assert wait_for(fmt.pk, {FormatStatus.READY, FormatStatus.FAILED}).status == FormatStatus.READY
