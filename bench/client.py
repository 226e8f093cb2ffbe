#!/usr/bin/env python
"""Benchmark the Python client's file transfers: upload then download of one large file
(default 512 MiB) through `registry_client`, with MB/s and the client process's peak RSS growth.

By default it starts a registry the way bench/api.py does (a fresh PostgreSQL database and
data dir, gunicorn with DEBUG off, no Celery worker, so files stay `uploaded` and downloads
are verified against the checksum the client declared), or it uses a running one with
--url and a token from --token-env (default REGISTRY_TOKEN) and --context.

Measured, each --runs times (median shown):

  hash      the client's first pass over the file (SHA-256), alone
  upload    Version.upload(): that hash pass, then the streamed PUT with X-Checksum-Sha256
  download  Version.download(): streamed GET to a temporary file, SHA-256 and MD5 on the way,
            fsync, verification and rename

RSS growth is the client process's peak resident set during the operation minus the one
before it (sampled every 5 ms): the client streams in 1 MiB blocks, so it should stay small
whatever the file size. The file sits in the page cache (just written), so disk reads are
not part of the figures; the download's fsync is.

Run:  .venv/bin/python bench/client.py [--file-mib 512] [--runs 3]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
MiB = 1024 * 1024


def _bench_api():
    """bench/api.py's Server (throw-away database, data dir, gunicorn), loaded by path."""
    spec = importlib.util.spec_from_file_location("bench_api", HERE / "api.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_api"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def log(message: str) -> None:
    print(f"[bench-client {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class PeakRss:
    """Samples this process's RSS in a thread; `growth` = peak - RSS at the start."""

    def __init__(self, interval: float = 0.005):
        self.process = psutil.Process()
        self.interval = interval
        self.stop = threading.Event()
        self.before = self.peak = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.stop.wait(self.interval)

    def __enter__(self):
        import gc

        gc.collect()
        self.before = self.peak = self.process.memory_info().rss
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self) -> int:
        return self.peak - self.before


def make_file(path: Path, size: int) -> str:
    """A file of distinct 1 MiB blocks (not compressible, never all in memory); its SHA-256."""
    digest = hashlib.sha256()
    seed = os.urandom(MiB)
    with open(path, "wb") as handle:
        for index in range(size // MiB):
            block = index.to_bytes(8, "big") + seed[8:]
            digest.update(block)
            handle.write(block)
        tail = size % MiB
        if tail:
            digest.update(seed[:tail])
            handle.write(seed[:tail])
    return digest.hexdigest()


def measure(label: str, action) -> dict:
    cpu_before = psutil.Process().cpu_times()
    with PeakRss() as rss:
        started = time.perf_counter()
        result = action()
        seconds = time.perf_counter() - started
    cpu_after = psutil.Process().cpu_times()
    cpu = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    return {"label": label, "seconds": seconds, "rss_growth": rss.growth, "rss_before": rss.before, "cpu": cpu,
            "result": result}


def run(url: str, token: str, context: str, args) -> list[dict]:
    from registry_client import Registry
    from registry_client.transfer import hash_file

    work = Path(tempfile.mkdtemp(prefix="registry-bench-client-", dir=args.tmp_dir))
    size = args.file_mib * MiB
    rows: list[dict] = []
    try:
        source = work / "weights.bin"
        log(f"writing a {args.file_mib} MiB file in {work}")
        digest = make_file(source, size)
        registry = Registry(url, token=token, progress=args.progress, timeout=120)
        model = registry.context(context).model(f"client-bench-{os.getpid()}", create=True)
        warm = work / "warm.bin"
        warm.write_bytes(os.urandom(4 * MiB))
        warm_version = model.create_version()
        warm_version.upload("other", warm)  # imports, connection, server warm-up
        warm_version.download("other", work / "warm-copy.bin")
        for run_index in range(args.runs):
            version = model.create_version()  # a fresh version each run: no replaced file to delete
            hashed = measure("hash", lambda: hash_file(source, md5=False))
            assert hashed["result"].sha256 == digest
            uploaded = measure("upload", lambda version=version: version.upload("other", source))
            assert uploaded["result"].size == size
            target = work / f"copy-{run_index}.bin"
            with warnings_quiet():
                downloaded = measure("download", lambda version=version, target=target: version.download("other", target))
            assert downloaded["result"].stat().st_size == size
            target.unlink()
            for row in (hashed, uploaded, downloaded):
                row["mb_s"] = size / row["seconds"] / 1e6
                row["run"] = run_index + 1
                rows.append(row)
                log(f"  run {run_index + 1} {row['label']:<8} {row['mb_s']:7.0f} MB/s  {row['seconds']:6.2f} s  "
                    f"client CPU {row['cpu']:5.2f} s  RSS +{row['rss_growth'] / MiB:.1f} MiB")
        if not args.keep_model:
            with contextlib.suppress(Exception):
                model.delete()
        registry.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


@contextlib.contextmanager
def warnings_quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def report(rows: list[dict], args, where: str) -> None:
    print()
    print(f"Python client transfer benchmark: {args.file_mib} MiB file, {args.runs} run(s), {where}; "
          f"Python {platform.python_version()}, {psutil.cpu_count()} CPUs")
    header = f"{'':<10}{'MB/s':>7}{'(min-max)':>12}{'seconds':>9}{'client CPU s':>14}{'peak RSS growth MiB':>21}"
    print(header)
    print("-" * len(header))
    for label in ("hash", "upload", "download"):
        items = [r for r in rows if r["label"] == label]
        if not items:
            continue
        rates = [r["mb_s"] for r in items]
        spread = f"({min(rates):.0f}-{max(rates):.0f})"
        print(f"{label:<10}{statistics.median(rates):>7.0f}{spread:>12}"
              f"{statistics.median(r['seconds'] for r in items):>9.2f}"
              f"{statistics.median(r['cpu'] for r in items):>14.2f}"
              f"{max(r['rss_growth'] for r in items) / MiB:>21.1f}")
    print("upload = SHA-256 pass + streamed PUT; download = streamed GET + SHA-256/MD5 + fsync + verify + rename. "
          "MB = 10^6 bytes. The server shares the machine's CPUs.")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file-mib", type=int, default=512, help="file size in MiB (default 512)")
    parser.add_argument("--runs", type=int, default=3, help="upload+download runs; medians shown (default 3)")
    parser.add_argument("--url", help="use this running registry instead of starting one")
    parser.add_argument("--token-env", default="REGISTRY_TOKEN", help="with --url: env variable holding the token")
    parser.add_argument("--context", default="bench", help="with --url: context to create the model in")
    parser.add_argument("--progress", action="store_true", help="show the client's progress bars")
    parser.add_argument("--keep-model", action="store_true", help="do not delete the benchmark model at the end")
    parser.add_argument("--tmp-dir", default=None, help="folder for the file and its copy (default: system temp)")
    # For the server started here (as bench/api.py):
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--db-name", default="")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the database and data dir")
    parser.add_argument("--project-dir", default=str(HERE.parent))
    args = parser.parse_args(argv)
    # Attributes bench/api.py's Server reads.
    args.concurrency = 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    if args.url:
        token = os.environ.get(args.token_env, "")
        if not token:
            log(f"--url needs a token in ${args.token_env}")
            return 1
        rows = run(args.url, token, args.context, args)
        report(rows, args, f"registry at {args.url}")
        return 0
    api = _bench_api()
    server = api.Server(args)
    try:
        server.prepare()
        server.start()
        rows = run(server.base_url, server.token, "bench", args)
        report(rows, args, f"gunicorn ({args.workers} workers, registry/gunicorn_conf.py) on PostgreSQL, started by this script, "
                           "no Celery worker")
        return 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Exception:
        if server.proc is not None:
            log("gunicorn log tail:\n" + server.log_tail())
        raise
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
