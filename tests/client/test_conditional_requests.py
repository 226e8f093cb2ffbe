"""Loading a model by alias again costs one answer of real work: the alias (it can move); the
version and its frozen manifest come back 304 and the client uses what it kept."""

from __future__ import annotations

from registry import services
from registry.models import Model

from tests.client.conftest import MODEL_BYTES


def watch(registry) -> list[tuple[str, int]]:
    """(path and query, status) of every answer the registry sends this client."""
    seen: list[tuple[str, int]] = []
    registry._transport.client.event_hooks["response"].append(
        lambda response: seen.append((response.request.url.raw_path.decode(), response.status_code)))
    return seen


def test_the_load_flow_asks_again_with_if_none_match(published, connect, users):
    _, _, version = published
    registry = connect("viewer")
    model = registry.context("acme").model("churn")
    seen = watch(registry)
    first = model.alias("production").get_model("pkl")
    assert first.read_bytes() == MODEL_BYTES
    assert [status for _, status in seen] == [200, 200, 200, 200]  # alias, version, manifest, file
    seen.clear()

    again = model.alias("production").get_model("pkl")
    assert again == first
    base = f"/api/v1/models/{model.id}"
    assert seen == [(f"{base}/aliases/production/", 200), (f"{base}/versions/1/", 304),
                    (f"{base}/versions/1/manifest/?frozen=true", 304)]
    assert model.alias("production").data["status"] == "published"  # a kept body reads as a fresh one

    # What changes is read again: the alias moved to a new version, whose answers are new.
    v2 = services.version_create(actor=users["editor"], model=Model.objects.get(pk=model.id))
    from tests.helpers import store_file

    store_file(v2)
    services.version_publish(actor=users["publisher"], version=v2)
    services.alias_set(actor=users["publisher"], model=v2.model, name="production", version_number=2)
    seen.clear()
    assert model.alias("production").number == 2
    assert [status for _, status in seen] == [200, 200]
    # And so is a published version whose answer changed (an alias now points elsewhere).
    seen.clear()
    assert model.version(1).data["aliases"] == []
    assert seen == [(f"{base}/versions/1/", 200)]


def test_a_draft_is_read_whole_every_time(connect, model_file):
    registry = connect("editor")
    model = registry.context("acme").model("draft-only", create=True)
    version = model.create_version()
    seen = watch(registry)
    version.refresh()
    version.refresh()
    assert [status for _, status in seen] == [200, 200]
