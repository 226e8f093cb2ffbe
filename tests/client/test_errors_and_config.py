"""Typed errors carrying the server's message; configuration; the token kept secret;
importing the client without Django."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest

from registry_client import (
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    NotFound,
    Registry,
    RegistryError,
    TransportError,
    Unauthorized,
)
from registry_client.config import load_settings


def test_not_found_for_what_you_cannot_see(connect):
    outsider = connect("outsider")
    with pytest.raises(NotFound) as caught:
        outsider.context("acme")
    assert caught.value.status == 404 and caught.value.message  # the server's words
    reg = connect("viewer")
    with pytest.raises(NotFound, match="No model named 'ghost'"):
        reg.context("acme").model("ghost")
    with pytest.raises(NotFound):
        reg.model("00000000-0000-0000-0000-000000000000")


def test_forbidden_carries_the_servers_message(connect):
    viewer = connect("viewer")
    with pytest.raises(Forbidden) as caught:
        viewer.context("acme").create_model("not-mine")
    assert caught.value.status == 403
    assert caught.value.code == "permission_denied"
    assert "permission" in caught.value.message.lower() or "not allowed" in caught.value.message.lower()


def test_conflict_and_bad_request_name_the_field(connect):
    acme = connect("editor").context("acme")
    acme.create_model("dup")
    with pytest.raises(Conflict) as caught:
        acme.create_model("DUP ")  # same name after trimming and case folding
    assert (caught.value.status, caught.value.code, caught.value.field) == (409, "name_taken", "name")
    with pytest.raises(BadRequest) as bad:
        acme.create_model("tagged", tags=["x" * 40])
    assert bad.value.status == 400 and bad.value.field == "tags"
    assert "too long" in bad.value.message
    assert "too long" in str(bad.value) and "POST" in str(bad.value)


def test_wrong_token_is_unauthorized_and_never_shown(server_url):
    secret = "wrong-token-0123456789abcdef"
    reg = Registry(server_url, token=secret, progress=False)
    with pytest.raises(Unauthorized) as caught:
        reg.contexts()
    assert caught.value.status == 401
    assert secret not in str(caught.value) and secret not in repr(caught.value)
    assert secret not in repr(reg) and secret not in repr(reg._transport)
    reg.close()


def test_unreachable_registry_is_a_transport_error_after_retries():
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reg = Registry(f"http://127.0.0.1:{port}", token="t" * 20, retries=2, retry_backoff=0.01)
    with pytest.raises(TransportError, match="Cannot reach the registry") as caught:
        reg.contexts()
    assert isinstance(caught.value, RegistryError) and caught.value.status is None


def test_settings_from_arguments_environment_then_config_file(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('url = "https://from-file.example/"\ntoken = "file-token-123456"\ncontext = "from-file"\n')
    config.chmod(0o600)
    monkeypatch.setenv("REGISTRY_CONFIG", str(config))
    settings = load_settings()
    assert (settings.url, settings.token, settings.context) == ("https://from-file.example", "file-token-123456",
                                                                "from-file")
    assert "file-token" not in repr(settings)
    monkeypatch.setenv("REGISTRY_URL", "https://from-env.example")
    monkeypatch.setenv("REGISTRY_TOKEN", "env-token-123456")
    monkeypatch.setenv("REGISTRY_CONTEXT", "from-env")
    assert load_settings().url == "https://from-env.example" and load_settings().token == "env-token-123456"
    assert load_settings().context == "from-env"
    assert load_settings("https://arg.example", "arg-token").token == "arg-token"
    # The default context of models:/ URIs.
    with Registry() as configured, Registry(default_context="from-argument") as given:
        assert (configured.default_context, given.default_context) == ("from-env", "from-argument")


def test_missing_or_broken_configuration_is_a_config_error(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="No registry URL"):
        Registry()
    with pytest.raises(ConfigError, match="No token"):
        Registry("https://registry.example")
    broken = tmp_path / "broken.toml"
    broken.write_text('token = "secret-value-1234\n')  # unterminated string
    monkeypatch.setenv("REGISTRY_CONFIG", str(broken))
    with pytest.raises(ConfigError) as caught:
        Registry("https://registry.example")
    assert "secret-value" not in str(caught.value)


def test_world_readable_config_with_a_token_warns(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('url = "https://r.example"\ntoken = "tok-123456789"\n')
    config.chmod(0o644)
    monkeypatch.setenv("REGISTRY_CONFIG", str(config))
    with pytest.warns(UserWarning, match="chmod 600"):
        load_settings()


@pytest.mark.subprocess
def test_the_client_imports_without_django():
    code = textwrap.dedent("""
        import sys

        class NoDjango:
            def find_spec(self, name, path=None, target=None):
                if name == "django" or name.startswith("django."):
                    raise ImportError("django must not be imported by the client")
                return None

        sys.meta_path.insert(0, NoDjango())
        import registry_client
        import registry_client.cli, registry_client.manifest, registry_client.signature, registry_client.transfer
        from registry_client import Registry, Manifest, infer_signature
        assert not any(m == "django" or m.startswith("django.") for m in sys.modules), "django imported"
        assert "numpy" not in sys.modules and "pandas" not in sys.modules
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd="/")  # not the repository: nothing importable by accident
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
