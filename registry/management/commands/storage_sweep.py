from datetime import timedelta

from django.core.management.base import BaseCommand

from registry.services.maintenance import storage_orphans_delete


class Command(BaseCommand):
    help = ("Delete stored files that no format points to (left by interrupted uploads) and abort S3 "
            "multipart uploads never finished. Prints each key.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than-hours", type=float, default=24.0)
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, older_than_hours, dry_run, **options):
        for key in storage_orphans_delete(older_than=timedelta(hours=older_than_hours), dry_run=dry_run):
            self.stdout.write(key)
