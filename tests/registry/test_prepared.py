"""Statements compiled once per process (registry/prepared.py) read what the plain ORM reads."""

from __future__ import annotations

import datetime
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


def test_a_limit_is_a_parameter_and_an_offset_is_refused(context):
    for name in "abcd":
        services.model_create(actor=None, context=context, name=name)
    first = CompiledQuery(lambda limit: Model.objects.order_by("name_key")[:limit])
    assert [m.name for m in first.run(limit=1)] == ["a"]
    assert [m.name for m in first.run(limit=3)] == ["a", "b", "c"]  # the same statement
    assert len(first._compiled) == 1
    rest = CompiledQuery(lambda start: Model.objects.order_by("name_key")[start:])  # OFFSET is in the SQL text
    with pytest.raises(TypeError, match="did not become parameters"):
        rest.run(start=1)


@pytest.mark.parametrize("build, message", [
    (lambda name: Model.objects.filter(name=name.upper()), "cannot be swapped"),
    (lambda name: Model.objects.filter(name=name.lower()), "cannot be swapped"),
    (lambda name: Model.objects.filter(name=name.casefold()), "cannot be swapped"),
    (lambda name: Model.objects.filter(name=name.strip()), "did not become parameters"),
    (lambda name: Model.objects.filter(name=name[:3]), "did not become parameters"),
    (lambda name: Model.objects.filter(name__contains=name.upper()), "cannot be swapped"),
])
def test_a_value_the_build_changes_is_refused_not_run_unchanged(build, message):
    with pytest.raises(TypeError, match=message):
        CompiledQuery(build).run(name="churn")


def test_a_list_of_one_and_none_are_two_shapes(context):
    a = services.model_create(actor=None, context=context, name="a")
    services.model_create(actor=None, context=context, name="b")
    query = CompiledQuery(lambda ids: Model.objects.order_by("name_key").filter(
        **({} if ids is None else {"pk__in": ids})))
    assert len(query.run(ids=None)) == 2
    assert [m.pk for m in query.run(ids=[a.pk])] == [a.pk]
    assert query.run(ids=[]) == []  # matches nothing whatever the values


def test_flags_and_orders_are_shapes(context):
    for name in "ab":
        services.model_create(actor=None, context=context, name=name)
    query = CompiledQuery(lambda order, context_id: Model.objects.filter(context_id=context_id).order_by(order))
    assert [m.name for m in query.run(shape={"order": "name_key"}, context_id=context.pk)] == ["a", "b"]
    assert [m.name for m in query.run(shape={"order": "-name_key"}, context_id=context.pk)] == ["b", "a"]
    with pytest.raises(TypeError, match="shape"):
        CompiledQuery(lambda flag: Model.objects.all()).run(flag=True)


def test_the_shapes_kept_are_bounded(context):
    query = CompiledQuery(lambda ids: Model.objects.filter(pk__in=ids), shapes_kept=3)
    for length in range(1, 7):
        query.run(ids=[uuid.uuid4()] * length)
    assert len(query._compiled) == 3


LIKE_TERMS = ["100%", "%", "_", "fraud_", "\\", "a\\%_b", "ß", "SS", "ss", "İ", "i̇", "é", "É", "ÉCOLE", "école",
              "x", "", "'", "\"\"", "%%", "__"]
DESCRIPTIONS = ["Finds card payments: 100% of them", "fraud_detector", "back\\slash a\\%_b", "Straße", "STRASSE",
                "İstanbul", "istanbul", "ÉCOLE école", "it's \"quoted\"", "100%% sure", "snake__case", "plain"]


@pytest.mark.parametrize("lookup", ["contains", "icontains", "startswith", "istartswith", "endswith", "iendswith",
                                    "exact", "iexact"])
def test_like_parameters_are_escaped_as_the_orm_escapes_them(context, lookup):
    for number, description in enumerate(DESCRIPTIONS):
        services.model_create(actor=None, context=context, name=f"m{number}", description=description)
    query = CompiledQuery(lambda term: Model.objects.filter(**{f"description__{lookup}": term}).order_by("name_key"))
    for term in LIKE_TERMS + DESCRIPTIONS:
        plain = [m.name for m in query.queryset(term=term)]
        assert [m.name for m in query.run(term=term)] == plain, term
    if lookup == "contains":  # the escaping is real: a wildcard matches itself only
        assert {m.description for m in query.run(term="%")} == {DESCRIPTIONS[0], DESCRIPTIONS[2], DESCRIPTIONS[9]}
        assert {m.description for m in query.run(term="_")} == {DESCRIPTIONS[1], DESCRIPTIONS[2], DESCRIPTIONS[10]}


def test_a_datetime_is_swapped_as_the_backend_writes_it(context):
    a = services.model_create(actor=None, context=context, name="a")
    b = services.model_create(actor=None, context=context, name="b")
    query = CompiledQuery(lambda since: Model.objects.filter(created_at__gte=since).order_by("created_at"))
    assert [m.pk for m in query.run(since=a.created_at)] == [a.pk, b.pk]
    assert [m.pk for m in query.run(since=b.created_at)] == [b.pk]
    with pytest.raises(TypeError, match="naive"):
        CompiledQuery(lambda since: Model.objects.filter(created_at__gte=since)).run(
            since=datetime.datetime(2020, 1, 1))


def test_the_dashboard_session_reads_the_same_model(users, context):
    model = services.model_create(actor=users["editor"], context=context, name="churn", tags=["x"])
    session_user = get_user_model().objects.get(pk=users["viewer"].pk)  # roles not read with a token
    shown = selectors.model_detail(session_user, model.pk)
    assert shown.pk == model.pk and shown.tag_names == ["x"]
