"""`regctl import-mlflow` / `Registry.import_mlflow` against a real MLflow tracking server.

MLflow runs from its own virtualenv (MLFLOW_PYTHON, else `.mlflow-venv/bin/python` of the
checkout, made by `make mlflow-venv`): `mlflow server` on SQLite with its artifact proxy, once
per module, seeded by tests/client/mlflow_seed.py with models of several flavors, stages,
aliases, params and metric histories. Each test imports into a fresh registry database.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import zipfile
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from registry_client.client import Model, Version
from registry_client.errors import ServerError
from tests.client.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
SEED = Path(__file__).with_name("mlflow_seed.py")


# --- the MLflow server ------------------------------------------------------------------

def mlflow_python() -> str:
    """MLflow's python; missing, the tests fail under CI and are skipped elsewhere."""
    candidates = [os.environ.get("MLFLOW_PYTHON"), str(ROOT / ".mlflow-venv" / "bin" / "python")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate  # one without mlflow fails to start the server, with its error
    reason = "no MLflow virtualenv: run `make mlflow-venv` or set MLFLOW_PYTHON"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but MLflow is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def model_files(folder: Path) -> dict[str, str]:
    """Files of the flavors MLflow's virtualenv lacks, made with this environment's libraries."""
    spec = {}
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        pass
    else:
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "model.onnx")
        spec["onnx"] = str(folder / "model.onnx")
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.manual_seed(0)
        torch.save(torch.nn.Linear(4, 2).state_dict(), folder / "model.pth")
        spec["pytorch"] = str(folder / "model.pth")
    return spec


class MlflowServer:
    def __init__(self, url: str, artifacts: Path, seeded: dict, flavors: dict):
        self.url = url
        self.artifacts = artifacts
        self.seeded = seeded
        self.flavors = flavors
        self.http = httpx.Client(base_url=f"{url}/api/2.0/mlflow/", timeout=30)

    def call(self, method: str, path: str, body: dict) -> dict:
        response = self.http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    def folder(self, name: str, version: int) -> Path:
        """Where MLflow keeps a version's files (behind its artifact proxy)."""
        uri = self.http.get("model-versions/get-download-uri", params={"name": name, "version": version}).json()
        return self.artifacts / urlsplit(uri["artifact_uri"]).path.strip("/")

    def history(self, run_id: str, key: str) -> list[dict]:
        data = self.http.get("metrics/get-history", params={"run_id": run_id, "metric_key": key}).json()
        return data["metrics"]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    python = mlflow_python()
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(folder / "server.log", "wb")
    server = subprocess.Popen(
        [python, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--serve-artifacts", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{(folder / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        flavors = model_files(folder)
        (folder / "spec.json").write_text(json.dumps(flavors))
        seeded = subprocess.run([python, str(SEED), url, str(folder / "spec.json")], capture_output=True, text=True,
                                timeout=600, cwd=folder)
        assert seeded.returncode == 0, seeded.stderr[-3000:]
        yield MlflowServer(url, folder / "artifacts", json.loads(seeded.stdout.strip().splitlines()[-1]), flavors)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_key(summary, kind: str) -> dict:
    if kind == "models":
        return {m.name: m for m in summary.models}
    if kind == "versions":
        return {(v.model, v.mlflow_version): v for v in summary.versions}
    return {(a.model, a.alias): a for a in summary.aliases}


def snapshot(registry) -> dict:
    """Everything an import writes, to compare before and after a run."""
    context = registry.context("acme")
    state = {"audit": len(list(context.audit()))}
    for model in context.models():
        state[model.name] = (model.data, [(v.data, [f.data for f in v.formats()], v.metrics())
                                          for v in model.versions()])
    return state


pytestmark = pytest.mark.subprocess


# --- tests ------------------------------------------------------------------------------

def test_import_copies_every_field_and_byte(mlflow_server, connect, tmp_path):
    registry = connect("publisher", default_context="acme")
    summary = registry.import_mlflow(mlflow_server.url, "acme")
    assert not summary.failed, summary.to_dict()
    expected_models = {"churn", "doubler", *(["fraud-onnx"] if "onnx" in mlflow_server.flavors else []),
                       *(["embedder-torch"] if "pytorch" in mlflow_server.flavors else [])}
    assert {m.name: m.action for m in summary.models} == dict.fromkeys(expected_models, "created")
    context = registry.context("acme")

    churn = context.model("churn")
    assert churn.description == "Churn classifier, trained weekly."
    assert churn.tags == ["team:risk", "tier:gold"]
    assert churn.metadata["mlflow"]["tracking_uri"] == mlflow_server.url
    assert churn.metadata["mlflow"]["tags"] == {"team": "risk", "tier": "gold"}
    assert {k: v["number"] for k, v in churn.metadata["mlflow"]["versions"].items()} == {"1": 1, "2": 2, "3": 3}
    versions = list(churn.versions())
    assert [v.number for v in versions] == [1, 2, 3]
    assert [v.status for v in versions] == ["published", "published", "draft"]  # v3: no stage, no alias
    for number, (version, c) in enumerate(zip(versions, ("0.5", "1.0", "2.0"), strict=True), start=1):
        run_id = mlflow_server.seeded["churn"][number - 1]
        assert version.description == f"C={c}"
        assert version.tags == (["validated:yes"] if number < 3 else ["validated:no"])
        assert version.hyperparameters == {"C": c, "max_iter": "200", "solver": "lbfgs"}
        assert version.framework == "scikit-learn" and version.framework_version
        mark = version.metadata["mlflow"]
        assert (mark["model"], mark["version"], mark["run_id"]) == ("churn", str(number), run_id)
        assert mark["flavors"] == ["python_function", "sklearn"]
        assert mark["source"].startswith("models:/m-") and mark["tags"] == {"validated": "yes" if number < 3 else "no"}
        assert version.signature == {
            "inputs": [{"name": "tenure", "dtype": "float64", "shape": [-1]},
                       {"name": "spend", "dtype": "float64", "shape": [-1]}],
            "outputs": [{"name": "output", "dtype": "int64", "shape": [-1]}]}
        # The whole history of each metric, with its steps and timestamps.
        auc = sorted((m["step"], m["value"], m["wallclock"]) for m in version.metrics("auc"))
        history = mlflow_server.history(run_id, "auc")
        assert len(auc) == len(history) == 3
        for (step, value, wallclock), point in zip(auc, sorted(history, key=lambda p: p["step"]), strict=True):
            assert (step, value) == (point["step"], point["value"])
            assert round(datetime.fromisoformat(wallclock).timestamp() * 1000) == point["timestamp"]
        assert [m["value"] for m in version.metrics("f1")] == [pytest.approx(0.6 + 0.05 * number)]
        # The bytes: the registry's file is MLflow's, checksum for checksum.
        fmt = version.format("pkl")
        original = mlflow_server.folder("churn", number) / "model.pkl"
        assert fmt.sha256 == sha256(original) and fmt.size == original.stat().st_size
        if version.status == "published":
            assert sha256(version.get_model("pkl")) == sha256(original)
    assert churn.aliases == {"champion": 2, "production": 2, "staging": 1}
    outcome = by_key(summary, "versions")[("churn", "3")]
    assert (outcome.action, outcome.status) == ("imported", "draft")
    assert "no alias" in outcome.reason and "stage is None" in outcome.reason

    # The MLflow-style URI of a notebook now loads the imported file.
    assert sha256(registry.load("models:/churn@production")) == sha256(mlflow_server.folder("churn", 2) / "model.pkl")

    # A pyfunc model: an artifact zip of its whole folder, byte for byte. Its python_model.pkl
    # is cloudpickled code, which the workers quarantine: it stays a draft though MLflow
    # aliased it, the alias is not made, and the summary says why.
    doubler = context.model("doubler")
    (version,) = list(doubler.versions())
    assert version.status == "draft" and version.hyperparameters == {"factor": "2"}
    fmt = version.format("artifact")
    assert fmt.status == "quarantined"
    zipped = tmp_path / "doubler.zip"
    version.download("artifact", zipped, acknowledge_not_ready=True)
    folder = mlflow_server.folder("doubler", 1)
    with zipfile.ZipFile(zipped) as archive:
        assert sorted(archive.namelist()) == sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        for name in archive.namelist():
            assert hashlib.sha256(archive.read(name)).hexdigest() == sha256(folder / name)
    assert doubler.aliases == {}
    alias = by_key(summary, "aliases")[("doubler", "prod")]
    reason = by_key(summary, "versions")[("doubler", "1")].reason
    assert reason.startswith("stays a draft: The artifact file is quarantined"), reason
    assert alias.action == "skipped" and reason in alias.reason

    if "onnx" in mlflow_server.flavors:
        onnx_model = context.model("fraud-onnx")
        (version,) = list(onnx_model.versions())
        assert version.status == "published" and version.framework == "onnx"
        assert version.hyperparameters == {"opset": "17"}
        assert version.format("onnx").sha256 == sha256(Path(mlflow_server.flavors["onnx"]))
        assert onnx_model.aliases == {"production": 1}
    if "pytorch" in mlflow_server.flavors:
        torch_model = context.model("embedder-torch")
        (version,) = list(torch_model.versions())
        assert version.framework == "pytorch"
        assert version.format("pt").sha256 == sha256(Path(mlflow_server.flavors["pytorch"]))
        assert version.status == "published" and torch_model.aliases == {"production": 1}

    imported = [v for v in summary.versions if v.bytes]
    assert summary.files == len(imported) == len(summary.versions)
    assert summary.bytes == sum(v.bytes for v in imported) > 0


def test_a_second_run_changes_nothing_and_a_third_only_what_changed(mlflow_server, connect):
    registry = connect("publisher")
    first = registry.import_mlflow(mlflow_server.url, "acme", models=["churn", "doubler"])
    assert not first.failed
    before = snapshot(registry)

    again = registry.import_mlflow(mlflow_server.url, "acme", models=["churn", "doubler"])
    assert not again.failed
    assert {m.action for m in again.models} == {"unchanged"}
    assert {v.action for v in again.versions} == {"unchanged"}
    assert {a.action for a in again.aliases} <= {"unchanged", "skipped"}
    assert again.bytes == 0 and again.files == 0
    assert snapshot(registry) == before  # not a write, not an audit event

    # In MLflow: churn v3 gets an alias, and the model a new description.
    mlflow_server.call("POST", "registered-models/alias", {"name": "churn", "alias": "candidate", "version": "3"})
    mlflow_server.call("PATCH", "registered-models/update", {"name": "churn", "description": "Weekly churn."})
    try:
        third = registry.import_mlflow(mlflow_server.url, "acme", models=["churn", "doubler"])
    finally:
        mlflow_server.call("DELETE", "registered-models/alias", {"name": "churn", "alias": "candidate"})
        mlflow_server.call("PATCH", "registered-models/update",
                           {"name": "churn", "description": "Churn classifier, trained weekly."})
    assert not third.failed, third.to_dict()
    assert by_key(third, "models")["churn"].action == "updated"
    assert by_key(third, "models")["doubler"].action == "unchanged"
    actions = {key: v.action for key, v in by_key(third, "versions").items()}
    assert actions == {("churn", "1"): "unchanged", ("churn", "2"): "unchanged", ("churn", "3"): "updated",
                       ("doubler", "1"): "unchanged"}
    churn = registry.context("acme").model("churn")
    assert churn.description == "Weekly churn."
    assert churn.version(3).status == "published"
    assert churn.aliases == {"candidate": 3, "champion": 2, "production": 2, "staging": 1}
    assert by_key(third, "versions")[("churn", "3")].bytes == 0  # its file was already here
    assert len(churn.version(3).metrics("auc")) == 3  # metrics not copied twice


def test_an_interrupted_import_resumes(mlflow_server, connect, monkeypatch):
    registry = connect("publisher")
    real_upload = Version.upload
    calls = []

    def interrupted(self, kind, path, **options):
        calls.append((self.number, kind))
        if len(calls) == 2:  # churn v2: its draft exists, its file never arrives
            raise KeyboardInterrupt
        return real_upload(self, kind, path, **options)

    monkeypatch.setattr(Version, "upload", interrupted)
    with pytest.raises(KeyboardInterrupt):
        registry.import_mlflow(mlflow_server.url, "acme", models=["churn"])
    churn = registry.context("acme").model("churn")
    assert [(v.number, v.status, [f.kind for f in v.format_summaries]) for v in churn.versions()] == [
        (1, "published", ["pkl"]), (2, "draft", [])]
    assert set(churn.metadata["mlflow"]["versions"]) == {"1"}

    monkeypatch.setattr(Version, "upload", real_upload)
    resumed = registry.import_mlflow(mlflow_server.url, "acme", models=["churn"])
    assert not resumed.failed, resumed.to_dict()
    assert [(v.mlflow_version, v.action, v.number, v.status) for v in resumed.versions] == [
        ("1", "unchanged", 1, "published"), ("2", "resumed", 2, "published"), ("3", "imported", 3, "draft")]
    churn.refresh()
    assert churn.version_numbers == [1, 2, 3]  # nothing doubled
    assert churn.aliases == {"champion": 2, "production": 2, "staging": 1}
    assert churn.version(2).format("pkl").sha256 == sha256(mlflow_server.folder("churn", 2) / "model.pkl")
    assert len(churn.version(2).metrics("auc")) == 3


def test_a_failure_keeps_the_order_and_the_exit_code_says_so(mlflow_server, connect, monkeypatch):
    registry = connect("publisher")
    real_create = Model.create_version
    calls = []

    def failing(self, **fields):
        calls.append(fields["metadata"]["mlflow"]["version"])
        if fields["metadata"]["mlflow"]["version"] == "2":
            raise ServerError("injected", status=500)
        return real_create(self, **fields)

    monkeypatch.setattr(Model, "create_version", failing)
    summary = registry.import_mlflow(mlflow_server.url, "acme", models=["churn"])
    assert summary.failed
    assert [(v.mlflow_version, v.action) for v in summary.versions] == [
        ("1", "imported"), ("2", "failed"), ("3", "skipped")]
    assert "order is kept" in summary.versions[2].reason
    assert calls == ["1", "2"]


def test_a_name_clash_is_reported_never_merged(mlflow_server, connect, server_url, tokens):
    registry = connect("publisher")
    mine = registry.context("acme").create_model("churn", description="Ours, made by hand.")
    result = run_cli("--no-progress", "import-mlflow", "--tracking-uri", mlflow_server.url, "--context", "acme",
                     "--model", "churn", "doubler",
                     env={"REGISTRY_URL": server_url, "REGISTRY_TOKEN": tokens["publisher"]}, timeout=300)
    assert result.returncode == 3, result.stderr
    assert "name clash" in result.stdout and "nothing was merged" in result.stdout
    assert "SKIPPED" in result.stdout and "models: 2" in result.stdout
    assert "1 name clash(es)" in result.stderr and "failure" not in result.stderr
    mine.refresh()
    assert mine.description == "Ours, made by hand." and mine.version_numbers == [] and mine.metadata == {}
    assert registry.context("acme").model("doubler").version_numbers == [1]  # the rest came over

    # A model imported from another tracking server is a clash too.
    other = registry.context("acme").model("doubler")
    other.update(metadata={**other.metadata, "mlflow": {**other.metadata["mlflow"],
                                                        "tracking_uri": "http://elsewhere:5000"}})
    summary = registry.import_mlflow(mlflow_server.url, "acme", models=["doubler"])
    assert summary.models[0].action == "clash" and "http://elsewhere:5000" in summary.models[0].reason


def test_a_dry_run_writes_nothing(mlflow_server, connect, server_url, tokens):
    registry = connect("publisher")
    before = snapshot(registry)
    result = run_cli("--progress", "import-mlflow", "--tracking-uri", mlflow_server.url, "--context", "acme",
                     "--model", "churn", "--dry-run", "--json",
                     env={"REGISTRY_URL": server_url, "REGISTRY_TOKEN": tokens["publisher"]}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "importing from MLflow" in result.stderr and "3/3" in result.stderr  # the progress bar
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and plan["failed"] is False
    assert [m["action"] for m in plan["models"]] == ["would create"]
    assert [(v["mlflow_version"], v["action"], v["files"]) for v in plan["versions"]] == [
        ("1", "would import", ["pkl"]), ("2", "would import", ["pkl"]), ("3", "would import", ["pkl"])]
    assert plan["versions"][0]["bytes"] == (mlflow_server.folder("churn", 1) / "model.pkl").stat().st_size
    assert {a["alias"]: a["action"] for a in plan["aliases"]} == {
        "champion": "would set", "production": "would set", "staging": "would set"}
    assert snapshot(registry) == before


def test_an_unreachable_or_unknown_source_is_a_clear_error(mlflow_server, connect, server_url, tokens):
    registry = connect("publisher")
    summary = registry.import_mlflow(mlflow_server.url, "acme", models=["no-such-model"])
    assert summary.failed and "no registered model named 'no-such-model'" in summary.models[0].reason
    result = run_cli("--no-progress", "--retries", "0", "import-mlflow", "--tracking-uri",
                     f"http://127.0.0.1:{free_port()}", "--context", "acme",
                     env={"REGISTRY_URL": server_url, "REGISTRY_TOKEN": tokens["publisher"]})
    assert result.returncode == 5 and "could not be reached" in result.stderr
