"""A real OpenID Connect provider for the single sign-on tests (tests/oidc_provider/, on
django-oauth-toolkit), started in a process of its own on a free loopback port, with an RSA
signing key it generates at start; and helpers to sign in through it over HTTP.

Its users and their groups (the `groups` claim) are changed while it runs with
`provider.user(username, password, *groups)`, in another process over its SQLite database.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
CLIENT_ID = "model-registry"
CLIENT_SECRET = "registry-client-secret-for-tests"
PROVIDER_NAME = "Example Corp"


@dataclass
class Provider:
    url: str
    database: str

    @property
    def issuer(self) -> str:
        return f"{self.url}/o"

    def user(self, username: str, password: str, *groups: str) -> None:
        """Create or update a user at the provider with exactly these groups."""
        subprocess.run([sys.executable, "-m", "tests.oidc_provider.manage_users", username, password, *groups],
                       cwd=REPO_ROOT, env={**os.environ, "OIDC_PROVIDER_DB": self.database}, check=True,
                       capture_output=True, timeout=60)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def oidc_provider(live_server, tmp_path_factory):
    """The provider, registered to send browsers back to the live server's callback."""
    folder = tmp_path_factory.mktemp("oidc-provider")
    port = _free_port()
    database = str(folder / "provider.sqlite3")
    log = open(folder / "provider.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.oidc_provider.serve", str(port), CLIENT_ID, CLIENT_SECRET,
         f"{live_server.url}/sso/callback/"],
        cwd=REPO_ROOT, env={**os.environ, "OIDC_PROVIDER_DB": database}, stdout=log, stderr=subprocess.STDOUT,
    )
    provider = Provider(url=f"http://127.0.0.1:{port}", database=database)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{provider.issuer}/.well-known/openid-configuration", timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log.close()
                pytest.fail(f"the OIDC provider did not start: {(folder / 'provider.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield provider
    process.terminate()
    process.wait(timeout=10)
    log.close()


@pytest.fixture
def sso(settings, oidc_provider):
    """The registry configured for the provider, as its environment variables would (settings.py)."""
    from registry import sso as registry_sso

    settings.REGISTRY_OIDC_ISSUER = oidc_provider.issuer
    settings.REGISTRY_OIDC_CLIENT_ID = CLIENT_ID
    settings.REGISTRY_OIDC_CLIENT_SECRET = CLIENT_SECRET
    settings.REGISTRY_OIDC_SCOPES = "openid email profile groups"
    settings.REGISTRY_OIDC_PROVIDER_NAME = PROVIDER_NAME
    registry_sso._discovered.clear()
    yield oidc_provider
    registry_sso._discovered.clear()


def _form_field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    return unescape(match.group(1)) if match else ""


def provider_sign_in(session: requests.Session, response: requests.Response, username: str,
                     password: str) -> requests.Response:
    """Fill the provider's sign-in form that `response` shows and follow every redirect."""
    assert "Example Corp identity provider" in response.text, response.text[:500]
    return session.post(response.url, data={
        "username": username, "password": password, "next": _form_field(response.text, "next"),
        "csrfmiddlewaretoken": _form_field(response.text, "csrfmiddlewaretoken"),
    }, timeout=30)


def sign_in(registry_url: str, username: str, password: str, *, session: requests.Session | None = None,
            next_path: str = "") -> tuple[requests.Session, requests.Response]:
    """The whole journey over HTTP: "Sign in with …" on the registry, the provider's form, and
    back to the registry (redirects followed). Returns the session and the last answer."""
    session = session or requests.Session()
    start = session.get(f"{registry_url}/sso/start/" + (f"?next={next_path}" if next_path else ""), timeout=30)
    if "Example Corp identity provider" not in start.text:
        return session, start  # signed in at the provider already: straight back to the registry
    return session, provider_sign_in(session, start, username, password)
