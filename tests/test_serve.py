"""`manage.py serve`, what `make run` starts: the styled error pages (DEBUG off), the address it
was given, and Ctrl-C or SIGTERM stopping the web server and the Celery worker with every process
they started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc), whatever session or group it moved to."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        children = {child for child, parent in parents.items() if parent in frontier}
        frontier = children - found
        found |= children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("serve") / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY")}
    env.update(REGISTRY_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="registry.settings")
    result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return env


def test_demo_setup_names_the_address_serve_listens_on(demo_env):
    result = subprocess.run([sys.executable, "manage.py", "demo_setup", "--address", "0.0.0.0:8123"], cwd=ROOT,
                            env=demo_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "sign in at http://0.0.0.0:8123/ as 'demo'" in result.stdout
    assert "8000" not in result.stdout


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_shows_styled_errors_and_stops_with_its_worker(demo_env, stop_signal):
    port = free_port()
    serve = subprocess.Popen([sys.executable, "manage.py", "serve", f"127.0.0.1:{port}", "--concurrency", "1"],
                             cwd=ROOT, env=demo_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                status, _ = get(f"{base}/login/")
                break
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                assert serve.poll() is None, serve.stdout.read()
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.5)
        assert status == 200
        # Not Django's technical 404 (every URL pattern listed): the registry's own page, styled.
        status, body = get(f"{base}/no-such-page/")
        assert status == 404
        assert "There is nothing here" in body and "URLconf" not in body and "dashboard/app." in body
        css = body.split('href="/static/dashboard/app.', 1)[1].split('"', 1)[0]
        assert get(f"{base}/static/dashboard/app.{css}")[0] == 200
        # The worker (celery and its pool) runs beside the web server: runserver, the worker and
        # at least one pool process.
        deadline = time.monotonic() + 60
        while len(started := {pid for pid in descendants(serve.pid) if alive(pid)}) < 3:
            assert time.monotonic() < deadline, f"the worker did not start: {started}"
            time.sleep(0.5)
        assert any(b"celery" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid in started)

        serve.send_signal(stop_signal)
        output, _ = serve.communicate(timeout=60)
        assert serve.returncode == 0, output
        assert f"Serving the registry on http://127.0.0.1:{port}/" in output
        deadline = time.monotonic() + 10
        while [pid for pid in started if alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [pid for pid in started if alive(pid)] == [], "processes left running after serve stopped"
    finally:
        for pid in descendants(serve.pid) if serve.poll() is None else ():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if serve.poll() is None:
            serve.kill()
            serve.wait()
