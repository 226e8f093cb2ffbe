from django.core.management.base import BaseCommand, CommandError

from registry import services
from registry.errors import RegistryError


class Command(BaseCommand):
    help = "Create a context (team workspace). Prints its slug."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="")

    def handle(self, *args, slug, name, **options):
        try:
            context = services.context_create(actor=None, slug=slug, name=name)
        except RegistryError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(context.slug)
