"""Sending work to the Celery workers. Called from `transaction.on_commit` by the services.

Tasks are sent by name so the services never import the task module. A broker that is
down must not fail the request that caused the work: the format simply stays in its
pre-ready state, and the periodic reconciler sends it again later.
"""

from __future__ import annotations

import logging

from registry.celery import app, ensure_broker_folders
from registry.models import FormatStatus

logger = logging.getLogger(__name__)

# The processing pipeline: for each status a format waits in, the task that takes it one step
# further. Hashing takes an uploaded file (or one whose hashing was let go), introspection a
# hashed one; every other status is final (services/processing.py says how each step ends).
PIPELINE = {
    FormatStatus.UPLOADED: "registry.tasks.format_hash",
    FormatStatus.HASHING: "registry.tasks.format_hash",
    FormatStatus.INTROSPECTING: "registry.tasks.format_introspect",
}


def send(task_name: str, *args) -> bool:
    try:
        if app.conf.task_always_eager:  # tests and single-process runs: run it here and now
            app.tasks[task_name].apply(args=list(args), throw=True)
        else:
            ensure_broker_folders()
            app.send_task(task_name, args=list(args), retry=False)
    except Exception:  # broker unreachable: the reconciler re-queues
        logger.warning("could not queue %s%r; the reconciler will retry", task_name, args, exc_info=True)
        return False
    return True


def format_next_step(format_id, storage_key: str, status: str) -> bool:
    """Queue the task that takes a format in `status` one step further (PIPELINE): the one place
    that decides it, for the upload, the task chain (registry/tasks.py) and the reconciler
    (services.processing.formats_reconcile). False for a final status, or when the broker
    refused the task (the reconciler sends it again later)."""
    task = PIPELINE.get(status)
    return task is not None and send(task, str(format_id), storage_key)


def format_processing(format_id, storage_key: str) -> bool:
    """Queue the processing of a file just stored: its first step, hashing (which then queues
    introspection)."""
    return format_next_step(format_id, storage_key, FormatStatus.UPLOADED)
