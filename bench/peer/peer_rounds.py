#!/usr/bin/env python3
"""Interleaved (ABAB) rounds of the peer comparison, and the final table.

Reads the state file written by peer_servers.py (urls, pids, token), then for each round and
each client count runs registry_bench.py against the registry and mlflow_bench.py against each
MLflow server (the order reversed on odd rounds), each as its own process with --json-out.
Around every run it records the load average, the server trees' RSS/PSS (idle before, after
load), the CPU of the server trees and of the PostgreSQL backends of each system's database.

  python3 peer_rounds.py --state S.json --out DIR --rounds 3 --clients 8,16 [--python PY]
  python3 peer_rounds.py --summarize DIR           (table from the saved runs only)
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mlflow_bench as mb  # noqa: E402
from registry_bench import proc_cpu_with_children  # noqa: E402

MiB = 1024 * 1024

# scenario -> (registry phase, mlflow phase)
SCENARIOS = [
    ("health (framework floor)", "GET /healthz", "GET /health"),
    ("create model", "models create", "registered-models/create"),
    ("create version", "versions create", "model-versions/create"),
    ("search, 100 hits", "models ?search=p-0NN (100)", "rm/search LIKE 'p-0NN%' (100)"),
    ("search broad, page 1 of 100", "models ?search=p- page 1", "rm/search LIKE 'p-%' page 1"),
    ("get model (reg: by id)", "models/{id} get", "registered-models/get"),
    ("get model by name (reg: ?name=)", "models ?name= (get by name)", "registered-models/get"),
    ("list versions of a model", "models/{id}/versions list", "model-versions/search name="),
    ("set alias", "aliases/champion set (PUT)", "registered-models/alias set"),
    ("resolve alias", "aliases/champion get", "registered-models/alias get"),
]


def log(msg):
    print(f"[rounds {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tree_mem(root):
    pids = mb.children_of(root)
    rss = sum((mb.proc_mem(p) or (0, 0))[0] for p in pids)
    pss = sum(mb.proc_pss(p) for p in pids)
    return {"rss": rss, "pss": pss, "nproc": len(pids)}


def tree_cpu(root):
    return sum(v for v in (proc_cpu_with_children(p) for p in mb.children_of(root)) if v)


def db_backend_cpu(db):
    out = subprocess.run(
        ["psql", "postgresql://postgres@127.0.0.1:5432/postgres", "-At", "-c",
         f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}'"],
        capture_output=True, text=True)
    cpu = {}
    for line in out.stdout.split():
        if line.strip().isdigit():
            v = mb.proc_cpu(int(line))
            if v:
                cpu[int(line)] = v
    return cpu


def db_delta(before, after):
    return sum(t - before.get(p, 0.0) for p, t in after.items())


class DbSampler(threading.Thread):
    """Polls the database's backends every second and keeps each one's last CPU reading, so
    that backends closed during the run (CONN_MAX_AGE, recycled web workers) still count."""

    def __init__(self, db):
        super().__init__(daemon=True)
        self.db, self.stop_ev, self.first, self.last = db, threading.Event(), db_backend_cpu(db), {}

    def run(self):
        while not self.stop_ev.is_set():
            self.last.update(db_backend_cpu(self.db))
            self.stop_ev.wait(1.0)

    def finish(self):
        self.stop_ev.set()
        self.join()
        self.last.update(db_backend_cpu(self.db))
        return db_delta(self.first, self.last)


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def run_one(a, state, system, clients, rnd):
    tag = f"r{rnd}-c{clients}-{system}"
    out_json = os.path.join(a.out, f"{tag}.json")
    out_txt = os.path.join(a.out, f"{tag}.txt")
    prefix = f"pb{rnd}c{clients}{system.replace('-', '')}{int(time.time()) % 100000}"
    common = ["--clients", str(clients), "--prefix", prefix, "--json-out", out_json,
              "--scratch-dir", a.scratch]
    if a.phases:
        # `getname` is the registry's own phase (?name=); MLflow's get is by name already.
        phases = a.phases.split(",") if system.startswith("registry") else [
            phase for phase in a.phases.split(",") if phase != "getname"]
        common += ["--phases", ",".join(phases)]
    if system.startswith("registry"):  # "registry", or "registry-before" (a second checkout)
        r = state[system]
        root, db, extra_root = r["pid"], r["db"], r["worker_pid"]
        cmd = [a.python, os.path.join(HERE, "registry_bench.py"), "--base-url", r["url"],
               "--token", r["token"], "--context", r["context"], "--server-pid", str(root)]
    else:
        m = next(x for x in state["mlflow"] if f"mlflow-w{x['workers']}" == system)
        root, db, extra_root = m["pid"], m["db"], None
        cmd = [a.python, os.path.join(HERE, "mlflow_bench.py"), "--base-url", m["url"],
               "--server-pid", str(root)]
    cmd += common + a.extra
    info = {"system": system, "clients": clients, "round": rnd, "load_before": loadavg(),
            "mem_idle": tree_mem(root), "pids_before": sorted(mb.children_of(root))}
    if extra_root:
        info["worker_mem_idle"] = tree_mem(extra_root)
        w0 = tree_cpu(extra_root)
    dbs = DbSampler(db)
    dbs.start()
    c0, t0 = tree_cpu(root), time.perf_counter()
    log(f"{tag}: load {' '.join(info['load_before'])}; {' '.join(cmd[1:2])} ...")
    with open(out_txt, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    info["wall_s"] = time.perf_counter() - t0
    info["rc"] = rc
    info["server_cpu_s"] = tree_cpu(root) - c0
    info["db_cpu_s"] = dbs.finish()
    info["mem_after"] = tree_mem(root)
    info["pids_after"] = sorted(mb.children_of(root))
    info["load_after"] = loadavg()
    if extra_root:
        info["worker_cpu_s"] = tree_cpu(extra_root) - w0
        info["worker_mem_after"] = tree_mem(extra_root)
    with open(os.path.join(a.out, f"{tag}.meta.json"), "w") as f:
        json.dump(info, f, indent=1)
    log(f"{tag}: rc {rc}, {info['wall_s']:.0f} s, server cpu {info['server_cpu_s']:.1f} s, "
        f"db cpu {info['db_cpu_s']:.1f} s, rss idle {info['mem_idle']['rss'] / MiB:.0f} -> "
        f"{info['mem_after']['rss'] / MiB:.0f} MiB")


# ---------------------------------------------------------------- summary
def med_rng(vals, fmt="{:.0f}"):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "n/a", None
    m = statistics.median(vals)
    s = f"{fmt.format(m)} [{fmt.format(min(vals))}-{fmt.format(max(vals))}]"
    return s, m


def summarize(outdir):
    runs = {}
    for meta in sorted(glob.glob(os.path.join(outdir, "*.meta.json"))):
        with open(meta) as f:
            info = json.load(f)
        js = meta.replace(".meta.json", ".json")
        if not os.path.exists(js):
            continue
        with open(js) as f:
            res = json.load(f)
        info["phases"] = {p["phase"]: p for p in res["phases"]}
        info["extra"] = res.get("extra", {})
        runs.setdefault((info["system"], info["clients"]), []).append(info)
    systems = sorted({s for s, _ in runs}, key=lambda s: (s != "registry", s))
    clients = sorted({c for _, c in runs})
    peers = [s for s in systems if s != "registry"]
    lines = []
    P = lines.append
    for c in clients:
        for peer in peers:
            R, M = runs.get(("registry", c), []), runs.get((peer, c), [])
            if not R or not M:
                continue
            P("")
            P(f"### {c} clients: registry ({len(R)} runs) vs {peer} ({len(M)} runs)"
              f" - median [min-max]; ratio = registry / {peer} medians")
            P(f"| scenario | metric | registry | {peer} | ratio |")
            P("|---|---|---|---|---|")
            for label, rp, mp in SCENARIOS:
                for metric, key, fmt, better in (("req/s", "rps", "{:.1f}", "hi"),
                                                 ("p50 ms", "p50_ms", "{:.1f}", "lo"),
                                                 ("p95 ms", "p95_ms", "{:.1f}", "lo"),
                                                 ("server CPU s/1000 req", None, "{:.2f}", "lo"),
                                                 ("errors", "err", "{:.0f}", "lo")):
                    def vals(rs, ph):
                        out = []
                        for r in rs:
                            p = r["phases"].get(ph)
                            if not p:
                                continue
                            if key is None:
                                n = p["ok"] + p["err"]
                                out.append(1000 * p["srv_cpu_s"] / n if n else None)
                            else:
                                out.append(p[key])
                        return out
                    rs, rm = med_rng(vals(R, rp), fmt)
                    ms, mm = med_rng(vals(M, rp if peer.startswith("registry") else mp), fmt)
                    if metric == "errors" and not (rm or mm):
                        continue
                    ratio = f"{rm / mm:.2f}" if rm is not None and mm else "-"
                    P(f"| {label} | {metric} | {rs} | {ms} | {ratio} |")
            for metric, key in (("upload MB/s", "upload_MBps"), ("download MB/s", "download_MBps"),
                                ("upload server CPU s", "upload_srv_cpu_s"),
                                ("download server CPU s", "download_srv_cpu_s"),
                                ("peak RSS sum during upload MiB", "rss_sum_peak_sampled_upload")):
                def avals(rs):
                    out = []
                    for r in rs:
                        v = r["extra"].get("artifact", {}).get(key)
                        if v is not None:
                            out.append(v / MiB if "rss" in key else v)
                    return out
                rs, rm = med_rng(avals(R), "{:.1f}" if "CPU" in metric else "{:.0f}")
                ms, mm = med_rng(avals(M), "{:.1f}" if "CPU" in metric else "{:.0f}")
                ratio = f"{rm / mm:.2f}" if rm is not None and mm else "-"
                P(f"| 512 MiB file | {metric} | {rs} | {ms} | {ratio} |")
            for metric, fn in (
                    ("server RSS sum idle (before run) MiB", lambda r: r["mem_idle"]["rss"] / MiB),
                    ("server PSS sum idle MiB", lambda r: r["mem_idle"]["pss"] / MiB),
                    ("server RSS sum after load MiB", lambda r: r["mem_after"]["rss"] / MiB),
                    ("server PSS sum after load MiB", lambda r: r["mem_after"]["pss"] / MiB),
                    ("server processes", lambda r: r["mem_after"]["nproc"]),
                    ("whole run: server CPU s", lambda r: r["server_cpu_s"]),
                    ("whole run: PostgreSQL backend CPU s", lambda r: r["db_cpu_s"]),
                    ("whole run: wall s", lambda r: r["wall_s"]),
                    ("load avg (1 min) before run", lambda r: float(r["load_before"][0]))):
                rs, rm = med_rng([fn(r) for r in R], "{:.1f}" if "load" in metric else "{:.0f}")
                ms, mm = med_rng([fn(r) for r in M], "{:.1f}" if "load" in metric else "{:.0f}")
                ratio = f"{rm / mm:.2f}" if rm is not None and mm else "-"
                P(f"| process | {metric} | {rs} | {ms} | {ratio} |")
        R = runs.get(("registry", c), [])
        if R:
            P("")
            P(f"registry-only at {c} clients:")
            for ph in ("(prep) small file upload", "(prep) publish (waits for worker)"):
                v = [r["phases"][ph]["rps"] for r in R if ph in r["phases"]]
                P(f"  {ph}: req/s {med_rng(v)[0]}")
            v = [r["extra"].get("artifact", {}).get("worker_ready_s") for r in R]
            P(f"  512 MiB file hashed by the worker (ready) after upload: s {med_rng(v, '{:.1f}')[0]}")
            v = [r.get("worker_cpu_s") for r in R]
            P(f"  celery worker CPU s over the run: {med_rng(v, '{:.1f}')[0]}")
            v = [r.get("worker_mem_idle", {}).get("rss", 0) / MiB for r in R]
            w = [r.get("worker_mem_after", {}).get("rss", 0) / MiB for r in R]
            P(f"  celery worker tree RSS sum idle {med_rng(v)[0]} MiB, after {med_rng(w)[0]} MiB")
            v = [len(set(r["pids_after"]) - set(r["pids_before"])) for r in R]
            P(f"  web processes replaced during a run (gunicorn max_requests): {med_rng(v)[0]}")
    for s in peers:
        ch = [(r["round"], r["clients"]) for c in clients for r in runs.get((s, c), [])
              if r["pids_before"] != r["pids_after"]]
        P(f"{s}: runs whose process list changed: {ch or 'none'}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state")
    ap.add_argument("--out")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--first-round", type=int, default=0)
    ap.add_argument("--clients", default="8,16")
    ap.add_argument("--systems", default="registry,mlflow-w2,mlflow-w4")
    ap.add_argument("--python", default=sys.executable, help="python with requests")
    ap.add_argument("--scratch", default=None, help="scratch dir for the upload file")
    ap.add_argument("--phases", default=None)
    ap.add_argument("--summarize", default=None, metavar="DIR")
    ap.add_argument("extra", nargs="*", help="after --: passed to both drivers")
    a = ap.parse_args()
    if a.summarize:
        print(summarize(a.summarize))
        return 0
    os.makedirs(a.out, exist_ok=True)
    a.scratch = a.scratch or os.path.join(a.out, "scratch")
    with open(a.state) as f:
        state = json.load(f)
    systems = a.systems.split(",")
    for rnd in range(a.first_round, a.first_round + a.rounds):
        for c in [int(x) for x in a.clients.split(",")]:
            order = systems if rnd % 2 == 0 else list(reversed(systems))
            for s in order:
                run_one(a, state, s, c, rnd)
        print(summarize(a.out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
