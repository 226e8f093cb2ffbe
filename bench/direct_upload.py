#!/usr/bin/env python
"""Direct uploads against the streamed PUT: client MB/s, and what the web processes spend.

Starts an S3 server (moto, in its own process; or --endpoint, e.g. a MinIO) and the shipped
gunicorn setup on a fresh PostgreSQL database with S3 storage (bench/api.py's Server), writes a
file of --mib MiB (default 2048), and uploads it with the Python client three ways, each to a
new version: streamed through the registry (PUT), and straight to the bucket with 1 and with 4
parts in parallel. For each: the client's MB/s, the gunicorn workers' CPU seconds and their
peak RSS above what they held before (sampled every 20 ms), and the load average. No Celery
worker runs: the hashing after an upload is not part of what is measured.

    .venv/bin/python bench/direct_upload.py [--mib 2048] [--endpoint URL --bucket NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "client"))

from api import Server, log  # noqa: E402
from s3 import start_moto  # noqa: E402

MiB = 1024 * 1024


class WorkerMeter:
    """CPU seconds and peak RSS (above the start) of the gunicorn workers while in use."""

    def __init__(self, server: Server):
        self.server = server

    def _cpu(self) -> float:
        total = 0.0
        for proc in self.server.workers():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def _rss(self) -> int:
        total = 0
        for proc in self.server.workers():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def __enter__(self):
        self.cpu_start, self.rss_start = self._cpu(), self._rss()
        self.peak, self.running = self.rss_start, True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.cpu = self._cpu() - self.cpu_start
        self.rss_above = (self.peak - self.rss_start) / MiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=2048)
    parser.add_argument("--endpoint", help="an S3 server to use instead of starting moto")
    parser.add_argument("--bucket", help="an existing bucket (with --endpoint)")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    args.workers, args.concurrency, args.db_name, args.port = 2, 1, "", 0
    args.project_dir, args.file_mib = str(HERE.parent), args.mib

    moto = None
    if args.endpoint:
        endpoint, bucket = args.endpoint, args.bucket
    else:
        endpoint, moto = start_moto()
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
    credentials = {"AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "bench"),
                   "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "bench-secret")}
    if moto is not None:
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **{
            "aws_access_key_id": credentials["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": credentials["AWS_SECRET_ACCESS_KEY"]}).create_bucket(Bucket=bucket)

    server = Server(args)
    server.env.update(REGISTRY_S3_BUCKET=bucket, AWS_S3_ENDPOINT_URL=endpoint, REGISTRY_S3_REGION="us-east-1",
                      **credentials)
    scratch = Path(tempfile.mkdtemp(prefix="direct-upload-"))
    source = scratch / "weights.bin"
    rows = []
    try:
        with open(source, "wb") as handle:
            block = os.urandom(MiB)
            for _ in range(args.mib):
                handle.write(block)
        server.prepare()
        server.start()
        from registry_client import Registry, transfer

        registry = Registry(server.base_url, token=server.token, progress=False)
        model = registry.context("bench").model("direct-upload", create=True)
        digests = transfer.hash_file(source, md5=False)

        for label, parallel in [("streamed PUT", None), ("direct, 1 part at a time", 1), ("direct, 4 in parallel", 4)]:
            version = model.create_version()
            version._ensure_format("other", required=True, fail_on_tamper=True)
            format_path = f"{version._path}formats/other/"
            load = os.getloadavg()[0]
            with WorkerMeter(server) as meter:
                started = time.perf_counter()
                if parallel is None:
                    transfer.put_file(registry._transport, f"{format_path}file", source, sha256=digests.sha256,
                                      size=digests.size, filename=source.name, progress=False, timeout=3600)
                else:
                    transfer.upload_file(registry._transport, format_path, source, sha256=digests.sha256, size=digests.size,
                                         filename=source.name, progress=False, parallel=parallel)
                seconds = time.perf_counter() - started
            rows.append((label, args.mib * MiB / seconds / 1e6, meter.cpu, meter.rss_above, load))
            log(f"{label}: {rows[-1][1]:.0f} MB/s")
        registry.close()
    finally:
        server.cleanup()
        if moto is not None:
            moto.terminate()
        with contextlib.suppress(OSError):
            source.unlink()
            scratch.rmdir()

    print(f"\n{args.mib} MiB uploaded with the Python client to the shipped gunicorn setup on S3 "
          f"({'moto' if moto else endpoint}), same machine")
    print(f"{'upload':<28}{'client MB/s':>12}{'web CPU s':>11}{'web RSS +MiB':>14}{'load avg':>10}")
    for label, rate, cpu, rss, load in rows:
        print(f"{label:<28}{rate:>12.0f}{cpu:>11.2f}{rss:>14.0f}{load:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
