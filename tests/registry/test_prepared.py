"""Statements compiled once per process (registry/prepared.py) read what the plain ORM reads."""

from __future__ import annotations

import datetime
import uuid
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from registry import keyset, selectors, services
from registry.api.authentication import _token_by_hash, _token_query
from registry.errors import InvalidInput
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


def test_a_slice_is_parameters_and_an_open_offset_is_refused(context):
    for name in "abcd":
        services.model_create(actor=None, context=context, name=name)
    first = CompiledQuery(lambda limit: Model.objects.order_by("name_key")[:limit])
    assert [m.name for m in first.run(limit=1)] == ["a"]
    assert [m.name for m in first.run(limit=3)] == ["a", "b", "c"]  # the same statement
    assert len(first._compiled) == 1
    rest = CompiledQuery(lambda start: Model.objects.order_by("name_key")[start:])  # OFFSET is in the SQL text
    with pytest.raises(TypeError, match="did not become parameters"):
        rest.run(start=1)
    window = CompiledQuery(lambda offset, limit: Model.objects.order_by("name_key")[offset:offset + limit])
    assert [m.name for m in window.run(offset=1, limit=2)] == ["b", "c"]
    assert [m.name for m in window.run(offset=0, limit=1)] == ["a"]  # the same statement, OFFSET 0
    assert [m.name for m in window.run(offset=3, limit=5)] == ["d"]
    assert len(window._compiled) == 1
    changed = CompiledQuery(lambda offset, limit: Model.objects.order_by("name_key")[offset:offset + limit + 1])
    with pytest.raises(TypeError, match="did not become parameters"):  # a bound the build computed
        changed.run(offset=1, limit=2)


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


class _RefusedLock:
    def __enter__(self):
        raise AssertionError("the lock was taken")

    def __exit__(self, *exc):
        return False


def test_a_kept_statement_is_found_without_the_lock_and_stays_the_most_recent(context):
    query = CompiledQuery(lambda ids: Model.objects.filter(pk__in=ids), shapes_kept=2)
    query.run(ids=[uuid.uuid4()])
    query.run(ids=[uuid.uuid4()] * 2)
    kept, lock = query._compiled, query._compiled._lock
    kept._lock = _RefusedLock()
    query.run(ids=[uuid.uuid4()])  # kept: no lock, and now the most recently used
    kept._lock = lock
    query.run(ids=[uuid.uuid4()] * 3)  # a new shape drops the least recently used: the one of 2
    assert [key[-1] for key in kept._items] == [(("ids", ("list", 1)),), (("ids", ("list", 3)),)]


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


# --- the model list: each page compiled reads what the plain queryset of the same build reads ---

ORDERINGS = ["", "name", "-name", "created", "-created", "updated", "-updated", "versions", "-versions"]
SEARCHES = ["", "   ", "a", "FRAUD", "fraud_", "_", "%", "100%", "\\", "a\\%_b", "ß", "SS", "strasse", "İ", "i̇", "istanbul",
            "É", "école", "ünï", "tabular", "  spaced  ", "nothing-matches"]


@pytest.fixture
def shelf(context, other_context, users):
    """Models with ties in every order (equal update times, equal version counts), tags shared and
    not, names and descriptions with LIKE wildcards and case-folding traps, and one elsewhere."""
    specs = [("churn", "Predicts **churn**", ["tabular", "Fraud"], 2), ("fraud_detector", "100% of them", ["TABULAR", "realtime"], 3),
             ("Straße-model", "Reads street names", ["geo"], 0), ("STRASSE-two", "İstanbul streets", ["geo", "tabular"], 1),
             ("école", "Accents and UPPER case", ["Ünïcode"], 0), ("back-slash", "a\\%_b and snake__case", [], 2),
             ("alpha", "", ["tabular"], 1), ("beta", "istanbul", ["realtime"], 1), ("gamma", "plain", [], 0)]
    made = {}
    for name, description, tags, versions in specs:
        model = services.model_create(actor=users["editor"], context=context, name=name, description=description,
                                      tags=tags)
        for _ in range(versions):
            services.version_create(actor=users["editor"], model=model)
        made[name] = model
    tie = made["alpha"].updated_at
    Model.objects.filter(name__in=["beta", "gamma", "churn"]).update(updated_at=tie, created_at=tie)
    services.model_create(actor=None, context=other_context, name="alpha-elsewhere", tags=["tabular"])
    return made


def _shown(model) -> tuple:
    return (_fields(model, Model), model.context.slug, model.tag_names, model.version_numbers, model.alias_rows,
            model.owner.username if model.owner else None, model.created_by and model.created_by.username,
            getattr(model, "version_count", None))


def _pages(user, context, *, size, **filters) -> list:
    """Every page of the list walking forward, then back from the last one: rows and cursors."""
    pages, cursor = [], None
    while True:
        page = selectors.model_list(user, context, cursor=cursor, size=size, **filters)
        pages.append(([_shown(m) for m in page.rows], page.next_cursor, page.previous_cursor))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        assert len(pages) < 50
    cursor = page.previous_cursor
    while cursor is not None:
        page = selectors.model_list(user, context, cursor=cursor, size=size, **filters)
        pages.append(([_shown(m) for m in page.rows], page.next_cursor, page.previous_cursor))
        cursor = page.previous_cursor
    return pages


def _compiled_and_plain(monkeypatch, read):
    """`read()` with the list's statement compiled, then with the plain queryset of the same build."""
    compiled = read()
    with monkeypatch.context() as patched:
        page_query = selectors._MODEL_PAGE
        patched.setattr(page_query, "run", lambda shape=None, **values: list(page_query.queryset(shape, **values)))
        plain = read()
    return compiled, plain


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_every_order_pages_alike_compiled_and_plain(monkeypatch, users, context, shelf, ordering):
    for size in (1, 2, 4, 50):
        compiled, plain = _compiled_and_plain(monkeypatch, lambda: _pages(users["viewer"], context, size=size,
                                                                          ordering=ordering))
        assert compiled == plain
        forward = [shown[0]["name"] for rows, *_ in compiled[: -(len(compiled) // 2) or None] for shown in rows]
        if size == 1:  # walking forward, every model of the context once
            assert len(compiled) == 2 * len(shelf) - 1
            assert sorted(forward) == sorted(shelf)


@pytest.mark.parametrize("search", SEARCHES)
def test_every_search_reads_alike_compiled_and_plain(monkeypatch, users, context, shelf, search):
    for ordering, tags, size in [("", [], 50), ("-updated", [], 2), ("versions", ["tabular"], 1),
                                 ("-name", ["TABULAR", "fraud"], 50)]:
        compiled, plain = _compiled_and_plain(monkeypatch, lambda: _pages(
            users["viewer"], context, size=size, search=search, tags=tags, ordering=ordering))
        assert compiled == plain, (ordering, tags, size)


@pytest.mark.parametrize("search, names", [
    ("%", {"fraud_detector", "back-slash"}), ("_", {"fraud_detector", "back-slash"}),
    ("a\\%_b", {"back-slash"}), ("fraud", {"fraud_detector", "churn"}),  # churn by its tag
    ("  ISTANBUL ", {"beta"}), ("nothing-matches", set()),
])
def test_a_search_term_is_text_not_a_pattern(users, context, shelf, search, names):
    page = selectors.model_list(users["viewer"], context, search=search)
    assert {m.name for m in page.rows} == names


def test_names_and_tags_read_alike_compiled_and_plain(monkeypatch, users, context, shelf):
    for filters in [{"name": "FRAUD_detector"}, {"name": "straße-MODEL"}, {"name": "%"}, {"name": " "},
                    {"tags": ["geo"]}, {"tags": ["geo", "tabular"]}, {"tags": ["nope"]},
                    {"tags": ["tabular"], "name": "alpha"}]:
        compiled, plain = _compiled_and_plain(monkeypatch, lambda: _pages(users["viewer"], context, size=2, **filters))
        assert compiled == plain, filters
    assert [m.name for m in selectors.model_list(users["viewer"], context, name="FRAUD_detector").rows] == [
        "fraud_detector"]
    assert {m.name for m in selectors.model_list(users["viewer"], context, tags=["geo", "TABULAR"]).rows} == {
        "STRASSE-two"}


def test_a_page_of_the_list_is_one_statement_at_any_depth(users, context, shelf, django_assert_num_queries):
    viewer = get_user_model().objects.get(pk=users["viewer"].pk)
    first = selectors.model_list(viewer, context, ordering="-versions", tags=["tabular"], search="a", size=1)
    for _ in range(2):
        with django_assert_num_queries(1):
            second = selectors.model_list(viewer, context, ordering="-versions", tags=["tabular"], search="a",
                                          size=1, cursor=first.next_cursor)
        with django_assert_num_queries(1):
            back = selectors.model_list(viewer, context, ordering="-versions", tags=["tabular"], search="a",
                                        size=1, cursor=second.previous_cursor)
        assert [m.pk for m in back.rows] == [m.pk for m in first.rows]
        assert second.rows and second.rows[0].pk != first.rows[0].pk


def test_a_token_limited_to_models_pages_through_those_only(users, context, shelf):
    from tests.conftest import client_for

    chosen = [shelf["beta"], shelf["churn"], shelf["gamma"]]
    _, plain = services.token_create(actor=users["viewer"], user=users["viewer"], name="three",
                                     models=[str(model.pk) for model in chosen])
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    for ordering in ("", "-updated", "versions"):
        names, url = [], f"/api/v1/contexts/acme/models/?page_size=1&ordering={ordering}"
        while url:
            answer = client.get(url).json()
            names += [row["name"] for row in answer["results"]]
            url = answer["next"]
        assert sorted(names) == ["beta", "churn", "gamma"]
    assert client.get("/api/v1/contexts/acme/models/?name=alpha").json()["results"] == []
    assert [row["name"] for row in client.get("/api/v1/contexts/acme/models/?search=a&tag=tabular").json()[
        "results"]] == ["churn"]  # alpha matches too, but is not the token's


@pytest.mark.parametrize("count", [2**31 - 1, -(2**31), 2**31, 2**40, -(2**31) - 1])
def test_a_cursor_at_or_beyond_a_columns_range_reads_alike_compiled_and_plain(monkeypatch, users, context, shelf,
                                                                               count):
    """A cursor is not trusted: one beyond its column's range (which the ORM would leave out of the
    statement, and a compiled statement would send) is refused; one at the edges reads alike."""
    _, keys = selectors._model_list_order("-version_count")
    for direction in (keyset.NEXT, keyset.PREVIOUS):
        cursor = keyset.encode(keys, SimpleNamespace(version_count=count, name_key="m", id=uuid.UUID(int=0)),
                               direction)

        def read():
            page = selectors.model_list(users["viewer"], context, ordering="-versions", cursor=cursor, size=4)
            return [_shown(m) for m in page.rows], page.next_cursor, page.previous_cursor

        if not -(2**31) <= count < 2**31:
            with pytest.raises(InvalidInput, match="Invalid cursor"):
                read()
            continue
        compiled, plain = _compiled_and_plain(monkeypatch, read)
        assert compiled == plain
        assert len(compiled[0]) == (4 if (count > 0) == (direction == keyset.NEXT) else 0)


def test_a_wrapped_integer_beyond_its_type_is_refused():
    from registry.prepared import _wrapped

    class Int4(int):
        pass

    assert _wrapped(Int4)(2**31 - 1) == 2**31 - 1
    with pytest.raises(ValueError, match="beyond the range"):
        _wrapped(Int4)(2**31)


# --- CompiledInsert -------------------------------------------------------------------------

def _row(model, pk) -> dict:
    return {field.attname: getattr(model.objects.get(pk=pk), field.attname) for field in model._meta.concrete_fields}


def test_a_compiled_insert_writes_and_returns_what_save_does(context, users, django_assert_num_queries):
    from registry.names import lookalike_key
    from registry.prepared import CompiledInsert

    insert = CompiledInsert(Model)
    for number in range(3):  # the first compiles; the others reuse the statement
        compiled = Model(context=context, name=f"Churn-{number}", name_key=f"churn-{number}",
                         name_skeleton=lookalike_key(f"churn-{number}"), description="Reads ß and İ",
                         metadata={"a": [1, None]}, created_by=users["editor"])
        saved = Model(context=context, name=f"Saved-{number}", name_key=f"saved-{number}",
                      name_skeleton=lookalike_key(f"saved-{number}"), description="Reads ß and İ",
                      metadata={"a": [1, None]}, created_by=users["editor"])
        with django_assert_num_queries(1):
            assert insert.insert(compiled) == [compiled]
        saved.save(force_insert=True)
        assert not compiled._state.adding and compiled._state.db == "default"
        # The generated columns come back as save() sets them, and the row reads back alike.
        assert (compiled.name_upper, compiled.description_upper) == (f"CHURN-{number}", saved.description_upper)
        stored, expected = _row(Model, compiled.pk), _row(Model, saved.pk)
        assert compiled.created_at is not None and stored["created_at"] == compiled.created_at
        differ = {"id", "name", "name_key", "name_skeleton", "name_upper", "created_at", "updated_at"}
        assert {k: v for k, v in stored.items() if k not in differ} == {k: v for k, v in expected.items() if k not in differ}


def test_a_compiled_insert_of_several_rows_sets_each_ones_key(context, django_assert_num_queries):
    from registry.models import AuditEvent
    from registry.prepared import CompiledInsert

    insert = CompiledInsert(AuditEvent)
    for count in (1, 3, 3, 2):
        events = [AuditEvent(context=context, actor_name="x", action="model.create", object_type="model",
                             summary=f"event {count}.{i}", changes={"n": i}) for i in range(count)]
        with django_assert_num_queries(1):
            insert.insert(*events)
        assert all(event.pk is not None for event in events)
        assert [AuditEvent.objects.get(pk=event.pk).summary for event in events] == [e.summary for e in events]
        assert [AuditEvent.objects.get(pk=event.pk).changes for event in events] == [{"n": i} for i in range(count)]


def test_a_compiled_insert_sends_the_signals_save_sends(context):
    from django.db.models.signals import post_save, pre_save

    from registry.models import AuditEvent
    from registry.prepared import CompiledInsert

    seen = []

    def record(sender, instance, **kwargs):
        seen.append((kwargs["signal"], instance.pk is None if kwargs["signal"] is pre_save else kwargs["created"]))

    pre_save.connect(record, sender=AuditEvent)
    post_save.connect(record, sender=AuditEvent)
    try:
        CompiledInsert(AuditEvent).insert(AuditEvent(context=context, actor_name="x", action="a", object_type="t",
                                                     summary="s"))
    finally:
        pre_save.disconnect(record, sender=AuditEvent)
        post_save.disconnect(record, sender=AuditEvent)
    assert seen == [(pre_save, True), (post_save, True)]


def test_a_compiled_insert_refuses_what_it_cannot_compile(context):
    from django.db.models import F

    from registry.models import AuditEvent
    from registry.prepared import CompiledInsert

    insert = CompiledInsert(AuditEvent)
    before = AuditEvent.objects.count()
    with pytest.raises(TypeError, match="expression"):
        insert.insert(AuditEvent(context=context, actor_name=F("action"), action="a", object_type="t", summary="s"))
    saved = AuditEvent.objects.create(context=context, actor_name="x", action="a", object_type="t", summary="s")
    with pytest.raises(TypeError, match="new AuditEvent"):
        insert.insert(saved)
    with pytest.raises(TypeError, match="new AuditEvent"):
        insert.insert(Model(context=context, name="m"))
    assert AuditEvent.objects.count() == before + 1  # the one saved() above


def test_a_failed_compiled_insert_marks_its_transaction_for_rollback(context):
    from django.db import IntegrityError, transaction
    from django.db.transaction import TransactionManagementError

    from registry.names import lookalike_key
    from registry.prepared import CompiledInsert

    insert = CompiledInsert(Model)
    insert.insert(Model(context=context, name="taken", name_key="taken", name_skeleton=lookalike_key("taken")))
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            insert.insert(Model(context=context, name="taken", name_key="taken", name_skeleton=lookalike_key("taken")))
        # As after a failed save(): the transaction can only be rolled back.
        with pytest.raises(TransactionManagementError):
            Model.objects.count()
        transaction.set_rollback(True)
    assert Model.objects.filter(name_key="taken").count() == 1
