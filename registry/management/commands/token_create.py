from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from registry import services
from registry.errors import RegistryError


class Command(BaseCommand):
    help = "Create an API token for a user. Prints only the token (it is not stored in plain)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--read-only", action="store_true")
        parser.add_argument("--expires-in-days", type=int)
        parser.add_argument("--name", default="manage.py")
        parser.add_argument("--context", action="append", dest="contexts", metavar="SLUG",
                            help="Limit the token to this context (repeatable)")
        parser.add_argument("--model", action="append", dest="models", metavar="CONTEXT/NAME",
                            help="Limit the token to this model: context/name or an id (repeatable)")
        parser.add_argument("--permission", action="append", dest="permissions", metavar="PERMISSION",
                            help="Limit the token to this permission, e.g. view-model (repeatable)")

    def handle(self, *args, username, read_only, expires_in_days, name, contexts=None, models=None,
               permissions=None, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"There is no user '{username}'.")
        try:
            _, plain = services.token_create(
                actor=None, user=user, name=name, read_only=read_only, expires_in_days=expires_in_days,
                contexts=contexts, models=models, permissions=permissions,
            )
        except RegistryError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(plain)
