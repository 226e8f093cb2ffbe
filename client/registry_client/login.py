"""Log in once, then use the registry from any notebook or script without a token in the code:

    import registry_client
    registry_client.login("https://registry.example")   # prompts for the token, without echo

or `regctl login --url https://registry.example`. The token is checked against the registry
first (a wrong, expired or revoked one is refused and nothing is written), then saved with
the URL in the config file (see `registry_client.config`) with mode 600.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path

from registry_client.config import _read_file, config_path, save_settings
from registry_client.errors import ConfigError


@dataclass(frozen=True)
class LoginResult:
    path: Path  # the config file written
    url: str
    contexts: list[str]  # slugs of the contexts the token may see


def login(url: str | None = None, token: str | None = None, *, context: str | None = None,
          verify: bool | str = True) -> LoginResult:
    """Check `token` (prompted for without echo when not given) against the registry at `url`
    (default: $REGISTRY_URL, else the config file's), then save both, and `context` as the
    default context, to the config file. Raises Unauthorized (401) for a token the registry
    refuses, NotFound for a `context` it does not show, and writes nothing then."""
    from registry_client.client import Registry

    path = config_path()
    saved = _read_file(path)
    url = (url or os.environ.get("REGISTRY_URL") or str(saved.get("url") or "")).strip()
    if not url:
        raise ConfigError("Which registry? Pass its URL (regctl login --url https://..., or login(url)).")
    if token is None:
        token = getpass.getpass(f"API token for {url} (input hidden): ")
    token = token.strip()
    if not token:
        raise ConfigError("No token given; create one on the registry's Tokens page.")
    with Registry(url, token, retries=1, progress=False, verify=verify, offline=False) as registry:
        slugs = [item.slug for item in registry.contexts()]
        if context:
            registry.context(context)
    written = save_settings({"url": registry.url, "token": token, "context": context or ""}, path)
    return LoginResult(path=written, url=registry.url, contexts=slugs)
