"""Bad input answers 4xx JSON with a message, never a 500, and stores nothing (issue 13).

NUL characters, JSON nested too deep, numbers out of range, too many tags, bodies over the
limit, unknown API paths, non-ASCII file names and look-alike model names. Every case here
was a 500 (or an HTML page, or a silent mangling) before; they run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.models import AuditEvent, Metric, Model, TrainingRecord, Version

from tests.helpers import upload

pytestmark = pytest.mark.django_db

NUL = "\x00"


def assert_json_error(response, status: int = 400, code: str | None = "invalid") -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["detail"], body
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.fixture
def version(model, users):
    from registry import services

    return services.version_create(actor=users["editor"], model=model)


# --- 1. NUL characters ------------------------------------------------------------------------

@pytest.mark.parametrize("path, params", [
    ("/api/v1/contexts/acme/models/", {"search": f"a{NUL}b"}),
    ("/api/v1/contexts/acme/models/", {"tag": f"a{NUL}b"}),
    ("/api/v1/contexts/acme/models/", {"name": f"a{NUL}b"}),
    ("/api/v1/contexts/acme/audit/", {"object_id": f"a{NUL}b"}),
    ("/api/v1/contexts/acme/audit/", {"actor": f"a{NUL}b"}),
    ("/api/v1/contexts/acme/audit/", {"action": f"a{NUL}b"}),
    ("/api/v1/contexts/acme/records/", {"search": f"a{NUL}b"}),
])
def test_nul_in_a_query_parameter_is_400_json(clients, model, path, params):
    body = assert_json_error(clients["viewer"].get(path, params))
    assert "NUL" in body["detail"]


def test_nul_in_the_metrics_key_filter_is_400_json(clients, version):
    r = clients["viewer"].get(f"/api/v1/models/{version.model_id}/versions/1/metrics/", {"key": f"a{NUL}"})
    assert_json_error(r)


def test_nul_in_a_query_parameter_name_is_400_json(clients, model):
    assert_json_error(clients["viewer"].get("/api/v1/contexts/acme/models/?a%00=1"))


@pytest.mark.parametrize("suffix", ["aliases/pro%00d/", "versions/1/formats/pk%00l/", "versions/1/formats/pk%00l/file"])
def test_nul_in_a_path_segment_is_400_json(clients, version, suffix):
    r = clients["publisher"].get(f"/api/v1/models/{version.model_id}/{suffix}")
    assert_json_error(r)


def test_nul_in_an_alias_name_on_put_is_400_json(clients, version):
    r = clients["publisher"].put(f"/api/v1/models/{version.model_id}/aliases/pro%00d/", {"version": 1},
                                 format="json")
    assert_json_error(r)


@pytest.mark.parametrize("fields", [
    {"metadata": {f"k{NUL}": 1}},
    {"metadata": {"k": f"v{NUL}"}},
    {"metadata": {"k": [{"deep": [f"v{NUL}"]}]}},
    {"tags": [f"t{NUL}"]},
    {"description": f"d{NUL}"},
    {"task": f"t{NUL}"},
    {"name": f"n{NUL}"},
])
def test_nul_in_a_model_body_is_400_and_stores_nothing(clients, fields):
    before = AuditEvent.objects.count()
    r = clients["editor"].post("/api/v1/contexts/acme/models/", {"name": "fresh", **fields}, format="json")
    assert_json_error(r)
    assert not Model.objects.filter(name="fresh").exists()
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("fields", [
    {"metadata": {"provenance": {f"repo{NUL}": "x"}}},
    {"hyperparameters": {"lr": f"0.1{NUL}"}},
    {"config": {f"{NUL}": 1}},
    {"signature": {"inputs": [{"name": f"x{NUL}", "dtype": "float32", "shape": [-1]}]}},
    {"name": f"v{NUL}"},
    {"framework": f"sk{NUL}"},
])
def test_nul_in_a_version_body_is_400_and_stores_nothing(clients, model, fields):
    r = clients["editor"].post(f"/api/v1/models/{model.pk}/versions/", fields, format="json")
    assert_json_error(r)
    assert not Version.objects.exists()


def test_nul_in_a_version_edit_is_400_and_changes_nothing(clients, version):
    r = clients["editor"].patch(f"/api/v1/models/{version.model_id}/versions/1/",
                                {"metadata": {"k": f"{NUL}"}}, format="json")
    assert_json_error(r)
    version.refresh_from_db()
    assert version.metadata == {}


@pytest.mark.parametrize("metric", [
    {"key": f"loss{NUL}", "value": 1.0},
    {"key": "loss", "value": f"high{NUL}"},
])
def test_nul_in_a_metric_is_400_and_stores_nothing(clients, version, metric):
    r = clients["editor"].post(f"/api/v1/models/{version.model_id}/versions/1/metrics/", [metric], format="json")
    assert_json_error(r)
    assert not Metric.objects.exists()


def test_nul_in_a_record_is_400_and_stores_nothing(clients, context):
    r = clients["editor"].post("/api/v1/contexts/acme/records/", {"name": "d", "uri": f"s3://b/{NUL}"}, format="json")
    assert_json_error(r)
    assert not TrainingRecord.objects.exists()


def test_unpaired_surrogate_in_json_is_400_and_stores_nothing(clients):
    r = clients["editor"].generic("POST", "/api/v1/contexts/acme/models/",
                                  '{"name": "fresh", "metadata": {"k": "\\ud800"}}', content_type="application/json")
    assert_json_error(r)
    assert not Model.objects.exists()


def put_file(client, version, query: str = "", **headers):
    return client.generic("PUT", f"/api/v1/models/{version.model_id}/versions/{version.number}/formats/pkl/file{query}",
                          data=b"\x80\x04K\x01.", content_type="application/octet-stream", **headers)


@pytest.mark.parametrize("header", ["a%00b.pkl", "UTF-8''a%00b.pkl"])
def test_an_encoded_nul_in_x_filename_is_dropped_like_other_control_characters(clients, version, header):
    r = put_file(clients["editor"], version, HTTP_X_FILENAME=header)
    assert r.status_code == 200, r.content[:300]
    assert r.json()["original_filename"] == "ab.pkl"


@pytest.mark.parametrize("headers", [
    {"HTTP_X_FILENAME": "a\x00b.pkl"},
    {"CONTENT_TYPE": "application/octet-stream; x=\x00"},
    {"HTTP_X_CHECKSUM_SHA256": "\x00"},
])
def test_nul_in_a_header_is_400_and_stores_nothing(clients, version, storage_dir, headers):
    from tests.conftest import stored_files

    headers = {"content_type": headers.pop("CONTENT_TYPE", "application/octet-stream"), **headers}
    r = clients["editor"].generic("PUT", f"/api/v1/models/{version.model_id}/versions/1/formats/pkl/file",
                                  data=b"\x80\x04K\x01.", **headers)
    assert "header contains a NUL" in assert_json_error(r)["detail"]
    assert stored_files(storage_dir) == []


# --- 2. JSON nested too deep ---------------------------------------------------------------

@pytest.mark.parametrize("body", [
    '{"name": "deep", "metadata": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}",
    '{"name": "deep", "metadata": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}",
    "[" * 100_000,  # not even closed
])
def test_json_nested_too_deep_is_400_naming_the_limit(clients, settings, body):
    r = clients["editor"].generic("POST", "/api/v1/contexts/acme/models/", body, content_type="application/json")
    detail = assert_json_error(r, code="parse_error")["detail"]
    assert f"{settings.REGISTRY_MAX_JSON_DEPTH} levels" in detail
    assert not Model.objects.exists()


def test_json_at_the_nesting_limit_is_accepted_and_one_more_level_is_not(clients, settings):
    settings.REGISTRY_MAX_JSON_DEPTH = 10

    def body(levels_inside_metadata):
        return '{"name": "m%d", "metadata": %s}' % (levels_inside_metadata,
                                                     '{"a": ' * (levels_inside_metadata - 1) + "{}" + "}" * (levels_inside_metadata - 1))

    post = clients["editor"].generic
    # The body object is level 1, so metadata may hold 9 levels.
    r = post("POST", "/api/v1/contexts/acme/models/", body(9), content_type="application/json")
    assert r.status_code == 201, r.json()
    r = post("POST", "/api/v1/contexts/acme/models/", body(10), content_type="application/json")
    assert_json_error(r, code="parse_error")


def test_brackets_inside_strings_do_not_count_as_nesting(clients):
    text = "[" * 10_000 + '\\"{' * 100
    r = clients["editor"].post("/api/v1/contexts/acme/models/", {"name": "m", "metadata": {"note": text}}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["metadata"]["note"] == text


def test_metrics_nested_too_deep_are_400(clients, version):
    body = '[{"key": "k", "value": ' + "[" * 50_000 + "]" * 50_000 + "}]"
    r = clients["editor"].generic("POST", f"/api/v1/models/{version.model_id}/versions/1/metrics/", body,
                                  content_type="application/json")
    assert_json_error(r, code="parse_error")


def test_nan_and_infinity_are_not_json(clients, version):
    for constant in ("NaN", "Infinity", "-Infinity"):
        r = clients["editor"].generic("POST", f"/api/v1/models/{version.model_id}/versions/1/metrics/",
                                      '[{"key": "k", "value": %s}]' % constant, content_type="application/json")
        assert_json_error(r, code="parse_error")
    assert not Metric.objects.exists()


def test_a_service_refuses_json_nested_too_deep(users, context, settings):
    from registry import services
    from registry.errors import InvalidInput

    deep: dict = {}
    for _ in range(settings.REGISTRY_MAX_JSON_DEPTH + 5):
        deep = {"a": deep}
    with pytest.raises(InvalidInput, match="levels"):
        services.model_create(actor=users["editor"], context=context, name="m", metadata=deep)


# --- 5. the body limit ---------------------------------------------------------------------

def test_a_batch_of_ten_thousand_long_metrics_fits_the_body_limit(clients, version):
    """The largest documented JSON body: 10,000 metrics with 200-character keys and
    500-character text values."""
    import json

    items = [{"key": "k" * 200, "value": "v" * 500, "step": -(2**63), "wallclock": "2024-01-01T00:00:00.000000+00:00"}
             for _ in range(10_000)]
    body = json.dumps(items)
    assert len(body) > 2.5 * 1024 * 1024  # Django's default limit
    r = clients["editor"].generic("POST", f"/api/v1/models/{version.model_id}/versions/1/metrics/", body,
                                  content_type="application/json")
    assert r.status_code == 201, r.content[:300]
    assert Metric.objects.count() == 10_000


def test_a_body_over_the_limit_is_413_json_naming_it(clients, version, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '[{"key": "k", "value": "%s"}]' % ("x" * 2000)
    r = clients["editor"].generic("POST", f"/api/v1/models/{version.model_id}/versions/1/metrics/", body,
                                  content_type="application/json")
    detail = assert_json_error(r, 413, "body_too_large")["detail"]
    assert "1,000 bytes" in detail
    assert not Metric.objects.exists()


def test_a_dashboard_form_over_the_limit_is_a_413_page(users, model, settings):
    from django.test import Client

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client = Client()
    client.force_login(users["editor"])
    r = client.post(f"/models/{model.pk}/edit/", {"name": "Churn", "description": "x" * 2000})
    assert r.status_code == 413
    assert r["Content-Type"].startswith("text/html")
    assert "1,000 bytes" in r.content.decode()


# --- 6. unknown API paths --------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/api/v1/nothing/", "/api/v1/models/", "/api/v2/contexts/", "/api/", "/api/v1/contexts/acme/modelz/",
    "/api/v1/models/00000000-0000-0000-0000-000000000000/versions/1/formats/pkl/file/",
])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_an_unknown_api_path_is_404_json(clients, context, path, method):
    r = getattr(clients["viewer"], method)(path)
    body = assert_json_error(r, 404, "not_found")
    assert body["detail"] == "Not found."


def test_an_unknown_api_path_is_404_json_for_anonymous_clients_too(client, db):
    assert_json_error(client.get("/api/v1/nothing/"), 404, "not_found")


def test_an_api_path_without_its_trailing_slash_still_redirects_on_get(clients, context):
    r = clients["viewer"].get("/api/v1/contexts/acme/models?search=x")
    assert r.status_code == 301
    assert r["Location"] == "/api/v1/contexts/acme/models/?search=x"
    body = assert_json_error(clients["editor"].post("/api/v1/contexts/acme/models", {"name": "m"}, format="json"),
                             404, "not_found")
    assert "trailing slash" in body["detail"]


def test_a_wrong_method_stays_405_json(clients, context):
    r = clients["viewer"].put("/api/v1/contexts/acme/models/", {}, format="json")
    assert_json_error(r, 405, "method_not_allowed")


def test_nul_in_the_filename_parameter_is_400_and_stores_nothing(clients, version, storage_dir):
    from tests.conftest import stored_files

    r = clients["editor"].generic(
        "PUT", f"/api/v1/models/{version.model_id}/versions/1/formats/pkl/file?filename=a%00b.pkl",
        data=b"payload", content_type="application/octet-stream")
    assert_json_error(r)
    assert stored_files(storage_dir) == []


# --- 3. numbers out of range ----------------------------------------------------------------

def post_metrics(clients, version, text: str):
    return clients["editor"].generic("POST", f"/api/v1/models/{version.model_id}/versions/1/metrics/", text,
                                     content_type="application/json")


@pytest.mark.parametrize("step", [str(2**63), str(-(2**63) - 1), "1" + "0" * 30, "-" + "1" + "0" * 30])
def test_a_step_outside_signed_64_bits_is_400_naming_the_range(clients, version, step):
    r = post_metrics(clients, version, '[{"key": "k", "value": 1, "step": %s}]' % step)
    body = assert_json_error(r)
    assert body["field"] == "step"
    assert str(2**63 - 1) in body["detail"] and str(-(2**63)) in body["detail"]
    assert not Metric.objects.exists()


def test_the_ends_of_the_step_range_are_stored(clients, version):
    r = post_metrics(clients, version, '[{"key": "k", "value": 1, "step": %d}, {"key": "k", "value": 2, "step": %d}]'
                     % (2**63 - 1, -(2**63)))
    assert r.status_code == 201, r.json()
    assert sorted(Metric.objects.values_list("step", flat=True)) == [-(2**63), 2**63 - 1]


@pytest.mark.parametrize("value", ["1" + "0" * 400, "1e400", "-1e400"])
def test_a_value_beyond_a_double_is_400(clients, version, value):
    r = post_metrics(clients, version, '[{"key": "k", "value": %s}]' % value)
    body = assert_json_error(r)
    assert body["field"] == "value"
    assert not Metric.objects.exists()


@pytest.mark.parametrize("wallclock", [
    "1e300", "-1e300", str(10**30), '"99999-01-01T00:00:00Z"', '"2024-13-45T00:00:00Z"', '"0000-01-01T00:00:00Z"',
    '"9999-12-31T23:59:59-23:59"', '"0001-01-01T00:00:00+23:59"',
])
def test_a_wallclock_out_of_range_is_400(clients, version, wallclock):
    r = post_metrics(clients, version, '[{"key": "k", "value": 1, "wallclock": %s}]' % wallclock)
    assert_json_error(r)
    assert not Metric.objects.exists()


@pytest.mark.parametrize("path", [
    f"versions/{2**63}/", f"versions/{10**30}/", f"versions/{10**30}/metrics/",
])
def test_a_version_number_out_of_range_in_the_path_is_404(clients, version, path):
    assert_json_error(clients["viewer"].get(f"/api/v1/models/{version.model_id}/{path}"), 404, "not_found")


@pytest.mark.parametrize("number", [2**63, 10**30, -(2**63) - 1])
def test_an_alias_to_a_version_number_out_of_range_is_400(clients, version, number):
    r = clients["publisher"].put(f"/api/v1/models/{version.model_id}/aliases/production/", {"version": number},
                                 format="json")
    assert_json_error(r)


@pytest.mark.parametrize("path", ["/api/v1/contexts/acme/members/", "/api/v1/contexts/acme/models/"])
@pytest.mark.parametrize("query", [f"page={10**30}", f"page_size={10**30}", "page=-1", f"page_size=-{10**30}"])
def test_paging_numbers_out_of_range_are_not_a_500(clients, model, path, query):
    r = clients["admin"].get(f"{path}?{query}")
    # The models page by cursor: a page number there is refused (400) whatever its value.
    allowed = (400,) if "models" in path and query.startswith("page=") else (200, 404)
    assert r.status_code in allowed, r.content[:200]
    assert r["Content-Type"].startswith("application/json")


def test_huge_numbers_in_json_fields_are_stored_or_refused_never_a_500(clients):
    r = clients["editor"].post("/api/v1/contexts/acme/models/", {"name": "m", "metadata": {"n": 10**30, "f": 1e300}},
                               format="json")
    assert r.status_code in (201, 400), r.content[:200]
    if r.status_code == 201:
        assert clients["viewer"].get(f"/api/v1/models/{r.json()['id']}/").json()["metadata"]["n"] == 10**30


# --- 4. too many tags -----------------------------------------------------------------------

def test_a_hundred_thousand_tags_are_400_naming_the_cap(clients, settings):
    tags = [f"t{n}" for n in range(100_000)]
    body = assert_json_error(clients["editor"].post("/api/v1/contexts/acme/models/", {"name": "m", "tags": tags},
                                                    format="json"))
    assert body["field"] == "tags"
    assert str(settings.REGISTRY_MAX_TAGS) in body["detail"]
    assert not Model.objects.exists()


def test_the_tag_cap_counts_distinct_tags_on_models_and_versions(clients, model, settings):
    settings.REGISTRY_MAX_TAGS = 3
    editor = clients["editor"]
    r = editor.post("/api/v1/contexts/acme/models/", {"name": "m", "tags": ["a", "b", "c", "A", "b "]}, format="json")
    assert r.status_code == 201, r.json()  # duplicates collapse before counting
    assert assert_json_error(editor.patch(f"/api/v1/models/{model.pk}/", {"tags": "a,b,c,d"}, format="json"))["field"] == "tags"
    r = editor.post(f"/api/v1/models/{model.pk}/versions/", {"tags": ["a", "b", "c", "d"]}, format="json")
    assert "at most 3 tags" in assert_json_error(r)["detail"]
    assert not Version.objects.exists()


# --- 7. X-Filename in UTF-8 -------------------------------------------------------------------

def as_wsgi(text: str) -> str:
    """A header as a WSGI server hands it over: its bytes (UTF-8 here) read as Latin-1."""
    return text.encode("utf-8").decode("latin-1")


@pytest.mark.parametrize("header, kept", [
    ("hdr%C3%A9.bin", "hdr\u00e9.bin"),                              # percent-encoded UTF-8
    ("UTF-8''hdr%C3%A9%20%E2%9C%93.bin", "hdr\u00e9 \u2713.bin"),     # RFC 5987
    ("filename*=UTF-8''hdr%C3%A9.bin", "hdr\u00e9.bin"),             # as in Content-Disposition
    ("utf-8'en'hdr%C3%A9.bin", "hdr\u00e9.bin"),
    (as_wsgi("hdr\u00e9.bin"), "hdr\u00e9.bin"),                      # raw UTF-8 bytes (curl -H)
    (as_wsgi("\u6a21\u578b.onnx"), "\u6a21\u578b.onnx"),
    ("hdr\u00e9.bin", "hdr\u00e9.bin"),                              # a byte that is not UTF-8: Latin-1
    ("100%.bin", "100%.bin"),
    ("../weights.pt", "weights.pt"),
])
def test_x_filename_is_read_as_utf8(clients, version, header, kept):
    r = put_file(clients["editor"], version, HTTP_X_FILENAME=header)
    assert r.status_code == 200, r.json()
    assert r.json()["original_filename"] == kept


def test_the_filename_parameter_wins_over_x_filename(clients, version):
    r = put_file(clients["editor"], version, "?filename=mod%C3%A8le.pkl", HTTP_X_FILENAME="other.pkl")
    assert r.status_code == 200, r.json()
    assert r.json()["original_filename"] == "mod\u00e8le.pkl"


def test_the_dashboard_upload_keeps_a_non_ascii_filename(users, version):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    from registry.models import Format

    client = Client()
    client.force_login(users["editor"])
    upload_file = SimpleUploadedFile("mod\u00e8le \u2713.pkl", b"\x80\x04K\x01.", content_type="application/octet-stream")
    r = client.post(f"/models/{version.model_id}/versions/1/formats/upload/", {"kind": "pkl", "file": upload_file})
    assert r.status_code == 302, r.content[:500]
    assert Format.objects.get().original_filename == "mod\u00e8le \u2713.pkl"


# --- 9. owners --------------------------------------------------------------------------------

def test_an_owner_must_be_a_member_and_the_answer_does_not_tell_who_exists(clients, users):
    editor = clients["editor"]
    answers = {}
    for name in ("outsider", "no-such-user"):  # a user of another context; nobody at all
        r = editor.post("/api/v1/contexts/acme/models/", {"name": f"m-{name}", "owner": name}, format="json")
        body = assert_json_error(r)
        assert body["field"] == "owner"
        answers[name] = body["detail"].replace(name, "<name>")
    assert answers["outsider"] == answers["no-such-user"]
    assert not Model.objects.exists()


def test_an_owner_can_be_changed_only_to_a_member(clients, users, model):
    editor = clients["editor"]
    for name in ("outsider", "no-such-user"):
        r = editor.patch(f"/api/v1/models/{model.pk}/", {"owner": name}, format="json")
        assert assert_json_error(r)["field"] == "owner"
    model.refresh_from_db()
    assert model.owner.username == "editor"
    r = editor.patch(f"/api/v1/models/{model.pk}/", {"owner": "viewer"}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["owner"] == "viewer"


def test_a_member_through_a_group_can_own_a_model(clients, users, context):
    from django.contrib.auth.models import Group

    from registry import services
    from tests.factories import UserFactory

    group = Group.objects.create(name="ml-team")
    UserFactory(username="grouped").groups.add(group)
    services.membership_set(actor=None, context=context, role="viewer", group="ml-team")
    r = clients["editor"].post("/api/v1/contexts/acme/models/", {"name": "m", "owner": "grouped"}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["owner"] == "grouped"


# --- 8. look-alike names ----------------------------------------------------------------------

BASE = "Caf\u00e9-Model"
LOOK_ALIKES = [
    BASE + "\u200b",                      # zero-width space
    "Caf\u00e9-\u200dModel",              # zero-width joiner
    "Caf\u00e9-Mo\u00addel",              # soft hyphen
    "\ufeff" + BASE,                      # byte order mark
    "\u202e" + BASE,                      # right-to-left override in front
    "\u2066Caf\u00e9-Model\u2069",        # bidi isolate
    "\uff23\uff41\uff46\u00e9-\uff2d\uff4f\uff44\uff45\uff4c",  # fullwidth letters
    "Caf\u00e9-\u041codel",               # Cyrillic capital EM
    "\u0421af\u00e9-Model",               # Cyrillic capital ES
    "Caf\u00e9-M\u043edel",               # Cyrillic small O
    "Caf\u00e9-Model ",                   # trailing space
    "CAF\u00c9-MODEL",                    # case
    "Cafe\u0301-Model",                   # decomposed
]


@pytest.mark.parametrize("name", LOOK_ALIKES)
def test_a_name_that_looks_like_an_existing_one_is_409(clients, name):
    editor = clients["editor"]
    assert editor.post("/api/v1/contexts/acme/models/", {"name": BASE}, format="json").status_code == 201
    r = editor.post("/api/v1/contexts/acme/models/", {"name": name}, format="json")
    body = assert_json_error(r, 409, "name_taken")
    assert body["field"] == "name"
    assert Model.objects.count() == 1


@pytest.mark.parametrize("name, stored", [
    ("Caf\u00e9  Model", "Caf\u00e9 Model"),                  # two spaces inside
    ("Caf\u00e9\u3000\u00a0Model", "Caf\u00e9 Model"),        # ideographic and no-break space
    ("\u202eCaf\u00e9\u200b Model\u00ad", "Caf\u00e9 Model"),
    ("\uff23\uff41\uff46\u00e9", "Caf\u00e9"),
])
def test_names_are_stored_normalised(clients, name, stored):
    r = clients["editor"].post("/api/v1/contexts/acme/models/", {"name": name}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["name"] == stored


def test_two_spaces_inside_is_the_same_name(clients):
    editor = clients["editor"]
    assert editor.post("/api/v1/contexts/acme/models/", {"name": "Caf\u00e9 Model"}, format="json").status_code == 201
    assert_json_error(editor.post("/api/v1/contexts/acme/models/", {"name": "Caf\u00e9  Model"}, format="json"),
                      409, "name_taken")


def test_a_name_of_only_invisible_characters_is_400(clients):
    r = clients["editor"].post("/api/v1/contexts/acme/models/", {"name": "\u200b\u200d\ufeff\u202e"}, format="json")
    assert assert_json_error(r)["field"] == "name"


def test_a_rename_to_a_look_alike_is_409_and_to_its_own_name_is_fine(clients):
    editor = clients["editor"]
    assert editor.post("/api/v1/contexts/acme/models/", {"name": BASE}, format="json").status_code == 201
    other = editor.post("/api/v1/contexts/acme/models/", {"name": "Other"}, format="json").json()
    r = editor.patch(f"/api/v1/models/{other['id']}/", {"name": "Caf\u00e9-\u041codel"}, format="json")
    assert_json_error(r, 409, "name_taken")
    assert Model.objects.get(pk=other["id"]).name == "Other"
    r = editor.patch(f"/api/v1/models/{other['id']}/", {"name": "OTHER\u200b"}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["name"] == "OTHER"


def test_look_alikes_in_another_context_are_fine(clients):
    assert clients["editor"].post("/api/v1/contexts/acme/models/", {"name": BASE}, format="json").status_code == 201
    r = clients["outsider"].post("/api/v1/contexts/other/models/", {"name": "Caf\u00e9-\u041codel"}, format="json")
    assert r.status_code == 201, r.json()


def test_the_database_refuses_two_look_alikes_in_a_context(users, context):
    """The skeleton is a column with a unique constraint: concurrent creates cannot race."""
    from django.db import IntegrityError, transaction

    from registry import services

    first = services.model_create(actor=users["editor"], context=context, name=BASE)
    twin = Model(context=context, name="Caf\u00e9-\u041codel", name_key="different",
                 name_skeleton=first.name_skeleton)
    with pytest.raises(IntegrityError), transaction.atomic():
        twin.save(force_insert=True)


def test_the_name_filter_finds_a_model_by_a_look_alike_spelling(clients):
    editor = clients["editor"]
    assert editor.post("/api/v1/contexts/acme/models/", {"name": BASE}, format="json").status_code == 201
    r = clients["viewer"].get("/api/v1/contexts/acme/models/", {"name": BASE + "\u200b"})
    assert [m["name"] for m in r.json()["results"]] == [BASE]


@pytest.mark.parametrize("given, stored", [
    (["gpu\u200b", "GPU"], ["gpu"]),
    (["\uff47\uff50\uff55", "gpu"], ["gpu"]),
    (["deep  learning"], ["deep learning"]),
])
def test_tags_are_normalised_like_names(clients, given, stored):
    r = clients["editor"].post("/api/v1/contexts/acme/models/", {"name": "m", "tags": given}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["tags"] == stored


def test_record_names_are_normalised_like_names(clients, context):
    editor = clients["editor"]
    r = editor.post("/api/v1/contexts/acme/records/", {"name": "tx\u200b  2024", "uri": "s3://b/k"}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["name"] == "tx 2024"
    r = editor.post("/api/v1/contexts/acme/records/", {"name": "\u202etx 2024", "uri": "s3://b/k"}, format="json")
    assert_json_error(r, 409, "name_taken")


def test_the_409_says_whether_the_name_is_the_same_or_looks_the_same(clients):
    editor = clients["editor"]
    assert editor.post("/api/v1/contexts/acme/models/", {"name": BASE}, format="json").status_code == 201
    same = assert_json_error(editor.post("/api/v1/contexts/acme/models/", {"name": "caf\u00e9-model"}, format="json"),
                             409, "name_taken")["detail"]
    assert same.startswith("A model named 'caf\u00e9-model'") and "already exists in context 'acme'" in same
    alike = assert_json_error(editor.post("/api/v1/contexts/acme/models/", {"name": "Caf\u00e9-\u041codel"},
                                          format="json"), 409, "name_taken")["detail"]
    assert "looks the same" in alike and "already exists" in alike
    other = editor.post("/api/v1/contexts/acme/models/", {"name": "Other"}, format="json").json()
    renamed = assert_json_error(editor.patch(f"/api/v1/models/{other['id']}/", {"name": "\u0421af\u00e9-Model"},
                                             format="json"), 409, "name_taken")["detail"]
    assert f"('{BASE}')" in renamed


# --- 11. a body that stops arriving -----------------------------------------------------------

class _StalledBody:
    """wsgi.input of a client that sent `start` and then nothing (the web process's idle
    timeout raises TimeoutError) or went away (a reset)."""

    def __init__(self, start: bytes, error: OSError):
        self._start, self._error = start, error

    def read(self, size=-1):
        # A socket read waits for `size` bytes (all of them when -1) until the error.
        if self._start and 0 <= size <= len(self._start):
            chunk, self._start = self._start[:size], self._start[size:]
            return chunk
        raise self._error

    readline = read


@pytest.mark.parametrize("error, status, code", [
    (TimeoutError("timed out"), 408, "request_timeout"),
    (ConnectionResetError(104, "Connection reset by peer"), 400, "body_incomplete"),
])
def test_an_upload_whose_body_stops_arriving_is_4xx_json_and_stores_nothing(clients, version, storage_dir,
                                                                              error, status, code):
    r = clients["editor"].generic(
        "PUT", f"/api/v1/models/{version.model_id}/versions/1/formats/pkl/file",
        content_type="application/octet-stream", CONTENT_LENGTH="1048576",
        **{"wsgi.input": _StalledBody(b"0123456789", error)},
    )
    assert_json_error(r, status, code)
    assert not version.formats.exists()
    assert [path for path in Path(storage_dir).rglob("*") if path.is_file()] == []


def test_a_json_body_that_stops_arriving_is_408_json(clients, context):
    r = clients["editor"].generic(
        "POST", "/api/v1/contexts/acme/models/", content_type="application/json", CONTENT_LENGTH="4096",
        **{"wsgi.input": _StalledBody(b'{"name": "chu', TimeoutError("timed out"))},
    )
    assert_json_error(r, 408, "request_timeout")
    assert not Model.objects.exists()


def test_a_dashboard_form_whose_body_stops_arriving_is_a_408_page(users, model):
    from django.test import Client

    client = Client()
    client.force_login(users["editor"])
    r = client.generic(
        "POST", f"/models/{model.pk}/edit/", CONTENT_TYPE="application/x-www-form-urlencoded",
        CONTENT_LENGTH="4096", **{"wsgi.input": _StalledBody(b"name=Ch", TimeoutError("timed out"))},
    )
    assert r.status_code == 408
    assert r["Content-Type"].startswith("text/html")
    assert "stopped arriving" in r.content.decode()
    model.refresh_from_db()
    assert model.name != "Ch"
