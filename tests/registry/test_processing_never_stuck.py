"""Work never stuck (issue 13): every format in progress ends in a final state or is held by a
live task. Text read from a file is always storable, a permanent error ends `failed` (only a
database, broker or store outage is retried), and the reconciler re-queues only work whose
lease has run out.

The NUL tests matter most on PostgreSQL, which refuses NUL in text and jsonb (SQLite stores it).
"""

from __future__ import annotations

import io
import json
import struct
import threading
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import DataError, OperationalError, connection
from django.utils import timezone
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


# --- 3. leases: the reconciler re-queues only work that no live task holds -----------------

class Clock:
    """timezone.now() under the test's control: a slow read is a jump forward, not a sleep."""

    def __init__(self):
        self.now = timezone.now()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    return clock


class Killed(BaseException):
    """The worker process dies: nothing after this runs in it."""


def slow_reads(monkeypatch, during_read, *, piece: int = 256):
    """Stored files read `piece` bytes at a time, calling during_read(n) before the n-th read."""
    real_open = storage.open_for_read

    class SlowReader(io.RawIOBase):
        def __init__(self, handle):
            self.handle, self.reads = handle, 0

        def readable(self):
            return True

        def read(self, size=-1):
            self.reads += 1
            during_read(self.reads)
            return self.handle.read(piece if size is None or size < 0 else min(size, piece))

        def close(self):
            self.handle.close()
            super().close()

    monkeypatch.setattr(storage, "open_for_read", lambda key: SlowReader(real_open(key)))


BODY = bytes(range(256)) * 8  # 8 slow reads


def test_a_hash_running_longer_than_the_reconcile_delay_is_not_started_again(
        clients, model_id, number, clock, broker_records, monkeypatch, settings):
    assert upload(clients["editor"], model_id, number, "other", BODY, process=False).status_code == 200
    fmt = fmt_of(model_id, number, "other")
    started = clock.now
    reconciled, second_runs = [], []

    def meanwhile(n):
        if len(second_runs) < len(reconciled):
            return  # a second run got as far as reading (the lease failed): it only reads
        clock.advance(30)  # each read takes half a minute
        reconciled.append(tasks.formats_reconcile.apply().get())
        second_runs.append(tasks.format_hash.apply(args=[str(fmt.pk), fmt.storage_key]).get())

    slow_reads(monkeypatch, meanwhile)
    fmt = processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key)
    assert fmt.status == FormatStatus.INTROSPECTING
    assert clock.now - started > timedelta(seconds=2 * settings.REGISTRY_RECONCILE_AFTER_SECONDS)
    assert len(reconciled) >= 8 and set(reconciled) == {0}
    assert set(second_runs) == {None}  # a second delivery while it runs does nothing
    assert broker_records == []
    assert [event.action for event in events(fmt)] == ["format.create", "format.upload"]  # nothing twice


def test_a_killed_hash_is_queued_again_once_its_lease_has_run_out(
        clients, model_id, number, clock, broker_records, monkeypatch, settings):
    assert upload(clients["editor"], model_id, number, "other", BODY, process=False).status_code == 200
    fmt = fmt_of(model_id, number, "other")
    as_left = {}

    def killed_on_the_third_read(n):
        clock.advance(30)
        if n == 3 and not as_left:
            as_left.update(Format.objects.filter(pk=fmt.pk).values().get())
            raise Killed()

    slow_reads(monkeypatch, killed_on_the_third_read)
    with pytest.raises(Killed):
        processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key)
    Format.objects.filter(pk=fmt.pk).update(**as_left)  # a killed process cleans nothing up
    held_until = as_left["processing_lease_until"]
    assert as_left["status"] == FormatStatus.HASHING and held_until > clock.now
    after = settings.REGISTRY_RECONCILE_AFTER_SECONDS

    clock.now = held_until - timedelta(seconds=1)
    assert tasks.formats_reconcile.apply().get() == 0  # still held
    clock.now = held_until + timedelta(seconds=after - 1)
    assert tasks.formats_reconcile.apply().get() == 0  # free, but not for long enough yet
    clock.now = held_until + timedelta(seconds=after + 1)
    assert tasks.formats_reconcile.apply().get() == 1
    assert broker_records == [("registry.tasks.format_hash", [str(fmt.pk), fmt.storage_key])]
    assert tasks.formats_reconcile.apply().get() == 0  # queued once, not at every run

    # A worker takes the queued task and finishes the file.
    assert tasks.format_hash.apply(args=[str(fmt.pk), fmt.storage_key]).get() == "introspecting"


def test_a_stalled_hash_that_lost_its_lease_stops_and_records_nothing(
        clients, model_id, number, clock, monkeypatch):
    assert upload(clients["editor"], model_id, number, "other", BODY, process=False,
                  HTTP_X_CHECKSUM_SHA256="0" * 64).status_code == 200
    fmt = fmt_of(model_id, number, "other")
    stalled, other_run = [], []

    def stalls_on_the_second_read(n):
        if n == 2 and not stalled:
            stalled.append(n)
            # This read hangs past the lease; the reconciler's run takes the file over meanwhile.
            clock.advance(processing.HASH_LEASE_SECONDS + 1)
            other_run.append(processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key))

    slow_reads(monkeypatch, stalls_on_the_second_read)
    assert processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key) is None
    assert [f.status for f in other_run] == [FormatStatus.CORRUPT]
    assert fmt_of(model_id, number, "other").status == FormatStatus.CORRUPT
    assert len(events(fmt, "format.corrupt")) == 1


def test_an_introspection_holds_its_format_until_its_time_limit(
        clients, model_id, number, clock, broker_records, monkeypatch, settings):
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE, process=False).status_code == 200
    fmt = hashed(fmt_of(model_id, number))
    real_inspect = dispatch._inspect
    meanwhile = []

    def slow_inspect(kind, handle, size):
        clock.advance(settings.REGISTRY_TASK_SOFT_TIME_LIMIT - 1)  # just inside the soft limit
        meanwhile.append((tasks.formats_reconcile.apply().get(),
                          tasks.format_introspect.apply(args=[str(fmt.pk), fmt.storage_key]).get()))
        return real_inspect(kind, handle, size)

    monkeypatch.setattr(dispatch, "_inspect", slow_inspect)
    assert tasks.format_introspect.apply(args=[str(fmt.pk), fmt.storage_key]).get() == "ready"
    assert meanwhile == [(0, None)]
    assert broker_records == []


def test_a_killed_introspection_is_queued_again_after_its_time_limit(
        clients, model_id, number, clock, broker_records, monkeypatch, settings):
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE, process=False).status_code == 200
    fmt = hashed(fmt_of(model_id, number))
    real_inspect = dispatch._inspect
    as_left = {}

    def killed_once(kind, handle, size):
        if as_left:
            return real_inspect(kind, handle, size)
        as_left.update(Format.objects.filter(pk=fmt.pk).values().get())
        raise Killed()

    monkeypatch.setattr(dispatch, "_inspect", killed_once)
    started = clock.now
    with pytest.raises(Killed):
        tasks.format_introspect.apply(args=[str(fmt.pk), fmt.storage_key])
    Format.objects.filter(pk=fmt.pk).update(**as_left)  # a killed process cleans nothing up
    free_at = started + timedelta(seconds=settings.REGISTRY_TASK_TIME_LIMIT + settings.REGISTRY_RECONCILE_AFTER_SECONDS)

    clock.now = free_at - timedelta(seconds=1)
    assert tasks.formats_reconcile.apply().get() == 0
    clock.now = free_at + timedelta(seconds=1)
    assert tasks.formats_reconcile.apply().get() == 1
    assert broker_records == [("registry.tasks.format_introspect", [str(fmt.pk), fmt.storage_key])]
    assert tasks.format_introspect.apply(args=[str(fmt.pk), fmt.storage_key]).get() == "ready"


def test_a_file_waiting_for_introspection_after_a_long_hash_is_not_queued_twice(
        clients, model_id, number, clock, broker_records, settings):
    """The delay counts from when the hash handed the file over, not from the upload."""
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE, process=False).status_code == 200
    clock.advance(10 * settings.REGISTRY_RECONCILE_AFTER_SECONDS)  # a long wait in the queue
    hashed(fmt_of(model_id, number))
    assert tasks.formats_reconcile.apply().get() == 0
    clock.advance(settings.REGISTRY_RECONCILE_AFTER_SECONDS + 1)
    assert tasks.formats_reconcile.apply().get() == 1  # the introspection never started


def test_a_replaced_file_is_hashed_at_once_although_the_old_files_run_held_the_row(
        clients, model_id, number, broker_records, monkeypatch):
    editor = clients["editor"]
    assert upload(editor, model_id, number, "pkl", PICKLE, process=False).status_code == 200
    old = fmt_of(model_id, number)
    replaced = []

    def replaced_while_hashing(n):
        if not replaced:
            replaced.append(upload(editor, model_id, number, "pkl", BODY, process=False).status_code)

    slow_reads(monkeypatch, replaced_while_hashing)
    assert processing.format_hash(format_id=old.pk, storage_key=old.storage_key) is None  # stale: gave up
    new = fmt_of(model_id, number)
    assert replaced == [200] and new.storage_key != old.storage_key and new.status == FormatStatus.UPLOADED
    assert processing.format_hash(format_id=new.pk, storage_key=new.storage_key).status == FormatStatus.INTROSPECTING


@pytest.mark.parametrize("lease", ["none", "long_gone", "left_by_the_replaced_file"])
def test_an_uploaded_file_is_queued_again_after_the_delay_whatever_lease_its_row_carries(
        clients, model_id, number, clock, broker_records, settings, lease):
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE, process=False).status_code == 200
    fmt = fmt_of(model_id, number)
    held_until = {"none": None, "long_gone": clock.now - timedelta(days=1),
                  "left_by_the_replaced_file": clock.now + timedelta(seconds=settings.REGISTRY_TASK_TIME_LIMIT)}[lease]
    Format.objects.filter(pk=fmt.pk).update(processing_lease_until=held_until)
    after = settings.REGISTRY_RECONCILE_AFTER_SECONDS

    clock.advance(after - 1)
    assert tasks.formats_reconcile.apply().get() == 0  # its own hash may still be in the queue
    clock.advance(2)
    assert tasks.formats_reconcile.apply().get() == 1
    assert tasks.formats_reconcile.apply().get() == 0
    clock.advance(after + 1)
    assert tasks.formats_reconcile.apply().get() == 1  # the broker lost it again
    assert broker_records == [("registry.tasks.format_hash", [str(fmt.pk), fmt.storage_key])] * 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent connections need PostgreSQL")
def test_on_postgresql_a_second_worker_neither_hashes_nor_requeues_a_file_being_hashed(
        users, model, version, monkeypatch, settings):
    from registry import services
    from registry.celery import app

    settings.REGISTRY_RECONCILE_AFTER_SECONDS = 0
    app.conf.task_always_eager = False
    sent = []
    monkeypatch.setattr("registry.queue.ensure_broker_folders", lambda: None, raising=False)
    monkeypatch.setattr(app, "send_task", lambda name, args=None, **kw: sent.append((name, args)))
    fmt = services.format_upload(actor=users["editor"], version=version, kind="other", stream=io.BytesIO(BODY),
                                 content_length=len(BODY))  # queued, not run: the broker only records it
    assert fmt.status == FormatStatus.UPLOADED
    sent.clear()
    reading, go_on = threading.Event(), threading.Event()
    results = []

    def first_worker():
        try:
            results.append(processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key))
        finally:
            connection.close()

    def during_read(n):
        if threading.current_thread() is not threading.main_thread() and n == 2:
            reading.set()
            assert go_on.wait(20)

    slow_reads(monkeypatch, during_read)
    worker = threading.Thread(target=first_worker)
    worker.start()
    try:
        assert reading.wait(20)
        assert processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key) is None
        assert tasks.formats_reconcile.apply().get() == 0
        assert sent == []
    finally:
        go_on.set()
        worker.join(20)
    assert [f.status for f in results] == [FormatStatus.INTROSPECTING]


def test_a_file_whose_introspection_is_killed_every_time_ends_failed(
        clients, model_id, number, clock, broker_records, monkeypatch, settings):
    """A file that makes its worker hit the hard time limit each time is not queued for ever."""
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE, process=False).status_code == 200
    fmt = hashed(fmt_of(model_id, number))

    def killed(kind, handle, size):
        raise Killed()

    monkeypatch.setattr(dispatch, "_inspect", killed)
    settings.REGISTRY_MAX_PROCESSING_ATTEMPTS = 3
    pause = timedelta(seconds=settings.REGISTRY_TASK_TIME_LIMIT + settings.REGISTRY_RECONCILE_AFTER_SECONDS + 1)
    for attempt in range(1, 4):
        with pytest.raises(Killed):
            tasks.format_introspect.apply(args=[str(fmt.pk), fmt.storage_key])
        # A killed process cleans nothing up: the row stays held until the time limit.
        Format.objects.filter(pk=fmt.pk).update(
            status=FormatStatus.INTROSPECTING,
            processing_lease_until=clock.now + timedelta(seconds=settings.REGISTRY_TASK_TIME_LIMIT))
        clock.now += pause
        queued = tasks.formats_reconcile.apply().get()
        if attempt < 3:
            assert queued == 1 and Format.objects.get(pk=fmt.pk).status == FormatStatus.INTROSPECTING
    fmt.refresh_from_db()
    assert queued == 0
    assert fmt.status == FormatStatus.FAILED and "started 3 times and never finished" in fmt.status_message
    assert events(fmt, "format.failed")
    clock.now += pause
    assert tasks.formats_reconcile.apply().get() == 0


def test_a_file_no_task_ever_started_is_queued_again_however_long_the_broker_is_down(
        clients, model_id, number, clock, broker_records, settings):
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE, process=False).status_code == 200
    settings.REGISTRY_MAX_PROCESSING_ATTEMPTS = 3
    for _ in range(6):
        clock.advance(settings.REGISTRY_RECONCILE_AFTER_SECONDS + 1)
        assert tasks.formats_reconcile.apply().get() == 1
    fmt = fmt_of(model_id, number)
    assert fmt.status == FormatStatus.UPLOADED and fmt.processing_attempts == 0


def test_a_new_upload_starts_the_count_again(clients, model_id, number):
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE, process=False).status_code == 200
    Format.objects.filter(pk=fmt_of(model_id, number).pk).update(processing_attempts=2)
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE, process=False).status_code == 200
    assert fmt_of(model_id, number).processing_attempts == 0
