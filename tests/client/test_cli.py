"""regctl as a user runs it: a subprocess talking to the live server, configured by
REGISTRY_URL / REGISTRY_TOKEN. Exit codes, stdout/stderr, and the token never shown."""

from __future__ import annotations

import hashlib
import json
import socket

import pytest

from registry_client.manifest import lock_checksum
from tests.client.conftest import MODEL_BYTES, run_cli, stored_path

# A pickle that would run os.system when loaded: the registry quarantines it.
DANGEROUS_PICKLE = b"cos\nsystem\n(S'echo owned'\ntR."


@pytest.fixture
def cli(server_url, tokens, tmp_path):
    """cli("push", ..., persona="publisher") -> CompletedProcess; every output is checked for tokens."""
    outputs: list[str] = []

    def run(*argv: str, persona: str = "publisher", env: dict | None = None):
        environment = {"REGISTRY_URL": server_url, "REGISTRY_TOKEN": tokens[persona],
                       "REGISTRY_CACHE_DIR": str(tmp_path / "cli-cache"),
                       "REGISTRY_CONFIG": str(tmp_path / "absent.toml"), **(env or {})}
        result = run_cli(*argv, env=environment, cwd=tmp_path)
        outputs.append(result.stdout + result.stderr)
        return result

    yield run
    for output in outputs:
        for token in tokens.values():
            assert token not in output


def test_push_ls_freeze_pull_round_trip(cli, tmp_path):
    (tmp_path / "model.pkl").write_bytes(MODEL_BYTES)
    (tmp_path / "extra.bin").write_bytes(b"side data\n")
    (tmp_path / "hp.json").write_text('{"C": 0.5, "penalty": "l2"}')

    pushed = cli("push", "acme", "churn", "model.pkl", "other=extra.bin", "--create-model", "--framework",
                 "scikit-learn", "--framework-version", "1.5.2", "--hyperparameters", "@hp.json", "--tag", "nightly",
                 "--optional", "other", "--alias", "production", "--json")
    assert pushed.returncode == 0, pushed.stderr
    result = json.loads(pushed.stdout)
    assert (result["model"], result["version"], result["status"], result["alias"]) == ("churn", 1, "published",
                                                                                      "production")
    assert {f["kind"]: f["sha256"] for f in result["files"]}["pkl"] == hashlib.sha256(MODEL_BYTES).hexdigest()
    assert "created version 1" in pushed.stderr

    contexts = cli("ls")
    assert contexts.returncode == 0 and "acme" in contexts.stdout and "publisher" in contexts.stdout
    models = cli("ls", "acme")
    assert "churn" in models.stdout and "production=v1" in models.stdout
    versions = cli("ls", "acme", "churn")
    assert "published" in versions.stdout and "scikit-learn:1.5.2" in versions.stdout
    files = cli("ls", "acme", "churn", "production")
    assert "model.pkl" in files.stdout and hashlib.sha256(MODEL_BYTES).hexdigest() in files.stdout
    rows = {line.split()[0]: line.split() for line in files.stdout.splitlines()[1:]}
    assert rows["other"][:5] == ["other", "ready", "10", "no", "fail"]  # optional, fails on tamper
    assert rows["pkl"][:5] == ["pkl", "ready", str(len(MODEL_BYTES)), "yes", "fail"]

    frozen = cli("freeze", "acme", "churn", "--alias", "production", "-o", "manifest.json")
    assert frozen.returncode == 0, frozen.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["lock_checksum"] == lock_checksum(manifest)
    on_stdout = cli("freeze", "acme", "churn", "--version", "1")
    assert json.loads(on_stdout.stdout)["version"] == 1

    pulled = cli("pull", "acme", "churn", "--alias", "production", "-o", "out", persona="readonly")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.split() == ["out/model.pkl"]  # required files only
    assert (tmp_path / "out" / "model.pkl").read_bytes() == MODEL_BYTES
    everything = cli("pull", "acme", "churn", "--version", "1", "--all", "-o", "all", persona="viewer")
    assert sorted(everything.stdout.split()) == ["all/extra.bin", "all/model.pkl"]
    by_manifest = cli("pull", "--manifest", "manifest.json", "--kind", "other", "-o", "m", persona="viewer")
    assert by_manifest.returncode == 0, by_manifest.stderr
    assert (tmp_path / "m" / "extra.bin").read_bytes() == b"side data\n"


def test_pull_of_tampered_bytes_exits_4(cli, published, storage_dir, tmp_path):
    _, model, version = published
    stored_path(storage_dir, version, "pkl").write_bytes(b"\x80\x04K\x02.")
    result = cli("pull", "acme", "churn", "--alias", "production", "-o", "out", persona="viewer")
    assert result.returncode == 4, result.stderr
    assert "Tamper detected" in result.stderr and "pkl" in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "out" / "model.pkl").exists()


@pytest.mark.parametrize("status, exit_code, words", [
    ("corrupt", 4, "Tamper detected by the registry: the pkl file of version 1 is corrupt (bytes changed)"),
    ("quarantined", 3, "will not become ready as they are: pkl (quarantined): bytes changed"),
    ("failed", 3, "will not become ready as they are: pkl (failed): bytes changed"),
    ("review", 3, "will not become ready as they are: pkl (review): bytes changed"),
    ("hashing", 3, "still being checked: pkl (hashing) (try again once the workers are done)"),
])
def test_pull_of_a_file_the_registry_flagged(cli, published, tmp_path, status, exit_code, words):
    from registry.models import Format

    _, _, version = published
    Format.objects.filter(version__model_id=version.model_id, kind="pkl").update(
        status=status, status_message="bytes changed")
    result = cli("pull", "acme", "churn", "--alias", "production", "-o", "out", persona="viewer")
    assert result.returncode == exit_code, result.stderr
    assert words in result.stderr
    assert "not yet" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_pull_through_a_manifest_of_a_file_found_corrupt_since_exits_4(cli, published, tmp_path):
    from registry.models import Format

    frozen = cli("freeze", "acme", "churn", "--alias", "production", "-o", "manifest.json", persona="viewer")
    assert frozen.returncode == 0, frozen.stderr
    Format.objects.filter(kind="pkl").update(status="corrupt", status_message="bytes changed")
    result = cli("pull", "--manifest", "manifest.json", "-o", "out", persona="viewer")
    assert result.returncode == 4, result.stderr
    assert "Tamper detected by the registry: the pkl file (model.pkl) of churn v1 is corrupt" in result.stderr
    assert not (tmp_path / "out").exists()


def test_exit_codes_for_access_conflict_usage_and_network(cli, published, tmp_path, server_url, tokens):
    (tmp_path / "model.pkl").write_bytes(MODEL_BYTES)
    (tmp_path / "evil.pkl").write_bytes(DANGEROUS_PICKLE)

    missing = cli("pull", "acme", "nope", "--version", "1", persona="viewer")
    assert missing.returncode == 2 and "No model named 'nope'" in missing.stderr
    hidden = cli("ls", "acme", persona="outsider")
    assert hidden.returncode == 2 and "404" in hidden.stderr
    forbidden = cli("push", "acme", "churn", "model.pkl", persona="viewer")
    assert forbidden.returncode == 2 and "403" in forbidden.stderr
    bad_token = cli("ls", env={"REGISTRY_TOKEN": "not-a-real-token-value-1234"})
    assert bad_token.returncode == 2 and "401" in bad_token.stderr
    assert "not-a-real-token-value-1234" not in bad_token.stdout + bad_token.stderr

    quarantined = cli("push", "acme", "churn", "evil.pkl", "--publish")
    assert quarantined.returncode == 3, quarantined.stderr
    assert "quarantined" in quarantined.stderr and "stays a draft" in quarantined.stderr

    assert cli("push", "acme", "churn").returncode == 1  # no FILE
    unknown_kind = cli("push", "acme", "churn", "notes.txt")
    assert unknown_kind.returncode == 1
    (tmp_path / "notes.txt").write_text("x")
    unknown_kind = cli("push", "acme", "churn", "notes.txt")
    assert unknown_kind.returncode == 1 and "--kind" in unknown_kind.stderr
    bad_json = cli("push", "acme", "churn", "model.pkl", "--hyperparameters", "{nope")
    assert bad_json.returncode == 1 and "not valid JSON" in bad_json.stderr
    no_token = cli("ls", env={"REGISTRY_TOKEN": ""})
    assert no_token.returncode == 1 and "No token" in no_token.stderr

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = cli("--retries", "0", "ls", env={"REGISTRY_URL": f"http://127.0.0.1:{port}"})
    assert unreachable.returncode == 5 and "Cannot reach the registry" in unreachable.stderr


def test_help_documents_the_commands_and_exit_codes(cli):
    result = cli("--help")
    assert result.returncode == 0
    for word in ("push", "pull", "freeze", "ls", "exit codes", "tamper detected", "REGISTRY_TOKEN"):
        assert word in result.stdout
    assert "exit codes" in cli("pull", "--help").stdout
