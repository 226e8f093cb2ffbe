#!/usr/bin/env python3
"""Start / stop the servers of the peer comparison, each as a user would run it for a team.

  start: the registry as its README says for production
           gunicorn -c python:registry.gunicorn_conf registry.wsgi   (2 processes x 8 threads)
           celery -A registry worker                                 (hashing / introspection)
         on PostgreSQL (database perf_registry), Redis (--redis-url) as the Celery broker,
         DEBUG=false, local file storage in <workdir>/registry-data; a context, an admin user
         and a token made with the operator commands (manage.py context_create, member_add,
         token_create);
         MLflow: `mlflow server` with a PostgreSQL backend store and its artifact proxy
         (--artifacts-destination <workdir>/mlflow-artifacts-wN), once per --mlflow-workers
         value, each on its own database (perf_mlflow, perf_mlflow_w4, ...) and port.
  stop:  SIGTERM to the process groups this script started (recorded in the state file),
         by pid, then SIGKILL after a grace period.

Every path comes from the arguments; the state (pids, urls, token) goes to --state (JSON).

  python3 peer_servers.py start --workdir DIR --registry-dir CHECKOUT --mlflow-python VENV/bin/python \
      --state DIR/servers.json
  python3 peer_servers.py stop --state DIR/servers.json
"""
import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request


def log(msg):
    print(f"[servers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def psql(pg_admin, sql):
    subprocess.run(["psql", pg_admin, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], check=True)


def recreate_db(pg_host, pg_port, name):
    assert name.startswith("perf_"), name
    admin = f"postgresql://postgres@{pg_host}:{pg_port}/postgres"
    psql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql(admin, f'CREATE DATABASE "{name}"')


def wait_http(url, timeout, proc=None, headers=None):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 in {timeout} s")


def spawn(cmd, cwd, env, logpath):
    out = open(logpath, "ab")
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def start(a):
    os.makedirs(a.workdir, exist_ok=True)
    state = {"registry": None, "mlflow": []}
    if a.skip_registry:  # keep the registry of an earlier `start` (its state file)
        with open(a.state) as f:
            state["registry"] = json.load(f)["registry"]
    else:
        start_registry(a, state)
    if not a.no_mlflow:
        start_mlflow(a, state)
    with open(a.state, "w") as f:
        json.dump(state, f, indent=1)
    log(f"state written to {a.state}")


def start_registry(a, state):
    reg = os.path.abspath(a.registry_dir)
    py = os.path.join(reg, ".venv", "bin", "python")
    # ---------------------------------------------------------------- registry
    recreate_db(a.pg_host, a.pg_port, a.registry_db)
    data = os.path.join(a.workdir, "registry-data")
    os.makedirs(data, exist_ok=True)
    env = {**os.environ,
           "DATABASE_URL": f"postgres://postgres@{a.pg_host}:{a.pg_port}/{a.registry_db}",
           "REDIS_URL": a.redis_url,
           "REGISTRY_CELERY_QUEUE": a.celery_queue,
           "REGISTRY_DATA_DIR": data,
           "DEBUG": "false",
           "SECRET_KEY": secrets.token_urlsafe(50),
           "ALLOWED_HOSTS": "127.0.0.1,localhost",
           "REGISTRY_SECURE_COOKIES": "false",
           "REGISTRY_BIND": f"127.0.0.1:{a.registry_port}",
           "WEB_CONCURRENCY": str(a.registry_workers),
           "REGISTRY_WEB_THREADS": str(a.registry_threads),
           # One token drives hundreds of requests a second here: the shipped per-token rate
           # (3000/minute) would answer most of them 429. MLflow has no such limit.
           "REGISTRY_API_RATE": "10000000/minute"}
    for k in ("REGISTRY_S3_BUCKET", "CELERY_TASK_ALWAYS_EAGER"):
        env.pop(k, None)

    def manage(*args):
        r = subprocess.run([py, "manage.py", *args], cwd=reg, env=env, capture_output=True,
                           text=True)
        if r.returncode:
            raise RuntimeError(f"manage.py {args} failed: {r.stderr[-2000:]}")
        return r.stdout.strip()

    t0 = time.monotonic()
    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    manage("context_create", a.context, "--name", "Peer benchmark")
    manage("member_add", a.context, "perf-admin", "admin", "--create-user")
    token = manage("token_create", "perf-admin")
    log(f"registry database migrated and seeded in {time.monotonic() - t0:.1f} s")
    web = spawn([py, "-m", "gunicorn", "-c", "python:registry.gunicorn_conf", "registry.wsgi"],
                reg, env, os.path.join(a.workdir, "registry-web.log"))
    worker = spawn([py, "-m", "celery", "-A", "registry", "worker", "--loglevel", "INFO"],
                   reg, env, os.path.join(a.workdir, "registry-worker.log"))
    base = f"http://127.0.0.1:{a.registry_port}"
    dt = wait_http(base + f"/api/v1/contexts/{a.context}/", 90, web,
                   {"Authorization": f"Bearer {token}"})
    log(f"registry up in {dt:.1f} s (gunicorn pid {web.pid}, celery pid {worker.pid})")
    state["registry"] = {"url": base, "pid": web.pid, "worker_pid": worker.pid, "token": token,
                         "context": a.context, "db": a.registry_db, "data_dir": data,
                         "workers": a.registry_workers, "threads": a.registry_threads}
    with open(a.state, "w") as f:  # so that `stop` finds it even if MLflow fails to start
        json.dump(state, f, indent=1)


def start_mlflow(a, state):
    for k, nw in enumerate(a.mlflow_workers):
        db = a.mlflow_db if k == 0 else f"{a.mlflow_db}_w{nw}"
        recreate_db(a.pg_host, a.pg_port, db)
        port = a.mlflow_port + k
        art = os.path.join(a.workdir, f"mlflow-artifacts-w{nw}")
        os.makedirs(art, exist_ok=True)
        mlenv = {**os.environ, "MLFLOW_TRACKING_URI": ""}
        mlenv.pop("MLFLOW_TRACKING_URI")
        cmd = [a.mlflow_python, "-m", "mlflow", "server",
               "--backend-store-uri", f"postgresql://postgres@{a.pg_host}:{a.pg_port}/{db}",
               "--artifacts-destination", art,
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(nw)]
        p = spawn(cmd, a.workdir, mlenv, os.path.join(a.workdir, f"mlflow-w{nw}.log"))
        dt = wait_http(f"http://127.0.0.1:{port}/health", 180, p)
        log(f"mlflow --workers {nw} up in {dt:.1f} s (pid {p.pid}, db {db}, port {port})")
        state["mlflow"].append({"url": f"http://127.0.0.1:{port}", "pid": p.pid, "workers": nw,
                                "db": db, "artifacts": art})


def stop_pid(pid, grace=30):
    try:
        os.killpg(pid, signal.SIGTERM)  # the session started for it (start_new_session)
    except ProcessLookupError:
        return
    t0 = time.monotonic()
    while time.monotonic() - t0 < grace:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop(a):
    with open(a.state) as f:
        state = json.load(f)
    pids = []
    for key, reg in state.items():  # "registry", and "registry-before" of a before/after run
        if key.startswith("registry") and reg:
            pids += [reg["pid"], reg["worker_pid"]]
    pids += [m["pid"] for m in state.get("mlflow", [])]
    for p in pids:
        log(f"stopping process group {p}")
        stop_pid(p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("--workdir", required=True)
    s.add_argument("--registry-dir", required=True, help="an installed checkout (make install)")
    s.add_argument("--mlflow-python", required=True, help="python of the venv with mlflow")
    s.add_argument("--state", required=True)
    s.add_argument("--skip-registry", action="store_true",
                   help="reuse the registry recorded in --state; start only MLflow")
    s.add_argument("--no-mlflow", action="store_true",
                   help="start only the registry (e.g. a second checkout for a before/after run)")
    s.add_argument("--pg-host", default="127.0.0.1")
    s.add_argument("--pg-port", type=int, default=5432)
    s.add_argument("--registry-db", default="perf_registry")
    s.add_argument("--mlflow-db", default="perf_mlflow")
    s.add_argument("--redis-url", default="redis://127.0.0.1:6379/10")
    s.add_argument("--celery-queue", default="perfpeer")
    s.add_argument("--context", default="perf")
    s.add_argument("--registry-port", type=int, default=18210)
    s.add_argument("--registry-workers", type=int, default=2)
    s.add_argument("--registry-threads", type=int, default=8)
    s.add_argument("--mlflow-port", type=int, default=18220)
    s.add_argument("--mlflow-workers", type=lambda v: [int(x) for x in v.split(",")],
                   default=[2, 4])
    t = sub.add_parser("stop")
    t.add_argument("--state", required=True)
    a = ap.parse_args()
    return start(a) if a.cmd == "start" else stop(a)


if __name__ == "__main__":
    sys.exit(main())
