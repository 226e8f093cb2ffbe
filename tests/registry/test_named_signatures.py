"""Named signatures (SPEC §3): a contract of several signatures (`predict`, `tokenize`), over the
API, from an artifact's serving.yaml, on the dashboard, and compared per signature."""

import pytest
from django.test import Client
from django.urls import reverse

from registry import services, signatures
from registry.compare import signature_diff
from registry.models import Version

from tests.helpers import upload
from tests.registry.introspection.sandbox import artifact_members, zip_bytes

pytestmark = pytest.mark.django_db

TEXT = {"name": "text", "dtype": "string", "shape": [-1, 1], "profile": "text"}
TOKENS = {"name": "tokens", "dtype": "string", "shape": [-1, -1]}
FEATURES = {"name": "features", "dtype": "float32", "shape": [-1, 4]}
SCORE = {"name": "score", "dtype": "float32", "shape": [-1]}
CONTRACT = {"signatures": {"predict": {"inputs": [FEATURES], "outputs": [SCORE]},
                           "tokenize": {"inputs": [TEXT], "outputs": [TOKENS]}}}


def new_version(client, model, **fields):
    return client.post(f"/api/v1/models/{model.pk}/versions/", fields, format="json")


# --- the API ---------------------------------------------------------------------------------

def test_named_signatures_are_stored_and_served(clients, model):
    r = new_version(clients["editor"], model, signature=CONTRACT)
    assert r.status_code == 201, r.json()
    assert r.json()["signature"] == CONTRACT
    got = clients["viewer"].get(f"/api/v1/models/{model.pk}/versions/{r.json()['number']}/").json()
    assert got["signature"] == CONTRACT
    assert signatures.named(got["signature"]) == CONTRACT["signatures"]


def test_the_plain_shape_is_the_predict_signature(clients, model):
    plain = {"inputs": [FEATURES], "outputs": [SCORE]}
    assert new_version(clients["editor"], model, signature=plain).json()["signature"] == plain
    # Named, but only "predict": stored in the plain shape every reader knew before.
    only_predict = {"signatures": {"predict": plain}}
    assert new_version(clients["editor"], model, signature=only_predict).json()["signature"] == plain


def test_plain_and_named_combine(clients, model):
    body = {"inputs": [FEATURES], "outputs": [SCORE], "signatures": {"tokenize": CONTRACT["signatures"]["tokenize"]}}
    r = new_version(clients["editor"], model, signature=body)
    assert r.status_code == 201, r.json()
    assert signatures.named(r.json()["signature"]) == CONTRACT["signatures"]


@pytest.mark.parametrize("signature, fragment", [
    ({"signatures": {"bad name": {"inputs": [TEXT]}}}, "Signature name 'bad name' is not valid"),
    ({"signatures": {"": {"inputs": [TEXT]}}}, "is not valid"),
    ({"signatures": ["tokenize"]}, "'signatures' must be an object"),
    ({"signatures": {"tokenize": [TEXT]}}, "Signature 'tokenize' must be an object"),
    ({"signatures": {"tokenize": {"inputs": [TEXT], "examples": []}}}, "has only 'inputs' and 'outputs'"),
    ({"signatures": {"tokenize": {"inputs": [{"name": "t", "dtype": "text"}]}}}, "signature 'tokenize' inputs[0]"),
    ({"inputs": [FEATURES], "signatures": {"predict": {"inputs": [TEXT]}}}, "Signature 'predict' is given twice"),
    ({"signatures": {f"s{i}": {"inputs": [TEXT]} for i in range(33)}}, "at most 32 signatures"),
    ({"predict": {"inputs": [TEXT]}}, "not ['predict']"),
])
def test_a_bad_named_signature_is_a_clear_400_and_nothing_is_written(clients, model, signature, fragment):
    r = new_version(clients["editor"], model, signature=signature)
    assert r.status_code == 400, r.json()
    assert fragment in r.json()["detail"] and r.json()["field"] == "signature"
    assert not Version.objects.filter(model=model).exists()


def test_patch_adds_a_named_signature(clients, model):
    number = new_version(clients["editor"], model, signature={"inputs": [FEATURES], "outputs": [SCORE]}).json()["number"]
    r = clients["editor"].patch(f"/api/v1/models/{model.pk}/versions/{number}/", {"signature": CONTRACT}, format="json")
    assert r.status_code == 200 and r.json()["signature"] == CONTRACT


# --- from an artifact's serving.yaml ------------------------------------------------------------

SERVING_YAML = b"""\
kind: Model
name: tokenizer
model-type: "scikit-learn:1.5.2"
contract:
  tokenize:
    inputs:
      input_text: {shape: [-1, 1], type: string, profile: text}
    outputs:
      output_text: {shape: [-1, 1], type: string, profile: text}
  predict:
    inputs:
      features: {shape: [-1, 3], type: double, profile: numerical}
    outputs:
      score: {shape: [-1], type: float}
"""


def test_every_signature_of_serving_yaml_fills_the_version(clients, model, version):
    body = zip_bytes(artifact_members(serving__yaml=SERVING_YAML))
    assert upload(clients["editor"], model.pk, version.number, "artifact", body).status_code == 200
    version.refresh_from_db()
    assert version.signature_source == "contract"
    assert sorted(signatures.named(version.signature)) == ["predict", "tokenize"]
    assert signatures.named(version.signature)["tokenize"]["inputs"] == [
        {"name": "input_text", "dtype": "string", "shape": [-1, 1], "profile": "text"}]


# --- comparing, per signature ---------------------------------------------------------------------

def test_a_removed_named_signature_is_breaking():
    removed = {"signatures": {"predict": CONTRACT["signatures"]["predict"]}}
    (change,) = signature_diff(CONTRACT, removed)
    assert (change.part, change.signature, change.change, change.breaking) == ("signature", "tokenize", "removed", True)
    assert change.message == "Signature 'tokenize' was removed: its callers have nothing to call."


def test_an_added_named_signature_is_compatible():
    (change,) = signature_diff({"inputs": [FEATURES], "outputs": [SCORE]}, CONTRACT)
    assert (change.signature, change.change, change.breaking) == ("tokenize", "added", False)


def test_changes_are_found_and_named_per_signature():
    changed = {"signatures": {"predict": CONTRACT["signatures"]["predict"],
                              "tokenize": {"inputs": [{**TEXT, "dtype": "bytes"}], "outputs": [TOKENS]}}}
    (change,) = signature_diff(CONTRACT, changed)
    assert (change.signature, change.part, change.name, change.change, change.breaking) == (
        "tokenize", "inputs", "text", "dtype", True)
    assert change.message == "tokenize: Input 'text' changed type from string to bytes."
    # The same fields under another signature's name are not compared with each other.
    assert signature_diff(CONTRACT, CONTRACT) == []


def test_a_plain_signature_keeps_its_unprefixed_messages():
    (change,) = signature_diff({"inputs": [FEATURES]}, {"inputs": [TEXT, FEATURES]})
    assert change.message == "New input 'text': callers do not send it yet."
    assert change.signature == "predict"


# --- the dashboard --------------------------------------------------------------------------------

@pytest.fixture
def viewer_browser(users):
    client = Client()
    client.force_login(users["viewer"])
    return client


def test_the_details_tab_shows_each_named_signature(viewer_browser, model):
    version = services.version_create(actor=None, model=model, signature=CONTRACT)
    page = viewer_browser.get(reverse("dashboard:version-detail", kwargs={"model_id": model.pk,
                                                                         "number": version.number})).content.decode()
    assert "Signature <code>predict</code>" in page and "Signature <code>tokenize</code>" in page
    assert "<code>tokens</code>" in page and "<code>features</code>" in page


def test_the_compare_page_flags_a_removed_signature(viewer_browser, model):
    services.version_create(actor=None, model=model, signature=CONTRACT)
    services.version_create(actor=None, model=model, signature={"inputs": [FEATURES], "outputs": [SCORE]})
    url = reverse("dashboard:compare", kwargs={"model_id": model.pk}) + "?a=1&b=2"
    page = viewer_browser.get(url).content.decode()
    assert "BREAKING" in page
    assert "Signature &#x27;tokenize&#x27; was removed" in page
    assert "Signature <code>tokenize</code>" in page  # v1's side still lists it


# --- alias moves ------------------------------------------------------------------------------------

def _published(model, signature):
    from tests.helpers import store_file

    version = services.version_create(actor=None, model=model, signature=signature)
    store_file(version)
    services.version_publish(actor=None, version=version)
    return version


def test_an_alias_move_that_removes_a_signature_is_flagged_and_audited(users, model):
    from registry.models import AuditEvent

    _published(model, CONTRACT)
    _published(model, {"inputs": [FEATURES], "outputs": [SCORE]})
    assert services.alias_set(actor=None, model=model, name="production", version_number=1).breaking_changes == []
    moved = services.alias_set(actor=None, model=model, name="production", version_number=2)
    assert [(c.signature, c.change) for c in moved.breaking_changes] == [("tokenize", "removed")]
    event = AuditEvent.objects.filter(action="alias.move").latest("id")
    assert event.summary.endswith("; 1 breaking signature change(s)")
    assert event.changes["breaking_signature_changes"] == [
        "Signature 'tokenize' was removed: its callers have nothing to call."]
    back = services.alias_rollback(actor=None, model=model, name="production")
    assert back.breaking_changes == []  # tokenize is back: adding a signature breaks nothing


def test_the_dashboard_warns_after_a_breaking_alias_move(users, model):
    _published(model, CONTRACT)
    _published(model, {"inputs": [FEATURES], "outputs": [SCORE]})
    services.alias_set(actor=None, model=model, name="production", version_number=1)
    client = Client()
    client.force_login(users["publisher"])
    response = client.post(reverse("dashboard:alias-set", kwargs={"model_id": model.pk}),
                           {"alias": "production", "version": 2}, follow=True)
    page = response.content.decode()
    assert 'class="message warning"' in page
    assert "Breaking for callers of production: Signature &#x27;tokenize&#x27; was removed" in page
