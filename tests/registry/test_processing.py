"""Workers (SPEC §2, §3): hashing, introspection, signature fill, the publish gate, idempotent
and stale-safe tasks, a broker that is down, the reconciler and the integrity sweep.

Celery runs eagerly (tests/conftest.py): the work an upload queues on commit runs in-process,
as a worker would. Tests that need a broker that is down switch eager mode off.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import io
import os
import pickle
from datetime import timedelta
from pathlib import Path

import kombu.exceptions
import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.test import TestCase
from django.utils import timezone
from onnx import TensorProto, helper

from registry import storage, tasks
from registry.celery import app
from registry.introspection import dispatch
from registry.models import AuditEvent, Format, FormatStatus, Version
from registry.services import processing
from tests.helpers import PICKLE, upload

pytestmark = pytest.mark.django_db


# --- helpers ------------------------------------------------------------------------------

def new_model(client, name="churn") -> str:
    r = client.post("/api/v1/contexts/acme/models/", {"name": name}, format="json")
    assert r.status_code == 201, r.json()
    return r.json()["id"]


def new_version(client, model_id, **fields) -> int:
    r = client.post(f"/api/v1/models/{model_id}/versions/", fields, format="json")
    assert r.status_code == 201, r.json()
    return r.json()["number"]


@pytest.fixture
def model_id(clients) -> str:
    return new_model(clients["editor"])


@pytest.fixture
def number(clients, model_id) -> int:
    return new_version(clients["editor"], model_id)


def fmt_of(model_id, number, kind="pkl") -> Format:
    return Format.objects.get(version__model_id=model_id, version__number=number, kind=kind)


def version_of(model_id, number) -> Version:
    return Version.objects.get(model_id=model_id, number=number)


def get_format(client, model_id, number, kind="pkl") -> dict:
    r = client.get(f"/api/v1/models/{model_id}/versions/{number}/formats/{kind}/")
    assert r.status_code == 200, r.json()
    return r.json()


def publish(client, model_id, number):
    return client.post(f"/api/v1/models/{model_id}/versions/{number}/publish/")


def events(action: str, fmt: Format | None = None) -> list[AuditEvent]:
    qs = AuditEvent.objects.filter(action=action)
    if fmt is not None:
        qs = qs.filter(object_id=str(fmt.pk))
    return list(qs)


def format_events(fmt: Format) -> list[tuple[str, str]]:
    return sorted(AuditEvent.objects.filter(object_id=str(fmt.pk)).values_list("action", "summary"))


def snapshot(fmt: Format) -> dict:
    return Format.objects.values(
        "storage_key", "status", "status_message", "md5", "sha256", "size", "report",
    ).get(pk=fmt.pk)


def stored_path(storage_dir: str, fmt: Format) -> Path:
    return Path(storage_dir) / fmt.storage_key


def assert_refused(client, model_id, number, kind: str, state: str) -> dict:
    r = publish(client, model_id, number)
    assert r.status_code == 409, r.json()
    body = r.json()
    assert body["code"] == "not_publishable"
    assert body["field"] == kind
    assert f"'{kind}'" in body["detail"] and state in body["detail"]
    assert version_of(model_id, number).status == "draft"
    return body


class RunsCommand:
    """A pickled object whose reconstruction would run a shell command. Never loaded."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def onnx_add_model() -> bytes:
    """A tiny valid ONNX model: sum = a + b, float inputs with a symbolic batch dimension."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"])],
        "adder",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 3])],
    )
    model = helper.make_model(graph, producer_name="registry-tests", opset_imports=[helper.make_opsetid("", 14)])
    return model.SerializeToString()


ADD_SIGNATURE = {
    "inputs": [{"name": "a", "dtype": "float32", "shape": [-1, 3]},
               {"name": "b", "dtype": "float32", "shape": [-1, 3]}],
    "outputs": [{"name": "sum", "dtype": "float32", "shape": [-1, 3]}],
}
CLIENT_SIGNATURE = {
    "inputs": [{"name": "age", "dtype": "int64", "shape": [-1]}],
    "outputs": [{"name": "churn", "dtype": "float64", "shape": [-1]}],
}
GARBAGE = b"this is not a model, just some text that a person typed into a file.\n" * 20


# --- upload -> ready ----------------------------------------------------------------------

def test_upload_is_hashed_and_introspected_to_ready_and_shown_over_the_api(clients, model_id, number, storage_dir):
    editor = clients["editor"]
    body = pickle.dumps(collections.OrderedDict(a=1, b=[1.5, "x"]), protocol=4)
    r = upload(editor, model_id, number, "pkl", body)
    assert r.status_code == 200, r.json()

    fmt = fmt_of(model_id, number)
    assert fmt.status == FormatStatus.READY, fmt.status_message
    assert fmt.status_message == ""
    stored = stored_path(storage_dir, fmt).read_bytes()
    assert stored == body
    assert fmt.md5 == hashlib.md5(stored).hexdigest()
    assert fmt.sha256 == hashlib.sha256(stored).hexdigest()
    assert fmt.size == len(body)
    assert fmt.report["status"] == "ready"
    assert fmt.report["detected_kind"] == "pkl"
    globals_ = fmt.report["details"]["globals"]
    assert {"module": "collections", "name": "OrderedDict"}.items() <= globals_[0].items()
    assert [(g["module"], g["name"]) for g in globals_] == [("collections", "OrderedDict")]

    shown = get_format(clients["viewer"], model_id, number)
    assert shown["status"] == "ready"
    assert shown["md5"] == fmt.md5 and shown["sha256"] == fmt.sha256
    assert shown["size"] == len(body)
    assert shown["report"]["details"]["globals"] == globals_
    version = clients["viewer"].get(f"/api/v1/models/{model_id}/versions/{number}/").json()
    assert version["formats"] == [{"kind": "pkl", "status": "ready", "size": len(body), "sha256": fmt.sha256}]
    assert "signature" in version

    assert publish(clients["publisher"], model_id, number).status_code == 200


def test_processing_runs_only_after_commit(clients, model_id, number):
    r = upload(clients["editor"], model_id, number, "pkl", PICKLE, process=False)
    assert r.status_code == 200
    assert r.json()["status"] == "uploaded"
    fmt = fmt_of(model_id, number)
    assert (fmt.status, fmt.md5, fmt.sha256, fmt.report) == ("uploaded", "", "", {})
    assert_refused(clients["publisher"], model_id, number, "pkl", "uploaded")


# --- declared checksums -------------------------------------------------------------------

@pytest.mark.parametrize("header", ["sha256", "md5", "md5_hex"])
def test_declared_checksum_mismatch_makes_the_format_corrupt(clients, model_id, number, header):
    other = hashlib.sha256(b"other bytes")
    headers = {
        "sha256": {"HTTP_X_CHECKSUM_SHA256": other.hexdigest()},
        "md5": {"HTTP_CONTENT_MD5": base64.b64encode(hashlib.md5(b"other bytes").digest()).decode()},
        "md5_hex": {"HTTP_CONTENT_MD5": hashlib.md5(b"other bytes").hexdigest()},
    }[header]
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE, **headers).status_code == 200

    fmt = fmt_of(model_id, number)
    assert fmt.status == FormatStatus.CORRUPT
    assert "mismatch" in fmt.status_message.lower()
    name = "SHA-256" if header == "sha256" else "MD5"
    assert name in fmt.status_message
    # The recorded hashes are those of the stored bytes, not the declared ones.
    assert fmt.sha256 == hashlib.sha256(PICKLE).hexdigest()
    assert fmt.md5 == hashlib.md5(PICKLE).hexdigest()
    assert fmt.report == {}  # never introspected
    [event] = events("format.corrupt", fmt)
    assert event.actor is None and "checksum" in event.summary
    assert get_format(clients["viewer"], model_id, number)["status"] == "corrupt"

    body = assert_refused(clients["publisher"], model_id, number, "pkl", "corrupt")
    assert "mismatch" in body["detail"].lower()


def test_matching_declared_checksums_lead_to_ready(clients, model_id, number):
    r = upload(clients["editor"], model_id, number, "pkl", PICKLE,
               HTTP_X_CHECKSUM_SHA256=hashlib.sha256(PICKLE).hexdigest().upper(),
               HTTP_CONTENT_MD5=base64.b64encode(hashlib.md5(PICKLE).digest()).decode())
    assert r.status_code == 200, r.json()
    fmt = fmt_of(model_id, number)
    assert fmt.status == FormatStatus.READY, fmt.status_message
    assert fmt.declared_sha256 == fmt.sha256 == hashlib.sha256(PICKLE).hexdigest()
    assert fmt.declared_md5 == fmt.md5
    assert events("format.corrupt") == []


# --- malicious and malformed files ---------------------------------------------------------

def test_malicious_pickle_is_quarantined_and_never_run(clients, model_id, number, tmp_path):
    marker = tmp_path / "marker"
    body = pickle.dumps(RunsCommand(f"touch {marker}"))
    assert b"system" in body
    assert upload(clients["editor"], model_id, number, "pkl", body).status_code == 200

    fmt = fmt_of(model_id, number)
    assert fmt.status == FormatStatus.QUARANTINED
    assert "system" in fmt.status_message
    assert fmt.sha256 == hashlib.sha256(body).hexdigest()
    verdicts = {(g["module"], g["name"]): g["verdict"] for g in fmt.report["details"]["globals"]}
    assert any(name == "system" and verdict == "dangerous" for (_, name), verdict in verdicts.items())
    [event] = events("format.quarantined", fmt)
    assert "quarantined" in event.summary
    assert get_format(clients["viewer"], model_id, number)["status"] == "quarantined"
    assert_refused(clients["publisher"], model_id, number, "pkl", "quarantined")
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["onnx", "pkl"])
def test_garbage_ends_as_failed_with_a_reason(clients, model_id, number, kind):
    assert upload(clients["editor"], model_id, number, kind, GARBAGE).status_code == 200
    fmt = fmt_of(model_id, number, kind)
    assert fmt.status == FormatStatus.FAILED
    assert fmt.status_message.strip()
    assert fmt.report["status"] == "failed" and fmt.report["message"]
    assert fmt.sha256 == hashlib.sha256(GARBAGE).hexdigest()  # hashed all the same
    assert len(events("format.failed", fmt)) == 1
    shown = get_format(clients["viewer"], model_id, number, kind)
    assert shown["status"] == "failed" and shown["status_message"] == fmt.status_message
    assert_refused(clients["publisher"], model_id, number, kind, "failed")


# --- signatures ---------------------------------------------------------------------------

def test_onnx_signature_fills_the_version_signature(clients, model_id, number):
    assert upload(clients["editor"], model_id, number, "onnx", onnx_add_model()).status_code == 200
    fmt = fmt_of(model_id, number, "onnx")
    assert fmt.status == FormatStatus.READY, fmt.status_message
    assert fmt.report["signature"] == ADD_SIGNATURE
    version = version_of(model_id, number)
    assert version.signature == ADD_SIGNATURE
    assert version.signature_source == "introspection"
    shown = clients["viewer"].get(f"/api/v1/models/{model_id}/versions/{number}/").json()
    assert shown["signature"] == ADD_SIGNATURE


def test_a_client_signature_is_kept(clients, model_id):
    editor = clients["editor"]
    number = new_version(editor, model_id, signature=CLIENT_SIGNATURE)
    assert version_of(model_id, number).signature_source == "client"
    assert upload(editor, model_id, number, "onnx", onnx_add_model()).status_code == 200
    assert fmt_of(model_id, number, "onnx").status == FormatStatus.READY
    version = version_of(model_id, number)
    assert version.signature == CLIENT_SIGNATURE
    assert version.signature_source == "client"


def test_a_signature_set_after_upload_is_kept_when_introspection_finishes(clients, model_id, number):
    editor = clients["editor"]
    assert upload(editor, model_id, number, "onnx", onnx_add_model(), process=False).status_code == 200
    r = editor.patch(f"/api/v1/models/{model_id}/versions/{number}/", {"signature": CLIENT_SIGNATURE}, format="json")
    assert r.status_code == 200, r.json()
    fmt = fmt_of(model_id, number, "onnx")
    # The hashing task returns the state it left (introspecting) and queues introspection.
    assert tasks.format_hash.apply(args=[str(fmt.pk), fmt.storage_key]).get() == "introspecting"
    assert fmt_of(model_id, number, "onnx").status == "ready"
    assert version_of(model_id, number).signature == CLIENT_SIGNATURE


def test_a_published_version_signature_is_never_touched(clients, model_id, number):
    assert upload(clients["editor"], model_id, number, "onnx", onnx_add_model(), process=False).status_code == 200
    fmt = fmt_of(model_id, number, "onnx")
    assert processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key).status == "introspecting"
    # The version gets published (by whatever path) before introspection finishes.
    Version.objects.filter(pk=fmt.version_id).update(status="published", published_at=timezone.now())
    assert processing.format_introspect(format_id=fmt.pk, storage_key=fmt.storage_key).status == "ready"
    version = version_of(model_id, number)
    assert version.signature == {}
    assert version.signature_source == ""


# --- idempotency and staleness -------------------------------------------------------------

def test_running_the_tasks_twice_changes_nothing(clients, model_id, number):
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE, process=False).status_code == 200
    fmt = fmt_of(model_id, number)
    args = [str(fmt.pk), fmt.storage_key]

    assert processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key).status == "introspecting"
    assert processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key) is None
    assert tasks.format_hash.apply(args=args).get() is None
    assert fmt_of(model_id, number).status == "introspecting"

    assert tasks.format_introspect.apply(args=args).get() == "ready"
    after = snapshot(fmt)
    audit_after = format_events(fmt)
    assert tasks.format_introspect.apply(args=args).get() is None
    assert tasks.format_hash.apply(args=args).get() is None
    assert processing.format_introspect(format_id=fmt.pk, storage_key=fmt.storage_key) is None
    assert snapshot(fmt) == after
    assert format_events(fmt) == audit_after


@pytest.mark.parametrize("case", ["corrupt", "quarantined", "failed"])
def test_rerunning_a_finished_format_writes_no_duplicate_audit_event(clients, model_id, number, case):
    headers, body = {}, PICKLE
    if case == "corrupt":
        headers = {"HTTP_X_CHECKSUM_SHA256": "0" * 64}
    elif case == "quarantined":
        body = pickle.dumps(RunsCommand("true"))
    else:
        body = GARBAGE
    assert upload(clients["editor"], model_id, number, "pkl", body, **headers).status_code == 200
    fmt = fmt_of(model_id, number)
    assert fmt.status == case
    before, audit_before = snapshot(fmt), format_events(fmt)
    assert len(events(f"format.{case}", fmt)) == 1
    for _ in range(2):
        assert tasks.format_hash.apply(args=[str(fmt.pk), fmt.storage_key]).get() is None
        assert tasks.format_introspect.apply(args=[str(fmt.pk), fmt.storage_key]).get() is None
    assert snapshot(fmt) == before
    assert format_events(fmt) == audit_before


def test_overlapping_hash_runs_record_one_result_and_one_audit_event(clients, model_id, number, monkeypatch):
    """A second delivery of the same hashing task while the first runs (e.g. redelivered after
    a worker was lost): the first run holds the format, the second does nothing."""
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE, process=False,
                  HTTP_X_CHECKSUM_SHA256="0" * 64).status_code == 200
    fmt = fmt_of(model_id, number)
    real_hash = storage.hash_stream
    inner_results = []

    def hash_while_another_run_starts(handle, **kwargs):
        monkeypatch.setattr(storage, "hash_stream", real_hash)
        inner_results.append(processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key))
        return real_hash(handle, **kwargs)

    monkeypatch.setattr(storage, "hash_stream", hash_while_another_run_starts)
    assert processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key).status == "corrupt"
    assert inner_results == [None]
    assert fmt_of(model_id, number).status == "corrupt"
    assert len(events("format.corrupt", fmt)) == 1


def test_a_stale_run_after_a_newer_upload_changes_nothing(clients, model_id, number):
    editor = clients["editor"]
    assert upload(editor, model_id, number, "pkl", PICKLE, process=False).status_code == 200
    old = fmt_of(model_id, number)
    old_args = [str(old.pk), old.storage_key]
    malicious = pickle.dumps(RunsCommand("true"))
    assert upload(editor, model_id, number, "pkl", malicious, process=False).status_code == 200
    new = fmt_of(model_id, number)
    assert new.pk == old.pk and new.storage_key != old.storage_key

    # The run queued for the first file arrives late: it must not touch the new file's row.
    before = snapshot(new)
    assert tasks.format_hash.apply(args=old_args).get() is None
    assert snapshot(new) == before

    assert tasks.format_hash.apply(args=[str(new.pk), new.storage_key]).get() == "introspecting"
    assert fmt_of(model_id, number).status == "quarantined"
    final = snapshot(new)
    assert final["sha256"] == hashlib.sha256(malicious).hexdigest()
    for task in (tasks.format_hash, tasks.format_introspect):
        assert task.apply(args=old_args).get() is None
    assert processing.format_record_report(
        format_id=old.pk, storage_key=old.storage_key,
        report=processing.Report(status="ready", message="stale"),
    ) is None
    assert snapshot(new) == final
    assert fmt_of(model_id, number).status == "quarantined"


def test_a_stale_introspection_during_the_newer_files_introspection_changes_nothing(clients, model_id, number):
    editor = clients["editor"]
    assert upload(editor, model_id, number, "pkl", GARBAGE, process=False).status_code == 200
    old = fmt_of(model_id, number)
    assert upload(editor, model_id, number, "pkl", PICKLE, process=False).status_code == 200
    new = fmt_of(model_id, number)
    assert processing.format_hash(format_id=new.pk, storage_key=new.storage_key).status == "introspecting"
    assert tasks.format_introspect.apply(args=[str(old.pk), old.storage_key]).get() is None
    assert fmt_of(model_id, number).status == "introspecting"
    assert tasks.format_introspect.apply(args=[str(new.pk), new.storage_key]).get() == "ready"


def test_a_run_for_a_deleted_format_is_a_no_op(clients, model_id, number):
    editor = clients["editor"]
    assert upload(editor, model_id, number, "pkl", PICKLE, process=False).status_code == 200
    fmt = fmt_of(model_id, number)
    args = [str(fmt.pk), fmt.storage_key]
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert editor.delete(f"/api/v1/models/{model_id}/versions/{number}/formats/pkl/").status_code == 204
    audit_count = AuditEvent.objects.count()
    assert tasks.format_hash.apply(args=args).get() is None
    assert tasks.format_introspect.apply(args=args).get() is None
    assert tasks.format_verify.apply(args=[args[0]]).get() is None
    assert not Format.objects.filter(pk=fmt.pk).exists()
    assert AuditEvent.objects.count() == audit_count


# --- crashes and time limits --------------------------------------------------------------

def test_an_inspector_crash_ends_as_failed_with_the_reason(clients, model_id, number, monkeypatch):
    def crash(kind, handle, size):
        raise RuntimeError("parser exploded")

    monkeypatch.setattr(dispatch, "_inspect", crash)
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE).status_code == 200
    fmt = fmt_of(model_id, number)
    assert fmt.status == FormatStatus.FAILED
    assert "RuntimeError" in fmt.status_message and "parser exploded" in fmt.status_message
    assert fmt.report["status"] == "failed"
    assert len(events("format.failed", fmt)) == 1
    assert_refused(clients["publisher"], model_id, number, "pkl", "failed")


def test_a_crash_in_a_module_function_ends_as_failed(clients, model_id, number, monkeypatch):
    from registry.introspection import onnx_model

    def crash(handle):
        raise MemoryError("protobuf bomb")

    monkeypatch.setattr(onnx_model, "inspect_onnx", crash)
    assert upload(clients["editor"], model_id, number, "onnx", onnx_add_model()).status_code == 200
    fmt = fmt_of(model_id, number, "onnx")
    assert fmt.status == FormatStatus.FAILED
    assert "MemoryError" in fmt.status_message
    assert version_of(model_id, number).signature == {}


def test_a_soft_time_limit_during_introspection_marks_the_format_failed(clients, model_id, number, monkeypatch):
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE, process=False).status_code == 200
    fmt = fmt_of(model_id, number)
    assert processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key).status == "introspecting"

    def too_slow(kind, handle, size):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(dispatch, "_inspect", too_slow)
    assert tasks.format_introspect.apply(args=[str(fmt.pk), fmt.storage_key]).get() == "failed"
    fmt.refresh_from_db()
    assert fmt.status == FormatStatus.FAILED
    assert "time limit" in fmt.status_message.lower()
    assert fmt.report["status"] == "failed"
    assert len(events("format.failed", fmt)) == 1
    assert_refused(clients["publisher"], model_id, number, "pkl", "failed")


# --- broker down and the reconciler --------------------------------------------------------

@pytest.fixture
def broker_down(monkeypatch):
    """Eager mode off and every send to the broker failing; yields the attempted sends."""
    attempts = []

    def refuse(name, args=None, **kwargs):
        attempts.append((name, list(args or [])))
        raise kombu.exceptions.OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    app.conf.task_always_eager = False
    monkeypatch.setattr("registry.queue.ensure_broker_folders", lambda: None, raising=False)  # no folders in var/
    monkeypatch.setattr(app, "send_task", refuse)
    yield attempts
    app.conf.task_always_eager = True


@pytest.fixture
def broker_records(monkeypatch):
    """Eager mode off and sends recorded instead of delivered."""
    sent = []

    def record(name, args=None, **kwargs):
        sent.append((name, list(args or [])))

    app.conf.task_always_eager = False
    monkeypatch.setattr("registry.queue.ensure_broker_folders", lambda: None, raising=False)  # no folders in var/
    monkeypatch.setattr(app, "send_task", record)
    yield sent
    app.conf.task_always_eager = True


def test_upload_succeeds_while_the_broker_is_down_and_the_reconciler_finishes_it(
    clients, model_id, number, broker_down, monkeypatch
):
    r = upload(clients["editor"], model_id, number, "pkl", PICKLE)
    assert r.status_code == 200, r.json()
    fmt = fmt_of(model_id, number)
    assert broker_down == [("registry.tasks.format_hash", [str(fmt.pk), fmt.storage_key])]
    assert (fmt.status, fmt.sha256, fmt.report) == ("uploaded", "", {})
    assert get_format(clients["viewer"], model_id, number)["status"] == "uploaded"
    assert_refused(clients["publisher"], model_id, number, "pkl", "uploaded")

    # Still down: the reconciler tries, fails quietly, nothing changes.
    assert processing.formats_reconcile(older_than=timedelta(0)) == 0
    assert fmt_of(model_id, number).status == "uploaded"
    # Not yet old enough for the default delay.
    assert list(processing.formats_stuck()) == []
    assert list(processing.formats_stuck(older_than=timedelta(0))) == [fmt]

    # The broker is back (eager mode stands in for a worker).
    monkeypatch.undo()
    app.conf.task_always_eager = True
    assert processing.formats_reconcile(older_than=timedelta(0)) == 1
    fmt.refresh_from_db()
    assert fmt.status == FormatStatus.READY, fmt.status_message
    assert fmt.sha256 == hashlib.sha256(PICKLE).hexdigest()
    assert processing.formats_reconcile(older_than=timedelta(0)) == 0
    assert publish(clients["publisher"], model_id, number).status_code == 200


def test_the_reconciler_requeues_each_stuck_state_to_the_right_task(clients, model_id, number, broker_records):
    editor = clients["editor"]
    for kind, body in (("pkl", PICKLE), ("onnx", onnx_add_model()), ("joblib", PICKLE)):
        assert upload(editor, model_id, number, kind, body).status_code == 200
    pkl, onnx_fmt, joblib = (fmt_of(model_id, number, k) for k in ("pkl", "onnx", "joblib"))
    broker_records.clear()
    # onnx reached introspecting (its hashing ran), joblib is stuck while hashing.
    assert processing.format_hash(format_id=onnx_fmt.pk, storage_key=onnx_fmt.storage_key).status == "introspecting"
    Format.objects.filter(pk=joblib.pk).update(status="hashing")
    other = new_version(editor, model_id)  # a pending format (no file yet) is not stuck
    assert editor.post(f"/api/v1/models/{model_id}/versions/{other}/formats/", {"kind": "pt"},
                       format="json").status_code == 201

    assert processing.formats_reconcile(older_than=timedelta(0)) == 3
    assert sorted(broker_records) == sorted([
        ("registry.tasks.format_hash", [str(pkl.pk), pkl.storage_key]),
        ("registry.tasks.format_introspect", [str(onnx_fmt.pk), onnx_fmt.storage_key]),
        ("registry.tasks.format_hash", [str(joblib.pk), joblib.storage_key]),
    ])
    # The periodic task does the same with the default delay: nothing is old enough yet.
    broker_records.clear()
    assert tasks.formats_reconcile.apply().get() == 0
    assert broker_records == []


def test_the_reconciler_takes_introspecting_and_hashing_formats_to_ready(clients, model_id, number):
    editor = clients["editor"]
    assert upload(editor, model_id, number, "onnx", onnx_add_model(), process=False).status_code == 200
    assert upload(editor, model_id, number, "pkl", PICKLE, process=False).status_code == 200
    onnx_fmt, pkl = fmt_of(model_id, number, "onnx"), fmt_of(model_id, number, "pkl")
    assert processing.format_hash(format_id=onnx_fmt.pk, storage_key=onnx_fmt.storage_key).status == "introspecting"
    Format.objects.filter(pk=pkl.pk).update(status="hashing")  # a worker died mid-hash

    assert processing.formats_reconcile(older_than=timedelta(0)) == 2
    assert fmt_of(model_id, number, "onnx").status == "ready"
    assert fmt_of(model_id, number, "pkl").status == "ready"
    assert version_of(model_id, number).signature == ADD_SIGNATURE
    assert publish(clients["publisher"], model_id, number).status_code == 200


# --- integrity sweep ----------------------------------------------------------------------

def two_ready_formats(clients, model_id, number):
    editor = clients["editor"]
    assert upload(editor, model_id, number, "pkl", PICKLE).status_code == 200
    assert upload(editor, model_id, number, "onnx", onnx_add_model()).status_code == 200
    pkl, onnx_fmt = fmt_of(model_id, number, "pkl"), fmt_of(model_id, number, "onnx")
    assert pkl.status == onnx_fmt.status == "ready"
    return pkl, onnx_fmt


def test_the_sweep_queues_a_verify_for_every_hashed_format(clients, model_id, number, broker_records):
    app.conf.task_always_eager = True
    pkl, onnx_fmt = two_ready_formats(clients, model_id, number)
    other = new_version(clients["editor"], model_id)
    assert upload(clients["editor"], model_id, other, "pkl", PICKLE, process=False).status_code == 200  # not hashed
    app.conf.task_always_eager = False
    broker_records.clear()
    assert tasks.integrity_sweep.apply().get() == 2
    assert sorted(broker_records) == sorted([
        ("registry.tasks.format_verify", [str(pkl.pk)]),
        ("registry.tasks.format_verify", [str(onnx_fmt.pk)]),
    ])


def test_the_sweep_marks_a_changed_file_corrupt_and_writes_a_tamper_event(clients, model_id, number, storage_dir):
    pkl, onnx_fmt = two_ready_formats(clients, model_id, number)
    path = stored_path(storage_dir, pkl)
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # one changed byte
    path.write_bytes(bytes(data))
    onnx_before = snapshot(onnx_fmt)

    assert tasks.integrity_sweep.apply().get() == 2
    pkl.refresh_from_db()
    assert pkl.status == FormatStatus.CORRUPT
    assert "integrity" in pkl.status_message.lower()
    assert hashlib.sha256(bytes(data)).hexdigest() in pkl.status_message
    assert pkl.sha256 == hashlib.sha256(PICKLE).hexdigest()  # the recorded hash is kept
    [event] = events("format.tamper", pkl)
    assert event.actor is None and "tamper" in event.summary
    assert snapshot(onnx_fmt) == onnx_before  # unchanged file stays ready
    assert events("format.tamper", onnx_fmt) == []
    assert_refused(clients["publisher"], model_id, number, "pkl", "corrupt")

    # A second sweep neither re-verifies the corrupt file nor writes another event.
    assert tasks.integrity_sweep.apply().get() == 1
    assert len(events("format.tamper")) == 1


def test_the_sweep_marks_a_missing_file_corrupt(clients, model_id, number, storage_dir):
    _pkl, onnx_fmt = two_ready_formats(clients, model_id, number)
    stored_path(storage_dir, onnx_fmt).unlink()
    assert tasks.integrity_sweep.apply().get() == 2
    onnx_fmt.refresh_from_db()
    assert onnx_fmt.status == FormatStatus.CORRUPT
    assert "missing" in onnx_fmt.status_message
    assert len(events("format.tamper", onnx_fmt)) == 1
    assert fmt_of(model_id, number, "pkl").status == "ready"


def test_verify_also_checks_quarantined_files(clients, model_id, number, storage_dir):
    body = pickle.dumps(RunsCommand("true"))
    assert upload(clients["editor"], model_id, number, "pkl", body).status_code == 200
    fmt = fmt_of(model_id, number)
    assert fmt.status == "quarantined"
    assert tasks.format_verify.apply(args=[str(fmt.pk)]).get() == "quarantined"
    stored_path(storage_dir, fmt).write_bytes(PICKLE)
    assert tasks.format_verify.apply(args=[str(fmt.pk)]).get() == "corrupt"
    assert len(events("format.tamper", fmt)) == 1


# --- hash_stream --------------------------------------------------------------------------

CHUNK = 64


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 5 * CHUNK + 17])
def test_hash_stream_equals_hashlib(size):
    data = bytes((i * 31 + 7) % 251 for i in range(size))
    md5, sha256, length = storage.hash_stream(io.BytesIO(data), chunk_size=CHUNK)
    assert md5 == hashlib.md5(data).hexdigest()
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert length == size


def test_hash_stream_reads_in_bounded_chunks():
    data = os.urandom(10 * CHUNK + 3)
    reads = []

    class Reader(io.BytesIO):
        def read(self, n=-1):
            reads.append(n)
            return super().read(n)

    assert storage.hash_stream(Reader(data), chunk_size=CHUNK)[1] == hashlib.sha256(data).hexdigest()
    assert set(reads) == {CHUNK}


def test_hash_object_hashes_the_stored_bytes(clients, model_id, number, storage_dir):
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE).status_code == 200
    fmt = fmt_of(model_id, number)
    assert storage.hash_object(fmt.storage_key) == (
        hashlib.md5(PICKLE).hexdigest(), hashlib.sha256(PICKLE).hexdigest(), len(PICKLE))


# --- the publish gate ---------------------------------------------------------------------

@pytest.mark.parametrize("state", ["pending", "uploaded", "hashing", "introspecting", "review", "corrupt", "quarantined",
                                   "failed"])
def test_publish_is_refused_unless_every_format_is_ready(clients, model_id, number, state):
    editor = clients["editor"]
    assert upload(editor, model_id, number, "pkl", PICKLE).status_code == 200
    assert upload(editor, model_id, number, "onnx", onnx_add_model()).status_code == 200
    Format.objects.filter(version__model_id=model_id, kind="onnx").update(status=state)
    body = assert_refused(clients["publisher"], model_id, number, "onnx", state)
    if state in ("pending", "uploaded", "hashing", "introspecting"):
        assert "still being checked" in body["detail"]

    Format.objects.filter(version__model_id=model_id, kind="onnx").update(status="ready")
    r = publish(clients["publisher"], model_id, number)
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == "published"


def test_publish_gate_names_the_first_format_that_is_not_ready(clients, model_id, number):
    editor = clients["editor"]
    assert upload(editor, model_id, number, "pkl", GARBAGE).status_code == 200
    assert upload(editor, model_id, number, "onnx", GARBAGE, HTTP_X_CHECKSUM_SHA256="1" * 64).status_code == 200
    body = assert_refused(clients["publisher"], model_id, number, "onnx", "corrupt")
    assert "mismatch" in body["detail"].lower()
    assert editor.delete(f"/api/v1/models/{model_id}/versions/{number}/formats/onnx/").status_code == 204
    assert_refused(clients["publisher"], model_id, number, "pkl", "failed")
