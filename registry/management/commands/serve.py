"""`manage.py serve`: the demo registry of `make run`, a web server and a Celery worker (with
beat) beside it, stopped together.

The web server runs with DEBUG off, as a registry would: visitors get the styled 403, 404 and 500
pages, never Django's technical pages (which list every URL pattern, and settings on a 500).
That needs a secret key (one is kept in the data dir, readable by its owner only), cookies
allowed over plain http (the demo listens on localhost) and the static files collected.
`--debug` keeps DEBUG on, for working on the code.

Both children run in process groups of their own, so a signal meant for one never half-stops
the other: Ctrl-C (SIGINT), SIGTERM or SIGHUP to this command stops both groups (a worker's
pool processes too), and a child that exits on its own stops the other. On Linux the children
also get SIGTERM if this command is killed outright.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from registry.celery import ensure_broker_folders

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STOP_TIMEOUT_SECONDS = 20
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux), even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: Ctrl-C and SIGTERM still stop both
        pass


def demo_secret_key(data_dir: Path) -> str:
    """A secret key for the demo, made once and kept in the data dir (mode 600)."""
    path = data_dir / "demo-secret-key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def demo_environment(*, debug: bool) -> dict[str, str]:
    """The environment of the web server and the worker: this one, with DEBUG off unless asked."""
    env = dict(os.environ, REGISTRY_DATA_DIR=str(settings.DATA_DIR))
    if debug:
        env["DEBUG"] = "true"
        return env
    env["DEBUG"] = "false"
    env.setdefault("SECRET_KEY", demo_secret_key(settings.DATA_DIR))
    env.setdefault("REGISTRY_SECURE_COOKIES", "false")  # http://127.0.0.1: no TLS to require
    return env


class Command(BaseCommand):
    help = ("Serve the dashboard and API (DEBUG off: the styled error pages) with a real Celery worker "
            "and beat beside it; Ctrl-C or SIGTERM stops both. Used by `make run`.")

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2)
        parser.add_argument("--debug", action="store_true",
                            help="Keep DEBUG on (Django's technical error pages), for development.")

    def handle(self, *args, addrport, concurrency, debug, **options):
        ensure_broker_folders()
        env = demo_environment(debug=debug)
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        if not debug:  # DEBUG off serves the collected, hashed files (WhiteNoise)
            subprocess.run([*manage, "collectstatic", "--noinput", "--verbosity", "0"], env=env, check=True)
        stop = {"signal": None}

        def on_signal(signum, frame):
            stop["signal"] = signum

        previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
        children = []
        try:
            children.append(self._start([*manage, "runserver", addrport, "--noreload"], env))
            children.append(self._start([
                sys.executable, "-m", "celery", "-A", "registry", "worker", "--beat",
                "--loglevel", "INFO", "--concurrency", str(concurrency),
                "--schedule", str(settings.CELERY_BEAT_SCHEDULE_FILENAME),
            ], env))
            host, _, port = addrport.rpartition(":")
            self.stdout.write(f"Serving the registry on http://{host or '127.0.0.1'}:{port}/ with a Celery "
                              f"worker{' (DEBUG on)' if debug else ''}; Ctrl-C stops both.")
            while stop["signal"] is None and all(child.poll() is None for child in children):
                time.sleep(0.2)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._stop(children)
        if stop["signal"] is None:  # a child ended on its own
            failed = [child for child in children if child.returncode]
            if failed:
                raise SystemExit(failed[0].returncode)

    @staticmethod
    def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=_die_with_parent)

    def _stop(self, children: list[subprocess.Popen]) -> None:
        """SIGTERM to each child's process group, then SIGKILL to what is left after the timeout."""
        for child in children:
            _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"Process {child.pid} did not stop in {STOP_TIMEOUT_SECONDS} s; killing it.")
        for child in children:
            _signal_group(child, signal.SIGKILL)  # stragglers of the group (a worker's pool)
            if child.poll() is None:
                child.wait()


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)  # the child leads its own session and group
    except ProcessLookupError:
        pass
