from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from registry import services
from registry.models import Context, Model


class Command(BaseCommand):
    help = "Create a demo context, user and model (idempotent). Used by `make run`."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo")
        parser.add_argument("--address", default="127.0.0.1:8000", help="Where `serve` will listen (HOST:PORT).")

    @transaction.atomic
    def handle(self, *args, username, password, address, **options):
        users = get_user_model().objects
        user = users.filter(username=username).first()
        if user is None:
            user = users.create_user(username=username, password=password)
        context = Context.objects.filter(slug="demo").first() or services.context_create(
            actor=None, slug="demo", name="Demo team"
        )
        services.membership_set(actor=None, context=context, role="admin", username=username)
        if not Model.objects.filter(context=context).exists():
            model = services.model_create(
                actor=user, context=context, name="churn-classifier", task="Tabular classification",
                tags=["tabular", "demo"],
                description="A **demo** model. Create versions and upload files over the API.",
            )
            services.version_create(actor=user, model=model, framework="scikit-learn", framework_version="1.5.2",
                                    hyperparameters={"C": 1.0, "max_iter": 200})
        self.stdout.write(
            f"Demo ready: sign in at http://{address}/ as '{username}' / '{password}' (context 'demo').\n"
            f"API token: .venv/bin/python manage.py token_create {username}"
        )
