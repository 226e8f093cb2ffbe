"""Models over the API: tags, names, search, ordering, pagination, deletion, and query counts of every list."""

import io

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry import selectors, services
from registry.models import Alias, AliasMove, AuditEvent, Context, Format, Metric, Model, TrainingRecord, Version

from tests.helpers import store_file, upload
from tests.conftest import stored_files
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def create(client, ctx="acme", **fields):
    return client.post(f"/api/v1/contexts/{ctx}/models/", fields, format="json")


def names(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [m["name"] for m in response.json()["results"]]


# --- tags -----------------------------------------------------------------------------------

def test_tags_of_one_and_thirty_two_characters_are_accepted(clients):
    r = create(clients["editor"], name="m", tags=["a", "x" * 32])
    assert r.status_code == 201, r.json()
    assert sorted(r.json()["tags"]) == ["a", "x" * 32]


def test_a_tag_of_thirty_three_characters_is_refused_by_name(clients):
    long_tag = "t" * 33
    r = create(clients["editor"], name="m", tags=["ok", long_tag])
    assert r.status_code == 400
    body = r.json()
    assert body["field"] == "tags"
    assert long_tag in body["detail"]
    assert not Model.objects.exists()


def test_a_long_tag_is_refused_on_edit_and_on_versions(clients):
    editor = clients["editor"]
    model = create(editor, name="m", tags=["keep"]).json()
    r = editor.patch(f"/api/v1/models/{model['id']}/", {"tags": ["y" * 33]}, format="json")
    assert r.status_code == 400
    assert r.json()["field"] == "tags"
    assert editor.get(f"/api/v1/models/{model['id']}/").json()["tags"] == ["keep"]
    r = editor.post(f"/api/v1/models/{model['id']}/versions/", {"tags": ["z" * 33]}, format="json")
    assert r.status_code == 400
    assert r.json()["field"] == "tags"
    assert "z" * 33 in r.json()["detail"]


def test_duplicate_tags_collapse_case_insensitively(clients):
    r = create(clients["editor"], name="m", tags=["Vision", "vision", " VISION ", "nlp"])
    assert r.status_code == 201
    tags = r.json()["tags"]
    assert len(tags) == 2
    assert sorted(t.casefold() for t in tags) == ["nlp", "vision"]


def test_tags_shared_between_models_keep_one_spelling(clients):
    editor = clients["editor"]
    create(editor, name="first", tags=["Tabular"])
    r = create(editor, name="second", tags=["tabular"])
    assert r.status_code == 201
    assert [t.casefold() for t in r.json()["tags"]] == ["tabular"]
    assert names(editor.get("/api/v1/contexts/acme/models/?tag=TABULAR")) == ["first", "second"]


def _create_statements(client, url, body) -> tuple:
    with CaptureQueriesContext(connection) as statements:
        r = client.post(url, body, format="json")
    assert r.status_code == 201, r.json()
    return r.json(), [q["sql"] for q in statements]


@pytest.mark.parametrize("what", ["model", "version"])
def test_known_tags_are_linked_by_one_statement_that_answers_their_spelling(clients, what):
    editor = clients["editor"]
    first = create(editor, name="first", tags=["Tabular", "fraud"]).json()
    url = "/api/v1/contexts/acme/models/" if what == "model" else f"/api/v1/models/{first['id']}/versions/"
    body, statements = _create_statements(editor, url, {"name": "second", "tags": ["tabular", "FRAUD"]})
    # The spelling stored first, read by the statement that links them: no read of the tags before.
    assert body["tags"] == ["fraud", "Tabular"]
    tags = [sql for sql in statements if '"registry_tag"' in sql]
    assert len(tags) == 1 and tags[0].startswith("INSERT INTO"), statements
    row = Model.objects.get(name="second") if what == "model" else Version.objects.get(pk=body["id"])
    assert sorted(row.tags.values_list("name", flat=True)) == ["Tabular", "fraud"]


def test_new_and_known_tags_are_linked_together(clients):
    editor = clients["editor"]
    create(editor, name="first", tags=["Vision"])
    body, statements = _create_statements(editor, "/api/v1/contexts/acme/models/",
                                          {"name": "second", "tags": ["new-one", "VISION", "Another"]})
    assert body["tags"] == ["Another", "new-one", "Vision"]
    assert sorted(Model.objects.get(name="second").tags.values_list("name", flat=True)) == [
        "Another", "Vision", "new-one"]
    # Known ones linked at once; the two new ones created, then linked by one more statement.
    assert len([sql for sql in statements if sql.startswith('INSERT INTO "registry_model_tags"')]) == 2
    assert editor.get(f"/api/v1/models/{body['id']}/").json()["tags"] == body["tags"]


def test_comma_separated_tags_are_accepted(clients):
    editor = clients["editor"]
    r = create(editor, name="m", tags="tabular, fraud,Fraud ,")
    assert r.status_code == 201, r.json()
    assert r.json()["tags"] == ["fraud", "tabular"]
    r = editor.patch(f"/api/v1/models/{r.json()['id']}/", {"tags": "audio,asr"}, format="json")
    assert r.status_code == 200
    assert r.json()["tags"] == ["asr", "audio"]


@pytest.mark.parametrize("tags", [5, {"a": 1}, [1, 2], ["ok", None]])
def test_tags_of_the_wrong_type_are_refused(clients, tags):
    r = create(clients["editor"], name="m", tags=tags)
    assert r.status_code == 400
    assert r.json()["field"] == "tags"


# --- names ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "first, second",
    [
        ("Caf\u00e9", "Cafe\u0301"),  # composed vs decomposed
        (" churn ", "CHURN"),
        ("churn", "Churn"),
        ("Stra\u00dfe", "STRASSE"),  # case folding, not just lowering
    ],
)
def test_names_are_unique_after_normalisation(clients, first, second):
    editor = clients["editor"]
    r = create(editor, name=first)
    assert r.status_code == 201, r.json()
    r = create(editor, name=second)
    assert r.status_code == 409
    assert r.json()["code"] == "name_taken"
    assert r.json()["field"] == "name"
    assert Model.objects.count() == 1


def test_names_are_stored_trimmed_and_composed(clients):
    r = create(clients["editor"], name="  Cafe\u0301 model  ")
    assert r.status_code == 201
    assert r.json()["name"] == "Caf\u00e9 model"


def test_the_same_name_in_another_context_is_fine(clients):
    assert create(clients["editor"], name="churn").status_code == 201
    r = create(clients["outsider"], ctx="other", name="CHURN")
    assert r.status_code == 201, r.json()


@pytest.mark.parametrize("name", ["", "   ", "a" * 201, "bad\x00name"])
def test_invalid_names_are_400(clients, name):
    r = create(clients["editor"], name=name)
    assert r.status_code == 400
    assert r.json()["field"] == "name"


def test_rename_into_a_taken_name_is_409(clients):
    editor = clients["editor"]
    create(editor, name="churn")
    other = create(editor, name="fraud").json()
    r = editor.patch(f"/api/v1/models/{other['id']}/", {"name": " CHURN "}, format="json")
    assert r.status_code == 409
    assert r.json()["field"] == "name"
    assert editor.get(f"/api/v1/models/{other['id']}/").json()["name"] == "fraud"
    # Changing only the case of one's own name is not a clash.
    r = editor.patch(f"/api/v1/models/{other['id']}/", {"name": "Fraud"}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["name"] == "Fraud"


def test_model_fields_round_trip(clients):
    editor = clients["editor"]
    r = create(editor, name="asr", description="# Speech", task="English ASR", metadata={"team": "voice"},
               owner="publisher")
    assert r.status_code == 201, r.json()
    model = r.json()
    assert (model["description"], model["task"], model["metadata"], model["owner"]) == (
        "# Speech", "English ASR", {"team": "voice"}, "publisher")
    assert model["created_by"] == "editor"
    r = editor.patch(f"/api/v1/models/{model['id']}/", {"owner": "nobody"}, format="json")
    assert r.status_code == 400
    assert r.json()["field"] == "owner"


# --- search, filters, ordering, pagination --------------------------------------------------

@pytest.fixture
def catalog(clients):
    """Three models with distinct names, descriptions, tags and version counts, created in order."""
    editor = clients["editor"]
    made = {}
    for name, description, tags, versions in [
        ("churn-classifier", "Predicts customer churn", ["tabular", "fraud"], 0),
        ("fraud-detector", "Finds card payments to block", ["Tabular", "realtime"], 2),
        ("speech", "English ASR for call centres", ["audio"], 1),
    ]:
        r = create(editor, name=name, description=description, tags=tags)
        assert r.status_code == 201, r.json()
        made[name] = r.json()["id"]
        for _ in range(versions):
            assert editor.post(f"/api/v1/models/{made[name]}/versions/", {}, format="json").status_code == 201
    return made


@pytest.mark.parametrize(
    "query, expected",
    [
        ("search=fraud", ["churn-classifier", "fraud-detector"]),  # a tag, and a name
        ("search=asr", ["speech"]),  # description, case-insensitive
        ("search=AUDIO", ["speech"]),  # a tag
        ("search=payments", ["fraud-detector"]),
        ("search=nothing-like-this", []),
        ("tag=tabular", ["churn-classifier", "fraud-detector"]),
        ("tag=TABULAR&tag=realtime", ["fraud-detector"]),  # repeatable, all must match
        ("tag=tabular&tag=audio", []),
        ("name=FRAUD-DETECTOR", ["fraud-detector"]),  # exact, case-insensitive
        ("name=fraud", []),  # not a substring match
        ("search=fraud&tag=realtime", ["fraud-detector"]),
    ],
)
def test_search_and_filters(clients, catalog, query, expected):
    assert names(clients["viewer"].get(f"/api/v1/contexts/acme/models/?{query}")) == expected


def test_orderings(clients, catalog):
    viewer, editor = clients["viewer"], clients["editor"]
    url = "/api/v1/contexts/acme/models/?ordering="
    alphabetical = ["churn-classifier", "fraud-detector", "speech"]
    assert names(viewer.get("/api/v1/contexts/acme/models/")) == alphabetical
    assert names(viewer.get(url + "name")) == alphabetical
    assert names(viewer.get(url + "-name")) == alphabetical[::-1]
    assert names(viewer.get(url + "created")) == alphabetical
    assert names(viewer.get(url + "-created")) == alphabetical[::-1]
    assert names(viewer.get(url + "versions")) == ["churn-classifier", "speech", "fraud-detector"]
    assert names(viewer.get(url + "-versions")) == ["fraud-detector", "speech", "churn-classifier"]
    editor.patch(f"/api/v1/models/{catalog['churn-classifier']}/", {"task": "binary classification"}, format="json")
    assert names(viewer.get(url + "-updated"))[0] == "churn-classifier"
    assert names(viewer.get(url + "updated"))[-1] == "churn-classifier"


@pytest.mark.parametrize("ordering", ["size", "-", "name;drop", "--name"])
def test_unknown_ordering_is_400(clients, catalog, ordering):
    r = clients["viewer"].get("/api/v1/contexts/acme/models/", {"ordering": ordering})
    assert r.status_code == 400
    assert r.json()["field"] == "ordering"


def test_pagination(clients, catalog):
    """The model list pages by cursor (more in tests/registry/test_keyset_pagination.py)."""
    viewer = clients["viewer"]
    first = viewer.get("/api/v1/contexts/acme/models/?page_size=2").json()
    assert "count" not in first  # counting would read every model of the context
    assert [m["name"] for m in first["results"]] == ["churn-classifier", "fraud-detector"]
    assert first["previous"] is None and "cursor=" in first["next"]
    second = viewer.get(first["next"]).json()
    assert [m["name"] for m in second["results"]] == ["speech"]
    assert second["next"] is None
    back = viewer.get(second["previous"]).json()
    assert [m["name"] for m in back["results"]] == ["churn-classifier", "fraud-detector"]
    assert back["previous"] is None and back["next"] == first["next"]
    r = viewer.get("/api/v1/contexts/acme/models/?page_size=2&page=2")
    assert r.status_code == 400 and r.json()["field"] == "page"


def test_model_list_shows_versions_and_aliases(clients, catalog):
    listed = {m["name"]: m for m in clients["viewer"].get("/api/v1/contexts/acme/models/").json()["results"]}
    assert listed["fraud-detector"]["version_numbers"] == [1, 2]
    assert listed["fraud-detector"]["latest_version"] == 2
    assert listed["churn-classifier"]["latest_version"] is None
    assert listed["churn-classifier"]["context"] == "acme"


# --- delete ---------------------------------------------------------------------------------

def test_model_delete_removes_versions_formats_aliases_and_files(
    clients, storage_dir, django_capture_on_commit_callbacks
):
    editor, publisher, admin = clients["editor"], clients["publisher"], clients["admin"]
    model_id = create(editor, name="doomed").json()["id"]
    keep_id = create(editor, name="kept").json()["id"]
    for target in (model_id, keep_id):
        assert editor.post(f"/api/v1/models/{target}/versions/", {}, format="json").status_code == 201
        assert upload(editor, target, 1).status_code == 200
    assert editor.post(f"/api/v1/models/{model_id}/versions/", {}, format="json").status_code == 201
    assert publisher.post(f"/api/v1/models/{model_id}/versions/1/publish/").status_code == 200
    assert publisher.put(f"/api/v1/models/{model_id}/aliases/production/", {"version": 1},
                         format="json").status_code == 200
    assert len(stored_files(storage_dir)) == 2

    assert editor.delete(f"/api/v1/models/{model_id}/").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        assert admin.delete(f"/api/v1/models/{model_id}/").status_code == 204

    assert admin.get(f"/api/v1/models/{model_id}/").status_code == 404
    assert not Version.objects.filter(model_id=model_id).exists()
    assert not Format.objects.filter(version__model_id=model_id).exists()
    assert not Alias.objects.filter(model_id=model_id).exists()
    assert not AliasMove.objects.filter(model_id=model_id).exists()
    assert len(stored_files(storage_dir)) == 1  # only the kept model's file
    assert Version.objects.filter(model_id=keep_id).count() == 1
    event = AuditEvent.objects.get(action="model.delete")
    assert event.object_id == model_id and "doomed" in event.summary


# --- query counts: no list grows with its rows ----------------------------------------------

def _count_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        r = client.get(url)
    assert r.status_code == 200, r.content
    return len(captured)


def _assert_constant(client, url, add_rows, django_assert_num_queries, *, small=3, large=30):
    """Same number of queries for `small` and `large` rows (all on one page)."""
    add_rows(small)
    client.get(url)  # the first use of a token records last_used_at; keep that write out of the count
    body = client.get(url).json()
    # A list paged by cursor has no count (registry/keyset.py): its rows are counted.
    assert len(body["results"]) == body.get("count", small) == small, body
    expected = _count_queries(client, url)
    assert expected <= 15, f"{url} needs {expected} queries for {small} rows"
    add_rows(large)
    with django_assert_num_queries(expected):
        r = client.get(url)
    assert len(r.json()["results"]) == r.json().get("count", large) == large


def _published_version(model, actor=None) -> Version:
    version = services.version_create(actor=actor, model=model)
    store_file(version)
    return services.version_publish(actor=actor, version=version)


def test_queries_of_context_list(clients, users, django_assert_num_queries):
    viewer = users["viewer"]
    group = Group.objects.create(name="readers")
    viewer.groups.add(group)

    def add_rows(total):
        # acme is visible already; the others are reached through a direct or a group membership.
        while selectors.context_list(viewer).count() < total:
            n = Context.objects.count()
            context = services.context_create(actor=None, slug=f"team-{n}")
            if n % 2:
                services.membership_set(actor=None, context=context, role="editor", username="viewer")
            else:
                services.membership_set(actor=None, context=context, role="viewer", group="readers")

    _assert_constant(clients["viewer"], "/api/v1/contexts/", add_rows, django_assert_num_queries)


def test_queries_of_member_list(clients, context, django_assert_num_queries):
    def add_rows(total):
        while context.memberships.count() < total:
            n = context.memberships.count()
            if n % 3:
                user = UserFactory(username=f"member-{n}")
                services.membership_set(actor=None, context=context, role="viewer", username=user.username)
            else:
                Group.objects.create(name=f"group-{n}")
                services.membership_set(actor=None, context=context, role="editor", group=f"group-{n}")

    # The four persona memberships count towards the first batch.
    _assert_constant(clients["admin"], "/api/v1/contexts/acme/members/", add_rows, django_assert_num_queries,
                     small=5)


def test_queries_of_model_list(clients, context, users, django_assert_num_queries):
    def add_rows(total):
        while Model.objects.filter(context=context).count() < total:
            n = Model.objects.count()
            model = services.model_create(actor=users["editor"], context=context, name=f"model-{n}",
                                          tags=[f"t{n}", "shared"], owner="publisher")
            _published_version(model)
            services.version_create(actor=None, model=model, tags=["v"])
            services.alias_set(actor=None, model=model, name="production", version_number=1)

    _assert_constant(clients["viewer"], "/api/v1/contexts/acme/models/", add_rows, django_assert_num_queries)


def test_queries_of_record_list(clients, context, users, django_assert_num_queries):
    model = services.model_create(actor=None, context=context, name="m")
    version = services.version_create(actor=None, model=model)

    def add_rows(total):
        while TrainingRecord.objects.filter(context=context).count() < total:
            n = TrainingRecord.objects.count()
            record = services.record_create(actor=users["editor"], context=context, name=f"data-{n}", uri=f"s3://d/{n}")
            version.records.add(record)

    _assert_constant(clients["viewer"], "/api/v1/contexts/acme/records/", add_rows, django_assert_num_queries)


def test_queries_of_audit_list(clients, context, users, django_assert_num_queries):
    AuditEvent.objects.filter(context=context).delete()
    model = services.model_create(actor=users["editor"], context=context, name="m")
    AuditEvent.objects.filter(context=context).delete()

    def add_rows(total):
        while AuditEvent.objects.filter(context=context).count() < total:
            n = AuditEvent.objects.count()
            services.model_update(actor=users["editor"], model=model, task=f"task {n}")

    _assert_constant(clients["viewer"], "/api/v1/contexts/acme/audit/", add_rows, django_assert_num_queries)


def test_queries_of_version_list(clients, context, users, django_assert_num_queries):
    model = services.model_create(actor=None, context=context, name="m")
    record = services.record_create(actor=None, context=context, name="data", uri="s3://d")

    def add_rows(total):
        while model.versions.count() < total:
            version = _published_version(model, users["publisher"])
            services.alias_set(actor=None, model=model, name=f"a{version.number}", version_number=version.number)
            draft = services.version_create(actor=users["editor"], model=model, tags=["x", "y"], records=[str(record.pk)])
            services.format_create(actor=None, version=draft, kind="onnx")

    _assert_constant(clients["viewer"], f"/api/v1/models/{model.pk}/versions/", add_rows, django_assert_num_queries,
                     small=4)


def test_queries_of_metric_list(clients, context, django_assert_num_queries):
    model = services.model_create(actor=None, context=context, name="m")
    version = services.version_create(actor=None, model=model)

    def add_rows(total):
        count = Metric.objects.filter(version=version).count()
        services.metrics_log(actor=None, version=version,
                             metrics=[{"key": "loss", "value": 1.0 / (i + 1), "step": i} for i in range(count, total)])

    _assert_constant(clients["viewer"], f"/api/v1/models/{model.pk}/versions/1/metrics/", add_rows,
                     django_assert_num_queries)


def test_queries_of_format_list(clients, context, users, settings, django_assert_num_queries):
    # There are only 11 kinds, so this list is measured at 2 and 11 rows.
    settings.REGISTRY_MAX_FORMATS = 11
    model = services.model_create(actor=None, context=context, name="m")
    version = services.version_create(actor=None, model=model)
    kinds = iter(["pkl", "joblib", "pt", "onnx", "pmml", "safetensors", "rda", "h5", "savedmodel", "artifact", "other"])

    def add_rows(total):
        while version.formats.count() < total:
            services.format_upload(actor=users["editor"], version=version, kind=next(kinds),
                                   stream=io.BytesIO(b"abc"), content_length=3)

    _assert_constant(clients["viewer"], f"/api/v1/models/{model.pk}/versions/1/formats/", add_rows,
                     django_assert_num_queries, small=2, large=11)


def test_queries_of_alias_list(clients, context, users, django_assert_num_queries):
    model = services.model_create(actor=None, context=context, name="m")
    versions = [_published_version(model).number for _ in range(3)]

    def add_rows(total):
        while model.aliases.count() < total:
            n = model.aliases.count()
            services.alias_set(actor=users["publisher"], model=model, name=f"alias-{n}",
                               version_number=versions[n % 3])

    _assert_constant(clients["viewer"], f"/api/v1/models/{model.pk}/aliases/", add_rows, django_assert_num_queries)
