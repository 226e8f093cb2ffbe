"""Offline mode (REGISTRY_OFFLINE=1, offline=True, regctl --offline): files of a frozen manifest
already verified in the cache are served after hashing them again; anything else fails with a
clear error, and the registry is never contacted: not even a connection is tried (every test
points the client at a TCP proxy that records each request it sees)."""

from __future__ import annotations

import json
import os
import socket

import pytest

import registry_client
from registry_client import Manifest, NotCached, OfflineError, Registry, TamperError
from tests.client.conftest import MODEL_BYTES, run_cli


@pytest.fixture
def frozen(published, tmp_path, connect):
    """A frozen manifest on disk whose required file (pkl) was fetched once online; the optional
    one (other) never was."""
    _, _, version = published
    path = tmp_path / "manifest.json"
    version.freeze(path)
    Manifest.load(path, connect("readonly"))
    return path


@pytest.fixture
def offline_env(monkeypatch, proxy_factory):
    """REGISTRY_OFFLINE=1, no token, and a URL whose every connection is seen; returns the proxy."""
    proxy = proxy_factory()
    monkeypatch.setenv("REGISTRY_OFFLINE", "1")
    monkeypatch.setenv("REGISTRY_URL", proxy.url)
    monkeypatch.delenv("REGISTRY_TOKEN", raising=False)
    opened = []
    real = socket.create_connection

    def watch(address, *args, **kwargs):
        opened.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", watch)
    proxy.opened = opened
    return proxy


def _no_contact(proxy) -> None:
    assert proxy.request_heads == [] and proxy.opened == []


def test_a_cached_frozen_manifest_loads_with_no_token_and_no_server(frozen, offline_env):
    manifest = Manifest.load(frozen)  # no registry given, none configured but the offline flag
    assert manifest.registry.offline
    assert manifest.get_model("pkl").read_bytes() == MODEL_BYTES
    _no_contact(offline_env)


def test_the_argument_turns_it_on_too(frozen, monkeypatch, proxy_factory):
    proxy = proxy_factory()
    monkeypatch.delenv("REGISTRY_OFFLINE", raising=False)
    manifest = Manifest.load(frozen, Registry(proxy.url, offline=True))
    assert manifest.get_model("pkl").read_bytes() == MODEL_BYTES
    assert Manifest.load(frozen, offline=True).paths["pkl"].read_bytes() == MODEL_BYTES
    assert proxy.request_heads == []


def test_a_file_not_cached_is_not_cached_error_naming_it(frozen, offline_env):
    manifest = Manifest.load(frozen)
    with pytest.raises(NotCached, match=r"the other file \(notes.bin, SHA-256 [0-9a-f]{64}\) of churn v1 is not in "
                                        r"the cache") as caught:
        manifest.get_model("other")
    assert caught.value.file == "other" and isinstance(caught.value, OfflineError)
    _no_contact(offline_env)


def test_a_cached_copy_changed_behind_the_clients_back_is_hashed_again_and_refused(frozen, offline_env):
    cached = Manifest.load(frozen).paths["pkl"]
    stat = cached.stat()
    cached.write_bytes(b"X" * len(MODEL_BYTES))  # same size, same modification time: only a hash tells
    os.utime(cached, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.warns(RuntimeWarning, match="discarded"), pytest.raises(NotCached):
        Manifest.load(frozen)
    _no_contact(offline_env)


def test_an_edited_manifest_still_raises_without_reporting(frozen, offline_env, tmp_path):
    data = json.loads(frozen.read_text())
    data["required_files"][0]["fail_on_tamper"] = False
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    with pytest.warns(RuntimeWarning, match="not reported"), pytest.raises(TamperError):
        Manifest.load(edited)
    _no_contact(offline_env)


def test_what_needs_the_registry_is_an_offline_error(frozen, offline_env):
    with pytest.raises(OfflineError, match="Offline mode .* the registry is not contacted"):
        registry_client.load("acme/churn@production")
    with pytest.raises(OfflineError):
        Registry().context("acme")
    _no_contact(offline_env)


def test_regctl_pulls_offline_and_exits_2_for_a_file_not_cached(frozen, tmp_path, proxy_factory):
    proxy = proxy_factory()
    env = {"REGISTRY_URL": proxy.url, "REGISTRY_CACHE_DIR": os.environ["REGISTRY_CACHE_DIR"],
           "REGISTRY_CONFIG": str(tmp_path / "absent.toml")}
    pulled = run_cli("--offline", "pull", "--manifest", str(frozen), "-o", "out", env=env, cwd=tmp_path)
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "out" / "model.pkl").read_bytes() == MODEL_BYTES
    missing = run_cli("pull", "--manifest", str(frozen), "--all", "-o", "all", cwd=tmp_path,
                      env={**env, "REGISTRY_OFFLINE": "1"})
    assert missing.returncode == 2, missing.stderr
    assert "Offline mode: the other file (notes.bin" in missing.stderr
    needs_registry = run_cli("--offline", "ls", env=env, cwd=tmp_path)
    assert needs_registry.returncode == 1 and "Offline mode" in needs_registry.stderr
    assert proxy.request_heads == []
