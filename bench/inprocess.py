#!/usr/bin/env python
"""The server's CPU per request for the model list, measured in process (no HTTP, no gunicorn):
Django's test Client with a token calls GET /api/v1/contexts/{ctx}/models/ the way a client
does, and the table shows the CPU time (time.process_time) of this process per request, which
holds the view, the ORM and the driver but not PostgreSQL's own work.

  search    ?search=<a word of about 20 names>
  tag       ?tag=<a tag of about 1 model in 10>
  tags-2    ?tag=<that tag>&tag=<another>
  page-2    ?cursor=<the next link of the first page>       (the default order, by name)
  updated   ?ordering=-updated
  page-2-up ?ordering=-updated&cursor=<its next link>
  name      ?name=<an existing model's name>

The database (PostgreSQL, --db, created when missing) is filled once by `manage.py seed_scale`
(--models models with versions, formats, aliases and tags) and kept for the next run (--drop
to drop it at the end). Each scenario runs --warmup requests, then --requests measured ones.

Run from the repository root with the project's virtualenv:
  .venv/bin/python bench/inprocess.py [--requests 300] [--models 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL")
    parser.add_argument("--db", default="registry_bench_inprocess", help="database name (kept between runs)")
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--drop", action="store_true", help="drop the database at the end")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = f"{args.pg}/{args.db}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "registry.settings")
    os.environ["DEBUG"] = "false"
    os.environ["SECRET_KEY"] = "bench-inprocess-secret-key-" + "x" * 40
    os.environ["REGISTRY_SSL_REDIRECT"] = "false"
    os.environ["REGISTRY_API_RATE"] = "100000000/minute"
    sys.path.insert(0, str(ROOT))
    _create_database(args.pg, args.db)

    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from registry import services
    from registry.models import Context, Model, Tag

    call_command("migrate", verbosity=0)
    if not Context.objects.filter(slug="bench").exists():
        call_command("seed_scale", context="bench", models=args.models, versions=3 * args.models,
                     formats=3 * args.models, metrics=0, events=args.models, stdout=open(os.devnull, "w"))
    context = Context.objects.get(slug="bench")
    from django.contrib.auth import get_user_model

    _, token = services.token_create(actor=None, user=get_user_model().objects.get(username="ken"),
                                     name=f"bench {time.time()}", read_only=True, expires_in_days=1)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    base = f"/api/v1/contexts/{context.slug}/models/"

    def get(query: str) -> dict:
        answer = client.get(base + query)
        assert answer.status_code == 200, (query, answer.status_code, answer.content[:300])
        return answer.json()

    models = Model.objects.filter(context=context)
    name = models.order_by("name_key")[len(models) // 2 :][:1].get().name
    tags = list(Tag.objects.filter(models__context=context).distinct().order_by("key").values_list("key", flat=True))
    tag = next(t for t in tags if t.startswith("team-"))
    other = next(t for t in Tag.objects.filter(models__context=context, models__tags__key=tag)
                 .order_by("key").values_list("key", flat=True) if not t.startswith("team-"))
    word = name.split("-")[1]  # the algorithm part of the seeded names
    first = get("")
    first_updated = get("?ordering=-updated")
    scenarios = {
        "search": f"?search={word}",
        "tag": f"?tag={tag}",
        "tags-2": f"?tag={tag}&tag={other}",
        "page-2": "?" + first["next"].split("?", 1)[1],
        "updated": "?ordering=-updated",
        "page-2-up": "?" + first_updated["next"].split("?", 1)[1],
        "name": f"?name={name}",
    }
    print(f"{Model.objects.filter(context=context).count()} models; load average {_loadavg()}")
    print(f"{'scenario':<10} {'rows':>5} {'cpu ms/req':>11} {'p50 wall ms':>12}")
    for label, query in scenarios.items():
        rows = len(get(query)["results"])
        for _ in range(args.warmup):
            get(query)
        walls = []
        cpu_started = time.process_time()
        for _ in range(args.requests):
            started = time.perf_counter()
            get(query)
            walls.append(time.perf_counter() - started)
        cpu = (time.process_time() - cpu_started) / args.requests
        print(f"{label:<10} {rows:>5} {cpu * 1000:>11.2f} {statistics.median(walls) * 1000:>12.2f}")
    print(f"load average {_loadavg()}")
    if args.drop:
        from django.db import connections

        connections.close_all()
        _drop_database(args.pg, args.db)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _create_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')


def _drop_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')


if __name__ == "__main__":
    main()
