"""The web process's gunicorn worker: gevent, with every client socket on an idle timeout.

A connection costs a greenlet, not a thread, so clients that send a request body slowly, or
stop sending it, cannot take the threads other requests need (with gthread, 16 stalled
uploads left /healthz unanswered). A client that sends or reads nothing for
REGISTRY_WEB_IDLE_TIMEOUT seconds, while its request is read or its answer written, is cut off.
"""

from __future__ import annotations

import logging

from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker


class RegistryWorker(GeventWorker):
    idle_timeout: float = 30.0  # set from the configuration by registry.gunicorn_conf

    def handle(self, listener, client, addr):
        # Every blocking read and write on this socket now gives up after the idle time: a
        # stalled request line, headers or body, or a client that stopped reading a download.
        # Between requests on a kept-alive connection, gunicorn's shorter keepalive applies.
        # (GeventWorker.handle would make the socket blocking again, without a timeout.)
        client.settimeout(self.idle_timeout)
        AsyncWorker.handle(self, listener, client, addr)


class IdleClientFilter(logging.Filter):
    """gunicorn logs a client cut off for idleness as a socket error with a traceback: one
    warning line instead (the request, if one was being read, is logged by the application)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, TimeoutError):
            record.msg, record.args = "client idle for %ss: connection closed", (RegistryWorker.idle_timeout,)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True
