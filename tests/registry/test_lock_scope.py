"""A write that locks one model or version does not stall the rest of its context.

Services lock the row they serialise on (FOR NO KEY UPDATE OF that row only). Before, a lock
taken with select_related also locked the joined context row, and every insert in the
context (a model, an audit event) waited for it. Here a service is held inside its
transaction, lock taken, while another connection writes in the same context under a
short lock_timeout.
"""

import threading

import pytest
from django.db import connection, connections, transaction

from registry import services
from registry.models import AliasMove
from registry.services import aliases as alias_services
from registry.services import formats as format_services

from tests.helpers import store_file

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's"),
]


def _hold_inside(monkeypatch, module, function_name, start):
    """Make `module.function_name` (called by a service after it took its lock) wait until
    released; returns (locked event, release event)."""
    locked, release = threading.Event(), threading.Event()
    original = getattr(module, function_name)

    def held(*args, **kwargs):
        result = original(*args, **kwargs)
        locked.set()
        assert release.wait(30), "never released"
        return result

    monkeypatch.setattr(module, function_name, held)
    errors = []

    def run():
        try:
            start()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    assert locked.wait(30), errors
    return thread, release, errors


def _write_elsewhere_in_context(context, users):
    """Model create (an insert referencing the context, plus its audit event) under a 2 s lock timeout."""
    def work():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            return services.model_create(actor=users["editor"], context=context, name="unrelated")

    outcome, thread = _in_thread(work, "model")
    thread.join(30)
    return outcome


def _in_thread(work, key):
    """Start `work()` in a thread of its own (its own connection); ({key: result} or
    {"error": exception}, the thread)."""
    outcome = {}

    def run():
        try:
            outcome[key] = work()
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return outcome, thread


def _write_while_held(monkeypatch, module, function_name, start, context, users):
    """Hold a service inside its lock (see _hold_inside) while writing elsewhere in the
    context; (the writer's outcome, the held service's errors)."""
    thread, release, errors = _hold_inside(monkeypatch, module, function_name, start)
    try:
        return _write_elsewhere_in_context(context, users), errors
    finally:
        release.set()
        thread.join(30)


def _published(model, users, number_of_versions=2):
    for _ in range(number_of_versions):
        version = services.version_create(actor=users["editor"], model=model)
        store_file(version)
        services.version_publish(actor=users["publisher"], version=version)


def test_an_alias_move_in_progress_does_not_block_the_context(monkeypatch, context, users):
    model = services.model_create(actor=users["editor"], context=context, name="m")
    _published(model, users)
    outcome, errors = _write_while_held(
        monkeypatch, alias_services, "_published",
        lambda: services.alias_set(actor=users["publisher"], model=model, name="production", version_number=2),
        context, users,
    )
    assert "error" not in outcome, outcome.get("error")
    assert outcome["model"].name == "unrelated"
    assert not errors
    assert model.aliases.get(name="production").version.number == 2


def test_a_format_being_added_does_not_block_the_context(monkeypatch, context, users):
    model = services.model_create(actor=users["editor"], context=context, name="m")
    version = services.version_create(actor=users["editor"], model=model)
    outcome, errors = _write_while_held(
        monkeypatch, format_services, "lock_draft_version",
        lambda: services.format_create(actor=users["editor"], version=version, kind="onnx"),
        context, users,
    )
    assert "error" not in outcome, outcome.get("error")
    assert not errors


def test_a_move_that_waited_for_the_lock_sees_the_alias_the_other_made(monkeypatch, context, users):
    """Two first settings of one alias at once: the second waits for the model's lock, then
    reads the alias the first created (a read taken before the wait would miss it and insert it
    again: 500 on the unique constraint)."""
    model = services.model_create(actor=users["editor"], context=context, name="m")
    _published(model, users)
    thread, release, errors = _hold_inside(
        monkeypatch, alias_services, "_published",
        lambda: services.alias_set(actor=users["publisher"], model=model, name="production", version_number=1),
    )
    monkeypatch.undo()  # the second move runs unheld
    second, waiting = _in_thread(lambda: services.alias_set(
        actor=users["publisher"], model=model, name="production", version_number=2), "alias")
    waiting.join(1)
    assert waiting.is_alive()  # waiting for the model's lock
    release.set()
    thread.join(30)
    waiting.join(30)
    assert not errors and "error" not in second, (errors, second.get("error"))
    assert model.aliases.get(name="production").version.number == 2
    assert list(AliasMove.objects.filter(model=model).order_by("id").values_list("from_number", "to_number")) == [
        (None, 1), (1, 2)]
