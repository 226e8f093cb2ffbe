"""A published version, its formats and its manifests carry strong ETags: If-None-Match is
answered 304, their serialized form is cached under what can still change it, and whatever
does change (an alias, a file found corrupt, a renamed model or user) changes the ETag."""

from datetime import timezone as dt_timezone

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry import manifests, services
from registry.api import serializers
from registry.models import Format, FormatStatus

from tests.helpers import store_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(model, users):
    """Version 1 of `model`, published with a pkl file; version 2, a draft."""
    version = services.version_create(actor=users["editor"], model=model, tags=["t"])
    store_file(version)
    version = services.version_publish(actor=users["publisher"], version=version)
    services.version_create(actor=users["editor"], model=model)
    return version


def url(version, path=""):
    return f"/api/v1/models/{version.model_id}/versions/{version.number}/{path}"


PATHS = ["", "formats/", "formats/pkl/", "manifest/", "manifest/?frozen=true"]


@pytest.mark.parametrize("path", PATHS)
def test_published_reads_carry_a_strong_etag_and_answer_304(clients, published, path):
    client = clients["viewer"]
    first = client.get(url(published, path))
    assert first.status_code == 200
    etag = first["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert first["Cache-Control"] == "private, no-cache"
    again = client.get(url(published, path))
    assert again.content == first.content and again["ETag"] == etag
    not_modified = client.get(url(published, path), HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304 and not_modified.content == b"" and not_modified["ETag"] == etag
    # Several tags, or a weak form of the same one, match too; another does not.
    assert client.get(url(published, path), HTTP_IF_NONE_MATCH=f'"x", W/{etag}').status_code == 304
    assert client.get(url(published, path), HTTP_IF_NONE_MATCH='"other"').status_code == 200


@pytest.mark.parametrize("path", PATHS)
def test_a_draft_has_no_etag(clients, published, path):
    draft = published.model.versions.get(number=2)
    store_file(draft)
    response = clients["editor"].get(url(draft, path))
    assert response.status_code in (200, 409) and "ETag" not in response


@pytest.mark.parametrize("persona, status", [("outsider", 404), ("anonymous", 401)])
def test_a_304_is_only_for_who_may_see_it(clients, published, persona, status):
    etag = clients["viewer"].get(url(published))["ETag"]
    assert clients[persona].get(url(published), HTTP_IF_NONE_MATCH=etag).status_code == status


def test_the_frozen_manifest_of_a_published_version_is_stamped_with_its_publication(clients, published):
    body = clients["viewer"].get(url(published, "manifest/?frozen=true")).json()
    assert body["timestamp"] == published.published_at.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")
    assert body["lock_checksum"] == manifests.lock_checksum(body)


def etags(client, version):
    return {path: client.get(url(version, path)).get("ETag") for path in PATHS}


def test_what_still_changes_changes_the_etag(clients, published, users):
    client = clients["viewer"]
    before = etags(client, published)
    services.alias_set(actor=users["publisher"], model=published.model, name="production", version_number=1)
    moved = etags(client, published)
    assert moved[""] != before[""] and client.get(url(published)).json()["aliases"] == ["production"]
    assert {path: moved[path] for path in PATHS[1:]} == {path: before[path] for path in PATHS[1:]}

    services.model_update(actor=users["editor"], model=published.model, name="renamed")
    renamed = etags(client, published)
    assert renamed["manifest/"] != moved["manifest/"] and renamed["manifest/?frozen=true"] != moved["manifest/?frozen=true"]
    assert client.get(url(published, "manifest/")).json()["model_name"] == "renamed"

    type(users["publisher"]).objects.filter(pk=users["publisher"].pk).update(username="renamed-publisher")
    assert client.get(url(published))["ETag"] != renamed[""]
    assert client.get(url(published)).json()["published_by"] == "renamed-publisher"

    # The integrity sweep finds the file changed on disk.
    Format.objects.filter(version=published).update(status=FormatStatus.CORRUPT, status_message="changed")
    corrupt = etags(client, published)
    for path in ("", "formats/", "formats/pkl/", "manifest/"):
        assert corrupt[path] != renamed[path], path
    assert client.get(url(published)).json()["formats"][0]["status"] == "corrupt"
    assert client.get(url(published, "formats/pkl/")).json()["status_message"] == "changed"
    assert client.get(url(published, "manifest/?frozen=true")).status_code == 409


def test_the_serialized_form_is_cached_under_its_state(clients, published, monkeypatch):
    client = clients["viewer"]
    first = client.get(url(published))

    def refuse(version):
        raise AssertionError("built again")

    monkeypatch.setattr(serializers, "serialize_version", refuse)
    assert client.get(url(published)).content == first.content  # from the cache
    cache.clear()
    with pytest.raises(AssertionError, match="built again"):
        client.get(url(published))


def test_a_failing_cache_costs_a_build_not_the_answer(clients, published, monkeypatch):
    class Broken:
        def get(self, *args, **kwargs):
            raise ConnectionError("cache down")

        set = get

    monkeypatch.setattr("registry.api.conditional.cache", Broken())
    response = clients["viewer"].get(url(published))
    assert response.status_code == 200 and response.json()["number"] == 1


def test_a_304_costs_the_reads_that_find_it(clients, published):
    client = clients["viewer"]
    etag = client.get(url(published))["ETag"]
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url(published), HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert len(captured) == 3  # the token, the model, the version


def test_pages_of_a_published_versions_formats_have_their_own_etags(clients, published, settings):
    client = clients["viewer"]
    whole = client.get(url(published, "formats/"))
    page = client.get(url(published, "formats/?page_size=1"))
    assert page.json()["results"] == whole.json()["results"] and page["ETag"] != whole["ETag"]
    assert client.get(url(published, "formats/?page=2")).status_code == 404
