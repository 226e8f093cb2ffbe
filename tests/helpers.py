"""Small helpers shared by the API tests."""

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from django.db import connection
from django.test import TestCase

# A real, benign pickle (the integer 1): hashing and introspection take it to `ready`.
PICKLE = b"\x80\x04K\x01."

ROOT = Path(__file__).resolve().parents[1]


def require_postgresql(what: str) -> None:
    """Skip a test of `what` (PostgreSQL's alone) on SQLite; under CI=true, which runs on
    PostgreSQL, fail instead."""
    if connection.vendor != "postgresql":
        if os.environ.get("CI") == "true":
            pytest.fail(f"{what}: PostgreSQL's alone, and CI runs on it")
        pytest.skip("needs PostgreSQL (DATABASE_URL)")


def postgres_url() -> str:
    """The test database's URL, for a connection or a process of its own."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def upload(client, model_id, number, kind="pkl", body: bytes = PICKLE, *, process: bool = True, **headers):
    """PUT a file; with `process`, the work queued on commit (hashing, introspection) runs
    before this returns, as a worker would have done, so the format reaches its final state."""
    with TestCase.captureOnCommitCallbacks(execute=process):
        return client.generic(
            "PUT", f"/api/v1/models/{model_id}/versions/{number}/formats/{kind}/file?filename=model.{kind}",
            data=body, content_type="application/octet-stream", **headers,
        )


def store_file(version, kind="pkl", body: bytes = PICKLE, *, actor=None):
    """Upload through the service and run the queued processing, as a worker would."""
    import io

    from registry import services

    with TestCase.captureOnCommitCallbacks(execute=True):
        fmt = services.format_upload(actor=actor, version=version, kind=kind, stream=io.BytesIO(body),
                                     content_length=len(body))
    fmt.refresh_from_db()
    return fmt


def file_url(version, kind="pkl") -> str:
    return f"/api/v1/models/{version.model_id}/versions/{version.number}/formats/{kind}/file"


@contextmanager
def gunicorn_process(env: dict, log_path, *, probe: str = "/healthz"):
    """The shipped gunicorn setup (registry.gunicorn_conf) in a subprocess with `env`; yields its
    URL once `probe` answers 200, and stops it (terminate, then kill) on the way out."""
    port = int(env["REGISTRY_BIND"].rsplit(":", 1)[1])
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:registry.gunicorn_conf", "registry.wsgi"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, Path(log_path).read_text()
            assert time.monotonic() < deadline, "gunicorn did not start\n" + Path(log_path).read_text()
            try:
                if httpx.get(f"{url}{probe}", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
