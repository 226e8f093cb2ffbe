"""One read path per use case, on SQLite and PostgreSQL alike.

The selectors read a resource and the relations it shows in one statement (registry.expressions:
a relation as a JSON array), and a read that only needs a version's row (an upload, a file,
metrics, formats, a manifest) reads nothing else. These tests pin what those statements
answer, from a catalogue with the traps a search must survive (LIKE wildcards, case folding,
accents), and how many statements each read costs.
"""

import uuid

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.models import OuterRef
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registry import selectors, services
from registry.expressions import JSONList, UUIDText
from registry.models import ApiToken, Model, TrainingRecord, Version

from tests.conftest import client_for
from tests.factories import UserFactory
from tests.helpers import store_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(context, users):
    """Models with owners, tags shared and not, versions, published versions behind aliases,
    metadata, names with LIKE wildcards and case-folding traps, and one in another context."""
    editor = users["editor"]
    made = {}
    specs = [
        ("churn-classifier", "Predicts customer **churn**", ["tabular", "Fraud"], 2, {"team": "growth"}),
        ("fraud_detector", "Finds card payments to block: 100% of them", ["TABULAR", "realtime"], 3, {}),
        ("Straße-model", "Reads street names", ["geo"], 0, {"nested": {"a": [1, 2.5, None]}}),
        ("speech", "English ASR for call centres", [], 1, {}),
        ("ÉCOLE", "Accents and UPPER case", ["Ünïcode"], 0, {}),
    ]
    for name, description, tags, versions, metadata in specs:
        model = services.model_create(actor=editor, context=context, name=name, description=description,
                                      tags=tags, metadata=metadata, owner=users["viewer"].username)
        for _ in range(versions):
            services.version_create(actor=editor, model=model)
        made[name] = model
    publisher = users["publisher"]
    for number in (1, 2):
        version = made["fraud_detector"].versions.get(number=number)
        store_file(version)
        services.version_publish(actor=publisher, version=version)
    services.alias_set(actor=publisher, model=made["fraud_detector"], name="production", version_number=2)
    services.alias_set(actor=publisher, model=made["fraud_detector"], name="canary", version_number=1)
    other = services.context_create(actor=None, slug="elsewhere", name="Elsewhere")
    services.model_create(actor=None, context=other, name="churn-classifier", description="not yours")
    return made


def names(client, query=""):
    response = client.get(f"/api/v1/contexts/acme/models/{query}")
    assert response.status_code == 200, response.content
    return [m["name"] for m in response.json()["results"]]


# By name_key; where ÉCOLE sorts among them is the database's collation's business.
ASCII = ["churn-classifier", "fraud_detector", "speech", "Straße-model"]


@pytest.mark.parametrize("query, expected", [
    ("?search=fraud", ["churn-classifier", "fraud_detector"]),  # a tag of one, the name of the other
    ("?search=FRAUD", ["churn-classifier", "fraud_detector"]),
    ("?search=%25", ["fraud_detector"]),  # a literal %, not a wildcard
    ("?search=_", ["fraud_detector"]),  # a literal _
    ("?search=100%25", ["fraud_detector"]),
    ("?search=street", ["Straße-model"]),
    ("?search=upper", ["ÉCOLE"]),
    ("?search=%20call%20", ["speech"]),
    ("?search=nothing", []),
    ("?tag=tabular", ["churn-classifier", "fraud_detector"]),
    ("?tag=TABULAR&tag=realtime", ["fraud_detector"]),
    ("?tag=tabular&tag=geo", []),
    ("?tag=ünïcode", ["ÉCOLE"]),
    ("?name=FRAUD_DETECTOR", ["fraud_detector"]),
    ("?name=%20speech%20", ["speech"]),
    ("?name=école", ["ÉCOLE"]),
    ("?name=fraud", []),
    ("?search=fraud&tag=realtime", ["fraud_detector"]),
    ("?ordering=created", ["churn-classifier", "fraud_detector", "Straße-model", "speech", "ÉCOLE"]),
    ("?ordering=-created", ["ÉCOLE", "speech", "Straße-model", "fraud_detector", "churn-classifier"]),
    ("?ordering=-versions&page_size=2", ["fraud_detector", "churn-classifier"]),
])
def test_model_list_filters_and_orders(clients, catalog, query, expected):
    assert names(clients["viewer"], query) == expected


def test_model_list_pages_in_its_order(clients, catalog):
    """The second page of two, by the cursor of the first (the list pages by cursor)."""
    first = clients["viewer"].get("/api/v1/contexts/acme/models/?ordering=created&page_size=2").json()
    second = clients["viewer"].get(first["next"]).json()
    assert [m["name"] for m in second["results"]] == ["Straße-model", "speech"]


@pytest.mark.parametrize("query, expected", [
    ("", ASCII),
    ("?ordering=name", ASCII),
    ("?ordering=-name", ASCII[::-1]),
    ("?ordering=versions", ["Straße-model", "speech", "churn-classifier", "fraud_detector"]),
    ("?ordering=-versions", ["fraud_detector", "churn-classifier", "speech", "Straße-model"]),
])
def test_model_list_orders_by_name_then(clients, catalog, query, expected):
    listed = names(clients["viewer"], query)
    assert len(listed) == 5 and [name for name in listed if name != "ÉCOLE"] == expected


def test_model_list_refuses_an_unknown_ordering(clients, catalog):
    response = clients["viewer"].get("/api/v1/contexts/acme/models/?ordering=bogus")
    assert response.status_code == 400 and response.json()["field"] == "ordering"


def test_a_model_reads_the_same_in_the_list_and_alone(clients, catalog, users):
    fraud = catalog["fraud_detector"]
    listed = clients["viewer"].get("/api/v1/contexts/acme/models/?search=fraud").json()["results"][1]
    alone = clients["viewer"].get(f"/api/v1/models/{fraud.pk}/").json()
    assert listed == alone
    assert alone["aliases"] == {"canary": 1, "production": 2}
    assert alone["version_numbers"] == [1, 2, 3] and alone["latest_version"] == 3
    assert alone["tags"] == ["realtime", "tabular"]  # a shared tag keeps the spelling it was made with
    assert (alone["owner"], alone["created_by"], alone["updated_by"]) == ("viewer", "editor", "editor")
    assert alone["context"] == "acme" and alone["id"] == str(fraud.pk)
    # Sessions (the dashboard's door) and tokens read it the same way.
    session = client_for()
    session.force_login(users["viewer"])
    assert session.get(f"/api/v1/models/{fraud.pk}/").json() == alone


def test_a_version_reads_the_same_in_the_list_and_alone(clients, catalog, users):
    fraud = catalog["fraud_detector"]
    version = fraud.versions.get(number=3)
    record = services.record_create(actor=users["editor"], context=fraud.context, name="snapshot", uri="s3://d/1")
    older = services.record_create(actor=users["editor"], context=fraud.context, name="A-first", uri="s3://d/0")
    services.version_update(actor=users["editor"], version=version, tags=["b", "A"], name="third",
                            records=[str(record.pk), str(older.pk)])
    store_file(version, kind="onnx", body=b"not really onnx")
    base = f"/api/v1/models/{fraud.pk}/versions"
    alone = clients["viewer"].get(f"{base}/3/").json()
    listed = clients["viewer"].get(f"{base}/").json()["results"]
    assert listed[2] == alone
    assert (alone["name"], alone["tags"]) == ("third", ["A", "b"])
    assert alone["records"] == [{"id": str(older.pk), "name": "A-first", "uri": "s3://d/0"},
                                {"id": str(record.pk), "name": "snapshot", "uri": "s3://d/1"}]
    assert [(f["kind"], f["status"]) for f in alone["formats"]] == [("onnx", "failed")]
    assert listed[1]["aliases"] == ["production"] and listed[0]["aliases"] == ["canary"]
    assert listed[1]["published_by"] == "publisher" and listed[1]["formats"][0]["size"] == 5
    assert alone["published_by"] is None and alone["created_by"] == "editor"


def test_what_a_create_answers_is_what_a_read_answers(clients, catalog, users):
    """The services' new objects carry the shape the selectors read."""
    record = services.record_create(actor=users["editor"], context=catalog["speech"].context, name="d", uri="s3://d")
    created = clients["editor"].post("/api/v1/contexts/acme/models/", {"name": "new", "tags": ["b", "a"]},
                                      format="json").json()
    assert clients["editor"].get(f"/api/v1/models/{created['id']}/").json() == created
    version = clients["editor"].post(f"/api/v1/models/{created['id']}/versions/",
                                     {"tags": ["x"], "records": [str(record.pk)]}, format="json").json()
    assert clients["editor"].get(f"/api/v1/models/{created['id']}/versions/1/").json() == version


def test_usernames_are_read_when_shown(clients, catalog, users):
    fraud = catalog["fraud_detector"]
    for number in (1, 2, 1):
        services.alias_set(actor=users["admin"], model=fraud, name="canary", version_number=number)
    type(users["admin"]).objects.filter(pk=users["admin"].pk).update(username="renamed-admin")
    body = clients["viewer"].get(f"/api/v1/models/{fraud.pk}/aliases/canary/").json()
    assert (body["version"], body["updated_by"]) == (1, "renamed-admin")
    assert [(m["from_version"], m["to_version"], m["actor"]) for m in body["history"]] == [
        (2, 1, "renamed-admin"), (1, 2, "renamed-admin"), (None, 1, "publisher")]
    listed = clients["viewer"].get(f"/api/v1/models/{fraud.pk}/aliases/").json()["results"]
    assert [(a["name"], a["version"], a["updated_by"]) for a in listed] == [
        ("canary", 1, "renamed-admin"), ("production", 2, "publisher")]


@pytest.mark.parametrize("persona, status", [("outsider", 404), ("viewer", 200), ("readonly", 200),
                                             ("anonymous", 401)])
@pytest.mark.parametrize("slug", ["acme", "elsewhere", "missing"])
def test_contexts_and_models_are_found_only_where_visible(clients, catalog, persona, status, slug):
    response = clients[persona].get(f"/api/v1/contexts/{slug}/")
    assert response.status_code == (status if slug == "acme" or status == 401 else 404)
    model = catalog["speech"]
    assert clients[persona].get(f"/api/v1/models/{model.pk}/").status_code == status
    for missing in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        assert clients[persona].get(f"/api/v1/models/{missing}/").status_code == (401 if status == 401 else 404)


def test_staff_see_every_context(catalog):
    client = client_for(UserFactory(username="root", is_superuser=True))
    assert client.get("/api/v1/contexts/elsewhere/").status_code == 200
    assert client.get(f"/api/v1/models/{catalog['speech'].pk}/").status_code == 200


@pytest.mark.parametrize("case", ["revoked", "expired", "inactive", "unknown", "read-only", "group member", "direct"])
def test_a_token_reads_its_roles_with_it(context, users, catalog, case):
    """One statement reads the token, its user and the user's roles (direct and through groups)."""
    user = UserFactory(username="someone")
    if case == "group member":
        Group.objects.create(name="team").user_set.add(user)
        services.membership_set(actor=None, context=context, role="editor", group="team")
    else:
        services.membership_set(actor=None, context=context, role="editor", username="someone")
    client = client_for(user, read_only=case == "read-only")
    token = ApiToken.objects.get(user=user)
    if case == "revoked":
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    elif case == "expired":
        ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
    elif case == "inactive":
        type(user).objects.filter(pk=user.pk).update(is_active=False)
    elif case == "unknown":
        client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    model = catalog["speech"]
    response = client.patch(f"/api/v1/models/{model.pk}/", {"task": "asr"}, format="json")
    expected = {"revoked": 401, "expired": 401, "inactive": 401, "unknown": 401, "read-only": 403}.get(case, 200)
    assert response.status_code == expected
    assert Model.objects.get(pk=model.pk).task == ("asr" if expected == 200 else "")
    if expected == 200:
        client.get("/api/v1/contexts/")  # the token's last use is written once a minute at most
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/contexts/acme/").json()["role"] == "editor"
        assert len(captured) == 2  # the token with its roles, then the context


# --- statements per read --------------------------------------------------------------------

RELATION_TABLES = ("registry_tag", "registry_trainingrecord", "registry_format", "registry_alias")


def _statements(client, url, **headers) -> list[str]:
    client.get(url, **headers)  # warm: the token's last use is written once a minute at most
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **headers)
    assert response.status_code in (200, 304), response.content
    return [query["sql"] for query in captured.captured_queries]


def test_reads_cost_one_statement_each(clients, catalog):
    client = clients["viewer"]
    fraud = catalog["fraud_detector"]
    base = f"/api/v1/models/{fraud.pk}"
    # token, model (with its tags, versions and aliases)
    assert len(_statements(client, f"{base}/")) == 2
    # token, model, version (with its tags, records, formats and aliases)
    assert len(_statements(client, f"{base}/versions/3/")) == 3
    # token, model, first page of versions (all of them: no count)
    assert len(_statements(client, f"{base}/versions/")) == 3
    # token, model, alias, its history
    assert len(_statements(client, f"{base}/aliases/production/")) == 4
    # token (with the slugs of the user's contexts), first page of models
    assert len(_statements(client, "/api/v1/contexts/acme/models/")) == 2
    # token, the model by its name (with its tags, versions and aliases)
    assert len(_statements(client, "/api/v1/contexts/acme/models/?name=FRAUD_detector")) == 2
    # token, the context whole (its detail shows every field)
    assert len(_statements(client, "/api/v1/contexts/acme/")) == 2


@pytest.mark.parametrize("name, found", [("fraud_detector", 1), (" FRAUD_Detector ", 1), ("straße-MODEL", 1),
                                         ("école", 1), ("fraud", 0), ("%", 0), (" ", 0), ("", 5)])
def test_a_lookup_by_name_answers_what_the_list_does(clients, catalog, name, found):
    """`?name=` alone and with an ordering: the same page of the list."""
    client = clients["viewer"]
    alone = client.get("/api/v1/contexts/acme/models/", {"name": name})
    listed = client.get("/api/v1/contexts/acme/models/", {"name": name, "ordering": "name"})
    assert alone.status_code == listed.status_code == 200
    assert alone.json() == listed.json()
    assert len(alone.json()["results"]) == found


def test_a_token_limited_to_other_models_does_not_find_one_by_name(context, users, catalog):
    token, plain = services.token_create(actor=users["viewer"], user=users["viewer"], name="one model",
                                         models=[str(catalog["speech"].pk)])
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    assert client.get("/api/v1/contexts/acme/models/", {"name": "speech"}).json()["results"][0]["name"] == "speech"
    assert client.get("/api/v1/contexts/acme/models/", {"name": "fraud_detector"}).json()["results"] == []


@pytest.mark.parametrize("path", ["metrics/", "formats/", "formats/pkl/", "manifest/", "manifest/?frozen=true",
                                  "formats/pkl/file"])
def test_a_version_read_for_its_files_or_metrics_reads_its_row_only(clients, catalog, path):
    fraud = catalog["fraud_detector"]
    statements = _statements(clients["viewer"], f"/api/v1/models/{fraud.pk}/versions/1/{path}")
    token, model, version, *rest = statements
    assert "registry_version" in version and not any(table in version for table in RELATION_TABLES)
    rest = [sql for sql in rest if "SAVEPOINT" not in sql]  # the download gate's transaction
    assert len(rest) == 1, rest  # what the path shows: the metrics, the formats


# --- the expressions --------------------------------------------------------------------------

def test_jsonlist_keeps_order_types_and_empty_relations(catalog, users):
    fraud, speech = catalog["fraud_detector"], catalog["Straße-model"]
    record = services.record_create(actor=None, context=fraud.context, name="r", uri="s3://r")
    Version.records.through.objects.create(version=fraud.versions.get(number=3), trainingrecord=record)
    rows = {m.name: m for m in Model.objects.filter(pk__in=[fraud.pk, speech.pk]).annotate(
        numbers=JSONList(Version.objects.filter(model=OuterRef("pk")).order_by("-number"), "number"),
        pairs=JSONList(Version.objects.filter(model=OuterRef("pk")).order_by("number"), number="number",
                       published="published_at"),
        records=JSONList(TrainingRecord.objects.filter(versions__model=OuterRef("pk")), id=UUIDText("id")),
    )}
    assert rows["fraud_detector"].numbers == [3, 2, 1]
    assert [p["number"] for p in rows["fraud_detector"].pairs] == [1, 2, 3]
    assert rows["fraud_detector"].pairs[2]["published"] is None
    assert rows["fraud_detector"].records == [{"id": str(record.pk)}]
    assert uuid.UUID(rows["fraud_detector"].records[0]["id"]) == record.pk
    assert (rows["Straße-model"].numbers, rows["Straße-model"].pairs, rows["Straße-model"].records) == ([], [], [])


def test_jsonlist_takes_one_field_or_named_fields():
    with pytest.raises(TypeError):
        JSONList(Version.objects.all(), "number", "name")
    with pytest.raises(TypeError):
        JSONList(Version.objects.all(), "number", name="name")


def test_the_selectors_answer_the_shapes_the_dashboard_uses(catalog, users):
    fraud = selectors.model_detail(users["viewer"], catalog["fraud_detector"].pk)
    assert fraud.owner.username == "viewer" and fraud.context.slug == "acme"
    assert fraud.alias_rows == [{"name": "canary", "version": 1}, {"name": "production", "version": 2}]
    version = selectors.version_detail(fraud, 2)
    assert version.model is fraud and version.alias_names == ["production"]
    assert [f["kind"] for f in version.format_rows] == ["pkl"] and version.published_by.username == "publisher"


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/St_Johns"])
def test_timestamps_render_as_drf_renders_them(zone):
    from datetime import datetime, timedelta
    from datetime import timezone as dt_timezone

    from rest_framework import serializers as drf

    from registry.api.serializers import _timestamp

    moments = [
        datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=dt_timezone.utc),
        datetime(2026, 7, 1, 12, 0, tzinfo=dt_timezone(timedelta(hours=5, minutes=30))),
        timezone.now(),
    ]
    with timezone.override(zone):
        for moment in moments:
            assert _timestamp(moment) == drf.DateTimeField().to_representation(moment)
    assert _timestamp(None) is None


def _write_statements(client, method: str, url: str, body: dict) -> list[str]:
    client.get("/api/v1/contexts/")  # the token's first use of the day notes it (last_used_at)
    with CaptureQueriesContext(connection) as captured:
        response = getattr(client, method)(url, body, format="json")
    assert response.status_code in (200, 201), response.content
    return [query["sql"] for query in captured.captured_queries
            if query["sql"].split()[0].upper() not in {"BEGIN", "COMMIT", "SAVEPOINT", "RELEASE"}]


def test_writes_cost_a_fixed_number_of_statements(clients, catalog):
    """Creating a model and moving an alias are as frequent as reads: what each writes and the
    one read of what it checks, nothing read twice."""
    fraud = catalog["fraud_detector"]
    created = _write_statements(clients["editor"], "post", "/api/v1/contexts/acme/models/",
                                {"name": "counted", "tags": ["tabular", "new-tag"]})
    # token (with the slugs of the user's contexts), the model, its links to the tags there are
    # (answering them), the tag that is new and its link, the audit event
    assert len(created) == 6, "\n".join(q[:90] for q in created)
    url = f"/api/v1/models/{fraud.pk}/aliases/production/"
    moved = _write_statements(clients["publisher"], "put", url, {"version": 1})
    # token, model; the model's lock, then the version, the alias and its protection (one
    # statement); the alias, its move, the audit event, the context's webhooks; then the history
    assert len(moved) == 9, "\n".join(q[:90] for q in moved)
    assert "registry_protectedalias" in moved[3] and "registry_alias" in moved[3]
    if connection.vendor == "postgresql":
        assert "FOR NO KEY UPDATE" in moved[2] and "FOR NO KEY UPDATE" not in moved[3]
    again = _write_statements(clients["publisher"], "put", url, {"version": 1})
    assert len(again) == 5 + 1, again  # where it points already: nothing written, the alias read to answer


@pytest.mark.parametrize("page_size", [1, 2, 3, 50])
def test_version_pages_read_what_the_plain_list_does(clients, catalog, page_size):
    """The version list runs a statement compiled once per process (LIMIT and OFFSET its
    parameters): every page, at every size, holds what the plain queryset holds."""
    client = clients["viewer"]
    fraud = catalog["fraud_detector"]
    plain = [version.number for version in fraud.versions.order_by("number")]
    seen, url = [], f"/api/v1/models/{fraud.pk}/versions/?page_size={page_size}"
    while url:
        body = client.get(url).json()
        assert body["count"] == len(plain)
        seen += [row["number"] for row in body["results"]]
        url = body["next"]
    assert seen == plain
    assert client.get(f"/api/v1/models/{fraud.pk}/versions/?page_size=2&page=9").status_code == 404


def test_a_full_version_page_costs_a_count_and_a_page(clients, catalog):
    fraud = catalog["fraud_detector"]
    base = f"/api/v1/models/{fraud.pk}/versions/"
    # token, model, the page read one row long (it holds them all: no count)
    assert len(_statements(clients["viewer"], base + "?page_size=3")) == 3
    # token, model, the first page read one row long, then the count
    assert len(_statements(clients["viewer"], base + "?page_size=2")) == 4
    # token, model, count, the page
    assert len(_statements(clients["viewer"], base + "?page_size=2&page=2")) == 4
