"""A real HTTP receiver for webhook deliveries: http.server on 127.0.0.1 in a thread, which
records every request and answers as a test scripts it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes
    at: float


@dataclass
class Reply:
    """How to answer one request: status, body, extra headers, a delay before answering, or an
    endless body (`stream`: sends bytes until the client hangs up)."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    stream: bool = False


class Receiver:
    def __init__(self):
        self.requests: list[Received] = []
        self.replies: list[Reply] = []  # used in order; then `default`
        self.default = Reply()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver.requests.append(Received(self.command, self.path, dict(self.headers), body, time.time()))
                reply = receiver.replies.pop(0) if receiver.replies else receiver.default
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if reply.stream:
                        self.send_header("Content-Type", "application/octet-stream")
                        self.end_headers()  # no length: the body runs until the connection closes
                        self.close_connection = True
                        while True:
                            self.wfile.write(b"x" * 65536)
                            self.wfile.flush()
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = do_GET = do_PUT = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    """A receiver on loopback, and the setting that lets deliveries reach loopback."""
    settings.REGISTRY_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    server = Receiver()
    yield server
    server.stop()
