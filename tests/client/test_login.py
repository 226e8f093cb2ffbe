"""`regctl login` and `registry_client.login()`: the token is asked for without echo (or read
from stdin), checked against the registry before anything is written, and saved with the URL
in the config file, created with mode 600 and replaced atomically."""

from __future__ import annotations

import os
import pty
import select
import stat
import sys
import time
import tomllib

import pytest

import registry_client
from registry_client import NotFound, Registry, Unauthorized
from tests.client.conftest import run_cli


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    path = tmp_path / "home" / ".config" / "registry-client" / "config.toml"
    monkeypatch.setenv("REGISTRY_CONFIG", str(path))
    return path


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_login_with_the_token_on_stdin_writes_a_private_config_that_works(server_url, tokens, config_file, tmp_path):
    env = {"REGISTRY_CONFIG": str(config_file)}
    result = run_cli("login", "--url", server_url, "--token-stdin", "--context", "acme", env=env, cwd=tmp_path,
                     input=tokens["viewer"] + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(config_file)
    assert f"logged in to {server_url} (contexts: acme)" in result.stderr
    assert tokens["viewer"] not in result.stdout + result.stderr
    assert _mode(config_file) == 0o600
    assert tomllib.loads(config_file.read_text()) == {"url": server_url, "token": tokens["viewer"], "context": "acme"}
    assert [p.name for p in config_file.parent.iterdir()] == ["config.toml"]  # no temporary file left

    listed = run_cli("ls", env=env, cwd=tmp_path)  # configured by the file alone
    assert listed.returncode == 0 and "acme" in listed.stdout


def test_a_token_the_registry_refuses_is_not_saved(server_url, tokens, config_file, tmp_path):
    config_file.parent.mkdir(parents=True)
    config_file.write_text(f'url = "{server_url}"\ntoken = "{tokens["editor"]}"\n')
    config_file.chmod(0o600)
    before = config_file.read_text()
    env = {"REGISTRY_CONFIG": str(config_file)}
    refused = run_cli("login", "--token-stdin", env=env, cwd=tmp_path, input="not-a-real-token-1234567\n")
    assert refused.returncode == 2, refused.stderr
    assert "401" in refused.stderr and "not-a-real-token-1234567" not in refused.stderr
    assert config_file.read_text() == before
    hidden = run_cli("login", "--token-stdin", "--context", "other", env=env, cwd=tmp_path,
                     input=tokens["viewer"] + "\n")
    assert hidden.returncode == 2 and config_file.read_text() == before  # a context it cannot see
    no_terminal = run_cli("login", env=env, cwd=tmp_path, input="")
    assert no_terminal.returncode == 1 and "--token-stdin" in no_terminal.stderr


def test_the_prompt_does_not_echo_the_token(server_url, tokens, config_file, tmp_path):
    """regctl login on a real terminal (a pseudo-terminal): getpass turns echo off."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    env.update({"REGISTRY_CONFIG": str(config_file), "REGISTRY_URL": server_url})
    pid, fd = pty.fork()
    if pid == 0:  # the child, on the terminal
        os.execve(sys.executable, [sys.executable, "-m", "registry_client", "login"], env)
    seen = b""

    def read_until(marker: bytes | None, timeout: float = 60.0) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (marker is None or marker not in seen):
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # the child is gone
                    return
                if not chunk:
                    return
                seen += chunk

    try:
        read_until(b"(input hidden): ")
        os.write(fd, tokens["publisher"].encode() + b"\n")
        read_until(None, timeout=60)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert f"API token for {server_url}".encode() in seen
    assert tokens["publisher"].encode() not in seen  # typed, never shown
    assert tomllib.loads(config_file.read_text())["token"] == tokens["publisher"]


def test_login_from_python_keeps_other_keys_and_is_600_whatever_the_umask(server_url, tokens, config_file):
    config_file.parent.mkdir(parents=True)
    config_file.write_text('context = "acme"\nurl = "http://old.example"\n')
    previous = os.umask(0)
    try:
        result = registry_client.login(server_url, tokens["editor"])
    finally:
        os.umask(previous)
    assert result.path == config_file and result.contexts == ["acme"]
    assert _mode(config_file) == 0o600
    assert tomllib.loads(config_file.read_text()) == {"context": "acme", "url": server_url, "token": tokens["editor"]}
    with Registry() as registry:  # configured by the file
        assert registry.context("acme").slug == "acme"
    with pytest.raises(Unauthorized):
        registry_client.login(server_url, "wrong-token-value-12345678")
    with pytest.raises(NotFound):
        registry_client.login(server_url, tokens["editor"], context="other")
    assert tomllib.loads(config_file.read_text())["token"] == tokens["editor"]
