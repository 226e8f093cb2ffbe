"""Work never stuck (issue 13): every format in progress ends in a final state or is held by a
live task. Text read from a file is always storable, a permanent error ends `failed` (only a
database, broker or store outage is retried), and the reconciler re-queues only work whose
lease has run out.

The NUL tests matter most on PostgreSQL, which refuses NUL in text and jsonb (SQLite stores it).
"""

from __future__ import annotations

import json
import struct
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import DataError, OperationalError
from onnx import TensorProto, helper

from registry import storage, tasks
from registry.introspection import dispatch
from registry.models import AuditEvent, Format, FormatStatus
from registry.services import processing
from tests.helpers import PICKLE, upload
from tests.registry.test_processing import broker_records, fmt_of, model_id, number  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


def events(fmt: Format, action: str | None = None) -> list[AuditEvent]:
    qs = AuditEvent.objects.filter(object_id=str(fmt.pk)).order_by("created_at", "id")
    return list(qs.filter(action=action) if action else qs)


def hashed(fmt: Format) -> Format:
    """Hash the uploaded file as the hashing task does; the format waits for introspection."""
    after = processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key)
    assert after is not None and after.status == FormatStatus.INTROSPECTING, after and after.status_message
    return after


def assert_storable(value) -> None:
    """No string in `value` holds what PostgreSQL refuses: NUL, or a lone surrogate (not UTF-8)."""
    if isinstance(value, str):
        assert "\x00" not in value, value
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_storable(key)
            assert_storable(item)
    elif isinstance(value, list):
        for item in value:
            assert_storable(item)


def storable_everywhere(fmt: Format) -> None:
    """Nothing PostgreSQL would refuse is left in the row or its audit events."""
    fmt.refresh_from_db()
    assert_storable([fmt.report, fmt.status_message])
    for event in events(fmt):
        assert_storable([event.summary, event.changes])


# --- 1. text read from a file is always storable -----------------------------------------

NUL_PICKLE = b"\x80\x02cmy\x00lib\nThing\n)\x81."  # GLOBAL 'my\x00lib Thing', NEWOBJ


def safetensors_with_metadata(metadata: dict) -> bytes:
    header = json.dumps({"__metadata__": metadata,
                         "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return struct.pack("<Q", len(header)) + header + b"\0\0\0\0"


def onnx_with_external_data(location: str) -> bytes:
    weights = helper.make_tensor("W", TensorProto.FLOAT, [3], [0.0, 0.0, 0.0])
    weights.ClearField("float_data")
    weights.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "12")):
        weights.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "W"], ["y"])], "external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
        initializer=[weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()


def test_a_nul_in_a_pickle_global_is_stored_escaped_and_the_format_goes_to_review(clients, model_id, number):
    assert upload(clients["editor"], model_id, number, "pkl", NUL_PICKLE, process=False).status_code == 200
    fmt = hashed(fmt_of(model_id, number))
    fmt = processing.format_introspect(format_id=fmt.pk, storage_key=fmt.storage_key)
    assert fmt is not None and fmt.status == FormatStatus.REVIEW
    storable_everywhere(fmt)
    assert fmt.report["details"]["unvetted"] == [
        {"import": "my\\x00lib.Thing", "module": "my\\x00lib", "name": "Thing", "called": False}]
    assert "my\\x00lib.Thing" in fmt.status_message
    [event] = events(fmt, "format.review")
    assert "my\\x00lib.Thing" in event.summary
    # No rule can trust such a name: approving it is refused, the format stays in review.
    r = clients["publisher"].post(f"/api/v1/models/{model_id}/versions/{number}/formats/pkl/approve-imports/",
                                  {"reason": "ours"}, format="json")
    assert r.status_code == 400, r.json()
    assert fmt_of(model_id, number).status == FormatStatus.REVIEW


def test_nul_and_lone_surrogates_in_safetensors_metadata_keys_and_values_are_stored_escaped(
        clients, model_id, number):
    body = safetensors_with_metadata({"note": "a\x00b", "k\x00ey": "v", "half": "\ud800x", "fine": "ok"})
    assert upload(clients["editor"], model_id, number, "safetensors", body, process=False).status_code == 200
    fmt = hashed(fmt_of(model_id, number, "safetensors"))
    fmt = processing.format_introspect(format_id=fmt.pk, storage_key=fmt.storage_key)
    assert fmt is not None and fmt.status == FormatStatus.READY, fmt and fmt.status_message
    storable_everywhere(fmt)
    assert fmt.report["details"]["metadata"] == {"note": "a\\x00b", "k\\x00ey": "v", "half": "\\ud800x", "fine": "ok"}


def test_a_nul_in_an_onnx_external_data_location_is_stored_escaped_and_quarantined(clients, model_id, number):
    body = onnx_with_external_data("weights\x00.bin")
    assert upload(clients["editor"], model_id, number, "onnx", body, process=False).status_code == 200
    fmt = hashed(fmt_of(model_id, number, "onnx"))
    fmt = processing.format_introspect(format_id=fmt.pk, storage_key=fmt.storage_key)
    assert fmt is not None and fmt.status == FormatStatus.QUARANTINED, fmt and fmt.status_message
    storable_everywhere(fmt)
    [external] = fmt.report["details"]["external_data"]
    assert external["location"] == "weights\\x00.bin"
    assert "NUL" in fmt.status_message
    assert len(events(fmt, "format.quarantined")) == 1


def test_the_tasks_take_a_file_with_nul_text_to_its_verdict_in_one_attempt(clients, model_id, number, monkeypatch):
    """Through the tasks, as a worker runs them: no retry, nothing left for the reconciler."""
    assert upload(clients["editor"], model_id, number, "pkl", NUL_PICKLE, process=False).status_code == 200
    fmt = fmt_of(model_id, number)
    reads = []
    real_introspect = processing.introspect
    monkeypatch.setattr(processing, "introspect", lambda *a, **kw: reads.append(1) or real_introspect(*a, **kw))
    assert tasks.format_hash.apply(args=[str(fmt.pk), fmt.storage_key]).get() == "introspecting"
    assert fmt_of(model_id, number).status == FormatStatus.REVIEW
    assert len(reads) == 1
    assert processing.formats_reconcile(older_than=timedelta(0)) == 0


# --- 1. a permanent error ends `failed`; only an outage is retried -------------------------

def test_a_report_that_cannot_be_stored_ends_failed_at_once(clients, model_id, number, monkeypatch):
    real_inspect = dispatch._inspect
    attempts = []

    def inspector_with_a_bug(kind, handle, size):
        attempts.append(kind)
        report = real_inspect(kind, handle, size)
        report.details["raw"] = b"\x00\x01"  # not JSON: the report cannot be saved
        return report

    monkeypatch.setattr(dispatch, "_inspect", inspector_with_a_bug)
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE).status_code == 200
    fmt = fmt_of(model_id, number)
    assert fmt.status == FormatStatus.FAILED
    assert "TypeError" in fmt.status_message and "not JSON serializable" in fmt.status_message
    assert fmt.report["status"] == "failed"
    assert len(attempts) == 1  # not retried
    assert len(events(fmt, "format.failed")) == 1
    assert processing.formats_reconcile(older_than=timedelta(0)) == 0


def test_a_database_refusing_the_report_is_not_mistaken_for_an_outage(clients, model_id, number, monkeypatch):
    """PostgreSQL's DataError (what NUL in jsonb raised) is permanent; retrying cannot help."""
    real_save = Format.save
    refused = []

    def save(self, *args, **kwargs):
        if "report" in (kwargs.get("update_fields") or ()) and self.report.get("status") == "ready":
            refused.append(self.report["status"])
            raise DataError("unsupported Unicode escape sequence")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Format, "save", save)
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE).status_code == 200
    fmt = fmt_of(model_id, number)
    assert fmt.status == FormatStatus.FAILED
    assert "DataError" in fmt.status_message and "unsupported Unicode escape sequence" in fmt.status_message
    assert refused == ["ready"]  # one attempt
    assert len(events(fmt, "format.failed")) == 1


def test_a_permanent_error_while_hashing_ends_failed(clients, model_id, number, monkeypatch):
    def broken(handle, **kwargs):
        raise ValueError("the hasher hit a bug")

    monkeypatch.setattr(storage, "hash_stream", broken)
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE).status_code == 200
    fmt = fmt_of(model_id, number)
    assert fmt.status == FormatStatus.FAILED
    assert "ValueError" in fmt.status_message and "the hasher hit a bug" in fmt.status_message
    assert not fmt.sha256
    [event] = events(fmt, "format.failed")
    assert "the hasher hit a bug" in event.summary
    assert processing.formats_reconcile(older_than=timedelta(0)) == 0


def test_a_database_outage_is_still_retried(clients, model_id, number, monkeypatch):
    real_open = storage.open_for_read
    attempts = []

    def flaky(key):
        attempts.append(key)
        if len(attempts) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_open(key)

    assert upload(clients["editor"], model_id, number, "pkl", PICKLE, process=False).status_code == 200
    fmt = fmt_of(model_id, number)
    monkeypatch.setattr(storage, "open_for_read", flaky)
    tasks.format_hash.apply(args=[str(fmt.pk), fmt.storage_key])  # retried in place, as eager tasks are
    assert fmt_of(model_id, number).status == FormatStatus.READY
    assert len(attempts) == 2  # the failed read and its retry


def test_a_hash_over_its_time_limit_ends_failed(clients, model_id, number, monkeypatch):
    def too_slow(handle, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(storage, "hash_stream", too_slow)
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE).status_code == 200
    fmt = fmt_of(model_id, number)
    assert fmt.status == FormatStatus.FAILED
    assert "time limit" in fmt.status_message
    assert len(events(fmt, "format.failed")) == 1
