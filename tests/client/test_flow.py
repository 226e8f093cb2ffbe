"""The notebook flow of SPEC §6 through the client, against the live registry."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime, timezone

import numpy as np
import pytest

from registry_client import (
    Conflict,
    Context,
    Format,
    FormatSummary,
    Manifest,
    Model,
    NotFound,
    Record,
    RecordRef,
    Version,
    infer_signature,
)
from registry_client.manifest import lock_checksum
from tests.client.conftest import MODEL_BYTES


def test_notebook_flow_end_to_end(connect, model_file, tmp_path):
    reg = connect("publisher")
    fraud = reg.context("acme")
    dataset = fraud.create_record("transactions-2026-10", "s3://data/tx/2026-10.parquet", checksum="abc123")

    model = fraud.model("churn-classifier", create=True, tags=["tabular"], task="Churn scoring")
    assert isinstance(model, Model) and model.name == "churn-classifier" and model.tags == ["tabular"]
    assert fraud.model("churn-classifier", create=True) == model  # get-or-create finds it again
    assert fraud.model(model.id) == model  # by ID too

    signature = infer_signature(np.zeros((4, 3), dtype=np.float32), np.zeros(4, dtype=np.int64))
    v = model.create_version(
        hyperparameters={"C": 1.0, "max_iter": np.int64(200), "class_weight": np.array([0.3, 0.7])},
        config={"threshold": 0.4},
        records=[dataset, {"name": "holdout", "uri": "s3://data/holdout.parquet", "checksum": "def456"}],
        framework="scikit-learn", framework_version="1.5.2", metadata={"provenance": {"commit": "abc"}},
        tags=["baseline"], signature=signature, description="**first** try",
    )
    assert isinstance(v, Version) and v.number == 1 and v.status == "draft"
    assert v.model_type == "scikit-learn:1.5.2"
    assert sorted(r.name for r in v.records) == ["holdout", "transactions-2026-10"]
    assert all(isinstance(r, RecordRef) for r in v.records)
    assert v.signature == signature
    assert v.hyperparameters == {"C": 1.0, "max_iter": 200, "class_weight": [0.3, 0.7]}  # numpy values encoded

    uploaded = v.upload("pkl", model_file)
    assert isinstance(uploaded, Format)
    assert uploaded.status == "ready"  # the live server runs queued work eagerly
    assert uploaded.sha256 == hashlib.sha256(MODEL_BYTES).hexdigest()
    assert uploaded.declared_sha256 == uploaded.sha256  # the client sent the checksum
    assert uploaded.filename == "model.pkl" and uploaded.size == len(MODEL_BYTES)

    v.log_metrics({"auc": 0.91, "loss": 0.3}, step=np.int64(3))
    v.log_metrics([{"key": "auc", "value": 0.92, "step": 4},
                   {"key": "auc", "value": np.float64(0.93), "step": 5}],
                  wallclock=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    v.log_metric("notes", "calibrated", wallclock=1_700_000_000)
    auc = v.metrics("auc")
    assert [(m["step"], m["value"]) for m in auc] == [(3, 0.91), (4, 0.92), (5, 0.93)]
    assert auc[1]["wallclock"].startswith("2026-01-02T03:04:05")
    assert {m["key"] for m in v.metrics()} == {"auc", "loss", "notes"}

    v.update_metadata(taxonomy={"algorithm": "logistic regression"})
    assert v.refresh().metadata == {"provenance": {"commit": "abc"}, "taxonomy": {"algorithm": "logistic regression"}}
    v.update(description="second try")
    assert v.description == "second try"

    v.publish()
    assert v.status == "published" and v.published_by == "publisher"
    model.set_alias("production", v)
    assert model.aliases == {"production": 1}
    assert model.refresh().aliases == {"production": 1}

    # Later, elsewhere: fetch the production model, verified.
    path = reg.context("acme").model("churn-classifier").alias("production").get_model("pkl")
    assert path.read_bytes() == MODEL_BYTES
    assert path.name == "model.pkl"


def test_published_version_refuses_changes_with_the_servers_message(published):
    _, model, version = published
    with pytest.raises(Conflict) as caught:
        version.update(description="too late")
    assert caught.value.status == 409
    assert caught.value.code == "version_published"
    assert "published" in caught.value.message
    # Metrics describe results and may still be logged.
    assert version.log_metric("late_auc", 0.95)["value"] == 0.95


def test_models_search_tags_ordering_and_all_pages(connect):
    reg = connect("editor")
    acme = reg.context("acme")
    for i in range(5):
        acme.create_model(f"model-{i}", tags=["even" if i % 2 == 0 else "odd"], description=f"number {i}")
    acme.create_model("needle-finder", description="finds needles")
    assert [m.name for m in acme.models(search="needle")] == ["needle-finder"]
    assert sorted(m.name for m in acme.models(tag="odd")) == ["model-1", "model-3"]
    assert [m.name for m in acme.models(ordering="-name")][:2] == ["needle-finder", "model-4"]
    # Pagination: follow every page (page_size 2 forces four pages for six models).
    pages = list(reg._transport.paginate("contexts/acme/models/", page_size=2, ordering="name"))
    assert [m["name"] for m in pages] == ["model-0", "model-1", "model-2", "model-3", "model-4", "needle-finder"]
    assert len(list(acme.models())) == 6


def test_model_update_versions_aliases_and_rollback(connect, model_file):
    reg = connect("publisher")
    model = reg.context("acme").model("ranker", create=True)
    model.update(description="ranks things", tags=["search"], metadata={"team": "search"})
    assert reg.model(model.id).description == "ranks things"
    versions = []
    for _ in range(2):
        v = model.create_version()
        v.upload("pkl", model_file)
        versions.append(v.publish())
    assert [v.number for v in model.versions()] == [1, 2]
    model.set_alias("production", 1)
    model.set_alias("production", versions[1])
    assert model.alias("production").number == 2
    assert [(m["from_version"], m["to_version"]) for m in model.alias_history("production")] == [(1, 2), (None, 1)]
    assert model.rollback_alias("production").number == 1
    assert model.version("production").number == 1  # a version by alias name
    assert model.latest().number == 2
    model.delete_alias("production")
    with pytest.raises(NotFound):
        model.alias("production")


def test_formats_download_and_track_a_training_record(connect, model_file, tmp_path):
    reg = connect("editor")
    model = reg.context("acme").model("embedder", create=True)
    v = model.create_version()
    v.upload("pkl", model_file, required=False, fail_on_tamper=False)
    [fmt] = v.formats()
    assert (fmt.kind, fmt.filename, fmt.status) == ("pkl", "model.pkl", "ready")
    assert fmt.md5 == hashlib.md5(MODEL_BYTES).hexdigest()
    assert fmt.sha256 == hashlib.sha256(MODEL_BYTES).hexdigest()
    assert (fmt.required, fmt.fail_on_tamper) == (False, False)
    assert [(f.kind, f.status, f.size) for f in v.refresh().format_summaries] == [("pkl", "ready", len(MODEL_BYTES))]

    v.upload("pkl", model_file)  # re-upload: the existing format's flags are moved back
    assert (v.format("pkl").required, v.format("pkl").fail_on_tamper) == (True, True)
    assert v.update_format("pkl", required=False).required is False

    (tmp_path / "out").mkdir()
    out = v.download("pkl", tmp_path / "out")
    assert out == tmp_path / "out" / "model.pkl" and out.read_bytes() == MODEL_BYTES
    named = v.download("pkl", tmp_path / "renamed.bin")
    assert named.read_bytes() == MODEL_BYTES
    assert not list((tmp_path / "out").glob(".*part"))  # no temporary file left

    record = v.track_record("s3://bucket/embeddings/vectors.parquet", "sha256:0f0f")
    assert isinstance(record, Record) and record.name == "vectors.parquet" and record.checksum == "sha256:0f0f"
    again = v.track_record("s3://bucket/embeddings/vectors.parquet", "sha256:0f0f")
    assert again == record  # reused by name, linked once
    assert [r.name for r in v.refresh().records] == ["vectors.parquet"]
    linked = reg.record(record.id)
    assert [(x.model_name, x.number) for x in linked.versions] == [("embedder", 1)]
    with pytest.raises(Conflict, match="exists with uri"):
        v.track_record("s3://other/vectors.parquet", "sha256:1111")

    v.delete_format("pkl")
    assert v.formats() == []


# Calls mylibrary.models.Scorer("f1") when loaded: third-party code the scanner cannot vet. Never loaded.
REVIEW_BYTES = b"\x80\x02cmylibrary.models\nScorer\nX\x02\x00\x00\x00f1\x85R."


def test_a_file_in_review_stops_publish_naming_its_imports_until_a_publisher_approves(connect, tmp_path):
    path = tmp_path / "scorer.pkl"
    path.write_bytes(REVIEW_BYTES)
    editor = connect("editor")
    v = editor.context("acme").model("scorer", create=True).create_version()
    uploaded = v.upload("pkl", path, wait=False)
    assert uploaded.status == "review"  # the workers ran as the upload committed
    assert uploaded.unvetted_imports == [
        {"import": "mylibrary.models.Scorer", "module": "mylibrary.models", "name": "Scorer", "called": True}]
    with pytest.raises(Conflict) as caught:
        v.wait_ready(timeout=30)
    assert caught.value.code == "not_ready" and caught.value.field == "pkl"
    assert "needs review" in str(caught.value) and "mylibrary.models.Scorer" in str(caught.value)
    assert "publisher must approve" in str(caught.value)

    with pytest.raises(Conflict) as refused:
        v.download("pkl", tmp_path / "out.pkl")
    assert refused.value.code == "not_ready" and not (tmp_path / "out.pkl").exists()
    assert v.download("pkl", tmp_path / "out.pkl", acknowledge_not_ready=True).read_bytes() == REVIEW_BYTES

    publisher = connect("publisher").context("acme").model("scorer").version(1)
    approved = publisher.approve_imports("pkl", "our own package, reviewed in PR 412")
    assert isinstance(approved, Format) and approved.status == "ready"
    assert publisher.publish().status == "published"


def test_freeze_writes_a_manifest_whose_lock_matches(published, tmp_path):
    _, model, version = published
    path = tmp_path / "manifest.json"
    manifest = version.freeze(path)
    assert isinstance(manifest, Manifest)
    data = json.loads(path.read_text())
    assert data["lock_checksum"] == lock_checksum(data)
    assert data["model_id"] == model.id and data["version"] == 1 and data["context"] == "acme"
    assert [f["name"] for f in data["required_files"]] == ["pkl"]
    assert [f["name"] for f in data["optional_files"]] == ["other"]
    pkl = data["required_files"][0]
    assert pkl["sha256_checksum"] == hashlib.sha256(MODEL_BYTES).hexdigest()
    assert pkl["md5_checksum"] == hashlib.md5(MODEL_BYTES).hexdigest()
    assert pkl["source_uri"] == f"registry://acme/{model.id}/versions/1/formats/pkl"
    assert data["optional_files"][0]["fail_on_tamper"] is False


def test_resources_are_typed_dataclasses_over_the_json(published, connect):
    registry, model, _ = published
    version = model.version("production")
    [pkl] = [f for f in version.formats() if f.kind == "pkl"]
    context = registry.context("acme")
    for resource in (context, model, version, pkl):
        assert dataclasses.is_dataclass(resource) and isinstance(resource.data, dict)
    assert context.role == "publisher" and isinstance(context.created_at, datetime)
    assert model.aliases == {"production": 1}  # set_alias kept it up to date
    assert model.version_numbers == [] and model.refresh().version_numbers == [1] and model.latest_version == 1
    assert isinstance(model.created_at, datetime) and model.created_at.tzinfo is not None
    assert (version.number, version.status, version.aliases, version.model_id) == (1, "published", ["production"],
                                                                                   model.id)
    assert isinstance(version.published_at, datetime) and version.published_at.tzinfo is not None
    assert sorted(version.format_summaries, key=lambda f: f.kind) == [
        FormatSummary(kind="other", status="ready", size=1900, sha256=version.format("other").sha256),
        FormatSummary(kind="pkl", status="ready", size=len(MODEL_BYTES),
                      sha256=hashlib.sha256(MODEL_BYTES).hexdigest()),
    ]
    assert pkl.version is version and isinstance(pkl.uploaded_at, datetime) and pkl.report["status"] == "ready"
    with pytest.raises(AttributeError):
        model.no_such_field  # noqa: B018 - a name that is not a field is an error, not a JSON lookup

    # A key the JSON lacks takes the field's default; one this client does not know stays in `.data`.
    newer = Model._from_json({"id": model.id, "name": "churn", "added_later": 1}, registry=registry)
    assert (newer.tags, newer.aliases, newer.owner, newer.created_at) == ([], {}, None, None)
    assert newer.data["added_later"] == 1 and not hasattr(newer, "added_later")

    connect("editor").context("acme").model("churn").update(description="edited elsewhere")
    assert model.description == "" and model.refresh().description == "edited elsewhere"
    assert model.data["description"] == "edited elsewhere"


def test_the_client_speaks_the_registrys_words():
    """A format is a format and a training record a record, as on the server and the dashboard:
    no second name for either (`artifact` is only a format kind, the zip model artifact)."""
    import registry_client

    names = set(registry_client.__all__)
    for cls in (registry_client.Registry, Context, Model, Version, Format, Record):
        names |= {name for name in dir(cls) if not name.startswith("__")}
    assert not sorted(name for name in names if "artifact" in name.lower())
    assert {"formats", "format", "update_format", "delete_format", "track_record"} <= set(dir(Version))



def test_a_protected_alias_move_raises_move_requested_and_moves_nothing(published, connect, context):
    """A publisher's token moving a protected alias gets MoveRequested (the server made a move
    request, 202) and the alias stays; an admin's token moves it."""
    from registry import services
    from registry.models import Model as ModelRow
    from registry_client import MoveRequested
    from tests.helpers import store_file

    registry, model, version = published
    v2 = services.version_create(actor=None, model=ModelRow.objects.get(pk=model.id))
    store_file(v2)
    services.version_publish(actor=None, version=v2)
    services.protected_alias_add(actor=None, context=context, name="production")
    with pytest.raises(MoveRequested) as raised:
        model.set_alias("production", v2.number, comment="ship it")
    assert raised.value.request["status"] == "pending" and raised.value.request["comment"] == "ship it"
    assert "protected" in str(raised.value)
    assert registry.context("acme").model("churn").aliases == {"production": 1}
    admin = connect("admin").context("acme").model("churn")
    admin.set_alias("production", v2.number)
    assert admin.aliases == {"production": 2}
