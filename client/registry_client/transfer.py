"""Streaming file transfer: hashing, uploads restarted on transient errors, downloads resumed
with Range and verified before they are moved into place. Nothing is ever read whole into
memory: files move in CHUNK-sized blocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from registry_client._http import RETRY_STATUSES, Transport, error_from_response, logger
from registry_client.errors import TransportError

CHUNK = 1024 * 1024


def want_progress(progress: bool | None) -> bool:
    """Progress bars when asked, or by default when stderr is a terminal (not in CI logs)."""
    if progress is not None:
        return progress
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def reset(self, total: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool, total: int | None, description: str):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm  # imported on use: `import registry_client` stays light

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=description, file=sys.stderr,
                leave=False, dynamic_ncols=True)


@dataclass(frozen=True)
class Digests:
    sha256: str
    md5: str
    size: int


def hash_file(path: str | os.PathLike, *, md5: bool = True, progress: bool = False, description: str = "") -> Digests:
    """SHA-256 (and MD5) of a file in one streaming pass."""
    sha = hashlib.sha256()
    md = hashlib.md5(usedforsecurity=False) if md5 else None
    size = 0
    bar = progress_bar(progress, os.path.getsize(path), description or f"hashing {Path(path).name}")
    try:
        with open(path, "rb") as handle:
            while block := handle.read(4 * CHUNK):
                sha.update(block)
                if md is not None:
                    md.update(block)
                size += len(block)
                bar.update(len(block))
    finally:
        bar.close()
    return Digests(sha.hexdigest(), md.hexdigest() if md is not None else "", size)


class ParallelHasher:
    """SHA-256 and MD5 of a stream, each in its own thread, so that hashing a download overlaps
    with receiving it (hashlib releases the GIL on large updates). Queues are bounded: at most
    QUEUE_BLOCKS blocks wait per digest, so memory stays constant however fast the network is."""

    QUEUE_BLOCKS = 32

    def __init__(self):
        import queue
        import threading

        self._queues = []
        self._threads = []
        self._hashes = [hashlib.sha256(), hashlib.md5(usedforsecurity=False)]
        for digest in self._hashes:
            blocks: queue.Queue = queue.Queue(maxsize=self.QUEUE_BLOCKS)
            thread = threading.Thread(target=self._run, args=(digest, blocks), daemon=True)
            thread.start()
            self._queues.append(blocks)
            self._threads.append(thread)

    @staticmethod
    def _run(digest, blocks) -> None:
        while (block := blocks.get()) is not None:
            digest.update(block)

    def update(self, block: bytes) -> None:
        for blocks in self._queues:
            blocks.put(block)

    def finish(self) -> tuple[str, str]:
        """(sha256 hex, md5 hex) once every queued block is hashed."""
        for blocks in self._queues:
            blocks.put(None)
        for thread in self._threads:
            thread.join()
        return self._hashes[0].hexdigest(), self._hashes[1].hexdigest()


def _file_body(path: str | os.PathLike, size: int, bar) -> Iterator[bytes]:
    """The file in CHUNK blocks; stops at `size` so a file growing meanwhile is not over-sent."""
    remaining = size
    with open(path, "rb") as handle:
        while remaining > 0:
            block = handle.read(min(CHUNK, remaining))
            if not block:
                break  # the file shrank: the server answers 400 "cut off", not a silent short file
            remaining -= len(block)
            bar.update(len(block))
            yield block


def upload_file(transport: Transport, url_path: str, path: str | os.PathLike, *, sha256: str, size: int,
                filename: str, progress: bool, timeout: float | None = None) -> dict:
    """PUT the raw file, streamed with its Content-Length and X-Checksum-Sha256.

    A transient failure (connection reset or refused, timeout, 502/503/504) restarts the PUT
    from byte 0 after a backoff: the server stores each attempt under a new key and only
    points the format at a complete one, so a cut-off attempt leaves nothing behind.
    """
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size), "X-Checksum-Sha256": sha256}
    request_timeout = httpx.Timeout(transport.timeout, read=max(timeout or 0, transport.timeout, 600.0))
    bar = progress_bar(progress, size, f"uploading {filename}")

    def send() -> httpx.Response:
        bar.reset(total=size)
        return transport.client.put(url_path, params={"filename": filename}, headers=headers,
                                    content=_file_body(path, size, bar), timeout=request_timeout)

    try:
        response = transport.retrying("PUT", url_path, send, idempotent=True)
    finally:
        bar.close()
    if response.status_code != 200:
        raise error_from_response(response, "PUT", url_path)
    return response.json()


@dataclass
class Downloaded:
    path: Path
    sha256: str
    md5: str
    size: int


def download_to(transport: Transport, url_path: str, destination: Path, *, progress: bool,
                expected_size: int | None = None, description: str = "") -> Downloaded:
    """Stream a file into a temporary file next to `destination` and hash it on the way.

    An interrupted transfer resumes with `Range` (guarded by `If-Range` with the ETag, so a
    file replaced meanwhile is fetched again from the start). The temporary file is returned
    unverified as `Downloaded.path`; the caller compares digests, then renames or deletes it.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part",
                                         delete=False)
    temp = Path(handle.name)
    bar = progress_bar(progress, expected_size, description or f"downloading {destination.name}")
    hasher = ParallelHasher()
    state = {"written": 0, "etag": ""}

    def restart() -> None:
        nonlocal hasher
        hasher.finish()
        hasher = ParallelHasher()
        handle.seek(0)
        handle.truncate()
        state["written"] = 0
        bar.reset(total=expected_size)

    def attempt() -> int:
        """One GET; returns the status (raises httpx errors for the retry loop)."""
        headers = {"Accept": "application/octet-stream"}
        if state["written"] and state["etag"]:
            headers["Range"] = f"bytes={state['written']}-"
            headers["If-Range"] = state["etag"]
        elif state["written"]:
            restart()  # without an ETag a resumed range could splice two different files
        with transport.client.stream("GET", url_path, headers=headers,
                                     timeout=httpx.Timeout(transport.timeout, read=max(transport.timeout, 300.0))) as response:
            if response.status_code not in (200, 206):
                response.read()
                raise _HTTPFailure(response)
            if response.status_code == 200 and state["written"]:
                restart()  # the server sent the whole file again
            state["etag"] = response.headers.get("ETag", "") or state["etag"]
            for block in response.iter_raw():  # as received (~64 KiB): no re-chunking copies
                handle.write(block)
                hasher.update(block)
                state["written"] += len(block)
                bar.update(len(block))
        return 200

    tries = 0
    try:
        while True:
            try:
                attempt()
                break
            except _HTTPFailure as failure:
                response = failure.response
                if response.status_code in RETRY_STATUSES and tries < transport.retries:
                    tries += 1
                    delay = transport.backoff(tries, response)
                    logger.warning("GET %s answered %d; retry %d/%d in %.1f s", url_path, response.status_code,
                                   tries, transport.retries, delay)
                    _sleep(delay)
                    continue
                raise error_from_response(response, "GET", url_path) from None
            except httpx.TransportError as exc:
                if tries >= transport.retries:
                    raise TransportError(f"Download of {url_path} failed: {type(exc).__name__}: {exc}",
                                         method="GET", path=url_path) from exc
                tries += 1
                delay = transport.backoff(tries)
                logger.warning("GET %s interrupted after %d bytes (%s); resuming, retry %d/%d in %.1f s",
                               url_path, state["written"], type(exc).__name__, tries, transport.retries, delay)
                handle.flush()
                _sleep(delay)
        handle.flush()
        os.fsync(handle.fileno())
    except BaseException:
        handle.close()
        hasher.finish()
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    finally:
        bar.close()
    handle.close()
    sha256, md5 = hasher.finish()
    return Downloaded(temp, sha256, md5, state["written"])


class _HTTPFailure(Exception):
    def __init__(self, response: httpx.Response):
        self.response = response


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)


def place(temp: Path, destination: Path) -> Path:
    """Atomically move a verified temporary file to its destination (same folder)."""
    os.replace(temp, destination)
    return destination


def discard(temp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
