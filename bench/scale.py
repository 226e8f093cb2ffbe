#!/usr/bin/env python
"""Reads on a large organisation's registry: the latency of each page, on PostgreSQL, against a
context seeded by `manage.py seed_scale` (100,000 models, 1,000,000 versions, 3,000,000
formats, 10,000,000 metric points, 10,000,000 audit events by default).

It reuses bench/api.py's Server: gunicorn with the shipped registry/gunicorn_conf.py (gevent
workers, the database pool), DEBUG off. The database is kept between runs (seeding takes
minutes): it is created, migrated and seeded only when the context is missing, and never
dropped (--drop to drop it at the end).

Per scenario, one client sends the same kind of request --requests times in a row over one
keep-alive connection (after --warmup unmeasured ones), cycling through several targets (other
models, search terms, actors), and the table shows:

  server p50/p95  the time gunicorn's access log gives each request (%(D)s, from the request
                  read to the response written): the figure the goal (< 100 ms) is about;
  client p50/p95  what the client saw (server time plus the loopback and the client's parsing);
  queries         the SQL statements of one such request, counted in a Django process on the
                  same database (the first page and the deep page must need the same number).

Then, for each scenario, the EXPLAIN (ANALYZE, BUFFERS) of its slowest statement (--plans all:
of every statement but the session and token lookups), run on the same database with the
values the request used, and, for comparison, the OFFSET query a page number would have run
for the deep page.

Run from the repository root with the project's virtualenv:  .venv/bin/python bench/scale.py --help
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api import Server, log, make_client  # noqa: E402 - bench/api.py beside this file

import httpx  # noqa: E402

USER, PASSWORD = "scale-bencher", "scale-bench-password"

# What the scenarios need from the seeded context, found once (targets for each scenario).
FIND_TARGETS = r"""
import json
from django.db.models import Count
from registry import keyset
from registry.models import AuditEvent, Context, Metric, Model, Version
context = Context.objects.get(slug=args["context"])
models = Model.objects.filter(context=context)
total = models.count()
ordered = models.order_by("name_key", "id")
step = max(total // 20, 1)
sample = [ordered.values_list("pk", "name", "description")[index * step] for index in range(min(20, total))]
deep = ordered[int(total * 0.9)]
keys = keyset.ordering_keys(ordered)
deep_cursor = keyset.encode(keys, deep, keyset.NEXT)
thirty = list(models.annotate(n=Count("versions")).filter(n=30).values_list("pk", flat=True)[:20])
aliased = list(models.filter(aliases__name="production").values_list("pk", flat=True)[:20])
versions = list(Version.objects.filter(model__context=context, model_id__in=[s[0] for s in sample])
                .values_list("model_id", "number")[:20])
descriptions = [d.split("experiment ")[1][:6] for _, _, d in sample if "experiment " in d]
print(json.dumps({
    "models": [str(s[0]) for s in sample], "name_pieces": [n.split("-", 1)[1][:-1] for _, n, _ in sample],
    "description_pieces": descriptions, "deep_cursor": deep_cursor, "deep_rank": int(total * 0.9),
    "total": total, "thirty": [str(m) for m in thirty], "aliased": [str(m) for m in aliased],
    "versions": [[str(m), n] for m, n in versions],
    "actors": ["grace", "ada", "linus", "margaret", "ci-bot"],
}))
"""

# Runs each request in a Django process on the bench database: the statements it sends, and
# EXPLAIN (ANALYZE, BUFFERS) of them.
COUNT_AND_EXPLAIN = r"""
import json, re, time
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
api = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {args['token']}")
dashboard = Client(HTTP_HOST="127.0.0.1")
dashboard.force_login(get_user_model().objects.get(username=args["user"]))
# The session, the signed-in user and the token: the same lookups on every request.
skip = re.compile(r'^SELECT "(django_session|auth_user|registry_apitoken)"\.|^SELECT t\."id", .* FROM registry_apitoken')
out = {}
for name, door, url in args["requests"]:
    client = api if door == "api" else dashboard
    client.get(url)  # once to warm the connection and caches
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    statements = [q["sql"] for q in captured.captured_queries]
    plans = []
    with connection.cursor() as cursor:
        for sql in statements:
            if skip.search(sql) or not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            text = "\n".join(row[0] for row in cursor.fetchall())
            ms = float(re.search(r"Execution Time: ([0-9.]+) ms", text).group(1))
            plans.append({"sql": sql, "plan": text, "ms": ms})
    out[name] = {"status": response.status_code, "queries": len(statements), "plans": plans}
extra = {}
with connection.cursor() as cursor:
    for label, sql in args["extra"]:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        extra[label] = "\n".join(row[0] for row in cursor.fetchall())
print(json.dumps({"requests": out, "extra": extra}))
"""


class ScaleServer(Server):
    """bench/api.py's Server on a kept database, seeded once, with a dashboard user."""

    def __init__(self, args):
        args.db_name, args.file_mib, args.keep = args.db_name or "scale_bench", 0, not args.drop
        super().__init__(args)
        # The access log with the request time in microseconds (GUNICORN_CMD_ARGS comes after
        # the configuration file, so only this setting changes).
        self.env["GUNICORN_CMD_ARGS"] = "--access-logformat '%(r)s %(s)s %(D)s'"
        self.env["REGISTRY_SECURE_COOKIES"] = "false"  # the dashboard over plain http
        self.env["LOG_LEVEL"] = "INFO"  # gunicorn.access logs at INFO

    def prepare(self) -> None:
        import psycopg

        with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.db_name,)).fetchone()
        if not exists:
            log(f"creating database {self.db_name}")
            self.create_database()
        self.db_created = True  # ours to drop with --drop
        log("migrating (index builds on a large database take minutes)")
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("collectstatic", "--noinput", "-v", "0")
        seeded = self.django_script(
            "from registry.models import Context, Model\n"
            "print(Model.objects.filter(context__slug=args['context']).exists())", {"context": self.args.context})
        if seeded.strip() != "True":
            log(f"seeding context {self.args.context} with {self.args.models:,} models (minutes)")
            started = time.monotonic()
            print(self.manage("seed_scale", "--context", self.args.context, "--models", str(self.args.models)))
            log(f"seeded in {time.monotonic() - started:.0f} s")
        users = self.django_script(
            "from django.contrib.auth import get_user_model\n"
            "print(get_user_model().objects.filter(username=args['user']).exists())", {"user": USER})
        if users.strip() != "True":
            self.manage("member_add", self.args.context, USER, "viewer", "--create-user", "--password", PASSWORD)
        self.token = self.manage("token_create", USER, "--name", "scale bench")

    def cleanup(self) -> None:
        """The data directory goes; the database stays unless --drop."""
        self.stop()
        try:
            if self.args.drop:
                self.drop_database()
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def access_log_offset(self) -> int:
        path = self.data_dir / "gunicorn.log"
        return path.stat().st_size if path.exists() else 0

    def server_times(self, offset: int) -> list[float]:
        """Request times (ms) of the access log lines written after `offset`."""
        with open(self.data_dir / "gunicorn.log", "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
        return [int(m.group(1)) / 1000 for m in re.finditer(r'HTTP/1\.1 \d{3} (\d+)\s*$', text, re.MULTILINE)]


def sign_in(server: ScaleServer) -> httpx.Client:
    """A browser session: the sign-in form, as a person uses it."""
    client = httpx.Client(base_url=server.base_url, timeout=120, follow_redirects=False)
    page = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = client.post("/login/", data={"username": USER, "password": PASSWORD, "csrfmiddlewaretoken": token},
                           headers={"Referer": f"{server.base_url}/login/"})
    if response.status_code != 302:
        raise RuntimeError(f"sign-in answered {response.status_code}: {response.text[:300]}")
    return client


def scenarios(t: dict, ctx: str) -> list[tuple[str, str, list[str]]]:
    """(name, door, URLs cycled through)."""
    models, pieces, codes = t["models"], t["name_pieces"], t["description_pieces"]
    thirty, aliased = t["thirty"] or models, t["aliased"] or models
    deep = t["deep_cursor"]
    api, dash = f"/api/v1/contexts/{ctx}", f"/c/{ctx}"
    return [
        ("models first page", "api", [f"{api}/models/"]),
        ("models deep page", "api", [f"{api}/models/?cursor={deep}"]),
        ("search name", "api", [f"{api}/models/?search={p}" for p in pieces]),
        ("search description", "api", [f"{api}/models/?search={c}" for c in codes]),
        ("tag filter", "api", [f"{api}/models/?tag={tag}" for tag in ("fraud", "xgboost", "team-07", "gpu")]),
        ("model get", "api", [f"/api/v1/models/{m}/" for m in models]),
        ("versions (30)", "api", [f"/api/v1/models/{m}/versions/" for m in thirty]),
        ("alias resolve", "api", [f"/api/v1/models/{m}/aliases/production/" for m in aliased]),
        ("metrics", "api", [f"/api/v1/models/{m}/versions/{n}/metrics/" for m, n in t["versions"]]),
        ("audit first page", "api", [f"{api}/audit/"]),
        ("audit by actor", "api", [f"{api}/audit/?actor={a}" for a in t["actors"]]),
        ("audit by object", "api", [f"{api}/audit/?object_id={m}" for m in models]),
        ("ui models first", "dash", [f"{dash}/"]),
        ("ui models deep", "dash", [f"{dash}/?cursor={deep}"]),
        ("ui search name", "dash", [f"{dash}/?q={p}" for p in pieces]),
        ("ui search descr.", "dash", [f"{dash}/?q={c}" for c in codes]),
        ("ui tag filter", "dash", [f"{dash}/?tag={tag}" for tag in ("fraud", "xgboost", "team-07", "gpu")]),
        ("ui model page", "dash", [f"/models/{m}/" for m in thirty]),
        ("ui metrics tab", "dash", [f"/models/{m}/versions/{n}/metrics/" for m, n in t["versions"]]),
        ("ui aliases tab", "dash", [f"/models/{m}/aliases/" for m in aliased]),
        ("ui audit first", "dash", [f"{dash}/audit/"]),
        ("ui audit by actor", "dash", [f"{dash}/audit/?actor={a}" for a in t["actors"]]),
        ("ui audit by object", "dash", [f"{dash}/audit/?object_id={m}" for m in models]),
    ]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def measure(server: ScaleServer, name: str, client: httpx.Client, urls: list[str], args) -> dict:
    for index in range(args.warmup):
        client.get(urls[index % len(urls)])
    offset, latencies, errors = server.access_log_offset(), [], []
    for index in range(args.requests):
        url = urls[index % len(urls)]
        started = time.perf_counter()
        response = client.get(url)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            errors.append(f"{url} -> {response.status_code}: {response.text[:200]}")
    time.sleep(0.3)  # the access log line is written after the response
    server_ms = server.server_times(offset)
    return {"name": name, "client": latencies, "server": server_ms, "errors": errors}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--db-name", default="scale_bench", help="database to use (kept; default scale_bench)")
    parser.add_argument("--context", default="scale")
    parser.add_argument("--models", type=int, default=100_000, help="models to seed when the context is missing")
    parser.add_argument("--requests", type=int, default=200, help="measured requests per scenario (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests before each (default 20)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated scenario names (substrings)")
    parser.add_argument("--plans", choices=["slowest", "all", "none"], default="slowest")
    parser.add_argument("--drop", action="store_true", help="drop the database at the end")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--project-dir", default=str(Path(__file__).resolve().parent.parent))
    args = parser.parse_args(argv)

    server = ScaleServer(args)
    results, report = [], {}
    try:
        server.prepare()
        targets = json.loads(server.django_script(FIND_TARGETS, {"context": args.context}).splitlines()[-1])
        chosen = [s for s in scenarios(targets, args.context)
                  if not args.only or any(part in s[0] for part in args.only.split(","))]
        server.start()
        api = make_client(server.base_url, server.token)
        browser = sign_in(server)
        load_before = os.getloadavg()
        for name, door, urls in chosen:
            result = measure(server, name, api if door == "api" else browser, urls, args)
            results.append(result)
            log(f"{name}: server p95 {pct(result['server'], 95):.1f} ms")
        load_after = os.getloadavg()
        server.stop()
        deep = targets["deep_rank"]
        extra = [("models deep page by OFFSET (what ?page= would run)",
                  "SELECT m.id, m.name FROM registry_model m WHERE m.context_id = (SELECT id FROM registry_context "
                  f"WHERE slug = '{args.context}') ORDER BY m.name_key, m.id OFFSET {deep} LIMIT 50")]
        report = json.loads(server.django_script(COUNT_AND_EXPLAIN, {
            "token": server.token, "user": USER, "extra": extra,
            "requests": [(name, door, urls[0]) for name, door, urls in chosen]}).splitlines()[-1])
        print_report(results, report, targets, args, load_before, load_after)
    finally:
        server.cleanup()
    return 0


def print_report(results, report, targets, args, load_before, load_after) -> None:
    print(f"\nbench/scale.py on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: context "
          f"{args.context} ({targets['total']:,} models), {args.requests} requests per scenario after "
          f"{args.warmup} warm-up, one client, {args.workers} gunicorn workers; load average "
          f"{' '.join(f'{x:.2f}' for x in load_before)} before, {' '.join(f'{x:.2f}' for x in load_after)} after "
          f"({os.cpu_count()} cores)\n")
    header = (f"{'scenario':<22}{'queries':>8}{'server p50':>11}{'p95':>8}{'max':>8}"
              f"{'client p50':>11}{'p95':>8}{'errors':>7}")
    print(header)
    print("-" * len(header))
    for r in results:
        info = report.get("requests", {}).get(r["name"], {})
        print(f"{r['name']:<22}{info.get('queries', '?'):>8}{pct(r['server'], 50):>11.1f}{pct(r['server'], 95):>8.1f}"
              f"{max(r['server'], default=float('nan')):>8.1f}{pct(r['client'], 50):>11.1f}"
              f"{pct(r['client'], 95):>8.1f}{len(r['errors']):>7}")
    for r in results:
        for message in r["errors"][:3]:
            print(f"  ! {r['name']}: {message}")
    print("\nms; server = gunicorn's request time (access log %(D)s); queries = SQL statements of one request, "
          "session and token lookups included.")
    if args.plans == "none":
        return
    print("\nPlans (EXPLAIN (ANALYZE, BUFFERS), in a Django process on the same database, values of the first "
          "URL of each scenario):")
    for name, info in report.get("requests", {}).items():
        plans = sorted(info["plans"], key=lambda p: -p["ms"])
        shown = plans if args.plans == "all" else plans[:1]
        for plan in shown:
            print(f"\n### {name}: {plan['ms']:.2f} ms of {sum(p['ms'] for p in plans):.2f} ms over "
                  f"{len(plans)} statements (status {info['status']})\n{plan['sql'][:600]}\n{plan['plan']}")
    for label, plan in report.get("extra", {}).items():
        print(f"\n### {label}\n{plan}")


if __name__ == "__main__":
    sys.exit(main())
