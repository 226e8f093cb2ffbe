from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from registry import services
from registry.errors import RegistryError
from registry.models import Context, Role


class Command(BaseCommand):
    help = "Grant a user a role in a context (or change it). Prints 'USERNAME ROLE SLUG'."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("username")
        parser.add_argument("role", choices=Role.values)
        parser.add_argument("--create-user", action="store_true", help="Create the user if it does not exist.")
        parser.add_argument("--password", help="Password for a user created with --create-user.")

    def handle(self, *args, slug, username, role, create_user, password, **options):
        context = Context.objects.filter(slug=slug).first()
        if context is None:
            raise CommandError(f"There is no context '{slug}'.")
        users = get_user_model().objects
        with transaction.atomic():
            if not users.filter(username=username).exists():
                if not create_user:
                    raise CommandError(f"There is no user '{username}' (use --create-user).")
                user = users.create_user(username=username)
                if password:
                    user.set_password(password)
                else:
                    user.set_unusable_password()
                user.save(update_fields=["password"])
            elif password:
                raise CommandError("--password only applies to a user created with --create-user.")
            try:
                services.membership_set(actor=None, context=context, role=role, username=username)
            except RegistryError as exc:
                raise CommandError(exc.message) from None
        self.stdout.write(f"{username} {role} {slug}")
