"""The hand-written SQL of registry/sql.py answers exactly what the ORM path answers.

Every request below is made twice, once on the fast path (PostgreSQL with a token's roles) and
once with it switched off, and the two responses must be the same, byte for byte after JSON
decoding: token authentication, a model read, and model lists with every filter and ordering.
"""

import pytest
from django.db import connection
from django.utils import timezone

from registry import services, sql
from registry.models import ApiToken, Model

from tests.conftest import client_for
from tests.factories import UserFactory
from tests.helpers import store_file

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the fast paths exist on PostgreSQL only"
)


def both_ways(monkeypatch, client, method, url, **kwargs):
    """(status, body) on the fast path, then the same with it switched off."""
    answers = []
    for fast in (True, False):
        monkeypatch.setattr(sql, "enabled", lambda fast=fast: fast)
        response = getattr(client, method)(url, **kwargs)
        body = response.json() if response.content else None
        answers.append((response.status_code, body))
    return answers


@pytest.fixture
def rich_catalog(context, users):
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


QUERIES = [
    "", "?search=fraud", "?search=FRAUD", "?search=%25", "?search=_", "?search=100%25", "?search=ß",
    "?search=strasse", "?search=école", "?search=ünï", "?search=%20%20", "?search=nothing",
    "?tag=tabular", "?tag=TABULAR&tag=realtime", "?tag=tabular&tag=geo", "?tag=ünïcode",
    "?name=FRAUD_DETECTOR", "?name=%20speech%20", "?name=fraud", "?name=%00",
    "?search=fraud&tag=realtime", "?search=a&ordering=-name",
    "?ordering=name", "?ordering=-name", "?ordering=created", "?ordering=-created", "?ordering=updated",
    "?ordering=-updated", "?ordering=versions", "?ordering=-versions", "?ordering=version_count",
    "?ordering=bogus", "?page_size=2", "?page_size=2&page=2", "?page_size=2&page=3", "?page_size=2&page=9",
    "?page=0", "?page=last&page_size=2",
]


@pytest.mark.parametrize("query", QUERIES)
def test_model_list_agrees(monkeypatch, clients, rich_catalog, query):
    fast, orm = both_ways(monkeypatch, clients["viewer"], "get", f"/api/v1/contexts/acme/models/{query}")
    assert fast == orm
    assert fast[0] in (200, 400, 404)


def test_model_list_results_are_not_trivially_empty(monkeypatch, clients, rich_catalog):
    (status, body), _ = both_ways(monkeypatch, clients["viewer"], "get", "/api/v1/contexts/acme/models/?search=fraud")
    assert status == 200
    assert [m["name"] for m in body["results"]] == ["churn-classifier", "fraud_detector"]
    fraud = body["results"][1]
    assert fraud["aliases"] == {"canary": 1, "production": 2}
    assert fraud["version_numbers"] == [1, 2, 3]
    assert fraud["tags"] == ["realtime", "TABULAR"] or fraud["tags"] == ["realtime", "tabular"]
    assert fraud["owner"] == "viewer" and fraud["created_by"] == "editor"


@pytest.mark.parametrize("persona", ["anonymous", "outsider", "viewer", "editor", "admin", "readonly", "staff"])
def test_model_get_agrees_for_every_persona(monkeypatch, clients, rich_catalog, persona):
    if persona == "staff":
        client = client_for(UserFactory(username="root", is_superuser=True))
    else:
        client = clients[persona]
    for model in rich_catalog.values():
        fast, orm = both_ways(monkeypatch, client, "get", f"/api/v1/models/{model.pk}/")
        assert fast == orm
        assert fast[0] == {"anonymous": 401, "outsider": 404}.get(persona, 200)
    for missing in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        fast, orm = both_ways(monkeypatch, client, "get", f"/api/v1/models/{missing}/")
        assert fast == orm and fast[0] in (401, 404)


def test_writes_through_the_fast_model_read_agree(monkeypatch, clients, rich_catalog):
    """Creating a version reads its model on the fast path; the answer matches apart from ids."""
    model = rich_catalog["speech"]
    (fast_status, fast), (orm_status, orm) = both_ways(
        monkeypatch, clients["editor"], "post", f"/api/v1/models/{model.pk}/versions/",
        data={"tags": ["x"]}, format="json")
    assert fast_status == orm_status == 201
    assert (fast["number"], orm["number"]) == (2, 3)
    different = {"id", "number", "created_at", "updated_at", "url"}
    assert {k: v for k, v in fast.items() if k not in different} == {k: v for k, v in orm.items() if k not in different}
    fast, orm = both_ways(monkeypatch, clients["viewer"], "post", f"/api/v1/models/{model.pk}/versions/",
                          data={}, format="json")
    assert fast == orm and fast[0] == 403


@pytest.mark.parametrize("case", ["revoked", "expired", "inactive", "unknown", "read-only", "group member"])
def test_token_authentication_agrees(monkeypatch, context, users, rich_catalog, case):
    user = UserFactory(username="someone")
    if case == "group member":
        from django.contrib.auth.models import Group

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
    model = rich_catalog["speech"]
    for method, url, kwargs in [
        ("get", f"/api/v1/models/{model.pk}/", {}),
        ("get", "/api/v1/contexts/", {}),
        ("patch", f"/api/v1/models/{model.pk}/", {"data": {"task": "asr"}, "format": "json"}),
    ]:
        fast, orm = both_ways(monkeypatch, client, method, url, **kwargs)
        if method == "patch":  # updated_at moves between the two edits
            for _, body in (fast, orm):
                if isinstance(body, dict):
                    body.pop("updated_at", None)
        assert fast == orm, (method, url)
    expected = {"revoked": 401, "expired": 401, "inactive": 401, "unknown": 401, "read-only": 403}.get(case, 200)
    assert fast[0] == expected
    assert Model.objects.get(pk=model.pk).task == ("asr" if expected == 200 else "")


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


@pytest.mark.parametrize("persona", ["anonymous", "outsider", "viewer", "readonly", "staff"])
@pytest.mark.parametrize("slug", ["acme", "elsewhere", "missing", "ACME"])
def test_context_get_agrees(monkeypatch, clients, rich_catalog, persona, slug):
    client = client_for(UserFactory(username="root", is_superuser=True)) if persona == "staff" else clients[persona]
    fast, orm = both_ways(monkeypatch, client, "get", f"/api/v1/contexts/{slug}/")
    assert fast == orm
    visible = persona == "staff" and slug in ("acme", "elsewhere") or persona in ("viewer", "readonly") and slug == "acme"
    assert fast[0] == (401 if persona == "anonymous" else 200 if visible else 404)


def _version_reads(model, number):
    base = f"/api/v1/models/{model.pk}/versions/{number}"
    return [f"{base}/", f"{base}/formats/", f"{base}/formats/pkl/", f"{base}/formats/onnx/", f"{base}/manifest/",
            f"{base}/manifest/?frozen=true", f"{base}/metrics/"]


@pytest.mark.parametrize("persona", ["outsider", "viewer", "readonly", "staff"])
def test_version_reads_agree(monkeypatch, clients, rich_catalog, users, persona):
    """Version detail and everything under it read the version through sql.version_get()."""
    client = client_for(UserFactory(username="root", is_superuser=True)) if persona == "staff" else clients[persona]
    fraud = rich_catalog["fraud_detector"]
    version = fraud.versions.get(number=3)
    services.version_update(actor=users["editor"], version=version, tags=["b", "A"], name="third")
    record = services.record_create(actor=users["editor"], context=fraud.context, name="snapshot", uri="s3://d/1")
    services.version_update(actor=users["editor"], version=version, records=[str(record.pk)])
    store_file(version, kind="onnx", body=b"not really onnx")
    urls = [url for number in (1, 2, 3, 4, 99999999999999999999) for url in _version_reads(fraud, number)]
    urls += _version_reads(rich_catalog["speech"], 1)
    for url in urls:
        fast, orm = both_ways(monkeypatch, client, "get", url)
        if url.endswith("frozen=true"):  # stamped with the time it is made, and checksummed with it
            for _, body in (fast, orm):
                body.pop("timestamp", None), body.pop("lock_checksum", None)
        assert fast == orm, url
    (status, body), _ = both_ways(monkeypatch, client, "get", f"/api/v1/models/{fraud.pk}/versions/3/")
    if persona == "outsider":
        assert status == 404
    else:
        assert status == 200
        assert (body["name"], body["tags"], [r["name"] for r in body["records"]]) == ("third", ["A", "b"], ["snapshot"])
        assert [f["kind"] for f in body["formats"]] == ["onnx"]
    (status, body), _ = both_ways(monkeypatch, client, "get", f"/api/v1/models/{fraud.pk}/versions/2/")
    if persona != "outsider":
        assert body["aliases"] == ["production"] and body["published_by"] == "publisher"


def test_version_file_download_and_writes_agree(monkeypatch, clients, rich_catalog, users):
    fraud = rich_catalog["fraud_detector"]
    client = clients["editor"]
    url = f"/api/v1/models/{fraud.pk}/versions/1/formats/pkl/file"
    answers = []
    for fast in (True, False):
        monkeypatch.setattr(sql, "enabled", lambda fast=fast: fast)
        response = client.get(url)
        answers.append((response.status_code, b"".join(response.streaming_content),
                        {k: v for k, v in response.headers.items() if k != "Date"}))
    assert answers[0] == answers[1] and answers[0][0] == 200
    # Writes through the fast read: a published version stays frozen, a draft is edited.
    fast, orm = both_ways(monkeypatch, client, "patch", f"/api/v1/models/{fraud.pk}/versions/1/",
                          data={"name": "x"}, format="json")
    assert fast == orm and fast[0] == 409
    fast, orm = both_ways(monkeypatch, client, "patch", f"/api/v1/models/{fraud.pk}/versions/3/",
                          data={"tags": ["z"]}, format="json")
    assert fast[0] == orm[0] == 200 and fast[1]["tags"] == orm[1]["tags"] == ["z"]


@pytest.mark.parametrize("persona", ["outsider", "viewer", "readonly", "staff"])
def test_alias_reads_agree(monkeypatch, clients, rich_catalog, users, persona):
    client = client_for(UserFactory(username="root", is_superuser=True)) if persona == "staff" else clients[persona]
    fraud = rich_catalog["fraud_detector"]
    for number in (1, 2, 1):  # a history of several moves, newest first
        services.alias_set(actor=users["admin"], model=fraud, name="canary", version_number=number)
    type(users["admin"]).objects.filter(pk=users["admin"].pk).update(username="renamed-admin")
    base = f"/api/v1/models/{fraud.pk}/aliases"
    for url in (f"{base}/production/", f"{base}/canary/", f"{base}/missing/", f"{base}/"):
        fast, orm = both_ways(monkeypatch, client, "get", url)
        assert fast == orm, url
    (status, body), _ = both_ways(monkeypatch, client, "get", f"{base}/canary/")
    if persona == "outsider":
        assert status == 404
    else:
        assert (body["version"], body["updated_by"]) == (1, "renamed-admin")
        assert [(m["from_version"], m["to_version"]) for m in body["history"]] == [(2, 1), (1, 2), (None, 1)]
