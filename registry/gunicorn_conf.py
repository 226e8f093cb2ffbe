"""gunicorn settings for the web process: `gunicorn -c python:registry.gunicorn_conf registry.wsgi`.

Every value comes from the environment, so docker-compose and a bare host use the same file.
gevent workers (registry/gunicorn_worker.py): a request spends its time streaming a file to or
from storage or waiting on a slow client, not on the CPU, and a waiting connection costs a
greenlet instead of one of a few threads, so slow or stalled clients cannot starve the others.
"""

# The application is imported in the master (preload_app, below) before the workers fork:
# the standard library must be cooperative before anything imports it, and psycopg picks its
# gevent-friendly wait functions only if the socket module is patched when it is imported.
from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402 - after the patching, as every import
import os  # noqa: E402

# Each greenlet would otherwise open (and drop) its own database connection per request:
# the web process shares a pool of them instead (registry/settings.py, DATABASE_POOL_SIZE).
os.environ.setdefault("DATABASE_POOL_SIZE", "10")

import psycopg.waiting  # noqa: E402

from registry.gunicorn_worker import RegistryWorker, wait_for_database  # noqa: E402
from registry.settings import LOGGING, REGISTRY_LOG_FORMAT  # noqa: E402

# Every statement's wait for PostgreSQL's answer yields to the other greenlets, by the cheapest
# way gevent has (registry/gunicorn_worker.py).
psycopg.waiting.wait = wait_for_database

bind = os.environ.get("REGISTRY_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "registry.gunicorn_worker.RegistryWorker"
# Connections one process serves at once (each a greenlet); more wait in the listen backlog.
worker_connections = int(os.environ.get("REGISTRY_WEB_CONNECTIONS", "1000"))
# A client that sends (or reads) nothing for this long is disconnected.
RegistryWorker.idle_timeout = float(os.environ.get("REGISTRY_WEB_IDLE_TIMEOUT", "30"))
# Uploads and downloads of gigabyte files stream for minutes; this only restarts a worker
# whose event loop has been stuck (busy on the CPU) for that long.
timeout = int(os.environ.get("REGISTRY_WEB_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# The application is imported once, in the master, before the workers fork: a recycled or
# crashed worker is replaced by a fork that answers at once, instead of a process that spends
# seconds importing Django, the API and every view while its peer may be restarting too.
preload_app = True


def pre_fork(server, worker):
    """What the master imported lives as long as the worker: frozen before each fork, the
    cycle collector never walks it again. Otherwise each of a worker's full collections walks
    those 180,000 objects (122 ms, every 2,000 or so requests) and writes to every page of
    them it shares with the master (Python's documentation of gc.freeze() gives this use)."""
    gc.freeze()


# Recycle processes now and then so a slow leak never grows without bound (0: never); the
# jitter spreads the workers' turns apart.
max_requests = int(os.environ.get("REGISTRY_WEB_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 4
# gunicorn's control socket (gunicornc) is one path per user: several servers on a host (or
# the tests) would take it from each other. Signals do what it would.
control_socket_disable = True
# The proxy in front (or docker's network) is the only client; it sets X-Forwarded-*.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
accesslog = "-"
errorlog = "-"
logconfig_dict = {
    **LOGGING,
    "filters": {**LOGGING.get("filters", {}), "idle_client": {"()": "registry.gunicorn_worker.IdleClientFilter"}},
    "loggers": {
        **LOGGING["loggers"],
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False, "filters": ["idle_client"]},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}
if REGISTRY_LOG_FORMAT == "json":
    access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms'
