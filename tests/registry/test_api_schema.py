"""Every endpoint answers what the OpenAPI document the project serves says it answers.

Each JSON answer of the API (every path and method of /api/schema/ with a 2xx JSON response)
is requested for real, and its keys, at every level, are compared with the schema of that
response: every key the schema requires is there, and no key is there that the schema does not
name. A new endpoint without a request here fails test_every_endpoint_is_checked.
"""

import io
import json

import pytest
from django.contrib.auth.models import Group

from registry import services

from tests.conftest import client_for
from tests.factories import UserFactory
from tests.helpers import PICKLE, store_file, upload

pytestmark = pytest.mark.django_db

# Imports mylibrary.models.Scorer: a file in review (tests/registry/test_trusted_imports.py).
SCORER = b"\x80\x02cmylibrary.models\nScorer\nX\x02\x00\x00\x00f1\x85R."


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


@pytest.fixture
def world(context, users):
    """A model with versions 1 and 2 published (production moved from 1 to 2), 3 a draft with a
    pkl, 4 a draft whose pkl is in review; a record; a trusted import; a group member."""
    model = services.model_create(actor=users["editor"], context=context, name="churn", tags=["tabular"])
    record = services.record_create(actor=users["editor"], context=context, name="data", uri="s3://d")
    for number in (1, 2):
        version = services.version_create(actor=users["editor"], model=model, records=[str(record.pk)])
        store_file(version)
        services.version_publish(actor=users["publisher"], version=version)
        services.alias_set(actor=users["publisher"], model=model, name="production", version_number=number)
    draft = services.version_create(actor=users["editor"], model=model, tags=["x"])
    store_file(draft)
    services.metrics_log(actor=None, version=draft, metrics=[{"key": "auc", "value": 0.9, "step": 1}])
    store_file(services.version_create(actor=users["editor"], model=model), body=SCORER)
    services.trusted_imports_add(actor=users["publisher"], context=context, names=["vendorlib.X"], reason="ok")
    Group.objects.create(name="readers")
    services.membership_set(actor=None, context=context, role="viewer", group="readers")
    UserFactory(username="newcomer")
    webhook, _ = services.webhook_create(actor=None, context=context, url="https://hooks.example.com/x",
                                         events=["version.published"])
    # A delivery with one attempt, as the workers record it, for the deliveries list.
    delivery = services.webhook_test(actor=None, webhook=webhook)
    delivery.attempts.create(number=1, started_at=delivery.created_at, duration_ms=12, response_code=503,
                             response_excerpt="busy", error="The receiver answered 503.")
    # A role granted by a single sign-on rule, beside the hand-granted ones (source "sso").
    rule = services.sso_rule_create(actor=None, context=context, claim_value="ml-platform", role="publisher")
    services.sso_sign_in(issuer="https://idp.example", claims={"sub": "s-1", "groups": ["ml-platform"]},
                         roles_claim="groups", username_claim="preferred_username")
    # Protected aliases, each with a pending move request of the publisher's (approve, reject,
    # withdraw below), and one to ask for.
    for name in ("stable", "gold", "silver", "platinum"):
        services.protected_alias_add(actor=None, context=context, name=name)
    requests = [services.alias_set(actor=users["publisher"], model=model, name=name, version_number=1).pk
                for name in ("stable", "gold", "silver")]
    services.attachment_upload(actor=users["editor"], model=model, name="card.pdf",
                               stream=io.BytesIO(b"%PDF-1.7 card"), content_length=13, description="The model card")
    return {"model": model, "record": record, "webhook": webhook, "rule": rule, "requests": requests}


def requests_for(world, clients):
    """(method, schema path, persona, url, request kwargs, expected status) for every JSON answer."""
    from registry.models import ApiToken

    m, r = world["model"].pk, world["record"].pk
    hook = f"/api/v1/contexts/acme/webhooks/{world['webhook'].pk}"
    hook_path = "/api/v1/contexts/{ctx}/webhooks/{webhook_id}"
    v = f"/api/v1/models/{m}/versions"
    approve, reject, withdraw = world["requests"]
    rq = f"/api/v1/models/{m}/alias-requests"
    viewer_token = ApiToken.objects.filter(user__username="viewer").first().pk
    return [
        ("get", "/api/v1/contexts/{ctx}/protected-aliases/", "viewer", "/api/v1/contexts/acme/protected-aliases/",
         {}, 200),
        ("post", "/api/v1/contexts/{ctx}/protected-aliases/", "admin", "/api/v1/contexts/acme/protected-aliases/",
         {"data": {"name": "champion"}}, 201),
        ("get", "/api/v1/contexts/{ctx}/alias-requests/", "viewer", "/api/v1/contexts/acme/alias-requests/", {}, 200),
        ("get", "/api/v1/models/{model_id}/alias-requests/", "viewer", f"{rq}/", {}, 200),
        ("get", "/api/v1/models/{model_id}/alias-requests/{request_id}/", "viewer", f"{rq}/{approve}/", {}, 200),
        ("post", "/api/v1/models/{model_id}/alias-requests/{request_id}/approve/", "admin", f"{rq}/{approve}/approve/",
         {"data": {"comment": "fine"}}, 200),
        ("delete", "/api/v1/models/{model_id}/aliases/{alias}/", "publisher", f"/api/v1/models/{m}/aliases/stable/",
         {}, 202),
        ("post", "/api/v1/models/{model_id}/alias-requests/{request_id}/reject/", "admin", f"{rq}/{reject}/reject/",
         {}, 200),
        ("post", "/api/v1/models/{model_id}/alias-requests/{request_id}/withdraw/", "publisher",
         f"{rq}/{withdraw}/withdraw/", {}, 200),
        ("put", "/api/v1/models/{model_id}/aliases/{alias}/", "publisher", f"/api/v1/models/{m}/aliases/platinum/",
         {"data": {"version": 1}}, 202),
        ("get", "/api/v1/tokens/", "viewer", "/api/v1/tokens/", {}, 200),
        ("post", "/api/v1/tokens/", "viewer", "/api/v1/tokens/",
         {"data": {"name": "deploy", "models": [str(m)], "permissions": ["view-model"]}}, 201),
        ("get", "/api/v1/tokens/{token_id}/", "viewer", f"/api/v1/tokens/{viewer_token}/", {}, 200),
        ("get", "/api/v1/contexts/{ctx}/tokens/", "admin", "/api/v1/contexts/acme/tokens/", {}, 200),
        ("get", "/api/v1/contexts/", "viewer", "/api/v1/contexts/", {}, 200),
        ("post", "/api/v1/contexts/", "staff", "/api/v1/contexts/", {"data": {"slug": "new"}}, 201),
        ("get", "/api/v1/contexts/{ctx}/", "viewer", "/api/v1/contexts/acme/", {}, 200),
        ("get", "/api/v1/contexts/{ctx}/audit/", "viewer", "/api/v1/contexts/acme/audit/", {}, 200),
        ("patch", "/api/v1/contexts/{ctx}/groups/{name}/", "admin", "/api/v1/contexts/acme/groups/readers/",
         {"data": {"role": "editor"}}, 200),
        ("get", "/api/v1/contexts/{ctx}/members/", "admin", "/api/v1/contexts/acme/members/", {}, 200),
        ("post", "/api/v1/contexts/{ctx}/members/", "admin", "/api/v1/contexts/acme/members/",
         {"data": {"username": "newcomer", "role": "viewer"}}, 201),
        ("patch", "/api/v1/contexts/{ctx}/members/{name}/", "admin", "/api/v1/contexts/acme/members/viewer/",
         {"data": {"role": "editor"}}, 200),
        ("get", "/api/v1/contexts/{ctx}/models/", "viewer", "/api/v1/contexts/acme/models/", {}, 200),
        ("post", "/api/v1/contexts/{ctx}/models/", "editor", "/api/v1/contexts/acme/models/",
         {"data": {"name": "other", "tags": ["a"]}}, 201),
        ("get", "/api/v1/contexts/{ctx}/records/", "viewer", "/api/v1/contexts/acme/records/", {}, 200),
        ("post", "/api/v1/contexts/{ctx}/records/", "editor", "/api/v1/contexts/acme/records/",
         {"data": {"name": "more", "uri": "s3://m"}}, 201),
        ("get", "/api/v1/contexts/{ctx}/trusted-imports/", "viewer", "/api/v1/contexts/acme/trusted-imports/",
         {}, 200),
        ("post", "/api/v1/contexts/{ctx}/trusted-imports/", "publisher", "/api/v1/contexts/acme/trusted-imports/",
         {"data": {"imports": ["otherlib.Y"], "reason": "ok"}}, 201),
        ("get", "/api/v1/contexts/{ctx}/webhooks/", "admin", "/api/v1/contexts/acme/webhooks/", {}, 200),
        ("post", "/api/v1/contexts/{ctx}/webhooks/", "admin", "/api/v1/contexts/acme/webhooks/",
         {"data": {"url": "https://hooks.example.com/y", "events": ["alias.moved"]}}, 201),
        ("get", f"{hook_path}/", "admin", f"{hook}/", {}, 200),
        ("patch", f"{hook_path}/", "admin", f"{hook}/", {"data": {"enabled": False}}, 200),
        ("post", f"{hook_path}/test/", "admin", f"{hook}/test/", {}, 202),
        ("post", f"{hook_path}/rotate-secret/", "admin", f"{hook}/rotate-secret/", {}, 200),
        ("get", f"{hook_path}/deliveries/", "admin", f"{hook}/deliveries/", {}, 200),
        ("get", "/api/v1/models/{model_id}/", "viewer", f"/api/v1/models/{m}/", {}, 200),
        ("patch", "/api/v1/models/{model_id}/", "editor", f"/api/v1/models/{m}/", {"data": {"task": "t"}}, 200),
        ("get", "/api/v1/models/{model_id}/aliases/", "viewer", f"/api/v1/models/{m}/aliases/", {}, 200),
        ("get", "/api/v1/models/{model_id}/aliases/{alias}/", "viewer", f"/api/v1/models/{m}/aliases/production/",
         {}, 200),
        ("put", "/api/v1/models/{model_id}/aliases/{alias}/", "publisher", f"/api/v1/models/{m}/aliases/canary/",
         {"data": {"version": 1}}, 200),
        ("post", "/api/v1/models/{model_id}/aliases/{alias}/rollback/", "publisher",
         f"/api/v1/models/{m}/aliases/production/rollback/", {}, 200),
        ("get", "/api/v1/models/{model_id}/versions/", "viewer", f"{v}/", {}, 200),
        ("post", "/api/v1/models/{model_id}/versions/", "editor", f"{v}/", {"data": {"tags": ["n"]}}, 201),
        ("get", "/api/v1/models/{model_id}/versions/{number}/", "viewer", f"{v}/1/", {}, 200),
        ("get", "/api/v1/models/{model_id}/versions/{number}/", "viewer", f"{v}/3/", {}, 200),
        ("patch", "/api/v1/models/{model_id}/versions/{number}/", "editor", f"{v}/3/", {"data": {"name": "n"}}, 200),
        ("get", "/api/v1/models/{model_id}/versions/{number}/formats/", "viewer", f"{v}/1/formats/", {}, 200),
        ("get", "/api/v1/models/{model_id}/versions/{number}/formats/", "viewer", f"{v}/3/formats/", {}, 200),
        ("post", "/api/v1/models/{model_id}/versions/{number}/formats/", "editor", f"{v}/4/formats/",
         {"data": {"kind": "onnx"}}, 201),
        ("get", "/api/v1/models/{model_id}/versions/{number}/formats/{kind}/", "viewer", f"{v}/1/formats/pkl/",
         {}, 200),
        ("get", "/api/v1/models/{model_id}/versions/{number}/formats/{kind}/", "viewer", f"{v}/4/formats/pkl/",
         {}, 200),
        ("patch", "/api/v1/models/{model_id}/versions/{number}/formats/{kind}/", "editor", f"{v}/3/formats/pkl/",
         {"data": {"required": False}}, 200),
        ("post", "/api/v1/models/{model_id}/versions/{number}/formats/{kind}/approve-imports/", "publisher",
         f"{v}/4/formats/pkl/approve-imports/", {"data": {"reason": "ours"}}, 200),
        ("put", "/api/v1/models/{model_id}/versions/{number}/formats/{kind}/file", "editor",
         f"{v}/3/formats/joblib/file", {"upload": (m, 3, "joblib")}, 200),
        ("get", "/api/v1/models/{model_id}/versions/{number}/manifest/", "viewer", f"{v}/1/manifest/", {}, 200),
        ("get", "/api/v1/models/{model_id}/versions/{number}/manifest/", "viewer", f"{v}/1/manifest/?frozen=true",
         {}, 200),
        ("get", "/api/v1/models/{model_id}/versions/{number}/manifest/", "viewer", f"{v}/3/manifest/?frozen=true",
         {}, 200),
        ("get", "/api/v1/models/{model_id}/versions/{number}/metrics/", "viewer", f"{v}/3/metrics/", {}, 200),
        ("post", "/api/v1/models/{model_id}/versions/{number}/metrics/", "editor", f"{v}/3/metrics/",
         {"data": [{"key": "loss", "value": 0.1}]}, 201),
        ("post", "/api/v1/models/{model_id}/versions/{number}/publish/", "publisher", f"{v}/3/publish/", {}, 200),
        ("post", "/api/v1/models/{model_id}/versions/{number}/tamper-reports/", "viewer",
         f"{v}/1/tamper-reports/", {"data": {"file": "pkl", "reason": "checksum_mismatch"}}, 201),
        ("get", "/api/v1/sso-rules/", "admin", "/api/v1/sso-rules/", {}, 200),
        ("post", "/api/v1/sso-rules/", "admin", "/api/v1/sso-rules/",
         {"data": {"claim_value": "data-science", "context": "acme", "role": "viewer"}}, 201),
        ("post", "/api/v1/models/{model_id}/metrics/", "editor", f"{v.removesuffix('/versions')}/metrics/",
         {"data": [{"key": "drift", "value": 0.1, "step": 1}]}, 201),
        ("get", "/api/v1/models/{model_id}/metrics/", "viewer", f"{v.removesuffix('/versions')}/metrics/", {}, 200),
        ("get", "/api/v1/models/{model_id}/metrics/across-versions/", "viewer",
         f"{v.removesuffix('/versions')}/metrics/across-versions/?key=loss", {}, 200),
        ("get", "/api/v1/models/{model_id}/attachments/", "viewer", f"/api/v1/models/{m}/attachments/", {}, 200),
        ("get", "/api/v1/models/{model_id}/attachments/{name}/", "viewer",
         f"/api/v1/models/{m}/attachments/card.pdf/", {}, 200),
        ("put", "/api/v1/models/{model_id}/attachments/{name}/file", "editor",
         f"/api/v1/models/{m}/attachments/drift.csv/file", {"raw": b"day,drift\n1,0.1\n"}, 201),
        ("put", "/api/v1/models/{model_id}/attachments/{name}/file", "editor",
         f"/api/v1/models/{m}/attachments/card.pdf/file?overwrite=1", {"raw": b"%PDF-1.7 newer"}, 200),
        ("get", "/api/v1/records/{record_id}/", "viewer", f"/api/v1/records/{r}/", {}, 200),
        ("patch", "/api/v1/records/{record_id}/", "editor", f"/api/v1/records/{r}/", {"data": {"uri": "s3://e"}},
         200),
    ]


def json_answers(schema):
    """{(method, path): {status: response schema}} for every 2xx JSON answer in the document."""
    answers = {}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                media = (response.get("content") or {}).get("application/json")
                if status.startswith("2") and media is not None and media.get("schema"):
                    answers.setdefault((method, path), {})[int(status)] = media["schema"]
    return answers


def resolve(schema, node):
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    if "allOf" in node:
        merged = {"type": "object", "properties": {}, "required": []}
        for part in node["allOf"]:
            part = resolve(schema, part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        return merged
    return node


def mismatches(schema, node, value, where="") -> list[str]:
    """Where `value` has keys its schema `node` does not name, or lacks keys it requires."""
    node = resolve(schema, node)
    found = []
    if isinstance(value, dict) and "properties" in node:
        keys, named, required = set(value), set(node["properties"]), set(node.get("required", []))
        found += [f"{where}.{key}: not in the schema" for key in sorted(keys - named)]
        found += [f"{where}.{key}: missing" for key in sorted(required - keys)]
        for key in sorted(keys & named):
            found += mismatches(schema, node["properties"][key], value[key], f"{where}.{key}")
    elif isinstance(value, dict) and node.get("type") == "object" and "additionalProperties" not in node \
            and node.get("properties") is None and node != {}:
        found.append(f"{where}: an object the schema leaves without keys")
    elif isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            found += mismatches(schema, node["items"], item, f"{where}[{index}]")
    return found


def test_every_answer_has_the_keys_of_its_schema(schema, world, clients):
    clients = {**clients, "staff": client_for(UserFactory(username="root", is_superuser=True))}
    answers = json_answers(schema)
    for method, path, persona, url, kwargs, status in requests_for(world, clients):
        if "upload" in kwargs:  # raw bytes, then the hashing and introspection a worker does
            response = upload(clients[persona], *kwargs["upload"], body=PICKLE)
        elif "raw" in kwargs:  # a raw body, stored as it is
            response = clients[persona].generic(method.upper(), url, data=kwargs["raw"],
                                                content_type="application/octet-stream")
        elif method in ("get", "delete"):
            response = getattr(clients[persona], method)(url)
        else:
            response = getattr(clients[persona], method)(url, kwargs.get("data", {}), format="json")
        assert response.status_code == status, (method, url, response.content)
        body = response.json()
        assert (method, path) in answers, (method, path)
        node = answers[(method, path)][status]
        assert mismatches(schema, node, body) == [], (method, url)


# Direct uploads answer only on S3 storage: tests/registry/test_direct_uploads.py checks them
# against the schema (test_every_direct_upload_answer_has_the_keys_of_its_schema).
CHECKED_WITH_S3 = {
    ("post", "/api/v1/models/{model_id}/versions/{number}/formats/{kind}/uploads/"),
    ("get", "/api/v1/uploads/{upload_id}/parts/"),
    ("post", "/api/v1/uploads/{upload_id}/complete/"),
}


def test_every_endpoint_is_checked(schema, world, clients):
    checked = {(method, path) for method, path, *_ in requests_for(world, clients)} | CHECKED_WITH_S3
    assert set(json_answers(schema)) - checked == set()


def test_the_check_finds_a_key_the_schema_does_not_name(schema):
    node = {"$ref": "#/components/schemas/Alias"}
    assert mismatches(schema, node, {"name": "p", "version": 1, "updated_by": None, "updated_at": "t"}) == []
    assert mismatches(schema, node, {"name": "p", "version": 1, "updated_by": None, "updated_at": "t",
                                     "extra": 1}) == [".extra: not in the schema"]
    assert mismatches(schema, node, {"name": "p", "version": 1, "updated_by": None}) == [".updated_at: missing"]
