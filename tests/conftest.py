import os
import shutil
import tempfile

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from registry import services
from registry.models import Context

from tests.factories import UserFactory

ROLES = ["viewer", "editor", "publisher", "admin"]


def pytest_configure(config):
    # Under CI the suite runs on PostgreSQL; falling back to SQLite would hide real failures.
    if os.environ.get("CI") == "true" and settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.exit("CI=true but DATABASE_URL does not point to PostgreSQL", returncode=1)


@pytest.fixture(autouse=True)
def eager_tasks(settings):
    """Queued work runs in-process when the transaction commits (a real worker is tested
    separately in tests/registry/test_worker_integration.py)."""
    from registry.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Fixtures create many users; the production hasher would cost seconds per test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def storage_dir(settings):
    """Each test stores files in a fresh folder, so leftovers can be asserted on."""
    folder = tempfile.mkdtemp(prefix="registry-test-files-")
    # Assigning the setting fires Django's setting_changed, which resets the storage handler.
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": folder}},
    }
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def stored_files(folder: str) -> list[str]:
    found = []
    for root, _, files in os.walk(folder):
        found.extend(os.path.relpath(os.path.join(root, name), folder) for name in files)
    return sorted(found)


@pytest.fixture
def context(db):
    return services.context_create(actor=None, slug="acme", name="Acme")


@pytest.fixture
def other_context(db):
    return services.context_create(actor=None, slug="other", name="Other")


@pytest.fixture
def users(context, other_context):
    """One user per role in `context`, plus an outsider who is admin of another context only."""
    people = {}
    for role in ROLES:
        user = UserFactory(username=role)
        services.membership_set(actor=None, context=context, role=role, username=user.username)
        people[role] = user
    outsider = UserFactory(username="outsider")
    services.membership_set(actor=None, context=other_context, role="admin", username="outsider")
    people["outsider"] = outsider
    return people


def token_for(user, *, read_only=False) -> str:
    return services.token_create(actor=None, user=user, read_only=read_only)[1]


def client_for(user=None, *, read_only=False) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user, read_only=read_only)}")
    return client


@pytest.fixture
def clients(users):
    """API clients by persona: anonymous, outsider, the four roles and a read-only admin token."""
    result = {"anonymous": client_for(None)}
    for name, user in users.items():
        result[name] = client_for(user)
    result["readonly"] = client_for(users["admin"], read_only=True)
    return result


@pytest.fixture
def editor(clients):
    return clients["editor"]


@pytest.fixture
def admin_client(clients):
    return clients["admin"]


@pytest.fixture
def ctx_obj(context) -> Context:
    return context
