"""Trusted imports (SPEC §2): a pickle importing third-party code the scanner could not vet is
`review`; a publisher approves its imports, which become trusted in the context, and the file
becomes `ready`; revoking sends drafts back to review. End to end through the API, with the
workers' functions run as the upload commits (tests/helpers.upload).

The pickles here are written by hand as bytes and never loaded.
"""

from __future__ import annotations

import io
import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from registry import queue, services, storage
from registry.introspection.report import REVIEW, Report
from registry.models import AuditEvent, Format, FormatStatus, TrustedImport, Version
from registry.services import processing
from registry.services import trusted_imports as trusted_import_services
from registry.services.trusted_imports import dangerous_reason, review_outcome
from tests.helpers import PICKLE, upload
from tests.registry.introspection.sandbox import artifact_members, zip_bytes

pytestmark = pytest.mark.django_db

# Calls mylibrary.models.Scorer("f1") when loaded (protocol 2).
SCORER = b"\x80\x02cmylibrary.models\nScorer\nX\x02\x00\x00\x00f1\x85R."
# A list of two calls: mylibrary.models.Scorer("f1") and vendorlib.text.Tokenizer().
SCORER_AND_TOKENIZER = (b"\x80\x02(cmylibrary.models\nScorer\nX\x02\x00\x00\x00f1\x85R"
                        b"cvendorlib.text\nTokenizer\n)Rl.")
# Imports mylib.os's Foo: unvetted to the scanner, but "mylib.os.Foo" also reads as mylib's os.Foo.
SHADY = b"\x80\x02cmylib.os\nFoo\n."
SCORER_NAME, TOKENIZER_NAME = "mylibrary.models.Scorer", "vendorlib.text.Tokenizer"
TRUSTED = "/api/v1/contexts/{ctx}/trusted-imports/"


# --- helpers ------------------------------------------------------------------------------

def new_version(client, name="churn") -> tuple[str, int]:
    """A model named `name` (created if needed) in the client's first context, and a new version."""
    models = client.get("/api/v1/contexts/acme/models/", {"name": name}).json()["results"]
    if models:
        model_id = models[0]["id"]
    else:
        r = client.post("/api/v1/contexts/acme/models/", {"name": name}, format="json")
        assert r.status_code == 201, r.json()
        model_id = r.json()["id"]
    r = client.post(f"/api/v1/models/{model_id}/versions/", {}, format="json")
    assert r.status_code == 201, r.json()
    return model_id, r.json()["number"]


def fmt_url(model_id, number, kind="pkl") -> str:
    return f"/api/v1/models/{model_id}/versions/{number}/formats/{kind}/"


def get_format(client, model_id, number, kind="pkl") -> dict:
    r = client.get(fmt_url(model_id, number, kind))
    assert r.status_code == 200, r.json()
    return r.json()


def approve(client, model_id, number, reason="our own package, reviewed in PR 412", kind="pkl"):
    return client.post(fmt_url(model_id, number, kind) + "approve-imports/", {"reason": reason}, format="json")


def trust(client, names, reason="vendored and reviewed", ctx="acme"):
    return client.post(TRUSTED.format(ctx=ctx), {"imports": names, "reason": reason}, format="json")


def revoke(client, name, ctx="acme"):
    return client.delete(TRUSTED.format(ctx=ctx) + f"{name}/")


def publish(client, model_id, number):
    return client.post(f"/api/v1/models/{model_id}/versions/{number}/publish/")


def actions(**filters) -> list[str]:
    return list(AuditEvent.objects.filter(**filters).order_by("id").values_list("action", flat=True))


@pytest.fixture
def in_review(clients) -> tuple[str, int]:
    """Version 1 of churn, whose pkl file imports mylibrary.models.Scorer: in review."""
    model_id, number = new_version(clients["editor"])
    assert upload(clients["editor"], model_id, number, "pkl", SCORER).status_code == 200
    return model_id, number


# --- review -------------------------------------------------------------------------------

def test_a_pickle_with_unvetted_imports_needs_review(clients, in_review):
    model_id, number = in_review
    body = get_format(clients["viewer"], model_id, number)
    assert body["status"] == "review"
    assert SCORER_NAME in body["status_message"] and "publisher can approve" in body["status_message"]
    assert body["unvetted_imports"] == [
        {"import": SCORER_NAME, "module": "mylibrary.models", "name": "Scorer", "called": True}]
    assert body["report"]["status"] == "review"
    version = clients["viewer"].get(f"/api/v1/models/{model_id}/versions/{number}/").json()
    assert version["formats"][0]["status"] == "review"
    [event] = AuditEvent.objects.filter(action="format.review")
    assert event.actor_name == "operator" and SCORER_NAME in event.summary


def test_a_file_in_review_downloads_only_with_an_acknowledgement(clients, in_review):
    model_id, number = in_review
    url = fmt_url(model_id, number) + "file"
    r = clients["viewer"].get(url)
    assert r.status_code == 409 and r.json()["code"] == "not_ready"
    assert "needs review" in r.json()["detail"] and SCORER_NAME in r.json()["detail"]
    r = clients["viewer"].get(url, {"acknowledge": "review"})
    assert r.status_code == 200 and b"".join(r.streaming_content) == SCORER
    assert approve(clients["publisher"], model_id, number).status_code == 200
    r = clients["viewer"].get(url)
    assert r.status_code == 200 and b"".join(r.streaming_content) == SCORER


def test_publish_is_refused_naming_the_imports_to_review(clients, in_review):
    model_id, number = in_review
    r = publish(clients["publisher"], model_id, number)
    assert r.status_code == 409
    body = r.json()
    assert body["code"] == "not_publishable" and body["field"] == "pkl"
    assert "needs review" in body["detail"] and SCORER_NAME in body["detail"]
    assert "publisher can approve" in body["detail"]
    assert Version.objects.get(model_id=model_id, number=number).status == "draft"


def test_a_publisher_approves_the_imports_and_the_version_publishes(clients, users, in_review):
    model_id, number = in_review
    r = approve(clients["publisher"], model_id, number)
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["status"] == "ready"
    assert "trusted in this context" in body["status_message"] and SCORER_NAME in body["status_message"]
    assert body["report"]["status"] == "review", "the report stays as the scanner wrote it"
    assert body["unvetted_imports"][0]["import"] == SCORER_NAME

    listed = clients["viewer"].get(TRUSTED.format(ctx="acme")).json()
    assert listed["count"] == 1
    [item] = listed["results"]
    assert item["name"] == SCORER_NAME and item["created_by"] == "publisher"
    assert item["reason"] == "our own package, reviewed in PR 412" and item["created_at"]

    fmt = Format.objects.get(version__model_id=model_id)
    assert actions(object_id=str(fmt.pk)) == ["format.create", "format.upload", "format.review", "format.trusted"]
    [added] = AuditEvent.objects.filter(action="trusted_import.add")
    assert added.actor == users["publisher"] and "PR 412" in added.summary and SCORER_NAME in added.summary
    assert added.changes == {"name": SCORER_NAME, "reason": "our own package, reviewed in PR 412"}

    r = publish(clients["publisher"], model_id, number)
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == "published"


def test_approval_readies_every_format_of_the_context_whose_imports_are_now_all_trusted(clients, in_review):
    model_id, number = in_review
    other_model, other_number = new_version(clients["editor"], "fraud")
    assert upload(clients["editor"], other_model, other_number, "pkl", SCORER).status_code == 200
    both_model, both_number = new_version(clients["editor"], "spam")
    assert upload(clients["editor"], both_model, both_number, "pkl", SCORER_AND_TOKENIZER).status_code == 200
    assert "2 third-party imports" in get_format(clients["viewer"], both_model, both_number)["status_message"]

    assert approve(clients["publisher"], model_id, number).status_code == 200
    assert get_format(clients["viewer"], other_model, other_number)["status"] == "ready"
    still = get_format(clients["viewer"], both_model, both_number)
    assert still["status"] == "review"
    assert "1 third-party import not trusted" in still["status_message"]
    assert TOKENIZER_NAME in still["status_message"] and SCORER_NAME not in still["status_message"]

    r = approve(clients["publisher"], both_model, both_number, reason="the tokenizer is ours too")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    reasons = dict(TrustedImport.objects.values_list("name", "reason"))
    assert reasons == {SCORER_NAME: "our own package, reviewed in PR 412", TOKENIZER_NAME: "the tokenizer is ours too"}


def test_a_file_whose_imports_are_trusted_already_is_ready_at_once(clients):
    r = trust(clients["publisher"], [SCORER_NAME])
    assert r.status_code == 201, r.json()
    model_id, number = new_version(clients["editor"])
    assert upload(clients["editor"], model_id, number, "pkl", SCORER).status_code == 200
    body = get_format(clients["viewer"], model_id, number)
    assert body["status"] == "ready" and "trusted in this context" in body["status_message"]
    assert body["report"]["status"] == "review"
    fmt = Format.objects.get(version__model_id=model_id)
    assert actions(object_id=str(fmt.pk))[-1] == "format.trusted"
    assert publish(clients["publisher"], model_id, number).status_code == 200


def test_trust_belongs_to_one_context(clients):
    assert trust(clients["publisher"], [SCORER_NAME]).status_code == 201
    outsider = clients["outsider"]  # admin of "other"
    r = outsider.post("/api/v1/contexts/other/models/", {"name": "theirs"}, format="json")
    model_id = r.json()["id"]
    assert outsider.post(f"/api/v1/models/{model_id}/versions/", {}, format="json").status_code == 201
    assert upload(outsider, model_id, 1, "pkl", SCORER).status_code == 200
    assert get_format(outsider, model_id, 1)["status"] == "review"
    assert outsider.get(TRUSTED.format(ctx="other")).json()["count"] == 0


def test_trusting_is_idempotent_and_keeps_the_first_reason(clients):
    first = trust(clients["publisher"], [SCORER_NAME, SCORER_NAME], reason="first")
    assert first.status_code == 201 and [item["name"] for item in first.json()] == [SCORER_NAME]
    again = trust(clients["admin"], [TOKENIZER_NAME, SCORER_NAME], reason="second")
    assert again.status_code == 201
    assert [(item["name"], item["reason"], item["created_by"]) for item in again.json()] == [
        (TOKENIZER_NAME, "second", "admin"), (SCORER_NAME, "first", "publisher")]
    same = trust(clients["admin"], [SCORER_NAME], reason="third")
    assert same.status_code == 200
    assert TrustedImport.objects.count() == 2
    assert actions(action="trusted_import.add") == ["trusted_import.add", "trusted_import.add"]


@pytest.mark.parametrize("name", ["os.system", "builtins.eval", "subprocess.Popen", "json.loads",
                                  "mylib.os.Foo", "mylib.io.helpers.load", "pickle.Unpickler", "torch.hub.load"])
def test_a_name_the_scanner_treats_as_dangerous_can_never_be_trusted(clients, name):
    r = trust(clients["publisher"], [SCORER_NAME, name])
    assert r.status_code == 400
    assert r.json()["field"] == "imports"
    assert "can never be trusted" in r.json()["detail"] and name in r.json()["detail"]
    assert not TrustedImport.objects.exists() and not AuditEvent.objects.filter(action__startswith="trusted").exists()


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"imports": ["notdotted"], "reason": "x"}, "imports", "not a dotted Python path"),
    ({"imports": ["my-lib.Scorer"], "reason": "x"}, "imports", "not a dotted Python path"),
    ({"imports": ["mylib..Scorer"], "reason": "x"}, "imports", "not a dotted Python path"),
    ({"imports": ["mylib." + "a" * 520], "reason": "x"}, "imports", "at most 512"),
    ({"imports": [], "reason": "x"}, "imports", "non-empty list"),
    ({"imports": [SCORER_NAME], "reason": ""}, "reason", "Say why"),
    ({"imports": [SCORER_NAME], "reason": "   "}, "reason", "Say why"),
    ({"imports": [SCORER_NAME]}, "reason", "required"),
    ({"imports": SCORER_NAME, "reason": "x"}, "imports", ""),
])
def test_invalid_names_and_a_missing_reason_are_400(clients, body, field, words):
    r = clients["publisher"].post(TRUSTED.format(ctx="acme"), body, format="json")
    assert r.status_code == 400, r.json()
    assert r.json()["field"] == field and words in r.json()["detail"]
    assert not TrustedImport.objects.exists()


def test_approving_needs_a_reason_and_a_format_in_review(clients, in_review):
    model_id, number = in_review
    r = approve(clients["publisher"], model_id, number, reason=" ")
    assert r.status_code == 400 and r.json()["field"] == "reason"
    assert get_format(clients["viewer"], model_id, number)["status"] == "review"
    assert approve(clients["publisher"], model_id, number).status_code == 200
    again = approve(clients["publisher"], model_id, number)
    assert again.status_code == 409
    assert "not in review" in again.json()["detail"]
    r = approve(clients["publisher"], model_id, number, kind="onnx")
    assert r.status_code == 404


def test_an_import_that_also_reads_as_a_dangerous_path_cannot_be_approved(clients):
    model_id, number = new_version(clients["editor"])
    assert upload(clients["editor"], model_id, number, "pkl", SHADY).status_code == 200
    assert get_format(clients["viewer"], model_id, number)["status"] == "review"
    r = approve(clients["publisher"], model_id, number)
    assert r.status_code == 400
    assert "mylib.os.Foo can never be trusted" in r.json()["detail"]
    assert get_format(clients["viewer"], model_id, number)["status"] == "review"
    assert not TrustedImport.objects.exists()


def test_a_review_report_that_names_no_import_stays_in_review(clients):
    """Fail closed: an archive inspector saying review without naming imports is never made ready."""
    model_id, number = new_version(clients["editor"])
    assert upload(clients["editor"], model_id, number, "pkl", PICKLE, process=False).status_code == 200
    fmt = Format.objects.get(version__model_id=model_id)
    Format.objects.filter(pk=fmt.pk).update(status=FormatStatus.INTROSPECTING)
    processing.format_record_report(format_id=fmt.pk, storage_key=fmt.storage_key,
                                    report=Report(REVIEW, "needs review", details={"unvetted": []}))
    body = get_format(clients["viewer"], model_id, number)
    assert body["status"] == "review" and "names no import" in body["status_message"]
    r = approve(clients["publisher"], model_id, number)
    assert r.status_code == 409 and "names no import" in r.json()["detail"]


def test_an_artifact_whose_member_needs_review_is_approved_the_same_way(clients):
    """The archive inspectors report their members' unvetted imports in details["unvetted"] too."""
    model_id, number = new_version(clients["editor"])
    body = zip_bytes(artifact_members(model__pkl=SCORER))
    assert upload(clients["editor"], model_id, number, "artifact", body).status_code == 200
    pending = get_format(clients["viewer"], model_id, number, "artifact")
    assert pending["status"] == "review" and SCORER_NAME in pending["status_message"]
    assert [item["import"] for item in pending["unvetted_imports"]] == [SCORER_NAME]
    r = approve(clients["publisher"], model_id, number, kind="artifact")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    assert TrustedImport.objects.get().name == SCORER_NAME


def test_a_review_report_is_decided_from_its_unvetted_list_only(clients):
    """Whatever produced it: two imports, both trusted, make the file ready."""
    assert trust(clients["publisher"], [SCORER_NAME, TOKENIZER_NAME]).status_code == 201
    model_id, number = new_version(clients["editor"])
    assert upload(clients["editor"], model_id, number, "artifact", PICKLE, process=False).status_code == 200
    fmt = Format.objects.get(version__model_id=model_id)
    Format.objects.filter(pk=fmt.pk).update(status=FormatStatus.INTROSPECTING)
    unvetted = [{"import": name, "module": name.rsplit(".", 1)[0], "name": name.rsplit(".", 1)[1], "called": True}
                for name in (SCORER_NAME, TOKENIZER_NAME)]
    processing.format_record_report(
        format_id=fmt.pk, storage_key=fmt.storage_key,
        report=Report(REVIEW, "members need review", details={"unvetted": unvetted}))
    assert get_format(clients["viewer"], model_id, number, "artifact")["status"] == "ready"


# --- revoke -------------------------------------------------------------------------------

def test_revoking_sends_drafts_back_to_review_and_leaves_published_versions(clients, users, in_review):
    published_model, published_number = in_review
    assert approve(clients["publisher"], published_model, published_number).status_code == 200
    assert publish(clients["publisher"], published_model, published_number).status_code == 200
    draft_model, draft_number = new_version(clients["editor"], "fraud")
    assert upload(clients["editor"], draft_model, draft_number, "pkl", SCORER).status_code == 200
    assert get_format(clients["viewer"], draft_model, draft_number)["status"] == "ready"
    plain_model, plain_number = new_version(clients["editor"], "plain")
    assert upload(clients["editor"], plain_model, plain_number, "pkl", PICKLE).status_code == 200

    r = revoke(clients["publisher"], SCORER_NAME)
    assert r.status_code == 204
    assert clients["viewer"].get(TRUSTED.format(ctx="acme")).json()["count"] == 0
    draft = get_format(clients["viewer"], draft_model, draft_number)
    assert draft["status"] == "review" and SCORER_NAME in draft["status_message"]
    assert get_format(clients["viewer"], published_model, published_number)["status"] == "ready"
    assert clients["viewer"].get(f"/api/v1/models/{published_model}/versions/1/").json()["status"] == "published"
    assert get_format(clients["viewer"], plain_model, plain_number)["status"] == "ready"
    assert publish(clients["publisher"], draft_model, draft_number).status_code == 409

    [revoked] = AuditEvent.objects.filter(action="trusted_import.revoke")
    assert revoked.actor == users["publisher"] and revoked.object_repr == SCORER_NAME
    assert "PR 412" in revoked.summary and revoked.changes["trusted_by"] == "publisher"
    draft_fmt = Format.objects.get(version__model__name="fraud")
    assert actions(object_id=str(draft_fmt.pk))[-1] == "format.review"
    assert "no longer trusted" in AuditEvent.objects.filter(object_id=str(draft_fmt.pk)).first().summary


def test_revoking_one_of_two_imports_updates_what_is_left_to_approve(clients):
    assert trust(clients["publisher"], [SCORER_NAME]).status_code == 201
    model_id, number = new_version(clients["editor"])
    assert upload(clients["editor"], model_id, number, "pkl", SCORER_AND_TOKENIZER).status_code == 200
    assert "1 third-party import not trusted" in get_format(clients["viewer"], model_id, number)["status_message"]
    assert revoke(clients["publisher"], SCORER_NAME).status_code == 204
    message = get_format(clients["viewer"], model_id, number)["status_message"]
    assert "2 third-party imports not trusted" in message


def test_revoking_an_import_that_is_not_trusted_is_404(clients):
    r = revoke(clients["publisher"], SCORER_NAME)
    assert r.status_code == 404 and SCORER_NAME in r.json()["detail"]
    assert not AuditEvent.objects.filter(action="trusted_import.revoke").exists()


# --- the rules around it ------------------------------------------------------------------

def test_the_integrity_sweep_rechecks_files_in_review(clients, in_review, storage_dir):
    model_id, _ = in_review
    fmt = Format.objects.get(version__model_id=model_id)
    assert fmt.status == FormatStatus.REVIEW
    with open(f"{storage_dir}/{fmt.storage_key}", "ab") as handle:
        handle.write(b"tampered")
    assert processing.format_verify(format_id=fmt.pk).status == FormatStatus.CORRUPT
    assert storage.hash_object(fmt.storage_key)[1] != fmt.sha256


def test_the_operator_and_site_staff_may_trust_too(context, users):
    rows = services.trusted_imports_add(actor=None, context=context, names=[SCORER_NAME], reason="ops")
    assert rows[0].created_by is None
    assert services.trusted_import_revoke(actor=None, context=context, name=SCORER_NAME) == []
    assert AuditEvent.objects.filter(action__startswith="trusted_import", actor_name="operator").count() == 2


def test_review_outcome_decides_from_the_report_and_the_trusted_names():
    report = {"status": "review", "details": {"unvetted": [
        {"import": SCORER_NAME, "module": "mylibrary.models", "name": "Scorer", "called": True}]}}
    assert review_outcome(report, {SCORER_NAME})[0] == "ready"
    assert review_outcome(report, set())[0] == "review"
    assert review_outcome({**report, "status": "ready"}, {SCORER_NAME})[0] == "review"  # not a review report
    assert dangerous_reason("mylibrary.models.Scorer") is None
    assert dangerous_reason("a.b.os.system")


# --- the list -----------------------------------------------------------------------------

def test_trusted_import_list_query_count(clients, context, django_assert_num_queries):
    client = clients["viewer"]
    url = TRUSTED.format(ctx="acme")

    def add(start, count):
        services.trusted_imports_add(actor=None, context=context, reason="vendored",
                                     names=[f"vendorlib.module{index}.Thing" for index in range(start, start + count)])
    add(0, 3)
    client.get(url)  # warm the token's cache
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).json()["count"] == 3
    add(3, 27)
    with django_assert_num_queries(len(small.captured_queries)):
        assert len(client.get(url).json()["results"]) == 30


def test_json_keys_match_the_openapi_schema(clients, in_review):
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    components = schema["components"]["schemas"]
    model_id, number = in_review
    approve(clients["publisher"], model_id, number)
    [item] = clients["viewer"].get(TRUSTED.format(ctx="acme")).json()["results"]
    assert set(item) == set(components["TrustedImport"]["properties"])
    body = get_format(clients["viewer"], model_id, number)
    assert set(body) == set(components["Format"]["properties"])
    items = components["Format"]["properties"]["unvetted_imports"]["items"]
    assert set(body["unvetted_imports"][0]) == set(items["properties"])
    paths = schema["paths"]
    assert "post" in paths["/api/v1/contexts/{ctx}/trusted-imports/"]
    assert "delete" in paths["/api/v1/contexts/{ctx}/trusted-imports/{name}/"]
    assert "post" in paths["/api/v1/models/{model_id}/versions/{number}/formats/{kind}/approve-imports/"]


# --- concurrency (PostgreSQL's row locks) ---------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's")
def test_a_report_recorded_while_an_approval_commits_sees_it(monkeypatch, context, users):
    """The worker records a review report while a publisher's trust is being written: it waits
    for the context lock, then reads the new trust, so the file is not left in review."""
    model = services.model_create(actor=users["editor"], context=context, name="raced")
    version = services.version_create(actor=users["editor"], model=model)
    monkeypatch.setattr(queue, "format_processing", lambda *args: True)  # the worker runs below, by hand
    fmt = services.format_upload(actor=users["editor"], version=version, kind="pkl",
                                 stream=io.BytesIO(SCORER), content_length=len(SCORER))
    assert processing.format_hash(format_id=fmt.pk, storage_key=fmt.storage_key).status == "introspecting"

    locked, release = threading.Event(), threading.Event()
    original = trusted_import_services._trust

    def held(**kwargs):
        rows = original(**kwargs)
        locked.set()
        assert release.wait(30)
        return rows

    monkeypatch.setattr(trusted_import_services, "_trust", held)
    outcome: dict = {}

    def in_thread(name, work):
        def run():
            try:
                outcome[name] = work()
            except BaseException as exc:  # noqa: BLE001 - asserted below
                outcome[name] = exc
            finally:
                connections.close_all()
        thread = threading.Thread(target=run)
        thread.start()
        return thread

    approving = in_thread("approve", lambda: services.trusted_imports_add(
        actor=users["publisher"], context=context, names=[SCORER_NAME], reason="ours"))
    assert locked.wait(30), outcome
    recording = in_thread("record", lambda: processing.format_introspect(format_id=fmt.pk,
                                                                          storage_key=fmt.storage_key))
    recording.join(1)
    assert recording.is_alive(), "the worker must wait for the context lock"
    release.set()
    approving.join(30)
    recording.join(30)
    assert not isinstance(outcome["approve"], BaseException), outcome["approve"]
    assert not isinstance(outcome["record"], BaseException), outcome["record"]
    assert Format.objects.get(pk=fmt.pk).status == FormatStatus.READY
