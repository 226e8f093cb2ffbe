"""Progress bars where someone watches: a terminal, or a Jupyter notebook (whose stderr is a
pipe, not a terminal); none in a CI log unless asked; REGISTRY_PROGRESS=0/1 or `progress=`
decide when given."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types

import pytest

from registry_client import transfer
from tests.client.conftest import MODEL_BYTES


def _fake_ipython(config: dict) -> types.ModuleType:
    module = types.ModuleType("IPython")
    shell = types.SimpleNamespace(config=config)
    module.get_ipython = lambda: shell
    return module


@pytest.mark.parametrize("setting, expected", [("1", True), ("true", True), ("on", True), ("0", False),
                                               ("false", False), ("no", False)])
def test_the_environment_decides_when_the_argument_does_not(monkeypatch, setting, expected):
    monkeypatch.setenv("REGISTRY_PROGRESS", setting)
    assert transfer.want_progress(None) is expected
    assert transfer.want_progress(not expected) is (not expected)  # the argument wins


def test_by_default_a_notebook_gets_bars_and_a_log_does_not(monkeypatch):
    monkeypatch.delenv("REGISTRY_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", open(os.devnull, "w"))  # a CI log: not a terminal
    try:
        monkeypatch.delitem(sys.modules, "IPython", raising=False)
        assert transfer.want_progress(None) is False
        monkeypatch.setitem(sys.modules, "IPython", _fake_ipython({"TerminalIPythonApp": {}}))  # ipython in a shell
        assert transfer.want_progress(None) is False
        monkeypatch.setitem(sys.modules, "IPython", _fake_ipython({"IPKernelApp": {}}))  # a Jupyter kernel
        assert transfer.want_progress(None) is True
        monkeypatch.setenv("REGISTRY_PROGRESS", "0")
        assert transfer.want_progress(None) is False
    finally:
        sys.stderr.close()


NOTEBOOK_CELL = textwrap.dedent("""
    import sys, types
    # What a Jupyter kernel looks like to tqdm.auto and to the client: IPython with an IPKernelApp.
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    sys.modules["IPython"] = types.SimpleNamespace(get_ipython=lambda: shell)
    from registry_client import Registry
    version = Registry().context("acme").model("bars", create=True).create_version()
    version.upload("pkl", sys.argv[1])
    print(version.format("pkl").status)
""")


@pytest.mark.parametrize("setting, drawn", [(None, True), ("0", False)])
def test_a_notebook_upload_draws_its_bar_although_stderr_is_not_a_terminal(server_url, tokens, tmp_path,
                                                                           setting, drawn):
    model = tmp_path / "model.pkl"
    model.write_bytes(MODEL_BYTES)
    env = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    env.update({"REGISTRY_URL": server_url, "REGISTRY_TOKEN": tokens["editor"],
                "REGISTRY_CONFIG": str(tmp_path / "absent.toml"), "REGISTRY_CACHE_DIR": str(tmp_path / "cache")})
    if setting is not None:
        env["REGISTRY_PROGRESS"] = setting
    result = subprocess.run([sys.executable, "-c", NOTEBOOK_CELL, str(model)], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ready"]
    assert ("uploading model.pkl" in result.stderr) is drawn, result.stderr
    assert ("hashing model.pkl" in result.stderr) is drawn
