"""Liveness and readiness probes for load balancers, docker-compose and Kubernetes.

`/healthz` says the process serves requests; it touches nothing else, so a database outage
never makes an orchestrator restart every web process. `/readyz` says this process can do
its work: the database, the Celery broker and the file storage all answer.

The middleware runs first: probes come from orchestrators addressing a container by its IP
over plain http, so they must not meet ALLOWED_HOSTS, the https redirect or the session.
They reveal nothing but which dependency is down.
"""

from __future__ import annotations

import logging
import time

from django.db import connections
from django.http import JsonResponse

from registry.outage import describe, mark_logged

logger = logging.getLogger(__name__)

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
BROKER_TIMEOUT_SECONDS = 3


def check_database() -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker() -> None:
    from registry.celery import app, ensure_broker_folders

    ensure_broker_folders()
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
        conn.default_channel  # opens a channel: with Redis, a round trip to the server


def check_storage() -> None:
    from registry import storage

    storage.check_reachable()


READINESS_CHECKS = {"database": check_database, "broker": check_broker, "storage": check_storage}


def readiness() -> tuple[bool, dict[str, str]]:
    results, ready = {}, True
    for name, check in READINESS_CHECKS.items():
        started = time.monotonic()
        try:
            check()
        except Exception as exc:
            ready = False
            results[name] = f"unavailable ({type(exc).__name__})"
            # One line naming the cause: probes repeat every few seconds through an outage.
            logger.warning("readiness check %s failed: %s", name, describe(exc))
        else:
            results[name] = f"ok ({(time.monotonic() - started) * 1000:.0f} ms)"
    return ready, results


class HealthCheckMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info.rstrip("/") or "/"
        if path == LIVENESS_PATH:
            return self._respond(request, 200, {"status": "ok"})
        if path == READINESS_PATH:
            ready, checks = readiness()
            return self._respond(request, 200 if ready else 503,
                                 {"status": "ok" if ready else "unavailable", "checks": checks})
        return self.get_response(request)

    @staticmethod
    def _respond(request, status: int, body: dict):
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse({"detail": "Use GET."}, status=405)
            response["Allow"] = "GET, HEAD"
            return response
        response = JsonResponse(body, status=status)
        response["Cache-Control"] = "no-store"
        # (Answered above the middleware that would add it: without it, the body goes chunked.)
        response["Content-Length"] = str(len(response.content))
        return mark_logged(response) if status == 503 else response
