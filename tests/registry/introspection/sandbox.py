"""Helpers for introspection tests: a sandbox that proves nothing is written where it should not
be, and builders for hostile zip files. Import the fixture into a test module to use it."""

import io
import json
import os
import pickle
import stat
import struct
import tempfile
import types
import uuid
import zipfile

import pytest

from registry.introspection.report import QUARANTINED, READY, Report

# A pickle that would run os.system if anyone unpickled it. Tests only ever pass it around.
MALICIOUS_PICKLE = b"cos\nsystem\n(S'touch pwned-by-pickle'\ntR."
BENIGN_PICKLE = pickle.dumps({"a": 1}, protocol=4)


def _snapshot(root) -> set[str]:
    found = set()
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories + files:
            found.add(os.path.relpath(os.path.join(directory, name), root))
    return found


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """cwd and the temporary directory are fresh folders; after the test both must be empty,
    nothing new may exist around them, and no sentinel may exist anywhere we looked."""
    work = tmp_path / "cwd" / "deeper"
    work.mkdir(parents=True)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    token = uuid.uuid4().hex
    state = types.SimpleNamespace(root=tmp_path, cwd=work, temp=temp, token=token, sentinels=[])
    before = _snapshot(tmp_path)
    yield state
    assert list(work.iterdir()) == [], "something was written to the working directory"
    assert list(temp.iterdir()) == [], "a temporary file or directory was left behind"
    assert _snapshot(tmp_path) == before, "something was written next to the sandbox"
    for sentinel in state.sentinels:
        assert not os.path.lexists(sentinel), f"{sentinel} was written"
    assert not os.path.exists(os.path.join(tempfile.gettempdir(), "pwned-by-pickle"))


@pytest.fixture
def marker(tmp_path):
    """A file every payload would create; it must never exist."""
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a payload ran"


@pytest.fixture
def nothing_is_unpickled(monkeypatch, marker):
    """pickle's, joblib's and numpy's loaders fail the test: the scanner only reads.

    A test module opts in with `from ...sandbox import marker, nothing_is_unpickled` and an
    autouse fixture that requests it."""
    import joblib
    import numpy

    def refuse(*args, **kwargs):
        raise AssertionError("the scanner must never unpickle or execute anything")

    for name in ("load", "loads", "Unpickler", "_Unpickler", "_load", "_loads"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(joblib, "load", refuse)
    monkeypatch.setattr(numpy, "load", refuse)


def zip_bytes(members: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_with_info(infos: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in infos:
            archive.writestr(info, data)
    return buffer.getvalue()


def zip_with_raw_name(name: str, data: bytes) -> bytes:
    """A zip whose member is literally named `name` (zipfile cleans names like "/etc/x" on write)."""
    raw_name = name.encode()
    placeholder = b"Q" * len(raw_name)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(placeholder.decode(), data)
    return buffer.getvalue().replace(placeholder, raw_name)


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def nested_zip(depth: int, inner: dict[str, bytes]) -> bytes:
    """A zip holding a zip holding ... `depth` zips deep; the innermost holds `inner`."""
    data = zip_bytes(inner)
    for level in range(depth):
        data = zip_bytes({f"level{level}.zip": data})
    return data


RUNTIME_YAML = b"""\
MODEL_ARTIFACT_VERSION: '3.0'
MODEL_DEPLOYMENT:
  INFERENCE_CONDA_ENV:
    INFERENCE_ENV_SLUG: generalml_p311_cpu_v1
    INFERENCE_ENV_TYPE: data_science
    INFERENCE_ENV_PATH: oci://service-conda-packs@namespace/service_pack/cpu/generalml_p311_cpu_v1
    INFERENCE_PYTHON_VERSION: '3.11'
MODEL_PROVENANCE:
  TRAINING_CODE:
    ARTIFACT_DIRECTORY: /home/datascience/model
  GIT_BRANCH: main
"""

SCORE_PY = b"""\
import os
import pickle

model_name = "model.pkl"


def load_model(model_file_name=model_name):
    with open(os.path.join(os.path.dirname(os.path.realpath(__file__)), model_file_name), "rb") as handle:
        return pickle.load(handle)


def predict(data, model=load_model()):
    return {"prediction": model.predict(data).tolist()}
"""

INPUT_SCHEMA = {
    "version": "1.1",
    "schema": [
        {"name": "age", "dtype": "int64", "feature_type": "Integer", "required": True, "order": 0},
        {"name": "income", "dtype": "float64", "feature_type": "Continuous", "required": True, "order": 1},
        {"name": "city", "dtype": "object", "feature_type": "Category", "required": False, "order": 2},
    ],
}
OUTPUT_SCHEMA = {"version": "1.1", "schema": [{"name": "churn", "dtype": "bool", "feature_type": "Boolean"}]}


def artifact_members(**overrides) -> dict[str, bytes]:
    members = {
        "runtime.yaml": RUNTIME_YAML,
        "score.py": SCORE_PY,
        "input_schema.json": json.dumps(INPUT_SCHEMA).encode(),
        "output_schema.json": json.dumps(OUTPUT_SCHEMA).encode(),
        "model.pkl": BENIGN_PICKLE,
    }
    for name, data in overrides.items():
        name = name.replace("__", ".")
        if data is None:
            members.pop(name, None)
        else:
            members[name] = data
    return members


class RecordingScanner:
    """Stands in for the pickle scanner: records calls, quarantines os.system."""

    def __init__(self):
        self.calls = []

    def __call__(self, kind, fileobj):
        data = fileobj.read()
        self.calls.append((kind, data))
        if b"os\nsystem" in data or b"posix\nsystem" in data:
            return Report(QUARANTINED, "imports os.system", details={"globals": ["os.system"]})
        return Report(READY, "only safe globals")


def patch_central_directory(data: bytes, mutate) -> bytes:
    """Apply mutate(record: bytearray) to every central directory record."""
    data = bytearray(data)
    position = data.find(b"PK\x01\x02")
    while position >= 0:
        name_length, extra_length, comment_length = struct.unpack("<HHH", data[position + 28:position + 34])
        record = data[position:position + 46]
        mutate(record)
        data[position:position + 46] = record
        position = data.find(b"PK\x01\x02", position + 46 + name_length + extra_length + comment_length)
    return bytes(data)
