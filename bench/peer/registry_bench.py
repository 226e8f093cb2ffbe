#!/usr/bin/env python3
"""Peer benchmark, our side: the model registry's REST API (/api/v1) driven with the SAME
load generator as mlflow_bench.py (imported from beside this file: one requests.Session
per client thread, keep-alive, the same thread pool, phase bounds, percentiles and report).

    python3 registry_bench.py --base-url http://127.0.0.1:8000 --token TOKEN --context ctx

Phases (select with --phases; the names match mlflow_bench.py):
  health   GET  /healthz                                   (framework floor)
  create   POST /api/v1/contexts/{ctx}/models/  x --models  {name, description, tags}
  version  POST /api/v1/models/{id}/versions/   x --versioned-models * --versions
           (linked to one training record, as MLflow's versions are linked to a run;
           the MLflow `source` URI and sha256 tag go into `metadata`)
  search   GET  /api/v1/contexts/{ctx}/models/?search=<prefix>-0NN&page_size=100 (100 hits),
           plus a broad ?search=<prefix>- first page of 100
  get      GET  /api/v1/models/{id}/                       (the id known from create)
  getname  GET  /api/v1/contexts/{ctx}/models/?name=<name> (lookup by name; MLflow's get is by name)
  mvsearch GET  /api/v1/models/{id}/versions/?page_size=100
  alias    unmeasured prep (a small pickle uploaded to version 2 of each versioned model,
           hashed by the Celery worker, then the version published: aliases only point to
           published versions here), then PUT /aliases/champion/ {"version": 2} per model
           and GET /aliases/champion/ (resolve)
  artifact PUT / GET …/versions/1/formats/other/file of one --artifact-mib file, server RSS
           sampled; the format's hashing by the worker is waited for (timed apart) before
           the download, so the worker does not compete with the download

Server CPU/RSS: the web server's process tree is re-read at every sample (gunicorn recycles
its workers every ~2000 requests, max_requests), and the CPU of processes that exited is
counted through their parent's cutime/cstime. --server-pid is the gunicorn master.
"""
import argparse
import hashlib
import io
import os
import pickle
import random
import sys
import tempfile
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mlflow_bench as mb  # noqa: E402  (the shared load generator)

MiB = mb.MiB
API = "/api/v1"
SMALL_PICKLE = pickle.dumps({"coef": [0.25 * i for i in range(200)], "intercept": 0.5})


# ---------------------------------------------------------------- process tree accounting
def proc_cpu_with_children(pid):
    """utime+stime+cutime+cstime in seconds (cutime: reaped children, e.g. recycled workers)."""
    st = mb._read(f"/proc/{pid}/stat")
    if not st:
        return None
    f = st.rsplit(")", 1)[1].split()
    return sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")


class TreeProcs:
    """Same interface as mlflow_bench.ServerProcs (pids, cpu(), mem()), but the tree under
    `root` is listed anew at each call, and reaped children's CPU is included."""

    def __init__(self, root):
        self.root = root

    @property
    def pids(self):
        return mb.children_of(self.root) if self.root else []

    def cpu(self):
        return sum(v for v in (proc_cpu_with_children(p) for p in self.pids) if v)

    def mem(self):
        return {p: mb.proc_mem(p) for p in self.pids}


class RegistryBench(mb.Bench):
    def __init__(self, args):
        super().__init__(args)
        if args.server_pid:
            self.srv = TreeProcs(args.server_pid)
        self.ids = {}  # model name -> id
        self.ids_lock = threading.Lock()
        self.ctx = args.context

    def session(self):
        s = getattr(self.local, "s", None)
        if s is None:
            s = super().session()
            s.headers["Authorization"] = f"Bearer {self.a.token}"
        return s

    def model_id(self, i):
        name = self.model_name(i)
        mid = self.ids.get(name)
        if mid is None:  # phases run without `create` in this process: look it up by name
            r = self.call("GET", f"{API}/contexts/{self.ctx}/models/", params={"name": name})
            r.raise_for_status()
            res = r.json()["results"]
            if not res:
                raise RuntimeError(f"model {name} not found")
            mid = res[0]["id"]
            with self.ids_lock:
                self.ids[name] = mid
        return mid

    # ------------------------------------------------------------ phases
    def ph_health(self):
        self.run_phase("GET /healthz", list(range(self.a.health)),
                       lambda _: self.call("GET", "/healthz"))

    def ph_create(self):
        def fn(i):
            name = self.model_name(i)
            r = self.call("POST", f"{API}/contexts/{self.ctx}/models/",
                          json={"name": name, "description": "peer bench model",
                                "tags": ["bench"]})
            if r.status_code == 201:
                with self.ids_lock:
                    self.ids[name] = r.json()["id"]
            return r
        self.run_phase("models create", list(range(self.a.models)), fn)

    def _record(self):
        r = self.call("POST", f"{API}/contexts/{self.ctx}/records/",
                      json={"name": f"{self.a.prefix}-run", "uri": f"runs:/{self.a.prefix}/0"})
        r.raise_for_status()
        return r.json()["id"]

    def ph_version(self):
        rid = self._record()
        nm = min(self.a.versioned_models, self.a.models)
        tasks = [(i, j) for j in range(self.a.versions) for i in range(nm)]
        for i in range(nm):
            self.model_id(i)

        def fn(t):
            i, j = t
            name = self.model_name(i)
            body = {"records": [rid],
                    "metadata": {"source": f"runs:/{self.a.prefix}/models/{name}/v{j}",
                                 "sha256": "0" * 64}}
            return self.call("POST", f"{API}/models/{self.model_id(i)}/versions/", json=body)
        self.run_phase("versions create", tasks, fn)

    def ph_search(self):
        rnd = random.Random(1)
        buckets = max(1, self.a.models // 100)
        want = min(100, self.a.models)

        def narrow(_):
            k = rnd.randrange(buckets)
            r = self.call("GET", f"{API}/contexts/{self.ctx}/models/",
                          params={"search": f"{self.a.prefix}-0{k:02d}", "page_size": 100})
            if r.ok:
                j = r.json()
                # the models list pages with a cursor and carries no count (since issue 17):
                # the page's rows are the check, on both sides of a before/after run
                if len(j.get("results", [])) != want or j.get("count", want) != want:
                    r.status_code = 599  # wrong result count counts as error
            return r
        self.run_phase("models ?search=p-0NN (100)", list(range(self.a.searches)), narrow)

        def broad(_):
            return self.call("GET", f"{API}/contexts/{self.ctx}/models/",
                             params={"search": f"{self.a.prefix}-", "page_size": 100})
        self.run_phase("models ?search=p- page 1", list(range(self.a.searches)), broad)

    def ph_get(self):
        rnd = random.Random(2)
        idx = [rnd.randrange(self.a.models) for _ in range(self.a.gets)]
        ids = [self.model_id(i) for i in idx]
        self.run_phase("models/{id} get", ids,
                       lambda m: self.call("GET", f"{API}/models/{m}/"))

    def ph_getname(self):
        rnd = random.Random(2)
        names = [self.model_name(rnd.randrange(self.a.models)) for _ in range(self.a.gets)]

        def fn(n):
            r = self.call("GET", f"{API}/contexts/{self.ctx}/models/", params={"name": n})
            if r.ok and len(r.json().get("results", [])) != 1:
                r.status_code = 599
            return r
        self.run_phase("models ?name= (get by name)", names, fn)

    def ph_mvsearch(self):
        rnd = random.Random(3)
        nm = max(1, min(self.a.versioned_models, self.a.models))
        ids = [self.model_id(rnd.randrange(nm)) for _ in range(self.a.searches)]
        self.run_phase("models/{id}/versions list", ids,
                       lambda m: self.call("GET", f"{API}/models/{m}/versions/",
                                           params={"page_size": 100}))

    def _publish_prep(self, nm, ver):
        """Version `ver` of each versioned model gets a small file and is published."""
        def up(i):
            return self.call("PUT", f"{API}/models/{self.model_id(i)}/versions/{ver}/formats/pkl/file",
                             data=SMALL_PICKLE, params={"filename": "model.pkl"},
                             headers={"Content-Type": "application/octet-stream",
                                      "X-Checksum-Sha256": hashlib.sha256(SMALL_PICKLE).hexdigest()})
        self.run_phase("(prep) small file upload", list(range(nm)), up)
        t0 = time.perf_counter()

        def pub(i):
            # 409 while the worker has not marked the file ready: retry (bounded)
            deadline = time.monotonic() + 120
            while True:
                r = self.call("POST", f"{API}/models/{self.model_id(i)}/versions/{ver}/publish/")
                if (r.status_code != 409 or "still being checked" not in r.text
                        or time.monotonic() > deadline):
                    return r
                time.sleep(0.2)
        self.run_phase("(prep) publish (waits for worker)", list(range(nm)), pub)
        self.extra["prep_publish_s"] = time.perf_counter() - t0

    def ph_alias(self):
        nm = max(1, min(self.a.versioned_models, self.a.models))
        ver = min(2, self.a.versions)
        self._publish_prep(nm, ver)
        self.run_phase("aliases/champion set (PUT)", list(range(nm)),
                       lambda i: self.call("PUT", f"{API}/models/{self.model_id(i)}/aliases/champion/",
                                           json={"version": ver}))
        rnd = random.Random(4)
        ids = [self.model_id(rnd.randrange(nm)) for _ in range(self.a.gets)]
        self.run_phase("aliases/champion get", ids,
                       lambda m: self.call("GET", f"{API}/models/{m}/aliases/champion/"))

    def _format_status(self, fmt_url):
        r = self.call("GET", fmt_url)
        return r.json().get("status") if r.ok else f"HTTP {r.status_code}"

    def ph_artifact(self):
        size = self.a.artifact_mib * MiB
        os.makedirs(self.a.scratch_dir, exist_ok=True)
        # a model and version of its own for the file (unmeasured)
        r = self.call("POST", f"{API}/contexts/{self.ctx}/models/",
                      json={"name": f"{self.a.prefix}-artifact", "description": "peer bench file"})
        r.raise_for_status()
        mid = r.json()["id"]
        r = self.call("POST", f"{API}/models/{mid}/versions/", json={})
        r.raise_for_status()
        n_ver = r.json()["number"]
        fmt_url = f"{API}/models/{mid}/versions/{n_ver}/formats/other/"
        url = fmt_url + "file"

        fd, path = tempfile.mkstemp(prefix="upload-", suffix=".bin", dir=self.a.scratch_dir)
        h = hashlib.md5()
        block = os.urandom(8 * MiB)
        with os.fdopen(fd, "wb") as f:
            for k in range(size // len(block)):
                b = (k.to_bytes(8, "little") + block[8:])  # as mlflow_bench.py
                f.write(b)
                h.update(b)
        src_md5 = h.hexdigest()
        res = {}
        sampler_stop = threading.Event()
        samples = []

        def sampler():
            while not sampler_stop.is_set():
                m = self.srv.mem()
                tot = sum(v[0] for v in m.values() if v)
                mx = max((v[0] for v in m.values() if v), default=0)
                samples.append((tot, mx))
                sampler_stop.wait(0.05)

        try:
            c0, s0 = os.times(), self.srv.cpu()
            st0 = mb.steal_ticks()
            mem_before = self.srv.mem()
            th = threading.Thread(target=sampler, daemon=True)
            th.start()
            with open(path, "rb") as f:
                t0 = time.perf_counter()
                # requests sets Content-Length from the file's size; no checksum header is
                # sent (mlflow_bench sends none either), the worker hashes what was stored
                r = self.call("PUT", url, data=f, params={"filename": "model.bin"},
                              headers={"Content-Type": "application/octet-stream"},
                              timeout=max(self.a.request_timeout, 600))
                t_up = time.perf_counter() - t0
            sampler_stop.set()
            th.join()
            c1, s1 = os.times(), self.srv.cpu()
            res["upload_srv_cpu_s"] = s1 - s0
            res["upload_cli_cpu_s"] = (c1.user + c1.system) - (c0.user + c0.system)
            mem_after_up = self.srv.mem()
            res["upload_status"] = r.status_code
            res["upload_MBps"] = size / t_up / 1e6
            res["upload_s"] = t_up
            if not r.ok:
                print(f"  upload failed: {r.status_code} {r.text[:200]}")

            # the worker hashes the stored file (md5 + sha256); wait for it, timed apart
            t0 = time.perf_counter()
            status = None
            while time.perf_counter() - t0 < self.a.ready_timeout:
                status = self._format_status(fmt_url)
                if status in ("ready", "failed", "corrupt", "quarantined"):
                    break
                time.sleep(0.1)
            res["worker_ready_s"] = time.perf_counter() - t0
            res["worker_status"] = status
            c1b, s1 = os.times(), self.srv.cpu()

            t0 = time.perf_counter()
            n = 0
            with self.call("GET", url, stream=True, timeout=max(self.a.request_timeout, 600)) as r:
                res["download_status"] = r.status_code
                for chunk in r.iter_content(chunk_size=MiB):
                    n += len(chunk)
            t_down = time.perf_counter() - t0
            c2, s2 = os.times(), self.srv.cpu()
            st1 = mb.steal_ticks()
            if st1[0] > st0[0]:
                res["steal_pct"] = 100.0 * (st1[1] - st0[1]) / (st1[0] - st0[0])
            res["download_srv_cpu_s"] = s2 - s1
            res["download_cli_cpu_s"] = (c2.user + c2.system) - (c1b.user + c1b.system)
            res["download_MBps"] = n / t_down / 1e6
            res["download_bytes_ok"] = n == size
            res["download_s"] = t_down
            if self.a.verify:
                h = hashlib.md5()
                with self.call("GET", url, stream=True,
                               timeout=max(self.a.request_timeout, 600)) as r:
                    for chunk in r.iter_content(chunk_size=MiB):
                        h.update(chunk)
                res["md5_match"] = h.hexdigest() == src_md5
            mem_after_down = self.srv.mem()
            pids = self.srv.pids
            if pids:
                # a recycled web worker may have left since the upload: name every pid seen
                seen = set(pids) | set(mem_before) | set(mem_after_up)
                res["server_procs"] = {p: mb.proc_name(p) or "(exited)" for p in seen}
                res["vmhwm_before_after_upload"] = {
                    p: (mem_before[p][1], v[1]) for p, v in mem_after_up.items()
                    if v and mem_before.get(p)}
                res["vmhwm_after_download"] = {p: v[1] for p, v in mem_after_down.items() if v}
                res["rss_sum_before"] = sum(v[0] for v in mem_before.values() if v)
                res["rss_sum_peak_sampled_upload"] = max((s[0] for s in samples), default=0)
                res["rss_max_proc_peak_sampled_upload"] = max((s[1] for s in samples), default=0)
        finally:
            os.unlink(path)
            if not self.a.keep_artifact:
                try:  # the whole model: its version, format and stored file
                    r = self.call("DELETE", f"{API}/models/{mid}/")
                    res["delete_status"] = r.status_code
                except requests.RequestException as e:
                    res["delete_status"] = str(e)
        self.extra["artifact"] = res
        print(f"  artifact {self.a.artifact_mib} MiB: upload {res.get('upload_MBps', 0):.0f} MB/s, "
              f"worker ready after {res.get('worker_ready_s', 0):.1f} s ({res.get('worker_status')}), "
              f"download {res.get('download_MBps', 0):.0f} MB/s", flush=True)


def main():
    ap = argparse.ArgumentParser(description="Model registry REST peer benchmark")
    ap.add_argument("--base-url", default="http://127.0.0.1:8000")
    ap.add_argument("--token", default=os.environ.get("REGISTRY_TOKEN"),
                    help="API token (default: $REGISTRY_TOKEN); an admin of --context")
    ap.add_argument("--context", required=True, help="context slug the models go in")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--models", type=int, default=2000)
    ap.add_argument("--versioned-models", type=int, default=200)
    ap.add_argument("--versions", type=int, default=5)
    ap.add_argument("--searches", type=int, default=1000)
    ap.add_argument("--gets", type=int, default=2000)
    ap.add_argument("--health", type=int, default=2000)
    ap.add_argument("--artifact-mib", type=int, default=512)
    ap.add_argument("--phases", default="health,create,version,search,get,getname,mvsearch,alias,artifact")
    ap.add_argument("--phase-timeout", type=float, default=120.0)
    ap.add_argument("--request-timeout", type=float, default=30.0)
    ap.add_argument("--ready-timeout", type=float, default=300.0,
                    help="max seconds to wait for the worker to hash the uploaded file")
    ap.add_argument("--prefix", default=None, help="model-name prefix (default: pb<epoch>)")
    ap.add_argument("--scratch-dir", default=os.path.join(tempfile.gettempdir(), "peerbench"))
    ap.add_argument("--server-pid", type=int, default=None,
                    help="gunicorn master pid (its tree is re-read at each sample)")
    ap.add_argument("--fresh-connections", action="store_true")
    ap.add_argument("--no-verify", dest="verify", action="store_false")
    ap.add_argument("--keep-artifact", action="store_true")
    ap.add_argument("--json-out", default=None)
    a = ap.parse_args()
    if not a.token:
        ap.error("--token or $REGISTRY_TOKEN is required")
    if a.prefix is None:
        a.prefix = f"pb{int(time.time())}"
    if a.models > 10000:
        ap.error("name scheme supports up to 10000 models")

    b = RegistryBench(a)
    print(f"target {b.base}  clients={a.clients}  prefix={a.prefix}  context={a.context}  "
          f"connections={'new per request' if a.fresh_connections else 'keep-alive'}")
    pids = b.srv.pids
    if pids:
        rss_sum = pss_sum = 0
        print(f"server processes ({len(pids)}):")
        for p in pids:
            m = mb.proc_mem(p)
            pss = mb.proc_pss(p)
            rss_sum += m[0] if m else 0
            pss_sum += pss
            print(f"  {p:>7} rss {m[0] / MiB if m else 0:6.0f} MiB  pss {pss / MiB:6.0f} MiB  "
                  f"{mb.proc_name(p)}")
        print(f"  total rss {rss_sum / MiB:.0f} MiB, pss {pss_sum / MiB:.0f} MiB")
        b.extra["footprint_start"] = {"rss": rss_sum, "pss": pss_sum, "nproc": len(pids)}
    r = requests.get(b.base + "/healthz", timeout=10)
    r.raise_for_status()
    r = requests.get(b.base + f"{API}/contexts/{a.context}/",
                     headers={"Authorization": f"Bearer {a.token}"}, timeout=10)
    r.raise_for_status()

    t_all = time.perf_counter()
    for ph in [p.strip() for p in a.phases.split(",") if p.strip()]:
        getattr(b, f"ph_{ph}")()
    print(f"\ntotal {time.perf_counter() - t_all:.1f} s")
    b.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
