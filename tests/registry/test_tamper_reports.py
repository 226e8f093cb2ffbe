"""Tamper reports cannot be turned into a hashing queue flood: reports on one file coalesce into
one pending verification (each report is still audited), and each token may send only so many
reports an hour (429 after that)."""

from __future__ import annotations

from datetime import timedelta

import kombu.exceptions
import pytest
from django.test import TestCase
from django.utils import timezone

from registry import services, tasks
from registry.celery import app
from registry.models import AuditEvent, Format

from tests.conftest import client_for
from tests.helpers import PICKLE, store_file

pytestmark = pytest.mark.django_db

VERIFY = "registry.tasks.format_verify"


@pytest.fixture
def queued(monkeypatch):
    """Eager mode off: the tasks sent to the broker are recorded, as a worker would find them."""
    sent = []

    def record(name, args=None, **kwargs):
        sent.append((name, list(args or [])))

    app.conf.task_always_eager = False
    monkeypatch.setattr("registry.queue.ensure_broker_folders", lambda: None, raising=False)
    monkeypatch.setattr(app, "send_task", record)
    yield sent
    app.conf.task_always_eager = True


@pytest.fixture
def stored(users, context):
    model = services.model_create(actor=users["editor"], context=context, name="Churn")
    version = services.version_create(actor=users["editor"], model=model)
    return store_file(version, "pkl", PICKLE)


def report(client, fmt, **body):
    url = f"/api/v1/models/{fmt.version.model_id}/versions/{fmt.version.number}/tamper-reports/"
    with TestCase.captureOnCommitCallbacks(execute=True):
        return client.post(url, {"file": fmt.kind, "reason": "checksum_mismatch", **body}, format="json")


def verifications(sent) -> list:
    return [args for name, args in sent if name == VERIFY]


def test_a_hundred_reports_queue_one_verification_and_are_all_audited(users, stored, queued):
    readers = [client_for(users["viewer"], read_only=True) for _ in range(10)]  # ten deployments

    answers = [report(reader, stored).status_code for reader in readers for _ in range(10)]

    assert answers == [201] * 100
    assert verifications(queued) == [[str(stored.pk)]]
    assert AuditEvent.objects.filter(action="format.tamper_reported", object_id=str(stored.pk)).count() == 100


def test_once_the_verification_started_a_new_report_queues_another(users, stored, queued):
    reader = client_for(users["viewer"], read_only=True)
    report(reader, stored)
    report(reader, stored)
    assert len(verifications(queued)) == 1

    tasks.format_verify(*verifications(queued)[0])  # a worker takes it: the file is read from here on

    report(reader, stored)
    report(reader, stored)
    assert len(verifications(queued)) == 2


def test_a_verification_that_never_started_does_not_block_the_next_forever(settings, users, stored, queued):
    reader = client_for(users["viewer"], read_only=True)
    report(reader, stored)
    waited = timedelta(seconds=settings.REGISTRY_HASH_SOFT_TIME_LIMIT + 1)
    Format.objects.filter(pk=stored.pk).update(verify_requested_at=timezone.now() - waited)

    report(reader, stored)

    assert len(verifications(queued)) == 2


def test_a_report_the_broker_refused_leaves_nothing_pending(users, stored, monkeypatch):
    attempts = []

    def refuse(name, args=None, **kwargs):
        attempts.append(name)
        raise kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    app.conf.task_always_eager = False
    monkeypatch.setattr("registry.queue.ensure_broker_folders", lambda: None, raising=False)
    monkeypatch.setattr(app, "send_task", refuse)
    try:
        reader = client_for(users["viewer"], read_only=True)
        assert report(reader, stored).status_code == 201
        assert report(reader, stored).status_code == 201
    finally:
        app.conf.task_always_eager = True
    assert attempts == [VERIFY, VERIFY]
    assert Format.objects.get(pk=stored.pk).verify_requested_at is None


def test_the_eleventh_report_of_a_token_within_the_hour_is_refused(users, stored, queued):
    reader = client_for(users["viewer"], read_only=True)
    for _ in range(10):
        assert report(reader, stored).status_code == 201
    events = AuditEvent.objects.count()

    refused = report(reader, stored)

    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    assert "detail" in refused.json()
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert AuditEvent.objects.count() == events  # refused before anything was recorded
    # Another token (another deployment) still reports; reading is not limited by this rate.
    assert report(client_for(users["viewer"], read_only=True), stored).status_code == 201
    assert reader.get(f"/api/v1/models/{stored.version.model_id}/").status_code == 200


def test_the_report_rate_is_a_setting(settings, users, stored, queued):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "tamper_report": "2/hour"},
    }
    reader = client_for(users["viewer"], read_only=True)
    assert [report(reader, stored).status_code for _ in range(3)] == [201, 201, 429]
