#!/usr/bin/env python3
"""Paired A/B of two registries under load at the same time: the same requests, from 4
keep-alive clients each, to both servers at once; prints each server's CPU per request (its
gunicorn tree's utime + stime from /proc) and the load average.

peer_rounds.py runs one system at a time, so a noisy neighbour that comes and goes between two
runs moves one system's figure and not the other's (5-8% on this machine). Here both servers
share whatever the machine is doing, and a change of 2% shows in every pair. Both servers are
busy on the same 2 cores, so their caches are colder than in peer_rounds.py's runs: a change
that shrinks the code a request runs through shows larger here than there. Report both.

Start the two servers with peer_servers.py (`--no-mlflow` for the second checkout, its own
port, database, Redis database and Celery queue), merge their states into one file with keys
"registry" and "registry-before", then:

  python3 bench/peer/paired.py --state state-both.json --requests 3000 --pairs 5
  python3 bench/peer/paired.py --state state-both.json --get /api/v1/contexts/perf/models/
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time
import uuid


def tree(pid: int) -> list[int]:
    found = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            for child in children.read().split():
                found += tree(int(child))
    except OSError:
        pass
    return found


def cpu_seconds(pid: int) -> float:
    ticks = 0
    for each in tree(pid):
        try:
            with open(f"/proc/{each}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def clients(server: dict, requests: int, get: str | None, errors: list) -> list[threading.Thread]:
    host, port = server["url"].split("//")[1].split(":")
    numbers, lock, prefix = iter(range(requests)), threading.Lock(), uuid.uuid4().hex[:8]
    headers = {"Authorization": f"Bearer {server['token']}", "Content-Type": "application/json"}

    def work() -> None:
        connection = http.client.HTTPConnection(host, int(port))
        while True:
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            if get:
                connection.request("GET", get, headers=headers)
            else:
                body = json.dumps({"name": f"paired-{prefix}-{n}", "description": "bench", "tags": ["bench"]})
                connection.request("POST", f"/api/v1/contexts/{server['context']}/models/", body, headers)
            answer = connection.getresponse()
            answer.read()
            if answer.status != (200 if get else 201):
                errors.append(answer.status)

    return [threading.Thread(target=work) for _ in range(4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", required=True, help="peer_servers.py states merged: registry, registry-before")
    parser.add_argument("--systems", default="registry,registry-before")
    parser.add_argument("--requests", type=int, default=3000, help="per server and pair")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--get", help="a path to GET instead of creating models")
    args = parser.parse_args()
    with open(args.state) as state:
        states = json.load(state)
    servers = {name: states[name] for name in args.systems.split(",")}
    ratios = []
    for _ in range(args.pairs):
        load = open("/proc/loadavg").read().split()[0]
        errors = {name: [] for name in servers}
        before = {name: cpu_seconds(server["pid"]) for name, server in servers.items()}
        threads = {name: clients(server, args.requests, args.get, errors[name]) for name, server in servers.items()}
        started = time.monotonic()
        for group in threads.values():
            for thread in group:
                thread.start()
        for group in threads.values():
            for thread in group:
                thread.join()
        per_request = {name: 1000 * (cpu_seconds(server["pid"]) - before[name]) / args.requests
                       for name, server in servers.items()}
        first, second = per_request.values()
        ratios.append(first / second)
        print("  ".join(f"{name} {ms:.3f}" for name, ms in per_request.items()),
              f"ms CPU/request  ratio {first / second:.3f}  errors {[len(e) for e in errors.values()]}"
              f"  load {load}  {time.monotonic() - started:.0f} s", flush=True)
    print(f"ratio median {sorted(ratios)[len(ratios) // 2]:.3f} [{min(ratios):.3f}-{max(ratios):.3f}]")


if __name__ == "__main__":
    main()
