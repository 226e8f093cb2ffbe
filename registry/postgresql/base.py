"""Django's PostgreSQL backend, with the pool handing out a connection without a round trip.

The web process borrows a pooled connection for every request (registry/settings.py). Django's
pool checks each connection it hands out with psycopg_pool's check, a query to the server: one
more round trip on every request, often the costliest part of a small one. A connection the
server ended (a restart, a failover, pg_terminate_backend, an idle timeout) is told apart
without one: the server sends its error and closes the socket, so the socket has something to
read, while an idle connection that is alive has nothing. Only then does the round trip run,
and a dead connection is replaced before any request sees it. (pgx's pool checks connections
the same way.)
"""

from __future__ import annotations

import select

import psycopg
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base
from gevent.monkey import get_original
from psycopg_pool import ConnectionPool

# The operating system's poll, also in the web process where gevent has replaced select.poll:
# with a timeout of 0 it never blocks, and gevent's builds watchers and a timer for it (15 us
# on every request).
_poll = get_original("select", "poll")


def check_connection(conn: psycopg.Connection) -> None:
    """Raise if `conn` must not be handed out: closed, broken, or holding bytes the server sent
    while it sat in the pool (then psycopg_pool's check, a round trip, decides)."""
    if conn.closed or conn.pgconn.status != psycopg.pq.ConnStatus.OK:
        raise psycopg.OperationalError("the pooled connection is closed")
    poller = _poll()  # (poll, not select: a descriptor may be above FD_SETSIZE)
    poller.register(conn.fileno(), select.POLLIN)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        if self.alias in self._connection_pools:  # (read before every statement: kept cheap)
            return self._connection_pools[self.alias]
        options = self.settings_dict["OPTIONS"].get("pool")
        if options and self.alias != NO_DB_ALIAS and self.settings_dict.get("CONN_MAX_AGE", 0) == 0:
            # Django's own construction of the pool, with the check above.
            pool = ConnectionPool(
                kwargs={**self.get_connection_params(), "autocommit": True},
                open=False,
                configure=self._configure_connection,
                check=check_connection if self.settings_dict["CONN_HEALTH_CHECKS"] else None,
                **({} if options is True else options),
            )
            self._connection_pools.setdefault(self.alias, pool)
        return super().pool
