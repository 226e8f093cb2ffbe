"""Two web processes (gunicorn) and two Celery workers against one PostgreSQL, Redis and bucket.

Requests race each other through both web processes; the rules must hold as they do in one
process: version numbers unique and never reused, the version and format limits, one winner
when two publish at once, the publish gate waiting for the workers' verdict, and every file
readable from every process. Needs PostgreSQL and Redis (a failure under CI=true, never a skip)
and starts its own S3 server (moto).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from celery import Celery
from django.db import connection

from registry import services
from registry.models import Format, FormatStatus, Version

from tests.conftest import S3_CREDENTIALS, _free_port, s3_client, token_for
from tests.factories import UserFactory
from tests.helpers import PICKLE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
QUEUE = f"registry-scale-{os.getpid()}"
MAX_VERSIONS = 4
FINAL = {FormatStatus.READY, FormatStatus.FAILED, FormatStatus.QUARANTINED, FormatStatus.CORRUPT}


class Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/registry-scale-out-pwned",))


def _require_services():
    ci = os.environ.get("CI") == "true"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if ci:
            pytest.fail(f"Redis is required under CI: {exc}")
        pytest.skip(f"Redis not running: {exc}")
    if connection.vendor != "postgresql":
        if ci:
            pytest.fail("the scale-out test needs PostgreSQL under CI")
        pytest.skip("processes cannot share the SQLite in-memory test database")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def cluster(tmp_path, s3_endpoint, s3_bucket):
    """Two gunicorn processes and two workers sharing the test database, Redis and a bucket."""
    _require_services()
    control = Celery("registry-scale-control", broker=REDIS_URL)
    with control.connection_for_write() as conn:
        conn.default_channel.client.delete(QUEUE)
    db = connection.settings_dict
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "AWS_"))},
        "DJANGO_SETTINGS_MODULE": "registry.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": REDIS_URL,
        "REGISTRY_CELERY_QUEUE": QUEUE,
        "REGISTRY_DATA_DIR": str(tmp_path / "var"),
        "REGISTRY_S3_BUCKET": s3_bucket,
        "AWS_S3_ENDPOINT_URL": s3_endpoint,
        "REGISTRY_S3_REGION": "us-east-1",
        **S3_CREDENTIALS,
        "REGISTRY_MAX_VERSIONS": str(MAX_VERSIONS),
        "DEBUG": "false",
        "SECRET_KEY": "scale-out-test-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "REGISTRY_SECURE_COOKIES": "false",
        "REGISTRY_LOG_FORMAT": "text",
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    processes, logs, webs, workers = [], [], [], []
    try:
        for index in range(2):
            port = _free_port()
            log = open(tmp_path / f"web{index}.log", "w")
            logs.append(log)
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "python:registry.gunicorn_conf", "registry.wsgi"],
                cwd=ROOT, env={**env, "REGISTRY_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"},
                stdout=log, stderr=subprocess.STDOUT,
            ))
            webs.append(f"http://127.0.0.1:{port}")
        for index in range(2):
            hostname = f"scale{index}-{os.getpid()}@localhost"
            log = open(tmp_path / f"worker{index}.log", "w")
            logs.append(log)
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "registry", "worker", "--concurrency", "1", "--loglevel", "INFO",
                 "--hostname", hostname, "--without-mingle", "--without-gossip"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            ))
            workers.append(hostname)

        def logs_text():
            return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp_path.glob("*.log")))

        deadline = time.monotonic() + 90
        for url in webs:
            while True:
                assert all(p.poll() is None for p in processes), logs_text()
                assert time.monotonic() < deadline, "the web processes did not become ready\n" + logs_text()
                try:
                    if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
        while len(control.control.ping(destination=workers, timeout=1)) < 2:
            assert all(p.poll() is None for p in processes), logs_text()
            assert time.monotonic() < deadline, "the workers did not start\n" + logs_text()
        yield {"webs": webs, "workers": workers, "logs": tmp_path, "logs_text": logs_text,
               "bucket": s3_bucket, "endpoint": s3_endpoint}
    finally:
        for process in processes:
            _stop(process)
        for log in logs:
            log.close()
        control.close()


def wait_final(format_ids, timeout=90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = dict(Format.objects.filter(pk__in=format_ids).values_list("pk", "status"))
        if len(rows) == len(format_ids) and all(status in FINAL for status in rows.values()):
            return {str(k): v for k, v in rows.items()}
        time.sleep(0.3)
    raise AssertionError(f"formats still in progress: {rows}")


def test_two_web_processes_and_two_workers_keep_every_rule(cluster):
    web_a, web_b = cluster["webs"]
    context = services.context_create(actor=None, slug="scale")
    people = {}
    for role in ("editor", "publisher", "admin"):
        user = UserFactory(username=f"scale-{role}")
        services.membership_set(actor=None, context=context, role=role, username=user.username)
        people[role] = {"Authorization": f"Bearer {token_for(user)}"}
    model = services.model_create(actor=None, context=context, name="scaled")
    api = f"/api/v1/models/{model.pk}"

    def call(method, base, path, headers, **kwargs):
        with httpx.Client(base_url=base, timeout=60) as client:
            return client.request(method, path, headers=headers, **kwargs)

    def both(requests):
        """Send every request at once, alternating between the two web processes."""
        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            futures = [pool.submit(call, method, (web_a, web_b)[i % 2], path, headers, **kwargs)
                       for i, (method, path, headers, kwargs) in enumerate(requests)]
            return [future.result() for future in futures]

    # 1. Version numbers and the version limit, ten creates racing over two processes.
    responses = both([("POST", f"{api}/versions/", people["editor"], {"json": {}})] * 10)
    created = [r for r in responses if r.status_code == 201]
    assert len(created) == MAX_VERSIONS, [(r.status_code, r.text) for r in responses]
    assert all(r.status_code == 409 for r in responses if r.status_code != 201)
    assert sorted(r.json()["number"] for r in created) == list(range(1, MAX_VERSIONS + 1))
    # A deleted number is never given again, whichever process asks next.
    assert call("DELETE", web_b, f"{api}/versions/{MAX_VERSIONS}/", people["admin"]).status_code == 204
    again = call("POST", web_a, f"{api}/versions/", people["editor"], json={})
    assert again.status_code == 201 and again.json()["number"] == MAX_VERSIONS + 1
    assert call("POST", web_b, f"{api}/versions/", people["editor"], json={}).status_code == 409

    # 2. The format limit: six kinds uploaded at once to version 2; three fit.
    octet = {"Content-Type": "application/octet-stream"}
    kinds = ["pkl", "joblib", "other", "onnx", "pmml", "safetensors"]
    responses = both([("PUT", f"{api}/versions/2/formats/{kind}/file", {**people["editor"], **octet},
                       {"content": PICKLE}) for kind in kinds])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 409, 409, 409], [(r.status_code, r.text) for r in responses]
    version2 = Version.objects.get(model=model, number=2)
    assert version2.formats.count() == 3
    # Only the three accepted files are in the bucket: the refused uploads left nothing.
    listing = s3_client(cluster["endpoint"]).list_objects_v2(Bucket=cluster["bucket"]).get("Contents", [])
    assert sorted(o["Key"] for o in listing) == sorted(version2.formats.values_list("storage_key", flat=True))

    # 3. Uploads through both processes, processed by both workers, downloadable from either.
    bodies = {n: pickle.dumps({"version": n, "weights": list(range(n * 1000))}) for n in (1, 3)}
    bodies[5] = os.urandom(3 * 1024 * 1024)
    uploads = [(1, "pkl", bodies[1]), (3, "pkl", bodies[3]), (5, "other", bodies[5]),
               (1, "other", os.urandom(9 * 1024 * 1024)),  # a multipart upload
               (3, "joblib", pickle.dumps(Payload()))]
    responses = both([("PUT", f"{api}/versions/{n}/formats/{kind}/file",
                       {**people["editor"], **octet, "X-Checksum-Sha256": hashlib.sha256(body).hexdigest()},
                       {"content": body}) for n, kind, body in uploads])
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    ids = [r.json()["id"] for r in responses] + [str(pk) for pk in version2.formats.values_list("pk", flat=True)]
    final = wait_final(ids)
    by_upload = dict(zip([(n, kind) for n, kind, _ in uploads], [final[r.json()["id"]] for r in responses]))
    assert by_upload == {(1, "pkl"): FormatStatus.READY, (3, "pkl"): FormatStatus.READY,
                         (5, "other"): FormatStatus.READY, (1, "other"): FormatStatus.READY,
                         (3, "joblib"): FormatStatus.QUARANTINED}
    assert not os.path.exists("/tmp/registry-scale-out-pwned")
    for n, kind, body in uploads[:4]:
        for base in (web_a, web_b):
            r = call("GET", base, f"{api}/versions/{n}/formats/{kind}/file", people["editor"])
            assert r.status_code == 200 and r.content == body
            assert r.headers["ETag"] == f'"{hashlib.sha256(body).hexdigest()}"'
        r = call("GET", web_b, f"{api}/versions/{n}/formats/{kind}/file", {**people["editor"], "Range": "bytes=3-10"})
        assert r.status_code == 206 and r.content == body[3:11]
    # Each worker took part (tasks are spread over the queue's consumers).
    worker_logs = [(cluster["logs"] / f"worker{i}.log").read_text() for i in range(2)]
    assert all("succeeded" in text for text in worker_logs), cluster["logs_text"]()

    # 4. The publish gate holds across processes: a quarantined file blocks version 3.
    for base in (web_a, web_b):
        r = call("POST", base, f"{api}/versions/3/publish/", people["publisher"])
        assert r.status_code == 409 and "quarantined" in r.json()["detail"]
    assert call("DELETE", web_a, f"{api}/versions/3/formats/joblib/", people["editor"]).status_code == 204

    # 5. Two publishers at once on two processes: exactly one publishes, the other is told.
    for number in (1, 3):
        responses = both([("POST", f"{api}/versions/{number}/publish/", people["publisher"], {})] * 4)
        assert sorted(r.status_code for r in responses) == [200, 409, 409, 409], [r.text for r in responses]
    assert Version.objects.filter(model=model, status="published").count() == 2
    # A published version is frozen for every process.
    responses = both([("PUT", f"{api}/versions/1/formats/pkl/file", {**people["editor"], **octet}, {"content": b"x"}),
                      ("PATCH", f"{api}/versions/1/", people["editor"], {"json": {"description": "changed"}})])
    assert [r.status_code for r in responses] == [409, 409]

    # 6. Aliases moved from both processes end on one version, with every move in the history.
    responses = both([("PUT", f"{api}/aliases/production/", people["publisher"], {"json": {"version": n}})
                      for n in (1, 3, 1, 3)])
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    alias = call("GET", web_a, f"{api}/aliases/production/", people["editor"]).json()
    moves = list(reversed(alias["history"]))  # oldest first; a move to where it already points is none
    assert 1 <= len(moves) <= 4 and moves[0]["from_version"] is None
    assert all(later["from_version"] == earlier["to_version"] for earlier, later in zip(moves, moves[1:]))
    assert moves[-1]["to_version"] == alias["version"]

    # Nothing in the bucket that no format points to, and no unfinished multipart upload.
    client = s3_client(cluster["endpoint"])
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=cluster["bucket"]).get("Contents", [])}
    assert keys == set(Format.objects.exclude(storage_key="").values_list("storage_key", flat=True))
    assert not client.list_multipart_uploads(Bucket=cluster["bucket"]).get("Uploads")
