"""`make run` on a fresh machine: the default (SQLite in the data dir) works from nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.subprocess
def test_a_fresh_data_dir_is_created_and_migrated_with_the_demo(tmp_path):
    data_dir = tmp_path / "not-yet-created" / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(REGISTRY_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="registry.settings")
    for command in (["migrate", "--noinput"], ["demo_setup"]):
        result = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    assert (data_dir / "registry.sqlite3").exists()
    assert "sign in at http://127.0.0.1:8000/ as 'demo' / 'demo'" in result.stdout
