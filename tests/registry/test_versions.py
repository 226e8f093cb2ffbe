"""Versions and formats over the API: numbering, limits, concurrency, freezing and the publish gate."""

import threading

import pytest
from django.conf import settings as django_settings
from django.db import connections

from registry import services
from registry.errors import LimitReached
from registry.models import Model, Version

from tests.helpers import upload
from tests.conftest import client_for, stored_files

pytestmark = pytest.mark.django_db


def new_model(client, name="churn", ctx="acme") -> str:
    r = client.post(f"/api/v1/contexts/{ctx}/models/", {"name": name}, format="json")
    assert r.status_code == 201, r.json()
    return r.json()["id"]


def new_version(client, model_id, **fields) -> dict:
    r = client.post(f"/api/v1/models/{model_id}/versions/", fields, format="json")
    assert r.status_code == 201, r.json()
    return r.json()


def numbers(client, model_id) -> list[int]:
    r = client.get(f"/api/v1/models/{model_id}/versions/")
    assert r.status_code == 200
    return [v["number"] for v in r.json()["results"]]


def published_version(clients, model_id) -> int:
    number = new_version(clients["editor"], model_id)["number"]
    assert upload(clients["editor"], model_id, number, "pkl").status_code == 200
    r = clients["publisher"].post(f"/api/v1/models/{model_id}/versions/{number}/publish/")
    assert r.status_code == 200, r.json()
    return number


# --- numbering ------------------------------------------------------------------------------

def test_numbers_count_up_from_one(clients):
    editor = clients["editor"]
    model_id = new_model(editor)
    assert [new_version(editor, model_id)["number"] for _ in range(3)] == [1, 2, 3]
    assert numbers(editor, model_id) == [1, 2, 3]


def test_deleted_number_is_never_reused(clients):
    editor, admin = clients["editor"], clients["admin"]
    model_id = new_model(editor)
    for _ in range(3):
        new_version(editor, model_id)
    assert admin.delete(f"/api/v1/models/{model_id}/versions/3/").status_code == 204
    assert new_version(editor, model_id)["number"] == 4
    assert admin.delete(f"/api/v1/models/{model_id}/versions/2/").status_code == 204
    assert new_version(editor, model_id)["number"] == 5
    # The gaps show that deletions happened.
    assert numbers(editor, model_id) == [1, 4, 5]
    assert editor.get(f"/api/v1/models/{model_id}/versions/3/").status_code == 404


def test_numbers_are_per_model(clients):
    editor = clients["editor"]
    first, second = new_model(editor, "first"), new_model(editor, "second")
    new_version(editor, first)
    new_version(editor, first)
    assert new_version(editor, second)["number"] == 1


def test_version_limit_gives_409_naming_the_limit(clients, settings):
    settings.REGISTRY_MAX_VERSIONS = 2
    editor, admin = clients["editor"], clients["admin"]
    model_id = new_model(editor)
    new_version(editor, model_id)
    new_version(editor, model_id)
    r = editor.post(f"/api/v1/models/{model_id}/versions/", {}, format="json")
    assert r.status_code == 409
    body = r.json()
    assert body["code"] == "limit_reached"
    assert "2" in body["detail"] and "most allowed" in body["detail"]
    assert Version.objects.filter(model_id=model_id).count() == 2
    # The limit is on versions that exist at once: deleting one makes room, with a fresh number.
    assert admin.delete(f"/api/v1/models/{model_id}/versions/1/").status_code == 204
    assert new_version(editor, model_id)["number"] == 3
    # Past the limit's numbers the live versions are counted: still full at 2 (versions 2 and 3).
    r = editor.post(f"/api/v1/models/{model_id}/versions/", {}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "limit_reached"
    assert sorted(Version.objects.filter(model_id=model_id).values_list("number", flat=True)) == [2, 3]
    assert admin.delete(f"/api/v1/models/{model_id}/versions/2/").status_code == 204
    assert new_version(editor, model_id)["number"] == 4  # a refused create hands out no number


# --- concurrency (real connections) ----------------------------------------------------------

# SQLite's in-memory test database answers concurrent writers with "table is locked" instead
# of waiting, which says nothing about the registry; the races are checked on PostgreSQL.
postgres_only = pytest.mark.skipif(
    django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="needs real concurrent connections (set DATABASE_URL to PostgreSQL)",
)

def _create_concurrently(model_id, user, count: int) -> tuple[list[int], list[int], list[BaseException]]:
    """`count` threads, each with its own API client and database connection, create one version."""
    barrier = threading.Barrier(count)
    lock = threading.Lock()
    created, refused, errors = [], [], []
    clients = [client_for(user) for _ in range(count)]

    def work(client):
        try:
            barrier.wait(timeout=30)
            r = client.post(f"/api/v1/models/{model_id}/versions/", {}, format="json")
            with lock:
                if r.status_code == 201:
                    created.append(r.json()["number"])
                elif r.status_code == 409 and r.json()["code"] == "limit_reached":
                    refused.append(r.status_code)
                else:
                    errors.append(AssertionError(f"{r.status_code}: {r.content[:300]!r}"))
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return created, refused, errors


@postgres_only
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_creates_get_distinct_consecutive_numbers(context, users, settings):
    settings.REGISTRY_MAX_VERSIONS = 30
    model = services.model_create(actor=users["editor"], context=context, name="raced")
    created, refused, errors = _create_concurrently(model.pk, users["editor"], 20)
    assert errors == []
    assert refused == []
    assert sorted(created) == list(range(1, 21))
    assert sorted(Version.objects.filter(model=model).values_list("number", flat=True)) == list(range(1, 21))
    assert Model.objects.get(pk=model.pk).next_version_number == 21


@postgres_only
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_respect_the_version_limit(context, users, settings):
    settings.REGISTRY_MAX_VERSIONS = 10
    model = services.model_create(actor=users["editor"], context=context, name="raced")
    created, refused, errors = _create_concurrently(model.pk, users["editor"], 20)
    assert errors == []
    assert sorted(created) == list(range(1, 11))
    assert len(refused) == 10
    assert Version.objects.filter(model=model).count() == 10


@postgres_only
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_service_calls_respect_the_version_limit(context, users, settings):
    """The same race through the service layer, which is what the dashboard calls."""
    settings.REGISTRY_MAX_VERSIONS = 10
    editor = users["editor"]
    model = services.model_create(actor=editor, context=context, name="raced")
    barrier = threading.Barrier(20)
    lock = threading.Lock()
    numbers_made, limited, errors = [], [], []

    def work():
        try:
            barrier.wait(timeout=30)
            version = services.version_create(actor=editor, model=Model.objects.get(pk=model.pk))
            with lock:
                numbers_made.append(version.number)
        except LimitReached as exc:
            with lock:
                limited.append(exc)
        except BaseException as exc:  # noqa: BLE001
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(numbers_made) == list(range(1, 11))
    assert len(limited) == 10


# --- formats --------------------------------------------------------------------------------

def test_format_limit_and_one_format_per_kind(clients, settings):
    settings.REGISTRY_MAX_FORMATS = 2
    editor = clients["editor"]
    model_id = new_model(editor)
    new_version(editor, model_id)
    url = f"/api/v1/models/{model_id}/versions/1/formats/"
    r = editor.post(url, {"kind": "pkl"}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["status"] == "pending"
    r = editor.post(url, {"kind": "pkl"}, format="json")
    assert r.status_code == 409
    assert r.json()["code"] == "kind_exists"
    assert editor.post(url, {"kind": "onnx"}, format="json").status_code == 201
    r = editor.post(url, {"kind": "joblib"}, format="json")
    assert r.status_code == 409
    assert r.json()["code"] == "limit_reached"
    assert "(2)" in r.json()["detail"]
    # An upload of a new kind is refused the same way, before anything is stored.
    r = upload(editor, model_id, 1, "joblib")
    assert r.status_code == 409
    assert r.json()["code"] == "limit_reached"
    assert [f["kind"] for f in editor.get(url).json()["results"]] == ["onnx", "pkl"]


def test_default_format_limit_is_three(clients):
    editor = clients["editor"]
    model_id = new_model(editor)
    new_version(editor, model_id)
    url = f"/api/v1/models/{model_id}/versions/1/formats/"
    for kind in ("pkl", "onnx", "pmml"):
        assert editor.post(url, {"kind": kind}, format="json").status_code == 201
    assert editor.post(url, {"kind": "h5"}, format="json").status_code == 409


@pytest.mark.parametrize("kind", ["exe", "PKL", "", None, 3])
def test_unknown_format_kind_is_400(clients, kind):
    editor = clients["editor"]
    model_id = new_model(editor)
    new_version(editor, model_id)
    r = editor.post(f"/api/v1/models/{model_id}/versions/1/formats/", {"kind": kind}, format="json")
    assert r.status_code == 400
    assert r.json()["field"] == "kind"
    assert upload(editor, model_id, 1, "exe").status_code == 400


def test_uploading_twice_replaces_the_file(clients, storage_dir, django_capture_on_commit_callbacks):
    editor = clients["editor"]
    model_id = new_model(editor)
    new_version(editor, model_id)
    assert upload(editor, model_id, 1, "pkl", b"first").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        r = upload(editor, model_id, 1, "pkl", b"second!")
    assert r.status_code == 200
    assert r.json()["size"] == 7
    assert len(stored_files(storage_dir)) == 1


# --- publish freezes a version -------------------------------------------------------------

def test_published_version_is_frozen(clients, storage_dir):
    editor, admin = clients["editor"], clients["admin"]
    model_id = new_model(editor)
    number = published_version(clients, model_id)
    base = f"/api/v1/models/{model_id}/versions/{number}"
    files_before = stored_files(storage_dir)

    r = editor.patch(f"{base}/", {"description": "changed"}, format="json")
    assert r.status_code == 409
    assert r.json()["code"] == "version_published"
    assert admin.patch(f"{base}/", {"tags": ["x"]}, format="json").status_code == 409
    assert editor.post(f"{base}/formats/", {"kind": "onnx"}, format="json").status_code == 409
    assert editor.delete(f"{base}/formats/pkl/").status_code == 409
    assert admin.delete(f"{base}/formats/pkl/").status_code == 409
    assert upload(editor, model_id, number, "pkl", b"replacement").status_code == 409
    assert upload(editor, model_id, number, "onnx", b"new kind").status_code == 409
    assert clients["publisher"].post(f"{base}/publish/").status_code == 409

    version = editor.get(f"{base}/").json()
    assert version["description"] == ""
    assert version["tags"] == []
    assert [f["kind"] for f in version["formats"]] == ["pkl"]
    assert stored_files(storage_dir) == files_before


def test_publish_needs_a_format(clients):
    editor, publisher = clients["editor"], clients["publisher"]
    model_id = new_model(editor)
    new_version(editor, model_id)
    r = publisher.post(f"/api/v1/models/{model_id}/versions/1/publish/")
    assert r.status_code == 409
    assert r.json()["code"] == "not_publishable"
    assert editor.get(f"/api/v1/models/{model_id}/versions/1/").json()["status"] == "draft"


def test_publish_refuses_a_pending_format_and_names_its_kind(clients):
    editor, publisher = clients["editor"], clients["publisher"]
    model_id = new_model(editor)
    new_version(editor, model_id)
    assert upload(editor, model_id, 1, "pkl").status_code == 200
    assert editor.post(f"/api/v1/models/{model_id}/versions/1/formats/", {"kind": "onnx"},
                       format="json").status_code == 201
    r = publisher.post(f"/api/v1/models/{model_id}/versions/1/publish/")
    assert r.status_code == 409
    assert "onnx" in r.json()["detail"]
    assert "pending" in r.json()["detail"]
    # Deleting the empty format makes the version publishable.
    assert editor.delete(f"/api/v1/models/{model_id}/versions/1/formats/onnx/").status_code == 204
    r = publisher.post(f"/api/v1/models/{model_id}/versions/1/publish/")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "published"
    assert body["published_by"] == "publisher"
    assert body["published_at"]


# --- editing --------------------------------------------------------------------------------

def test_patch_changes_only_the_given_fields(clients):
    editor = clients["editor"]
    model_id = new_model(editor)
    new_version(editor, model_id, name="baseline", framework="scikit-learn", framework_version="1.5.2",
                hyperparameters={"C": 1})
    r = editor.patch(f"/api/v1/models/{model_id}/versions/1/",
                     {"description": "Tuned **C**", "hyperparameters": {"C": 0.5}, "tags": ["Tuned", "tuned", "fast"],
                      "config": {"threshold": 0.4}, "metadata": {"provenance": {"commit": "abc123"}}},
                     format="json")
    assert r.status_code == 200, r.json()
    version = r.json()
    assert version["name"] == "baseline"
    assert version["model_type"] == "scikit-learn:1.5.2"
    assert version["description"] == "Tuned **C**"
    assert version["hyperparameters"] == {"C": 0.5}
    assert version["config"] == {"threshold": 0.4}
    assert version["metadata"] == {"provenance": {"commit": "abc123"}}
    assert sorted(version["tags"], key=str.casefold) == ["fast", "Tuned"]
    assert version["updated_by"] == "editor"
    assert editor.get(f"/api/v1/models/{model_id}/versions/1/").json() == version


def test_patch_rejects_a_non_object_json_field(clients):
    editor = clients["editor"]
    model_id = new_model(editor)
    new_version(editor, model_id)
    r = editor.patch(f"/api/v1/models/{model_id}/versions/1/", {"hyperparameters": [1, 2]}, format="json")
    assert r.status_code == 400
    assert r.json()["field"] == "hyperparameters"


def test_patch_links_and_unlinks_records(clients):
    editor = clients["editor"]
    model_id = new_model(editor)
    new_version(editor, model_id)
    first = editor.post("/api/v1/contexts/acme/records/", {"name": "train", "uri": "s3://d/train"}, format="json").json()
    second = editor.post("/api/v1/contexts/acme/records/", {"name": "valid", "uri": "s3://d/valid"}, format="json").json()
    url = f"/api/v1/models/{model_id}/versions/1/"
    r = editor.patch(url, {"records": [first["id"], second["id"]]}, format="json")
    assert r.status_code == 200, r.json()
    assert [rec["name"] for rec in r.json()["records"]] == ["train", "valid"]
    r = editor.patch(url, {"records": [second["id"]]}, format="json")
    assert [rec["name"] for rec in r.json()["records"]] == ["valid"]
    r = editor.patch(url, {"records": []}, format="json")
    assert r.json()["records"] == []


def test_records_of_another_context_cannot_be_linked(clients):
    editor, outsider = clients["editor"], clients["outsider"]
    foreign = outsider.post("/api/v1/contexts/other/records/", {"name": "theirs", "uri": "s3://o/x"}, format="json")
    assert foreign.status_code == 201
    model_id = new_model(editor)
    r = editor.post(f"/api/v1/models/{model_id}/versions/", {"records": [foreign.json()["id"]]}, format="json")
    assert r.status_code == 400
    assert r.json()["field"] == "records"
    new_version(editor, model_id)
    r = editor.patch(f"/api/v1/models/{model_id}/versions/1/", {"records": [foreign.json()["id"]]}, format="json")
    assert r.status_code == 400
    assert r.json()["field"] == "records"
    r = editor.patch(f"/api/v1/models/{model_id}/versions/1/", {"records": ["not-a-uuid"]}, format="json")
    assert r.status_code == 400
    assert r.json()["field"] == "records"
    assert editor.get(f"/api/v1/models/{model_id}/versions/1/").json()["records"] == []


# --- deleting -------------------------------------------------------------------------------

def test_a_version_an_alias_points_to_cannot_be_deleted(clients):
    editor, publisher, admin = clients["editor"], clients["publisher"], clients["admin"]
    model_id = new_model(editor)
    number = published_version(clients, model_id)
    assert publisher.put(f"/api/v1/models/{model_id}/aliases/production/", {"version": number},
                         format="json").status_code == 200
    r = admin.delete(f"/api/v1/models/{model_id}/versions/{number}/")
    assert r.status_code == 409
    assert "production" in r.json()["detail"]
    assert editor.get(f"/api/v1/models/{model_id}/versions/{number}/").status_code == 200
    assert publisher.delete(f"/api/v1/models/{model_id}/aliases/production/").status_code == 204
    assert admin.delete(f"/api/v1/models/{model_id}/versions/{number}/").status_code == 204


def test_deleting_a_version_removes_its_formats_and_files(clients, storage_dir, django_capture_on_commit_callbacks):
    editor, admin = clients["editor"], clients["admin"]
    model_id = new_model(editor)
    new_version(editor, model_id)
    assert upload(editor, model_id, 1, "pkl").status_code == 200
    assert upload(editor, model_id, 1, "onnx", b"onnx bytes").status_code == 200
    assert len(stored_files(storage_dir)) == 2
    assert editor.delete(f"/api/v1/models/{model_id}/versions/1/").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        assert admin.delete(f"/api/v1/models/{model_id}/versions/1/").status_code == 204
    assert stored_files(storage_dir) == []
    assert editor.get(f"/api/v1/models/{model_id}/versions/1/formats/pkl/").status_code == 404
