"""`registry_client.load(uri, kind=...)`: one call from a version's name to a verified local
path, and the URI forms it reads."""

from __future__ import annotations

import pytest

import registry_client
from registry_client import ConfigError, NotFound, TamperError, VersionURI, parse_version_uri
from tests.client.conftest import MODEL_BYTES, stored_path

MODEL_ID = "0b9f1c52-3a6e-4f0e-9d3c-2f1e8a7b6c5d"


@pytest.mark.parametrize("uri, expected", [
    ("acme/churn@production", VersionURI("acme", "churn", alias="production")),
    ("acme/churn/3", VersionURI("acme", "churn", number=3)),
    ("registry://acme/churn@production", VersionURI("acme", "churn", alias="production")),
    ("registry://acme/churn/12", VersionURI("acme", "churn", number=12)),
    (f"registry://acme/{MODEL_ID}/versions/2/formats/onnx", VersionURI("acme", MODEL_ID, number=2, kind="onnx")),
    ("models:/churn@champion", VersionURI("fraud", "churn", alias="champion")),
    ("models:/churn/7", VersionURI("fraud", "churn", number=7)),
    (f"acme/{MODEL_ID}@production", VersionURI("acme", MODEL_ID, alias="production")),
    # A model name may hold "/" and "@": the version is after the last "/", the alias after the last "@".
    ("acme/team/churn@v2.1-rc_1", VersionURI("acme", "team/churn", alias="v2.1-rc_1")),
    ("acme/churn@eu/4", VersionURI("acme", "churn@eu", number=4)),
    ("  acme/churn@production\n", VersionURI("acme", "churn", alias="production")),
])
def test_the_uri_forms(uri, expected):
    assert parse_version_uri(uri, default_context="fraud") == expected


@pytest.mark.parametrize("uri", [
    "", "churn@production", "acme/churn", "acme/churn/", "acme/churn@", "acme/churn/0", "acme/@production",
    "/churn@production", "acme/churn/latest", "models:/churn", "models:/churn/Production", "models://churn@production",
    "models:churn@production", "s3://bucket/churn@production", "https://registry.example/acme/churn@production",
    "registry://acme", "acme/churn@-production",
])
def test_what_is_not_a_version_uri_is_a_value_error(uri):
    with pytest.raises(ValueError, match="URI|start at 1"):
        parse_version_uri(uri, default_context="fraud")


def test_mlflow_forms_need_a_default_context():
    with pytest.raises(ConfigError, match="REGISTRY_CONTEXT"):
        parse_version_uri("models:/churn@production")
    with pytest.raises(ConfigError):
        parse_version_uri("models:/churn/1", default_context="")


def test_every_form_loads_the_verified_file(published, connect):
    _, model, _ = published
    reg = connect("viewer", default_context="acme")
    for uri in ("acme/churn@production", "acme/churn/1", f"acme/{model.id}@production", "models:/churn@production",
                "models:/churn/1", "registry://acme/churn@production", "registry://acme/churn/1",
                f"registry://acme/{model.id}/versions/1/formats/pkl"):
        path = reg.load(uri, kind="pkl")
        assert path.read_bytes() == MODEL_BYTES, uri
        assert path.name == "model.pkl"
    assert reg.load("acme/churn@production") == path  # the kind defaults to the only required file
    other = reg.load("acme/churn@production", kind="other")  # an optional file by name
    assert other.read_bytes() == b"optional side file\n" * 100


def test_the_module_level_shortcut_is_configured_from_the_environment(published, server_url, tokens, monkeypatch):
    monkeypatch.setenv("REGISTRY_URL", server_url)
    monkeypatch.setenv("REGISTRY_TOKEN", tokens["readonly"])
    monkeypatch.setenv("REGISTRY_CONTEXT", "acme")
    assert registry_client.load("models:/churn@production", kind="pkl").read_bytes() == MODEL_BYTES
    assert registry_client.load("acme/churn/1").read_bytes() == MODEL_BYTES


def test_a_load_costs_three_requests_and_a_cached_one_two(published, connect, proxy_factory):
    proxy = proxy_factory()  # cuts nothing: it only keeps the request lines
    reg = connect("viewer", url=proxy.url)
    assert reg.load("acme/churn@production", kind="pkl").read_bytes() == MODEL_BYTES
    first = [head.split()[:2] for head in proxy.request_heads]
    assert [method for method, _ in first] == ["GET", "GET", "GET"]
    assert first[0][1].startswith("/api/v1/contexts/acme/models/?")  # the model, with its aliases
    assert "/versions/1/manifest/?frozen=true" in first[1][1]
    assert first[2][1].endswith("/versions/1/formats/pkl/file")
    proxy.request_heads.clear()
    assert reg.load("acme/churn@production", kind="pkl").read_bytes() == MODEL_BYTES
    again = [head.split()[1] for head in proxy.request_heads]
    assert len(again) == 2 and not any(path.endswith("/file") for path in again)  # served from the cache


def test_changed_stored_bytes_are_a_tamper_error(published, connect, storage_dir):
    _, _, version = published
    stored_path(storage_dir, version, "pkl").write_bytes(b"\x80\x04K\x02.")
    with pytest.raises(TamperError) as caught:
        connect("viewer").load("acme/churn@production", kind="pkl")
    assert caught.value.file == "pkl" and caught.value.reason == "checksum_mismatch"


def test_what_does_not_exist_is_not_found_and_an_unclear_kind_a_value_error(published, connect, model_file,
                                                                            tmp_path):
    reg = connect("publisher")
    with pytest.raises(NotFound, match="no alias 'staging' .*production"):
        reg.load("acme/churn@staging")
    with pytest.raises(NotFound, match="No onnx file in version 1 of churn; it has: pkl, other"):
        reg.load("acme/churn@production", kind="onnx")
    with pytest.raises(NotFound):
        reg.load("acme/churn/9")
    with pytest.raises(NotFound):
        reg.load("acme/ghost@production")
    with pytest.raises(NotFound):
        connect("outsider").load("acme/churn@production")
    with pytest.raises(ValueError, match="names the pkl file, not other"):
        reg.load(f"registry://acme/{published[1].id}/versions/1/formats/pkl", kind="other")

    second = tmp_path / "second.joblib"
    second.write_bytes(MODEL_BYTES)
    version = reg.context("acme").model("churn").create_version()
    version.upload("pkl", model_file)
    version.upload("joblib", second)
    version.publish()
    with pytest.raises(ValueError, match="Name the kind to load: version 2 of churn has the files (joblib, pkl|pkl, jo"):
        reg.load("acme/churn/2")
    assert reg.load("acme/churn/2", kind="joblib").read_bytes() == MODEL_BYTES
