"""Streaming file transfer: hashing, uploads restarted on transient errors, downloads resumed
with Range and verified before they are moved into place. Nothing is ever read whole into
memory: files move in CHUNK-sized blocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from registry_client._http import RETRY_STATUSES, Transport, error_from_response, logger
from registry_client.errors import TransportError

CHUNK = 1024 * 1024


ON = {"1", "true", "yes", "on"}
OFF = {"0", "false", "no", "off"}


def want_progress(progress: bool | None) -> bool:
    """Whether to draw progress bars: `progress` when given, else $REGISTRY_PROGRESS (1/0,
    true/false), else where someone watches: a Jupyter notebook or a terminal, not a CI log."""
    if progress is not None:
        return progress
    setting = os.environ.get("REGISTRY_PROGRESS", "").strip().lower()
    if setting in ON:
        return True
    if setting in OFF:
        return False
    if in_notebook():
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def in_notebook() -> bool:
    """Running in a Jupyter kernel (the test tqdm.auto makes too): stderr is then a pipe to the
    notebook, not a terminal, yet someone is watching the cell."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # an IPython we do not know: not worth failing a transfer for
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
    # tqdm.auto draws a notebook widget in Jupyter (with ipywidgets), a text bar elsewhere;
    # imported on use, so `import registry_client` stays light.
    from tqdm.auto import tqdm

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


def upload_file(transport: Transport, format_path: str, path: str | os.PathLike, *, sha256: str, size: int,
                filename: str, progress: bool, timeout: float | None = None, parallel: int = 4) -> dict:
    """Upload a format's file (`format_path`: …/formats/<kind>/); return the format.

    Straight to the bucket when the registry stores files on S3 (a direct upload: parts sent
    `parallel` at a time to presigned URLs, resumed from the parts already stored, even by a
    new process); else streamed through the registry with PUT.
    """
    if size > 0:
        direct = DirectUpload(transport, format_path, path, sha256=sha256, size=size, filename=filename,
                              progress=progress, parallel=parallel)
        result = direct.run()
        if result is not None:
            return result
    return put_file(transport, f"{format_path}file", path, sha256=sha256, size=size, filename=filename,
                    progress=progress, timeout=timeout)


def put_file(transport: Transport, url_path: str, path: str | os.PathLike, *, sha256: str, size: int,
             filename: str, progress: bool, timeout: float | None = None, params: dict | None = None,
             ok: tuple[int, ...] = (200,)) -> dict:
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
        return transport.client.put(url_path, params={"filename": filename} if params is None else params,
                                    headers=headers,
                                    content=_file_body(path, size, bar), timeout=request_timeout)

    try:
        response = transport.retrying("PUT", url_path, send, idempotent=True)
    finally:
        bar.close()
    if response.status_code not in ok:
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


def _state_dir() -> Path:
    base = os.environ.get("REGISTRY_UPLOAD_STATE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "registry-client", "uploads")
    return Path(base)


class DirectUpload:
    """A file sent straight to the registry's bucket in parts (the registry's direct uploads).

    The session id is kept in a small state file keyed by the target and the file's SHA-256,
    so an interrupted upload (a crash, a lost network, Ctrl-C) resumes in a new process: the
    parts the bucket already holds are listed and only the others are sent.
    """

    URL_BATCH = 500

    def __init__(self, transport: Transport, format_path: str, path, *, sha256: str, size: int, filename: str,
                 progress: bool, parallel: int):
        self.t = transport
        self.format_path = format_path
        self.path = Path(path)
        self.sha256, self.size, self.filename = sha256, size, filename
        self.progress = progress
        self.parallel = max(1, parallel)
        key = hashlib.sha256(f"{transport.url}|{format_path}|{sha256}|{size}".encode()).hexdigest()[:32]
        self.state_file = _state_dir() / f"{key}.json"

    # --- session ---------------------------------------------------------------------------
    def _saved_session(self) -> str | None:
        try:
            return json.loads(self.state_file.read_text())["upload"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save_session(self, upload_id: str) -> None:
        with contextlib.suppress(OSError):
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self.state_file.write_text(json.dumps({"upload": upload_id, "file": str(self.path)}))

    def _forget_session(self) -> None:
        with contextlib.suppress(OSError):
            self.state_file.unlink()

    def _parts(self, upload_id: str, numbers: list[int] | None = None) -> dict | None:
        params = {"numbers": _ranges(numbers)} if numbers else {"numbers": "1"}
        response = self.t.retrying("GET", f"uploads/{upload_id}/parts/",
                                   lambda: self.t.client.get(f"uploads/{upload_id}/parts/", params=params))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise error_from_response(response, "GET", f"uploads/{upload_id}/parts/")
        return response.json()

    def _start(self) -> dict | None:
        path = f"{self.format_path}uploads/"
        body = {"size": self.size, "sha256": self.sha256, "filename": self.filename}
        response = self.t.retrying("POST", path, lambda: self.t.client.post(path, json=body))
        if response.status_code == 409 and _code(response) == "direct_upload_unavailable":
            return None
        if response.status_code != 201:
            raise error_from_response(response, "POST", path)
        return response.json()

    # --- transfer --------------------------------------------------------------------------
    def run(self) -> dict | None:
        """The format once uploaded, or None if the registry takes no direct uploads."""
        session, listing = None, None
        saved = self._saved_session()
        if saved:
            listing = self._parts(saved)
            if listing is not None:
                session = listing["upload"]
                logger.info("resuming upload %s of %s", saved, self.filename)
        if session is None:
            session = self._start()
            if session is None:
                return None
            self._save_session(session["id"])
            listing = None
        upload_id = session["id"]
        stored = {part["number"]: part["size"] for part in (listing or {}).get("stored", [])}
        for attempt in range(3):
            missing = [n for n in range(1, session["part_count"] + 1)
                       if stored.get(n) != _expected(session, n)]
            self._send(upload_id, session, missing, done=sum(stored.values()))
            path = f"uploads/{upload_id}/complete/"
            response = self.t.retrying("POST", path, lambda: self.t.client.post(path), idempotent=True)
            if response.status_code == 200:
                self._forget_session()
                return response.json()
            if response.status_code != 409 or attempt == 2:
                if response.status_code == 404:
                    self._forget_session()
                raise error_from_response(response, "POST", path)
            listing = self._parts(upload_id)  # a part went missing or short: send what is not right
            stored = {part["number"]: part["size"] for part in (listing or {}).get("stored", [])}
        raise AssertionError("unreachable")

    def _send(self, upload_id: str, session: dict, numbers: list[int], *, done: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        bar = progress_bar(self.progress, self.size, f"uploading {self.filename}")
        bar.update(done)
        try:
            with httpx.Client(timeout=httpx.Timeout(self.t.timeout, write=600.0, read=600.0)) as bucket, \
                    ThreadPoolExecutor(self.parallel) as pool:
                for start in range(0, len(numbers), self.URL_BATCH):
                    batch = numbers[start:start + self.URL_BATCH]
                    urls = (self._parts(upload_id, batch) or {}).get("urls", {})
                    jobs = [pool.submit(self._send_part, bucket, urls[str(n)], session, n, bar) for n in batch]
                    for job in jobs:
                        job.result()
        finally:
            bar.close()

    def _send_part(self, bucket: httpx.Client, url: str, session: dict, number: int, bar) -> None:
        offset = (number - 1) * session["part_size"]
        length = _expected(session, number)
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(length)  # one part (8 MiB or so) in memory per parallel sender
        if len(data) != length:
            raise TransportError(f"{self.path} changed while uploading (part {number} is short)",
                                 method="PUT", path="(bucket)")
        for attempt in range(self.t.retries + 1):
            try:
                response = bucket.put(url, content=data)
            except httpx.TransportError as exc:
                if attempt >= self.t.retries:
                    raise TransportError(f"Cannot send part {number} to the bucket: {exc}", method="PUT",
                                         path="(bucket)") from exc
            else:
                if response.status_code == 200:
                    bar.update(length)
                    return
                if response.status_code not in RETRY_STATUSES or attempt >= self.t.retries:
                    raise TransportError(f"The bucket refused part {number}: HTTP {response.status_code} "
                                         f"{response.text[:200]}", method="PUT", path="(bucket)")
            time.sleep(self.t.backoff(attempt + 1))


def _expected(session: dict, number: int) -> int:
    if number < session["part_count"]:
        return session["part_size"]
    return session["size"] - session["part_size"] * (session["part_count"] - 1)


def _ranges(numbers: list[int]) -> str:
    pieces, first, last = [], None, None
    for n in sorted(numbers):
        if first is None:
            first = last = n
        elif n == last + 1:
            last = n
        else:
            pieces.append(f"{first}-{last}" if last != first else str(first))
            first = last = n
    if first is not None:
        pieces.append(f"{first}-{last}" if last != first else str(first))
    return ",".join(pieces)


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code", ""))
    except ValueError:
        return ""
