"""Statements compiled once per process (registry/prepared.py) read what the plain ORM reads."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from registry import selectors, services
from registry.api.authentication import _token_by_hash, _token_query
from registry.models import Model
from registry.prepared import CompiledQuery
from registry.services.contexts import hash_token

pytestmark = pytest.mark.django_db


def _fields(obj, model) -> dict:
    return {field.attname: getattr(obj, field.attname) for field in model._meta.concrete_fields}


def test_a_compiled_token_lookup_reads_what_the_orm_reads(context, other_context, django_assert_num_queries):
    user = get_user_model().objects.create_user(username="grants", password="x")
    Group.objects.create(name="team").user_set.add(user)
    services.membership_set(actor=None, context=context, role="viewer", username="grants")
    services.membership_set(actor=None, context=other_context, role="editor", group="team")
    _, plain = services.token_create(actor=None, user=user, read_only=True, expires_in_days=3)
    for _ in range(3):  # the first run compiles; the others reuse the statement
        with django_assert_num_queries(1):
            found = _token_by_hash(hash_token(plain))
        expected = _token_query(hash_token(plain)).get()
        assert _fields(found, type(expected)) == _fields(expected, type(expected))
        assert _fields(found.user, get_user_model()) == _fields(expected.user, get_user_model())
        assert sorted(found.registry_grants, key=str) == sorted(expected.registry_grants, key=str)
    assert _token_by_hash(hash_token(plain + "x")) is None


def test_a_compiled_model_read_follows_each_requests_values(users, context, other_context):
    from tests.conftest import client_for

    mine = services.model_create(actor=users["editor"], context=context, name="churn", tags=["b", "a"])
    theirs = services.model_create(actor=None, context=other_context, name="secret")
    for model in (mine, theirs):
        answer = client_for(users["viewer"]).get(f"/api/v1/models/{model.pk}/")
        assert answer.status_code == (200 if model is mine else 404)
    assert client_for(users["viewer"]).get(f"/api/v1/models/{mine.pk}/").json()["tags"] == ["a", "b"]
    staff = get_user_model().objects.create_user(username="root", password="x", is_superuser=True)
    assert client_for(staff).get(f"/api/v1/models/{theirs.pk}/").json()["name"] == "secret"
    assert client_for(users["viewer"]).get(f"/api/v1/models/{uuid.uuid4()}/").status_code == 404


def test_the_same_statement_serves_lists_of_another_length(users, context, other_context):
    query = CompiledQuery(lambda contexts: Model.objects.filter(context_id__in=contexts).order_by("name_key"))
    a = services.model_create(actor=None, context=context, name="a")
    b = services.model_create(actor=None, context=other_context, name="b")
    assert [m.pk for m in query.run(contexts=[context.pk])] == [a.pk]
    assert [m.pk for m in query.run(contexts=[other_context.pk])] == [b.pk]
    assert [m.pk for m in query.run(contexts=[context.pk, other_context.pk])] == [a.pk, b.pk]


def test_a_value_the_orm_writes_into_the_sql_is_refused():
    query = CompiledQuery(lambda n: Model.objects.all()[:n])  # LIMIT is not a parameter
    with pytest.raises(TypeError, match="did not become parameters"):
        query.run(n=3)


def test_the_dashboard_session_reads_the_same_model(users, context):
    model = services.model_create(actor=users["editor"], context=context, name="churn", tags=["x"])
    session_user = get_user_model().objects.get(pk=users["viewer"].pk)  # roles not read with a token
    shown = selectors.model_detail(session_user, model.pk)
    assert shown.pk == model.pk and shown.tag_names == ["x"]
