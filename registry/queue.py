"""Sending work to the Celery workers. Called from `transaction.on_commit` by the services.

Tasks are sent by name so the services never import the task module. A broker that is
down must not fail the request that caused the work: the format simply stays in its
pre-ready state, and the periodic reconciler sends it again later.
"""

from __future__ import annotations

import logging

from registry.celery import app, ensure_broker_folders

logger = logging.getLogger(__name__)


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


def format_processing(format_id, storage_key: str) -> bool:
    """Queue hashing (which then queues introspection) of a format's stored file."""
    return send("registry.tasks.format_hash", str(format_id), storage_key)
