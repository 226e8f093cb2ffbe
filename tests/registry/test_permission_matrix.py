"""Who may call what: every REST path and method, for every persona (SPEC §1, §5).

One row per path and method names the least role that may call it. The expected status of
each persona is derived from that row:

- anonymous: 401 everywhere;
- outsider (admin of another context only): 404 for everything inside "acme", whose
  404 bodies never name the context or the model and match those of objects that do not
  exist; outside any context (the context list) the outsider is an ordinary signed-in user;
- viewer, editor, publisher, admin: the row's success code at or above its least role, else 403;
- readonly (a read-only token of the acme admin): reads succeed, every write is 403 except a
  tamper report, which changes no model data and comes from consumers holding read-only tokens;
  and a read needing more than view-model (the context's tokens) is 403;
- staff (a superuser who is a member of nothing): everything succeeds.

A row may name a persona-specific success (a publisher's move of a protected alias is a move
request, 202) or the only persona a service lets through (withdrawing one's own move request):
the others allowed by the door get 403 from the service.

Every allowed request is valid, so it must succeed with its exact code, and an allowed write
is audited. A refused request must leave no trace: no audit event and no stored file.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import uuid
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from registry import services
from registry.models import AuditEvent, Format, FormatStatus

from tests.conftest import client_for, stored_files
from tests.factories import UserFactory
from tests.helpers import store_file

pytestmark = pytest.mark.django_db

User = get_user_model()
MODEL_NAME = "Secret Churn Model"
PERSONAS = ["anonymous", "outsider", "viewer", "editor", "publisher", "admin", "readonly", "staff"]
RANK = {"anyone": 0, "viewer": 1, "editor": 2, "publisher": 3, "admin": 4, "staff": 5}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Plain data pickled here, never unpickled: what a clean model file looks like to the scanner.
PICKLE_BYTES = pickle.dumps({"weights": [0.25, 0.5, 0.25]}, protocol=4)
NEW_PICKLE_BYTES = pickle.dumps({"weights": [0.3, 0.4, 0.3]}, protocol=4)
# Calls mylibrary.models.Scorer("f1"): a third-party import the scanner cannot vet, so `review`.
REVIEW_PICKLE_BYTES = b"\x80\x02cmylibrary.models\nScorer\nX\x02\x00\x00\x00f1\x85R."

CTX = "/api/v1/contexts/{ctx}"
MODEL = "/api/v1/models/{model}"
V1 = MODEL + "/versions/1"
V4 = MODEL + "/versions/4"
HOOK = CTX + "/webhooks/{webhook}"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # filled from the ids of the `world` fixture: {ctx}, {model}, {record}
    least_role: str  # "anyone" signed in, a role in acme, or "staff"
    success: int
    body: object = None  # JSON, or bytes sent as application/octet-stream
    headers: dict = field(default_factory=dict)
    readonly_token_may: bool = False  # a write a read-only token may still make
    # What the outsider gets where the formula does not say it: a single sign-on rule's context
    # is named in the body, and one the caller does not manage is 400 like one that does not exist.
    outsider_status: int | None = None
    readonly_refused: bool = False  # a read needing more than view-model
    success_for: dict = field(default_factory=dict)  # persona -> its own success code
    only: str = ""  # the only persona the service lets through (e.g. the author of a request)

    @property
    def in_context(self) -> bool:
        """True for every path that reaches into context acme (only the context list does not)."""
        return "{" in self.path

    @property
    def is_write(self) -> bool:
        return self.method not in SAFE_METHODS


# fmt: off
CASES = [
    Case("contexts-list",        "GET",    "/api/v1/contexts/",                  "anyone",    200),
    Case("contexts-create",      "POST",   "/api/v1/contexts/",                  "staff",     201, {"slug": "new-team", "name": "New team"}),
    Case("context-detail",       "GET",    CTX + "/",                            "viewer",    200),
    Case("members-list",         "GET",    CTX + "/members/",                    "viewer",    200),
    Case("members-add",          "POST",   CTX + "/members/",                    "admin",     201, {"username": "newcomer", "role": "viewer"}),
    Case("member-patch",         "PATCH",  CTX + "/members/member2/",            "admin",     200, {"role": "editor"}),
    Case("member-delete",        "DELETE", CTX + "/members/member2/",            "admin",     204),
    Case("group-member-patch",   "PATCH",  CTX + "/groups/data-team/",           "admin",     200, {"role": "editor"}),
    Case("group-member-delete",  "DELETE", CTX + "/groups/data-team/",           "admin",     204),
    Case("models-list",          "GET",    CTX + "/models/",                     "viewer",    200),
    Case("models-create",        "POST",   CTX + "/models/",                     "editor",    201, {"name": "Fresh model", "tags": ["new"]}),
    Case("records-list",         "GET",    CTX + "/records/",                    "viewer",    200),
    Case("records-create",       "POST",   CTX + "/records/",                    "editor",    201, {"name": "eval-2025", "uri": "s3://data/eval.parquet"}),
    Case("audit-list",           "GET",    CTX + "/audit/",                      "viewer",    200),
    Case("trusted-imports-list", "GET",    CTX + "/trusted-imports/",            "viewer",    200),
    Case("trusted-imports-add",  "POST",   CTX + "/trusted-imports/",            "publisher", 201, {"imports": ["mylibrary.models.Scorer"], "reason": "our own package"}),
    Case("trusted-import-revoke", "DELETE", CTX + "/trusted-imports/vendorlib.text.Tokenizer/", "publisher", 204),
    Case("webhooks-list",        "GET",    CTX + "/webhooks/",                   "admin",     200),
    Case("webhooks-create",      "POST",   CTX + "/webhooks/",                   "admin",     201, {"url": "https://hooks.example.com/new", "events": ["version.published"]}),
    Case("webhook-detail",       "GET",    HOOK + "/",                           "admin",     200),
    Case("webhook-patch",        "PATCH",  HOOK + "/",                           "admin",     200, {"enabled": False}),
    Case("webhook-delete",       "DELETE", HOOK + "/",                           "admin",     204),
    Case("webhook-test",         "POST",   HOOK + "/test/",                      "admin",     202),
    Case("webhook-rotate-secret", "POST",  HOOK + "/rotate-secret/",             "admin",     200),
    Case("webhook-deliveries",   "GET",    HOOK + "/deliveries/",                "admin",     200),
    Case("sso-rules-list",       "GET",    "/api/v1/sso-rules/",                 "anyone",    200),
    Case("sso-rules-create",     "POST",   "/api/v1/sso-rules/",                 "admin",     201, {"claim_value": "data-science", "context": "acme", "role": "editor"}, outsider_status=400),
    Case("sso-rule-delete",      "DELETE", "/api/v1/sso-rules/{rule}/",          "admin",     204),
    Case("record-detail",        "GET",    "/api/v1/records/{record}/",          "viewer",    200),
    Case("record-patch",         "PATCH",  "/api/v1/records/{record}/",          "editor",    200, {"description": "cleaned"}),
    Case("record-delete",        "DELETE", "/api/v1/records/{record}/",          "admin",     204),
    Case("model-detail",         "GET",    MODEL + "/",                          "viewer",    200),
    Case("model-patch",          "PATCH",  MODEL + "/",                          "editor",    200, {"description": "now with **more**"}),
    Case("model-delete",         "DELETE", MODEL + "/",                          "admin",     204),
    Case("model-metrics-list",   "GET",    MODEL + "/metrics/",                  "viewer",    200),
    Case("model-metrics-log",    "POST",   MODEL + "/metrics/",                  "editor",    201, [{"key": "drift", "value": 0.12, "step": 7}]),
    Case("metric-across-versions", "GET",  MODEL + "/metrics/across-versions/?key=auc", "viewer", 200),
    Case("attachments-list",     "GET",    MODEL + "/attachments/",              "viewer",    200),
    Case("attachment-detail",    "GET",    MODEL + "/attachments/card.pdf/",     "viewer",    200),
    Case("attachment-upload",    "PUT",    MODEL + "/attachments/drift.csv/file", "editor",   201, b"day,drift\n1,0.12\n"),
    Case("attachment-download",  "GET",    MODEL + "/attachments/card.pdf/file", "viewer",    200),
    Case("attachment-delete",    "DELETE", MODEL + "/attachments/card.pdf/",     "editor",    204),
    Case("versions-list",        "GET",    MODEL + "/versions/",                 "viewer",    200),
    Case("versions-create",      "POST",   MODEL + "/versions/",                 "editor",    201, {"framework": "scikit-learn"}),
    Case("version-detail",       "GET",    V1 + "/",                             "viewer",    200),
    Case("version-patch",        "PATCH",  V1 + "/",                             "editor",    200, {"description": "retrained"}),
    Case("version-delete",       "DELETE", V1 + "/",                             "admin",     204),
    Case("version-publish",      "POST",   V1 + "/publish/",                     "publisher", 200),
    Case("metrics-list",         "GET",    V1 + "/metrics/",                     "viewer",    200),
    Case("metrics-log",          "POST",   V1 + "/metrics/",                     "editor",    201, [{"key": "auc", "value": 0.93, "step": 2}]),
    Case("manifest",             "GET",    V1 + "/manifest/",                    "viewer",    200),
    Case("manifest-frozen",      "GET",    V1 + "/manifest/?frozen=true",        "viewer",    200),
    Case("tamper-report",        "POST",   V1 + "/tamper-reports/",              "viewer",    201, {"file": "pkl", "reason": "checksum_mismatch", "expected": "ab" * 32, "actual": "cd" * 32}, readonly_token_may=True),
    Case("formats-list",         "GET",    V1 + "/formats/",                     "viewer",    200),
    Case("formats-create",       "POST",   V1 + "/formats/",                     "editor",    201, {"kind": "onnx"}),
    Case("format-detail",        "GET",    V1 + "/formats/pkl/",                 "viewer",    200),
    Case("format-patch",         "PATCH",  V1 + "/formats/pkl/",                 "editor",    200, {"required": False, "fail_on_tamper": False}),
    Case("format-delete",        "DELETE", V1 + "/formats/pkl/",                 "editor",    204),
    Case("format-approve-imports", "POST", V4 + "/formats/pkl/approve-imports/", "publisher", 200, {"reason": "reviewed in PR 412"}),
    Case("file-upload",          "PUT",    V1 + "/formats/pkl/file",             "editor",    200, NEW_PICKLE_BYTES),
    Case("file-download",        "GET",    V1 + "/formats/pkl/file",             "viewer",    200),
    Case("file-download-range",  "GET",    V1 + "/formats/pkl/file",             "viewer",    206, headers={"HTTP_RANGE": "bytes=0-9"}),
    Case("aliases-list",         "GET",    MODEL + "/aliases/",                  "viewer",    200),
    Case("alias-detail",         "GET",    MODEL + "/aliases/production/",       "viewer",    200),
    Case("alias-set",            "PUT",    MODEL + "/aliases/production/",       "publisher", 200, {"version": 2}),
    Case("alias-delete",         "DELETE", MODEL + "/aliases/production/",       "publisher", 204),
    Case("alias-rollback",       "POST",   MODEL + "/aliases/production/rollback/", "publisher", 200),
    Case("protected-alias-set",  "PUT",    MODEL + "/aliases/beta/",             "publisher", 200, {"version": 3}, success_for={"publisher": 202}),
    Case("protected-alias-delete", "DELETE", MODEL + "/aliases/beta/",           "publisher", 204, success_for={"publisher": 202}),
    Case("protected-aliases-list", "GET",  CTX + "/protected-aliases/",          "viewer",    200),
    Case("protected-alias-add",  "POST",   CTX + "/protected-aliases/",          "admin",     201, {"name": "canary"}),
    Case("protected-alias-remove", "DELETE", CTX + "/protected-aliases/champion/", "admin",   204),
    Case("context-alias-requests", "GET",  CTX + "/alias-requests/",             "viewer",    200),
    Case("alias-requests-list",  "GET",    MODEL + "/alias-requests/",           "viewer",    200),
    Case("alias-request-detail", "GET",    MODEL + "/alias-requests/{request}/", "viewer",    200),
    Case("alias-request-approve", "POST",  MODEL + "/alias-requests/{request}/approve/", "publisher", 200, {"comment": "checked the metrics"}),
    Case("alias-request-reject", "POST",   MODEL + "/alias-requests/{request}/reject/", "publisher", 200, {"comment": "not yet"}),
    Case("alias-request-withdraw", "POST", MODEL + "/alias-requests/{own_request}/withdraw/", "publisher", 200, only="publisher"),
    Case("tokens-list",          "GET",    "/api/v1/tokens/",                    "anyone",    200),
    Case("tokens-create",        "POST",   "/api/v1/tokens/",                    "anyone",    201, {"name": "ci", "read_only": True}),
    Case("context-tokens-list",  "GET",    CTX + "/tokens/",                     "admin",     200, readonly_refused=True),
    Case("context-token-revoke", "DELETE", CTX + "/tokens/{token}/",             "admin",     204),
]
# fmt: on


def expected_status(case: Case, persona: str) -> int:
    if persona == "anonymous":
        return 401
    if persona == "outsider":
        if case.outsider_status is not None:
            return case.outsider_status
        if case.in_context:
            return 404
        return case.success if case.least_role == "anyone" else 403
    if persona == "readonly":
        # A read-only token keeps `view-model` only: a read needing more (a context's webhooks,
        # admins only) is refused like a write.
        reads_as_viewer = not case.is_write and RANK[case.least_role] <= RANK["viewer"]
        refused = (not (reads_as_viewer or case.readonly_token_may)) or case.readonly_refused
        return 403 if refused else case.success_for.get("admin", case.success)
    if RANK[persona] < RANK[case.least_role] or (case.only and persona != case.only):
        return 403
    return case.success_for.get(persona, case.success)


def _upload_ready(version, kind: str, body: bytes) -> None:
    fmt = services.format_upload(
        actor=None, version=version, kind=kind, stream=io.BytesIO(body), content_length=len(body),
        filename=f"model.{kind}", content_type="application/octet-stream",
    )
    # Stand in for the workers, which unit tests do not run: they would hash this clean file
    # and find it `ready`, a state every publish rule accepts.
    Format.objects.filter(pk=fmt.pk).update(
        status=FormatStatus.READY, md5=hashlib.md5(body).hexdigest(), sha256=hashlib.sha256(body).hexdigest(),
    )


@pytest.fixture
def world(context, users):
    """Acme's data, built by the operator, such that every allowed request can succeed.

    Model with v1 (draft, uploaded pkl, trained on a record, one metric), v2 and v3
    (published), v4 (draft, a pkl in review); alias production moved v2 -> v3, so it can roll
    back; a trusted import to revoke; a webhook; a second user and a group holding roles, to change and
    remove; a user who is not a member yet.
    """
    UserFactory(username="member2")
    UserFactory(username="newcomer")
    Group.objects.create(name="data-team")
    services.membership_set(actor=None, context=context, role="viewer", username="member2")
    services.membership_set(actor=None, context=context, role="viewer", group="data-team")

    record = services.record_create(actor=None, context=context, name="train-2024", uri="s3://data/train.parquet")
    model = services.model_create(actor=None, context=context, name=MODEL_NAME, tags=["tabular"])
    v1 = services.version_create(actor=None, model=model, framework="scikit-learn", records=[str(record.pk)])
    _upload_ready(v1, "pkl", PICKLE_BYTES)
    services.metrics_log(actor=None, version=v1, metrics=[{"key": "auc", "value": 0.91, "step": 1}])
    for _ in range(2):
        version = services.version_create(actor=None, model=model, framework="scikit-learn")
        _upload_ready(version, "pkl", PICKLE_BYTES)
        services.version_publish(actor=None, version=version)
    services.alias_set(actor=None, model=model, name="production", version_number=2)
    services.alias_set(actor=None, model=model, name="production", version_number=3)
    v4 = services.version_create(actor=None, model=model, framework="scikit-learn")
    store_file(v4, "pkl", REVIEW_PICKLE_BYTES)
    assert Format.objects.get(version=v4).status == FormatStatus.REVIEW
    services.trusted_imports_add(actor=None, context=context, names=["vendorlib.text.Tokenizer"], reason="vendored")
    webhook, _ = services.webhook_create(actor=None, context=context, url="https://hooks.example.com/registry",
                                         events=["version.published", "alias.moved"])
    rule = services.sso_rule_create(actor=None, context=context, claim_value="ml-platform", role="publisher")
    # Protected aliases: beta (no request yet; v2), champion (v2, a pending request of another
    # publisher's to move it to v3, and one of the publisher persona's own on alpha).
    for name in ("alpha", "beta", "champion"):
        services.alias_set(actor=None, model=model, name=name, version_number=2)
        services.protected_alias_add(actor=None, context=context, name=name)
    publisher2 = UserFactory(username="publisher2")
    services.membership_set(actor=None, context=context, role="publisher", username="publisher2")
    request = services.alias_set(actor=publisher2, model=model, name="champion", version_number=3)
    own = services.alias_set(actor=User.objects.get(username="publisher"), model=model, name="alpha", version_number=3)
    services.attachment_upload(actor=None, model=model, name="card.pdf", stream=io.BytesIO(b"%PDF-1.7 card"),
                               content_length=13)
    token, _ = services.token_create(actor=None, user=User.objects.get(username="member2"), name="member2's")
    return {"ctx": context.slug, "model": str(model.pk), "record": str(record.pk), "webhook": str(webhook.pk),
            "rule": str(rule.pk), "request": request.pk, "own_request": own.pk, "token": token.pk}


@pytest.fixture
def persona_clients(clients):
    """The conftest personas plus site staff, a superuser who is a member of no context."""
    staff = UserFactory(username="staff", is_superuser=True, is_staff=True)
    return {**clients, "staff": client_for(staff)}


def send(client, case: Case, ids: dict):
    path = case.path.format(**ids)
    if isinstance(case.body, bytes):
        return client.generic(case.method, path + "?filename=model.pkl", data=case.body,
                              content_type="application/octet-stream", **case.headers)
    data = "" if case.body is None else json.dumps(case.body)
    return client.generic(case.method, path, data=data, content_type="application/json", **case.headers)


def body_of(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)  # also closes the stored file
    return response.content


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_permission_matrix(case, persona, world, persona_clients, storage_dir):
    client = persona_clients[persona]
    expected = expected_status(case, persona)
    audit_before, files_before = AuditEvent.objects.count(), stored_files(storage_dir)

    response = send(client, case, world)
    content = body_of(response)

    assert response.status_code == expected, (case.method, case.path, persona, content[:500])
    if expected < 400 and case.is_write:
        assert AuditEvent.objects.count() > audit_before, "every change writes an audit event"
    if expected >= 400:
        assert AuditEvent.objects.count() == audit_before, "a refused request must not write anything"
        assert stored_files(storage_dir) == files_before, "a refused request must not store a file"
    if expected == 404:
        # Nothing in acme exists for the outsider: not its slug, not its model's name, and the
        # answer is exactly the one for objects that do not exist at all.
        text = content.decode().casefold()
        assert world["ctx"] not in text
        assert MODEL_NAME.casefold() not in text
        ghost_ids = {"ctx": "no-such-context", "model": str(uuid.uuid4()), "record": str(uuid.uuid4()),
                     "webhook": str(uuid.uuid4()), "rule": "999999", "request": 999999, "own_request": 999998,
                     "token": 999997}
        ghost = send(client, case, ghost_ids)
        assert ghost.status_code == 404
        assert ghost.json() == response.json()
    if case.name == "sso-rules-list" and expected == 200:
        # Only the rules of contexts the caller manages: an admin of acme (or staff) sees acme's.
        contexts = [item["context"] for item in response.json()["results"]]
        assert contexts == (["acme"] if persona in ("admin", "staff") else [])
    if case.name == "contexts-list" and expected == 200:
        slugs = [item["slug"] for item in response.json()["results"]]
        if persona == "outsider":
            assert slugs == ["other"]
        else:
            assert world["ctx"] in slugs


# --- the permission is decided before the body is read ------------------------------------

def _invalid_body(case: Case) -> tuple[bytes, str, dict]:
    """What `case` would refuse with 400 if it read it: malformed JSON, or a file whose declared
    checksum is not a checksum."""
    if isinstance(case.body, bytes):
        return case.body, "application/octet-stream", {"HTTP_X_CHECKSUM_SHA256": "not-a-checksum"}
    return b'{"this is": not json', "application/json", {}


def _just_below(case: Case) -> str | None:
    """A persona who can see the object but lacks the case's role, if there is one."""
    below = [name for name, rank in RANK.items() if rank == RANK[case.least_role] - 1 and name in PERSONAS]
    return below[0] if below else None


FORBIDDEN_WRITES = [
    (case, persona)
    for case in CASES if case.is_write
    for persona in dict.fromkeys(p for p in (_just_below(case), "viewer", "readonly", "outsider") if p)
    if expected_status(case, persona) in (403, 404)
]


@pytest.mark.parametrize(("case", "persona"), FORBIDDEN_WRITES,
                         ids=[f"{case.name}-{persona}" for case, persona in FORBIDDEN_WRITES])
def test_a_forbidden_write_with_an_invalid_body_answers_403_not_400(case, persona, world, persona_clients,
                                                                   storage_dir):
    """403 (or 404 for an object in a context the user cannot see) whatever the body holds: the
    permission is decided before the body is parsed or validated, so a refused caller learns
    nothing from validation errors and no body is read for nothing."""
    body, content_type, headers = _invalid_body(case)
    audit_before, files_before = AuditEvent.objects.count(), stored_files(storage_dir)
    path = case.path.format(**world)
    response = persona_clients[persona].generic(case.method, path, data=body, content_type=content_type,
                                                **case.headers, **headers)

    assert response.status_code == expected_status(case, persona), (case.name, persona, response.content[:300])
    assert response.json()["code"] == ("permission_denied" if response.status_code == 403 else "not_found")
    assert AuditEvent.objects.count() == audit_before
    assert stored_files(storage_dir) == files_before


@pytest.mark.parametrize("case", [case for case in CASES if case.is_write], ids=lambda case: case.name)
def test_the_same_invalid_body_from_an_allowed_caller_is_400(case, world, persona_clients):
    """The bodies above are invalid indeed: a caller who may write gets 400 for them."""
    body, content_type, headers = _invalid_body(case)
    if case.body is None:
        pytest.skip("this write reads no body")
    persona = "staff" if case.least_role == "staff" else "admin"
    response = persona_clients[persona].generic(case.method, case.path.format(**world), data=body,
                                                content_type=content_type, **case.headers, **headers)
    assert response.status_code == 400, (case.name, response.content[:300])


def test_every_write_handler_names_its_permission():
    """A handler that writes decides its permission with @requires or @staff_only, never by
    leaving it to a service (the matrix above holds each decision to its role)."""
    from django.urls import get_resolver

    from registry.api.views import RegistryView

    undecided = []
    for pattern in get_resolver("registry.api.urls").url_patterns:
        view_class = pattern.callback.view_class
        assert issubclass(view_class, RegistryView)
        for method in ("post", "put", "patch", "delete"):
            handler = getattr(view_class, method, None)
            if handler is not None and not hasattr(handler, "required_permission"):
                undecided.append(f"{method.upper()} {pattern.pattern}")
    assert undecided == []
