"""Aliases and their history, training records and lineage, the audit log, and context members."""

from collections import Counter
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import Group
from django.db.models import Max

from registry import services
from registry.models import AuditEvent, Context, Membership

from tests.helpers import upload
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def new_model(client, name="churn") -> str:
    r = client.post("/api/v1/contexts/acme/models/", {"name": name}, format="json")
    assert r.status_code == 201, r.json()
    return r.json()["id"]


def new_version(client, model_id, **fields) -> int:
    r = client.post(f"/api/v1/models/{model_id}/versions/", fields, format="json")
    assert r.status_code == 201, r.json()
    return r.json()["number"]


def publish_new_version(clients, model_id) -> int:
    number = new_version(clients["editor"], model_id)
    assert upload(clients["editor"], model_id, number).status_code == 200
    assert clients["publisher"].post(f"/api/v1/models/{model_id}/versions/{number}/publish/").status_code == 200
    return number


def moves(body) -> list[tuple]:
    return [(m["from_version"], m["to_version"]) for m in body["history"]]


# --- aliases --------------------------------------------------------------------------------

def test_alias_set_move_rollback_and_history(clients):
    publisher, viewer = clients["publisher"], clients["viewer"]
    model_id = new_model(clients["editor"])
    v1, v2 = publish_new_version(clients, model_id), publish_new_version(clients, model_id)
    url = f"/api/v1/models/{model_id}/aliases/production/"

    r = publisher.put(url, {"version": v1}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["version"] == v1
    assert moves(r.json()) == [(None, v1)]

    r = publisher.put(url, {"version": v2}, format="json")
    assert r.status_code == 200
    assert r.json()["version"] == v2
    assert viewer.get(f"/api/v1/models/{model_id}/").json()["aliases"] == {"production": v2}

    r = publisher.post(f"{url}rollback/")
    assert r.status_code == 200, r.json()
    assert r.json()["version"] == v1

    body = viewer.get(url).json()
    assert body["version"] == v1
    assert body["updated_by"] == "publisher"
    assert moves(body) == [(v2, v1), (v1, v2), (None, v1)]  # newest first, every move kept
    assert all(m["actor"] == "publisher" and m["at"] for m in body["history"])
    assert [(a["name"], a["version"]) for a in viewer.get(f"/api/v1/models/{model_id}/aliases/").json()["results"]] == [
        ("production", v1)]
    assert viewer.get(f"/api/v1/models/{model_id}/versions/{v1}/").json()["aliases"] == ["production"]
    assert viewer.get(f"/api/v1/models/{model_id}/versions/{v2}/").json()["aliases"] == []


def test_an_alias_answer_is_what_reading_it_gives(clients):
    """PUT answers from what the service wrote; GET reads it back: the two agree when the alias
    is created, moved, and set to where it already points."""
    publisher = clients["publisher"]
    model_id = new_model(clients["editor"])
    first, second = publish_new_version(clients, model_id), publish_new_version(clients, model_id)
    url = f"/api/v1/models/{model_id}/aliases/production/"
    for number in (first, second, second, first):
        put = publisher.put(url, {"version": number}, format="json")
        assert put.status_code == 200, put.json()
        assert put.json() == publisher.get(url).json()
        assert put.json()["version"] == number
    assert len(publisher.get(url).json()["history"]) == 3


def test_several_aliases_are_independent(clients):
    publisher = clients["publisher"]
    model_id = new_model(clients["editor"])
    v1, v2 = publish_new_version(clients, model_id), publish_new_version(clients, model_id)
    publisher.put(f"/api/v1/models/{model_id}/aliases/production/", {"version": v1}, format="json")
    publisher.put(f"/api/v1/models/{model_id}/aliases/staging/", {"version": v2}, format="json")
    aliases = clients["viewer"].get(f"/api/v1/models/{model_id}/aliases/").json()["results"]
    assert [(a["name"], a["version"]) for a in aliases] == [("production", v1), ("staging", v2)]


def test_alias_to_an_unpublished_version_is_409(clients):
    editor, publisher = clients["editor"], clients["publisher"]
    model_id = new_model(editor)
    number = new_version(editor, model_id)
    r = publisher.put(f"/api/v1/models/{model_id}/aliases/production/", {"version": number}, format="json")
    assert r.status_code == 409
    assert r.json()["field"] == "version"
    assert publisher.get(f"/api/v1/models/{model_id}/aliases/production/").status_code == 404


@pytest.mark.parametrize("payload", [{"version": 99}, {"version": "two"}, {"version": 0}, {}])
def test_alias_to_a_missing_version_is_400(clients, payload):
    model_id = new_model(clients["editor"])
    publish_new_version(clients, model_id)
    r = clients["publisher"].put(f"/api/v1/models/{model_id}/aliases/production/", payload, format="json")
    assert r.status_code == 400
    assert r.json()["field"] == "version"


@pytest.mark.parametrize("name", ["-leading-dash", "x" * 65, "has space"])
def test_invalid_alias_names_are_400(clients, name):
    model_id = new_model(clients["editor"])
    number = publish_new_version(clients, model_id)
    r = clients["publisher"].put(f"/api/v1/models/{model_id}/aliases/{name}/", {"version": number}, format="json")
    assert r.status_code == 400
    assert r.json()["field"] == "alias"


def test_editors_cannot_move_aliases(clients):
    model_id = new_model(clients["editor"])
    number = publish_new_version(clients, model_id)
    r = clients["editor"].put(f"/api/v1/models/{model_id}/aliases/production/", {"version": number}, format="json")
    assert r.status_code == 403


def test_alias_delete(clients):
    publisher, admin = clients["publisher"], clients["admin"]
    model_id = new_model(clients["editor"])
    number = publish_new_version(clients, model_id)
    url = f"/api/v1/models/{model_id}/aliases/production/"
    publisher.put(url, {"version": number}, format="json")
    assert clients["editor"].delete(url).status_code == 403
    assert publisher.delete(url).status_code == 204
    assert publisher.get(url).status_code == 404
    assert publisher.delete(url).status_code == 404
    assert publisher.get(f"/api/v1/models/{model_id}/aliases/").json()["results"] == []
    # Nothing points at the version any more, so it can be deleted.
    assert admin.delete(f"/api/v1/models/{model_id}/versions/{number}/").status_code == 204


def test_rollback_without_history_is_409(clients):
    publisher = clients["publisher"]
    model_id = new_model(clients["editor"])
    number = publish_new_version(clients, model_id)
    url = f"/api/v1/models/{model_id}/aliases/production/"
    publisher.put(url, {"version": number}, format="json")
    r = publisher.post(f"{url}rollback/")
    assert r.status_code == 409
    assert publisher.get(url).json()["version"] == number
    assert publisher.post(f"/api/v1/models/{model_id}/aliases/staging/rollback/").status_code == 404


def test_rollback_to_a_deleted_version_is_409(clients):
    publisher, admin = clients["publisher"], clients["admin"]
    model_id = new_model(clients["editor"])
    v1, v2 = publish_new_version(clients, model_id), publish_new_version(clients, model_id)
    url = f"/api/v1/models/{model_id}/aliases/production/"
    publisher.put(url, {"version": v1}, format="json")
    publisher.put(url, {"version": v2}, format="json")
    assert admin.delete(f"/api/v1/models/{model_id}/versions/{v1}/").status_code == 204
    r = publisher.post(f"{url}rollback/")
    assert r.status_code == 409
    assert "deleted" in r.json()["detail"]
    assert publisher.get(url).json()["version"] == v2


# --- training records -------------------------------------------------------------------------

def test_record_create_and_duplicate_name(clients):
    editor = clients["editor"]
    r = editor.post("/api/v1/contexts/acme/records/", {"name": "train-2024", "uri": "s3://d/train.parquet",
                                                       "checksum": "sha256:abc", "description": "Q1 data"},
                    format="json")
    assert r.status_code == 201, r.json()
    record = r.json()
    assert (record["name"], record["uri"], record["checksum"], record["context"], record["created_by"]) == (
        "train-2024", "s3://d/train.parquet", "sha256:abc", "acme", "editor")
    r = editor.post("/api/v1/contexts/acme/records/", {"name": "train-2024", "uri": "s3://elsewhere"}, format="json")
    assert r.status_code == 409
    assert r.json()["field"] == "name"
    # Names are per context.
    r = clients["outsider"].post("/api/v1/contexts/other/records/", {"name": "train-2024", "uri": "s3://o"},
                                 format="json")
    assert r.status_code == 201
    assert clients["viewer"].post("/api/v1/contexts/acme/records/", {"name": "x", "uri": "s3://x"},
                                  format="json").status_code == 403
    assert clients["outsider"].get(f"/api/v1/records/{record['id']}/").status_code == 404


@pytest.mark.parametrize("payload, field", [({"uri": "s3://x"}, "name"), ({"name": "x"}, "uri"),
                                            ({"name": "  ", "uri": "s3://x"}, "name")])
def test_record_needs_a_name_and_uri(clients, payload, field):
    r = clients["editor"].post("/api/v1/contexts/acme/records/", payload, format="json")
    assert r.status_code == 400
    assert r.json()["field"] == field


def test_lineage_both_ways(clients):
    editor, viewer = clients["editor"], clients["viewer"]
    train = editor.post("/api/v1/contexts/acme/records/", {"name": "train", "uri": "s3://d/train"}, format="json").json()
    extra = editor.post("/api/v1/contexts/acme/records/", {"name": "extra", "uri": "s3://d/extra"}, format="json").json()
    first, second = new_model(editor, "alpha"), new_model(editor, "beta")
    new_version(editor, first, records=[train["id"]])
    new_version(editor, first, records=[train["id"], extra["id"]])
    new_version(editor, first)
    new_version(editor, second, records=[train["id"]])

    lineage = viewer.get(f"/api/v1/records/{train['id']}/").json()
    assert [(v["model_name"], v["number"], v["status"]) for v in lineage["versions"]] == [
        ("alpha", 1, "draft"), ("alpha", 2, "draft"), ("beta", 1, "draft")]
    assert [v["model_id"] for v in lineage["versions"]] == [first, first, second]
    assert [(v["model_name"], v["number"]) for v in viewer.get(f"/api/v1/records/{extra['id']}/").json()["versions"]] == [
        ("alpha", 2)]

    version = viewer.get(f"/api/v1/models/{first}/versions/2/").json()
    assert sorted(r["name"] for r in version["records"]) == ["extra", "train"]
    assert viewer.get(f"/api/v1/models/{first}/versions/3/").json()["records"] == []
    listed = {r["name"]: r["version_count"] for r in viewer.get("/api/v1/contexts/acme/records/").json()["results"]}
    assert listed == {"extra": 1, "train": 3}


def test_record_edit_and_delete(clients):
    editor, admin = clients["editor"], clients["admin"]
    record = editor.post("/api/v1/contexts/acme/records/", {"name": "train", "uri": "s3://d/train"}, format="json").json()
    editor.post("/api/v1/contexts/acme/records/", {"name": "taken", "uri": "s3://d/t"}, format="json")
    url = f"/api/v1/records/{record['id']}/"
    r = editor.patch(url, {"uri": "s3://d/train-v2"}, format="json")
    assert r.status_code == 200 and r.json()["uri"] == "s3://d/train-v2"
    assert editor.patch(url, {"name": "taken"}, format="json").status_code == 409
    model_id = new_model(editor)
    new_version(editor, model_id, records=[record["id"]])
    assert editor.delete(url).status_code == 403
    assert admin.delete(url).status_code == 204
    assert editor.get(url).status_code == 404
    assert editor.get(f"/api/v1/models/{model_id}/versions/1/").json()["records"] == []


def test_a_record_used_by_a_published_version_cannot_be_deleted(clients):
    editor = clients["editor"]
    record = editor.post("/api/v1/contexts/acme/records/", {"name": "train", "uri": "s3://d"}, format="json").json()
    model_id = new_model(editor)
    new_version(editor, model_id, records=[record["id"]])
    assert upload(editor, model_id, 1).status_code == 200
    assert clients["publisher"].post(f"/api/v1/models/{model_id}/versions/1/publish/").status_code == 200
    assert clients["admin"].delete(f"/api/v1/records/{record['id']}/").status_code == 409


# --- audit ----------------------------------------------------------------------------------

@contextmanager
def exactly_one_event(action, *, actor, context="acme", object_type=None):
    """Assert that the block writes exactly one audit event, and that it is complete."""
    last = AuditEvent.objects.aggregate(last=Max("id"))["last"] or 0
    found = {}
    yield found
    events = list(AuditEvent.objects.filter(id__gt=last).select_related("context", "actor"))
    assert [e.action for e in events] == [action]
    event = events[0]
    assert event.actor_name == actor
    assert event.actor is not None and event.actor.username == actor
    assert event.context is not None and event.context.slug == context
    assert event.object_type and event.object_id and event.object_repr
    if object_type:
        assert event.object_type == object_type
    assert event.summary.strip()
    found["event"] = event


def test_every_change_writes_exactly_one_audit_event(clients):
    editor, publisher, admin = clients["editor"], clients["publisher"], clients["admin"]

    with exactly_one_event("model.create", actor="editor", object_type="model") as found:
        model_id = new_model(editor)
    assert found["event"].object_id == model_id
    with exactly_one_event("model.update", actor="editor") as found:
        assert editor.patch(f"/api/v1/models/{model_id}/", {"description": "new"}, format="json").status_code == 200
    assert found["event"].changes == {"description": ["", "new"]}
    with exactly_one_event("version.create", actor="editor", object_type="version"):
        new_version(editor, model_id)
    with exactly_one_event("version.update", actor="editor"):
        assert editor.patch(f"/api/v1/models/{model_id}/versions/1/", {"name": "base"}, format="json").status_code == 200
    with exactly_one_event("format.create", actor="editor", object_type="format"):
        assert editor.post(f"/api/v1/models/{model_id}/versions/1/formats/", {"kind": "pkl"},
                           format="json").status_code == 201
    with exactly_one_event("format.upload", actor="editor", object_type="format"):
        assert upload(editor, model_id, 1).status_code == 200
    with exactly_one_event("format.upload", actor="editor") as found:  # a replacement
        assert upload(editor, model_id, 1, body=b"\x80\x04K\x02.").status_code == 200
    assert "replaced" in found["event"].summary
    with exactly_one_event("metric.log", actor="editor"):
        assert editor.post(f"/api/v1/models/{model_id}/versions/1/metrics/",
                           [{"key": "auc", "value": 0.9}, {"key": "loss", "value": 0.1}], format="json").status_code == 201
    with exactly_one_event("version.publish", actor="publisher", object_type="version"):
        assert publisher.post(f"/api/v1/models/{model_id}/versions/1/publish/").status_code == 200
    with exactly_one_event("alias.move", actor="publisher", object_type="alias"):
        assert publisher.put(f"/api/v1/models/{model_id}/aliases/production/", {"version": 1},
                             format="json").status_code == 200
    publish_new_version(clients, model_id)
    with exactly_one_event("alias.move", actor="publisher") as found:
        assert publisher.put(f"/api/v1/models/{model_id}/aliases/production/", {"version": 2},
                             format="json").status_code == 200
    assert found["event"].changes == {"version": [1, 2]}
    with exactly_one_event("alias.rollback", actor="publisher"):
        assert publisher.post(f"/api/v1/models/{model_id}/aliases/production/rollback/").status_code == 200
    with exactly_one_event("alias.delete", actor="publisher", object_type="alias"):
        assert publisher.delete(f"/api/v1/models/{model_id}/aliases/production/").status_code == 204
    new_version(editor, model_id)
    assert upload(editor, model_id, 3).status_code == 200
    with exactly_one_event("format.delete", actor="editor", object_type="format"):
        assert editor.delete(f"/api/v1/models/{model_id}/versions/3/formats/pkl/").status_code == 204
    with exactly_one_event("version.delete", actor="admin", object_type="version"):
        assert admin.delete(f"/api/v1/models/{model_id}/versions/3/").status_code == 204
    with exactly_one_event("record.create", actor="editor"):
        record = editor.post("/api/v1/contexts/acme/records/", {"name": "d", "uri": "s3://d"}, format="json").json()
    with exactly_one_event("record.update", actor="editor"):
        assert editor.patch(f"/api/v1/records/{record['id']}/", {"uri": "s3://e"}, format="json").status_code == 200
    with exactly_one_event("record.delete", actor="admin"):
        assert admin.delete(f"/api/v1/records/{record['id']}/").status_code == 204
    UserFactory(username="newcomer")
    with exactly_one_event("member.add", actor="admin", object_type="membership"):
        assert admin.post("/api/v1/contexts/acme/members/", {"username": "newcomer", "role": "viewer"},
                          format="json").status_code == 201
    with exactly_one_event("member.change", actor="admin") as found:
        assert admin.patch("/api/v1/contexts/acme/members/newcomer/", {"role": "editor"}, format="json").status_code == 200
    assert found["event"].changes == {"role": ["viewer", "editor"]}
    with exactly_one_event("member.remove", actor="admin"):
        assert admin.delete("/api/v1/contexts/acme/members/newcomer/").status_code == 204
    with exactly_one_event("model.delete", actor="admin", object_type="model") as found:
        assert admin.delete(f"/api/v1/models/{model_id}/").status_code == 204
    assert found["event"].object_id == model_id


def test_refused_and_unchanged_requests_write_no_audit_event(clients):
    editor = clients["editor"]
    model_id = new_model(editor)
    before = AuditEvent.objects.count()
    assert editor.patch(f"/api/v1/models/{model_id}/", {"name": "churn"}, format="json").status_code == 200
    assert editor.post("/api/v1/contexts/acme/models/", {"name": "CHURN"}, format="json").status_code == 409
    assert editor.delete(f"/api/v1/models/{model_id}/").status_code == 403
    assert clients["viewer"].post(f"/api/v1/models/{model_id}/versions/", {}, format="json").status_code == 403
    assert AuditEvent.objects.count() == before


def test_audit_counts_per_action(clients):
    editor = clients["editor"]
    first, second = new_model(editor, "first"), new_model(editor, "second")
    for model_id in (first, second, first):
        new_version(editor, model_id)
    publish_new_version(clients, first)
    counts = Counter(AuditEvent.objects.filter(context__slug="acme").exclude(action__startswith="member.")
                     .exclude(action="context.create").values_list("action", flat=True))
    assert counts == {"model.create": 2, "version.create": 4, "format.create": 1, "format.upload": 1,
                      "version.publish": 1}


def test_audit_api_and_its_filters(clients):
    editor, publisher, viewer = clients["editor"], clients["publisher"], clients["viewer"]
    model_id = new_model(editor)
    publish_new_version(clients, model_id)
    publisher.put(f"/api/v1/models/{model_id}/aliases/production/", {"version": 1}, format="json")

    events = viewer.get("/api/v1/contexts/acme/audit/?page_size=500").json()["results"]
    newest = events[0]
    assert newest["action"] == "alias.move"
    assert newest["actor"] == "publisher"
    assert newest["object"] == "churn@production"
    assert newest["summary"] == "set alias production to version 1"
    assert newest["at"]

    def actions(query):
        r = viewer.get(f"/api/v1/contexts/acme/audit/?{query}")
        assert r.status_code == 200
        return [(e["action"], e["actor"]) for e in r.json()["results"]]

    assert actions("action=version.publish") == [("version.publish", "publisher")]
    assert sorted(actions("action=version")) == [("version.create", "editor"), ("version.publish", "publisher")]
    assert {actor for _, actor in actions("actor=editor")} == {"editor"}
    assert sorted(a for a, _ in actions("actor=editor")) == ["format.create", "format.upload", "model.create",
                                                            "version.create"]
    assert actions("actor=publisher&action=alias") == [("alias.move", "publisher")]
    assert actions("actor=nobody") == []
    assert {e["object_id"] for e in viewer.get(f"/api/v1/contexts/acme/audit/?object_id={model_id}").json()["results"]} == {
        model_id}
    # The log of one context shows nothing of another.
    assert clients["outsider"].get("/api/v1/contexts/acme/audit/").status_code == 404
    assert all(e["action"] != "model.create" for e in
               clients["outsider"].get("/api/v1/contexts/other/audit/").json()["results"])


# --- members --------------------------------------------------------------------------------

def members(client) -> dict:
    r = client.get("/api/v1/contexts/acme/members/?page_size=500")
    assert r.status_code == 200
    return {(m["kind"], m["name"]): m["role"] for m in r.json()["results"]}


def test_admin_manages_users_and_groups(clients):
    admin = clients["admin"]
    UserFactory(username="newbie")
    Group.objects.create(name="ml-team")

    r = admin.post("/api/v1/contexts/acme/members/", {"username": "newbie", "role": "viewer"}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json() == {**r.json(), "kind": "user", "name": "newbie", "role": "viewer"}
    r = admin.post("/api/v1/contexts/acme/members/", {"group": "ml-team", "role": "editor"}, format="json")
    assert r.status_code == 201, r.json()
    assert (r.json()["kind"], r.json()["name"]) == ("group", "ml-team")
    assert members(clients["viewer"])[("group", "ml-team")] == "editor"

    r = admin.patch("/api/v1/contexts/acme/members/newbie/", {"role": "publisher"}, format="json")
    assert r.status_code == 200
    assert r.json()["role"] == "publisher"
    assert admin.patch("/api/v1/contexts/acme/groups/ml-team/", {"role": "viewer"}, format="json").status_code == 200
    assert members(admin)[("user", "newbie")] == "publisher"
    assert members(admin)[("group", "ml-team")] == "viewer"

    assert admin.delete("/api/v1/contexts/acme/members/newbie/").status_code == 204
    assert admin.delete("/api/v1/contexts/acme/groups/ml-team/").status_code == 204
    assert ("user", "newbie") not in members(admin)
    assert ("group", "ml-team") not in members(admin)
    assert admin.delete("/api/v1/contexts/acme/members/newbie/").status_code == 404


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"username": "ghost", "role": "viewer"}, "username"),
        ({"group": "ghosts", "role": "viewer"}, "group"),
        ({"username": "viewer", "role": "owner"}, "role"),
        ({"role": "viewer"}, "username"),
        ({"username": "viewer", "group": "x", "role": "viewer"}, "username"),
    ],
)
def test_invalid_member_requests_are_400(clients, payload, field):
    r = clients["admin"].post("/api/v1/contexts/acme/members/", payload, format="json")
    assert r.status_code == 400
    assert r.json()["field"] == field


def test_adding_an_existing_member_is_409(clients):
    r = clients["admin"].post("/api/v1/contexts/acme/members/", {"username": "viewer", "role": "editor"}, format="json")
    assert r.status_code == 409
    assert members(clients["admin"])[("user", "viewer")] == "viewer"


def test_only_admins_manage_members(clients):
    UserFactory(username="newbie")
    for persona in ("viewer", "editor", "publisher"):
        client = clients[persona]
        assert client.post("/api/v1/contexts/acme/members/", {"username": "newbie", "role": "viewer"},
                           format="json").status_code == 403
        assert client.patch("/api/v1/contexts/acme/members/viewer/", {"role": "admin"}, format="json").status_code == 403
        assert client.delete("/api/v1/contexts/acme/members/viewer/").status_code == 403
    assert clients["outsider"].get("/api/v1/contexts/acme/members/").status_code == 404
    assert clients["outsider"].delete("/api/v1/contexts/acme/members/viewer/").status_code == 404


def test_the_last_admin_cannot_be_removed_or_demoted(clients):
    admin = clients["admin"]
    r = admin.delete("/api/v1/contexts/acme/members/admin/")
    assert r.status_code == 409
    r = admin.patch("/api/v1/contexts/acme/members/admin/", {"role": "viewer"}, format="json")
    assert r.status_code == 409
    assert members(admin)[("user", "admin")] == "admin"
    # With a second admin, the first can step down.
    assert admin.patch("/api/v1/contexts/acme/members/publisher/", {"role": "admin"}, format="json").status_code == 200
    assert admin.patch("/api/v1/contexts/acme/members/admin/", {"role": "viewer"}, format="json").status_code == 200
    assert clients["publisher"].delete("/api/v1/contexts/acme/members/admin/").status_code == 204
    assert clients["publisher"].delete("/api/v1/contexts/acme/members/publisher/").status_code == 409


def test_a_role_change_takes_effect_at_once(clients):
    assert clients["admin"].patch("/api/v1/contexts/acme/members/editor/", {"role": "viewer"},
                                  format="json").status_code == 200
    assert clients["editor"].post("/api/v1/contexts/acme/models/", {"name": "m"}, format="json").status_code == 403
    assert clients["admin"].delete("/api/v1/contexts/acme/members/editor/").status_code == 204
    assert clients["editor"].get("/api/v1/contexts/acme/").status_code == 404


def _grouped_user(username, group_name, group_role, *, direct_role=None):
    context = Context.objects.get(slug="acme")
    user = UserFactory(username=username)
    group, _ = Group.objects.get_or_create(name=group_name)
    user.groups.add(group)
    if not Membership.objects.filter(context=context, group=group).exists():
        services.membership_set(actor=None, context=context, role=group_role, group=group_name)
    if direct_role:
        services.membership_set(actor=None, context=context, role=direct_role, username=username)
    return client_for(user)


def test_a_group_role_grants_its_permissions(clients):
    client = _grouped_user("grouped", "ml-editors", "editor")
    r = client.post("/api/v1/contexts/acme/models/", {"name": "from-a-group"}, format="json")
    assert r.status_code == 201, r.json()
    # The role shown for the context is the effective one, group included.
    assert client.get("/api/v1/contexts/acme/").json()["role"] == "editor"
    assert [(c["slug"], c["role"]) for c in client.get("/api/v1/contexts/").json()["results"]] == [("acme", "editor")]
    assert client.post(f"/api/v1/models/{r.json()['id']}/versions/", {}, format="json").status_code == 201
    assert client.delete(f"/api/v1/models/{r.json()['id']}/").status_code == 403


def test_a_group_viewer_role_only_reads(clients):
    client = _grouped_user("reader", "readers", "viewer")
    assert client.get("/api/v1/contexts/acme/models/").status_code == 200
    assert client.post("/api/v1/contexts/acme/models/", {"name": "nope"}, format="json").status_code == 403


def test_the_highest_of_direct_and_group_role_wins(clients):
    # Direct viewer, group editor: editor.
    promoted = _grouped_user("promoted", "ml-editors", "editor", direct_role="viewer")
    assert promoted.post("/api/v1/contexts/acme/models/", {"name": "m"}, format="json").status_code == 201
    assert promoted.get("/api/v1/contexts/acme/").json()["role"] == "editor"
    # Direct admin, group viewer: admin.
    boss = _grouped_user("boss", "readers", "viewer", direct_role="admin")
    UserFactory(username="newbie")
    assert boss.post("/api/v1/contexts/acme/members/", {"username": "newbie", "role": "viewer"},
                     format="json").status_code == 201
    assert boss.get("/api/v1/contexts/acme/").json()["role"] == "admin"
    # Direct viewer, group viewer: still only a viewer.
    plain = _grouped_user("plain", "readers", "viewer", direct_role="viewer")
    assert plain.post("/api/v1/contexts/acme/models/", {"name": "n"}, format="json").status_code == 403


def test_a_group_membership_elsewhere_grants_nothing_here(clients, other_context):
    services.membership_set(actor=None, context=other_context, role="admin", group=Group.objects.create(name="others").name)
    user = UserFactory(username="stranger")
    user.groups.add(Group.objects.get(name="others"))
    client = client_for(user)
    assert client.get("/api/v1/contexts/acme/models/").status_code == 404
    assert [c["slug"] for c in client.get("/api/v1/contexts/").json()["results"]] == ["other"]
