"""Idioms written once: the row lock the services take, and the processing pipeline's next step,
which the upload, the task chain and the reconciler all ask of registry.queue."""

from __future__ import annotations

import pathlib
import re
from datetime import timedelta

import pytest

from registry import queue, tasks
from registry.models import FormatStatus
from registry.services import processing
from tests.helpers import upload
from tests.registry.test_processing import broker_records, fmt_of, model_id, number  # noqa: F401 (fixtures)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_rows_are_locked_through_one_helper():
    """`select_for_update(of=("self",), no_key=True)` lives in services.common.lock_for_update only."""
    found = [
        str(path.relative_to(ROOT))
        for folder in ("registry", "dashboard")
        for path in (ROOT / folder).rglob("*.py")
        if "select_for_update(" in path.read_text() and path != ROOT / "registry/services/common.py"
    ]
    assert found == []


@pytest.mark.parametrize("status", list(FormatStatus))
def test_the_next_step_of_each_status(status, broker_records):  # noqa: F811
    expected = {
        FormatStatus.UPLOADED: "registry.tasks.format_hash",
        FormatStatus.HASHING: "registry.tasks.format_hash",  # hashing let go: hash again
        FormatStatus.INTROSPECTING: "registry.tasks.format_introspect",
    }.get(status)

    queued = queue.format_next_step("f1", "key-1", status)

    assert queued is (expected is not None)
    assert broker_records == ([(expected, ["f1", "key-1"])] if expected else [])


@pytest.mark.django_db
def test_the_task_chain_and_the_reconciler_follow_the_same_pipeline(clients, model_id, number,  # noqa: F811
                                                                   broker_records, monkeypatch):
    """Change the pipeline in one place and both follow: after hashing, and for a stuck file."""
    monkeypatch.setitem(queue.PIPELINE, FormatStatus.INTROSPECTING, "elsewhere.read_it")
    assert upload(clients["editor"], model_id, number).status_code == 200
    fmt = fmt_of(model_id, number, "pkl")
    assert broker_records == [("registry.tasks.format_hash", [str(fmt.pk), fmt.storage_key])]

    assert tasks.format_hash.apply(args=[str(fmt.pk), fmt.storage_key]).get() == FormatStatus.INTROSPECTING
    assert broker_records[-1] == ("elsewhere.read_it", [str(fmt.pk), fmt.storage_key])

    assert processing.formats_reconcile(older_than=timedelta(seconds=-3600)) == 1
    assert broker_records[-1] == ("elsewhere.read_it", [str(fmt.pk), fmt.storage_key])


def test_status_values_are_named_not_spelt():
    """Statuses are FormatStatus / VersionStatus members in code, never a string literal compared
    or filtered on (the templates compare the column's value, which they render)."""
    words = "|".join(status.value for status in FormatStatus) + "|draft|published"
    compared = re.compile(rf"""(==|!=|\bin\b|status=|status__in=)\s*[\[({{]?\s*["']({words})["']""")
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for folder in ("registry", "dashboard")
        for path in (ROOT / folder).rglob("*.py")
        if "migrations" not in path.parts
        for match in compared.finditer(path.read_text())
    ]
    assert found == []
