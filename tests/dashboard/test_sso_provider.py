"""Single sign-on against a real OpenID Connect provider (tests/oidc_provider/, run in its own
process by tests/oidc.py): the whole journey over HTTP, the role rules at every sign-in, and the
ways it can fail. No part of the protocol is mocked: the registry discovers the provider, sends
the browser there, trades the code for tokens at its token endpoint, checks the ID token against
its JWKS and reads its user info."""

from __future__ import annotations

import pytest
import requests
from django.contrib.auth import get_user_model

from registry import services
from registry.models import AuditEvent, Membership, MembershipSource, SsoIdentity
from tests.factories import UserFactory
from tests.oidc import CLIENT_ID, PROVIDER_NAME, _form_field, oidc_provider, sign_in, sso  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.subprocess]

User = get_user_model()


def roles_of(username: str) -> dict[str, tuple[str, str]]:
    return {m.context.slug: (m.role, m.source) for m in
            Membership.objects.filter(user__username=username).select_related("context")}


@pytest.fixture
def fraud(db):
    return services.context_create(actor=None, slug="fraud", name="Fraud")


def test_first_sign_in_creates_the_account_and_applies_the_rules(sso, live_server, fraud):
    services.sso_rule_create(actor=None, context=fraud, claim_value="ml-platform", role="publisher")
    sso.user("alice", "alice-pw", "ml-platform", "everyone")

    session, page = sign_in(live_server.url, "alice", "alice-pw", next_path="/c/fraud/")

    assert page.status_code == 200
    assert page.url == f"{live_server.url}/c/fraud/", page.url  # back where the sign-in started
    assert "Fraud" in page.text
    user = User.objects.get(username="alice")
    assert user.email == "alice@example.com" and not user.has_usable_password()
    identity = SsoIdentity.objects.get(user=user)
    assert identity.issuer == sso.issuer and identity.claim_values == ["everyone", "ml-platform"]
    assert roles_of("alice") == {"fraud": ("publisher", MembershipSource.SSO)}
    grant = AuditEvent.objects.get(action="member.add", context=fraud)
    assert "single sign-on" in grant.summary and grant.actor_name == "alice"
    # The session works for the API too (a browser session), with the role the rule gave.
    api = session.get(f"{live_server.url}/api/v1/contexts/fraud/", timeout=30)
    assert api.status_code == 200 and api.json()["role"] == "publisher"


def test_leaving_the_group_at_the_provider_removes_the_role_at_the_next_sign_in(sso, live_server, fraud):
    services.sso_rule_create(actor=None, context=fraud, claim_value="ml-platform", role="publisher")
    other = services.context_create(actor=None, slug="risk", name="Risk")
    services.sso_rule_create(actor=None, context=other, claim_value="risk-team", role="viewer")
    sso.user("bob", "bob-pw", "ml-platform", "risk-team")
    sign_in(live_server.url, "bob", "bob-pw")
    assert roles_of("bob") == {"fraud": ("publisher", "sso"), "risk": ("viewer", "sso")}
    # A role granted by hand is the admins' and stays whatever the provider says.
    services.membership_set(actor=None, context=other, role="editor", username="bob")

    sso.user("bob", "bob-pw", "risk-team")  # removed from ml-platform at the provider
    session, page = sign_in(live_server.url, "bob", "bob-pw")

    assert page.status_code == 200
    assert Membership.objects.filter(user__username="bob", context=fraud).count() == 0
    assert set(Membership.objects.filter(user__username="bob", context=other).values_list("role", "source")) == {
        ("viewer", "sso"), ("editor", "manual")}
    assert session.get(f"{live_server.url}/api/v1/contexts/fraud/", timeout=30).status_code == 404
    removal = AuditEvent.objects.get(action="member.remove", context=fraud)
    assert "no rule matches" in removal.summary
    # The same subject is the same account: no second user was made.
    assert User.objects.filter(username__startswith="bob").count() == 1


def test_users_are_matched_by_subject_and_a_taken_username_gets_another(sso, live_server):
    UserFactory(username="carol", email="carol@example.com")  # a local account, not the provider's carol
    sso.user("carol", "carol-pw")

    sign_in(live_server.url, "carol", "carol-pw")

    identity = SsoIdentity.objects.get(issuer=sso.issuer)
    assert identity.user.username == "carol-2"  # the local account is never taken over, even by e-mail
    assert not SsoIdentity.objects.filter(user__username="carol").exists()
    # Signing in again is the same account, found by its subject.
    sign_in(live_server.url, "carol", "carol-pw")
    assert SsoIdentity.objects.get().user.username == "carol-2"
    assert User.objects.filter(username__startswith="carol").count() == 2


def test_password_sign_in_turned_off(sso, live_server, settings):
    settings.REGISTRY_PASSWORD_SIGNIN = False
    UserFactory(username="dave", password="dave-local-pw")
    user = User.objects.get(username="dave")
    token = services.token_create(actor=None, user=user)[1]

    session = requests.Session()
    page = session.get(f"{live_server.url}/login/", timeout=30)
    assert f"Sign in with {PROVIDER_NAME}" in page.text
    assert 'name="password"' not in page.text
    refused = session.post(f"{live_server.url}/login/", data={
        "username": "dave", "password": "dave-local-pw", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{live_server.url}/login/"}, timeout=30)
    assert refused.status_code == 403 and "turned off" in refused.text
    assert "sessionid" not in session.cookies
    # The admin's sign-in is the registry's; API tokens keep working.
    admin = session.get(f"{live_server.url}/admin/login/?next=/admin/", timeout=30)
    assert admin.url.startswith(f"{live_server.url}/login/")
    assert requests.get(f"{live_server.url}/api/v1/contexts/", headers={"Authorization": f"Bearer {token}"},
                        timeout=30).status_code == 200
    # Single sign-on still signs people in.
    sso.user("dave-sso", "pw")
    _, home = sign_in(live_server.url, "dave-sso", "pw")
    assert home.status_code == 200 and home.url.startswith(live_server.url) and "/login/" not in home.url


# --- failures: a clear page, never a 500 -------------------------------------------------------

def test_a_provider_that_does_not_answer(settings, live_server, transactional_db):
    from registry import sso as registry_sso
    from tests.oidc import _free_port

    settings.REGISTRY_OIDC_ISSUER = f"http://127.0.0.1:{_free_port()}/o"  # nothing listens there
    settings.REGISTRY_OIDC_CLIENT_ID, settings.REGISTRY_OIDC_CLIENT_SECRET = CLIENT_ID, "x"
    settings.REGISTRY_OIDC_TIMEOUT_SECONDS = 2
    registry_sso._discovered.clear()

    page = requests.get(f"{live_server.url}/sso/start/", timeout=30)

    assert page.status_code == 502
    assert "is not answering" in page.text and "Back to sign in" in page.text


def test_a_callback_this_browser_did_not_start_and_a_replayed_one(sso, live_server):
    sso.user("erin", "erin-pw")
    session = requests.Session()
    start = session.get(f"{live_server.url}/sso/start/", allow_redirects=False, timeout=30)
    at_provider = session.get(start.headers["Location"], timeout=30)
    signed_in = session.post(at_provider.url, allow_redirects=False, timeout=30, data={
        "username": "erin", "password": "erin-pw", "next": _form_field(at_provider.text, "next"),
        "csrfmiddlewaretoken": _form_field(at_provider.text, "csrfmiddlewaretoken")})
    authorize = session.get(signed_in.headers["Location"] if signed_in.headers["Location"].startswith("http")
                            else sso.url + signed_in.headers["Location"], allow_redirects=False, timeout=30)
    callback = authorize.headers["Location"]
    assert callback.startswith(f"{live_server.url}/sso/callback/?") and "code=" in callback

    # Another browser (no registry session) arrives with this sign-in's answer: refused.
    stranger = requests.get(callback, allow_redirects=False, timeout=30)
    assert stranger.status_code == 400 and "not started in this browser" in stranger.text
    # The browser that started it is signed in; replaying the answer is refused, the state is spent.
    assert session.get(callback, allow_redirects=False, timeout=30).status_code == 302
    replay = session.get(callback, allow_redirects=False, timeout=30)
    assert replay.status_code == 400 and "not started in this browser" in replay.text
    assert User.objects.filter(username="erin").count() == 1
    # The callback opened by hand, without an answer.
    bare = session.get(f"{live_server.url}/sso/callback/", timeout=30)
    assert bare.status_code == 400 and "without a sign-in answer" in bare.text


def test_the_provider_refuses_the_code(sso, live_server, settings):
    settings.REGISTRY_OIDC_CLIENT_SECRET = "not-the-secret"
    sso.user("frank", "frank-pw")

    _, page = sign_in(live_server.url, "frank", "frank-pw")

    assert page.status_code == 400
    assert f"{PROVIDER_NAME} refused to complete the sign-in" in page.text
    assert not User.objects.filter(username="frank").exists()


def test_a_token_that_fails_verification_signs_nobody_in(sso, live_server, settings):
    settings.REGISTRY_OIDC_SIGN_ALGO = "RS512"  # the provider signs with RS256: the check refuses it
    sso.user("grace", "grace-pw")

    _, page = sign_in(live_server.url, "grace", "grace-pw")

    assert page.status_code == 400
    assert "could not be verified" in page.text
    assert not User.objects.filter(username="grace").exists()


def test_missing_claims(sso, live_server, fraud, settings):
    # No `sub`: nobody to match, refused.
    sso.user("heidi", "heidi-pw", "provider-omits-sub")
    _, page = sign_in(live_server.url, "heidi", "heidi-pw")
    assert page.status_code == 400 and "no `sub` claim" in page.text, page.text[-800:]
    assert not User.objects.filter(username="heidi").exists()

    # No groups claim (its scope not asked for): every SSO role goes, fail closed.
    services.sso_rule_create(actor=None, context=fraud, claim_value="ml-platform", role="editor")
    sso.user("ivan", "ivan-pw", "ml-platform")
    sign_in(live_server.url, "ivan", "ivan-pw")
    assert roles_of("ivan") == {"fraud": ("editor", "sso")}
    settings.REGISTRY_OIDC_SCOPES = "openid email profile"
    _, page = sign_in(live_server.url, "ivan", "ivan-pw")
    assert page.status_code == 200
    assert roles_of("ivan") == {}


def test_the_provider_says_no(sso, live_server):
    session = requests.Session()
    start = session.get(f"{live_server.url}/sso/start/", allow_redirects=False, timeout=30)
    state = dict(pair.split("=", 1) for pair in start.headers["Location"].split("?", 1)[1].split("&"))["state"]

    page = session.get(f"{live_server.url}/sso/callback/?error=access_denied&error_description=Not+allowed&state={state}",
                       timeout=30)

    assert page.status_code == 400 and "did not sign you in: Not allowed" in page.text
    # The state is spent: the same answer again is not a sign-in this browser started.
    again = session.get(f"{live_server.url}/sso/callback/?code=abc&state={state}", timeout=30)
    assert again.status_code == 400 and "not started in this browser" in again.text
