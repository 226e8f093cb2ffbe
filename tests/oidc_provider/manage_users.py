"""Change the test provider's users while it runs: `python -m tests.oidc_provider.manage_users
USERNAME PASSWORD [GROUP ...]` creates or updates the user (e-mail USERNAME@example.com) and
sets exactly these groups."""

import os
import sys


def main(username: str, password: str, *groups: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"
    import django

    django.setup()
    from django.contrib.auth.models import Group, User

    user, _ = User.objects.get_or_create(username=username)
    user.email = f"{username}@example.com"
    user.first_name = username.capitalize()
    user.set_password(password)
    user.save()
    user.groups.set([Group.objects.get_or_create(name=name)[0] for name in groups])


if __name__ == "__main__":
    main(*sys.argv[1:])
