#!/usr/bin/env python
"""Benchmark the REST API the way production serves it: gunicorn on PostgreSQL.

It creates a fresh database and a temporary data directory, migrates, creates a context,
an admin user and a token with the operator commands (manage.py), starts gunicorn
(registry.wsgi) with DEBUG off, and then measures, with concurrent keep-alive clients,
each scenario for a fixed time (or a fixed number of requests):

  create-model      POST /api/v1/contexts/{ctx}/models/
  create-version    POST /api/v1/models/{id}/versions/          (a fresh model every 30 versions)
  search            GET  /api/v1/contexts/{ctx}/models/?search=  (100 hits among 2,000 models)
  get-model         GET  /api/v1/models/{id}/
  get-model-1       the same with a single client: unloaded latency (a 40 ms p50 would mean a
                    Nagle / delayed-ACK stall on the keep-alive connection)
  get-alias         GET  /api/v1/models/{id}/aliases/production/
  get-version       GET  /api/v1/models/{id}/versions/2/        (a published version with a file)
  get-manifest      GET  /api/v1/models/{id}/versions/2/manifest/?frozen=true  (what a client
                         loading a model asks for after resolving the alias)
  set-alias         PUT  /api/v1/models/{id}/aliases/production/  (moves between published
                         versions; each client its own model)
  set-alias-shared  the same, every client moving the alias of one model (row-lock contention)
  transfer          PUT and GET of one large file (…/formats/other/file), streamed on both
                    sides, with the gunicorn workers' peak RSS sampled during each transfer

Columns: req/s over the measured window (after a warm-up), latency percentiles in ms, errors
(unexpected status or body), then CPU accounting, because the load generator, PostgreSQL and
whatever else runs on the machine share its cores: "app ms/req" and "db ms/req" are the CPU
time of the gunicorn workers and of the database's backends per request, "cpu %" how busy the
whole machine was (100 = every core), "client %" this script's share, "other %" everything
else (not ~0: the figures are pessimistic), and "cpu-bound req/s" = CPUs / (app + db CPU per
request), the rate the server would sustain with every core to itself.

The server is configured as in production: gunicorn with registry/gunicorn_conf.py (gevent
workers, the database pool, access log), --workers 2 by default as shipped, DEBUG off,
collected static files, no Celery worker (uploads only enqueue their hashing).

The database is dropped and the data directory removed at the end unless --keep.
Run from anywhere with the project's virtualenv:  .venv/bin/python bench/api.py --help
Needs: PostgreSQL reachable at --pg (trust or password in the URL), and httpx + psutil
(the project's test extras).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import pickle
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent  # the project; --project-dir to bench another checkout
MiB = 1024 * 1024
SEARCH_TERM = "needle"  # appears in no other model's name, description or tags
ALIAS = "production"
VERSIONS_PER_MODEL = 30  # REGISTRY_MAX_VERSIONS default; create-version moves on at this count
ALIAS_VERSIONS = 3  # published versions per model the alias moves between
# A clean pickle (builtins only), so that introspection, where it runs, finds it publishable.
SMALL_PICKLE = pickle.dumps({"coef": [0.25 * i for i in range(200)], "intercept": 0.5, "classes": ["no", "yes"]})
SCENARIOS = [
    "create-model", "create-version", "search", "get-model", "get-model-1", "get-alias", "get-version",
    "get-manifest", "set-alias", "set-alias-shared", "transfer",
]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- server lifecycle ---------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


class Server:
    """A throw-away database + data dir, migrated and seeded, and gunicorn serving them."""

    def __init__(self, args):
        self.args = args
        self.root = Path(args.project_dir).resolve()
        self.db_name = args.db_name or f"registry_bench_{os.getpid()}"
        self.pg_admin_url = with_db(args.pg, "postgres")
        self.database_url = with_db(args.pg, self.db_name)
        self.data_dir = Path(tempfile.mkdtemp(prefix="registry-bench-"))
        self.port = args.port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.master: psutil.Process | None = None
        self._workers: dict[int, psutil.Process] = {}
        self.token = ""
        self.db_created = False
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "registry.settings",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(self.root), os.environ.get("PYTHONPATH")])),
            "DATABASE_URL": self.database_url,
            "REGISTRY_DATA_DIR": str(self.data_dir),
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            # Uploads queue hashing for a Celery worker; the bench runs none, so the server
            # only enqueues (as in production) and no hashing competes with the measurements.
            "CELERY_TASK_ALWAYS_EAGER": "false",
            # One token drives every client: requests are still counted (the cost is measured),
            # never refused.
            "REGISTRY_API_RATE": "1000000/second",
        }
        self.env.pop("REDIS_URL", None)
        self.env.pop("REGISTRY_S3_BUCKET", None)
        self.env["REGISTRY_MAX_UPLOAD_BYTES"] = str(max(20 * 1024**3, args.file_mib * MiB))

    # database ------------------------------------------------------------------------
    def _admin_sql(self, sql: str) -> None:
        import psycopg  # a dependency of the project (DATABASE_URL=postgres://…)

        with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self) -> None:
        self._admin_sql(f'CREATE DATABASE "{self.db_name}"')
        self.db_created = True

    def drop_database(self) -> None:
        if self.db_created:
            self._admin_sql(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            self.db_created = False

    # manage.py -----------------------------------------------------------------------
    def manage(self, *argv: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *argv], cwd=self.root, env=self.env, capture_output=True, text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(argv)} failed:\n{result.stderr}")
        return result.stdout.strip()

    def django_script(self, code: str, payload: dict, **env: str) -> str:
        """Run `code` with Django set up against the bench database (seeding, fix-ups)."""
        prelude = "import django, json, sys\ndjango.setup()\nargs = json.loads(sys.argv[1])\n"
        result = subprocess.run(
            [sys.executable, "-c", prelude + code, json.dumps(payload)],
            cwd=self.root, env={**self.env, **env}, capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"Django script failed:\n{result.stderr}")
        return result.stdout.strip()

    def prepare(self) -> None:
        log(f"creating database {self.db_name}, data dir {self.data_dir}")
        self.create_database()
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("collectstatic", "--noinput", "-v", "0")  # as a deployment does (whitenoise)
        for slug in ("bench", "search"):
            self.manage("context_create", slug, "--name", f"Benchmark {slug}")
            self.manage("member_add", slug, "bench-admin", "admin", "--create-user")
        self.token = self.manage("token_create", "bench-admin", "--name", "bench")
        if not self.token:
            raise RuntimeError("token_create printed no token")

    # gunicorn ------------------------------------------------------------------------
    def start(self) -> None:
        a = self.args
        # The shipped configuration (registry/gunicorn_conf.py), as production runs it; only
        # where it listens and how many processes come from here.
        cmd = [sys.executable, "-m", "gunicorn", "-c", "python:registry.gunicorn_conf", "registry.wsgi"]
        self.env.update({"REGISTRY_BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": str(a.workers)})
        log("starting: " + " ".join(cmd[2:]))
        with open(self.data_dir / "gunicorn.log", "ab") as output:  # Django logs to stderr
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=output, stderr=output, start_new_session=True)
        self.master = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 60
        headers = {"Authorization": f"Bearer {self.token}"}
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                response = httpx.get(f"{self.base_url}/api/v1/contexts/", headers=headers, timeout=5)
                if response.status_code == 200 and len(self.workers()) == a.workers:
                    break
                if response.status_code != 200:
                    raise RuntimeError(f"server answered {response.status_code}: {response.text[:500]}")
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not come up in 60 s:\n{self.log_tail()}")
            time.sleep(0.2)

    def workers(self) -> list[psutil.Process]:
        """The gunicorn worker processes (children of the master), cached by pid."""
        if self.master is None:
            return []
        try:
            children = self.master.children()
        except psutil.NoSuchProcess:
            return []
        current = {}
        for child in children:
            current[child.pid] = self._workers.get(child.pid, child)
        self._workers = current
        return list(current.values())

    def worker_cpu(self) -> dict[int, float]:
        times = {}
        for proc in self.workers():
            with contextlib.suppress(psutil.Error):
                cpu = proc.cpu_times()
                times[proc.pid] = cpu.user + cpu.system
        return times

    def connections_per_worker(self) -> list[int]:
        """Open client connections held by each worker (keep-alive pins a client to one worker)."""
        counts = []
        for proc in self.workers():
            with contextlib.suppress(psutil.Error):
                counts.append(sum(1 for c in proc.net_connections(kind="tcp")
                                  if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port))
        return sorted(counts, reverse=True)

    def db_backends(self) -> list[psutil.Process]:
        """PostgreSQL backend processes serving the bench database (for their CPU time)."""
        import psycopg

        try:
            with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self.db_name,),
                ).fetchall()
        except psycopg.Error:
            return []
        procs = []
        for (pid,) in rows:
            with contextlib.suppress(psutil.Error):
                procs.append(psutil.Process(pid))
        return procs

    def log_tail(self, lines: int = 40) -> str:
        path = self.data_dir / "gunicorn.log"
        if not path.exists():
            return "(no gunicorn log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # graceful: the master stops its workers
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            log("gunicorn did not stop in 30 s; killing its process group")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the session started for it
            self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        self.stop()
        if self.args.keep:
            log(f"kept database {self.database_url} and data dir {self.data_dir} (token {self.token})")
            return
        try:
            self.drop_database()
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)


SEED_SEARCH = r"""
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from registry import services
from registry.models import Context

user = get_user_model().objects.get(username=args["user"])
context = Context.objects.get(slug=args["context"])
total, hits, term = args["total"], args["hits"], args["term"]
step = max(total // max(hits, 1), 1)
made = 0
with transaction.atomic():
    for i in range(total):
        hit = i % step == 0 and i // step < hits
        name = f"model-{i:05d}"
        description = ("Gradient-boosted classifier for tabular data, retrained weekly on the "
                       f"latest snapshot of dataset {i % 50}. See the version notes for metrics.")
        tags = ["tabular", f"team-{i % 7}", "gbm" if i % 2 else "linear"]
        if hit:  # spread the hits over the three searched fields
            where = (i // step) % 3
            if where == 0:
                name = f"{term}-{name}"
            elif where == 1:
                description += f" Feature set: {term} v2."
            else:
                tags.append(f"{term}-finder")
            made += 1
        services.model_create(actor=user, context=context, name=name, description=description,
                              tags=tags, task="Tabular classification")
with connection.cursor() as cursor:
    cursor.execute("ANALYZE")
print(made)
"""

PROCESS_FORMATS = r"""
# What a Celery worker does after an upload (the bench runs no worker): the real hashing and
# introspection chain, run eagerly here; a format still not verified after it is marked ready.
import hashlib
from registry.models import Format

try:
    from registry import queue
except ImportError:  # before the workers existed
    queue = None
for fmt in Format.objects.filter(pk__in=args["ids"]):
    if queue is not None and hasattr(queue, "format_processing"):
        queue.format_processing(fmt.pk, fmt.storage_key)
        fmt.refresh_from_db()
    if fmt.status != "ready":
        from registry import storage
        with storage.open_for_read(fmt.storage_key) as handle:
            data = handle.read()
        fmt.md5, fmt.sha256 = hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
        fmt.status = "ready"
        fmt.save(update_fields=["md5", "sha256", "status"])
        print("forced", fmt.pk)
"""


class CpuMeter:
    """CPU seconds used by the gunicorn workers, the bench database's backends, this script,
    and the whole machine, between two snapshots."""

    def __init__(self, server: Server):
        self.server = server

    def snapshot(self) -> dict:
        def cpu(procs):
            out = {}
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    t = proc.cpu_times()
                    out[proc.pid] = t.user + t.system
            return out

        machine = psutil.cpu_times()
        return {
            "workers": cpu(self.server.workers()),
            "db": cpu(self.server.db_backends()),
            "client": time.process_time(),
            "busy": sum(machine) - machine.idle - machine.iowait,
            "total": sum(machine),
            "wall": time.perf_counter(),
        }

    @staticmethod
    def delta(before: dict, after: dict) -> dict:
        def used(key):
            # A process that appeared meanwhile (a reconnect: CONN_MAX_AGE recycles database
            # connections) counts whole; one that exited meanwhile is lost (a slight undercount).
            return sum(t - before[key].get(pid, 0.0) for pid, t in after[key].items())

        cores = psutil.cpu_count()
        wall = after["wall"] - before["wall"]
        busy = after["busy"] - before["busy"]
        workers, db, client = used("workers"), used("db"), after["client"] - before["client"]
        return {
            "workers": workers, "db": db, "client": client, "wall": wall,
            "machine_pct": 100 * busy / max(after["total"] - before["total"], 1e-9),
            # Whatever else ran meanwhile (other jobs on the machine), as % of all cores.
            "other_pct": max(0.0, 100 * (busy - workers - db - client) / max(wall * cores, 1e-9)),
            "client_pct": 100 * client / max(wall * cores, 1e-9),
        }


# --- load generation --------------------------------------------------------------------

def make_client(base_url: str, token: str, timeout: float = 120) -> httpx.Client:
    # One keep-alive connection per client. TCP_NODELAY: httpcore sets it already, and gunicorn
    # on its listening socket; passed explicitly so a header/body split write can never wait
    # for a delayed ACK (the 40 ms Nagle stall).
    transport = httpx.HTTPTransport(
        retries=0,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=None),
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    return httpx.Client(base_url=base_url, transport=transport, timeout=timeout,
                        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    cpu: dict = field(default_factory=dict)
    spread: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


# A scenario step: step(client, state, timed) sends one request with
# timed(method, url, expected_status, check=None, **httpx_kwargs), which records its latency
# (or an error: another status, a transport error, or check(response) returning a message)
# and returns the response or None. Untimed preparation (moving to a fresh model) is done by
# the step before it calls `timed`. `state` is the client's own dict.
Step = Callable[[httpx.Client, dict, Callable], None]


class Runner:
    def __init__(self, server: Server, args):
        self.server = server
        self.args = args
        self.clients = [make_client(server.base_url, server.token) for _ in range(args.concurrency)]
        self.meter = CpuMeter(server)
        self.closing = False

    def close(self) -> None:
        self.closing = True  # clients of a scenario cut short (Ctrl-C) stop sending
        for client in self.clients:
            client.close()

    def run(self, name: str, step: Step, states: list[dict] | None = None, clients: int = 0) -> Result:
        a = self.args
        n = clients or a.concurrency
        states = states or [{} for _ in range(n)]
        result = Result(name)
        lock = threading.Lock()
        barrier = threading.Barrier(n + 1)
        phase = {"measure": False, "stop": False}
        budget = itertools.count() if a.requests else None  # shared request counter

        def worker(index: int) -> None:
            client, state = self.clients[index], states[index]
            lat: list[float] = []
            errors: list[str] = []

            def timed(method: str, url: str, expect: int, check=None, **kwargs):
                t0 = time.perf_counter()
                try:
                    response = client.request(method, url, **kwargs)
                except httpx.HTTPError as exc:
                    response, problem = None, f"{type(exc).__name__}: {exc}"
                else:
                    problem = None
                elapsed = time.perf_counter() - t0
                if problem is None and response.status_code != expect:
                    problem = f"{method} {url} -> {response.status_code}: {response.text[:300]}"
                if problem is None and check is not None:
                    problem = check(response)
                if phase["measure"]:
                    if problem is None:
                        lat.append(elapsed)
                    else:
                        errors.append(problem)
                return response if problem is None else None

            barrier.wait()
            while not (phase["stop"] or self.closing):
                if budget is not None and phase["measure"] and next(budget) >= a.requests:
                    break
                try:
                    step(client, state, timed)
                except Exception as exc:  # noqa: BLE001 - a failing step must not stop its client
                    if phase["measure"]:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    time.sleep(0.01)
            with lock:
                result.latencies.extend(lat)
                result.errors += len(errors)
                for message in errors[: 3 - len(result.error_samples)]:
                    result.error_samples.append(message)

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
        for thread in threads:
            thread.start()
        barrier.wait()
        time.sleep(a.warmup)
        cpu0 = self.meter.snapshot()
        t0 = time.perf_counter()
        phase["measure"] = True
        if a.requests:
            for thread in threads:
                thread.join()
        else:
            time.sleep(a.duration)
            phase["measure"] = False
            phase["stop"] = True
        result.elapsed = time.perf_counter() - t0
        result.cpu = self.meter.delta(cpu0, self.meter.snapshot())
        result.spread = self.server.connections_per_worker()
        phase["stop"] = True
        for thread in threads:
            thread.join()
        return result


# --- scenarios --------------------------------------------------------------------------

class Bench:
    def __init__(self, server: Server, runner: Runner, args):
        self.server = server
        self.runner = runner
        self.args = args
        self.model_pool: deque[str] = deque()  # models created by create-model, for create-version
        self.alias_models: list[str] = []
        self.admin = runner.clients[0]
        self.counter = itertools.count()

    def _unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter):06d}-{secrets.token_hex(3)}"

    # helpers (untimed) ---------------------------------------------------------------
    def create_model(self, client: httpx.Client, prefix: str = "prep") -> str:
        response = client.post("/api/v1/contexts/bench/models/", json={"name": self._unique(prefix)})
        response.raise_for_status()
        return response.json()["id"]

    def add_uploaded_version(self, model_id: str) -> tuple[str, int, str]:
        """A new version of `model_id` with a small pickle uploaded: (model id, number, format id)."""
        response = self.admin.post(f"/api/v1/models/{model_id}/versions/", json={"framework": "scikit-learn"})
        response.raise_for_status()
        number = response.json()["number"]
        response = self.admin.put(
            f"/api/v1/models/{model_id}/versions/{number}/formats/pkl/file?filename=model.pkl",
            content=SMALL_PICKLE, headers={"Content-Type": "application/octet-stream"},
        )
        response.raise_for_status()
        return model_id, number, response.json()["id"]

    def publish(self, versions: list[tuple[str, int, str]]) -> None:
        """Publish (model id, number, format id) versions. A format that is not verified yet (the
        bench runs no Celery worker) is processed as a worker would, in one subprocess, first."""
        def attempt(items):
            refused = []
            for model_id, number, format_id in items:
                response = self.admin.post(f"/api/v1/models/{model_id}/versions/{number}/publish/")
                if response.status_code == 409:
                    refused.append((model_id, number, format_id))
                else:
                    response.raise_for_status()
            return refused

        refused = attempt(versions)
        if refused:
            log(f"{len(refused)} formats not verified yet (no Celery worker runs): processing them "
                f"in-process as a worker would")
            out = self.server.django_script(
                PROCESS_FORMATS, {"ids": [f for _, _, f in refused]}, CELERY_TASK_ALWAYS_EAGER="true")
            if out:
                log(f"formats not verified by the processing chain, forced ready: {out!r}")
            refused = attempt(refused)
            if refused:
                raise RuntimeError(f"could not publish {len(refused)} versions, e.g. {refused[0]}")

    # scenarios -----------------------------------------------------------------------
    def s_create_model(self) -> Result:
        pool = self.model_pool

        def step(client, state, timed):
            body = {
                "name": self._unique("bench-model"),
                "description": "Churn classifier trained on **weekly** snapshots.",
                "tags": ["tabular", "bench"],
                "task": "Tabular classification",
                "metadata": {"team": "bench", "cost_center": 42},
            }
            response = timed("POST", "/api/v1/contexts/bench/models/", 201, json=body)
            if response is not None:
                pool.append(response.json()["id"])

        return self.runner.run("create model", step)

    def s_create_version(self) -> Result:
        pool = self.model_pool
        body = {
            "description": "Retrained on the latest snapshot.",
            "tags": ["candidate"],
            "hyperparameters": {"learning_rate": 0.05, "max_depth": 6, "n_estimators": 400},
            "framework": "scikit-learn",
            "framework_version": "1.5.2",
            "metadata": {"provenance": {"git": "https://git.example/ml/churn", "commit": "4f2a9c1",
                                        "branch": "main", "script": "train.py"}},
        }

        def step(client, state, timed):
            if state.get("left", 0) <= 0:  # untimed: move to a model with room for versions
                try:
                    state["model"] = pool.popleft()
                except IndexError:
                    state["model"] = self.create_model(client, "version-pool")
                state["left"] = VERSIONS_PER_MODEL
            response = timed("POST", f"/api/v1/models/{state['model']}/versions/", 201, json=body)
            state["left"] = state["left"] - 1 if response is not None else 0

        return self.runner.run("create version", step)

    def s_search(self) -> Result:
        hits = self.args.hits
        url = f"/api/v1/contexts/search/models/?search={SEARCH_TERM}&page_size={max(hits, 1)}"

        def check(response):
            data = response.json()
            if data.get("count") != hits or len(data.get("results", [])) != hits:
                return f"search returned count={data.get('count')} results={len(data.get('results', []))}"
            return None

        return self.runner.run(f"search ({hits}/{self.args.models})", lambda c, s, timed: timed("GET", url, 200, check))

    def prepare_alias_models(self) -> None:
        if self.alias_models:
            return
        t0 = time.perf_counter()
        models = [self.create_model(self.admin, "alias") for _ in range(self.args.concurrency)]
        self.publish([self.add_uploaded_version(m) for m in models for _ in range(ALIAS_VERSIONS)])
        for model_id in models:
            self.admin.put(f"/api/v1/models/{model_id}/aliases/{ALIAS}/", json={"version": 1}).raise_for_status()
        self.alias_models = models
        log(f"prepared {len(models)} models with {ALIAS_VERSIONS} published versions and alias "
            f"'{ALIAS}' in {time.perf_counter() - t0:.1f} s")

    def _per_client(self, key: str = "model", shared: bool = False) -> list[dict]:
        return [{key: self.alias_models[0 if shared else i], "next": 2} for i in range(self.args.concurrency)]

    def _get(self, name: str, path: str, clients: int = 0) -> Result:
        """GET `path` (under /api/v1/models/{model}/) of each client's own alias model."""
        def step(client, state, timed):
            timed("GET", f"/api/v1/models/{state['model']}/{path}", 200)

        return self.runner.run(name, step, self._per_client(), clients=clients)

    def s_get_model(self) -> Result:
        return self._get("get model", "")

    def s_get_model_single(self) -> Result:
        """One client: the unloaded latency (and proof that no 40 ms Nagle/delayed-ACK stall hides in it)."""
        return self._get("get model, 1 client", "", clients=1)

    def s_get_alias(self) -> Result:
        return self._get("get alias", f"aliases/{ALIAS}/")

    def s_get_version(self) -> Result:
        return self._get("get version", "versions/2/")

    def s_get_manifest(self) -> Result:
        return self._get("get frozen manifest", "versions/2/manifest/?frozen=true")

    def _set_alias(self, name: str, shared: bool) -> Result:
        def check(response):
            return None if response.json().get("version") is not None else "no version in the alias"

        def step(client, state, timed):
            number = state["next"]
            state["next"] = number % ALIAS_VERSIONS + 1
            timed("PUT", f"/api/v1/models/{state['model']}/aliases/{ALIAS}/", 200, check, json={"version": number})

        return self.runner.run(name, step, self._per_client(shared=shared))

    def s_set_alias(self) -> Result:
        return self._set_alias("set alias", shared=False)

    def s_set_alias_shared(self) -> Result:
        return self._set_alias("set alias, 1 model", shared=True)

    # file transfer --------------------------------------------------------------------
    def transfer(self) -> dict[str, list[dict]]:
        """--transfer-runs times: a new version, PUT its file, GET it back. Per-run figures."""
        size = self.args.file_mib * MiB
        client = make_client(self.server.base_url, self.server.token, timeout=600)
        model_id = self.create_model(client, "file")
        url = ""
        block = os.urandom(MiB)  # one block reused: the client never holds the whole file

        def body():
            sent = 0
            while sent < size:
                chunk = block if size - sent >= MiB else block[: size - sent]
                sent += len(chunk)
                yield chunk

        def put():
            response = client.put(url + "?filename=big.bin", content=body(), headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(size)})
            response.raise_for_status()
            if response.json().get("size") != size:
                raise RuntimeError(f"server stored {response.json().get('size')} bytes, sent {size}")
            return size

        def get():
            received = 0
            with open(os.devnull, "wb") as sink, client.stream("GET", url) as response:
                response.raise_for_status()
                for chunk in response.iter_raw():
                    sink.write(chunk)
                    received += len(chunk)
            if received != size:
                raise RuntimeError(f"downloaded {received} bytes, expected {size}")
            return received

        out: dict[str, list[dict]] = {"upload": [], "download": []}
        try:
            for run in range(self.args.transfer_runs):
                # A fresh version each run, so no run pays for deleting the file it replaces.
                response = client.post(f"/api/v1/models/{model_id}/versions/", json={}).raise_for_status()
                url = f"/api/v1/models/{model_id}/versions/{response.json()['number']}/formats/other/file"
                for label, action in (("upload", put), ("download", get)):
                    figures = self._sampled(action)
                    out[label].append(figures)
                    log(f"  {label} {run + 1}/{self.args.transfer_runs}: {figures['mb_s']:.0f} MB/s, "
                        f"worker CPU {figures['worker_cpu']:.2f} s, other load {figures['other_pct']:.0f}%")
        finally:
            client.close()
        return out

    def _sampled(self, action: Callable[[], int]) -> dict:
        """Run `action` while sampling every worker's RSS; figures for the worker that did the work."""
        server = self.server
        baseline = {p.pid: p.memory_info().rss for p in server.workers()}
        peak = dict(baseline)
        peak_total = [sum(baseline.values())]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                total = 0
                for proc in server.workers():
                    with contextlib.suppress(psutil.Error):
                        rss = proc.memory_info().rss
                        total += rss
                        peak[proc.pid] = max(peak.get(proc.pid, 0), rss)
                peak_total[0] = max(peak_total[0], total)
                stop.wait(0.02)

        meter = CpuMeter(server)
        cpu_before = meter.snapshot()
        cpu0 = server.worker_cpu()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        try:
            nbytes = action()
        finally:
            elapsed = time.perf_counter() - t0
            stop.set()
            sampler.join()
        cpu1 = server.worker_cpu()
        used = meter.delta(cpu_before, meter.snapshot())
        handler = max(cpu1, key=lambda pid: cpu1[pid] - cpu0.get(pid, 0))
        return {
            "bytes": nbytes, "seconds": elapsed, "mb_s": nbytes / elapsed / 1e6,
            "worker_cpu": cpu1[handler] - cpu0.get(handler, 0),
            "worker_rss_before": baseline.get(handler, 0), "worker_rss_peak": peak.get(handler, 0),
            "total_rss_before": sum(baseline.values()), "total_rss_peak": peak_total[0],
            "other_pct": used["other_pct"], "client_cpu": used["client"],
        }


def seed_search(server: Server, args) -> None:
    """2,000 models (--models) in context 'search', --hits of them matching SEARCH_TERM."""
    t0 = time.perf_counter()
    made = server.django_script(SEED_SEARCH, {
        "user": "bench-admin", "context": "search", "total": args.models, "hits": args.hits, "term": SEARCH_TERM,
    })
    log(f"seeded {args.models} models ({made} matching '{SEARCH_TERM}') in {time.perf_counter() - t0:.1f} s")


# --- reporting --------------------------------------------------------------------------

def print_table(results: list[Result], transfers: dict, args, versions: dict, background: float) -> None:
    out = sys.stdout
    cores = psutil.cpu_count()
    print(file=out)
    print(f"Registry API benchmark: gunicorn {versions['gunicorn']} ({args.workers} workers as "
          f"registry/gunicorn_conf.py ships them), PostgreSQL {versions['postgres']}, Django "
          f"{versions['django']}, Python {platform.python_version()}; {cores} CPUs, "
          f"{psutil.virtual_memory().total / 1024**3:.0f} GiB RAM; {background:.0f}% busy before the start", file=out)
    mode = f"{args.requests} requests" if args.requests else f"{args.duration:g} s"
    if results:
        print(f"{args.concurrency} concurrent keep-alive clients (httpx, a thread each), {mode} per scenario "
              f"after {args.warmup:g} s warm-up", file=out)
    if results:
        header = (f"{'scenario':<20}{'requests':>9}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
                  f"{'errors':>7}{'app ms/req':>11}{'db ms/req':>10}{'cpu %':>7}{'client %':>9}{'other %':>8}"
                  f"{'cpu-bound req/s':>16}")
        print(file=out)
        print(header, file=out)
        print("-" * len(header), file=out)
        for r in results:
            n = max(r.count + r.errors, 1)
            c = r.cpu
            print(f"{r.name:<20}{r.count:>9}{r.rate:>8.0f}{r.pct(50):>8.1f}{r.pct(95):>8.1f}{r.pct(99):>8.1f}"
                  f"{r.errors:>7}{c['workers'] / n * 1000:>11.1f}{c['db'] / n * 1000:>10.1f}"
                  f"{c['machine_pct']:>7.0f}{c['client_pct']:>9.0f}{c['other_pct']:>8.0f}"
                  f"{cores * n / max(c['workers'] + c['db'], 1e-9):>16.0f}", file=out)
        for r in results:
            for message in r.error_samples:
                print(f"  ! {r.name}: {message}", file=out)
    if transfers:
        runs = args.transfer_runs
        print(file=out)
        print(f"File transfer: {args.file_mib} MiB over one keep-alive connection, {runs} run(s) each, a new version "
              f"per run; PUT body streamed from a generator (1 MiB blocks), GET streamed to /dev/null", file=out)
        header = (f"{'':<10}{'MB/s':>7}{'(min-max)':>12}{'seconds':>9}{'worker CPU s':>14}{'client CPU s':>14}"
                  f"{'handling worker RSS MiB':>26}{'all workers RSS MiB':>23}{'other %':>9}")
        print(header, file=out)
        print("-" * len(header), file=out)
        for label, items in transfers.items():
            if not items:
                continue
            rates = [t["mb_s"] for t in items]

            def med(key, items=items):
                return statistics.median(t[key] for t in items)

            worker = (f"{min(t['worker_rss_before'] for t in items) / MiB:.0f} -> peak "
                      f"{max(t['worker_rss_peak'] for t in items) / MiB:.0f}")
            total = (f"{min(t['total_rss_before'] for t in items) / MiB:.0f} -> peak "
                     f"{max(t['total_rss_peak'] for t in items) / MiB:.0f}")
            spread = f"({min(rates):.0f}-{max(rates):.0f})"
            print(f"{label:<10}{statistics.median(rates):>7.0f}{spread:>12}{med('seconds'):>9.2f}{med('worker_cpu'):>14.2f}"
                  f"{med('client_cpu'):>14.2f}{worker:>26}{total:>23}{med('other_pct'):>9.0f}", file=out)
    print(file=out)
    print("app/db ms/req: CPU time of the gunicorn workers / of the PostgreSQL backends per request. cpu %: the "
          "whole machine busy (100 = all cores); client %: this load generator; other %: anything else running "
          "meanwhile (~0 for clean figures). cpu-bound req/s: CPUs / (app + db CPU per request), the rate the "
          "server would sustain with every core to itself, an upper bound that does not depend on other load. "
          "MB = 10^6 bytes.", file=out)


def machine_busy(seconds: float = 1.0) -> float:
    return psutil.cpu_percent(interval=seconds)


def component_versions(server: Server) -> dict:
    import django
    import gunicorn

    postgres = "?"
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(server.pg_admin_url) as conn:
            postgres = conn.execute("SHOW server_version").fetchone()[0].split()[0]
    return {"gunicorn": gunicorn.__version__, "django": django.__version__, "postgres": postgres}


# --- main -------------------------------------------------------------------------------

def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Scenarios: " + ", ".join(SCENARIOS) + ". Example: .venv/bin/python bench/api.py "
               "--duration 5 --file-mib 128",
    )
    parser.add_argument("--workers", type=int, default=2,
                        help="gunicorn worker processes (default 2, as registry/gunicorn_conf.py)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per scenario (default 10)")
    parser.add_argument("--requests", type=int, default=0,
                        help="measure this many requests per scenario instead of a duration")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each scenario (default 2)")
    parser.add_argument("--models", type=int, default=2000, help="models seeded for search (default 2000)")
    parser.add_argument("--hits", type=int, default=100, help="of which match the search term (default 100)")
    parser.add_argument("--file-mib", type=int, default=512, help="size of the transferred file in MiB (default 512)")
    parser.add_argument("--transfer-runs", type=int, default=3,
                        help="uploads and downloads of that file; the median is shown (default 3)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated subset of the scenarios to run (default: all)")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
                        help="PostgreSQL server URL (default postgres://postgres@127.0.0.1:5432/, or $BENCH_PG_URL)")
    parser.add_argument("--db-name", default="", help="database to create (default registry_bench_<pid>)")
    parser.add_argument("--port", type=int, default=0, help="port for gunicorn (default: a free one)")
    parser.add_argument("--keep", action="store_true", help="keep the database and data dir at the end")
    parser.add_argument("--project-dir", default=str(ROOT),
                        help="checkout to serve (default: this one); it runs with this Python environment")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.scenarios = chosen
    if args.hits > args.models:
        parser.error("--hits cannot exceed --models")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM (a timeout) unwind through the cleanup: server, database, data dir.
    # SIGINT explicitly, since a shell starts background jobs with SIGINT ignored.
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    background = machine_busy()
    if background > 15:
        log(f"warning: the machine is already {background:.0f}% busy; the figures will be pessimistic")
    server = Server(args)
    runner = None
    results: list[Result] = []
    transfers: dict = {}
    try:
        server.prepare()
        if "search" in args.scenarios:
            seed_search(server, args)  # before gunicorn starts: no competition for the CPUs
        server.start()
        versions = component_versions(server)
        runner = Runner(server, args)
        bench = Bench(server, runner, args)
        plan: list[tuple[str, Callable[[], Result]]] = [
            ("create-model", bench.s_create_model),
            ("create-version", bench.s_create_version),
            ("search", bench.s_search),
            ("get-model", bench.s_get_model),
            ("get-model-1", bench.s_get_model_single),
            ("get-alias", bench.s_get_alias),  # before set-alias: a short alias history
            ("get-version", bench.s_get_version),
            ("get-manifest", bench.s_get_manifest),
            ("set-alias", bench.s_set_alias),
            ("set-alias-shared", bench.s_set_alias_shared),
        ]
        for key, scenario in plan:
            if key not in args.scenarios:
                continue
            if key in {"get-model", "get-model-1", "get-alias", "get-version", "get-manifest", "set-alias",
                       "set-alias-shared"}:
                bench.prepare_alias_models()
            log(f"scenario {key} ...")
            result = scenario()
            log(f"  {result.name}: {result.rate:.0f} req/s, p50 {result.pct(50):.1f} ms, "
                f"p95 {result.pct(95):.1f} ms, {result.errors} errors; client connections per worker "
                f"{result.spread}, other load {result.cpu['other_pct']:.0f}%")
            results.append(result)
        if "transfer" in args.scenarios:
            log(f"transfer of {args.file_mib} MiB, {args.transfer_runs} runs ...")
            transfers = bench.transfer()
        print_table(results, transfers, args, versions, background)
        return 1 if any(r.errors for r in results) else 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception:
        if server.proc is not None:
            log("gunicorn log tail:\n" + server.log_tail())
        raise
    finally:
        if runner is not None:
            runner.close()
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
