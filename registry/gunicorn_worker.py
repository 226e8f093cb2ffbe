"""The web process's gunicorn worker: gevent, with every client socket on an idle timeout.

A connection costs a greenlet, not a thread, so clients that send a request body slowly, or
stop sending it, cannot take the threads other requests need (with gthread, 16 stalled
uploads left /healthz unanswered). A client that sends or reads nothing for
REGISTRY_WEB_IDLE_TIMEOUT seconds, while its request is read or its answer written, is cut off.
"""

from __future__ import annotations

import logging

import psycopg.waiting
from gevent.socket import wait_read, wait_readwrite, wait_write
from gunicorn.workers.base_async import AsyncWorker
from gunicorn.workers.ggevent import GeventWorker
from psycopg.waiting import Ready, Wait


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


_psycopg_wait = psycopg.waiting.wait  # psycopg's own choice: wait_poll under gevent's patching


def wait_for_database(gen, fileno, interval=None, timeout=None):
    """psycopg's wait function in the web process (installed by registry.gunicorn_conf): the
    greenlet waits for its connection's socket on gevent's hub directly, while the others run.

    psycopg's choice once gevent has patched `select`, wait_poll, builds a gevent poll object,
    a watcher and a timer for every wait (its 0.1 s interval only lets a Ctrl-C through, which
    the hub delivers anyway): 10 us of CPU more than this for each statement. A wait with a
    deadline (psycopg uses one when it cancels a query) is left to psycopg's own function."""
    if timeout is not None:
        return _psycopg_wait(gen, fileno, interval=interval, timeout=timeout)
    try:
        state = next(gen)
        while True:
            if state == Wait.R:
                wait_read(fileno)
                ready = Ready.R
            elif state == Wait.W:
                wait_write(fileno)
                ready = Ready.W
            else:  # either will do: libpq reads and writes without blocking, and asks again
                wait_readwrite(fileno)
                ready = Ready.RW
            state = gen.send(ready)
    except StopIteration as done:
        return done.value
