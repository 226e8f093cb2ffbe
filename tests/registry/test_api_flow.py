"""The whole notebook journey over REST, end to end."""

import hashlib

import pytest

from registry.models import AuditEvent, Format

from tests.helpers import upload
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db


def test_full_flow(clients, storage_dir):
    editor, publisher = clients["editor"], clients["publisher"]
    r = editor.post("/api/v1/contexts/acme/models/", {"name": "Churn", "tags": ["tabular", "Tabular", "fraud"],
                                                       "description": "**bold**", "task": "classification"}, format="json")
    assert r.status_code == 201, r.json()
    model = r.json()
    assert model["tags"] == ["fraud", "tabular"]
    assert model["owner"] == "editor"

    record = editor.post("/api/v1/contexts/acme/records/", {"name": "train-2024", "uri": "s3://d/train.parquet"},
                         format="json").json()
    r = editor.post(f"/api/v1/models/{model['id']}/versions/",
                    {"hyperparameters": {"C": 1}, "framework": "scikit-learn", "framework_version": "1.5.2",
                     "records": [record["id"]], "tags": ["baseline"]}, format="json")
    assert r.status_code == 201, r.json()
    version = r.json()
    assert version["number"] == 1
    assert version["model_type"] == "scikit-learn:1.5.2"
    assert version["records"][0]["name"] == "train-2024"

    body = b"\x80\x04K\x01." * 1000
    r = upload(editor, model["id"], 1, "pkl", body, HTTP_X_CHECKSUM_SHA256=hashlib.sha256(body).hexdigest())
    assert r.status_code == 200, r.json()
    fmt = r.json()
    assert fmt["status"] == "uploaded"
    assert fmt["size"] == len(body)
    assert fmt["original_filename"] == "model.pkl"
    assert fmt["declared_sha256"] == hashlib.sha256(body).hexdigest()
    assert len(stored_files(storage_dir)) == 1

    r = editor.get(fmt["file_url"])
    assert r.status_code == 200
    assert b"".join(r.streaming_content) == body
    assert r["Content-Disposition"].startswith("attachment")
    assert r["X-Content-Type-Options"] == "nosniff"
    assert r["Content-Type"] == "application/octet-stream"

    r = editor.post(f"/api/v1/models/{model['id']}/versions/1/metrics/", [{"key": "auc", "value": 0.91, "step": 3},
                    {"key": "auc", "value": 0.93, "step": 4}], format="json")
    assert r.status_code == 201, r.json()
    assert [m["value"] for m in editor.get(f"/api/v1/models/{model['id']}/versions/1/metrics/").json()["results"]] == [0.91, 0.93]

    assert editor.post(f"/api/v1/models/{model['id']}/versions/1/publish/").status_code == 403
    r = publisher.post(f"/api/v1/models/{model['id']}/versions/1/publish/")
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == "published"

    r = publisher.put(f"/api/v1/models/{model['id']}/aliases/production/", {"version": 1}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["version"] == 1
    lineage = editor.get(f"/api/v1/records/{record['id']}/").json()
    assert lineage["versions"] == [{"model_id": model["id"], "model_name": "Churn", "number": 1, "status": "published"}]

    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions[-7:] == ["record.create", "version.create", "format.create", "format.upload", "metric.log",
                            "version.publish", "alias.move"]
    assert Format.objects.get().storage_key.startswith("formats/")
