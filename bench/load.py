#!/usr/bin/env python
"""Load: many concurrent keep-alive clients against the shipped gunicorn setup (issue 17, 3).

Starts the registry as bench/api.py does (gunicorn with registry/gunicorn_conf.py on a fresh
PostgreSQL database, DEBUG off), seeds models with published versions and an alias, then runs
`wrk` (Debian's package: apt-get install wrk) with 64 and 256 keep-alive connections (by
default) on a mix of the API's reads: get model, resolve alias, get version, frozen manifest,
version list, model list and search. Prints per concurrency: requests per second, latency
percentiles from wrk (p50/p90/p99), non-2xx answers, socket errors (connect = refused or
reset while connecting, read, write, timeout), the server's CPU per request and the load
average, because this machine is shared.

  .venv/bin/python bench/load.py --connections 64,256 --duration 30
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from api import SEED_SEARCH, SEARCH_TERM, Bench, CpuMeter, Runner, Server, log  # noqa: E402

LUA = r"""
-- Each connection walks the read mix from its own offset.
local paths = {%(paths)s}
local counter = 0
setup = function(thread) thread:set("offset", counter); counter = counter + 97 end
init = function(args) offset = tonumber(offset) or 0; n = 0 end
request = function()
  n = n + 1
  local path = paths[((offset + n) %% #paths) + 1]
  return wrk.format("GET", path, {["Authorization"] = "Bearer %(token)s", ["Accept"] = "application/json"})
end
"""


def parse_wrk(text: str) -> dict:
    def number(pattern, default=0.0):
        match = re.search(pattern, text)
        return float(match.group(1)) if match else default

    def millis(label):
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\b", text, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "requests": int(number(r"(\d+) requests in")),
        "rate": number(r"Requests/sec:\s+([\d.]+)"),
        "p50": millis("50"), "p90": millis("90"), "p99": millis("99"),
        "non2xx": int(number(r"Non-2xx or 3xx responses: (\d+)")),
        "connect": int(errors.group(1)) if errors else 0,
        "read": int(errors.group(2)) if errors else 0,
        "write": int(errors.group(3)) if errors else 0,
        "timeout": int(errors.group(4)) if errors else 0,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", default="64,256", help="comma-separated keep-alive connection counts")
    parser.add_argument("--duration", type=int, default=30, help="seconds per run (default 30)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn processes (default 2, as shipped)")
    parser.add_argument("--models", type=int, default=2000, help="models seeded for the list and search")
    parser.add_argument("--alias-models", type=int, default=16, help="models with published versions and an alias")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--keep", action="store_true", help="keep the database and data dir")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        sys.exit("needs wrk: apt-get install wrk")
    # What bench/api.py's Server and Bench read.
    args.concurrency, args.hits, args.db_name, args.port = args.alias_models, 100, "", 0
    args.project_dir, args.file_mib = str(HERE.parent), 1

    server = Server(args)
    try:
        server.prepare()
        server.start()
        runner = Runner(server, args)
        bench = Bench(server, runner, args)
        made = server.django_script(SEED_SEARCH, {"user": "bench-admin", "context": "search", "total": args.models,
                                                  "hits": args.hits, "term": SEARCH_TERM})
        log(f"seeded {args.models} models ({made.strip()} match the search)")
        bench.prepare_alias_models()
        paths = []
        for model in bench.alias_models:
            base = f"/api/v1/models/{model}/"
            paths += [base, f"{base}aliases/production/", f"{base}versions/2/",
                      f"{base}versions/2/manifest/?frozen=true", f"{base}versions/"]
        paths += ["/api/v1/contexts/search/models/", f"/api/v1/contexts/search/models/?search={SEARCH_TERM}",
                  "/api/v1/contexts/search/models/?tag=team-3"]
        script = Path(tempfile.mkdtemp()) / "mix.lua"
        script.write_text(LUA % {"paths": ", ".join(f'"{p}"' for p in paths), "token": server.token})
        runner.close()

        rows = []
        for connections in [int(c) for c in args.connections.split(",")]:
            meter = CpuMeter(server)
            before = meter.snapshot()
            load_before = os.getloadavg()
            log(f"wrk: {connections} connections, {args.duration} s")
            out = subprocess.run(
                ["wrk", "-t", str(args.threads), "-c", str(connections), "-d", f"{args.duration}s",
                 "--timeout", "30s", "--latency", "-s", str(script), server.base_url],
                capture_output=True, text=True, check=True).stdout
            cpu = CpuMeter.delta(before, meter.snapshot())
            result = parse_wrk(out)
            result.update(connections=connections, load=os.getloadavg()[0], load_before=load_before[0],
                          app=1000 * cpu["workers"] / max(result["requests"], 1),
                          db=1000 * cpu["db"] / max(result["requests"], 1))
            rows.append(result)

        print(f"\nLoad on the shipped gunicorn setup ({args.workers} processes), a read mix of {len(paths)} URLs, "
              f"{args.duration} s per run, wrk {args.threads} threads on the same machine")
        print(f"{'clients':>8}{'requests':>10}{'req/s':>8}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'non-2xx':>8}"
              f"{'refused':>8}{'read/write/timeout':>20}{'app ms/req':>11}{'db ms/req':>10}{'load avg':>14}")
        for r in rows:
            socket_errors = "{read}/{write}/{timeout}".format(**r)
            load = "{load_before:.2f}->{load:.2f}".format(**r)
            print(f"{r['connections']:>8}{r['requests']:>10}{r['rate']:>8.0f}{r['p50']:>8.1f}{r['p90']:>8.1f}"
                  f"{r['p99']:>8.1f}{r['non2xx']:>8}{r['connect']:>8}{socket_errors:>20}{r['app']:>11.2f}"
                  f"{r['db']:>10.2f}{load:>14}")
        failed = any(r["non2xx"] or r["connect"] or r["timeout"] for r in rows)
        return 1 if failed else 0
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
