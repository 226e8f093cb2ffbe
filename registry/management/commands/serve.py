import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from registry.celery import ensure_broker_folders


class Command(BaseCommand):
    help = "Serve the dashboard and API with a real Celery worker (and beat) beside it. Used by `make run`."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args, addrport, concurrency, **options):
        ensure_broker_folders()
        worker = subprocess.Popen([
            sys.executable, "-m", "celery", "-A", "registry", "worker", "--beat",
            "--loglevel", "INFO", "--concurrency", str(concurrency),
            "--schedule", str(settings.CELERY_BEAT_SCHEDULE_FILENAME),
        ])
        try:
            call_command("runserver", addrport, use_reloader=False)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
