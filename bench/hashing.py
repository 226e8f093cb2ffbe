"""Hashing throughput of registry.storage.hash_stream next to a plain hashlib reference.

Run by hand: .venv/bin/python bench/hashing.py [--mib 1024]
"""

import argparse
import hashlib
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from registry.storage import hash_stream  # noqa: E402


def reference(path: str, chunk: int = 8 * 1024 * 1024) -> tuple[str, str]:
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as handle:
        while data := handle.read(chunk):
            md5.update(data)
            sha.update(data)
    return md5.hexdigest(), sha.hexdigest()


def streamed(path: str) -> tuple[str, str]:
    with open(path, "rb") as handle:
        return hash_stream(handle)[:2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile(delete=False) as tmp:
        block = os.urandom(8 * 1024 * 1024)
        for _ in range(args.mib // 8):
            tmp.write(block)
        path = tmp.name
    size = os.path.getsize(path)
    try:
        for name, fn in (("hashlib, one thread (reference)", lambda: reference(path)),
                         ("registry hash_stream (2 threads)", lambda: streamed(path))):
            fn()  # warm the page cache
            start = time.perf_counter()
            result = fn()
            elapsed = time.perf_counter() - start
            print(f"{name:36s} {size / elapsed / 1e6:8.1f} MB/s  ({result[1][:12]}…)")
    finally:
        os.unlink(path)


if __name__ == "__main__":
    main()
