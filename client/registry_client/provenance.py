"""Provenance captured, not typed: where the code that made a model came from, read from the
git checkout the client runs in and put in a new version's `metadata.provenance`:

    {"repository": "https://git.example.com/team/churn.git",   # origin, credentials stripped
     "commit": "9fceb02...", "branch": "main",                  # branch: absent when detached
     "dirty": false,                                            # tracked files changed since the commit
     "script": "training/train.py"}                             # the running script, from the checkout's root

`Model.create_version(provenance=False)`, `regctl push --no-provenance` or
REGISTRY_PROVENANCE=0 turn it off; keys given in `metadata={"provenance": {...}}` win over the
captured ones. Capturing never fails an upload: without git, outside a checkout, or when git
errs or hangs, nothing is captured.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

logger = logging.getLogger("registry_client")

GIT_TIMEOUT = 5.0


def enabled(provenance: bool | None = None) -> bool:
    """`provenance` when given, else not turned off by REGISTRY_PROVENANCE=0."""
    if provenance is not None:
        return provenance
    return os.environ.get("REGISTRY_PROVENANCE", "").strip().lower() not in ("0", "false", "no", "off")


def strip_credentials(url: str) -> str:
    """A remote URL without what would let others in: user and password of
    `https://user:token@host/...`, and any query or fragment. An scp-like `git@host:path` keeps
    its user (an account name, not a secret) unless it carries a password."""
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    user, at, rest = url.partition("@")
    if at and ":" in user:
        return rest
    return url


def _script() -> Path | None:
    """The running script or notebook, when there is one (not regctl, not an interactive shell)."""
    notebook = os.environ.get("JPY_SESSION_NAME")  # Jupyter names the notebook's path here
    if notebook and notebook.endswith(".ipynb"):
        return Path(notebook)
    main = sys.modules.get("__main__")
    candidate = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv and sys.argv[0] else None)
    if not candidate or not candidate.endswith(".py"):
        return None
    path = Path(candidate).resolve()
    # python -m registry_client (regctl itself), python -m pytest: an installed tool, not the work
    if path.parent == Path(__file__).resolve().parent or {"site-packages", "dist-packages"} & set(path.parts):
        return None
    return path if path.is_file() else None


def capture(cwd: str | os.PathLike | None = None) -> dict:
    """What git says about the checkout the running script (else `cwd`, else the working
    directory) is in; {} when there is none or git cannot tell."""
    try:
        return _capture(cwd)
    except Exception as exc:  # provenance is a courtesy: it never stops the work
        logger.info("provenance not captured: %s", exc)
        return {}


def _capture(cwd) -> dict:
    script = _script()
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    places = [Path(cwd)] if cwd is not None else [*([script.parent] if script else []), Path.cwd()]
    where = places[0]

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=where, env=env, capture_output=True, text=True,
                                  timeout=GIT_TIMEOUT, check=False, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):  # no git, or it hung
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = None
    for where in places:  # the script's checkout, else the working directory's
        top = git("rev-parse", "--show-toplevel")
        if top:
            break
    if not top:
        return {}
    found: dict = {}
    remote = git("remote", "get-url", "origin")
    if remote is None:
        names = (git("remote") or "").split()
        remote = git("remote", "get-url", names[0]) if names else None
    if remote:
        found["repository"] = strip_credentials(remote)
    commit = git("rev-parse", "--verify", "-q", "HEAD")
    if commit:
        found["commit"] = commit
    branch = git("symbolic-ref", "--short", "-q", "HEAD")
    if branch:
        found["branch"] = branch
    status = git("status", "--porcelain", "--untracked-files=no")
    if status is not None:
        found["dirty"] = status != ""
    if script is not None:
        try:
            found["script"] = script.resolve().relative_to(Path(top).resolve()).as_posix()
        except ValueError:  # a script outside the checkout
            found["script"] = str(script)
    return found
