"""metadata.provenance filled from the git checkout the client runs in: the origin without
credentials, commit, branch, dirty flag and script; turned off by an argument, a flag or
REGISTRY_PROVENANCE=0; never a failure without git or outside a checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from registry_client.provenance import strip_credentials
from tests.client.conftest import MODEL_BYTES, run_cli

SECRET = "ghp_s3cretTokenValue123"
REMOTE = f"https://ci-bot:{SECRET}@git.example.com/team/churn.git?ref=x#frag"

TRAIN = textwrap.dedent("""
    import json, sys
    from registry_client import Registry
    model = Registry().context("acme").model("churn", create=True)
    extra = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    version = model.create_version(framework="scikit-learn", **extra)
    print(json.dumps(version.metadata))
""")


def git(cwd, *args) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    repo = tmp_path / "churn-repo"
    (repo / "training").mkdir(parents=True)
    (repo / "training" / "train.py").write_text(TRAIN)
    (repo / "README.md").write_text("churn\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ds@example.com")
    git(repo, "config", "user.name", "DS")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "train")
    git(repo, "remote", "add", "origin", REMOTE)
    return repo


@pytest.fixture
def run_env(server_url, tokens, tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    env.update({"REGISTRY_URL": server_url, "REGISTRY_TOKEN": tokens["editor"],
                "REGISTRY_CONFIG": str(tmp_path / "absent.toml"), "REGISTRY_CACHE_DIR": str(tmp_path / "cache")})
    return env


def run_script(checkout, env, *args, cwd=None):
    import json

    done = subprocess.run([sys.executable, "training/train.py", *args], cwd=cwd or checkout, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_script_in_a_checkout_records_where_it_came_from(checkout, run_env):
    metadata = run_script(checkout, run_env)
    assert metadata["provenance"] == {
        "repository": "https://git.example.com/team/churn.git", "commit": git(checkout, "rev-parse", "HEAD"),
        "branch": "main", "dirty": False, "script": "training/train.py",
    }
    assert SECRET not in str(metadata)

    (checkout / "README.md").write_text("changed, not committed\n")
    git(checkout, "checkout", "-q", "--detach")
    changed = run_script(checkout, run_env)["provenance"]
    assert changed["dirty"] is True and "branch" not in changed  # detached: no branch


def test_given_keys_win_and_it_can_be_turned_off(checkout, run_env):
    import json

    given = run_script(checkout, run_env, json.dumps({"metadata": {"provenance": {"commit": "abc123"}, "team": "x"}}))
    assert given["team"] == "x"
    assert given["provenance"]["commit"] == "abc123" and given["provenance"]["branch"] == "main"
    assert "provenance" not in run_script(checkout, run_env, json.dumps({"provenance": False}))
    assert "provenance" not in run_script(checkout, {**run_env, "REGISTRY_PROVENANCE": "0"})


def test_without_git_or_outside_a_checkout_nothing_is_captured_and_nothing_fails(checkout, run_env, tmp_path):
    outside = tmp_path / "plain"
    outside.mkdir()
    (outside / "training").mkdir()
    (outside / "training" / "train.py").write_text(TRAIN)
    assert "provenance" not in run_script(outside, run_env)
    no_git = {**run_env, "PATH": str(tmp_path / "empty-bin")}  # git cannot be found
    assert "provenance" not in run_script(checkout, no_git, cwd=checkout)


def test_regctl_push_records_the_checkout_it_runs_in(checkout, run_env):
    (checkout / "model.pkl").write_bytes(MODEL_BYTES)
    env = {key: value for key, value in run_env.items() if key.startswith("REGISTRY_")}
    pushed = run_cli("push", "acme", "churn", "model.pkl", "--create-model", "--json", env=env, cwd=checkout)
    assert pushed.returncode == 0, pushed.stderr
    shown = run_cli("ls", "acme", "churn", "--json", env=env, cwd=checkout)
    import json

    provenance = json.loads(shown.stdout)[0]["metadata"]["provenance"]
    assert provenance["repository"] == "https://git.example.com/team/churn.git"
    assert provenance["commit"] == git(checkout, "rev-parse", "HEAD") and "script" not in provenance
    assert provenance["dirty"] is False  # model.pkl is untracked: not a change of the code
    skipped = run_cli("push", "acme", "churn", "model.pkl", "--no-provenance", env=env, cwd=checkout)
    assert skipped.returncode == 0, skipped.stderr
    assert "provenance" not in json.loads(run_cli("ls", "acme", "churn", "--json", env=env, cwd=checkout).stdout)[1][
        "metadata"]


@pytest.mark.parametrize("remote, shown", [
    ("https://user:tok@github.com/o/r.git", "https://github.com/o/r.git"),
    ("https://tok@github.com/o/r.git", "https://github.com/o/r.git"),
    ("https://github.com/o/r.git?private_token=abc", "https://github.com/o/r.git"),
    ("ssh://git@host:2222/o/r.git", "ssh://host:2222/o/r.git"),
    ("git@github.com:o/r.git", "git@github.com:o/r.git"),
    ("deploy:pw@host:o/r.git", "host:o/r.git"),
    ("/srv/git/r.git", "/srv/git/r.git"),
])
def test_credentials_are_stripped_from_remotes(remote, shown):
    assert strip_credentials(remote) == shown
