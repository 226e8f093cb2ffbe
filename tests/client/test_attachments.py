"""A model's attachments from the client and from regctl, against the live registry: upload,
typed listing, verified download (a changed stored file is a TamperError and leaves nothing),
replace only when asked, refusal of a serialized model, delete."""

from __future__ import annotations

import hashlib
import json
import pickle
from collections import OrderedDict
from datetime import datetime
from pathlib import Path

import pytest

from registry_client import Attachment, BadRequest, Conflict, NotFound, TamperError
from tests.client.conftest import run_cli

pytestmark = pytest.mark.django_db(transaction=True)

CARD = b"%PDF-1.7\n% model card\n" + b"x" * 300_000 + b"\n%%EOF\n"


@pytest.fixture
def model(connect):
    return connect("editor").context("acme").model("churn", create=True)


def test_upload_list_download_replace_delete(model, connect, tmp_path):
    card = tmp_path / "model-card.pdf"
    card.write_bytes(CARD)
    uploaded = model.upload_attachment(card, description="What it is for")
    assert isinstance(uploaded, Attachment)
    assert (uploaded.name, uploaded.size, uploaded.content_type) == ("model-card.pdf", len(CARD), "application/pdf")
    assert uploaded.sha256 == hashlib.sha256(CARD).hexdigest()
    assert uploaded.uploaded_by == "editor" and isinstance(uploaded.uploaded_at, datetime)

    reader = connect("viewer").context("acme").model("churn")
    listed = reader.attachments()
    assert [(a.name, a.description) for a in listed] == [("model-card.pdf", "What it is for")]
    path = reader.download_attachment("model-card.pdf", tmp_path / "out")
    assert path == tmp_path / "out" and path.read_bytes() == CARD
    folder = tmp_path / "dl"
    folder.mkdir()
    assert listed[0].download(folder) == folder / "model-card.pdf"

    with pytest.raises(Conflict) as refused:
        model.upload_attachment(card, "Model-Card.pdf")
    assert refused.value.code == "attachment_exists"
    newer = tmp_path / "card-v2.pdf"
    newer.write_bytes(b"%PDF-1.7 v2")
    replaced = model.upload_attachment(newer, "model-card.pdf", overwrite=True)
    assert replaced.id == uploaded.id and replaced.description == "What it is for"
    assert replaced.sha256 == hashlib.sha256(b"%PDF-1.7 v2").hexdigest()

    with pytest.raises(Exception) as forbidden:
        reader.delete_attachment("model-card.pdf")
    assert getattr(forbidden.value, "status", None) == 403
    model.delete_attachment("model-card.pdf")
    assert model.attachments() == []
    with pytest.raises(NotFound):
        model.download_attachment("model-card.pdf", tmp_path)


def test_a_changed_stored_file_is_a_tamper_error_and_leaves_nothing(model, storage_dir, tmp_path):
    from registry.models import ModelAttachment

    source = tmp_path / "benchmarks.csv"
    source.write_bytes(b"version,auc\n1,0.91\n")
    model.upload_attachment(source)
    stored = Path(storage_dir) / ModelAttachment.objects.get().storage_key
    stored.write_bytes(b"version,auc\n1,0.99\n")  # changed behind the registry's back
    target = tmp_path / "out.csv"
    with pytest.raises(TamperError) as tampered:
        model.download_attachment("benchmarks.csv", target)
    assert tampered.value.expected == hashlib.sha256(b"version,auc\n1,0.91\n").hexdigest()
    assert not target.exists() and not list(tmp_path.glob(".out.csv.*"))


def test_a_serialized_model_is_refused_with_its_reason(model, tmp_path):
    source = tmp_path / "model.pkl"
    source.write_bytes(pickle.dumps(OrderedDict(a=1)))
    with pytest.raises(BadRequest) as refused:
        model.upload_attachment(source)
    assert refused.value.code == "serialized_model" and "format of a version" in str(refused.value)
    assert model.attachments() == []


def test_regctl_attachment_add_ls_get_rm(server_url, tokens, tmp_path, model):
    env = {"REGISTRY_URL": server_url, "REGISTRY_TOKEN": tokens["editor"],
           "REGISTRY_CONFIG": str(tmp_path / "absent.toml"), "REGISTRY_CACHE_DIR": str(tmp_path / "cache")}
    (tmp_path / "drift.csv").write_text("day,drift\n1,0.1\n")
    added = run_cli("attachment", "add", "acme", "churn", "drift.csv", "--description", "weekly", "--json",
                    env=env, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["sha256"] == hashlib.sha256(b"day,drift\n1,0.1\n").hexdigest()
    again = run_cli("attachment", "add", "acme", "churn", "drift.csv", env=env, cwd=tmp_path)
    assert again.returncode == 3 and "overwrite" in again.stderr  # 409: exit 3
    listed = run_cli("attachment", "ls", "acme", "churn", env=env, cwd=tmp_path)
    assert "drift.csv" in listed.stdout and "text/csv" in listed.stdout
    (tmp_path / "out").mkdir()
    got = run_cli("attachment", "get", "acme", "churn", "drift.csv", "-o", "out", env=env, cwd=tmp_path)
    assert got.returncode == 0 and (tmp_path / "out" / "drift.csv").read_text() == "day,drift\n1,0.1\n"
    removed = run_cli("attachment", "rm", "acme", "churn", "drift.csv", env=env, cwd=tmp_path)
    assert removed.returncode == 0 and "deleted" in removed.stderr
    for output in (added, again, listed, got, removed):
        assert tokens["editor"] not in output.stdout + output.stderr
