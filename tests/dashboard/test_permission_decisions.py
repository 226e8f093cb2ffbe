"""Where the dashboard decides who may write (registry/permissions.py): every view that writes
names its permission with @requires, decided before the form is read, so a refused POST is 403
whatever the form holds, and an object in a context the user cannot see is 404."""

from __future__ import annotations

import inspect

import pytest
from django.test import Client
from django.urls import get_resolver, reverse

from registry import services
from registry.models import AuditEvent

pytestmark = pytest.mark.django_db

# Views that write but need no role in a context: a user's own API tokens.
SIGNED_IN_ONLY = {"token_create", "token_revoke"}


def _innermost(view):
    while hasattr(view, "__wrapped__"):
        view = view.__wrapped__
    return view


def test_every_view_that_writes_names_its_permission():
    undecided = []
    for pattern in get_resolver("dashboard.urls").url_patterns:
        view = pattern.callback
        if "services." not in inspect.getsource(_innermost(view)):
            continue  # writes nothing (a page, a form, a download)
        if not hasattr(view, "required_permission") and _innermost(view).__name__ not in SIGNED_IN_ONLY:
            undecided.append(str(pattern.pattern))
    assert undecided == []


@pytest.fixture
def world(context, users):
    model = services.model_create(actor=None, context=context, name="Churn")
    services.version_create(actor=None, model=model)
    record = services.record_create(actor=None, context=context, name="train", uri="s3://d/train")
    return {"ctx": context.slug, "model_id": str(model.pk), "record_id": str(record.pk), "number": 1}


# (URL name, the ids it takes, who is refused, a form the view would refuse with 400 if it read it)
INVALID_FORMS = [
    ("model-create", ["ctx"], "viewer", {"name": ""}),
    ("model-edit", ["model_id"], "viewer", {"name": "x" * 500}),
    ("model-delete", ["model_id"], "publisher", {"confirm_name": "not its name"}),
    ("version-create", ["model_id"], "viewer", {"hyperparameters": "{not json"}),
    ("version-edit", ["model_id", "number"], "viewer", {"config": "[1, 2]"}),
    ("format-upload", ["model_id", "number"], "viewer", {"kind": "no-such-kind"}),
    ("attachment-upload", ["model_id"], "viewer", {"name": "../no-file"}),
    ("alias-set", ["model_id"], "editor", {"alias": "", "version": "99"}),
    ("record-create", ["ctx"], "viewer", {"name": "", "uri": ""}),
    ("record-edit", ["record_id"], "viewer", {"name": "", "uri": ""}),
    ("member-add", ["ctx"], "publisher", {"role": "emperor"}),
    ("trusted-import-add", ["ctx"], "editor", {"imports": "", "reason": ""}),
    ("webhook-create", ["ctx"], "publisher", {"url": "ftp://x", "events": ["no.such"]}),
]


@pytest.mark.parametrize(("name", "ids", "refused", "form"), INVALID_FORMS, ids=[case[0] for case in INVALID_FORMS])
@pytest.mark.parametrize("persona", ["refused", "outsider"])
def test_a_refused_post_is_403_whatever_the_form_holds(name, ids, refused, form, persona, users, world):
    client = Client()
    client.force_login(users[refused if persona == "refused" else "outsider"])
    path = reverse(f"dashboard:{name}", kwargs={key: world[key] for key in ids})
    events = AuditEvent.objects.count()

    response = client.post(path, form)

    assert response.status_code == (403 if persona == "refused" else 404)
    assert AuditEvent.objects.count() == events
    # The form is invalid indeed: an admin gets it back with its errors.
    admin = Client()
    admin.force_login(users["admin"])
    assert admin.post(path, form).status_code == 400
