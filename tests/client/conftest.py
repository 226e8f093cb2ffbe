"""The client's tests run against the real registry: pytest-django's live server (a threaded
WSGI server in this process, on the test database), reached over TCP by the client, its
command-line tool in subprocesses, or through `CuttingProxy` to break connections on purpose.
Queued work runs eagerly, so an upload is hashed and inspected before its PUT answers."""

from __future__ import annotations

import os
import pickle
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from registry_client import Registry
from tests.conftest import stored_files, token_for

# A clean pickle (builtins only): hashing and introspection take it to `ready`.
MODEL_BYTES = pickle.dumps({"coef": [0.25 * i for i in range(50)], "intercept": 0.5, "classes": ["no", "yes"]})


@pytest.fixture
def server_url(live_server, transactional_db) -> str:
    return live_server.url.rstrip("/")


@pytest.fixture(autouse=True)
def client_env(tmp_path, monkeypatch):
    """A private download cache, and no developer's config or token leaking into a test."""
    monkeypatch.setenv("REGISTRY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("REGISTRY_CONFIG", str(tmp_path / "absent-config.toml"))
    monkeypatch.setenv("REGISTRY_UPLOAD_STATE_DIR", str(tmp_path / "upload-state"))
    # The tests run in a git checkout: only test_provenance.py wants its provenance captured.
    monkeypatch.setenv("REGISTRY_PROVENANCE", "0")
    for name in ("REGISTRY_URL", "REGISTRY_TOKEN", "REGISTRY_CONTEXT", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def tokens(users) -> dict[str, str]:
    """A token per persona: the four roles, the outsider, and a read-only viewer token."""
    result = {name: token_for(user) for name, user in users.items()}
    result["readonly"] = token_for(users["viewer"], read_only=True)
    return result


@pytest.fixture
def connect(server_url, tokens):
    """connect("publisher") -> a Registry client for that persona (fast retries, no bars)."""
    opened = []

    def make(persona: str = "publisher", *, url: str | None = None, **options) -> Registry:
        options.setdefault("retry_backoff", 0.01)
        options.setdefault("progress", False)
        registry = Registry(url or server_url, token=tokens[persona], **options)
        opened.append(registry)
        return registry

    yield make
    for registry in opened:
        registry.close()


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "model.pkl"
    path.write_bytes(MODEL_BYTES)
    return path


@pytest.fixture
def published(connect, model_file, tmp_path):
    """acme/churn v1, published with a required pkl and an optional onnx-less 'other' file,
    aliased production. Returns (registry, model, version)."""
    registry = connect("publisher")
    model = registry.context("acme").model("churn", create=True, tags=["tabular"])
    version = model.create_version(framework="scikit-learn", framework_version="1.5.2")
    version.upload("pkl", model_file)
    extra = tmp_path / "notes.bin"
    extra.write_bytes(b"optional side file\n" * 100)
    version.upload("other", extra, required=False, fail_on_tamper=False)
    version.publish()
    model.set_alias("production", version)
    return registry, model, version


def stored_path(storage_dir: str, version, kind: str) -> Path:
    """Where the registry keeps the bytes of a format (to change them behind its back)."""
    from registry.models import Format

    fmt = Format.objects.get(version__model_id=version.model_id, version__number=version.number, kind=kind)
    return Path(storage_dir) / fmt.storage_key


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def run_cli(*argv: str, env: dict | None = None, cwd: str | os.PathLike | None = None, timeout: float = 120,
            input: str | None = None):
    """Run `python -m registry_client ...` as a user would; returns the CompletedProcess. Its
    stdin is `input`, else empty (not a terminal)."""
    import subprocess

    full_env = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "registry_client", *argv], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False, input=input or "")


class CuttingProxy:
    """A TCP proxy in front of the live server that breaks one connection on purpose.

    The first connection whose client→server bytes exceed `cut_upload_after` (only a file
    body is that large), or whose server→client bytes exceed `cut_download_after`, is
    closed abruptly in both directions; every other connection passes through untouched.
    `request_heads` keeps the first line and headers of each request seen.
    """

    def __init__(self, target_url: str, *, cut_upload_after: int | None = None, cut_download_after: int | None = None):
        parts = urlsplit(target_url)
        self.target = (parts.hostname, parts.port)
        self.cut_upload_after = cut_upload_after
        self.cut_download_after = cut_download_after
        self.cuts = 0
        self.request_heads: list[str] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            state = {"up": 0, "down": 0, "closed": False}
            for source, sink, direction in ((client, upstream, "up"), (upstream, client, "down")):
                threading.Thread(target=self._pump, args=(source, sink, direction, state, client, upstream),
                                 daemon=True).start()

    def _pump(self, source, sink, direction, state, client, upstream):
        limit = self.cut_upload_after if direction == "up" else self.cut_download_after
        while True:
            try:
                data = source.recv(256 * 1024)
            except OSError:
                data = b""
            if not data:
                break
            if direction == "up" and data[:8].split(b" ", 1)[0] in (b"GET", b"PUT", b"POST", b"PATCH", b"DELETE"):
                self.request_heads.append(data.split(b"\r\n\r\n", 1)[0].decode("latin-1"))
            state[direction] += len(data)
            if limit is not None and state[direction] > limit:
                with self._lock:
                    cut = self.cuts == 0
                    if cut:
                        self.cuts += 1
                if cut:
                    # Forward only part of this block, then drop both sides mid-transfer.
                    try:
                        sink.sendall(data[: len(data) // 2])
                    except OSError:
                        pass
                    break
            try:
                sink.sendall(data)
            except OSError:
                break
        for sock in (client, upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self):
        # shutdown() before close(): closing a socket another thread is blocked on does not
        # wake that thread (nor send a FIN), which would leave live-server threads and their
        # database sessions behind.
        for sock in [self._server, *self._sockets]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def proxy_factory(server_url):
    proxies = []

    def make(**options) -> CuttingProxy:
        proxy = CuttingProxy(server_url, **options)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


__all__ = ["MODEL_BYTES", "CuttingProxy", "run_cli", "stored_files", "stored_path", "wait_for"]
