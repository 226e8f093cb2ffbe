import os
import time
from datetime import timedelta
from io import BytesIO

import pytest
from django.core.management import call_command

from registry import services, storage
from registry.services.maintenance import storage_orphans_delete

from tests.conftest import stored_files

pytestmark = pytest.mark.django_db


def _age(folder, key, seconds):
    path = os.path.join(folder, key)
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_sweep_removes_only_old_unreferenced_files(context, storage_dir):
    model = services.model_create(actor=None, context=context, name="m")
    version = services.version_create(actor=None, model=model)
    fmt = services.format_upload(actor=None, version=version, kind="pkl", stream=BytesIO(b"kept"), content_length=4)
    orphan_old, _ = storage.save_stream(BytesIO(b"left by a killed upload"), max_bytes=100)
    orphan_new, _ = storage.save_stream(BytesIO(b"upload still streaming"), max_bytes=100)
    _age(storage_dir, orphan_old, 2 * 86400)
    _age(storage_dir, fmt.storage_key, 2 * 86400)

    assert storage_orphans_delete(older_than=timedelta(days=1), dry_run=True) == [orphan_old]
    assert len(stored_files(storage_dir)) == 3

    assert storage_orphans_delete(older_than=timedelta(days=1)) == [orphan_old]
    assert stored_files(storage_dir) == sorted([fmt.storage_key, orphan_new])


def test_sweep_command_prints_deleted_keys(storage_dir, capsys):
    orphan, _ = storage.save_stream(BytesIO(b"x"), max_bytes=10)
    _age(storage_dir, orphan, 7200)
    call_command("storage_sweep", "--older-than-hours", "1")
    assert capsys.readouterr().out.split() == [orphan]
    assert stored_files(storage_dir) == []
