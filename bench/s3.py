"""Upload, download and hashing throughput of the S3 backend (registry/s3.py), with peak memory.

Starts moto's S3 server in a process of its own (or uses --endpoint, e.g. a MinIO), streams a
generated file of --mib MiB into a bucket the way an upload does, reads it back the way a
download does, hashes it the way a worker does, and prints MB/s and this process's peak RSS
above its baseline (the S3 server's memory is not counted). Run by hand:

    .venv/bin/python bench/s3.py [--mib 512] [--endpoint http://127.0.0.1:9000 --bucket models]
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
MiB = 1024 * 1024


class Generated(io.RawIOBase):
    def __init__(self, size: int):
        self.remaining = size
        self.block = os.urandom(MiB)

    def readable(self):
        return True

    def read(self, n=-1):
        n = self.remaining if n is None or n < 0 else min(n, self.remaining, MiB)
        self.remaining -= n
        return self.block[:n]


class PeakRss:
    """Samples this process's RSS every 10 ms while in use."""

    def __init__(self):
        import psutil

        self.process = psutil.Process()

    def __enter__(self):
        self.baseline = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()

    @property
    def above_baseline_mib(self) -> float:
        return (self.peak - self.baseline) / MiB


def start_moto() -> tuple[str, subprocess.Popen]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return url, process
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit("moto's server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=512, help="file size in MiB (default 512)")
    parser.add_argument("--endpoint", help="an S3 server to use instead of starting moto")
    parser.add_argument("--bucket", help="an existing bucket (with --endpoint)")
    args = parser.parse_args()

    moto = None
    if args.endpoint:
        endpoint = args.endpoint
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "registry")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "registry-secret")
    else:
        endpoint, moto = start_moto()
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret")
    bucket = args.bucket or f"bench-{uuid.uuid4().hex[:8]}"
    os.environ.update(REGISTRY_S3_BUCKET=bucket, AWS_S3_ENDPOINT_URL=endpoint, REGISTRY_S3_REGION="us-east-1",
                      DJANGO_SETTINGS_MODULE="registry.settings")
    import django

    django.setup()
    from django.core.files.storage import default_storage

    from registry import storage

    client = default_storage.client
    if not args.bucket:
        client.create_bucket(Bucket=bucket)
    size = args.mib * MiB
    print(f"S3 backend against {endpoint} ({'moto' if moto else 'given server'}), "
          f"{args.mib} MiB file, {default_storage.part_size // MiB} MiB parts")
    try:
        with PeakRss() as rss:
            start = time.perf_counter()
            key, stored = storage.save_stream(Generated(size), max_bytes=size, expected=size)
            elapsed = time.perf_counter() - start
        assert stored == size
        print(f"upload (multipart from a stream)  {size / elapsed / 1e6:8.1f} MB/s   peak RSS +{rss.above_baseline_mib:6.1f} MiB")

        with PeakRss() as rss:
            start = time.perf_counter()
            total = 0
            with storage.open_for_read(key) as handle:
                while data := handle.read(MiB):
                    total += len(data)
            elapsed = time.perf_counter() - start
        assert total == size
        print(f"download (streamed GetObject)     {size / elapsed / 1e6:8.1f} MB/s   peak RSS +{rss.above_baseline_mib:6.1f} MiB")

        with PeakRss() as rss:
            start = time.perf_counter()
            _, _, hashed = storage.hash_object(key)
            elapsed = time.perf_counter() - start
        assert hashed == size
        print(f"worker hashing (MD5 + SHA-256)    {size / elapsed / 1e6:8.1f} MB/s   peak RSS +{rss.above_baseline_mib:6.1f} MiB")

        start = time.perf_counter()
        ranges = 50
        with storage.open_for_read(key) as handle:
            for i in range(ranges):
                handle.seek((i * 7919 * MiB) % (size - MiB))
                assert len(handle.read(64 * 1024)) == 64 * 1024
        print(f"ranged reads (64 KiB at random)   {(time.perf_counter() - start) / ranges * 1000:8.1f} ms each")
        start = time.perf_counter()
        for i in range(10):
            client.get_object(Bucket=bucket, Key=key, Range="bytes=0-65535")["Body"].read()
        print(f"  the server's own floor: one bare 64 KiB GetObject takes {(time.perf_counter() - start) * 100:.1f} ms")
        storage.delete_quietly([key])
    finally:
        if not args.bucket:
            for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
            client.delete_bucket(Bucket=bucket)
        if moto:
            moto.terminate()
            moto.wait()


if __name__ == "__main__":
    main()
